"""Late counterparts: a day's break that answers an open break of an earlier day.

Breaks stay open across days, so a payment whose two sides reach the files on different days,
further apart than the carry-forward window, leaves two open breaks that cancel out:

- a late line: the channel books a payment after the window (it settled late, or reported it once
  re-queried, which is the repair of MISSING_AT_CHANNEL). The earlier day's MISSING_AT_CHANNEL
  stays open and the line raises a MISSING_INTERNAL today;
- a late record: our record of a payment the channel booked earlier reaches the extract late (the
  payment core booked it after review: 补单, the repair of MISSING_INTERNAL). The earlier day's
  MISSING_INTERNAL stays open and the record raises a MISSING_AT_CHANNEL today.

`matched_late` pairs today's new break with the earlier open one when a key of the channel's rule
names both and each is the other's only candidate; the pair is then classified as any pair is
(`classify_pair`: currency, status, amount within tolerance, the contracted fee), and only a clean
pair is taken: the earlier break closes as of today and today's is not raised. Anything less
stays two breaks for a person (never a silent pick). The earlier side is read as staged on the
day its break was first seen.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import polars as pl

from connectors.warehouse import Warehouse
from pipelines.matching.classify import classify_pair
from pipelines.matching.rules import MatchKey, Rule
from pipelines.records import BizType, BreakKind, PaymentStatus

# What `matched_late` returns: the earlier break, today's break it makes redundant, the pair that
# matched (our record's payment id, the line's channel id), and which side came late.
LATE_SCHEMA: dict[str, pl.DataType] = {
    "break_id": pl.String(),
    "new_break_id": pl.String(),
    "payment_id": pl.String(),
    "channel_txn_id": pl.String(),
    "late": pl.String(),  # "line" or "record"
    "carried": pl.Boolean(),  # a record carried forward from an earlier day, expired today
}

_LINE_COLUMNS = ["channel_txn_id", "payment_id", "gross_minor", "fee_minor", "net_minor", "currency", "status"]
_OUR_COLUMNS = ["payment_id", "channel_txn_id", "biz_type", "currency", "status", "amount_minor"]


def matched_late(
    wh: Warehouse,
    rule: Rule,
    day: date,
    breaks: pl.DataFrame,
    lines: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Today's breaks (the engine's, ENGINE_BREAK_SCHEMA) that are the late counterpart of an
    earlier day's open break of the channel, as LATE_SCHEMA, late lines first. `lines`: the day's
    lines when the caller holds them, else the staged partition is read."""
    found = [_late_lines(wh, rule, day, breaks, lines), _late_records(wh, rule, day, breaks)]
    return pl.concat([f.select(list(LATE_SCHEMA)) for f in found], how="vertical")


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema=LATE_SCHEMA)


def _scan(wh: Warehouse, table: str, days: list[date], channel: str, columns: list[str]) -> pl.LazyFrame | None:
    """Some columns of a table's partitions of `days`, each row with its partition's `day`."""
    parts = [
        pl.scan_parquet(files).select(columns).with_columns(pl.lit(d, dtype=pl.Date).alias("day"))
        for d in sorted(set(days))
        if (files := wh.partition_files(table, d, channel))
    ]
    return pl.concat(parts, how="vertical") if parts else None


def _sole(pairs: pl.DataFrame) -> pl.DataFrame:
    """The pairs whose two breaks have no other candidate: a second candidate of either side,
    clean or not, makes the pair a person's call."""
    pairs = pairs.unique(subset=["break_id", "new_break_id"], keep="first", maintain_order=True)
    return pairs.filter((pl.len().over("break_id") == 1) & (pl.len().over("new_break_id") == 1))


def _clean(rule: Rule, pairs: pl.DataFrame, late: str) -> pl.DataFrame:
    clean = [_pair_is_clean(rule, row) for row in pairs.iter_rows(named=True)]
    return (
        pairs.filter(pl.Series(clean, dtype=pl.Boolean))
        .select(
            "break_id",
            "new_break_id",
            "payment_id",
            "channel_txn_id",
            pl.lit(late).alias("late"),
            (pl.col("carried") if "carried" in pairs.columns else pl.lit(False)).alias("carried"),
        )
        .sort("break_id")
    )


def _late_lines(wh: Warehouse, rule: Rule, day: date, breaks: pl.DataFrame, lines: pl.DataFrame | None) -> pl.DataFrame:
    """Today's MISSING_INTERNAL lines that answer an earlier open MISSING_AT_CHANNEL. A line pairs
    with a break when its reference is the break's payment id (a rule that matches on
    `payment_id`). A line without a reference (most bank lines) never pairs: a MISSING_AT_CHANNEL
    break does not keep the channel id our record knew."""
    missing = breaks.filter(
        (pl.col("kind") == BreakKind.MISSING_INTERNAL.value) & pl.col("channel_txn_id").is_not_null()
    ).select(pl.col("break_id").alias("new_break_id"), "channel_txn_id")
    if not missing.height or MatchKey.PAYMENT_ID not in rule.match_keys:
        return _empty()
    if not wh.any_overdue(day, rule.channel, BreakKind.MISSING_AT_CHANNEL.value):
        return _empty()
    if lines is None:
        # A few columns of the staged lines (a channel matched in shards is too large to read whole).
        scan = _scan(wh, "lines", [day], rule.channel, _LINE_COLUMNS)
        if scan is None:
            return _empty()
        lines = scan.collect()
    # The line behind each MISSING_INTERNAL (its channel id names one line) and its reference.
    refs = (
        lines.select(_LINE_COLUMNS)
        .with_columns(pl.col("channel_txn_id", "payment_id", "currency", "status").cast(pl.String))
        .join(missing.select("channel_txn_id"), on="channel_txn_id", how="semi")
        .filter((pl.len().over("channel_txn_id") == 1) & (pl.col("payment_id") != ""))
    )
    if not refs.height:
        return _empty()
    # Only the earlier breaks one of these lines names: the query picks them out of the channel's.
    overdue = wh.overdue_breaks(day, rule.channel, BreakKind.MISSING_AT_CHANNEL.value, payment_ids=refs["payment_id"])
    if not overdue.height:
        return _empty()
    pairs = _sole(
        missing.join(refs, on="channel_txn_id", how="inner").join(
            overdue.select("break_id", "payment_id", "first_seen_date"), on="payment_id", how="inner"
        )
    )
    if not pairs.height:
        return _empty()
    # Our records behind the breaks, from the partitions of the days they were first seen.
    scan = _scan(wh, "internal", pairs["first_seen_date"].to_list(), rule.channel, _OUR_COLUMNS)
    if scan is None:
        return _empty()
    ours = (
        scan.select(pl.col("payment_id", "biz_type", "currency", "status").cast(pl.String), "amount_minor", "day")
        .filter(pl.col("payment_id").is_in(pairs["payment_id"].implode()))
        .collect()
        .filter(pl.len().over("payment_id", "day") == 1)
    )
    pairs = pairs.join(
        ours, left_on=["payment_id", "first_seen_date"], right_on=["payment_id", "day"], how="inner", suffix="_ours"
    )
    return _clean(rule, pairs, "line")


def _late_records(wh: Warehouse, rule: Rule, day: date, breaks: pl.DataFrame) -> pl.DataFrame:
    """Today's MISSING_AT_CHANNEL records of ours that answer an earlier open MISSING_INTERNAL. A
    record pairs with a break by the keys of the rule: its channel id is the line's
    (`channel_txn_id`), or its payment id is the line's reference (`payment_id`)."""
    by_txn = MatchKey.CHANNEL_TXN_ID in rule.match_keys
    by_ref = MatchKey.PAYMENT_ID in rule.match_keys
    missing = breaks.filter(
        (pl.col("kind") == BreakKind.MISSING_AT_CHANNEL.value) & pl.col("payment_id").is_not_null()
    ).select(pl.col("break_id").alias("new_break_id"), "payment_id")
    if not missing.height or not (by_txn or by_ref):
        return _empty()
    if not wh.any_overdue(day, rule.channel, BreakKind.MISSING_INTERNAL.value):
        return _empty()
    # Our records behind today's breaks: today's version, else the one carried forward to today.
    ids = missing["payment_id"].implode()
    scan = _scan(wh, "internal", [day], rule.channel, _OUR_COLUMNS)
    found = [] if scan is None else [_our_side(scan.filter(pl.col("payment_id").is_in(ids)).collect())]
    carried = wh.pending_before(day, rule.channel).filter(pl.col("payment_id").is_in(ids))
    found.append(_our_side(carried))
    ours = (
        pl.concat(found, how="vertical")
        .unique(subset=["payment_id"], keep="first", maintain_order=True)
        .join(missing, on="payment_id", how="inner")
        .with_columns(pl.col("payment_id").is_in(carried["payment_id"].implode()).alias("carried"))
    )
    if not ours.height:
        return _empty()
    # The earlier breaks one of our records names: by its channel id, or by its payment id as the
    # reference the break's line carried (kept with the break).
    overdue = wh.overdue_breaks(
        day,
        rule.channel,
        BreakKind.MISSING_INTERNAL.value,
        channel_txn_ids=ours["our_txn"] if by_txn else None,
        references=ours["payment_id"] if by_ref else None,
    ).filter(pl.col("channel_txn_id").is_not_null())
    if not overdue.height:
        return _empty()
    # The lines behind the earlier breaks, from the partitions of the days they were first seen.
    scan = _scan(wh, "lines", overdue["first_seen_date"].to_list(), rule.channel, _LINE_COLUMNS)
    if scan is None:
        return _empty()
    old = (
        scan.with_columns(pl.col("channel_txn_id", "payment_id", "currency", "status").cast(pl.String))
        .filter(pl.col("channel_txn_id").is_in(overdue["channel_txn_id"].implode()))
        .collect()
        .filter(pl.len().over("channel_txn_id", "day") == 1)
        .rename({"payment_id": "reference"})
        .join(
            overdue.select("break_id", "channel_txn_id", "first_seen_date"),
            left_on=["channel_txn_id", "day"],
            right_on=["channel_txn_id", "first_seen_date"],
            how="inner",
        )
    )
    columns = ["break_id", "new_break_id", "payment_id", "channel_txn_id", "biz_type", "currency_ours",
               "status_ours", "amount_minor", "gross_minor", "fee_minor", "net_minor", "currency", "status",
               "carried"]  # fmt: skip
    candidates = []
    if by_txn:
        by = ours.filter(pl.col("our_txn").is_not_null()).join(old, left_on="our_txn", right_on="channel_txn_id")
        candidates.append(by.with_columns(pl.col("our_txn").alias("channel_txn_id")).select(columns))
    if by_ref:
        by = ours.join(old.filter(pl.col("reference") != ""), left_on="payment_id", right_on="reference")
        candidates.append(by.select(columns))
    pairs = _sole(pl.concat(candidates, how="vertical"))
    if not pairs.height:
        return _empty()
    return _clean(rule, pairs, "record")


def _our_side(frame: pl.DataFrame) -> pl.DataFrame:
    """Our records as a late pair reads them: text columns as String, `our_txn` for the channel id."""
    return frame.select(
        "payment_id",
        pl.col("channel_txn_id").alias("our_txn"),
        "biz_type",
        pl.col("currency").alias("currency_ours"),
        pl.col("status").alias("status_ours"),
        "amount_minor",
    ).cast({"payment_id": pl.String, "our_txn": pl.String, "biz_type": pl.String, "currency_ours": pl.String,
            "status_ours": pl.String, "amount_minor": pl.Int64})  # fmt: skip


def _pair_is_clean(rule: Rule, pair: dict[str, Any]) -> bool:
    """`classify_pair` on a line and our record, as the engine compiles it (with a net basis the
    line's net plus our contracted fee stands for its gross, and no fee is compared)."""
    biz = BizType(pair["biz_type"])
    if rule.fees.basis == "net":
        if pair["net_minor"] is None:
            return False
        gross, fee = pair["net_minor"] + rule.fees.expected_fee(biz, pair["amount_minor"]), None
    else:
        gross, fee = pair["gross_minor"], pair["fee_minor"]
    if gross is None:
        return False
    verdict = classify_pair(
        rule,
        biz_type=biz,
        internal_amount_minor=pair["amount_minor"],
        internal_currency=pair["currency_ours"],
        internal_status=PaymentStatus(pair["status_ours"]),
        channel_gross_minor=gross,
        channel_currency=pair["currency"],
        channel_status=PaymentStatus(pair["status"]),
        channel_fee_minor=fee,
    )
    return verdict.kind is None
