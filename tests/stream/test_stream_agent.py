"""The Faust agent under `agent.test_context()`: decoding, the table, the dead-letter path (no Kafka)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from stream_helpers import at, callback, event

from connectors.kafka.codecs import encode_tick
from connectors.kafka.topics import Topics
from pipelines.records import PaymentStatus, to_dict
from pipelines.stream.app import create_app

TOPICS = Topics("unit")


class ListSink:
    """Collects output records in order (the unit-test stand-in for the Kafka producer)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, dict[str, Any], dict[str, bytes]]] = []
        self.flushes = 0

    async def send(self, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        self.records.append((topic, key, json.loads(value), dict(headers)))

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


async def _put(agent: Any, topic: str, key: bytes, value: bytes, partition: int) -> None:
    # agent.put() names the message after the agent's topic, which is two topics here; this is
    # put() with the topic named, through the same channel and the same wait for processing.
    channel = agent.stream().channel
    message = agent.to_message(key, value, partition=partition, offset=agent.sent_offset)
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
