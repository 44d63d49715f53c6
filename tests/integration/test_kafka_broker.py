"""The local broker script and the client protocol versions the stream matcher relies on."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from connectors.kafka import broker

# Seconds, but they need the real broker: `make test-fast` (no Kafka) leaves them out.
pytestmark = [pytest.mark.slow, pytest.mark.kafka]


def test_ensure_broker_is_idempotent_and_healthy(kafka_bootstrap: str):
    assert broker.ensure_broker() == kafka_bootstrap
    assert broker.is_healthy(kafka_bootstrap)
    assert "up" in broker.status() or "answers" in broker.status()


def test_cli_reports_usage_errors():
    assert broker.main(["sideways"]) == 2


def test_aiokafka_speaks_kafka_4(kafka_bootstrap: str):
    """Kafka 4.0 removed old protocol versions (KIP-896); everything Faust needs must still work:
    create topics, idempotent produce with headers, a consumer group, offset commit and fetch."""
    topic = f"t-compat-{uuid.uuid4().hex[:8]}"

    async def run() -> tuple[int, int | None, list]:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic(topic, 2, 1)])
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        for i in range(10):
            await producer.send_and_wait(topic, b"v%d" % i, key=b"k%d" % i, headers=[("trace_id", b"t")])
        await producer.stop()
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=kafka_bootstrap, group_id=f"g-{topic}", auto_offset_reset="earliest",
            enable_auto_commit=False,
        )  # fmt: skip
        await consumer.start()
        got: list = []
        while len(got) < 10:
            for messages in (await consumer.getmany(timeout_ms=2000)).values():
                got.extend(messages)
        await consumer.commit()
        committed = await consumer.committed(TopicPartition(topic, got[0].partition))
        await consumer.stop()
        await admin.delete_topics([topic])
        await admin.close()
        return len(got), committed, got[0].headers

    n, committed, headers = asyncio.run(run())
    assert n == 10 and committed is not None and committed > 0
    assert list(headers) == [("trace_id", b"t")]
