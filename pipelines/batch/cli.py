"""`payrecon recon`: reconcile one business day from files to breaks, summary and report."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from connectors.statements import StatementError
from pipelines.matching.rules import RuleError

console = Console(stderr=True)


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date in YYYY-MM-DD form") from None


def recon(
    business_date: str = typer.Option(..., "--date", help="The business day to reconcile (YYYY-MM-DD)."),
    input_root: Path = typer.Option(..., "--input", help="ROOT holding ROOT/<date>/internal and ROOT/<date>/channels."),
    out_root: Path = typer.Option(..., "--out", help="OUT: writes OUT/<date>/breaks.csv, summary.json and reports."),
    warehouse: Path | None = typer.Option(
        None, "--warehouse", help="The DuckDB warehouse keeping history across days (default: OUT/warehouse.duckdb)."
    ),
    channels: list[str] | None = typer.Option(
        None,
        "--channels",
        help="Only these channels (repeat or comma-separate); default: every channel with files or records of ours.",
    ),
    quality_engine: str = typer.Option(
        "auto", "--quality-engine", help="Quality gate engine: auto (GX below 100k rows), gx or duckdb."
    ),
    data_docs: bool = typer.Option(True, "--data-docs/--no-data-docs", help="Write the gate's HTML Data Docs."),
    rules_dir: Path | None = typer.Option(
        None, "--rules-dir", help="Read the channels' rule files from this folder (default: the shipped rules/)."
    ),
) -> None:
    """Reconcile one business day: our records against every channel's files, with carry-forward
    across days; writes breaks.csv and .parquet (the day's), open_breaks.csv and .parquet (every break
    still open, earlier days' included), summary.json, report.xlsx and report.html."""
    from pipelines.batch.day import run_day

    day = _date(business_date)
    if quality_engine not in ("auto", "gx", "duckdb"):
        raise typer.BadParameter(f"--quality-engine must be auto, gx or duckdb, not {quality_engine!r}")
    chosen = [c for item in channels or [] for c in item.split(",") if c] or None
    with Progress(
        TextColumn("[bold]recon {task.fields[step]}"), BarColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task("recon", total=None, step="")

        def step(name: str) -> None:
            progress.update(task, step=name, advance=1)

        try:
            result = run_day(
                day,
                input_root,
                out_root,
                warehouse=warehouse,
                channels=chosen,
                quality_engine=quality_engine,
                data_docs=data_docs,
                rules_dir=rules_dir,
                progress=step,
            )
        except (StatementError, RuleError, ValueError, FileNotFoundError) as exc:
            console.print(f"[red]recon {day} failed:[/red] {exc}")
            raise typer.Exit(2) from None
    table = Table(title=f"payrecon recon {day}")
    for column in ("channel", "side", "rows_in", "matched", "pending", "breaks", "rejected"):
        table.add_column(column, justify="right" if column not in ("channel", "side") else "left")
    for channel, entry in result.summary["channels"].items():
        for side in ("internal", "channel"):
            c = entry[side]
            table.add_row(channel, side, *(str(c[k]) for k in ("rows_in", "matched", "pending", "breaks", "rejected")))
        for q in entry["quarantined"]:
            console.print(f"[yellow]quarantined[/yellow] {channel}/{q['file']}: {q['reason']}: {q['detail']}")
    console.print(table)
    console.print(f"breaks by kind: {result.summary['breaks_by_kind']}")
    for name, path in result.outputs.items():
        console.print(f"  {name}: {path}")


def register(app: typer.Typer) -> None:
    """Add `payrecon recon` to the payrecon command."""
    app.command("recon")(recon)
