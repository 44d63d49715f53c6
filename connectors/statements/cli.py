"""`payrecon parse`: read one channel file in its native format, check it, summarise it, write its lines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from connectors.statements import FORMATS, StatementError, _load_all, detect_format, get_format
from connectors.statements._common import CONTROL_POLICIES, ControlPolicy
from pipelines.money import MoneyError, format_amount

console = Console()
err = Console(stderr=True)

# Exit codes, so a script can tell the outcomes apart: refused (bad file), bad usage, and parsed
# under `--controls report` with control totals that disagree with the lines.
exit_refused = 1
exit_usage = 2
exit_controls_disagree = 3


def _format_names() -> list[str]:
    _load_all()
    return sorted(FORMATS)


def parse_command(
    file: Annotated[
        Path,
        typer.Argument(help="The channel file (statement, bill or settlement report).", exists=True, dir_okay=False),
    ],
    format: Annotated[
        str, typer.Option("--format", help="auto (detect), or one of: " + ", ".join(_format_names()))
    ] = "auto",
    channel: Annotated[
        str, typer.Option("--channel", help="Channel name stamped on every line (default: the format's name).")
    ] = "",
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the lines to this .parquet or .csv file (LINE_SCHEMA columns).")
    ] = None,
    controls: Annotated[
        str,
        typer.Option(
            "--controls",
            help="enforce: refuse a file whose own control totals disagree with its lines (default). "
            "report: parse it anyway, print each disagreement and exit 3.",
        ),
    ] = "enforce",
) -> None:
    """Parse FILE, verify its control totals, print a summary, and optionally write its lines.

    Exits 1 with `file:line: reason: detail` when the file is refused, 2 on a bad option, and 3
    under `--controls report` when the file parsed but its control totals disagree (each
    disagreement printed in red, the lines still summarised and written).
    """
    if controls not in CONTROL_POLICIES:
        err.print(f"[red]--controls must be one of {', '.join(CONTROL_POLICIES)}, not {controls!r}[/red]")
        raise typer.Exit(exit_usage)
    policy: ControlPolicy = "report" if controls == "report" else "enforce"
    try:
        name = detect_format(file) if format == "auto" else format
        fmt = get_format(name)
    except KeyError as exc:
        err.print(f"[red]{exc.args[0]}[/red]")
        raise typer.Exit(exit_usage) from None
    except StatementError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(exit_refused) from None
    if out is not None and out.suffix not in (".parquet", ".csv"):
        err.print(f"[red]--out must end in .parquet or .csv, not {out.suffix!r}[/red]")
        raise typer.Exit(exit_usage)
    try:
        parsed = fmt.parse(file, channel=channel or name, controls=policy)
    except StatementError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(exit_refused) from None

    frame = parsed.frame
    table = Table(title=f"{file.name}: {name}, {frame.height} lines, sha256 {parsed.sha256[:12]}…")
    for col in ("currency", "line type", "lines", "gross", "fee", "net"):
        table.add_column(col, justify="right" if col in ("lines", "gross", "fee", "net") else "left")
    if frame.height:
        import polars as pl

        # Sums in Int128 so that a file of many large amounts cannot wrap.
        groups = (
            frame.group_by("currency", "line_type")
            .agg(
                pl.len().alias("n"),
                *(pl.col(c).cast(pl.Int128).sum().alias(c) for c in ("gross_minor", "fee_minor", "net_minor")),
            )
            .sort("currency", "line_type")
        )
        for row in groups.iter_rows(named=True):
            cur = row["currency"]

            def text(minor: int, cur: str = cur) -> str:
                try:
                    return format_amount(int(minor), cur)
                except MoneyError:
                    return str(minor)

            table.add_row(cur, row["line_type"], str(row["n"]), text(row["gross_minor"]), text(row["fee_minor"]),
                          text(row["net_minor"]))  # fmt: skip
    console.print(table)
    checks = ", ".join(f"{k}={v}" for k, v in parsed.controls.items() if k not in ("ok", "mismatches"))
    mismatches = parsed.controls.get("mismatches") or []
    assert isinstance(mismatches, list)
    if mismatches:
        console.print(f"control totals: [red]{len(mismatches)} disagree with the lines[/red] ({checks})")
        for m in mismatches:
            console.print(f"[red]{file}:{m['line']}: {m['reason']}: {m['detail']}[/red]", soft_wrap=True)
    elif parsed.controls.get("ok"):
        console.print(f"control totals: [green]ok[/green] ({checks})")
    else:
        console.print("control totals: not checked")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".parquet":
            frame.write_parquet(out)
        else:
            frame.write_csv(out)
        console.print(f"wrote {frame.height} lines to {out}")
    if mismatches:
        raise typer.Exit(exit_controls_disagree)


def register(app: typer.Typer) -> None:
    """Add `payrecon parse` to the payrecon CLI."""
    app.command("parse")(parse_command)
