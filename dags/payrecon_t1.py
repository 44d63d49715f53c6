"""payrecon_t1: the T+1 reconciliation of one business day, one mapped task group per channel.

    plan ─▶ stage_internal (returns the channels) ─▶ channel[c] (mapped per channel):
                                wait_for_files ─▶ take_in (parse, validate, stage) ─▶ reconcile
                                (match, persist breaks and the outbox in one transaction)
                             ─▶ report (breaks.csv/.parquet, open_breaks.csv/.parquet, summary.json,
                                         report.xlsx/html)

The business date is the run's logical date (a daily schedule reconciles the day its interval
covers) or the `business_date` param. Every task writes a partition keyed by business date and
channel and replaces what an earlier try wrote, and no task reads the clock: a retry, a rerun or a
backfill gives the same outputs as `payrecon recon` on the same day (tests/dags checks it).

Paths come from the params, whose defaults are the environment variables PAYRECON_INPUT_ROOT and
PAYRECON_OUT_ROOT. Heavy imports stay inside the tasks so the scheduler parses this file quickly.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Param, PokeReturnValue, dag, get_current_context, task, task_group

# How long a channel's files may be late before its group fails (and is retried).
FILES_WAIT_S_MAX = 2 * 3600
FILES_POKE_S = 60

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "payrecon",
    "retries": 3,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}


def _paths(plan: dict[str, Any]) -> Any:
    from datetime import date
    from pathlib import Path

    from pipelines.batch.day import DayPaths

    return DayPaths(
        Path(plan["input_root"]),
        Path(plan["out_root"]),
        date.fromisoformat(plan["business_date"]),
        plan["quality_engine"],
        plan["data_docs"],
    )


def _warehouse(plan: dict[str, Any]) -> Any:
    from pathlib import Path

    from connectors.warehouse import Warehouse
    from pipelines.batch.day import default_warehouse

    return Warehouse(Path(plan["warehouse"]) if plan["warehouse"] else default_warehouse(Path(plan["out_root"])))


@dag(
    dag_id="payrecon_t1",
    description="T+1 reconciliation: channel files against our records, breaks, outbox and reports",
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["payrecon", "t+1"],
    params={
        "business_date": Param(None, type=["null", "string"], description="YYYY-MM-DD; default: the logical date"),
        "input_root": Param(os.environ.get("PAYRECON_INPUT_ROOT", "data/samples"), type="string"),
        "out_root": Param(os.environ.get("PAYRECON_OUT_ROOT", "out"), type="string"),
        "warehouse": Param("", type="string", description="DuckDB file; default OUT/warehouse.duckdb"),
        "channels": Param([], type="array", description="only these channels; default: every channel with files"),
        "quality_engine": Param("auto", enum=["auto", "gx", "duckdb"]),
        "data_docs": Param(True, type="boolean"),
    },
)
def payrecon_t1() -> None:
    @task
    def plan() -> dict[str, Any]:
        """Resolve the business date, the paths and the channels of this run (no clock read)."""
        context = get_current_context()
        params = context["params"]
        day = params.get("business_date")
        if not day:
            logical = context.get("logical_date")
            if logical is None:
                raise ValueError("no business_date param and no logical date: trigger with a logical date or the param")
            day = logical.date().isoformat()
        return {
            "business_date": day,
            "input_root": str(params["input_root"]),
            "out_root": str(params["out_root"]),
            "warehouse": str(params["warehouse"]),
            "channels": list(params["channels"]),
            "quality_engine": params["quality_engine"],
            "data_docs": bool(params["data_docs"]),
        }

    @task
    def stage_internal(plan: dict[str, Any]) -> list[str]:
        """Read and gate internal/payments.csv once; stage our records per channel. Returns the
        channels to reconcile: the requested ones, else those with files or records of ours."""
        from pipelines.batch.day import prepare_day
        from pipelines.matching.rules import load_rules

        with _warehouse(plan) as wh:
            staged = prepare_day(wh, _paths(plan), load_rules(), plan["channels"] or None)
        return sorted(staged)

    @task_group(group_id="channel")
    def per_channel(plan: dict[str, Any], channel: str) -> None:
        @task.sensor(poke_interval=FILES_POKE_S, timeout=FILES_WAIT_S_MAX, mode="reschedule")
        def wait_for_files(plan: dict[str, Any], channel: str) -> PokeReturnValue:
            """Done when the channel's folder for the day holds at least one file."""
            from pipelines.batch.load import channel_files

            files = channel_files(_paths(plan).channel_dir(channel))
            return PokeReturnValue(is_done=bool(files), xcom_value=[f.name for f in files])

        @task
        def take_in(plan: dict[str, Any], channel: str) -> dict[str, Any]:
            """Parse, validate and stage the files; a bad or duplicate file is quarantined whole."""
            from pipelines.batch.day import take_in_channel
            from pipelines.matching.rules import rule_for

            with _warehouse(plan) as wh:
                report, _ = take_in_channel(wh, _paths(plan), rule_for(channel))
            return report

        @task
        def reconcile(plan: dict[str, Any], channel: str, intake: dict[str, Any]) -> dict[str, Any]:
            """Match, persist breaks and pending set, and hand the repairs to the outbox."""
            from pipelines.batch.day import match_and_persist
            from pipelines.matching.rules import rule_for

            with _warehouse(plan) as wh:
                result = match_and_persist(wh, _paths(plan), rule_for(channel), intake)
            summary: dict[str, Any] = result.summary
            return summary

        # At parse time a task's call gives an XComArg that Airflow resolves to the value when the
        # task runs: typed Any here, so that mypy checks the tasks' own signatures above.
        files: Any = wait_for_files(plan, channel)
        intake: Any = take_in(plan, channel)
        files >> intake
        reconcile(plan, channel, intake)

    @task
    def report(plan: dict[str, Any], channels: list[str]) -> dict[str, str]:
        """Write the day's breaks, summary and reports from the warehouse."""
        from pipelines.batch.day import finalize_day

        with _warehouse(plan) as wh:
            written = finalize_day(wh, _paths(plan), channels)
        return {name: str(path) for name, path in written.items()}

    the_plan: Any = plan()
    channels: Any = stage_internal(the_plan)
    groups = per_channel.partial(plan=the_plan).expand(channel=channels)
    groups >> report(the_plan, channels)


DAG_T1 = payrecon_t1()
