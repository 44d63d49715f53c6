"""The `payrecon` command.

Each area registers its own commands (`register(app)` in its `cli` module), so this file only
assembles them and holds the cross-cutting ones: `simulate` and `demo`.
"""

from __future__ import annotations

import importlib
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from pipelines.simulate.generator import DaySummary

app = typer.Typer(
    name="payrecon",
    help="Payment reconciliation and fund accounting: stream matching, T+1 file reconciliation, repairs, ledger.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
console = Console(stderr=True)

# Modules that contribute commands through `register(app)`.
COMMAND_MODULES: tuple[str, ...] = (
    "connectors.statements.cli",
    "pipelines.batch.cli",
    "pipelines.stream.cli",
    "pipelines.quality.cli",
    "pipelines.report.cli",
)


def _parse_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


@app.command()
def simulate(
    business_date: Annotated[str, typer.Option("--date", help="First business date, YYYY-MM-DD.")],
    out: Annotated[Path, typer.Option("--out", help="Root folder of the generated days.")],
    payments: Annotated[int, typer.Option("--payments", min=1, help="Payments per day.")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: same seed, same bytes.")] = 7,
    days: Annotated[int, typer.Option("--days", min=1, help="Consecutive business days to generate.")] = 1,
    channels: Annotated[
        str, typer.Option("--channels", help="Comma-separated channels (each needs rules/<channel>.yaml).")
    ] = "alipay,wechatpay,stripe,jpbank",
    faults: Annotated[
        str, typer.Option("--faults", help="Fault profile: none, default, heavy, or a YAML file of rates.")
    ] = "default",
) -> None:
    """Generate simulated business days: internal records, channel files, stream events and the truth."""
    from pipelines.simulate.generator import simulate as run

    start = _parse_date(business_date)
    names = [c.strip() for c in channels.split(",") if c.strip()]
    with Progress(
        TextColumn("[bold]simulate"), BarColumn(), MofNCompleteColumn(), TextColumn("days"), TimeElapsedColumn(),
        console=console, transient=False,
    ) as progress:  # fmt: skip
        task = progress.add_task("days", total=days)
        try:
            written = run(
                start=start, days=days, payments=payments, seed=seed, out_root=out, channels=names, faults=faults,
                progress=lambda _d: progress.advance(task),
            )  # fmt: skip
        except ValueError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
    _print_day_summary(written)


def _print_day_summary(days: list[DaySummary]) -> None:
    table = Table(title="simulated business days")
    for col in ("date", "payments", "channel lines", "stream events", "T+1 breaks (truth)", "stream breaks (truth)"):
        table.add_column(col, justify="right")
    for d in days:
        table.add_row(
            d.day_dir.name, f"{d.payments:,}", f"{d.channel_lines:,}", f"{d.events:,}", f"{d.truth_breaks:,}",
            f"{d.stream_truth_breaks:,}",
        )  # fmt: skip
    Console().print(table)


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Where the demo writes its outputs.")] = Path("out/demo"),
    generate: Annotated[
        bool, typer.Option("--generate", help="Simulate fresh days instead of using the committed data/samples.")
    ] = False,
    payments: Annotated[int, typer.Option("--payments", min=1, help="With --generate: payments per day.")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="With --generate: the seed.")] = 7,
    business_date: Annotated[str, typer.Option("--date", help="With --generate: the first day.")] = "2026-11-02",
    stream: Annotated[bool, typer.Option("--stream/--no-stream", help="Also run the Kafka stream matcher.")] = True,
) -> None:
    """The main job on the embedded default: the sample business day and the next, end to end, with reports."""
    from pipelines.demo import run_demo

    run_demo(
        out=out, generate=generate, payments=payments, seed=seed, start=_parse_date(business_date),
        with_stream=stream,
    )  # fmt: skip


def _register_all() -> None:
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # Only the module itself being absent is tolerated (an area not built yet); a missing
            # dependency inside it is a bug and must surface.
            if exc.name != module_name and not module_name.startswith(f"{exc.name}."):
                raise
            continue
        module.register(app)


_register_all()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
