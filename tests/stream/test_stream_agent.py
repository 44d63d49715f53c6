"""The Faust agent under `agent.test_context()`: decoding, the table, the dead-letter path (no Kafka)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiokafka.structs import ConsumerRecord
from faust.serializers import codecs
from stream_helpers import at, callback, event

from connectors.kafka.codecs import encode_tick
from connectors.kafka.topics import Topics
from pipelines.records import PaymentStatus, to_dict
from pipelines.stream.app import TableBuffer, create_app, encode_state
from pipelines.stream.matcher import WATERMARK_KEY_PREFIX

TOPICS = Topics("unit")


class ListSink:
    """Collects output records in order (the unit-test stand-in for the Kafka producer)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, dict[str, Any], dict[str, bytes]]] = []
        # (topic, key, value bytes, headers, partition) of every record, as sent.
        self.raw: list[tuple[str, bytes, bytes, list[tuple[str, bytes]], int | None]] = []
        self.flushes = 0

    async def send(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        headers: list[tuple[str, bytes]],
        *,
        partition: int | None = None,
        timestamp: float | None = None,
    ) -> None:
        self.records.append((topic, key, json.loads(value), dict(headers)))
        self.raw.append((topic, key, value, headers, partition))

    async def flush(self) -> None:
        self.flushes += 1

    def on(self, topic: str) -> list[tuple[str, bytes, dict[str, Any], dict[str, bytes]]]:
        return [r for r in self.records if r[0] == topic]


def _value(record: Any) -> bytes:
    d = to_dict(record)
    for k in ("occurred_at", "received_at", "paid_at"):
        if d.get(k):
            d[k] = d[k].replace("+00:00", "Z")
    return json.dumps(d).encode()


async def _put(
    agent: Any, topic: str, key: bytes, value: bytes, partition: int, headers: list[tuple[str, bytes]] | None = None
) -> None:
    # agent.put() names the message after the agent's topic, which is two topics here; this is
    # put() with the topic named, through the same channel and the same wait for processing.
    channel = agent.stream().channel
    message = agent.to_message(key, value, partition=partition, offset=agent.sent_offset, headers=headers or [])
    message.topic = topic
    await channel.put(await channel.decode(message))
    agent.sent_offset += 1
    async with agent.new_value_processed:
        await agent.new_value_processed.wait()


def _run(feed: list[tuple[str, bytes, bytes]]) -> tuple[ListSink, Any]:
    sink = ListSink()
    holder = create_app(TOPICS, store="memory://", sink=sink)

    async def main() -> None:
        async with holder.agent.test_context() as agent:
            for topic, key, value in feed:
                await _put(agent, topic, key, value, partition=1)

    asyncio.run(main())
    return sink, holder


def test_agent_decides_through_the_table_and_sends_breaks_tasks_and_progress():
    p = "P1"
    feed = [
        (TOPICS.payment_events, p.encode(), _value(event(p, PaymentStatus.PROCESSING, 0))),
        (TOPICS.payment_events, b"__tick__", encode_tick(at(400))),
        (TOPICS.channel_callbacks, b"__tick__", encode_tick(at(400))),
    ]
    sink, holder = _run(feed)
    (brk,) = sink.on(TOPICS.breaks)
    assert brk[2]["kind"] == "MISSING_CALLBACK" and brk[2]["status"] == "PROVISIONAL"
    assert brk[3]["trace_id"].decode() == brk[2]["trace_id"] != ""
    (task,) = sink.on(TOPICS.repair_tasks)
    assert task[1].decode() == task[2]["task_id"] and task[2]["break_id"] == brk[2]["break_id"]
    progress = sink.on(TOPICS.stream_progress)
    assert [r[2]["stream"] for r in progress] == ["e", "c"] and progress[-1][2]["partition"] == 1
    # The break went out before the progress record that says the window is decided.
    assert sink.records.index(brk) < sink.records.index(progress[-1])
    assert holder.table.get(p)["out"][brk[2]["break_id"]]["status"] == "PROVISIONAL"


def test_a_late_callback_closes_the_break_on_the_break_topic():
    p = "P2"
    feed = [
        (TOPICS.payment_events, p.encode(), _value(event(p, PaymentStatus.PROCESSING, 0))),
        (TOPICS.payment_events, b"__tick__", encode_tick(at(400))),
        (TOPICS.channel_callbacks, b"__tick__", encode_tick(at(400))),
        (TOPICS.channel_callbacks, p.encode(), _value(callback(p, 450))),
    ]
    sink, _ = _run(feed)
    statuses = [(r[1], r[2]["status"]) for r in sink.on(TOPICS.breaks)]
    assert len(statuses) == 2 and statuses[0][0] == statuses[1][0]
    assert [s for _, s in statuses] == ["PROVISIONAL", "CLOSED"]


def test_poison_records_go_to_the_dead_letter_topic_with_the_reason_and_the_agent_goes_on():
    good = _value(event("P3", PaymentStatus.PROCESSING, 0))
    float_amount = json.loads(good)
    float_amount["amount_minor"] = 100.5
    feed = [
        (TOPICS.payment_events, b"P9", b"\xff\xfe not json"),
        (TOPICS.payment_events, b"P3", json.dumps(float_amount).encode()),
        (TOPICS.payment_events, b"wrong-key", good),
        (TOPICS.channel_callbacks, b"P3", _value(callback("P3", 5, channel="nosuchpay"))),
        (TOPICS.payment_events, b"P3", good),
        (TOPICS.payment_events, b"__tick__", encode_tick(at(400))),
        (TOPICS.channel_callbacks, b"__tick__", encode_tick(at(400))),
    ]
    sink, holder = _run(feed)
    dlq = sink.on(TOPICS.stream_dlq)
    assert [r[2]["reason"] for r in dlq] == ["not_json", "bad_amount", "not_keyed_by_payment_id", "unknown_channel"]
    assert [r[3]["payrecon-dlq-reason"].decode() for r in dlq] == [r[2]["reason"] for r in dlq]
    assert dlq[1][2]["offset"] == 1 and dlq[1][2]["topic"] == TOPICS.payment_events
    # ...and the good record after them was decided.
    assert [r[2]["kind"] for r in sink.on(TOPICS.breaks)] == ["MISSING_CALLBACK"]
    assert holder.dead_lettered == 4


def _rekey(feed: list[tuple[bytes, bytes, int]]) -> ListSink:
    """Raw callback records (channel key, value, raw partition) through the re-key agent."""
    sink = ListSink()
    holder = create_app(TOPICS, store="memory://", sink=sink)

    async def main() -> None:
        async with holder.rekey_agent.test_context() as agent:
            for key, value, partition in feed:
                await _put(agent, TOPICS.channel_callbacks_raw, key, value, partition=partition)

    asyncio.run(main())
    return sink


def test_rekey_moves_a_channel_keyed_callback_under_its_payment_id_with_the_same_bytes():
    cb = _value(callback("P1", 5, txn="T9"))
    sink = _rekey([(b"alipay/T9", cb, 2), (b"alipay/T9", cb, 2)])
    # A redelivery of the raw record sends an identical copy (deduplicated by the matcher).
    assert sink.raw[0] == sink.raw[1]
    topic, key, value, headers, partition = sink.raw[0]
    assert (topic, key, value, partition) == (TOPICS.channel_callbacks, b"P1", cb, None)
    assert dict(headers) == {"trace_id": json.loads(cb)["trace_id"].encode(), "payrecon-src": b"2/4"}


def test_rekey_forwards_a_tick_to_every_partition_and_dead_letters_what_it_cannot_key():
    no_pid = json.loads(_value(callback("P1", 5)))
    del no_pid["payment_id"]
    empty_pid = dict(no_pid, payment_id="")
    sink = _rekey(
        [
            (b"alipay/T1", b"{broken", 0),
            (b"alipay/T1", json.dumps(no_pid).encode(), 0),
            (b"alipay/T1", json.dumps(empty_pid).encode(), 1),
            (b"__tick__", encode_tick(at(400)), 3),
        ]
    )
    dlq = sink.on(TOPICS.stream_dlq)
    assert [(r[2]["reason"], r[2]["detail"], r[2]["topic"]) for r in dlq] == [
        ("not_json", dlq[0][2]["detail"], TOPICS.channel_callbacks_raw),
        ("missing_field", "payment_id", TOPICS.channel_callbacks_raw),
        ("empty_field", "payment_id", TOPICS.channel_callbacks_raw),
    ]
    ticks = [r for r in sink.raw if r[0] == TOPICS.channel_callbacks]
    assert [(r[1], r[4], dict(r[3])) for r in ticks] == [(b"__tick__", p, {"payrecon-src": b"3/4"}) for p in range(4)]


def test_interleaved_raw_sources_do_not_close_a_window_early():
    """Source 1 is ahead of source 0 on the re-keyed partition: P1's callback (source 0, inside its
    window) comes after P2's later one (source 1). One callback watermark for both would close P1's
    window before its callback and raise a false MISSING_CALLBACK; one per source does not."""
    raw = [
        (b"alipay/T2", _value(callback("P2", 460, txn="T2")), 1),
        (b"alipay/T1", _value(callback("P1", 100, txn="T1")), 0),
        *[(b"__tick__", encode_tick(at(1000)), src) for src in range(4)],
    ]
    rekeyed = [r for r in _rekey(raw).raw if r[0] == TOPICS.channel_callbacks and r[4] in (None, 1)]
    sink = ListSink()
    holder = create_app(TOPICS, store="memory://", sink=sink)
    events = [
        (p, _value(event(p, s, t))) for p, s, t in
        [("P1", PaymentStatus.PROCESSING, 0), ("P2", PaymentStatus.PROCESSING, 450),
         ("P1", PaymentStatus.SUCCEEDED, 101), ("P2", PaymentStatus.SUCCEEDED, 461)]
    ]  # fmt: skip

    async def main() -> None:
        async with holder.agent.test_context() as agent:
            for pid, value in events:
                await _put(agent, TOPICS.payment_events, pid.encode(), value, partition=1)
            await _put(agent, TOPICS.payment_events, b"__tick__", encode_tick(at(1000)), partition=1)
            for topic, key, value, headers, _ in rekeyed:
                await _put(agent, topic, key, value, partition=1, headers=headers)

    asyncio.run(main())
    assert sink.on(TOPICS.stream_dlq) == []
    assert sink.on(TOPICS.breaks) == []
    assert holder.matcher.watermark(1) == int(at(1000).timestamp() * 1000)


def _record(topic: str, key: bytes, value: bytes, partition: int, offset: int) -> ConsumerRecord:
    return ConsumerRecord(topic, partition, offset, 1_700_000_000_000, 0, key, value, None, len(key), len(value), ())


def test_a_batch_writes_each_changed_payment_once_to_the_table():
    """The worker's batch path: three records of one payment in one batch are one table write
    (one changelog record), and the decisions equal those of the same records one at a time."""
    p = "P7"
    feed = [
        (TOPICS.payment_events, p.encode(), _value(event(p, PaymentStatus.PROCESSING, 0))),
        (TOPICS.channel_callbacks, p.encode(), _value(callback(p, 5, amount=9_000))),
        (TOPICS.payment_events, p.encode(), _value(event(p, PaymentStatus.SUCCEEDED, 6, txn="T1"))),
    ]
    sink = ListSink()
    holder = create_app(TOPICS, store="memory://", sink=sink)
    records = [_record(topic, key, value, 2, offset) for offset, (topic, key, value) in enumerate(feed)]
    asyncio.run(holder.process_batch(records))
    # The payment's state and the partition's first watermark: one write each.
    assert holder.matcher.stats["table_writes"] == 2
    assert holder.table.data[p]["p"] == 2 and len(holder.table.data[p]["ev"]) == 2

    one_by_one, _ = _run(feed)
    assert [r[1:3] for r in sink.records] == [r[1:3] for r in one_by_one.records]
    assert [r[2]["kind"] for r in sink.on(TOPICS.breaks)] == ["PARTIAL_PAYMENT"]


def test_a_batch_writes_the_watermark_records_after_the_payment_states():
    """A changelog partition survives a crash as a prefix of its record batches: the watermark
    record, carrying the batch's last watermark, must come after every payment state of its batch,
    or a restarted worker could hold a watermark past a window whose on-time callback it lacks."""
    buffer = TableBuffer(type("T", (), {"data": {}})())
    buffer.partition = 3
    buffer[f"{WATERMARK_KEY_PREFIX}3"] = {"e": 1}
    buffer["P1"] = {"pid": "P1"}
    buffer.partition = 0
    buffer[f"{WATERMARK_KEY_PREFIX}0"] = {"e": 2}
    buffer["P2"] = {"pid": "P2"}
    del buffer["P3"]
    buffer.partition = 3
    buffer[f"{WATERMARK_KEY_PREFIX}3"] = {"e": 5}  # a later watermark of partition 3, same batch
    taken = buffer.take()
    assert [k for k, _, _ in taken] == ["P1", "P2", "P3", f"{WATERMARK_KEY_PREFIX}3", f"{WATERMARK_KEY_PREFIX}0"]
    assert taken[2][1] is None and taken[3][1:] == ({"e": 5}, 3) and buffer.take() == []


def test_a_progress_marker_follows_the_table_write_of_its_batch():
    """A progress marker tells readers the tick's decisions are done: when it is sent, the table
    (and so its changelog, flushed with it) already holds them."""
    p = "P9"
    sink = ListSink()
    holder = create_app(TOPICS, store="memory://", sink=sink)
    seen: list[Any] = []
    send = sink.send

    async def watching_send(topic: str, key: bytes, value: bytes, headers: Any, **kw: Any) -> None:
        if topic == TOPICS.stream_progress:
            seen.append(holder.table.data.get(p))
        await send(topic, key, value, headers, **kw)

    sink.send = watching_send  # type: ignore[method-assign]
    feed = [
        (TOPICS.payment_events, p.encode(), _value(event(p, PaymentStatus.PROCESSING, 0))),
        (TOPICS.payment_events, b"__tick__", encode_tick(at(400))),
        (TOPICS.channel_callbacks, b"__tick__", encode_tick(at(400))),
    ]
    records = [_record(topic, key, value, 1, offset) for offset, (topic, key, value) in enumerate(feed)]
    asyncio.run(holder.process_batch(records))
    (brk,) = sink.on(TOPICS.breaks)
    assert len(seen) == 2 and all(s is not None and brk[2]["break_id"] in s["out"] for s in seen)


def test_changelog_bytes_read_back_through_the_table_serializers():
    """The batch path writes changelog records itself: recovery must decode them with the
    table's own key and value serializers (json), or a restarted worker cannot rebuild its state."""
    holder = create_app(TOPICS, store="memory://", sink=ListSink())
    table = holder.table
    for key in ("P1", "\x00wm:3", "P-é"):
        assert codecs.loads(table.key_serializer, encode_state(key)) == key
    state = {"pid": "P1", "p": 0, "ev": ["e1"], "cb": [], "out": {}, "tasks": {}, "last": None, "amt": 10}
    assert codecs.loads(table.value_serializer, encode_state(state)) == state
    assert encode_state("P1") == codecs.dumps(table.key_serializer, "P1")
