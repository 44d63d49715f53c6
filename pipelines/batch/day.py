"""The T+1 day job: one business day from files to breaks, summary and report.

Three steps, so that `payrecon recon` and the Airflow DAG run exactly the same code:

1. `prepare_day`: read `ROOT/<date>/internal/payments.csv` once (strictly typed), gate it, and
   stage our records per channel into the warehouse's Parquet partitions.
2. `reconcile_channel` (one per channel, independent of each other): take in the channel's files
   (parse, map statuses, refuse duplicates, gate; a bad file is quarantined whole with its reason),
   match against our staged records plus yesterday's pending set, decide repair actions, and
   persist breaks, pending set, outbox and counts in one warehouse transaction.
3. `finalize_day`: read the day's results of the channels back from the warehouse and write
   `OUT/<date>/breaks.csv`, `breaks.parquet`, `open_breaks.csv`, `open_breaks.parquet`,
   `summary.json`, then the reports and one set of Data Docs for the whole day
   (`OUT/<date>/data_docs/`, from the gate results steps 1 and 2 kept).

Nothing reads the clock: every date comes from the business date, so a rerun writes the same bytes.

A day larger than memory takes the same steps: an extract over `INTERNAL_BLOCK_BYTES` is read,
gated and staged a block at a time, and a channel with more than `shards.SHARD_ROWS` rows on a
side is matched in shards cut from its staged partitions (`pipelines.batch.shards`); the outputs
are the same bytes as a run in one piece.
"""

from __future__ import annotations

import json
import logging
import pickle
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from connectors.statements import ParsedFile, StatementError
from connectors.warehouse import OUTBOX_COLUMNS, PENDING_COLUMNS, Warehouse
from pipelines import failpoints
from pipelines.batch import gates
from pipelines.batch.engine import ENGINE_BREAK_SCHEMA, ChannelResult, match_channel
from pipelines.batch.late import matched_late
from pipelines.batch.load import (
    INTERNAL_SCHEMA,
    InputFileError,
    channel_files,
    empty_internal,
    empty_lines,
    parse_channel_file,
    read_internal,
    read_internal_blocks,
)
from pipelines.batch.shards import match_in_shards, parquet_rows, shard_count
from pipelines.files import sweep_stale, write_replacing
from pipelines.frames import BREAKS_SCHEMA, CLOSED_BREAKS_SCHEMA
from pipelines.matching.rules import Rule, load_rules
from pipelines.matching.sql import lit, task_id_expr
from pipelines.records import DEFAULT_ACTION, BreakKind, RepairAction

log = logging.getLogger(__name__)

# Which amount a repair task moves, by kind: the difference, our amount, or the channel's.
_DELTA_KINDS = (BreakKind.AMOUNT_MISMATCH, BreakKind.PARTIAL_PAYMENT, BreakKind.FEE_MISMATCH)
_OURS_KINDS = (BreakKind.MISSING_AT_CHANNEL, BreakKind.STATUS_MISMATCH)


# summary.json's carry_forward: our records pending from earlier days and what became of them,
# and the earlier days' breaks a late line or late record of ours of the day answered
# (`pipelines.batch.late`).
CARRY_FORWARD_COUNTS = (
    "pending_in",
    "matched_from_previous",
    "expired_to_breaks",
    "pending_out",
    "breaks_matched_late",
)


@dataclass(frozen=True)
class DayPaths:
    """Where one business day is read from and written to."""

    input_root: Path
    out_root: Path
    business_date: date
    # The quality gate's engine: "auto" (its own choice by size), "gx" or "duckdb".
    quality_engine: str = "auto"
    # Data Docs render the gate's results as HTML through GX (seconds per call); tests skip them.
    data_docs: bool = True

    @property
    def day_in(self) -> Path:
        return self.input_root / self.business_date.isoformat()

    @property
    def day_out(self) -> Path:
        return self.out_root / self.business_date.isoformat()

    @property
    def internal_csv(self) -> Path:
        return self.day_in / "internal" / "payments.csv"

    def channel_dir(self, channel: str) -> Path:
        return self.day_in / "channels" / channel

    def quarantine_dir(self, channel: str) -> Path:
        return self.day_out / "quarantine" / channel


def default_warehouse(out_root: Path) -> Path:
    return out_root / "warehouse.duckdb"


def discover_channels(
    paths: DayPaths, rules: dict[str, Rule], requested: list[str] | None = None, internal: set[str] | None = None
) -> list[str]:
    """The channels to reconcile: `requested`, else every channel with a folder of files for the day
    or with records of ours (`internal`, the channels of payments.csv). A channel without a rule
    file is an error naming it: its records would otherwise drop out of the counts unseen."""
    if requested:
        chosen = set(requested)
    else:
        folders = (
            {p.name for p in (paths.day_in / "channels").iterdir() if p.is_dir()}
            if (paths.day_in / "channels").is_dir()
            else set()
        )
        chosen = folders | (internal or set())
    unknown = sorted(chosen - set(rules))
    if unknown:
        raise ValueError(f"no rule file for channel(s) {', '.join(unknown)}; known: {', '.join(sorted(rules))}")
    return sorted(chosen)


# --- the gate's results of the day, for one set of Data Docs ------------------------------------
def _quality_file(paths: DayPaths, part: str) -> Path:
    return paths.day_out / "quality" / f"{part}.pickle"


def keep_quality(paths: DayPaths, part: str, results: list[Any]) -> None:
    """Keep the gate's results of one part of the day (`internal` or a channel) until
    `finalize_day` renders the day's Data Docs from all of them at once. They go to a file, not
    memory, because under Airflow each part runs in its own task; a rerun of the part replaces
    it. Pickle, because a GX result has no lossless text form; the file is ours, written and read
    by this module inside the day's output folder only."""
    target = _quality_file(paths, part)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL))
    tmp.replace(target)


def kept_quality(paths: DayPaths, parts: list[str]) -> list[Any]:
    """The results `keep_quality` kept for `parts`, in that order (a part with none is skipped)."""
    found: list[Any] = []
    for part in parts:
        target = _quality_file(paths, part)
        if target.exists():
            found += pickle.loads(target.read_bytes())  # our own file, see keep_quality
    return found


# --- step 1 ----------------------------------------------------------------------------------------
def prepare_day(
    wh: Warehouse,
    paths: DayPaths,
    rules: dict[str, Rule],
    requested: list[str] | None = None,
    keep: dict[str, pl.DataFrame] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Stage our records for the day, per channel; returns the rows staged for each channel to
    reconcile (`discover_channels`: the requested ones, else those with files or with records).
    `keep`, when given, receives each channel's staged frame too, so a caller in the same process
    (`run_day`) hands it to `match_and_persist` instead of reading the partition back.

    Raises InputFileError when payments.csv is unreadable or fails the quality gate: without our
    side nothing can be reconciled, so the day stops with the file, line and reason.
    """
    if paths.internal_csv.is_file() and paths.internal_csv.stat().st_size > INTERNAL_BLOCK_BYTES:
        return _prepare_in_blocks(wh, paths, rules, requested, progress)
    frame = read_internal(paths.internal_csv)
    failures, result = gates.check_internal(
        frame, business_date=paths.business_date, source=str(paths.internal_csv), engine=paths.quality_engine
    )
    if failures:
        raise InputFileError(paths.internal_csv, 0, "quality_gate", "; ".join(failures))
    if paths.data_docs:
        keep_quality(paths, "internal", [] if result is None else [result])
    channels = discover_channels(paths, rules, requested, set(frame["channel"].unique().to_list()))
    columns = frame.get_columns()
    del frame  # `columns` now hold the only reference, which _split_by_channel lets go of
    parts = _split_by_channel(columns, channels)
    staged: dict[str, int] = {}
    for channel in channels:
        part = parts.pop(channel)
        wh.write_partition("internal", paths.business_date, channel, part)
        staged[channel] = part.height
        if keep is not None:
            keep[channel] = part
        del part
    return staged


# An extract larger than this is read, gated and staged a block of about this size at a time, so
# the day's peak memory no longer grows with it (the text of 2 GiB of extract, about 13 million
# payments, takes about 4.5 GB to read and convert). Smaller ones are read whole, which is faster.
INTERNAL_BLOCK_BYTES = 2 * 1024**3


def _prepare_in_blocks(
    wh: Warehouse,
    paths: DayPaths,
    rules: dict[str, Rule],
    requested: list[str] | None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """`prepare_day` for a large extract: each block is read, gated and split by channel, and its
    parts are written as further files of each channel's partition; the partitions change only
    after the last block passed (and the ids were found unique across blocks), so a refused
    extract stages nothing. Nothing is kept in memory for the match: it reads the partitions."""
    day, source = paths.business_date, paths.internal_csv
    parts: Counter[str] = Counter()
    staged: Counter[str] = Counter()
    results: list[Any] = []
    try:
        for first_line, block in read_internal_blocks(source, INTERNAL_BLOCK_BYTES):
            last_line = first_line + block.height - 1
            if progress:
                progress(f"internal lines {first_line:,}-{last_line:,}")
            failures, result = gates.check_internal(
                block, business_date=day, source=f"{source} lines {first_line}-{last_line}", engine=paths.quality_engine
            )
            if failures:
                raise InputFileError(source, first_line, "quality_gate", "; ".join(failures))
            if result is not None:
                results.append(result)
            present = set(block["channel"].unique().to_list())
            names = sorted(present & set(requested) if requested else present)
            columns = block.get_columns()
            del block
            split = _split_by_channel(columns, names)
            # The previous block's parts are written while this one was read; wait for them
            # before handing over this one's, so at most two blocks are held.
            wh.wait_for_writes()
            for channel in names:
                part = split.pop(channel)
                wh.write_partition_part("internal", day, channel, parts[channel], part)
                parts[channel] += 1
                staged[channel] += part.height
                del part
        channels = discover_channels(paths, rules, requested, set(parts))
    except BaseException:
        for channel in parts:
            wh.discard_partition_parts("internal", day, channel)
        raise
    if paths.data_docs:
        keep_quality(paths, "internal", results)
    for channel in channels:
        if parts[channel]:
            wh.commit_partition_parts("internal", day, channel, parts[channel])
        else:
            wh.write_partition("internal", day, channel, empty_internal())
    return {channel: staged[channel] for channel in channels}


def _split_by_channel(columns: list[pl.Series], channels: list[str]) -> dict[str, pl.DataFrame]:
    """The rows of each of `channels` (by the `channel` column), in file order, each column in one
    chunk. `columns` (a frame's, in order) is emptied on the way.

    Two columns at a time, each input column let go once split, so the extract is never held twice (a
    copy of it is about 2.5 GB at 10M rows: filtering the frame channel by channel peaked at the
    whole extract plus every part). That frees memory only when the caller holds no other reference
    to the columns. One chunk per column, because the match gathers rows by position (slow across
    the hundreds of chunks the CSV reader leaves), and a part that holds only its own strings lets
    go of them once it is matched."""
    owner = next(column for column in columns if column.name == "channel")
    masks = {channel: owner == channel for channel in channels}
    del owner
    split: dict[str, list[pl.Series]] = {channel: [] for channel in channels}
    while columns:
        # Two columns at a time: Polars filters a frame's columns in parallel (2.2 s to 1.5 s for
        # the 10M-row extract on two cores), and two columns are all that is held twice.
        group = pl.DataFrame(columns[:2])
        del columns[:2]
        for channel in channels:
            split[channel] += group.filter(masks[channel]).rechunk().get_columns()
        del group
    return {channel: pl.DataFrame(split.pop(channel)) for channel in channels}


# --- step 2 ----------------------------------------------------------------------------------------
@dataclass
class Intake:
    lines: pl.DataFrame
    accepted: list[str] = field(default_factory=list)
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    quality: list[Any] = field(default_factory=list)


def _quarantine(paths: DayPaths, channel: str, path: Path, exc: StatementError, sha256: str | None) -> dict[str, Any]:
    """Copy a refused file into the day's quarantine folder beside a `.reason.json`; the input
    tree is never changed, so a rerun sees the same files."""
    target_dir = paths.quarantine_dir(channel)
    target_dir.mkdir(parents=True, exist_ok=True)
    sweep_stale(target_dir)
    # Each whole or not at all, the file first: a reason never stands beside half a file.
    write_replacing(target_dir / path.name, partial(shutil.copyfile, path))
    entry = {"file": path.name, "reason": exc.reason, "detail": exc.detail, "line": exc.line, "sha256": sha256}
    note = json.dumps({"channel": channel, "business_date": paths.business_date.isoformat(), **entry}, indent=2,
                      sort_keys=True) + "\n"  # fmt: skip
    write_replacing(target_dir / f"{path.name}.reason.json", lambda p: p.write_text(note))
    return entry


def _parse_or_refuse(path: Path, rule: Rule, day: date) -> tuple[ParsedFile, pl.DataFrame]:
    """`parse_channel_file`, with a failure the parser does not name (a bug of ours on a file it
    did not foresee) refused as `parser_error`: the file is quarantined, with the exception, and
    the day goes on with the channel's other files and the other channels. An OSError (the disk,
    the file system) is raised as it is, for the task's retry."""
    try:
        return parse_channel_file(path, rule, day)
    except (StatementError, OSError):
        raise
    except Exception as exc:
        log.exception("parser %s failed on %s", rule.parser, path)
        raise StatementError(path, 0, "parser_error", f"{type(exc).__name__}: {exc}") from exc


def take_in_files(wh: Warehouse, paths: DayPaths, rule: Rule) -> Intake:
    """Parse, check and claim every file of the channel's day; refused files are quarantined."""
    channel, day = rule.channel, paths.business_date
    shutil.rmtree(paths.quarantine_dir(channel), ignore_errors=True)
    wh.release_files(day, channel)
    intake = Intake(lines=empty_lines())
    frames = []
    for path in channel_files(paths.channel_dir(channel)):
        sha = None
        try:
            parsed, frame = _parse_or_refuse(path, rule, day)
            sha, controls = parsed.sha256, parsed.controls
            # The lines as parsed are the mapped ones without their status (`frame` holds them
            # again, in one chunk): let go of the parser's copy (0.7 GB at five million lines).
            del parsed
            # The gate judges the file as parsed (LINE_SCHEMA), before our status column is added.
            failures, result = gates.check_statement(
                frame.drop("status"),
                rule=rule,
                business_date=day,
                source=str(path),
                controls=controls,
                engine=paths.quality_engine,
            )
            if result is not None:
                intake.quality.append(result)
            if failures:
                raise StatementError(path, 0, "quality_gate", "; ".join(failures))
            prior = wh.claim_file(
                sha, business_date=day, channel=channel, source_file=path.name, rows=frame.height, format=rule.parser
            )
            if prior is not None:
                raise StatementError(path, 0, "duplicate_file", f"the same bytes were taken in as {prior}")
        except StatementError as exc:
            intake.quarantined.append(_quarantine(paths, channel, path, exc, sha))
            continue
        frames.append(frame)
        intake.accepted.append(path.name)
    if frames:
        intake.lines = pl.concat(frames, how="vertical")
    return intake


def _with_carry_forward(day: date, today: pl.DataFrame, pending: pl.DataFrame) -> pl.DataFrame:
    """Today's records of the channel plus yesterday's pending ones (today's version wins when a
    record is in both; it keeps the date it first appeared), with `since_date`. Whether a record
    was created after the rule's cutoff (`after_cutoff`) is left to the engine, which needs it only
    for the records the fast path leaves (0.3 s for five million records at 10M payments)."""
    today = today.with_columns(pl.lit(day, dtype=pl.Date).alias("since_date"))
    if pending.height:
        schema: dict[str, pl.DataType] = {**INTERNAL_SCHEMA, "since_date": pl.Date()}
        pending = pending.select(PENDING_COLUMNS).select(pl.col(n).cast(t) for n, t in schema.items())
        first_seen = pending.select("payment_id", pl.col("since_date").alias("_first"))
        today = (
            today.join(first_seen, on="payment_id", how="left")
            .with_columns(pl.coalesce("_first", "since_date").alias("since_date"))
            .drop("_first")
        )
        carried = pending.join(today.select("payment_id"), on="payment_id", how="anti")
        today = pl.concat([today, carried], how="vertical")
    return today


def _actions(con: duckdb.DuckDBPyConnection, rule: Rule, day: date, breaks: pl.DataFrame) -> pl.DataFrame:
    """The breaks with `action`, `requires_approval`, `task_amount_minor` and `task_id`.

    The action is the kind's default (STATUS_MISMATCH: CONFIRM_SUCCESS when the channel moved the
    money, else CONFIRM_FAILURE), raised to MANUAL_REVIEW with approval when the task's amount
    exceeds the rule's approval threshold. The amount is |delta| for amount, partial and fee
    breaks, ours for missing-at-channel and status breaks, the channel's for the others."""
    defaults = " ".join(f"WHEN {lit(k.value)} THEN {lit(a.value)}" for k, a in DEFAULT_ACTION.items())
    delta_kinds = ", ".join(lit(k.value) for k in _DELTA_KINDS)
    ours_kinds = ", ".join(lit(k.value) for k in _OURS_KINDS)
    none, review = lit(RepairAction.NONE.value), lit(RepairAction.MANUAL_REVIEW.value)
    con.register("eb", breaks)
    try:
        return con.sql(f"""
            WITH a AS (
                SELECT *,
                       CASE WHEN kind IN ({delta_kinds}) THEN abs(delta_minor)
                            WHEN kind IN ({ours_kinds}) THEN abs(internal_amount_minor)
                            ELSE abs(channel_amount_minor) END AS task_amount_minor,
                       CASE WHEN kind = {lit(BreakKind.STATUS_MISMATCH)}
                            THEN CASE WHEN channel_succeeded THEN {lit(RepairAction.CONFIRM_SUCCESS)}
                                      ELSE {lit(RepairAction.CONFIRM_FAILURE)} END
                            ELSE CASE kind {defaults} END END AS default_action
                FROM eb)
            SELECT * EXCLUDE (default_action),
                   default_action <> {none} AND task_amount_minor > {rule.approval_threshold_minor} AS requires_approval,
                   CASE WHEN default_action <> {none} AND task_amount_minor > {rule.approval_threshold_minor}
                        THEN {review} ELSE default_action END AS action
            FROM a ORDER BY break_id""").pl()
    finally:
        con.unregister("eb")


def _outbox(con: duckdb.DuckDBPyConnection, rule: Rule, day: date, breaks: pl.DataFrame) -> pl.DataFrame:
    """One repair task per break with an action (OUTBOX_COLUMNS); `task_id` is
    `records.task_id(break_id, action)`, `created_at` the end of the business day (never the clock)."""
    created = datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)
    con.register("ab", breaks)
    try:
        return con.sql(
            f"""
            SELECT {task_id_expr("break_id", "action")} AS task_id, break_id, action, payment_id,
                   task_amount_minor AS amount_minor, currency,
                   kind || ' on ' || channel || ': ours ' || coalesce(internal_amount_minor::VARCHAR, '-')
                        || ', channel ' || coalesce(channel_amount_minor::VARCHAR, '-') || ' ' || currency
                        || ' minor units; rule ' || rule_id AS reason,
                   requires_approval, ?::TIMESTAMPTZ AS created_at, trace_id, ?::DATE AS business_date,
                   channel
            FROM ab WHERE action <> {lit(RepairAction.NONE.value)} ORDER BY task_id""",
            params=[created, day],
        ).pl()
    finally:
        con.unregister("ab")


def _risk(breaks: pl.DataFrame) -> pl.Expr:
    return pl.coalesce(
        pl.col("delta_minor").abs(), pl.col("channel_amount_minor").abs(), pl.col("internal_amount_minor").abs()
    )


def _risk_by_currency(breaks: pl.DataFrame) -> dict[str, int]:
    risk = breaks.group_by("currency").agg(_risk(breaks).sum().alias("risk")).sort("currency")
    return {row[0]: int(row[1]) for row in risk.iter_rows()}


@dataclass
class ChannelDay:
    """A channel's day as persisted: its entry of summary.json (its breaks: `Warehouse.breaks_of_day`)."""

    channel: str
    summary: dict[str, Any]


def take_in_channel(wh: Warehouse, paths: DayPaths, rule: Rule) -> tuple[dict[str, Any], pl.DataFrame]:
    """Parse, validate and stage the channel's files of the day (the lines partition is
    overwritten). Returns the intake report (`accepted` file names, `quarantined` entries; plain
    JSON, so an Airflow task can pass it on) and the accepted lines (MAPPED_LINE_SCHEMA)."""
    intake = take_in_files(wh, paths, rule)
    wh.write_partition("lines", paths.business_date, rule.channel, intake.lines)
    if paths.data_docs:
        keep_quality(paths, rule.channel, intake.quality)
    return {"accepted": intake.accepted, "quarantined": intake.quarantined}, intake.lines


def match_and_persist(
    wh: Warehouse,
    paths: DayPaths,
    rule: Rule,
    report: dict[str, Any],
    lines: pl.DataFrame | None = None,
    staged: pl.DataFrame | None = None,
    progress: Callable[[str], None] | None = None,
) -> ChannelDay:
    """Match the channel's staged lines (or `lines`, when the caller still holds them) against our
    staged records (or `staged`, likewise) plus the pending set, decide actions, and persist
    breaks, pending set, outbox and counts in one transaction. Returns the channel's summary entry
    (its reported breaks are read from the warehouse by whoever needs them: `finalize_day`).

    When no file of the channel was accepted (none arrived, or all were quarantined) the channel is
    held: our records stay pending and no break is raised or closed for it.
    """
    channel, day = rule.channel, paths.business_date
    quarantined: list[dict[str, Any]] = [dict(q) for q in report["quarantined"]]
    accepted: list[str] = list(report["accepted"])
    held = not accepted
    shards = 1 if held else channel_shards(wh, paths, rule, staged, lines)
    if shards > 1:
        lines = staged = None  # the shards are cut from the staged partitions
        result = match_in_shards(wh, rule, day, wh.pending_before(day, channel), shards, _with_carry_forward, progress)
    else:
        if lines is None:
            lines = wh.read_partition("lines", day, channel)
            if lines is None:
                raise FileNotFoundError(f"the lines of {channel} for {day} are not staged; run take_in_channel first")
        if staged is None:
            staged = wh.read_partition("internal", day, channel)
        if staged is None:
            raise FileNotFoundError(f"our records of {channel} for {day} are not staged; run prepare_day first")
        internal = _with_carry_forward(day, staged, wh.pending_before(day, channel))
        del staged
        if held:
            result = ChannelResult(
                breaks=pl.DataFrame(schema=ENGINE_BREAK_SCHEMA),
                pending=internal,
                internal={
                    "rows_in": internal.height,
                    "matched": 0,
                    "pending": internal.height,
                    "breaks": 0,
                    "rejected": 0,
                },
                channel={"rows_in": 0, "matched": 0, "pending": 0, "breaks": 0, "rejected": 0},
                carry_forward={
                    "pending_in": int((internal["since_date"] < day).sum()),
                    "matched_from_previous": 0,
                    "expired_to_breaks": 0,
                    "pending_out": internal.height,
                },
            )
            if not quarantined:
                quarantined.append(
                    {"file": f"channels/{channel}/", "reason": "no_files", "detail": "no file arrived", "line": 0}
                )
        else:
            con = duckdb.connect()
            try:
                result = match_channel(con, rule, day, internal, lines)
            finally:
                con.close()
        del internal
    late = None if held else matched_late(wh, rule, day, result.breaks, lines)
    del lines
    if late is not None and late.height:
        # Today's break a late counterpart answers is not raised: its line or record is matched.
        n_lines = int((late["late"] == "line").sum())
        n_records = late.height - n_lines
        result = replace(
            result,
            breaks=result.breaks.filter(~pl.col("break_id").is_in(late["new_break_id"].implode())),
            internal={
                **result.internal,
                "matched": result.internal["matched"] + n_records,
                "breaks": result.internal["breaks"] - n_records,
            },
            channel={
                **result.channel,
                "matched": result.channel["matched"] + n_lines,
                "breaks": result.channel["breaks"] - n_lines,
            },
        )
        # A record carried forward that expired today and found its line late is matched, not expired.
        n_carried = int(late["carried"].sum())
        result.carry_forward["expired_to_breaks"] -= n_carried
        result.carry_forward["matched_from_previous"] += n_carried
    result.carry_forward["breaks_matched_late"] = 0 if late is None else late.height
    con = duckdb.connect()
    try:
        decided = _actions(con, rule, day, result.breaks)
        outbox = _outbox(con, rule, day, decided)
    finally:
        con.close()
    by_kind = dict(sorted(Counter(decided["kind"].to_list()).items()))
    in_currency = decided.filter(pl.col("currency") == rule.currency)
    summary: dict[str, Any] = {
        "currency": rule.currency,
        "internal": result.internal,
        "channel": result.channel,
        "breaks_by_kind": by_kind,
        "amount_at_risk_minor": int(in_currency.select(_risk(in_currency).sum()).item() or 0),
        "quarantined": [{k: q[k] for k in ("file", "reason", "detail")} for q in quarantined],
    }
    stored = {"channel": summary, "carry_forward": result.carry_forward, "rule": rule.ref}
    wh.save_channel_day(
        day,
        channel,
        rule_ref=rule.ref,
        breaks=decided,
        pending=result.pending.select(PENDING_COLUMNS),
        outbox=outbox.select(OUTBOX_COLUMNS),
        quarantined=quarantined,
        summary=stored,
        reconciled=not held,
        matched_late=late,
    )
    return ChannelDay(channel, summary)


def reconcile_channel(
    wh: Warehouse,
    paths: DayPaths,
    rule: Rule,
    staged: pl.DataFrame | None = None,
    progress: Callable[[str], None] | None = None,
) -> ChannelDay:
    """Take in the channel's files and reconcile them (`take_in_channel` then `match_and_persist`);
    `staged`: our records of the channel as `prepare_day` staged them, when the caller holds them;
    `progress(step)` is told of each shard when the channel is matched in shards."""
    report, lines = take_in_channel(wh, paths, rule)
    if report["accepted"] and channel_shards(wh, paths, rule, staged, lines) > 1:
        # Matched in shards from the staged partitions: holding the whole channel here would
        # keep it in memory all through.
        del lines, staged
        return match_and_persist(wh, paths, rule, report, progress=progress)
    return match_and_persist(wh, paths, rule, report, lines, staged, progress)


def channel_shards(
    wh: Warehouse, paths: DayPaths, rule: Rule, staged: pl.DataFrame | None, lines: pl.DataFrame | None
) -> int:
    """How many shards the channel's day is matched in (`pipelines.batch.shards`), from the rows
    of our staged records and of its lines (the frames when held, else the partitions' footers)."""
    day = paths.business_date
    records = staged.height if staged is not None else parquet_rows(wh.partition_files("internal", day, rule.channel))
    count = lines.height if lines is not None else parquet_rows(wh.partition_files("lines", day, rule.channel))
    return shard_count(rule, records, count)


# --- step 3 ----------------------------------------------------------------------------------------
def build_summary(wh: Warehouse, day: date, channels: list[str]) -> dict[str, Any]:
    """The day's summary.json (the shape agreed with the reports) from the channels' stored runs."""
    summary: dict[str, Any] = {"business_date": day.isoformat(), "rules": {}, "channels": {}}
    kinds: Counter[str] = Counter()
    carry: Counter[str] = Counter(dict.fromkeys(CARRY_FORWARD_COUNTS, 0))
    closed = 0
    for channel in channels:
        stored = wh.run_summary(day, channel)
        if stored is None:
            raise RuntimeError(f"channel {channel} has no stored run for {day}; run reconcile_channel first")
        summary["rules"][channel] = stored["rule"]
        summary["channels"][channel] = stored["channel"]
        kinds.update(stored["channel"]["breaks_by_kind"])
        carry.update(stored["carry_forward"])
        closed += wh.closed_on(day, channel)
    summary["breaks_by_kind"] = dict(sorted(kinds.items()))
    summary["carry_forward"] = {k: int(carry[k]) for k in CARRY_FORWARD_COUNTS}
    summary["breaks_closed"] = closed
    return summary


def _outputs_engine(engine: str, summary: dict[str, Any]) -> str:
    """The output gate's engine. Under `auto` the gate picks by the table's rows, and a big day has
    few breaks, so it would run GX on them and pay GX's import (5-15 s) to check a table DuckDB
    checks in milliseconds. A day whose inputs are past the gate's GX limit is checked in DuckDB
    throughout (the same checks and messages)."""
    from pipelines.quality import GX_ROWS_MAX

    rows_in = sum(c[side]["rows_in"] for c in summary["channels"].values() for side in ("internal", "channel"))
    return "duckdb" if engine == "auto" and rows_in >= GX_ROWS_MAX else engine


def finalize_day(wh: Warehouse, paths: DayPaths, channels: list[str]) -> dict[str, Path]:
    """Write the day's breaks.csv and .parquet, open_breaks.csv and .parquet (every break of the
    channels still open on the day), closed_breaks.csv and .parquet (those closed on it, and how)
    and summary.json (then the quality report of the outputs and
    the finance reports); returns the paths written by name."""
    day = paths.business_date
    breaks = wh.breaks_of_day(day, channels).cast(BREAKS_SCHEMA)  # type: ignore[arg-type]
    summary = build_summary(wh, day, channels)
    summary["amount_at_risk_minor_by_currency"] = _risk_by_currency(breaks)
    # Every break of these channels still open on the day, earlier days' included: what finance
    # follows until it is repaired or written off (the reports' aging is of these).
    open_breaks = wh.open_breaks(day, channels).cast(BREAKS_SCHEMA)  # type: ignore[arg-type]
    # Every break of the day still open on it is in the list once (the list is built separately,
    # from the history and the break states: a disagreement is a bug, never a report).
    listed = open_breaks["break_id"]
    still_open = breaks.filter(pl.col("status").is_in(["OPEN", "REPAIRING"]))["break_id"]
    if not listed.is_unique().all() or not still_open.is_in(listed.implode()).all():
        raise AssertionError(f"the open breaks of {day} disagree with the day's breaks")
    # The breaks closed on the day, and how: what finance reviews of what closed without a person.
    closed_breaks = wh.closed_breaks(day, channels).cast(CLOSED_BREAKS_SCHEMA)  # type: ignore[arg-type]
    if closed_breaks.height != summary["breaks_closed"] or not closed_breaks["break_id"].is_unique().all():
        raise AssertionError(f"the closed breaks of {day} disagree with the day's count")
    summary["open_breaks"] = {
        "count": open_breaks.height,
        "from_earlier_days": open_breaks.filter(pl.col("business_date") < day).height,
        "amount_at_risk_minor_by_currency": _risk_by_currency(open_breaks),
    }
    for side_counts in summary["channels"].values():
        for side in ("internal", "channel"):
            c = side_counts[side]
            assert c["rows_in"] == c["matched"] + c["pending"] + c["breaks"] + c["rejected"], (side, c)
    out = paths.day_out
    out.mkdir(parents=True, exist_ok=True)
    sweep_stale(out)  # what a run killed mid-write left
    written = {
        "breaks.csv": out / "breaks.csv",
        "breaks.parquet": out / "breaks.parquet",
        "open_breaks.csv": out / "open_breaks.csv",
        "open_breaks.parquet": out / "open_breaks.parquet",
        "closed_breaks.csv": out / "closed_breaks.csv",
        "closed_breaks.parquet": out / "closed_breaks.parquet",
        "summary.json": out / "summary.json",
    }
    # Each file whole or not at all (written beside it and renamed), summary.json last: a run
    # killed between two files leaves the earlier ones complete, and its rerun rewrites them all.
    for name, frame in (("breaks", breaks), ("open_breaks", open_breaks), ("closed_breaks", closed_breaks)):
        write_replacing(written[f"{name}.csv"], partial(frame.write_csv, date_format="%Y-%m-%d"))
        failpoints.reached(f"output:{name}.csv")
        write_replacing(written[f"{name}.parquet"], partial(frame.write_parquet, compression="zstd", statistics=False))
        failpoints.reached(f"output:{name}.parquet")
    text = json.dumps(summary, indent=2) + "\n"
    write_replacing(written["summary.json"], lambda p: p.write_text(text, encoding="utf-8"))
    failpoints.reached("output:summary.json")
    failures, result = gates.check_outputs(summary, breaks, engine=_outputs_engine(paths.quality_engine, summary))
    if failures:
        raise AssertionError(f"the day's outputs fail the quality gate: {'; '.join(failures)}")
    if paths.data_docs:
        day_results = kept_quality(paths, ["internal", *channels]) + ([] if result is None else [result])
        docs = gates.data_docs(day_results, out)
        if docs is not None:
            written["data_docs"] = docs
    history = wh.history_summary(day)
    for path in gates.reports(
        out,
        business_date=day,
        breaks=breaks,
        summary=summary,
        history=history,
        open_breaks=open_breaks,
        closed_breaks=closed_breaks,
    ):
        written[path.name] = path
    failpoints.reached("output:reports")
    return written


@dataclass
class DayResult:
    summary: dict[str, Any]
    outputs: dict[str, Path]
    channels: list[str]


def run_day(
    business_date: date,
    input_root: Path,
    out_root: Path,
    *,
    warehouse: Path | None = None,
    channels: list[str] | None = None,
    rules_dir: Path | None = None,
    quality_engine: str = "auto",
    data_docs: bool = True,
    progress: Any = None,
) -> DayResult:
    """Reconcile one business day: read `input_root/<date>/`, write `out_root/<date>/`, keep state
    in `warehouse` (default `out_root/warehouse.duckdb`). `quality_engine` picks the gate's engine
    ("auto", "gx", "duckdb"); `data_docs` False skips the HTML Data Docs. `progress(step: str)` is called per step."""
    rules = load_rules(rules_dir) if rules_dir else load_rules()
    paths = DayPaths(Path(input_root), Path(out_root), business_date, quality_engine, data_docs)
    # Staging Parquet is written on a thread while the next step goes on (this process holds
    # the frames anyway); the run waits for every write before it writes the day's outputs.
    with Warehouse(warehouse or default_warehouse(Path(out_root)), background_writes=True) as wh:
        if progress:
            progress("internal")
        # Each channel's records go from staging to matching in memory (the partitions are still
        # written, for the warehouse and the DAG's separate tasks); each is dropped once matched.
        held: dict[str, pl.DataFrame] = {}
        staged = prepare_day(wh, paths, rules, channels, keep=held, progress=progress)
        failpoints.reached("staged")
        chosen = sorted(staged)
        # Smallest first: a channel's match then holds its own records and only the larger ones'
        # still waiting, so the largest is matched alone (the order changes no output).
        for channel in sorted(chosen, key=lambda c: (staged[c], c)):
            if progress:
                progress(channel)
            reconcile_channel(wh, paths, rules[channel], held.pop(channel, None), progress)
        if progress:
            progress("outputs")
        wh.wait_for_writes()
        outputs = finalize_day(wh, paths, chosen)
        summary = json.loads(outputs["summary.json"].read_text())
    return DayResult(summary, outputs, chosen)
