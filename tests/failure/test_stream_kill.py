"""SIGKILL the matcher worker at random points while a day is replayed; the final breaks and tasks
must equal an undisturbed run's, with no duplicate task (SPEC section 9, invariants 2 and 5).

"No duplicate task" is checked as: the same set of task_ids as the undisturbed run, and every copy
of a task_id on the topic byte-identical (so the payment core, deduplicating on the task_id as
Idempotency-Key, applies each once). Redelivered copies of breaks are allowed, identical too."""

from __future__ import annotations

import asyncio
import csv
import random
import threading
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from stream_runs import differing_states, undisturbed, wait_for_members

from connectors.kafka.admin import delete_namespace, ensure_topics
from connectors.kafka.topics import Topics
from pipelines.simulate.generator import simulate
from pipelines.stream.collect import Collected, collect, table_states, wait_for_ticks
from pipelines.stream.demo import WorkerProcess
from pipelines.stream.replay import ReplayStats, publish_day

pytestmark = [pytest.mark.slow, pytest.mark.kafka]

DAY = date(2026, 11, 2)
KILLS = 3
# The day's 24 h of event time replayed in about 8 s, so that the kills land during the replay.
SPEED = 86_400 / 8


def _wait_for_more_breaks(bootstrap: str, topics: Topics, *, than: int, timeout_s: float = 30.0) -> None:
    """Until the break topic holds more than `than` records (a worker is deciding), or `timeout_s`
    (a worker with nothing left to decide: the precondition below judges whether a kill counted)."""
    deadline = time.monotonic() + timeout_s
    while asyncio.run(collect(bootstrap, topics)).break_records <= than and time.monotonic() < deadline:
        time.sleep(0.3)


def _with_kills(
    bootstrap: str, root: Path, rng: random.Random
) -> tuple[Collected, dict[str, Any], int, list[float], list[int]]:
    topics = Topics(f"t-kill-{uuid.uuid4().hex[:6]}")
    ensure_topics(bootstrap, topics)
    worker = WorkerProcess(topics, bootstrap)
    result: dict[str, ReplayStats] = {}
    replay = threading.Thread(
        target=lambda: result.setdefault("stats", asyncio.run(publish_day(bootstrap, topics, root, DAY, speed=SPEED)))
    )
    kills_at: list[float] = []
    records_at_kill: list[int] = []
    try:
        worker.start()
        # The replay starts once the worker has joined, so that its decisions are spread over the
        # replay's seconds: on a loaded machine the join took longer than the whole replay, and
        # the day was then decided in one burst that no kill could land inside.
        wait_for_members(bootstrap, topics, 1)
        started = time.monotonic()
        replay.start()
        for _ in range(KILLS):
            # Kill a worker only once it has decided something since it (re)started, then a
            # random moment later: a fixed delay landed before the group join on a loaded machine,
            # and a kill before the first decision tests nothing.
            _wait_for_more_breaks(bootstrap, topics, than=records_at_kill[-1] if records_at_kill else 0)
            time.sleep(rng.uniform(0.0, 1.5))
            kills_at.append(time.monotonic() - started)
            worker.kill()
            records_at_kill.append(asyncio.run(collect(bootstrap, topics)).break_records)
            worker.start()
        replay.join(timeout=120)
        assert "stats" in result, "the replay did not finish"
        asyncio.run(wait_for_ticks(bootstrap, topics, result["stats"].tick_at, timeout_s=300, alive=worker.alive))
        collected = asyncio.run(collect(bootstrap, topics))
        states = asyncio.run(table_states(bootstrap, topics))
    finally:
        worker.stop()
        worker.cleanup()
        asyncio.run(delete_namespace(bootstrap, topics))
    return collected, states, worker.starts, kills_at, records_at_kill


def test_sigkill_during_replay_changes_no_final_break_or_task(tmp_path: Path, kafka_bootstrap: str):
    simulate(start=DAY, days=1, payments=2000, seed=7, out_root=tmp_path)
    calm, calm_states = undisturbed(kafka_bootstrap, tmp_path)
    seed = random.randrange(1_000_000)
    killed, killed_states, starts, kills_at, records_at_kill = _with_kills(
        kafka_bootstrap, tmp_path, random.Random(seed)
    )
    context = f"seed={seed} kills at {[round(k, 1) for k in kills_at]} s with {records_at_kill} break records out"
    assert starts == KILLS + 1, context
    # At least one kill hit a worker in the middle of the day's decisions (else nothing was tested).
    assert any(0 < n < calm.break_records for n in records_at_kill), context

    with open(tmp_path / DAY.isoformat() / "truth" / "stream_breaks.csv", encoding="utf-8") as fh:
        truth = {(r["kind"], r["channel"], r["payment_id"], r["channel_txn_id"]) for r in csv.DictReader(fh)}
    for run in (calm, killed):
        got = {
            (b["kind"], b["channel"], b["payment_id"] or "", b["channel_txn_id"] or "")
            for b in run.open_breaks().values()
        }
        assert got == truth, context

    extra = {k: v for k, v in killed.breaks.items() if calm.breaks.get(k) != v}
    missing = {k: v for k, v in calm.breaks.items() if k not in killed.breaks}
    assert (extra, missing) == ({}, {}), (
        f"{context}: breaks differing from the undisturbed run {extra} / missing {missing}; their payments' "
        f"states killed {[killed_states.get(b['payment_id']) for b in extra.values()]} "
        f"calm {[calm_states.get(b['payment_id']) for b in extra.values()]}"
    )
    assert killed.tasks == calm.tasks, context
    duplicated = {k: v for k, v in killed.task_copies.items() if len(v) != 1}
    assert duplicated == {}, f"{context}: task ids with differing copies {sorted(duplicated)[:5]}"
    assert killed.dlq == [] and calm.dlq == []
    # The table's final payment states (facts and emitted records) are the undisturbed run's.
    assert differing_states(killed_states, calm_states)[:5] == [], context
