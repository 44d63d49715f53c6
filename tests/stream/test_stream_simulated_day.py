"""The matcher over a whole simulated day, without Kafka: its final breaks equal the stream truth.

The same check runs through the real broker and worker in tests/integration; this one pins the
decision semantics against the simulator's contract in a second, on every commit."""

from __future__ import annotations

import csv
import json
import zlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from connectors.kafka.codecs import Tick, decode_channel_callback, decode_payment_event
from connectors.kafka.topics import INPUT_PARTITIONS
from pipelines.matching.rules import load_rules
from pipelines.simulate.generator import simulate
from pipelines.stream.matcher import Matcher, Output

DAY = date(2026, 11, 2)


@pytest.fixture(scope="module")
def day_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sim")
    simulate(
        start=DAY,
        days=1,
        payments=1500,
        seed=11,
        out_root=root,
        channels=["alipay", "wechatpay", "stripe", "jpbank"],
        faults="default",
    )
    return root / DAY.isoformat()


def _replay(day_dir: Path, store: dict) -> list[Output]:
    m = Matcher(load_rules(), store)
    out: list[Output] = []
    with open(day_dir / "stream" / "events.jsonl", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            raw = json.dumps(row["value"]).encode()
            rec = decode_payment_event(raw) if row["type"] == "payment_event" else decode_channel_callback(raw)
            assert not hasattr(rec, "at")
            assert not isinstance(rec, Tick)  # a simulated day's records are payments and callbacks
            out += m.apply(rec, zlib.crc32(rec.payment_id.encode()) % INPUT_PARTITIONS)
    end = datetime.combine(DAY + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    for p in range(INPUT_PARTITIONS):
        out += m.tick("e", end, p) + m.tick("c", end, p)
    return out


def test_final_stream_breaks_equal_the_truth(day_dir: Path):
    out = _replay(day_dir, {})
    final: dict[str, dict] = {}
    for o in out:
        if o.topic_kind == "break":
            final[o.key] = o.value
    got = {
        (v["kind"], v["channel"], v["payment_id"] or "", v["channel_txn_id"] or "")
        for v in final.values()
        if v["status"] != "CLOSED"
    }
    with open(day_dir / "truth" / "stream_breaks.csv", encoding="utf-8") as fh:
        truth = {(r["kind"], r["channel"], r["payment_id"], r["channel_txn_id"]) for r in csv.DictReader(fh)}
    assert truth, "the simulated day has no stream faults: the test would prove nothing"
    assert got == truth
    # Late callbacks closed the provisional MISSING_CALLBACK they resolved.
    closed = [v for v in final.values() if v["status"] == "CLOSED"]
    assert closed and all(v["kind"] == "MISSING_CALLBACK" for v in closed)
    # One task per open break with an action, and none for a DUPLICATE_CALLBACK.
    tasks = {o.key: o.value for o in out if o.topic_kind == "task"}
    assert {t["break_id"] for t in tasks.values()} >= {
        v["break_id"] for v in final.values() if v["status"] != "CLOSED" and v["action"] != "NONE"
    }
