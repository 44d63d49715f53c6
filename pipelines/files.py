"""Output files written whole or not at all.

Every file a day's run hands to people or to other systems (breaks.csv, summary.json, the reports)
is written beside its target under a temporary name and renamed over it: a reader, or a run killed
mid-write, never sees half a file, and a rerun simply replaces it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipelines import failpoints


def write_replacing(target: Path, write: Callable[[Path], Any]) -> Path:
    """Write `target` through `write(tmp)` (a hidden name beside it, with this process's id) and
    rename it over `target`; returns `target`."""
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        failpoints.reached(f"writing:{target.name}")  # written, not yet in place
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def sweep_stale(directory: Path) -> list[Path]:
    """Remove the temporary files `write_replacing` left in `directory` when its process was killed
    mid-write (their process is gone); returns what was removed. A live writer's are left alone."""
    removed = []
    for tmp in directory.glob(".*.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
