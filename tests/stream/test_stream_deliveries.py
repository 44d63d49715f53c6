"""`Deliveries`: what the worker checks after a flush before it may commit (see batching.py)."""

from __future__ import annotations

import asyncio

import pytest

from pipelines.stream.batching import Deliveries, DeliveryFailed


def test_delivered_futures_are_forgotten_and_the_unsettled_kept() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        deliveries = Deliveries()
        done, waiting = loop.create_future(), loop.create_future()
        done.set_result("metadata")
        deliveries.watch(done)
        deliveries.watch(waiting)
        deliveries.check()
        assert len(deliveries) == 1  # sent after the flush began: judged at the next check
        waiting.set_result("metadata")
        deliveries.check()
        assert len(deliveries) == 0

    asyncio.run(scenario())


@pytest.mark.parametrize("how", ["exception", "cancelled"])
def test_a_record_the_producer_gave_up_on_raises(how: str) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        deliveries = Deliveries()
        ok, lost, later = loop.create_future(), loop.create_future(), loop.create_future()
        ok.set_result("metadata")
        if how == "exception":
            lost.set_exception(OSError("MessageSizeTooLargeError"))
        else:
            lost.cancel()
        for future in (ok, lost, later):
            deliveries.watch(future)
        with pytest.raises(DeliveryFailed, match="not delivered"):
            deliveries.check()
        assert len(deliveries) == 1  # only the unsettled one is left
        later.set_result("metadata")
        with pytest.raises(DeliveryFailed):  # and a worker that lost a record never commits again
            deliveries.check()

    asyncio.run(scenario())
