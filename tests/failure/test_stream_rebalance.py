"""Add a second matcher worker in the middle of a replayed day, later stop the first one (SIGTERM):
the input partitions move twice, and the final breaks and repair tasks must equal an undisturbed
run's, with one content per task_id (SPEC section 9, rebalance: invariants 2 and 4).

Each move makes the new owner rebuild the moved partitions' payment states from the table's
changelog and resume from the committed offsets, while the old owner finishes (or abandons) the
batch it was deciding: a lost changelog record, an offset committed ahead of its effects or a
stale in-memory watermark would show up as a missing, extra or different break or task, and
in the final payment states of the table (compared with the undisturbed run's)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from pathlib import Path

import pytest
from stream_runs import DAY, differing_states, open_break_keys, truth, undisturbed, wait_for_members

from connectors.kafka.admin import delete_namespace, ensure_topics
from connectors.kafka.topics import Topics
from pipelines.simulate.generator import simulate
from pipelines.stream.collect import collect, table_states, wait_for_ticks
from pipelines.stream.demo import WorkerProcess
from pipelines.stream.replay import ReplayStats, publish_day

pytestmark = [pytest.mark.slow, pytest.mark.kafka]

# The day's 24 h of event time replayed in about 24 s: a worker joins and one leaves meanwhile.
SPEED = 86_400 / 24


def test_adding_and_removing_a_worker_mid_replay_changes_no_final_break_or_task(tmp_path: Path, kafka_bootstrap: str):
    simulate(start=DAY, days=1, payments=2000, seed=7, out_root=tmp_path)
    calm, calm_states = undisturbed(kafka_bootstrap, tmp_path)

    topics = Topics(f"t-rebal-{uuid.uuid4().hex[:6]}")
    ensure_topics(kafka_bootstrap, topics)
    first = WorkerProcess(topics, kafka_bootstrap)
    second = WorkerProcess(topics, kafka_bootstrap, log_path=first.log_path.with_suffix(".second.log"))
    second.datadir = first.datadir.with_name(first.datadir.name + "-second")
    result: dict[str, ReplayStats] = {}
    replay = threading.Thread(
        target=lambda: result.setdefault(
            "stats", asyncio.run(publish_day(kafka_bootstrap, topics, tmp_path, DAY, speed=SPEED))
        )
    )
    breaks_at: dict[str, int] = {}
    try:
        first.start()
        wait_for_members(kafka_bootstrap, topics, 1)
        replay.start()
        time.sleep(2.0)
        second.start()
        wait_for_members(kafka_bootstrap, topics, 2)
        assert replay.is_alive(), "the replay ended before the second worker joined: nothing was tested"
        breaks_at["joined"] = asyncio.run(collect(kafka_bootstrap, topics)).break_records
        time.sleep(3.0)
        first.stop()  # SIGTERM: Faust leaves the group; its partitions move to the second worker
        wait_for_members(kafka_bootstrap, topics, 1)
        assert replay.is_alive(), "the replay ended before the first worker left: nothing was tested"
        breaks_at["left"] = asyncio.run(collect(kafka_bootstrap, topics)).break_records
        replay.join(timeout=120)
        assert "stats" in result, "the replay did not finish"
        asyncio.run(wait_for_ticks(kafka_bootstrap, topics, result["stats"].tick_at, timeout_s=180, alive=second.alive))
        moved = asyncio.run(collect(kafka_bootstrap, topics))
        moved_states = asyncio.run(table_states(kafka_bootstrap, topics))
    finally:
        for worker in (first, second):
            worker.stop()
            worker.cleanup()
        asyncio.run(delete_namespace(kafka_bootstrap, topics))

    context = f"break records out when the second worker joined / the first left: {breaks_at}"
    # Both moves happened while the day's decisions were being made.
    assert 0 < breaks_at["joined"] <= breaks_at["left"] < moved.break_records, context
    assert open_break_keys(calm) == truth(tmp_path)
    assert open_break_keys(moved) == truth(tmp_path), context
    assert moved.breaks == calm.breaks, context
    assert moved.tasks == calm.tasks, context
    differing = {k: v for k, v in moved.task_copies.items() if len(v) != 1}
    assert differing == {}, f"{context}: task ids with differing copies {sorted(differing)[:5]}"
    assert moved.dlq == [] and calm.dlq == []
    # Every payment's facts and emitted records, as the changelog holds them, are the undisturbed
    # run's: no fact was lost (or doubled) in a move, even one that changed no break.
    assert len(calm_states) >= 2000
    assert differing_states(moved_states, calm_states)[:5] == [], context
