"""Stream matcher benchmark: the real worker on the local Kafka beside a bare aiokafka loop.

    .venv/bin/python bench/stream.py --payments 10000 [--write-readme]

1. Simulates one business day of N payments (about 2.7 records per payment).
2. Throughput: publishes the whole day to a fresh namespace first, then starts one worker process
   and measures from its first to its last watermark tick (start ticks are sent before the day,
   end ticks after it; the worker reports the wall time of each in its progress topic): records/s
   decided by one worker, startup and group join excluded. The day's open breaks are checked
   against the simulator's truth, so the figure is for correct work.
3. Baseline, same broker, same run, same messages: a bare aiokafka consumer group over the same two
   topics that produces one record per message to a sink topic and commits offsets every second.
4. Latency at half of peak load: a fresh namespace and a running worker; the day is published at
   half the measured throughput (wall-clock paced) and the worker's histogram of decision latency
   (the input record's Kafka timestamp, its produce time, to the moment its decision is handed to
   the producer) gives p50 and p99.
`--write-readme` puts the figures under "## Stream matcher" in bench/README.md (other sections kept).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import platform
import re
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from connectors.kafka.admin import delete_namespace, ensure_topics  # noqa: E402
from connectors.kafka.broker import ensure_broker  # noqa: E402
from connectors.kafka.codecs import headers_for  # noqa: E402
from connectors.kafka.topics import Topics  # noqa: E402
from pipelines.simulate.generator import simulate  # noqa: E402
from pipelines.stream.collect import collect, wait_for_ticks  # noqa: E402
from pipelines.stream.demo import WorkerProcess  # noqa: E402
from pipelines.stream.replay import StreamRecord, events_path, read_events, send_ticks  # noqa: E402

DAY = date(2026, 11, 2)
DAY_START = datetime(2026, 11, 2, tzinfo=UTC)
DAY_END = DAY_START + timedelta(days=1)


async def _publish(bootstrap: str, topics: Topics, records: list[StreamRecord], rate: float | None) -> float:
    """Start ticks, the records (paced at `rate` records/s when given), end ticks; returns seconds."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5, max_batch_size=256 * 1024
    )
    await producer.start()
    started = time.monotonic()
    try:
        await send_ticks(producer, topics, DAY_START, prekeyed=True)
        pending = []
        for i, rec in enumerate(records):
            if rate is not None:
                delay = started + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            topic = topics.payment_events if rec.topic_kind == "payment_event" else topics.channel_callbacks
            pending.append(await producer.send(topic, rec.value, key=rec.key, headers=headers_for(rec.trace_id)))
            if len(pending) >= 2000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        await send_ticks(producer, topics, DAY_END, prekeyed=True)
    finally:
        await producer.stop()
    return time.monotonic() - started


async def _bare_loop(bootstrap: str, topics: Topics, expected: int) -> float:
    """Consume the namespace's two input topics in a group and produce one record per message to a
    sink topic, committing every second: what Kafka and aiokafka alone cost. Returns records/s."""
    sink = f"{topics.namespace}.bench-sink"
    consumer = AIOKafkaConsumer(
        topics.payment_events, topics.channel_callbacks, bootstrap_servers=bootstrap,
        group_id=f"{topics.namespace}.bare", auto_offset_reset="earliest", enable_auto_commit=False,
        max_poll_records=2000,
    )  # fmt: skip
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=10)
    await consumer.start()
    await producer.start()
    seen = 0
    first: float | None = None
    last_commit = time.monotonic()
    try:
        while seen < expected:
            batch = await consumer.getmany(timeout_ms=1000)
            for messages in batch.values():
                for m in messages:
                    if m.key == b"__tick__":
                        continue
                    first = first or time.monotonic()
                    await producer.send(sink, m.value, key=m.key, headers=list(m.headers))
                    seen += 1
            if time.monotonic() - last_commit > 1.0:
                await producer.flush()
                await consumer.commit()
                last_commit = time.monotonic()
        await producer.flush()
        await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()
    assert first is not None
    return expected / (time.monotonic() - first)


def _percentile(hist: dict[int, int], q: float) -> int:
    total = sum(hist.values())
    rank, acc = q * total, 0
    for ms in sorted(hist):
        acc += hist[ms]
        if acc >= rank:
            return ms
    return max(hist)


def _truth_ok(day_dir: Path, open_breaks: dict[str, dict]) -> bool:
    with open(day_dir / "truth" / "stream_breaks.csv", encoding="utf-8") as fh:
        truth = {(r["kind"], r["channel"], r["payment_id"], r["channel_txn_id"]) for r in csv.DictReader(fh)}
    got = {(b["kind"], b["channel"], b["payment_id"] or "", b["channel_txn_id"] or "") for b in open_breaks.values()}
    return got == truth


def _throughput(
    bootstrap: str, records: list[StreamRecord], day_dir: Path
) -> tuple[float, float, bool, dict[str, int]]:
    topics = Topics(f"bench-{uuid.uuid4().hex[:6]}")
    ensure_topics(bootstrap, topics)
    worker = WorkerProcess(topics, bootstrap)
    try:
        asyncio.run(_publish(bootstrap, topics, records, rate=None))
        worker.start()
        progress = asyncio.run(wait_for_ticks(bootstrap, topics, DAY_END, timeout_s=1800, alive=worker.alive))
        starts = [p["wall_ms"] for p in progress if p["at"].startswith(DAY_START.date().isoformat())]
        ends = [p["wall_ms"] for p in progress if p["at"].startswith(DAY_END.date().isoformat())]
        matcher_rate = len(records) / ((max(ends) - min(starts)) / 1000)
        # The worker's counters when it reported its last end-of-day tick: the whole day decided.
        stats = max(progress, key=lambda p: p["wall_ms"])["stats"]
        correct = _truth_ok(day_dir, asyncio.run(collect(bootstrap, topics)).open_breaks())
        worker.stop()
        bare_rate = asyncio.run(_bare_loop(bootstrap, topics, len(records)))
    finally:
        worker.stop()
        worker.cleanup()
        asyncio.run(delete_namespace(bootstrap, topics))
    return matcher_rate, bare_rate, correct, stats


def _latency(bootstrap: str, records: list[StreamRecord], rate: float) -> tuple[int, int, int]:
    topics = Topics(f"bench-{uuid.uuid4().hex[:6]}")
    ensure_topics(bootstrap, topics)
    worker = WorkerProcess(topics, bootstrap)
    try:
        worker.start()
        # Ready when it has decided a first tick on every partition.
        asyncio.run(_warm_up(bootstrap, topics, worker))
        asyncio.run(_publish(bootstrap, topics, records, rate=rate))
        progress = asyncio.run(wait_for_ticks(bootstrap, topics, DAY_END, timeout_s=1800, alive=worker.alive))
    finally:
        worker.stop()
        worker.cleanup()
        asyncio.run(delete_namespace(bootstrap, topics))
    hist: dict[int, int] = {}
    for p in progress:
        for ms, n in p["latency_ms"].items():
            hist[int(ms)] = hist.get(int(ms), 0) + n
    return _percentile(hist, 0.50), _percentile(hist, 0.99), sum(hist.values())


async def _warm_up(bootstrap: str, topics: Topics, worker: WorkerProcess) -> None:
    warm = DAY_START - timedelta(hours=1)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await send_ticks(producer, topics, warm, prekeyed=True)
    finally:
        await producer.stop()
    await wait_for_ticks(bootstrap, topics, warm, timeout_s=120, alive=worker.alive)


def _write_readme(section: str) -> Path:
    path = REPO / "bench" / "README.md"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(r"^## Stream matcher\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _m: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--payments", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()

    bootstrap = ensure_broker()
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        simulate(start=DAY, days=1, payments=args.payments, seed=args.seed, out_root=Path(tmp))
        day_dir = Path(tmp) / DAY.isoformat()
        records = list(read_events(events_path(Path(tmp), DAY)))
        print(f"{len(records)} records ({args.payments} payments) on {bootstrap}", flush=True)
        matcher_rate, bare_rate, correct, stats = _throughput(bootstrap, records, day_dir)
        print(f"matcher: {matcher_rate:,.0f} records/s per worker (breaks equal the truth: {correct})", flush=True)
        writes = stats.get("table_writes", 0) / max(1, stats["events"] + stats["callbacks"])
        print(f"  {stats.get('batches', 0)} fetched batches, {writes:.2f} table (changelog) writes per input record")
        print(f"bare aiokafka consume+produce: {bare_rate:,.0f} records/s", flush=True)
        p50, p99, samples = _latency(bootstrap, records, matcher_rate / 2)
        print(f"latency at {matcher_rate / 2:,.0f} records/s: p50 {p50} ms, p99 {p99} ms ({samples} decisions)")

    command = f".venv/bin/python bench/stream.py --payments {args.payments} --seed {args.seed}"
    section = f"""## Stream matcher

`{command}` ({datetime.now(UTC).date().isoformat()}, {platform.machine()}, 2 cores; Kafka, worker
and load generator on the same machine). One worker process (the Faust app, its input topics
consumed in fetched batches by `pipelines/stream/batching.py`), memory table store with changelog,
{len(records):,} records (payment events + callbacks) of a simulated {args.payments:,}-payment day.

| measure | figure | target (SPEC section 10) |
|---|---|---|
| matcher throughput, one worker | {matcher_rate:,.0f} records/s (final breaks equal the truth: {correct}) | >= 20,000 |
| bare aiokafka consume + produce, same messages, same broker | {bare_rate:,.0f} records/s | |
| matcher / bare | {matcher_rate / bare_rate:.2f} | >= 0.5 |
| table (changelog) writes per input record | {writes:.2f} ({stats.get("batches", 0)} fetched batches) | <= 1 |
| decision latency p50 / p99 at half the measured throughput | {p50} ms / {p99} ms | p99 < 500 ms |

Throughput is timed between the worker's first and last watermark tick (start-up and group join
excluded); latency is from an input record's produce time to the moment its decision is handed to
the producer.
"""
    print()
    print(section)
    if args.write_readme:
        print(f"written to {_write_readme(section)}")


if __name__ == "__main__":
    main()
