"""Topic names of the stream side, in one place, and the namespace that prefixes them.

A namespace is a prefix put before every topic and consumer group: the default (empty) is the real
pipeline; `--shadow NAME` (SPEC section 1, shadow load tests) and every Kafka test use their own,
so that a test never reads another test's records and a load test never touches real topics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Payment events and callbacks are co-partitioned by payment_id: the same partition count on both
# and the same key, so that one worker sees every record of a payment and its table shard.
INPUT_PARTITIONS = 4

_NAMESPACE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass(frozen=True, slots=True)
class Topics:
    """The topic names of one namespace ("" for the real pipeline)."""

    namespace: str = ""

    def __post_init__(self) -> None:
        if self.namespace and not _NAMESPACE.match(self.namespace):
            raise ValueError(f"namespace {self.namespace!r}: use lower-case letters, digits, '-' and '_'")

    def _name(self, base: str) -> str:
        return f"{self.namespace}.{base}" if self.namespace else base

    @property
    def payment_events(self) -> str:
        """PaymentEvent records, key payment_id (SPEC section 4)."""
        return self._name("payrecon.payment-events")

    @property
    def channel_callbacks(self) -> str:
        """ChannelCallback records re-keyed by payment_id (co-partitioned with payment events)."""
        return self._name("payrecon.channel-callbacks")

    @property
    def channel_callbacks_raw(self) -> str:
        """ChannelCallback records as channels deliver them, keyed by `channel/channel_txn_id`; the
        worker's re-key agent moves each to `channel_callbacks` under its payment_id."""
        return self._name("payrecon.channel-callbacks.raw")

    @property
    def breaks(self) -> str:
        """Break records, key break_id; a later record with the same id supersedes (CLOSED closes)."""
        return self._name("payrecon.breaks")

    @property
    def repair_tasks(self) -> str:
        """RepairTask records, key task_id (the payment core's idempotency key)."""
        return self._name("payrecon.repair-tasks")

    @property
    def repair_results(self) -> str:
        return self._name("payrecon.repair-results")

    @property
    def repair_tasks_dlq(self) -> str:
        return self._name("payrecon.repair-tasks.dlq")

    @property
    def stream_dlq(self) -> str:
        """Input records the stream matcher could not decode, with the reason in the value."""
        return self._name("payrecon.stream.dlq")

    @property
    def stream_progress(self) -> str:
        """One record per watermark tick processed: how far each input partition has been decided."""
        return self._name("payrecon.stream.progress")

    @property
    def app_id(self) -> str:
        """The Faust app id: the consumer group and the prefix of the table changelog topics."""
        return self._name("payrecon-stream")

    def all_outputs(self) -> tuple[str, ...]:
        return (self.breaks, self.repair_tasks, self.stream_dlq, self.stream_progress)
