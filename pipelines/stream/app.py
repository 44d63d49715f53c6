"""The Faust app of the stream matcher: input topics, the pending-state table, the agent, the sinks.

Channels deliver callbacks keyed by their own ids: the re-key step (`rekey`; fetched batches in the
worker, the `rekey` agent one record at a time) reads them from `payrecon.channel-callbacks.raw`
(key `channel/channel_txn_id`) and writes each, same bytes, to `payrecon.channel-callbacks` under
its `payment_id` with its raw partition in a header (the matcher keeps one callback watermark per
raw partition); a tick is forwarded to every partition.

The matcher consumes both input topics (payment events and re-keyed callbacks, co-partitioned by
`payment_id`), so that one actor sees every record of a payment in the order Kafka keeps per topic
partition. In the worker, Faust's consumer hands it the records one fetched batch at a time
(`pipelines.stream.batching`: Faust's per-event path capped a worker near 5k records/s); the
`match` agent runs the same function (`process`) one record at a time, which is what
`agent.test_context()` exercises. The state of every pending payment lives in the `payments` table
(changelog-backed, one shard per input partition; RocksDB through `rocksdict` when installed, else
in memory and rebuilt from the changelog at start), written back once per payment per batch
(`TableBuffer`) to the changelog shard of its input partition. Decisions are made by
`pipelines.stream.matcher.Matcher` with the same rule files as the T+1 engine
(`pipelines.matching.rules.load_rules`).

Delivery is at least once: a batch's offsets are acked after its effects (outputs and changelog
records) are handed to the producer, and committed by Faust after the producer is flushed, so a
crash re-delivers records whose effects may or may not have been sent. A record the producer gave
up on (refused by the broker, retries run out) stops the worker before any offset past it is
committed (`pipelines.stream.batching.Deliveries`): its input is read again, never dropped.
Effects are idempotent:
breaks are keyed by `break_id` and tasks by `task_id`, both deterministic, and every copy of a
record is byte-identical (event time, never wall clock, in every field), so a consumer that keeps
the last record per id sees exactly what an undisturbed run produced. "No duplicate task" means:
one `task_id` per (break, action), and every copy of a task under that id has the same content,
so the payment core, which deduplicates on the task_id as `Idempotency-Key`, applies it once.

An input record that cannot be decoded (bad JSON, a float amount, an unknown channel, a record not
keyed by its payment_id) goes to the dead-letter topic with the reason, and the worker goes on.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, cast

import faust
from aiokafka.structs import ConsumerRecord
from faust.types import TP

from connectors.kafka.codecs import (
    DLQ_REASON_HEADER,
    SOURCE_HEADER,
    TICK_KEY,
    TRACE_HEADER,
    DecodeError,
    Tick,
    decode_channel_callback,
    decode_payment_event,
    encode_compact,
    encode_json,
    headers_for,
    iso,
    parse_source,
    rekey_callback,
)
from connectors.kafka.topics import INPUT_PARTITIONS, Topics
from pipelines.matching.rules import Rule, load_rules
from pipelines.stream.batching import BatchApp
from pipelines.stream.matcher import (
    RETENTION_MS_DEFAULT,
    WATERMARK_KEY_PREFIX,
    Matcher,
    Output,
    TooLate,
    from_ms,
)

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]
REPO_ROOT = Path(__file__).resolve().parents[2]
# Latency above this many ms is counted in the last bucket of the histogram.
LATENCY_HIST_MAX_MS = 60_000
PRODUCER_BUFFER_MAX = 10_000
# Below the broker's default message.max.bytes (1 MiB).
PRODUCER_BATCH_BYTES = 512 * 1024
# Kafka's group.min.session.timeout.ms is 6 s by default: the shortest a worker may ask for.
SESSION_TIMEOUT_S_DEFAULT = 10.0
# Allocations between two young-generation collections of the worker (Python's default: 700).
GC_GEN0_THRESHOLD = 50_000
# The most input records one fetched batch hands to the matcher.
BATCH_RECORDS_MAX = 2_000


class Sink(Protocol):
    """Where output records go: Kafka topics in the worker, a list in unit tests."""

    async def send(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        headers: Headers,
        *,
        partition: int | None = None,
        timestamp: float | None = None,
    ) -> None: ...

    async def flush(self) -> None: ...


def default_store() -> str:
    """`rocksdb://` when rocksdict is installed (a persistent table store), else `memory://`."""
    return "rocksdb://" if importlib.util.find_spec("rocksdict") is not None else "memory://"


@dataclass
class StreamApp:
    """A configured matcher app: the Faust app, its agent and table, and the matcher state."""

    app: faust.App
    topics: Topics
    agent: Any
    table: Any
    rules: Mapping[str, Rule]
    matcher: Matcher
    sink_ref: list[Sink]
    latency_ms: dict[int, Counter[int]] = field(default_factory=dict)
    dead_lettered: int = 0
    rekey_agent: Any = None
    # Decides a batch of input records (aiokafka ConsumerRecords): what the worker's consumer calls.
    process_batch: Any = None


class FaustSink:
    """Sends through the Faust app's producer (flushed by Faust before each offset commit). Each
    record's delivery is watched (`BatchApp.deliveries`): `flush` raises DeliveryFailed when one
    was refused, and the consumer does not commit past it."""

    def __init__(self, app: BatchApp) -> None:
        self.app = app

    async def send(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        headers: Headers,
        *,
        partition: int | None = None,
        timestamp: float | None = None,
    ) -> None:
        # Straight to the producer (the bytes are final; Faust's Topic.send would only wrap them).
        # partition None: the producer's default partitioner (murmur2 of the key, as aiokafka's
        # and the Java client's), so a record re-keyed here lands where its payment's events do.
        delivered = await self.app.producer.send(topic, key, value, partition, timestamp, headers)
        # Typed by Faust as an awaitable: it is aiokafka's delivery future.
        self.app.deliveries.watch(cast("asyncio.Future[Any]", delivered))

    async def flush(self) -> None:
        await self.app.producer.flush()
        self.app.deliveries.check()


_DELETED: Any = object()


class TableBuffer:
    """The matcher's store: the Faust table `payments`, written back once per key per batch.

    Within a batch, reads see the batch's own writes; `flush` then writes each changed key once to
    the table's local store and sends one changelog record for it, to the changelog partition of
    the input partition the key belongs to (the partition of the record being applied when it was
    written: `partition`). So the changelog carries one record per payment per batch, not one per
    input record, and a restarted worker recovers exactly the states of its input partitions."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self.partition = 0
        self._dirty: dict[str, tuple[Any, int]] = {}

    def get(self, key: str, /) -> Any:
        hit = self._dirty.get(key)
        if hit is not None:
            return None if hit[0] is _DELETED else hit[0]
        return self.table.data.get(key)

    def __setitem__(self, key: str, value: Any) -> None:
        self._dirty[key] = (value, self.partition)

    def __delitem__(self, key: str) -> None:
        self._dirty[key] = (_DELETED, self.partition)

    def items(self) -> list[tuple[str, Any]]:
        merged = dict(self.table.data.items())
        for key, (value, _) in self._dirty.items():
            if value is _DELETED:
                merged.pop(key, None)
            else:
                merged[key] = value
        return list(merged.items())

    def take(self) -> list[tuple[str, Any, int]]:
        """The keys written since the last call: (key, value or None when deleted, partition), the
        partitions' watermark records after every payment state.

        A changelog partition is durable in prefixes (a crash may keep the first record batches of a
        write-back and lose the rest), and a watermark record carries the batch's last watermark while
        it sits where it was first written in the batch. Written before some payment state of the same
        batch, it could survive a crash without that state: a restarted worker would then hold a
        watermark past a window whose on-time callback its table does not know of yet, and close that
        window (a MISSING_CALLBACK the undisturbed run never raises). Written last, a durable watermark
        implies every state of its batch is durable too."""
        states: list[tuple[str, Any, int]] = []
        watermarks: list[tuple[str, Any, int]] = []
        for k, (v, p) in self._dirty.items():
            (watermarks if k.startswith(WATERMARK_KEY_PREFIX) else states).append((k, None if v is _DELETED else v, p))
        self._dirty.clear()
        states.extend(watermarks)
        return states


def _persisted(table: Any, topic: str, partition: int) -> Any:
    """A done-callback recording the table's changelog offset in its store (what a persistent
    store reads at start to know how far its local copy goes; a no-op in memory). A batch's
    metadata names its first offset: recovery may re-read a few records it has, never skip one."""
    tp = TP(topic, partition)

    def done(fut: Any) -> None:
        if not fut.cancelled() and fut.exception() is None:
            table.data.set_persisted_offset(tp, fut.result().offset)

    return done


def encode_state(value: Any) -> bytes:
    """A table key or value as its changelog bytes: JSON, as the table's own `json` key and value
    serializers write them and read them back in recovery."""
    return encode_compact(value)


def create_app(
    topics: Topics,
    bootstrap: str | Sequence[str] = "127.0.0.1:19092",
    *,
    store: str | None = None,
    datadir: Path | None = None,
    rules: Mapping[str, Rule] | None = None,
    sink: Sink | None = None,
    replication: int = 1,
    commit_interval_s: float = 3.0,
    session_timeout_s: float = SESSION_TIMEOUT_S_DEFAULT,
    retention_ms: int = RETENTION_MS_DEFAULT,
) -> StreamApp:
    """Build the matcher app for one namespace. `bootstrap` is host:port (or several);
    `store` a Faust store URL (default: `default_store()`); `sink` None sends to Kafka;
    `retention_ms` how long (event time) a decided payment's state stays in the table."""
    servers = [bootstrap] if isinstance(bootstrap, str) else list(bootstrap)
    app = BatchApp(
        topics.app_id,
        broker=[f"kafka://{s}" for s in ",".join(servers).split(",")],
        store=store or default_store(),
        datadir=str(datadir or REPO_ROOT / ".cache" / "stream" / (topics.namespace or "default")),
        topic_partitions=INPUT_PARTITIONS,
        topic_replication_factor=replication,
        table_standby_replicas=0,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=commit_interval_s,
        # Records per fetched batch handed to the matcher (see pipelines.stream.batching).
        broker_max_poll_records=BATCH_RECORDS_MAX,
        producer_acks=-1,
        # Without a linger every changelog write and output is its own produce request (one round
        # trip each, ~500 records/s); 10 ms lets the producer batch them.
        producer_linger=0.01,
        # aiokafka holds one open batch per partition and makes the next send wait until a full one
        # is delivered; a table write per record (~1 KiB of state) fills the 16 KiB default in a few
        # records, so that wait, not the broker, paced the worker.
        producer_max_batch_size=PRODUCER_BATCH_BYTES,
        web_enabled=False,
        processing_guarantee="at_least_once",
        # A worker killed with SIGKILL leaves the group only when its session times out; until
        # then a restarted worker waits in the rebalance for the dead member's partitions.
        broker_session_timeout=session_timeout_s,
        broker_heartbeat_interval=max(1.0, session_timeout_s / 4),
        broker_rebalance_timeout=max(session_timeout_s * 2, 20.0),
    )
    inputs = app.topic(
        topics.payment_events,
        topics.channel_callbacks,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=INPUT_PARTITIONS,
    )
    # Values are JSON objects (the payment's facts and what was emitted for it); keys payment_id.
    table = app.Table("payments", default=None, partitions=INPUT_PARTITIONS, key_type=str)
    rules = dict(rules if rules is not None else load_rules())
    buffer = TableBuffer(table)
    matcher = Matcher(rules, buffer, retention_ms=retention_ms)
    sink_ref: list[Sink] = [sink or FaustSink(app)]
    holder = StreamApp(app, topics, None, table, rules, matcher, sink_ref)
    to_kafka = sink is None
    break_topic, task_topic, dlq_topic = topics.breaks, topics.repair_tasks, topics.stream_dlq
    callback_topic = topics.channel_callbacks

    def dead_letter(record: Any, reason: str, detail: str) -> tuple[str, bytes, bytes, Headers]:
        holder.dead_lettered += 1
        key = record.key or b""
        value = record.value or b""
        body = {
            "reason": reason,
            "detail": detail,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "key": key.decode("utf-8", "replace"),
            "value": value.decode("utf-8", "replace"),
        }
        trace = dict(record.headers or []).get(TRACE_HEADER, b"").decode("utf-8", "replace")
        headers = headers_for(trace or None, **{DLQ_REASON_HEADER: reason})
        log.warning("dead-lettered %s/%s@%s: %s: %s", record.topic, record.partition, record.offset, reason, detail)
        # The DLQ record of an input record is keyed by where that record was, so a redelivery of
        # the same bad record is a byte-identical copy.
        return dlq_topic, f"{record.topic}/{record.partition}/{record.offset}".encode(), encode_json(body), headers

    def output(o: Output) -> tuple[str, bytes, bytes, Headers]:
        topic = break_topic if o.topic_kind == "break" else task_topic
        return topic, o.key.encode(), encode_json(o.value), headers_for(o.trace_id)

    async def write_table() -> None:
        """One changelog record per key written in the batch, to its input partition's shard."""
        data = table.data
        written = buffer.take()
        matcher.stats["table_writes"] = matcher.stats.get("table_writes", 0) + len(written)
        # Faust's memory store drops, once each rebalance's recovery is done, the keys of the
        # partitions this worker no longer has, but it learns a key's partition only from the
        # changelog records it recovers (`_key_partition`): a state written here stayed in memory
        # after its partition moved to another worker (read by nothing, and more of them at every
        # rebalance). So the write-back tells it too. Other stores have no such map.
        partition_of: dict[str, int] | None = getattr(data, "_key_partition", None)
        if partition_of is not None:
            for key, value, partition in written:
                if value is None:
                    partition_of.pop(key, None)
                else:
                    partition_of[key] = partition
        if not to_kafka:
            # Unit tests (no producer running): Faust's own buffered changelog send.
            for key, value, partition in written:
                if value is None:
                    data.pop(key, None)
                else:
                    data[key] = value
                table.send_changelog(partition, key, value, value_serializer="raw" if value is None else None)
            return
        # Straight to the producer as one record batch per changelog partition, not through
        # Faust's send buffer (whose flush gives up after 0.1 s) nor one send (and one future)
        # per record: a commit flushes the producer first, so no offset is committed before the
        # changelog records of its effects are on the broker.
        changelog = table.changelog_topic.get_topic_name()
        producer = cast(Any, app.producer)._ensure_producer()  # the aiokafka producer
        deliveries = cast(BatchApp, app).deliveries
        batches: dict[int, Any] = {}
        for key, value, partition in written:
            if value is None:
                data.pop(key, None)
                encoded = None
            else:
                data[key] = value
                encoded = encode_state(value)
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = producer.create_batch()
            if batch.append(key=encode_state(key), value=encoded, timestamp=None) is None:
                # Full: send it and start the next one for this partition.
                deliveries.watch(await producer.send_batch(batch, changelog, partition=partition))
                batch = batches[partition] = producer.create_batch()
                batch.append(key=encode_state(key), value=encoded, timestamp=None)
        for partition, batch in batches.items():
            fut = await producer.send_batch(batch, changelog, partition=partition)
            fut.add_done_callback(_persisted(table, changelog, partition))
            deliveries.watch(fut)

    pending: list[tuple[str, bytes, bytes, Headers]] = []
    stamps: dict[int, list[int]] = {}

    async def drain() -> None:
        """Send the decided outputs and count the decision latency of the records behind them."""
        send = sink_ref[0].send
        for topic, key, value, headers in pending:
            await send(topic, key, value, headers)
        pending.clear()
        now_ms = int(time.time() * 1000)
        for partition, ts in stamps.items():
            hist = holder.latency_ms.setdefault(partition, Counter())
            for t in ts:
                hist[min(max(0, now_ms - t), LATENCY_HIST_MAX_MS)] += 1
        stamps.clear()

    async def progress(partition: int, stream: str, tick: Tick) -> None:
        # Every effect decided so far is on the broker before the marker that says so.
        await drain()
        await sink_ref[0].flush()
        hist = holder.latency_ms.pop(partition, Counter())
        record = {
            "partition": partition,
            "stream": stream,
            "at": iso(tick.at),
            "watermark": iso(from_ms(holder.matcher.watermark(partition)))
            if holder.matcher.watermark(partition) > 0
            else None,
            "wall_ms": int(time.time() * 1000),
            "stats": dict(holder.matcher.stats, dead_lettered=holder.dead_lettered),
            "latency_ms": {str(k): v for k, v in sorted(hist.items())},
        }
        await sink_ref[0].send(topics.stream_progress, f"{partition}".encode(), encode_json(record), [])
        await sink_ref[0].flush()

    async def process(records: Sequence[Any]) -> None:
        """Decide a batch of input records (aiokafka `ConsumerRecord`s, timestamps in ms, in offset
        order per partition); send their effects; write each changed payment state once."""
        apply = matcher.apply
        matcher.stats["batches"] = matcher.stats.get("batches", 0) + 1
        ticks: list[tuple[int, Literal["e", "c"], Tick]] = []
        for record in records:
            partition = record.partition
            buffer.partition = partition
            is_callback = record.topic == callback_topic
            src: str | None = None
            try:
                if is_callback:
                    raw_src = dict(record.headers or []).get(SOURCE_HEADER)
                    src = parse_source(raw_src) if raw_src is not None else None
                    decoded: Any = decode_channel_callback(record.value or b"")
                else:
                    decoded = decode_payment_event(record.value or b"")
                if not isinstance(decoded, Tick):
                    key = record.key
                    if key is None or key.decode("utf-8", "replace") != decoded.payment_id:
                        shown = (key or b"").decode("utf-8", "replace")
                        raise DecodeError(
                            "not_keyed_by_payment_id",
                            f"key {shown!r} is not the record's payment_id {decoded.payment_id!r}: the input "
                            "topics are co-partitioned by payment_id",
                        )
                    if decoded.channel not in rules:
                        raise DecodeError("unknown_channel", f"no rule file for channel {decoded.channel!r}")
            except DecodeError as exc:
                pending.append(dead_letter(record, exc.reason, exc.detail))
                continue
            if isinstance(decoded, Tick):
                stream: Literal["e", "c"] = "c" if is_callback else "e"
                pending.extend(output(o) for o in matcher.tick(stream, decoded.at, partition, src))
                ticks.append((partition, stream, decoded))
                continue
            try:
                outputs = apply(decoded, partition, src)
            except TooLate as exc:
                pending.append(dead_letter(record, "after_retention", str(exc)))
                continue
            if outputs:
                pending.extend(output(o) for o in outputs)
            if record.timestamp:
                ts = stamps.get(partition)
                if ts is None:
                    ts = stamps[partition] = []
                ts.append(record.timestamp)
        await write_table()
        await drain()
        # A progress marker says every effect up to its tick is on the broker, the table's changelog
        # included: it goes out only after the batch's write-back (flushed by `progress`). Sent
        # before it, a crash between the two left a marker ahead of the table, and a reader trusting
        # the marker (the failure tests' `wait_for_ticks`, then `table_states`) saw payment states
        # without the decisions of the tick's batch.
        for partition, stream, tick in ticks:
            await progress(partition, stream, tick)

    # The worker's consumer hands both input topics to `process` in fetched batches; the agent
    # below is the same path one record at a time (unit tests under `agent.test_context()`).
    app.register_batch_handler([topics.payment_events, topics.channel_callbacks], process)
    holder.process_batch = process

    def _forget(tps: Any) -> None:
        names = {topics.payment_events, topics.channel_callbacks}
        partitions = {tp.partition for tp in tps if tp.topic in names}
        holder.matcher.forget(partitions)

    # A partition that moves away and back (a rebalance: a worker added, removed or restarted) may
    # have been decided elsewhere meanwhile: what this process derived for it is stale.
    @app.on_partitions_revoked.connect
    async def on_revoked(_sender: Any, /, *args: Any, signal: Any, **_kw: Any) -> None:
        _forget(args[0])

    @app.on_partitions_assigned.connect
    async def on_assigned(_sender: Any, /, *args: Any, signal: Any, **_kw: Any) -> None:
        _forget(args[0])

    @app.agent(inputs, name="match")
    async def match(stream: Any) -> Any:
        async for event in stream.events():
            m = event.message
            ts_ms = int(m.timestamp * 1000) if m.timestamp else None
            record = ConsumerRecord(
                m.topic, m.partition, m.offset, ts_ms, m.timestamp_type, m.key, m.value, None, 0, 0,
                tuple(m.headers or ()),
            )  # fmt: skip
            await process([record])
            yield m.offset

    async def dead_letter_now(message: Any, reason: str, detail: str) -> None:
        await sink_ref[0].send(*dead_letter(message, reason, detail))

    raw_callbacks = app.topic(
        topics.channel_callbacks_raw,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=INPUT_PARTITIONS,
    )

    async def rekey(message: Any, timestamp_s: float | None) -> Any:
        """One raw callback to `channel_callbacks` under its payment_id, the same value bytes and
        the raw partition as its source; a tick to every partition. Redelivery sends identical
        records (the matcher deduplicates callback deliveries by callback_id and received_at).
        `timestamp_s`: the raw record's timestamp in seconds, kept on the re-keyed record."""
        try:
            out = rekey_callback(message.value or b"")
        except DecodeError as exc:
            await dead_letter_now(message, exc.reason, exc.detail)
            return None
        src = f"{message.partition}/{INPUT_PARTITIONS}"
        if isinstance(out, Tick):
            for partition in range(INPUT_PARTITIONS):
                await sink_ref[0].send(
                    topics.channel_callbacks, TICK_KEY, message.value, [(SOURCE_HEADER, src.encode())],
                    partition=partition,
                )  # fmt: skip
            return out
        key, trace = out
        # The channel's delivery time stays the record's timestamp, so the matcher's latency
        # figure covers the re-key hop too.
        await sink_ref[0].send(
            topics.channel_callbacks, key, message.value, headers_for(trace or None, **{SOURCE_HEADER: src}),
            timestamp=timestamp_s or None,
        )  # fmt: skip
        return key

    async def rekey_batch(records: Sequence[Any]) -> None:
        """The worker's path: a fetched batch of raw callbacks (aiokafka records, timestamps in
        ms), re-keyed in offset order per raw partition (the matcher's per-source watermark relies
        on that order)."""
        for record in records:
            await rekey(record, record.timestamp / 1000 if record.timestamp else None)

    # Faust's per-event path capped the re-key hop near 5k records/s, as it did the matcher.
    app.register_batch_handler([topics.channel_callbacks_raw], rekey_batch)

    @app.agent(raw_callbacks, name="rekey")
    async def rekey_agent(stream: Any) -> Any:
        async for event in stream.events():
            yield await rekey(event.message, event.message.timestamp)

    holder.agent = match
    holder.rekey_agent = rekey_agent
    return holder


def run_worker(
    topics: Topics,
    bootstrap: str,
    *,
    store: str | None = None,
    datadir: Path | None = None,
    loglevel: str = "warning",
    session_timeout_s: float = SESSION_TIMEOUT_S_DEFAULT,
    retention_ms: int = RETENTION_MS_DEFAULT,
) -> None:
    """Run one matcher worker in this process until SIGTERM or SIGINT (Faust's worker loop).
    Topics are created first where missing (inputs co-partitioned, see connectors.kafka.admin)."""
    from connectors.kafka.admin import ensure_topics

    ensure_topics(bootstrap, topics)
    holder = create_app(
        topics, bootstrap, store=store, datadir=datadir, session_timeout_s=session_timeout_s, retention_ms=retention_ms
    )
    # Faust pauses the stream whenever more than 100 table writes wait in its producer buffer and
    # then drains them one 0.1 s-bounded wait at a time; every record here writes the table once,
    # so that bound, not Kafka, capped the worker near 1,000 records/s.
    holder.app.producer.buffer.max_messages = PRODUCER_BUFFER_MAX
    # The table holds hundreds of thousands of small dicts and lists: with the default thresholds
    # the cyclic collector walked them all again and again (10-15% of a replayed day's time).
    # What exists after start-up is frozen out of collection; young collections run less often.
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 100)
    worker = faust.Worker(holder.app, loglevel=loglevel, redirect_stdouts=False)
    # Faust's start-up spinner hooks the root logger at DEBUG level for good, so that every
    # `log.debug` of aiokafka (one per produced record) built a LogRecord: about a tenth of the
    # worker's time. Without it the root logger stays at `loglevel`.
    worker.spinner = None
    worker.execute_from_commandline()
