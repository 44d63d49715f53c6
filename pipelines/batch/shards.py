"""Matching one channel's day in shards, when it is too large to match in memory at once.

`match_channel` holds the channel's records and lines in memory, about 0.3 GB per million of each
with the match's own tables. A channel with more than `SHARD_ROWS` rows on a side is cut into
shards that can each be matched alone, and `match_channel` runs once per shard; the shards'
breaks, pending records and counts add up to what one match over the whole channel would give
(a test holds the two to the same outputs, byte for byte).

Why shards can be matched alone: the engine's passes relate a line to our records only through
keys, so everything that can meet must share a shard.
- Our record goes to the shard of its `channel_txn_id`'s hash; records with the same id meet
  (an id on two records is AMBIGUOUS). A record without one goes to shard 0: only such records
  can be paired by `amount_time`, and every line left for that pass goes to shard 0 as well.
- A line goes where the first of the rule's keys that finds any of our records sends it: by
  `channel_txn_id` to that id's shard, by `payment_id` to the shard of the record with that id;
  a line no key finds goes to shard 0, where it meets the `amount_time` candidates. A line is
  taken by the first pass whose key finds a record, so no later pass could have given it to a
  record in another shard. That holds when `amount_time` is the last key (`shardable`).
- A record carried forward from an earlier day goes where today's version of it goes, if there
  is one (today's version replaces it), else by its own id.

The shards are cut by DuckDB from the staged Parquet partitions into a scratch folder beside them
(spilling to disk above `MEMORY_LIMIT`), so the channel is never whole in memory, and read back
one shard at a time.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from connectors.warehouse import Warehouse
from pipelines.batch.engine import BREAK_PICK_COLUMNS, ENGINE_BREAK_SCHEMA, ChannelResult, match_channel
from pipelines.batch.load import MAPPED_LINE_SCHEMA
from pipelines.frames import INTERNAL_SCHEMA, as_arrow
from pipelines.matching.rules import MatchKey, Rule

# The most rows of either side matched at once (a shard's match then holds about 2.5 GB).
SHARD_ROWS = 8_000_000
# DuckDB's memory while it cuts the shards (nothing else of the channel is held then): half of
# the machine's, beyond which it spills to the scratch folder. Cutting 20M rows took 48 s at a
# 4 GB limit and 36 s at 14 GB (the joins and the partitioned writes spilled less).
MEMORY_LIMIT = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 2 // 2**20}MiB"


def shardable(rule: Rule) -> bool:
    """Whether the rule's passes allow matching in shards: `amount_time`, if used, comes last."""
    keys = list(rule.match_keys)
    return MatchKey.AMOUNT_TIME not in keys[:-1]


def shard_count(rule: Rule, records: int, lines: int) -> int:
    """How many shards a channel with `records` of ours and `lines` lines is matched in."""
    if not shardable(rule):
        return 1
    return max(1, math.ceil(max(records, lines) / SHARD_ROWS))


def parquet_rows(files: Sequence[Path]) -> int:
    """The rows of Parquet files, from their footers."""
    if not files:
        return 0
    return int(pl.scan_parquet(list(files)).select(pl.len()).collect().item())


def _files_sql(files: Sequence[Path]) -> str:
    return "[" + ", ".join("'" + str(f).replace("'", "''") + "'" for f in files) + "]"


def _cut(
    con: duckdb.DuckDBPyConnection,
    rule: Rule,
    shards: int,
    internal_files: Sequence[Path],
    line_files: Sequence[Path],
    pending: pl.DataFrame,
    scratch: Path,
) -> pl.DataFrame:
    """Write our records and the lines into `scratch/{internal,lines}/shard=N/`; returns the
    pending records with their `shard`."""
    by_id = f"CASE WHEN nullif({{0}}, '') IS NULL THEN 0 ELSE hash({{0}}) % {shards} END"
    con.register("pend", as_arrow(pending.select("payment_id", "channel_txn_id")))
    con.execute(f"""
        CREATE TEMP TABLE today AS
        SELECT payment_id, nullif(channel_txn_id, '') AS txn FROM read_parquet({_files_sql(internal_files)})""")
    con.execute(f"""
        CREATE TEMP TABLE rec AS
        SELECT payment_id, txn, {by_id.format("txn")} AS shard FROM today
        UNION ALL
        SELECT payment_id, nullif(channel_txn_id, ''), {by_id.format("channel_txn_id")}
        FROM pend p WHERE NOT EXISTS (SELECT 1 FROM today t WHERE t.payment_id = p.payment_id)""")
    con.execute("DROP TABLE today")
    routes = []
    for key in rule.match_keys:
        if key == MatchKey.CHANNEL_TXN_ID:
            routes.append(f"WHEN t.txn IS NOT NULL THEN {by_id.format('l.channel_txn_id')}")
        elif key == MatchKey.PAYMENT_ID:
            routes.append("WHEN p.shard IS NOT NULL THEN p.shard")
    options = "FORMAT parquet, PARTITION_BY (shard), COMPRESSION lz4, OVERWRITE_OR_IGNORE"
    con.execute(f"""
        COPY (
            SELECT l.*, CASE {" ".join(routes)} ELSE 0 END AS shard
            FROM read_parquet({_files_sql(line_files)}) l
            LEFT JOIN (SELECT DISTINCT txn FROM rec WHERE txn IS NOT NULL) t ON t.txn = nullif(l.channel_txn_id, '')
            LEFT JOIN (SELECT payment_id, shard FROM rec) p ON p.payment_id = nullif(l.payment_id, '')
        ) TO '{scratch / "lines"}' ({options})""")
    con.execute(f"""
        COPY (SELECT *, {by_id.format("channel_txn_id")} AS shard FROM read_parquet({_files_sql(internal_files)}))
        TO '{scratch / "internal"}' ({options})""")
    routed = con.sql("SELECT p.payment_id, r.shard FROM pend p JOIN rec r USING (payment_id)").pl()
    con.unregister("pend")
    con.execute("DROP TABLE rec")
    return pending.join(routed, on="payment_id", how="left")


def _read_shard(folder: Path, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    files = sorted(folder.glob("*.parquet"))
    if not files:
        return pl.DataFrame(schema=schema)
    frame = pl.read_parquet(files).drop("shard", strict=False)
    return frame.select(pl.col(name).cast(dtype) for name, dtype in schema.items()).rechunk()


def match_in_shards(
    wh: Warehouse,
    rule: Rule,
    business_date: date,
    pending: pl.DataFrame,
    shards: int,
    with_carry_forward: Callable[[date, pl.DataFrame, pl.DataFrame], pl.DataFrame],
    progress: Callable[[str], None] | None = None,
) -> ChannelResult:
    """`match_channel` over the channel's staged partitions (`internal` and `lines` of the day)
    plus `pending` (the earlier pending set), in `shards` shards. `with_carry_forward(day, today,
    pending)` joins a shard's records with its pending ones, as for a whole channel."""
    channel = rule.channel
    internal_files = wh.partition_files("internal", business_date, channel)
    line_files = wh.partition_files("lines", business_date, channel)
    if not internal_files or not line_files:
        raise FileNotFoundError(f"{channel} for {business_date} is not staged; run prepare_day and take_in_channel")
    scratch = wh.parquet_root / "shards" / f"business_date={business_date.isoformat()}" / f"channel={channel}"
    shutil.rmtree(scratch, ignore_errors=True)
    (scratch / "spill").mkdir(parents=True)
    try:
        con = duckdb.connect(config={"memory_limit": MEMORY_LIMIT, "temp_directory": str(scratch / "spill")})
        try:
            con.execute("SET TimeZone = 'UTC'")
            routed = _cut(con, rule, shards, internal_files, line_files, pending, scratch)
        finally:
            con.close()
        results: list[ChannelResult] = []
        for shard in range(shards):
            if progress:
                progress(f"{channel} shard {shard + 1}/{shards}")
            staged = _read_shard(scratch / "internal" / f"shard={shard}", INTERNAL_SCHEMA)
            lines = _read_shard(scratch / "lines" / f"shard={shard}", MAPPED_LINE_SCHEMA)
            lines = lines.sort("source_file", "line_no")
            carried = routed.filter(pl.col("shard") == shard).drop("shard")
            internal = with_carry_forward(business_date, staged, carried)
            del staged, carried
            con = duckdb.connect()
            try:
                results.append(match_channel(con, rule, business_date, internal, lines))
            finally:
                con.close()
            del internal, lines
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        for folder in (scratch.parent, scratch.parent.parent):  # the day's and the shards' folders, once empty
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    return _combine(results)


def _combine(results: list[ChannelResult]) -> ChannelResult:
    """One channel's result from its shards': breaks in break_id order (one per id, picked as the
    engine picks: `BREAK_PICK_COLUMNS`), pending records in payment_id order, counts summed."""
    breaks = pl.concat([r.breaks.select(list(ENGINE_BREAK_SCHEMA)) for r in results], how="vertical")
    breaks = breaks.sort(["break_id", *BREAK_PICK_COLUMNS], nulls_last=False).unique(
        subset="break_id", keep="first", maintain_order=True
    )
    pending = pl.concat([r.pending for r in results], how="vertical").sort("payment_id")

    def total(side: str) -> dict[str, int]:
        summed: dict[str, int] = {}
        for result in results:
            for name, value in getattr(result, side).items():
                summed[name] = summed.get(name, 0) + value
        return summed

    return ChannelResult(breaks, pending, total("internal"), total("channel"), total("carry_forward"))
