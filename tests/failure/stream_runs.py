"""Shared by the stream failure tests: an undisturbed run of a simulated day to compare against,
the truth of a day, and waiting for the matcher's consumer group to settle."""

from __future__ import annotations

import asyncio
import csv
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

from aiokafka.errors import KafkaError

from connectors.kafka.admin import delete_namespace, ensure_topics, group_members
from connectors.kafka.topics import Topics
from pipelines.stream.collect import Collected, table_states
from pipelines.stream.demo import WorkerProcess, replay_and_collect

DAY = date(2026, 11, 2)


def undisturbed(bootstrap: str, root: Path, day: date = DAY) -> tuple[Collected, dict[str, Any]]:
    """One worker, the day replayed as fast as the broker takes it, nothing else happening: its
    outputs and its table's final payment states (`table_states`)."""
    topics = Topics(f"t-calm-{uuid.uuid4().hex[:6]}")
    ensure_topics(bootstrap, topics)
    worker = WorkerProcess(topics, bootstrap)
    worker.start()
    try:
        _, collected = asyncio.run(replay_and_collect(bootstrap, topics, root, day, worker))
        states = asyncio.run(table_states(bootstrap, topics))
    finally:
        worker.stop()
        worker.cleanup()
        asyncio.run(delete_namespace(bootstrap, topics))
    return collected, states


def truth(root: Path, day: date = DAY) -> set[tuple[str, str, str, str]]:
    with open(root / day.isoformat() / "truth" / "stream_breaks.csv", encoding="utf-8") as fh:
        return {(r["kind"], r["channel"], r["payment_id"], r["channel_txn_id"]) for r in csv.DictReader(fh)}


def open_break_keys(run: Collected) -> set[tuple[str, str, str, str]]:
    return {
        (b["kind"], b["channel"], b["payment_id"] or "", b["channel_txn_id"] or "") for b in run.open_breaks().values()
    }


def _facts(state: Any) -> Any:
    """A payment state with its fact lists in a canonical order: callbacks re-keyed from several
    raw partitions reach the matcher in an order that differs from run to run (decisions sort
    them), so only the set of facts, not their arrival order, is compared."""
    if not isinstance(state, dict):
        return state
    return {
        **state,
        "ev": sorted(state.get("ev", [])),
        "cb": sorted(state.get("cb", []), key=lambda c: c["k"]),
        "hist": sorted(state.get("hist", [])),
    }


def differing_states(got: dict[str, Any], want: dict[str, Any]) -> list[str]:
    """Payment ids whose final table state differs (or exists on one side only): a fact lost or
    doubled in the table, or an emitted record it does not know of, even where no break changed."""
    return sorted(k for k in set(got) | set(want) if _facts(got.get(k)) != _facts(want.get(k)))


def wait_for_members(bootstrap: str, topics: Topics, members: int, timeout_s: float = 60.0) -> float:
    """Wait until the matcher's consumer group is Stable with `members` members; return the
    seconds waited. Raises AssertionError (naming the last state seen) after `timeout_s`."""
    started = time.monotonic()
    seen: tuple[str, int] = ("unknown", -1)
    while time.monotonic() - started < timeout_s:
        try:
            seen = asyncio.run(group_members(bootstrap, topics.app_id))
        except KafkaError as exc:  # e.g. no group coordinator yet on a fresh broker
            seen = (type(exc).__name__, -1)
        if seen == ("Stable", members):
            return time.monotonic() - started
        time.sleep(0.3)
    raise AssertionError(f"group {topics.app_id} not Stable with {members} members within {timeout_s} s: {seen}")
