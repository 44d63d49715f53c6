"""Read the matcher's outputs back from Kafka: the last record per break_id and per task_id.

This is what a downstream consumer of at-least-once topics does: fold by id, last record wins. It
also counts the copies of each id and whether they were all identical, which is how the failure
tests check that a restart duplicated nothing but byte-identical records.
"""

from __future__ import annotations

import asyncio
import csv
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from connectors.kafka.topics import INPUT_PARTITIONS, Topics
from pipelines.stream.matcher import WATERMARK_KEY_PREFIX

STREAM_BREAKS_COLUMNS = ("kind", "channel", "payment_id", "channel_txn_id", "status", "break_id", "action")
STREAM_TASKS_COLUMNS = (
    "task_id", "break_id", "action", "payment_id", "amount_minor", "currency", "requires_approval",
    "created_at", "trace_id", "reason",
)  # fmt: skip


class CollectTimeout(TimeoutError):
    """The worker did not report the end of the day in time."""


@dataclass
class Collected:
    """The folded output topics: last value per id, and every distinct copy seen per id."""

    breaks: dict[str, dict[str, Any]] = field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    task_copies: dict[str, set[bytes]] = field(default_factory=lambda: defaultdict(set))
    break_records: int = 0
    task_records: int = 0
    progress: list[dict[str, Any]] = field(default_factory=list)
    dlq: list[dict[str, Any]] = field(default_factory=list)

    def open_breaks(self) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.breaks.items() if v["status"] != "CLOSED"}


async def _read_to_end(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> list[Any]:
    """Every record of `tps` from the beginning up to their end offsets as of now."""
    ends = await consumer.end_offsets(tps)
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    out: list[Any] = []
    remaining = {tp for tp in tps if ends[tp] > 0}
    while remaining:
        batch = await consumer.getmany(*remaining, timeout_ms=1000)
        for tp, messages in batch.items():
            out.extend(messages)
            if messages and messages[-1].offset + 1 >= ends[tp]:
                remaining.discard(tp)
        for tp in list(remaining):
            if await consumer.position(tp) >= ends[tp]:
                remaining.discard(tp)
    return out


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    # The consumer's own metadata covers only topics it has used; ask the cluster for all of them.
    metadata = await consumer._client.fetch_all_metadata()
    parts = metadata.partitions_for_topic(topic) or set()
    return [TopicPartition(topic, p) for p in sorted(parts)]


async def wait_for_ticks(
    bootstrap: str, topics: Topics, tick_at: datetime, *, timeout_s: float, alive: Any = None
) -> list[dict[str, Any]]:
    """Wait until the worker's watermark has reached `tick_at` on every input partition (its
    progress records say so: the watermark is the oldest of the payment events and of every
    callback source, so every tick of every source was processed); `alive()` returning False aborts
    (the worker died)."""
    want = set(range(INPUT_PARTITIONS))
    target = tick_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    deadline = time.monotonic() + timeout_s
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    seen: list[dict[str, Any]] = []
    try:
        while True:
            tps = await _partitions(consumer, topics.stream_progress)
            if tps:
                seen = [json.loads(m.value) for m in await _read_to_end(consumer, tps)]
                done = {r["partition"] for r in seen if r["watermark"] and r["watermark"] >= target}
                if want <= done:
                    return seen
            if alive is not None and not alive():
                raise CollectTimeout("the stream worker exited before it reported the end of the day")
            if time.monotonic() > deadline:
                raise CollectTimeout(f"the stream worker did not report the end of the day within {timeout_s:.0f} s")
            await asyncio.sleep(0.5)
    finally:
        await consumer.stop()


async def collect(bootstrap: str, topics: Topics) -> Collected:
    """Fold the break, task, progress and dead-letter topics of `topics` as they are now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    out = Collected()
    try:
        for topic in (topics.breaks, topics.repair_tasks, topics.stream_progress, topics.stream_dlq):
            tps = await _partitions(consumer, topic)
            if not tps:
                continue
            for m in await _read_to_end(consumer, tps):
                value = json.loads(m.value)
                if topic == topics.breaks:
                    out.break_records += 1
                    out.breaks[m.key.decode()] = value
                elif topic == topics.repair_tasks:
                    out.task_records += 1
                    out.tasks[m.key.decode()] = value
                    out.task_copies[m.key.decode()].add(m.value)
                elif topic == topics.stream_progress:
                    out.progress.append(value)
                else:
                    out.dlq.append(value)
    finally:
        await consumer.stop()
    return out


def write_csvs(collected: Collected, out_dir: Path) -> Path:
    """Write `stream_breaks.csv` (breaks still open at the end: the ones the truth lists),
    `stream_breaks_all.csv` (every break, closed ones included) and `stream_tasks.csv` into
    `out_dir`; return the path of stream_breaks.csv."""
    out_dir.mkdir(parents=True, exist_ok=True)

    def rows(breaks: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(
            ({c: (b.get(c) or "") for c in STREAM_BREAKS_COLUMNS} for b in breaks.values()),
            key=lambda r: (r["kind"], r["channel"], r["payment_id"], r["channel_txn_id"]),
        )

    target = out_dir / "stream_breaks.csv"
    for path, breaks in ((target, collected.open_breaks()), (out_dir / "stream_breaks_all.csv", collected.breaks)):
        tmp = path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=STREAM_BREAKS_COLUMNS)
            writer.writeheader()
            writer.writerows(rows(breaks))
        tmp.replace(path)  # readers never see half a file
    tasks_path = out_dir / "stream_tasks.csv"
    tmp = tasks_path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=STREAM_TASKS_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(sorted(collected.tasks.values(), key=lambda t: t["task_id"]))
    tmp.replace(tasks_path)
    return target


async def table_states(bootstrap: str, topics: Topics, table: str = "payments") -> dict[str, Any]:
    """The matcher's table as its changelog holds it now: the last value per key, deleted keys and
    the per-partition watermark records left out (payment_id -> state). What a worker rebuilding
    the table from the changelog would have; the failure tests compare it across runs."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    states: dict[str, Any] = {}
    try:
        tps = await _partitions(consumer, f"{topics.app_id}-{table}-changelog")
        for m in await _read_to_end(consumer, tps) if tps else []:
            key = json.loads(m.key)
            if m.value is None:
                states.pop(key, None)
            elif not key.startswith(WATERMARK_KEY_PREFIX):
                states[key] = json.loads(m.value)
    finally:
        await consumer.stop()
    return states
