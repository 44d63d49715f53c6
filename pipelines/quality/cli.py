"""`payrecon validate`: run the quality gate on one business day's inputs, without reconciling.

For operations: before (or instead of) a run, see which files the gate would quarantine and why,
and get the day's Data Docs. Exit status 0 when every input passes, 1 when one fails, 2 when a
file cannot even be read (the parser's reason is printed).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from pipelines.quality import Engine

console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add `payrecon validate` to `app`."""
    app.command("validate")(validate)


def validate(
    business_date: Annotated[str, typer.Option("--date", help="Business date, YYYY-MM-DD.")],
    input_root: Annotated[Path, typer.Option("--input", help="ROOT holding ROOT/<date>/internal and channels.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write Data Docs to OUT/<date>/data_docs (none when omitted).")
    ] = None,
    engine: Annotated[
        str, typer.Option("--engine", help="auto (GX below 100k rows, else DuckDB), gx or duckdb.")
    ] = "auto",
    rules_dir: Annotated[Path | None, typer.Option("--rules", help="Folder of rule files (default: rules/).")] = None,
) -> None:
    """Validate a day's internal/payments.csv and every channel file with the quality gate; print
    each failed expectation with its file and lines, and optionally write the day's Data Docs."""
    from connectors.statements import StatementError
    from pipelines.batch.load import channel_files, parse_channel_file, read_internal
    from pipelines.matching.rules import RULES_DIR, load_rules
    from pipelines.quality import QualityResult, validate_internal, validate_statement, write_data_docs

    try:
        day = date.fromisoformat(business_date)
    except ValueError:
        raise typer.BadParameter(f"{business_date!r} is not a date (YYYY-MM-DD)") from None
    if engine not in ("auto", "gx", "duckdb"):
        raise typer.BadParameter(f"--engine must be auto, gx or duckdb, not {engine!r}")
    chosen = cast("Engine", engine)
    day_dir = input_root / day.isoformat()
    if not day_dir.is_dir():
        console.print(f"[red]error:[/red] {day_dir} does not exist")
        raise typer.Exit(2)
    rules = load_rules(rules_dir or RULES_DIR)
    channels = sorted(c for c in rules if (day_dir / "channels" / c).is_dir())
    work: list[tuple[str, Path]] = [("internal", day_dir / "internal" / "payments.csv")]
    work += [(c, p) for c in channels for p in channel_files(day_dir / "channels" / c)]
    results: list[QualityResult] = []
    unreadable: list[tuple[str, str]] = []
    with Progress(
        TextColumn("[bold]validate"), BarColumn(), MofNCompleteColumn(), TextColumn("files"), TimeElapsedColumn(),
        console=console,
    ) as progress:  # fmt: skip
        task = progress.add_task("files", total=len(work))
        for channel, path in work:
            source = str(path.relative_to(day_dir))
            try:
                if channel == "internal":
                    results.append(
                        validate_internal(read_internal(path), business_date=day, source=source, engine=chosen)
                    )
                else:
                    parsed, _ = parse_channel_file(path, rules[channel], day)
                    results.append(
                        validate_statement(
                            parsed.frame,
                            rule=rules[channel],
                            business_date=day,
                            source=source,
                            controls=parsed.controls,
                            engine=chosen,
                        )
                    )
            except (StatementError, OSError) as exc:
                unreadable.append((source, str(exc)))
            progress.advance(task)

    table = Table(title=f"Quality gate, {day.isoformat()}")
    for column in ("source", "suite", "rows", "engine", "verdict"):
        table.add_column(column)
    for r in results:
        verdict = "[green]passed[/green]" if r.ok else "[red]" + "\n".join(r.failures) + "[/red]"
        table.add_row(r.source, r.suite, str(r.statistics["rows"]), str(r.statistics["engine"]), verdict)
    for source, reason in unreadable:
        table.add_row(source, "-", "-", "-", f"[red]unreadable: {reason}[/red]")
    Console().print(table)
    if out is not None and results:
        index = write_data_docs(results, out / day.isoformat())
        console.print(f"Data Docs: {index}")
    if unreadable:
        raise typer.Exit(2)
    if not all(r.ok for r in results):
        raise typer.Exit(1)
