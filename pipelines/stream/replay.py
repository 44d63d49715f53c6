"""Replay a simulated day's `stream/events.jsonl` into Kafka, in arrival order, then close the day.

Payment events go to `payrecon.payment-events` keyed by `payment_id`; callbacks go, as a channel
delivers them, to `payrecon.channel-callbacks.raw` keyed by `channel/channel_txn_id` (the worker's
re-key agent moves them to `payrecon.channel-callbacks` under their payment_id), or with `prekeyed`
straight to `payrecon.channel-callbacks` keyed by payment_id. The record's `trace_id` is a header. Kafka timestamps are left to the producer (wall clock at send):
event time travels in the values (`occurred_at`, `received_at`), so the latency a worker measures is
real, and windows close in event time whatever the replay speed.

After the last record the replay sends a watermark tick (`{"type":"tick","at":...}`, key `__tick__`) to
every partition of both topics the day went to, at the end of the business day (or the last event time, if later):
no record of the day is older, so every callback window ending inside the day closes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaProducer

from connectors.kafka.codecs import TICK_KEY, encode_tick, headers_for, raw_callback_key
from connectors.kafka.topics import INPUT_PARTITIONS, Topics

# How many sends may be in flight before the replay waits for their acknowledgements.
IN_FLIGHT_MAX = 5_000


class ReplayError(ValueError):
    """A day that cannot be replayed: the file, the line (0 for the whole file) and the reason."""

    def __init__(self, path: Path, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}" if line else f"{path}: {reason}")
        self.path, self.line, self.reason = path, line, reason


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """One line of events.jsonl, ready to send."""

    topic_kind: str  # "payment_event" or "channel_callback"
    at: datetime
    key: bytes
    value: bytes
    trace_id: str
    # The channel's own key (callbacks only): how a channel would key its delivery.
    raw_key: bytes = b""


@dataclass(frozen=True, slots=True)
class ReplayStats:
    payment_events: int
    channel_callbacks: int
    ticks: int
    tick_at: datetime
    seconds: float


def events_path(input_root: Path, business_date: date) -> Path:
    return Path(input_root) / business_date.isoformat() / "stream" / "events.jsonl"


def read_events(path: Path) -> Iterator[StreamRecord]:
    """The records of an events.jsonl file in file order; a bad line raises ReplayError naming it."""
    if not path.exists():
        raise ReplayError(path, 0, "no such file: simulate the day first (payrecon simulate --out ROOT ...)")
    with open(path, "rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ReplayError(path, line_no, f"not UTF-8 at byte {exc.start} of the line") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                kind = row["type"]
                value = row["value"]
                at = datetime.fromisoformat(row["at"]).astimezone(UTC)
                payment_id = value["payment_id"]
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise ReplayError(path, line_no, f"not a stream record ({type(exc).__name__}: {exc})") from None
            if kind not in ("payment_event", "channel_callback"):
                raise ReplayError(path, line_no, f"unknown record type {kind!r}")
            if not isinstance(payment_id, str) or not payment_id:
                raise ReplayError(path, line_no, "payment_id must be non-empty text (it is the Kafka key)")
            yield StreamRecord(
                kind,
                at,
                payment_id.encode(),
                json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode(),
                str(value.get("trace_id") or ""),
                raw_callback_key(str(value.get("channel") or ""), str(value.get("channel_txn_id") or ""))
                if kind == "channel_callback"
                else b"",
            )


def count_events(path: Path) -> int:
    with open(path, "rb") as fh:  # bytes: a line that is not UTF-8 is read_events' to name
        return sum(1 for line in fh if line.strip())


async def publish_day(
    bootstrap: str,
    topics: Topics,
    input_root: Path,
    business_date: date,
    *,
    speed: float | None = None,
    on_sent: Callable[[int], None] | None = None,
    ticks: bool = True,
    prekeyed: bool = False,
) -> ReplayStats:
    """Publish one day in arrival order. `speed` None: as fast as the broker takes it; else the
    event-time gaps divided by `speed` (2.0 = twice real time). `on_sent(n)` reports progress.
    Callbacks go to the raw callback topic under the channel's key, or with `prekeyed` straight to
    the matcher's callback topic under their payment_id."""
    if speed is not None and speed <= 0:
        raise ValueError(f"speed must be positive, got {speed}")
    path = events_path(input_root, business_date)
    records = read_events(path)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5, max_batch_size=256 * 1024
    )
    await producer.start()
    started = time.monotonic()
    counts = {"payment_event": 0, "channel_callback": 0}
    last_at = datetime.combine(business_date, datetime.min.time(), tzinfo=UTC)
    first_at: datetime | None = None
    pending: list[asyncio.Future[object]] = []
    try:
        for rec in records:
            if speed is not None:
                first_at = first_at or rec.at
                due = started + (rec.at - first_at).total_seconds() / speed
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            topic, key = input_topic(topics, rec, prekeyed)
            pending.append(await producer.send(topic, rec.value, key=key, headers=headers_for(rec.trace_id)))
            counts[rec.topic_kind] += 1
            last_at = max(last_at, rec.at)
            if len(pending) >= IN_FLIGHT_MAX:
                await asyncio.gather(*pending)
                if on_sent:
                    on_sent(len(pending))
                pending.clear()
        await asyncio.gather(*pending)
        if on_sent and pending:
            on_sent(len(pending))
        pending.clear()
        end_of_day = datetime.combine(business_date + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        tick_at = max(end_of_day, last_at)
        sent_ticks = 0
        if ticks:
            sent_ticks = await send_ticks(producer, topics, tick_at, prekeyed=prekeyed)
    finally:
        await producer.stop()
    return ReplayStats(
        counts["payment_event"], counts["channel_callback"], sent_ticks, tick_at, time.monotonic() - started
    )


def input_topic(topics: Topics, rec: StreamRecord, prekeyed: bool = False) -> tuple[str, bytes]:
    """Where a record is published and under which key (see the module docstring)."""
    if rec.topic_kind == "payment_event":
        return topics.payment_events, rec.key
    if prekeyed:
        return topics.channel_callbacks, rec.key
    return topics.channel_callbacks_raw, rec.raw_key


async def send_ticks(producer: AIOKafkaProducer, topics: Topics, at: datetime, *, prekeyed: bool = False) -> int:
    """A watermark tick `at` to every partition of the payment events and of the callback topic the
    day's callbacks went to (raw, or with `prekeyed` the re-keyed one); returns how many were sent."""
    futures = []
    for topic in (topics.payment_events, topics.channel_callbacks if prekeyed else topics.channel_callbacks_raw):
        for partition in range(INPUT_PARTITIONS):
            futures.append(await producer.send(topic, encode_tick(at), key=TICK_KEY, partition=partition))
    await asyncio.gather(*futures)
    return len(futures)
