"""`payrecon demo`: the committed sample business day and the next, end to end, with their reports.

Steps: take the embedded default input (`data/samples/`, two consecutive simulated days, so that
cross-day items are carried forward on day one and matched on day two) or simulate fresh days;
reconcile each day with the T+1 job; run the stream matcher on day one through the local Kafka;
compare every engine's breaks with the simulator's truth; print where the reports are.
"""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta
from pathlib import Path

import polars as pl
from rich.console import Console
from rich.table import Table

# Wide enough for the tables even when the output is not a terminal (CI logs, pipes).
console = Console(width=120)

SAMPLES_DIR = Path(__file__).resolve().parents[1] / "data" / "samples"
# The committed sample is `make sample`: these arguments.
SAMPLE_START = date(2026, 11, 2)
SAMPLE_DAYS = 2
SAMPLE_PAYMENTS = 2000
SAMPLE_SEED = 7


def _truth_keys(path: Path) -> set[tuple[str, ...]]:
    frame = pl.read_csv(path, infer_schema=False).fill_null("")
    return set(frame.select("kind", "channel", "payment_id", "channel_txn_id").iter_rows())


def compare_with_truth(found: Path, truth: Path) -> tuple[int, int, int]:
    """(expected, missed, false) comparing a breaks CSV with a truth CSV on (kind, channel, payment_id, txn)."""
    want, got = _truth_keys(truth), _truth_keys(found)
    return len(want), len(want - got), len(got - want)


def run_demo(*, out: Path, generate: bool, payments: int, seed: int, start: date, with_stream: bool) -> None:
    from pipelines.batch.day import run_day

    out = out.resolve()
    results_root = out / "results"
    # Every demo is a fresh run: the warehouse keeps history across days, so a stale one from an
    # earlier demo would make day one look like a re-run.
    if results_root.exists():
        shutil.rmtree(results_root)
    console.rule("[bold]payrecon demo")
    if generate or not (SAMPLES_DIR / "manifest.json").is_file():
        from pipelines.simulate.generator import simulate

        input_root = out / "input"
        if input_root.exists():
            shutil.rmtree(input_root)
        console.print(f"1. simulating 2 business days of {payments} payments (seed {seed}) into {input_root}")
        simulate(start=start, days=2, payments=payments, seed=seed, out_root=input_root)
        days = [start, start + timedelta(days=1)]
    else:
        input_root = SAMPLES_DIR
        manifest = json.loads((SAMPLES_DIR / "manifest.json").read_text(encoding="utf-8"))
        first = date.fromisoformat(manifest["start"])
        days = [first + timedelta(days=k) for k in range(manifest["days"])]
        console.print(
            f"1. the embedded sample: {manifest['days']} business days of {manifest['payments']} payments "
            f"({', '.join(manifest['channels'])}; formats {', '.join(sorted(set(manifest['formats'].values())))}) "
            f"in {input_root}"
        )

    truth_table = Table(title="breaks found against the simulator's truth")
    for col in ("engine", "date", "expected", "found", "missed", "false"):
        truth_table.add_column(col, justify="right")
    open_table = Table(title="breaks still open at the end of each day (they age until resolved)")
    for col in ("date", "new", "open, all days", "from earlier days", "closed that day"):
        open_table.add_column(col, justify="right")
    money_table = Table(title="T+1 reconciliation by channel")
    for col in ("date", "channel", "ours in", "channel in", "matched", "pending", "breaks", "quarantined"):
        money_table.add_column(col, justify="right")

    reports: list[Path] = []
    for day in days:
        console.print(f"2. T+1 reconciliation of {day}: parse, validate (Great Expectations), match (DuckDB), report")
        result = run_day(day, input_root, results_root)
        day_out = results_root / day.isoformat()
        expected, missed, false = compare_with_truth(
            day_out / "breaks.csv", input_root / day.isoformat() / "truth" / "breaks.csv"
        )
        truth_table.add_row(
            "T+1", day.isoformat(), str(expected), str(expected - missed + false), str(missed), str(false)
        )
        for channel, c in result.summary["channels"].items():
            money_table.add_row(
                day.isoformat(), channel, str(c["internal"]["rows_in"]), str(c["channel"]["rows_in"]),
                str(c["internal"]["matched"]), str(c["internal"]["pending"] + c["channel"]["pending"]),
                str(sum(c["breaks_by_kind"].values())), str(len(c["quarantined"])),
            )  # fmt: skip
        reports += [day_out / "report.html", day_out / "report.xlsx"]
        opened = result.summary["open_breaks"]
        open_table.add_row(
            day.isoformat(), str(sum(result.summary["breaks_by_kind"].values())), str(opened["count"]),
            str(opened["from_earlier_days"]), str(result.summary["breaks_closed"]),
        )  # fmt: skip

    if with_stream:
        from connectors.kafka import broker
        from pipelines.stream.demo import run_stream_day

        console.print(f"3. stream matcher (Faust) on {days[0]} through the local Kafka broker")
        handle = broker.start()
        try:
            csv_path = run_stream_day(input_root, days[0], results_root, bootstrap=handle.bootstrap)
        finally:
            # Leave the machine as the demo found it: a broker it started is stopped again.
            if handle.started:
                broker.stop()
        truth = input_root / days[0].isoformat() / "truth" / "stream_breaks.csv"
        expected, missed, false = compare_with_truth(csv_path, truth)
        truth_table.add_row(
            "stream", days[0].isoformat(), str(expected), str(expected - missed + false), str(missed), str(false)
        )
        reports.append(csv_path)

    console.print(money_table)
    console.print(open_table)
    console.print(truth_table)
    console.print("[bold]reports:[/bold]")
    for path in reports:
        console.print(f"  {path}")
    console.print(f"results: {results_root}")
