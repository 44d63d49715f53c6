"""Named points where a test can have the process killed by SIGKILL, to prove crash safety.

A run passes `reached("name")` at the points where a crash is most likely to leave something
half done: after staging, just before and just after a channel's day is committed to the
warehouse, between the day's output files. With `PAYRECON_KILL_AT=name` in its environment the
process sends itself SIGKILL there (no cleanup, no `finally`, exactly as `kill -9`); without it
the call does nothing. `tests/failure/test_batch_kill.py` kills a day's run at every point in
turn and checks that the rerun gives an undisturbed run's bytes and rows.
"""

from __future__ import annotations

import os
import signal

ENV = "PAYRECON_KILL_AT"


def reached(name: str) -> None:
    """SIGKILL this process when `PAYRECON_KILL_AT` names this point."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
