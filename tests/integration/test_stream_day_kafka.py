"""A simulated 10,000-payment day through the real worker on the real local Kafka.

The stream's final breaks must equal `truth/stream_breaks.csv`; then the T+1 run of the same day
(`payrecon recon`) must equal `truth/breaks.csv` and confirm, under the same break_id, every stream
break of a kind both engines decide."""

from __future__ import annotations

import asyncio
import csv
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from connectors.kafka.topics import Topics
from pipelines.simulate.generator import simulate
from pipelines.stream.collect import Collected, write_csvs
from pipelines.stream.demo import WorkerProcess, replay_and_collect

pytestmark = [pytest.mark.slow, pytest.mark.kafka]

DAY = date(2026, 11, 2)
PAYMENTS = 10_000
# Kinds both engines decide from the same facts: the stream's provisional break is confirmed by T+1
# under the same break_id. (A lost callback is MISSING_CALLBACK in the stream and STATUS_MISMATCH at
# T+1, a kind change, so a new id; a duplicate callback has no T+1 counterpart.)
SHARED_KINDS = {"STATUS_MISMATCH", "AMOUNT_MISMATCH", "PARTIAL_PAYMENT", "CURRENCY_MISMATCH", "DUPLICATE_PAYMENT"}


def _truth(path: Path) -> set[tuple[str, str, str, str]]:
    with open(path, encoding="utf-8") as fh:
        return {(r["kind"], r["channel"], r["payment_id"], r["channel_txn_id"]) for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def stream_day(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("stream-day")
    simulate(start=DAY, days=1, payments=PAYMENTS, seed=23, out_root=root / "input")
    import uuid

    from connectors.kafka.admin import delete_namespace, ensure_topics

    topics = Topics(f"t-day-{uuid.uuid4().hex[:6]}")
    ensure_topics(kafka_bootstrap, topics)
    worker = WorkerProcess(topics, kafka_bootstrap)
    worker.start()
    try:
        stats, collected = asyncio.run(replay_and_collect(kafka_bootstrap, topics, root / "input", DAY, worker))
        headers = asyncio.run(_headers(kafka_bootstrap, topics.breaks))
    finally:
        worker.stop()
        worker.cleanup()
        asyncio.run(delete_namespace(kafka_bootstrap, topics))
    csv_path = write_csvs(collected, root / "out" / DAY.isoformat())
    return {"root": root, "collected": collected, "csv": csv_path, "headers": headers, "stats": stats}


async def _headers(bootstrap: str, topic: str) -> list[tuple[bytes, dict[str, bytes], bytes]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    out: list = []
    try:
        for messages in (await consumer.getmany(timeout_ms=3000, max_records=50)).values():
            out.extend((m.key, dict(m.headers), m.value) for m in messages)
    finally:
        await consumer.stop()
    return out


def test_final_stream_breaks_equal_the_truth(stream_day: dict[str, Any]):
    collected: Collected = stream_day["collected"]
    truth = _truth(stream_day["root"] / "input" / DAY.isoformat() / "truth" / "stream_breaks.csv")
    got = _truth(stream_day["csv"])
    assert len(truth) > 100
    assert got == truth
    assert stream_day["stats"].payment_events > PAYMENTS
    # Late callbacks closed their provisional MISSING_CALLBACK on the break topic.
    closed = [b for b in collected.breaks.values() if b["status"] == "CLOSED"]
    assert closed and {b["kind"] for b in closed} == {"MISSING_CALLBACK"}
    # One task per open break with an action, keyed by its deterministic task_id.
    open_with_action = {b["break_id"] for b in collected.open_breaks().values() if b["action"] != "NONE"}
    assert open_with_action <= {t["break_id"] for t in collected.tasks.values()}
    assert all(len(copies) == 1 for copies in collected.task_copies.values())
    # trace_id in the value and in the headers.
    assert stream_day["headers"]
    for _key, headers, value in stream_day["headers"]:
        assert headers["trace_id"] and headers["trace_id"].decode() in value.decode()
    assert collected.dlq == []


def test_t1_confirms_the_stream_breaks_under_the_same_break_id(stream_day: dict[str, Any]):
    root: Path = stream_day["root"]
    out = root / "t1"
    cmd = [sys.executable, "-m", "pipelines.cli", "recon", "--date", DAY.isoformat(), "--input", str(root / "input")]
    cmd += ["--out", str(out), "--quality-engine", "duckdb", "--no-data-docs"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    t1_path = out / DAY.isoformat() / "breaks.csv"
    assert _truth(t1_path) == _truth(root / "input" / DAY.isoformat() / "truth" / "breaks.csv")
    with open(t1_path, encoding="utf-8") as fh:
        t1_ids = {r["break_id"] for r in csv.DictReader(fh)}
    stream_shared = {b["break_id"] for b in stream_day["collected"].open_breaks().values() if b["kind"] in SHARED_KINDS}
    assert stream_shared and stream_shared <= t1_ids
