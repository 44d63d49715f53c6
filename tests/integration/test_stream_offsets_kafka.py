"""Where the matcher's consumer resumes after a rebalance (real Kafka, the app in this process).

Both were found behind a flaky rebalance test (a worker joining in the first seconds of a replayed
day): records the first worker had fetched but not yet processed were never read by anyone, and
their on-time callbacks became MISSING_CALLBACK breaks. Faust dropped the first worker's acks
before committing them, so nothing was committed; the new owner's records fetched while its flow
was still stopped were dropped to be "re-read from the committed offsets", and aiokafka does not
move a partition that has none."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from connectors.kafka.admin import committed_offsets
from connectors.kafka.codecs import encode_json
from connectors.kafka.topics import INPUT_PARTITIONS, Topics
from pipelines.records import BizType, PaymentEvent, PaymentStatus, event_id_for, to_dict, trace_id_for
from pipelines.stream.app import StreamApp, create_app

pytestmark = [pytest.mark.slow, pytest.mark.kafka]

# No periodic commit during a test: every commit seen is one the rebalance path made.
NO_PERIODIC_COMMIT_S = 3600.0
PER_PARTITION = 5
WAIT_S = 60.0


async def _produce_undecodable(bootstrap: str, topics: Topics) -> None:
    """PER_PARTITION undecodable payment events on every input partition: each one processed is one
    dead letter (`StreamApp.dead_lettered`), so processing is counted without any payment state."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for partition in range(INPUT_PARTITIONS):
            for _ in range(PER_PARTITION):
                await producer.send_and_wait(topics.payment_events, b"{not json", key=b"P-x", partition=partition)
    finally:
        await producer.stop()


async def _until(predicate: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not predicate():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


def _processing(payment_id: str) -> PaymentEvent:
    """A payment sent to the channel and not yet called back: a state the matcher keeps."""
    return PaymentEvent(
        event_id=event_id_for(payment_id, PaymentStatus.PROCESSING, 0),
        payment_id=payment_id,
        biz_type=BizType.PAY,
        parent_payment_id=None,
        merchant_id="m1",
        account_id="a1",
        channel="alipay",
        channel_txn_id=None,
        amount_minor=10_000,
        currency="CNY",
        fee_minor=None,
        status=PaymentStatus.PROCESSING,
        occurred_at=datetime(2026, 11, 2, 10, tzinfo=UTC),
        trace_id=trace_id_for(payment_id),
    )


def _app(topics: Topics, bootstrap: str, datadir: Path) -> StreamApp:
    return create_app(topics, bootstrap, store="memory://", datadir=datadir, commit_interval_s=NO_PERIODIC_COMMIT_S)


def test_a_partition_with_nothing_committed_is_read_again_from_its_beginning(
    kafka_bootstrap: str, kafka_topics: Topics, tmp_path: Path
) -> None:
    total = PER_PARTITION * INPUT_PARTITIONS

    async def scenario() -> None:
        await _produce_undecodable(kafka_bootstrap, kafka_topics)
        worker = _app(kafka_topics, kafka_bootstrap, tmp_path)
        await worker.app.start()
        try:
            # At least once: the group's first rebalance may already have read them twice.
            await _until(lambda: worker.dead_lettered >= total, "the records to be processed")
            assert await committed_offsets(kafka_bootstrap, kafka_topics.app_id, kafka_topics.payment_events) == {}
            # What the consumer does after every rebalance, and whenever it drops fetched records.
            # (Its position right after the seek is no proof: the fetcher may already have moved it.)
            before = worker.dead_lettered
            await worker.app.consumer.perform_seek()
            await _until(lambda: worker.dead_lettered >= before + total, "every record to be read again")
        finally:
            await worker.app.stop()

    asyncio.run(scenario())


def test_what_was_processed_is_committed_before_a_rebalance_moves_the_partitions(
    kafka_bootstrap: str, kafka_topics: Topics, tmp_path: Path
) -> None:
    total = PER_PARTITION * INPUT_PARTITIONS

    async def scenario() -> None:
        await _produce_undecodable(kafka_bootstrap, kafka_topics)
        first = _app(kafka_topics, kafka_bootstrap, tmp_path / "first")
        await first.app.start()
        second = _app(kafka_topics, kafka_bootstrap, tmp_path / "second")
        try:
            await _until(lambda: first.dead_lettered == total, "the first worker to process the records")
            await second.app.start()
            await _until(lambda: bool(second.app.consumer.assignment()), "the second worker's partitions")
            committed = await committed_offsets(kafka_bootstrap, kafka_topics.app_id, kafka_topics.payment_events)
            assert committed == dict.fromkeys(range(INPUT_PARTITIONS), PER_PARTITION)
            await asyncio.sleep(1.0)  # time for a wrong re-read to show
            # Neither worker reads again what the first one had processed.
            assert (first.dead_lettered, second.dead_lettered) == (total, 0)
        finally:
            await second.app.stop()
            await first.app.stop()

    asyncio.run(scenario())


def test_a_worker_keeps_no_payment_state_of_a_partition_that_moved_away(
    kafka_bootstrap: str, kafka_topics: Topics, tmp_path: Path
) -> None:
    """After a rebalance each worker's table holds the states of its own partitions only: the
    first worker let go of those the second took over (they were read by nothing and stayed for
    the life of the process), and the second recovered them from the changelog."""
    partition_of = {f"P-{p}-{i}": p for p in range(INPUT_PARTITIONS) for i in range(PER_PARTITION)}

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            for pid, partition in partition_of.items():
                value = encode_json(to_dict(_processing(pid)))
                await producer.send_and_wait(kafka_topics.payment_events, value, key=pid.encode(), partition=partition)
        finally:
            await producer.stop()

    def states(worker: StreamApp) -> dict[str, int]:
        return {k: partition_of[k] for k in list(worker.table.data.keys()) if k in partition_of}

    def own_only(worker: StreamApp) -> bool:
        mine = {tp.partition for tp in worker.app.consumer.assignment() if tp.topic == kafka_topics.payment_events}
        return bool(mine) and set(states(worker).values()) == mine

    bootstrap = kafka_bootstrap

    async def scenario() -> None:
        await produce()
        first = _app(kafka_topics, kafka_bootstrap, tmp_path / "first")
        await first.app.start()
        second = _app(kafka_topics, kafka_bootstrap, tmp_path / "second")
        try:
            await _until(lambda: len(states(first)) == len(partition_of), "the first worker's payment states")
            await second.app.start()
            await _until(lambda: own_only(first) and own_only(second), "each worker to hold its own states only")
            assert states(first).keys() | states(second).keys() == partition_of.keys()
            assert not states(first).keys() & states(second).keys()
        finally:
            await second.app.stop()
            await first.app.stop()

    asyncio.run(scenario())
