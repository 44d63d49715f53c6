"""Batch consumption for the matcher worker, inside Faust's own consumer (same group, same commits).

Faust delivers a fetched record to an agent one at a time: the consumer's drain loop wraps every
record in a `Message`, races it against the flow-suspend event (two tasks per record), the
conductor decodes it into an `Event` on the agent's queue, the `Stream` takes it off, sets it as
the current event, acks it and calls the sensors. Measured on this machine that path alone, with
an agent that only counts, peaks at 4,300-5,200 events/s: a fifth of the stream target.

`BatchConsumer` is Faust's aiokafka consumer with one change in its drain loop: the records of the
topics registered with `register_batch_handler` (the matcher's two input topics, and the raw
callbacks the re-key step moves under their payment_id) are handed, as one fetched batch, to a
handler that processes them all and enqueues every effect, and are then acked in bulk. Everything
else is Faust's: the same consumer group, rebalance protocol and assignment; other topics (the
table changelog during recovery) go through the per-record conductor path as before; and offsets
are committed by Faust's commit loop, which flushes the producer first, so an offset is committed
only after the effects of its record (outputs and table changelog records) are on the broker.

A flush only waits: a record the producer gave up on (the broker refused it, or its retries ran
out) is a failed future nobody awaits, and Faust commits past it, so its effect is lost for good.
`Deliveries` keeps the futures of everything sent; after a flush (the sink's, and the commit's)
the first failure raises `DeliveryFailed`, and the consumer crashes the worker instead of
committing: the records behind the lost effect are delivered again to the next worker.

Rebalances: a batch in flight is registered as an unacked message, so Faust's revocation handler
(`wait_empty`) waits for it to finish and commits its offsets before the partitions move; a batch
fetched before a rebalance that completed meanwhile (a new generation) is dropped and re-read from
the committed offsets. Two things Faust and aiokafka do are corrected here so that this holds:
- Faust forgets the acknowledged offsets of the revoked partitions before its revocation handler
  commits, so everything processed since the last periodic commit was read again by the next
  owner; `on_partitions_revoked` commits them first.
- "Re-read from the committed offsets" (`perform_seek`, after every rebalance and whenever
  fetched records are dropped) does nothing to a partition with no committed offset yet:
  aiokafka's `seek_to_committed` leaves its fetch position where the dropped records ended, so
  they were never read again (a replayed day lost on-time callbacks when a worker joined in its
  first seconds). `seek_to_committed` seeks such a partition to its beginning.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from time import monotonic
from typing import Any, cast

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from mode.utils.futures import notify

BatchHandler = Callable[[Sequence[Any]], Awaitable[None]]

# How long the broker may hold a fetch that finds no new data (Faust hard-codes 1,500 ms). aiokafka
# keeps one fetch in flight per broker, covering only the partitions whose fetched records are used
# up: while it waits on partitions that have gone quiet, new records of the others wait too, so one
# quiet partition stalled the whole worker for up to 1.5 s (p99 latency ~1.8 s in some runs).
FETCH_MAX_WAIT_MS = 50


class DeliveryFailed(RuntimeError):
    """A record handed to the producer was not delivered; the offsets behind it must not commit."""


class Deliveries:
    """The delivery futures of records handed to the producer and not yet checked."""

    def __init__(self) -> None:
        self._futures: list[asyncio.Future[Any]] = []
        self.failure: BaseException | None = None

    def watch(self, future: asyncio.Future[Any]) -> None:
        self._futures.append(future)

    def __len__(self) -> int:
        return len(self._futures)

    def check(self) -> None:
        """Forget the delivered futures; raise DeliveryFailed on the first that failed, and on
        every check after it (a worker that lost a record never commits again, not even on its
        way down). Futures not yet done (sent after the flush began) wait for the next check."""
        waiting: list[asyncio.Future[Any]] = []
        for future in self._futures:
            if not future.done():
                waiting.append(future)
            elif self.failure is None and (future.cancelled() or future.exception() is not None):
                self.failure = asyncio.CancelledError() if future.cancelled() else future.exception()
        self._futures = waiting
        if self.failure is not None:
            raise DeliveryFailed(f"a record was not delivered to Kafka: {self.failure!r}") from self.failure


class _InFlight:
    """Stands in Faust's set of unacked messages for a batch being processed (see module doc)."""

    __slots__ = ("__weakref__", "acked", "refcount")

    def __init__(self) -> None:
        self.acked = False
        self.refcount = 1

    def __repr__(self) -> str:
        return "<batch in flight>"


class BatchConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, with a short fetch wait (`FETCH_MAX_WAIT_MS`)."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class BatchConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer whose drain loop hands the records of batch topics to a handler
    in fetched batches (see the module docstring)."""

    def _new_consumer_thread(self) -> BatchConsumerThread:
        return BatchConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        # Faust drops the acknowledged offsets of `revoked` first thing, and only then waits for the
        # batch in flight and commits: commit what is acknowledged while Faust still knows it.
        try:
            await self.commit()
        except Exception as exc:  # the next owner reads those records again: at least once
            self.log.warning("commit before revocation failed: %r", exc)
        await super().on_partitions_revoked(revoked)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed = await super().seek_to_committed()
        handlers: dict[str, BatchHandler] = getattr(self.app, "batch_handlers", {})
        # None or 0: nothing processed yet in the group. aiokafka does not move such a partition.
        uncommitted = [tp for tp, offset in committed.items() if not offset and tp.topic in handlers]
        if uncommitted:
            await self._thread.seek_to_beginning(*uncommitted)
        return committed

    async def _commit(self, offsets: Any) -> bool:
        # Faust flushed the producer just before this: every effect of the offsets is settled.
        deliveries: Deliveries | None = getattr(self.app, "deliveries", None)
        if deliveries is not None:
            try:
                deliveries.check()
            except DeliveryFailed as exc:
                self.log.error("not committing %r: %s", dict(offsets), exc)
                await self.crash(exc)
                return False
        return cast(bool, await super()._commit(offsets))

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - exercised on Kafka
        app = cast(Any, self.app)
        callback = self.callback
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        read_offset = self._read_offset
        sleep = asyncio.sleep
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                records, active = await self._wait_next_records(1.0)
                await sleep(0)
                if not records or self.should_stop:
                    continue
                if not self.flow_active:
                    # As Faust's getmany: records fetched while the flow stopped are re-read.
                    try:
                        await self.perform_seek()
                    except Exception as exc:
                        self.log.warning("exception performing seek when flow not active %r", exc)
                    continue
                generation = app.consumer_generation_id
                handlers: dict[str, BatchHandler] = getattr(app, "batch_handlers", {})
                batches: dict[TP, list[Any]] = {}
                for tp, tp_records in records.items():
                    if active is not None and tp not in active and tp not in self._buffered_partitions:
                        continue
                    r_offset = read_offset[tp]
                    if r_offset is not None:
                        tp_records = [r for r in tp_records if r.offset >= r_offset]
                    if not tp_records:
                        continue
                    if tp.topic in handlers:
                        batches[tp] = tp_records
                        continue
                    # Faust's own per-record path for every other topic.
                    for record in tp_records:
                        await self.wait_first(callback(self._to_message(tp, record)), self.suspend_flow.wait())
                        read_offset[tp] = record.offset
                        if app.consumer_generation_id != generation:
                            break
                if batches:
                    await self._process_batches(batches, handlers, generation)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise

    async def _process_batches(
        self, batches: dict[TP, list[Any]], handlers: dict[str, BatchHandler], generation: int
    ) -> None:
        app = cast(Any, self.app)
        # Blocked while a rebalance is in progress (Faust's conductor waits on the same two).
        await app.flow_control.acquire()
        await app.producer.buffer.wait_until_ebb()
        if app.consumer_generation_id != generation or not self.flow_active:
            return  # fetched before a rebalance: re-read from the committed offsets
        assignment = self.assignment()
        batches = {tp: recs for tp, recs in batches.items() if tp in assignment}
        if not batches:
            return
        in_flight = _InFlight()
        self._unacked_messages.add(in_flight)  # type: ignore[arg-type]
        try:
            by_handler: dict[BatchHandler, list[Any]] = {}
            for tp, recs in batches.items():
                by_handler.setdefault(handlers[tp.topic], []).extend(recs)
            for handler, recs in by_handler.items():
                await handler(recs)
            if app.consumer_generation_id == generation:
                now = monotonic()
                inbound = app.monitor.stream_inbound_time if app.monitor is not None else {}
                for tp, recs in batches.items():
                    self._ack_batch(tp, recs[0].offset, recs[-1].offset)
                    inbound[tp] = now
        finally:
            in_flight.acked = True
            self._unacked_messages.discard(in_flight)  # type: ignore[arg-type]
            notify(self._waiting_for_ack)

    def _ack_batch(self, tp: TP, first: int, last: int) -> None:
        """Mark offsets up to `last` as processed, as Faust's `ack` does one by one; offsets
        skipped by the broker (a gap since the last batch) count as processed, as Faust's gaps do."""
        r_offset = self._read_offset[tp]
        start = r_offset + 1 if r_offset is not None and first - r_offset > 1 else first
        committed = self._committed_offset[tp]
        if committed is not None:
            start = max(start, committed)
        if start <= last:
            offsets = range(start, last + 1)
            index = self._acked_index[tp]
            fresh = [o for o in offsets if o not in index] if index else list(offsets)
            index.update(fresh)
            self._acked[tp].extend(fresh)
            self._n_acked += len(fresh)
        self._read_offset[tp] = last


class BatchTransport(faust_aiokafka.Transport):
    Consumer = BatchConsumer


class BatchApp(faust.App):
    """A Faust app whose consumer hands registered topics to batch handlers (`BatchConsumer`), and
    refuses to commit past a record it failed to deliver (`deliveries`)."""

    batch_handlers: dict[str, BatchHandler]
    deliveries: Deliveries

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deliveries = Deliveries()

    def _new_transport(self) -> Any:
        return BatchTransport(self.conf.broker_consumer, self)

    def register_batch_handler(self, topics: Sequence[str], handler: BatchHandler) -> None:
        """Records of `topics` go to `handler` as lists of aiokafka `ConsumerRecord`s (timestamps in
        ms), in offset order per partition, instead of to the agents subscribed to them."""
        if not hasattr(self, "batch_handlers"):
            self.batch_handlers = {}
        for topic in topics:
            self.batch_handlers[topic] = handler
