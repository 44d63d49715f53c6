"""Stop and start Kafka under load while the matcher worker runs (SPEC section 9, broker restart):
every input record the broker acknowledged is decided (its fact is in its payment's state, as the
table's changelog holds it) or in the dead-letter topic, and the final breaks equal the truth.

The publisher keeps every record until the broker has acknowledged it and sends again what failed
while the broker was down (a record written twice is one fact to the matcher). The test runs its
own broker on other ports (connectors/kafka/broker.py with PAYRECON_KAFKA_PORT and
PAYRECON_KAFKA_CONTROLLER_PORT), so that stopping it pulls no broker from under other tests."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from stream_runs import DAY, open_break_keys, truth, wait_for_members

from connectors.kafka import broker
from connectors.kafka.admin import delete_namespace, ensure_topics
from connectors.kafka.codecs import decode_channel_callback, decode_payment_event, headers_for
from connectors.kafka.topics import Topics
from pipelines.records import ChannelCallback, PaymentEvent
from pipelines.simulate.generator import simulate
from pipelines.stream.collect import collect, table_states, wait_for_ticks
from pipelines.stream.demo import WorkerProcess
from pipelines.stream.matcher import delivery_key
from pipelines.stream.replay import StreamRecord, events_path, input_topic, read_events, send_ticks

pytestmark = [pytest.mark.slow, pytest.mark.kafka]

PORT, CONTROLLER_PORT = 19192, 19193
# The day's 24 h of event time published in about 20 s; the broker is down for a while in between.
SPEED = 86_400 / 20
CHUNK = 100


@pytest.fixture
def own_broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if broker.external_bootstrap() is not None:
        pytest.skip("KAFKA_BOOTSTRAP_SERVERS names an external cluster: this test must restart its broker")
    monkeypatch.setenv("PAYRECON_KAFKA_PORT", str(PORT))
    monkeypatch.setenv("PAYRECON_KAFKA_CONTROLLER_PORT", str(CONTROLLER_PORT))
    handle = broker.start()
    try:
        yield handle.bootstrap
    finally:
        broker.stop()


class Publisher:
    """Publishes the day in arrival order (paced at SPEED), chunk by chunk, until the broker has
    acknowledged every record; `acked` holds (record, topic, partition, offset) as acknowledged."""

    def __init__(self, bootstrap: str, topics: Topics, records: list[StreamRecord]) -> None:
        self.bootstrap, self.topics, self.records = bootstrap, topics, records
        self.acked: list[tuple[StreamRecord, str, int, int]] = []
        self.failed_sends = 0
        self.done = False

    async def _send_chunk(self, chunk: list[StreamRecord]) -> None:
        todo = list(chunk)
        while todo:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True, linger_ms=5,
                request_timeout_ms=5000, retry_backoff_ms=250,
            )  # fmt: skip
            try:
                await producer.start()
                futures = []
                for rec in todo:
                    topic, key = input_topic(self.topics, rec, prekeyed=True)
                    futures.append(await producer.send(topic, rec.value, key=key, headers=headers_for(rec.trace_id)))
                results = await asyncio.gather(*futures, return_exceptions=True)
            except Exception:  # the broker is down: send the chunk again
                results = [None] * len(todo)
            finally:
                await producer.stop()
            retry = []
            for rec, res in zip(todo, results, strict=True):
                if res is None or isinstance(res, BaseException):
                    retry.append(rec)
                else:
                    self.acked.append((rec, res.topic, res.partition, res.offset))
            self.failed_sends += len(retry)
            todo = retry
            if todo:
                await asyncio.sleep(0.5)

    async def run(self) -> None:
        started = time.monotonic()
        first = self.records[0].at
        for i in range(0, len(self.records), CHUNK):
            chunk = self.records[i : i + CHUNK]
            delay = started + (chunk[0].at - first).total_seconds() / SPEED - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await self._send_chunk(chunk)
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        await producer.start()
        try:
            await send_ticks(producer, self.topics, self.tick_at(), prekeyed=True)
        finally:
            await producer.stop()
        self.done = True

    def tick_at(self) -> datetime:
        """End of the business day (or the last event time, if later): the end ticks' time."""
        return max(datetime.combine(DAY + timedelta(days=1), datetime.min.time(), tzinfo=UTC), self.records[-1].at)


def test_every_acknowledged_record_is_decided_across_a_broker_restart(tmp_path: Path, own_broker: str):
    bootstrap = own_broker
    simulate(start=DAY, days=1, payments=2000, seed=7, out_root=tmp_path)
    records = list(read_events(events_path(tmp_path, DAY)))
    topics = Topics(f"t-brst-{uuid.uuid4().hex[:6]}")
    ensure_topics(bootstrap, topics)
    worker = WorkerProcess(topics, bootstrap)
    publisher = Publisher(bootstrap, topics, records)
    thread = threading.Thread(target=lambda: asyncio.run(publisher.run()))
    try:
        worker.start()
        wait_for_members(bootstrap, topics, 1)
        thread.start()
        time.sleep(5.0)
        acked_at_stop = len(publisher.acked)
        assert broker.stop(), "the test's broker was not running"
        time.sleep(3.0)
        broker.start()
        thread.join(timeout=240)
        assert publisher.done, "the publisher did not get every record acknowledged"
        asyncio.run(wait_for_ticks(bootstrap, topics, publisher.tick_at(), timeout_s=240, alive=worker.alive))
        collected = asyncio.run(collect(bootstrap, topics))
        states = asyncio.run(table_states(bootstrap, topics))
    finally:
        worker.stop()
        worker.cleanup()
        if broker.is_healthy(bootstrap):
            asyncio.run(delete_namespace(bootstrap, topics))

    context = f"{acked_at_stop} of {len(records)} records acknowledged when the broker stopped"
    # The broker went down in the middle of the day's publishing (else nothing was tested).
    assert 0 < acked_at_stop < len(records), context
    dead_lettered = {(d["topic"], d["partition"], d["offset"]) for d in collected.dlq}
    undecided = []
    for rec, topic, partition, offset in publisher.acked:
        state = states.get(rec.key.decode(), {})
        if rec.topic_kind == "payment_event":
            event = decode_payment_event(rec.value)
            assert isinstance(event, PaymentEvent)
            decided = event.event_id in state.get("ev", [])
        else:
            callback = decode_channel_callback(rec.value)
            assert isinstance(callback, ChannelCallback)
            decided = delivery_key(callback) in {c["k"] for c in state.get("cb", [])}
        if not decided and (topic, partition, offset) not in dead_lettered:
            undecided.append((topic, partition, offset))
    assert undecided == [], f"{context}: acknowledged but neither decided nor dead-lettered: {undecided[:5]}"
    assert {r.value for r, *_ in publisher.acked} == {r.value for r in records}, context
    assert open_break_keys(collected) == truth(tmp_path), context
    differing = {k: v for k, v in collected.task_copies.items() if len(v) != 1}
    assert differing == {}, f"{context}: task ids with differing copies {sorted(differing)[:5]}"
