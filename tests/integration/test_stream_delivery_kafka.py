"""A record the broker refuses is never committed past: the worker stops, and the records behind
the lost effect are delivered again once the broker takes them (real Kafka)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from connectors.kafka.admin import committed_offsets
from connectors.kafka.codecs import TICK_KEY, encode_tick
from connectors.kafka.topics import INPUT_PARTITIONS, Topics
from pipelines.stream.collect import collect, wait_for_ticks
from pipelines.stream.demo import WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.kafka]

TICK_AT = datetime(2026, 11, 2, 11, 0, tzinfo=UTC)
# Below Kafka's record batch overhead (61 bytes): the broker refuses every batch sent to the topic.
REFUSING_MAX_BYTES = 64
KAFKA_DEFAULT_MAX_BYTES = 1_048_588
WORKER_GIVES_UP_S = 120.0


async def _max_message_bytes(bootstrap: str, topic: str, value: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": str(value)})
        await admin.alter_configs([resource])
    finally:
        await admin.close()


async def _produce(bootstrap: str, topics: Topics) -> None:
    """One undecodable payment event (its effect is a dead letter) on partition 0, then a tick
    on every input partition, so that the worker's next progress marker flushes the producer."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topics.payment_events, b"{not json", key=b"P-lost", partition=0)
        for topic in (topics.payment_events, topics.channel_callbacks):
            for p in range(INPUT_PARTITIONS):
                await producer.send_and_wait(topic, encode_tick(TICK_AT), key=TICK_KEY, partition=p)
    finally:
        await producer.stop()


def test_a_dead_letter_the_broker_refuses_stops_the_worker_uncommitted_and_comes_out_later(
    kafka_bootstrap: str, kafka_topics: Topics
) -> None:
    asyncio.run(_max_message_bytes(kafka_bootstrap, kafka_topics.stream_dlq, REFUSING_MAX_BYTES))
    worker = WorkerProcess(kafka_topics, kafka_bootstrap)
    worker.start()
    try:
        asyncio.run(_produce(kafka_bootstrap, kafka_topics))
        deadline = time.monotonic() + WORKER_GIVES_UP_S
        while worker.alive() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not worker.alive(), "the worker went on after the broker refused its dead letter"
        # Nothing past the bad record (offset 0 of partition 0) was committed, and nothing came out.
        committed = asyncio.run(committed_offsets(kafka_bootstrap, kafka_topics.app_id, kafka_topics.payment_events))
        assert committed.get(0, -1) <= 0, committed
        assert asyncio.run(collect(kafka_bootstrap, kafka_topics)).dlq == []

        # Once the broker takes the topic's records again, a new worker re-reads the record and
        # its dead letter comes out (exactly one: the first was never written).
        asyncio.run(_max_message_bytes(kafka_bootstrap, kafka_topics.stream_dlq, KAFKA_DEFAULT_MAX_BYTES))
        worker.start()
        asyncio.run(wait_for_ticks(kafka_bootstrap, kafka_topics, TICK_AT, timeout_s=120, alive=worker.alive))
        collected = asyncio.run(collect(kafka_bootstrap, kafka_topics))
        assert [(d["key"], d["reason"]) for d in collected.dlq] == [("P-lost", "not_json")]
    finally:
        worker.stop()
        worker.cleanup()
