"""SIGKILL the T+1 run of a day at every point where a crash could leave something half done, then
run it again: the outputs must be an undisturbed run's bytes and the warehouse its rows, with no
repair task twice (SPEC section 9: no lost or doubled effect; invariants 5, 6 and 7).

The kills land at named points (`pipelines/failpoints.py`: after staging, just before and just
after a channel's day commits, between the day's output files, with an output written but not yet
renamed into place) and at random moments. A killed
run must really have died there (exit by SIGKILL), so a point renamed in the code fails the test
instead of passing unkilled. While killed runs pile up, every output file present is whole: the
same bytes as the undisturbed run's (each is written beside its target and renamed)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "data" / "samples"  # two days of 2,000 payments, four channels in native formats
DAY1, DAY2 = date(2026, 11, 2), date(2026, 11, 3)
TABLES = ("file_log", "quarantine_log", "pending", "breaks", "break_history", "outbox", "break_status_log",
          "break_resolutions", "run_log")  # fmt: skip
# Where day one is killed, in this order, each run starting from what the one before left. The
# channels commit smallest first; these two are the first and the last of the sample day.
KILLS_DAY1 = (
    "staged",
    "persist:stripe:before_commit",
    "persist:stripe:committed",
    "persist:alipay:before_commit",
    "writing:breaks.csv",  # written beside its target, not yet renamed: a temporary file stays
    "output:breaks.csv",
    "output:open_breaks.parquet",
    "output:summary.json",
    "writing:report.html",
    "output:reports",
)
KILLS_DAY2 = ("persist:jpbank:committed", "writing:summary.json", "output:closed_breaks.csv")
RANDOM_KILLS = 3


def _recon(out: Path, day: date, kill_at: str | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "PAYRECON_KILL_AT"}
    if kill_at:
        env["PAYRECON_KILL_AT"] = kill_at
    command = [sys.executable, "-m", "pipelines.cli", "recon", "--date", day.isoformat(), "--input", str(SAMPLES),
               "--out", str(out), "--quality-engine", "duckdb", "--no-data-docs"]  # fmt: skip
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _complete(out: Path, day: date) -> float:
    started = time.monotonic()
    run = _recon(out, day)
    output, _ = run.communicate(timeout=300)
    assert run.returncode == 0, output
    return time.monotonic() - started


def _outputs(out: Path, day: date) -> dict[str, bytes]:
    """The day's output files by name (the hidden temporary files of a killed run apart)."""
    folder = out / day.isoformat()
    files = sorted(folder.iterdir()) if folder.is_dir() else []
    return {p.name: p.read_bytes() for p in files if p.is_file() and not p.name.startswith(".")}


def _rows(out: Path) -> dict[str, list[tuple[object, ...]]]:
    con = duckdb.connect(str(out / "warehouse.duckdb"), read_only=True)
    try:
        return {t: sorted(con.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in TABLES}
    finally:
        con.close()


def _leftovers(out: Path) -> list[str]:
    """Temporary files anywhere under `out` (a killed run's, which a complete run must clear)."""
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if ".tmp" in p.name)


def _assert_whole(out: Path, day: date, reference: dict[str, bytes], where: str) -> None:
    for name, data in _outputs(out, day).items():
        assert data == reference[name], f"{name} is not whole after a kill at {where}"


def test_a_day_killed_anywhere_and_run_again_gives_the_undisturbed_bytes_and_rows(tmp_path: Path) -> None:
    ref, out = tmp_path / "undisturbed", tmp_path / "killed"
    seconds = _complete(ref, DAY1)
    _complete(ref, DAY2)
    reference = {day: _outputs(ref, day) for day in (DAY1, DAY2)}
    assert "breaks.csv" in reference[DAY1] and "report.html" in reference[DAY1]
    rng = random.Random(20261126)
    for day, points in ((DAY1, KILLS_DAY1), (DAY2, KILLS_DAY2)):
        for point in points:
            run = _recon(out, day, kill_at=point)
            output, _ = run.communicate(timeout=300)
            assert run.returncode == -signal.SIGKILL, f"the run was not killed at {point}:\n{output}"
            _assert_whole(out, day, reference[day], point)
        # And at moments no point names: anywhere from the start-up to the last file.
        for _ in range(RANDOM_KILLS):
            delay = rng.uniform(0.1, 1.0) * seconds
            run = _recon(out, day)
            try:
                run.communicate(timeout=delay)
            except subprocess.TimeoutExpired:
                run.send_signal(signal.SIGKILL)
                run.communicate()
            _assert_whole(out, day, reference[day], f"{delay:.2f} s")
        _complete(out, day)
        assert _outputs(out, day) == reference[day]
        assert not _leftovers(out), _leftovers(out)
    # Every table row for row: one break, one history row a day, one repair task per break and
    # action, no half-committed channel day.
    assert _rows(out) == _rows(ref)
