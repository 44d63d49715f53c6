"""`payrecon demo`: one generated business day and the next, end to end, with their reports.

Steps: simulate two consecutive days (so cross-day items are carried forward on day one and matched
on day two), then reconcile each day, run the stream matcher on day one against the local Kafka,
compare every engine with the simulator's truth, and print where the reports are.
"""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import polars as pl
from rich.console import Console
from rich.table import Table

console = Console()


def _truth_keys(path: Path) -> set[tuple[str, str, str, str]]:
    frame = pl.read_csv(path, infer_schema=False).fill_null("")
    return {tuple(row) for row in frame.select("kind", "channel", "payment_id", "channel_txn_id").iter_rows()}


def compare_with_truth(found: Path, truth: Path) -> tuple[int, int, int]:
    """(expected, missed, false) comparing a breaks CSV with a truth CSV on (kind, channel, payment_id, txn)."""
    want, got = _truth_keys(truth), _truth_keys(found)
    return len(want), len(want - got), len(got - want)


def run_demo(*, out: Path, payments: int, seed: int, start: date, with_stream: bool) -> None:
    from pipelines.simulate.generator import simulate

    input_root = out / "input"
    results_root = out / "results"
    # The demo is a fresh run every time: the warehouse keeps history across days, so a stale one
    # from an earlier demo would make day one look like a re-run.
    for folder in (input_root, results_root):
        if folder.exists():
            shutil.rmtree(folder)
    days = [start, start + timedelta(days=1)]
    console.rule("[bold]payrecon demo")
    console.print(f"1. simulating {len(days)} business days of {payments} payments (seed {seed}) into {input_root}")
    simulate(start=start, days=len(days), payments=payments, seed=seed, out_root=input_root)

    table = Table(title="reconciliation against the simulator's truth")
    for col in ("engine", "date", "expected breaks", "missed", "false", "report"):
        table.add_column(col)

    try:
        from pipelines.batch.job import run_day
    except ModuleNotFoundError:
        run_day = None
    if run_day is not None:
        for day in days:
            console.print(f"2. T+1 reconciliation of {day} (DuckDB + Polars)")
            run_day(business_date=day, input_root=input_root, out_root=results_root)
            day_out = results_root / day.isoformat()
            expected, missed, false = compare_with_truth(day_out / "breaks.csv", input_root / day.isoformat() / "truth" / "breaks.csv")
            table.add_row("T+1", day.isoformat(), str(expected), str(missed), str(false), str(day_out / "report.html"))

    if with_stream:
        try:
            from pipelines.stream.demo import run_stream_day
        except ModuleNotFoundError:
            run_stream_day = None
        if run_stream_day is not None:
            console.print(f"3. stream matcher on {days[0]} through the local Kafka")
            csv_path = run_stream_day(input_root, days[0], results_root)
            truth = input_root / days[0].isoformat() / "truth" / "stream_breaks.csv"
            expected, missed, false = compare_with_truth(csv_path, truth)
            table.add_row("stream", days[0].isoformat(), str(expected), str(missed), str(false), str(csv_path))

    console.print(table)
    console.print(f"inputs: {input_root}\nresults: {results_root}")
