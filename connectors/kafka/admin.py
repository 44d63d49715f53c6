"""Topic administration for the stream side: create what is missing, refuse what is mis-partitioned."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from connectors.kafka.topics import INPUT_PARTITIONS, Topics


class TopicLayoutError(RuntimeError):
    """An existing topic whose partition count breaks co-partitioning; recreate it or use another namespace."""


async def _ensure(bootstrap: str, wanted: dict[str, int], replication: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(n, p, replication) for n, p in wanted.items() if n not in existing]
        if missing:
            # A racing worker or replay may create them meanwhile; the layout is checked below.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
        described = await admin.describe_topics([n for n in wanted if n in existing])
        if missing:
            await _wait_for_leaders(admin, [t.name for t in missing])
        for topic in described:
            name = topic["topic"]
            count = len(topic.get("partitions", []))
            if name in wanted and count and count != wanted[name]:
                raise TopicLayoutError(
                    f"topic {name} has {count} partitions, {wanted[name]} expected: payment events and "
                    "callbacks must be co-partitioned; delete the topic or use another --namespace"
                )
    finally:
        await admin.close()


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str], timeout_s: float = 10.0) -> None:
    # A topic is usable once each partition has a leader; writing before that only earns
    # NotLeaderForPartition retries (and log lines) from the producer.
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        described = await admin.describe_topics(names)
        if all(t.get("partitions") and all(p.get("leader", -1) >= 0 for p in t["partitions"]) for t in described):
            return
        await asyncio.sleep(0.1)


def ensure_topics(bootstrap: str, topics: Topics, *, replication: int = 1, extra: Iterable[str] = ()) -> None:
    """Create the namespace's input and output topics where missing (inputs with INPUT_PARTITIONS
    partitions); raise TopicLayoutError when an input topic exists with another partition count."""
    wanted = {
        topics.payment_events: INPUT_PARTITIONS,
        topics.channel_callbacks: INPUT_PARTITIONS,
        topics.channel_callbacks_raw: INPUT_PARTITIONS,
    }
    for name in (*topics.all_outputs(), *extra):
        wanted[name] = INPUT_PARTITIONS
    asyncio.run(_ensure(bootstrap, wanted, replication))


async def delete_namespace(bootstrap: str, topics: Topics) -> list[str]:
    """Delete every topic of a (test or shadow) namespace, changelogs included; return their names."""
    if not topics.namespace:
        raise ValueError("refusing to delete the real pipeline's topics (empty namespace)")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [n for n in await admin.list_topics() if n.startswith(topics.namespace + ".")]
        if names:
            await admin.delete_topics(names)
        return names
    finally:
        await admin.close()


async def group_members(bootstrap: str, group: str) -> tuple[str, int]:
    """The state of consumer group `group` ("Stable", "PreparingRebalance", "Empty", ...) and how
    many members it has now (what the rebalance tests wait for)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group])
        (described,) = response.to_object()["groups"]
        return str(described["state"]), len(described["members"])
    finally:
        await admin.close()


async def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The offsets consumer group `group` has committed on `topic`, by partition (a partition with
    nothing committed is absent): where a worker of the group resumes reading it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}
