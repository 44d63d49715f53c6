"""State pruning: a decided payment leaves the table once the watermark is past its last fact and
window by the retention, so the table stays bounded over a replayed day, and no decision changes."""

from __future__ import annotations

import json
import zlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from stream_helpers import at, callback, event

from connectors.kafka.codecs import Tick, decode_channel_callback, decode_payment_event
from connectors.kafka.topics import INPUT_PARTITIONS
from pipelines.matching.rules import load_rules
from pipelines.records import PaymentStatus
from pipelines.simulate.generator import simulate
from pipelines.stream.matcher import Matcher, Output, TooLate

DAY = date(2026, 11, 2)
HOUR_MS = 3600 * 1000


@pytest.fixture(scope="module")
def day_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sim-prune")
    simulate(start=DAY, days=1, payments=1500, seed=5, out_root=root, faults="default")
    return root / DAY.isoformat()


def _replay(day_dir: Path, retention_ms: int) -> tuple[list[Output], Matcher, list[int]]:
    store: dict = {}
    m = Matcher(load_rules(), store, retention_ms=retention_ms)
    out: list[Output] = []
    sizes: list[int] = []
    with open(day_dir / "stream" / "events.jsonl", encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            row = json.loads(line)
            raw = json.dumps(row["value"]).encode()
            rec = decode_payment_event(raw) if row["type"] == "payment_event" else decode_channel_callback(raw)
            assert not isinstance(rec, Tick)  # a simulated day's records are payments and callbacks
            out += m.apply(rec, zlib.crc32(rec.payment_id.encode()) % INPUT_PARTITIONS)
            if n % 200 == 0:
                sizes.append(m.live_payments())
    end = datetime.combine(DAY + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    for p in range(INPUT_PARTITIONS):
        out += m.tick("e", end, p) + m.tick("c", end, p)
    sizes.append(m.live_payments())
    return out, m, sizes


def test_the_table_stays_bounded_over_a_day_and_no_decision_changes(day_dir: Path):
    kept, keeper, kept_sizes = _replay(day_dir, retention_ms=48 * HOUR_MS)
    pruned, pruner, pruned_sizes = _replay(day_dir, retention_ms=2 * HOUR_MS)
    # Byte for byte the same records, in the same order.
    assert [(o.topic_kind, o.key, o.value) for o in pruned] == [(o.topic_kind, o.key, o.value) for o in kept]
    assert keeper.stats["pruned"] == 0 and kept_sizes[-1] >= 1500
    # Two hours of a day's payments (plus the few still not final), not the whole day.
    assert pruner.stats["pruned"] > 1000
    assert max(pruned_sizes) < kept_sizes[-1] / 4
    # The changelog gets a tombstone for each: the keys are gone from the store, not emptied.
    assert len(pruner.store) < len(keeper.store) / 4  # type: ignore[arg-type]


def test_a_payment_still_processing_is_never_pruned():
    m = Matcher(load_rules(), {}, retention_ms=HOUR_MS)
    m.apply(event("P1", PaymentStatus.PROCESSING, 0), 0)
    m.tick("e", at(10 * 3600), 0)
    m.tick("c", at(10 * 3600), 0)
    assert m.live_payments() == 1 and m.stats["pruned"] == 0


def test_a_late_fact_after_the_retention_is_refused_not_decided_again():
    m = Matcher(load_rules(), {}, retention_ms=HOUR_MS)
    for rec in (event("P1", PaymentStatus.PROCESSING, 0), callback("P1", 5), event("P1", PaymentStatus.SUCCEEDED, 6)):
        m.apply(rec, 0)
    m.tick("e", at(3 * 3600), 0)
    m.tick("c", at(3 * 3600), 0)
    assert m.live_payments() == 0 and m.stats["pruned"] == 1
    # A redelivery of its first event: deciding it afresh would raise a false MISSING_CALLBACK.
    with pytest.raises(TooLate, match="P1"):
        m.apply(event("P1", PaymentStatus.PROCESSING, 0), 0)
