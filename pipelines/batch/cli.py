"""`payrecon recon`: reconcile one business day from files to breaks, summary and report.
`payrecon breaks show|move`: follow one break, and move it on (write-off, repair) by hand."""

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
    opened, carry = result.summary["open_breaks"], result.summary["carry_forward"]
    console.print(
        f"open breaks, all days: {opened['count']} ({opened['from_earlier_days']} from earlier days); "
        f"closed today: {result.summary['breaks_closed']} ({carry['breaks_matched_late']} answered by a late line or record)"
    )
    for name, path in result.outputs.items():
        console.print(f"  {name}: {path}")


def _warehouse_file(out_root: Path | None, warehouse: Path | None) -> Path:
    from pipelines.batch.day import default_warehouse

    if (out_root is None) == (warehouse is None):
        raise typer.BadParameter("give --out (the recon output folder) or --warehouse, one of them")
    path = warehouse if warehouse is not None else default_warehouse(Path(out_root or "."))
    if not path.is_file():
        console.print(f"[red]error:[/red] no warehouse at {path}; run `payrecon recon` first")
        raise typer.Exit(2)
    return path


OUT_OPTION = typer.Option(None, "--out", help="The recon output folder (its warehouse is OUT/warehouse.duckdb).")
WAREHOUSE_OPTION = typer.Option(None, "--warehouse", help="The warehouse file, instead of --out.")


def show(
    break_id: str = typer.Argument(..., help="The break's id (brk_..., as in breaks.csv)."),
    out_root: Path | None = OUT_OPTION,
    warehouse: Path | None = WAREHOUSE_OPTION,
) -> None:
    """Show one break: its status, every day that reported it (amounts, age, action) and every move
    someone made."""
    from connectors.warehouse import Warehouse
    from pipelines.report.model import amount_text

    with Warehouse(_warehouse_file(out_root, warehouse)) as wh:
        record = wh.break_record(break_id)
    if not record["state"].height:
        console.print(f"[red]error:[/red] no break {break_id}")
        raise typer.Exit(2)
    state = record["state"].row(0, named=True)
    console.print(
        f"[bold]{break_id}[/bold] {state['kind']} on {state['channel']}: [bold]{state['status']}[/bold] since "
        f"{state['status_date']} (first seen {state['first_seen_date']}, last reported {state['last_seen_date']}); "
        f"payment_id {state['payment_id'] or '-'}, channel_txn_id {state['channel_txn_id'] or '-'}, rule {state['rule_id']}"
        + (f"; the line's reference {state['reference']}" if state.get("reference") else "")
    )
    reports = Table(title="reported on")
    for column in ("business_date", "ours", "channel's", "delta", "currency", "age_days", "status", "action"):
        right = column in ("ours", "channel's", "delta", "age_days")
        reports.add_column(column, justify="right" if right else "left", no_wrap=column != "action")
    for r in record["reports"].iter_rows(named=True):
        cur = r["currency"]
        reports.add_row(
            str(r["business_date"]),
            amount_text(r["internal_amount_minor"], cur),
            amount_text(r["channel_amount_minor"], cur),
            amount_text(r["delta_minor"], cur),
            cur,
            str(r["age_days"]),
            r["status"],
            r["action"],
        )
    console.print(reports)
    for r in record["resolutions"].iter_rows(named=True):
        console.print(
            f"matched late on {r['business_date']}: our record {r['payment_id']} with the line "
            f"{r['channel_txn_id']} (closed there)"
        )
    if record["moves"].height:
        moves = Table(title="moved by hand")
        for column in ("seq", "from", "to", "as of", "by", "reason"):
            moves.add_column(column, no_wrap=column != "reason")
        for m in record["moves"].iter_rows(named=True):
            moves.add_row(
                str(m["seq"]), m["from_status"], m["to_status"], str(m["status_date"]), m["actor"], m["reason"]
            )
        console.print(moves)


def move(
    break_id: str | None = typer.Argument(None, help="The break's id (brk_..., as in breaks.csv)."),
    expected: str = typer.Option(..., "--from", help="The status the break must have now (compare-and-set)."),
    to: str = typer.Option(..., "--to", help="The new status: OPEN, REPAIRING, CLOSED or WRITTEN_OFF."),
    as_of: str = typer.Option(..., "--date", help="The business date it takes effect (YYYY-MM-DD)."),
    reason: str = typer.Option(..., "--reason", help="Why (kept in the break's log)."),
    actor: str = typer.Option(..., "--by", help="Who decided it (kept in the break's log)."),
    ids_file: Path | None = typer.Option(
        None,
        "--ids-file",
        help="Move every break of this CSV instead (its break_id column: e.g. open_breaks.csv kept to "
        "the rows to write off).",
    ),
    out_root: Path | None = OUT_OPTION,
    warehouse: Path | None = WAREHOUSE_OPTION,
) -> None:
    """Move a break on by hand, e.g. write it off. Compare-and-set: nothing changes unless the
    break's status is --from (exit 1 says what it is); the same move again is a no-op (exit 0).
    From --date on, the break is no longer open: the open breaks of that day and later leave it
    out, those of earlier days keep it. With --ids-file, every break of the file is moved so, in
    one transaction: the counts say what became of them, exit 1 when any was not moved (each is
    named), and running the same file again moves only what is left."""
    from connectors.warehouse import MOVABLE_STATUSES, Warehouse

    day = _date(as_of)
    if (break_id is None) == (ids_file is None):
        raise typer.BadParameter("give a break id or --ids-file, one of them")
    expected, to = expected.upper(), to.upper()
    for status in (expected, to):
        if status not in MOVABLE_STATUSES:
            raise typer.BadParameter(f"{status!r} is not one of {', '.join(MOVABLE_STATUSES)}")
    ids = [break_id] if break_id is not None else _ids_of(ids_file)  # type: ignore[arg-type]
    with Warehouse(_warehouse_file(out_root, warehouse)) as wh:
        try:
            # One transaction for them all: thousands of write-offs take a second, and either all
            # the moves that can be made are made or none is.
            result = wh.move_breaks(ids, expected=expected, to=to, on=day, reason=reason, actor=actor)
        except ValueError as exc:  # an empty reason or who
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
    outcomes: dict[str, list[str]] = {k: [] for k in ("moved", "already", "conflict", "unknown", "refused")}
    for r in result.iter_rows(named=True):
        outcomes[r["outcome"]].append(
            f"{r['break_id']} is {r['status']}"
            if r["outcome"] == "conflict"
            else f"{r['break_id']}: {r['detail']}"
            if r["outcome"] == "refused"
            else r["break_id"]
        )
    if break_id is not None:
        if outcomes["unknown"]:
            console.print(f"[red]error:[/red] no break {break_id}")
            raise typer.Exit(2)
        if outcomes["refused"]:
            console.print(f"[red]error:[/red] {outcomes['refused'][0]}")
            raise typer.Exit(2)
        if outcomes["conflict"]:
            console.print(f"[yellow]not moved:[/yellow] {outcomes['conflict'][0]}, not {expected}")
            raise typer.Exit(1)
        verb = "moved" if outcomes["moved"] else "already moved"
        console.print(f"{break_id}: {verb} {expected} -> {to} as of {day}")
        return
    counts = ", ".join(f"{len(v)} {k}" for k, v in outcomes.items())
    console.print(f"{len(ids)} breaks of {ids_file}, {expected} -> {to} as of {day}: {counts}")
    labels = {"conflict": f"not {expected}", "unknown": "no such break", "refused": "refused"}
    for what, label in labels.items():
        for line in outcomes[what][:20]:
            console.print(f"[yellow]not moved ({label}):[/yellow] {line}")
        if len(outcomes[what]) > 20:
            console.print(f"[yellow]... and {len(outcomes[what]) - 20} more {label}[/yellow]")
    if any(outcomes[what] for what in labels):
        raise typer.Exit(1)


def _ids_of(path: Path) -> list[str]:
    """The break ids of a CSV's break_id column, in file order, each once (blank lines skipped); a
    file without that column, or a row with an empty id, is refused naming the file (and the line)."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = csv.DictReader(fh)
            if "break_id" not in (rows.fieldnames or []):
                console.print(f"[red]error:[/red] {path}: needs a CSV with a break_id column")
                raise typer.Exit(2)
            ids: dict[str, None] = {}
            for row in rows:
                bid = (row.get("break_id") or "").strip()
                if not bid:
                    console.print(f"[red]error:[/red] {path}, line {rows.line_num}: empty break_id")
                    raise typer.Exit(2)
                ids.setdefault(bid)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        console.print(f"[red]error:[/red] {path}: {exc}")
        raise typer.Exit(2) from None
    return list(ids)


def register(app: typer.Typer) -> None:
    """Add `payrecon recon` and `payrecon breaks` to the payrecon command."""
    app.command("recon")(recon)
    breaks = typer.Typer(help="Follow a break and move it on by hand (write-off, repair).", no_args_is_help=True)
    breaks.command("show")(show)
    breaks.command("move")(move)
    app.add_typer(breaks, name="breaks")
