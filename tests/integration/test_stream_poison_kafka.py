"""Undecodable records on the real Kafka go to the dead-letter topic with the reason; the worker goes on."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer

from connectors.kafka.codecs import TICK_KEY, encode_tick
from connectors.kafka.topics import INPUT_PARTITIONS, Topics
from pipelines.records import PaymentStatus, event_id_for, trace_id_for
from pipelines.stream.collect import collect, wait_for_ticks
from pipelines.stream.demo import WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.kafka]

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def _event(payment_id: str, **override: object) -> bytes:
    value: dict[str, object] = {
        "event_id": event_id_for(payment_id, PaymentStatus.PROCESSING), "payment_id": payment_id, "biz_type": "PAY",
        "parent_payment_id": None, "merchant_id": "m", "account_id": "a", "channel": "alipay", "channel_txn_id": None,
        "amount_minor": 1234, "currency": "CNY", "fee_minor": None, "status": "PROCESSING",
        "occurred_at": "2026-11-02T10:00:00.000Z", "trace_id": trace_id_for(payment_id),
    }  # fmt: skip
    value.update(override)
    return json.dumps(value).encode()


async def _produce(bootstrap: str, topics: Topics, tick_at: datetime) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        bad = [
            (b"P-bad-1", b"{not json"),
            (b"P-bad-2", _event("P-bad-2", amount_minor=12.34)),
            (b"P-bad-3", _event("P-bad-3", currency="XXX")),
            (b"P-bad-4", _event("P-bad-4", occurred_at="2026-11-02 10:00:00")),
        ]
        for key, value in bad:
            await producer.send_and_wait(topics.payment_events, value, key=key)
        await producer.send_and_wait(topics.payment_events, _event("P-good"), key=b"P-good")
        for topic in (topics.payment_events, topics.channel_callbacks):
            for p in range(INPUT_PARTITIONS):
                await producer.send_and_wait(topic, encode_tick(tick_at), key=TICK_KEY, partition=p)
    finally:
        await producer.stop()


def test_poison_records_are_dead_lettered_and_the_worker_keeps_deciding(kafka_bootstrap: str, kafka_topics: Topics):
    tick_at = T0 + timedelta(hours=1)
    worker = WorkerProcess(kafka_topics, kafka_bootstrap)
    worker.start()
    try:
        asyncio.run(_produce(kafka_bootstrap, kafka_topics, tick_at))
        asyncio.run(wait_for_ticks(kafka_bootstrap, kafka_topics, tick_at, timeout_s=120, alive=worker.alive))
        collected = asyncio.run(collect(kafka_bootstrap, kafka_topics))
        assert worker.alive()
    finally:
        worker.stop()
        worker.cleanup()
    reasons = sorted((d["key"], d["reason"]) for d in collected.dlq)
    assert reasons == [
        ("P-bad-1", "not_json"),
        ("P-bad-2", "bad_amount"),
        ("P-bad-3", "bad_currency"),
        ("P-bad-4", "bad_timestamp"),
    ]
    assert all(d["topic"] == kafka_topics.payment_events and d["detail"] for d in collected.dlq)
    # The good record after the poison ones was decided: its callback window closed empty.
    assert [(b["kind"], b["payment_id"]) for b in collected.breaks.values()] == [("MISSING_CALLBACK", "P-good")]
