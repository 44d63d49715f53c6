"""`payrecon report`: render a reconciled day's report.xlsx and report.html again from its outputs.

For finance and operations: after a change to the report's layout, or to rebuild a day's reports
from breaks.parquet and summary.json without reconciling again. The same outputs give the same
bytes as the run that wrote them.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add `payrecon report` to `app`."""
    app.command("report")(report)


def report(
    day_dir: Annotated[
        Path, typer.Option("--day-dir", help="OUT/<date> of a reconciled day (breaks.parquet, summary.json).")
    ],
    history: Annotated[
        Path | None,
        typer.Option("--history", help="Parquet of breaks as reported per day (the warehouse's break_history)."),
    ] = None,
    warehouse: Annotated[
        Path | None,
        typer.Option(
            "--warehouse",
            help="The warehouse the day was reconciled into, for the chart of earlier days "
            "(default: warehouse.duckdb beside the day's folder, when there).",
        ),
    ] = None,
) -> None:
    """Write DAY_DIR/report.xlsx and DAY_DIR/report.html from DAY_DIR/breaks.parquet, summary.json
    and, when there, open_breaks.parquet and closed_breaks.parquet; the earlier days come from
    --history, else from the warehouse (--warehouse, or the one `payrecon recon` keeps beside the
    day's folder): then the reports are the bytes the run wrote."""
    import polars as pl

    from pipelines.report import ReportInputError, write_reports

    summary_path, breaks_path = day_dir / "summary.json", day_dir / "breaks.parquet"
    for path in (summary_path, breaks_path):
        if not path.is_file():
            console.print(f"[red]error:[/red] {path} does not exist; run `payrecon recon` for the day first")
            raise typer.Exit(2)
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        business_date = date.fromisoformat(summary["business_date"])
    except (ValueError, KeyError) as exc:
        console.print(f"[red]error:[/red] {summary_path}: not a payrecon summary ({exc})")
        raise typer.Exit(2) from None
    breaks = pl.read_parquet(breaks_path)
    earlier = pl.read_parquet(history) if history is not None else _history(day_dir, warehouse, business_date)
    open_path = day_dir / "open_breaks.parquet"
    open_breaks = pl.read_parquet(open_path) if open_path.is_file() else None
    closed_path = day_dir / "closed_breaks.parquet"
    closed_breaks = pl.read_parquet(closed_path) if closed_path.is_file() else None
    try:
        paths = write_reports(
            day_dir,
            business_date=business_date,
            breaks=breaks,
            summary=summary,
            history=earlier,
            open_breaks=open_breaks,
            closed_breaks=closed_breaks,
        )
    except ReportInputError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    for path in paths:
        console.print(f"wrote {path}")


def _history(day_dir: Path, warehouse: Path | None, business_date: date) -> Any:
    """The breaks reported per day up to `business_date` (the report's HISTORY_SCHEMA), from the
    warehouse named or the default one beside the day's folder; None when there is none."""
    from connectors.warehouse import Warehouse

    if warehouse is None:
        warehouse = day_dir.resolve().parent / "warehouse.duckdb"
        if not warehouse.is_file():
            return None
    elif not warehouse.is_file():
        console.print(f"[red]error:[/red] {warehouse} does not exist")
        raise typer.Exit(2)
    # Opened as a run opens it: a run in progress holds it, and this waits for the run to end.
    with Warehouse(warehouse) as wh:
        return wh.history_summary(business_date)
