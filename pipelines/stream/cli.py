"""`payrecon stream ...`: the matcher worker, the day replay, and reading the results back.

Also runnable without the main CLI, as `python -m pipelines.stream.cli worker ...` (how the demo,
the tests and the bench start a worker subprocess).
"""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True)

NamespaceOpt = Annotated[
    str,
    typer.Option(
        "--namespace",
        help="Topic namespace (prefix); empty for the real pipeline, a name for a shadow or test run.",
    ),
]
BootstrapOpt = Annotated[
    str | None,
    typer.Option(
        "--bootstrap",
        help="Kafka bootstrap servers (host:port). Default: KAFKA_BOOTSTRAP_SERVERS, else the local broker "
        "(started if needed).",
    ),
]


def _bootstrap(value: str | None) -> str:
    if value:
        return value
    from connectors.kafka.broker import BrokerError, ensure_broker

    try:
        return ensure_broker()
    except BrokerError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


def worker(
    namespace: NamespaceOpt = "",
    bootstrap: BootstrapOpt = None,
    store: Annotated[
        str, typer.Option("--store", help="Table store: auto (rocksdb when rocksdict is installed), memory, rocksdb.")
    ] = "auto",
    datadir: Annotated[Path | None, typer.Option("--datadir", help="Folder of the worker's local table data.")] = None,
    loglevel: Annotated[str, typer.Option("--loglevel", help="Faust log level.")] = "warning",
    session_timeout: Annotated[
        float,
        typer.Option(
            "--session-timeout",
            min=6.0,
            help="Consumer group session timeout, s (how soon a dead worker's partitions move).",
        ),
    ] = 10.0,
    retention_hours: Annotated[
        float,
        typer.Option(
            "--retention-hours",
            min=1.0,
            help="Event-time hours a decided payment's state stays in the table after its last fact and window "
            "(then pruned; later records of it go to the dead-letter topic for T+1).",
        ),
    ] = 24.0,
) -> None:
    """Run one stream matcher worker until SIGTERM/SIGINT: payment events against callbacks."""
    from connectors.kafka.topics import Topics
    from pipelines.stream.app import run_worker

    urls = {"auto": None, "memory": "memory://", "rocksdb": "rocksdb://"}
    if store not in urls:
        raise typer.BadParameter(f"--store must be one of {sorted(urls)}, got {store!r}")
    run_worker(
        Topics(namespace),
        _bootstrap(bootstrap),
        store=urls[store],
        datadir=datadir,
        loglevel=loglevel,
        session_timeout_s=session_timeout,
        retention_ms=int(retention_hours * 3600 * 1000),
    )


def replay(
    input_root: Annotated[Path, typer.Option("--input", help="Root of the simulated days (payrecon simulate --out).")],
    business_date: Annotated[str, typer.Option("--date", help="Business date to replay, YYYY-MM-DD.")],
    speed: Annotated[
        float | None,
        typer.Option(
            "--speed", help="Event-time speed factor (60 = a minute per second); default: as fast as possible."
        ),
    ] = None,
    namespace: NamespaceOpt = "",
    bootstrap: BootstrapOpt = None,
    ticks: Annotated[bool, typer.Option("--ticks/--no-ticks", help="Close the day with watermark ticks.")] = True,
    prekeyed: Annotated[
        bool,
        typer.Option(
            "--prekeyed/--raw",
            help="Publish callbacks straight to the re-keyed callback topic under their payment_id, instead of "
            "to the raw topic under channel/channel_txn_id (the default, through the worker's re-key agent).",
        ),
    ] = False,
) -> None:
    """Publish a simulated day's stream/events.jsonl to Kafka in arrival order, then end-of-day ticks."""
    from connectors.kafka.admin import ensure_topics
    from connectors.kafka.topics import Topics
    from pipelines.stream.replay import ReplayError, count_events, events_path, publish_day

    day = _date(business_date)
    path = events_path(input_root, day)
    if not path.exists():
        console.print(f"[red]error:[/red] {path}: no such file; simulate the day first (payrecon simulate)")
        raise typer.Exit(2)
    servers = _bootstrap(bootstrap)
    topics = Topics(namespace)
    ensure_topics(servers, topics)
    total = count_events(path)
    with Progress(
        TextColumn("[bold]replay"), BarColumn(), MofNCompleteColumn(), TextColumn("records"), TimeElapsedColumn(),
        console=console,
    ) as progress:  # fmt: skip
        task = progress.add_task("records", total=total)
        try:
            stats = asyncio.run(
                publish_day(
                    servers,
                    topics,
                    input_root,
                    day,
                    speed=speed,
                    ticks=ticks,
                    prekeyed=prekeyed,
                    on_sent=lambda n: progress.advance(task, n),
                )
            )
        except ReplayError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
    rate = (stats.payment_events + stats.channel_callbacks) / max(stats.seconds, 1e-9)
    console.print(
        f"published {stats.payment_events} payment events and {stats.channel_callbacks} callbacks to "
        f"{topics.payment_events} / "
        f"{topics.channel_callbacks if prekeyed else topics.channel_callbacks_raw} in {stats.seconds:.1f} s ({rate:,.0f}/s); "
        f"{stats.ticks} end-of-day ticks at {stats.tick_at.isoformat()}"
    )


def collect_cmd(
    business_date: Annotated[str, typer.Option("--date", help="Business date the CSVs are for, YYYY-MM-DD.")],
    out: Annotated[Path, typer.Option("--out", help="Output root: writes OUT/<date>/stream_breaks.csv.")],
    namespace: NamespaceOpt = "",
    bootstrap: BootstrapOpt = None,
) -> None:
    """Read the break and task topics (last record per id) into OUT/<date>/stream_*.csv."""
    from connectors.kafka.topics import Topics
    from pipelines.stream.collect import collect, write_csvs

    collected = asyncio.run(collect(_bootstrap(bootstrap), Topics(namespace)))
    path = write_csvs(collected, out / _date(business_date).isoformat())
    console.print(
        f"{len(collected.open_breaks())} open breaks ({len(collected.breaks)} in all), {len(collected.tasks)} tasks, "
        f"{len(collected.dlq)} dead-lettered inputs -> {path}"
    )


def run_day(
    input_root: Annotated[Path, typer.Option("--input", help="Root of the simulated days.")],
    business_date: Annotated[str, typer.Option("--date", help="Business date, YYYY-MM-DD.")],
    out: Annotated[Path, typer.Option("--out", help="Output root: writes OUT/<date>/stream_breaks.csv.")],
    bootstrap: BootstrapOpt = None,
) -> None:
    """Worker + replay + wait + collect in one go, in a fresh topic namespace (what `payrecon demo` runs)."""
    from pipelines.stream.demo import run_stream_day

    with console.status("running the day through the stream matcher on Kafka"):
        path = run_stream_day(input_root, _date(business_date), out, bootstrap=_bootstrap(bootstrap))
    console.print(f"stream breaks -> {path}")


def build() -> typer.Typer:
    """The `stream` command group."""
    group = typer.Typer(help="The near-real-time stream matcher on Kafka (Faust).", no_args_is_help=True)
    group.command("worker")(worker)
    group.command("replay")(replay)
    group.command("collect")(collect_cmd)
    group.command("run-day")(run_day)
    return group


def register(app: typer.Typer) -> None:
    """Add `payrecon stream ...` to the main CLI."""
    app.add_typer(build(), name="stream")


if __name__ == "__main__":
    build()()
