"""One call that runs a simulated day through the real stream matcher on Kafka (for `payrecon demo`).

`run_stream_day(input_root, business_date, out_root)`:
1. uses `bootstrap` or the local broker (`connectors.kafka.broker.ensure_broker`, started if needed);
2. creates a fresh topic namespace for this run (so earlier runs never leak into it);
3. starts a matcher worker as a subprocess (`python -m pipelines.stream.cli worker ...`);
4. replays `<input_root>/<date>/stream/events.jsonl`, then the end-of-day watermark ticks;
5. waits until the worker reports that it has processed the ticks on every partition (all effects
   flushed before that report), folds the break and task topics (last record per id) and writes
   `<out_root>/<date>/stream_breaks.csv` (open breaks: kind, channel, payment_id, channel_txn_id,
   status, break_id, action), `stream_breaks_all.csv` (closed ones too) and `stream_tasks.csv`;
6. stops the worker (SIGTERM, then SIGKILL after a grace period) and deletes the run's topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

from connectors.kafka.admin import delete_namespace, ensure_topics
from connectors.kafka.topics import Topics
from pipelines.stream.collect import Collected, collect, wait_for_ticks, write_csvs
from pipelines.stream.replay import ReplayStats, publish_day

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKER_STOP_GRACE_S = 20.0
DAY_TIMEOUT_S = 600.0


def new_namespace(prefix: str) -> str:
    """A fresh topic namespace, e.g. `demo-3f2a9c1b`."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class WorkerProcess:
    """A matcher worker in a subprocess of its own (so that tests can SIGKILL it)."""

    def __init__(
        self,
        topics: Topics,
        bootstrap: str,
        *,
        store: str | None = None,
        log_path: Path | None = None,
        session_timeout_s: float = 6.0,
    ) -> None:
        self.topics, self.bootstrap, self.store = topics, bootstrap, store
        self.session_timeout_s = session_timeout_s
        self.datadir = REPO_ROOT / ".cache" / "stream" / (topics.namespace or "default")
        self.log_path = log_path or REPO_ROOT / ".cache" / "stream" / f"{topics.namespace or 'default'}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "worker already running"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pipelines.stream.cli", "worker", "--namespace", self.topics.namespace]
        cmd += ["--bootstrap", self.bootstrap, "--datadir", str(self.datadir)]
        if self.store:
            cmd += ["--store", self.store]
        cmd += ["--session-timeout", str(self.session_timeout_s)]
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=env)
        log.close()
        self.starts += 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, nothing is flushed or committed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, grace_s: float = WORKER_STOP_GRACE_S) -> None:
        """SIGTERM (Faust commits and stops), then SIGKILL after `grace_s`."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def cleanup(self) -> None:
        shutil.rmtree(self.datadir, ignore_errors=True)


@contextlib.contextmanager
def running_worker(topics: Topics, bootstrap: str, *, store: str | None = None) -> Iterator[WorkerProcess]:
    """A worker subprocess for the duration of the block; stopped and its local data removed after."""
    ensure_topics(bootstrap, topics)
    worker = WorkerProcess(topics, bootstrap, store=store)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
        worker.cleanup()


async def replay_and_collect(
    bootstrap: str, topics: Topics, input_root: Path, business_date: date, worker: WorkerProcess
) -> tuple[ReplayStats, Collected]:
    """Replay the day, wait for the worker's end-of-day report, fold the outputs."""
    stats = await publish_day(bootstrap, topics, input_root, business_date)
    await wait_for_ticks(bootstrap, topics, stats.tick_at, timeout_s=DAY_TIMEOUT_S, alive=worker.alive)
    return stats, await collect(bootstrap, topics)


def run_stream_day(input_root: Path, business_date: date, out_root: Path, bootstrap: str | None = None) -> Path:
    """Run `business_date` of a simulated tree through the stream matcher on Kafka; return the path
    of `<out_root>/<date>/stream_breaks.csv`. `bootstrap` None: the local broker (started if needed)."""
    if bootstrap is None:
        from connectors.kafka.broker import ensure_broker

        bootstrap = ensure_broker()
    topics = Topics(new_namespace("demo"))
    try:
        with running_worker(topics, bootstrap) as worker:
            _, collected = asyncio.run(replay_and_collect(bootstrap, topics, input_root, business_date, worker))
        return write_csvs(collected, Path(out_root) / business_date.isoformat())
    finally:
        asyncio.run(delete_namespace(bootstrap, topics))
