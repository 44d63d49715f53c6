"""What the finance reports show, computed once for both renderings (xlsx and html).

Everything here is exact: amounts stay integer minor units (sums are Python ints, which do not
overflow), and are turned into major-unit text only by `pipelines.money.format_amount`. Every
list is sorted, so the same inputs always give the same report, byte for byte.

The amount at risk of one break is |delta_minor| when both sides are known, else the absolute
amount of the side that is: what would move if the break were repaired in full.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import polars as pl

from pipelines.frames import BREAKS_SCHEMA, CLOSED_BREAKS_SCHEMA
from pipelines.money import format_amount
from pipelines.records import BreakKind

# Aging buckets of a break's age in days, inclusive bounds; the last is open-ended.
AGING_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("0-1", 0, 1),
    ("2-3", 2, 3),
    ("4-7", 4, 7),
    ("8-30", 8, 30),
    ("over 30", 31, None),
)
SIDES = ("internal", "channel")
COUNTERS = ("rows_in", "matched", "pending", "breaks", "rejected")


# The optional history is the breaks as reported on each day up to the report's (the warehouse's
# break_history): BREAKS_SCHEMA, `business_date` being the day that reported the row. The report
# shows it per day, channel and currency (HISTORY_SCHEMA).
HISTORY_SCHEMA: dict[str, pl.DataType] = {
    "business_date": pl.Date(),
    "channel": pl.String(),
    "currency": pl.String(),
    "breaks": pl.Int64(),
    "amount_at_risk_minor": pl.Int128(),
}


class ReportInputError(ValueError):
    """The breaks, summary or history handed to the report do not have the agreed shape."""


def check_frame(frame: pl.DataFrame, schema: dict[str, pl.DataType], what: str) -> pl.DataFrame:
    """`frame` with exactly `schema`'s columns in order; a missing column or a different type (an
    amount as float, a date as text) raises ReportInputError naming it."""
    missing = [c for c in schema if c not in frame.columns]
    if missing:
        raise ReportInputError(f"{what}: missing columns {missing}")
    wrong = {c: str(frame.schema[c]) for c, t in schema.items() if frame.schema[c] != t and frame.schema[c] != pl.Null}
    if wrong:
        expected = {c: str(schema[c]) for c in wrong}
        raise ReportInputError(f"{what}: column types {wrong}, expected {expected}")
    return frame.select([pl.col(c).cast(t) for c, t in schema.items()])


@dataclass(frozen=True)
class ChannelRow:
    """One channel's line of the summary: its counters per side and what is at risk."""

    channel: str
    rule: str
    currency: str
    counters: dict[str, dict[str, int]]
    breaks_by_kind: dict[str, int]
    amount_at_risk_minor: int
    quarantined: list[dict[str, str]]

    @property
    def breaks(self) -> int:
        return sum(self.breaks_by_kind.values())

    def balanced(self, side: str) -> bool:
        """Invariant 6 on one side: rows in = matched + pending + breaks + rejected."""
        c = self.counters[side]
        return c["rows_in"] == c["matched"] + c["pending"] + c["breaks"] + c["rejected"]


@dataclass(frozen=True)
class AgingRow:
    """Open breaks of one channel and currency per aging bucket: counts and minor-unit amounts."""

    channel: str
    currency: str
    counts: tuple[int, ...]
    amounts_minor: tuple[int, ...]


@dataclass(frozen=True)
class ReportModel:
    business_date: date
    channels: list[ChannelRow]
    kinds: list[str]
    breaks_by_kind: dict[str, int]
    breaks_by_channel_kind: dict[tuple[str, str], int]
    at_risk_by_currency: dict[str, int]
    aging: list[AgingRow]
    carry_forward: dict[str, int]
    breaks_closed: int
    breaks: pl.DataFrame
    history: pl.DataFrame | None
    # Every break still open on the day, earlier days' included (BREAKS_SCHEMA plus at_risk_minor,
    # `business_date` the day that last reported it; oldest first); None without a warehouse.
    open_breaks: pl.DataFrame | None = None
    # The breaks closed on the day and how (CLOSED_BREAKS_SCHEMA plus at_risk_minor, the amount
    # that was at risk; largest first by currency); None without a warehouse.
    closed_breaks: pl.DataFrame | None = None

    @property
    def open_from_earlier_days(self) -> pl.DataFrame | None:
        if self.open_breaks is None:
            return None
        return self.open_breaks.filter(pl.col("business_date") < self.business_date)

    @property
    def quarantined(self) -> list[dict[str, str]]:
        return [{"channel": c.channel, **q} for c in self.channels for q in c.quarantined]


def amount_text(amount_minor: int | None, currency: str | None) -> str:
    """Minor units as major-unit text with the currency's digits ("12.34", JPY "500", KWD "1.234");
    empty for a missing amount. Unknown currencies show the minor units and the code, never guess."""
    if amount_minor is None:
        return ""
    try:
        return format_amount(int(amount_minor), currency or "")
    except ValueError:
        return f"{amount_minor} (minor units, {currency})"


def grouped(text: str) -> str:
    """Amount text with thousands separators for reading ("-1234567.89" -> "-1,234,567.89"); pure
    text work on the exact digits. Text that is not a plain amount is returned unchanged."""
    sign, body = ("-", text[1:]) if text.startswith("-") else ("", text)
    whole, dot, frac = body.partition(".")
    if not whole.isdigit():
        return text
    groups: list[str] = []
    while len(whole) > 3:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    return sign + ",".join([whole, *groups]) + dot + frac


def with_amount_at_risk(breaks: pl.DataFrame) -> pl.DataFrame:
    """`breaks` plus `at_risk_minor` (Int64): |delta| when both sides are known, else |the known side|."""
    return breaks.with_columns(
        pl.coalesce(
            pl.col("delta_minor").abs(),
            pl.col("channel_amount_minor").abs(),
            pl.col("internal_amount_minor").abs(),
            pl.lit(0, dtype=pl.Int64),
        ).alias("at_risk_minor")
    )


def open_by_currency(open_breaks: pl.DataFrame) -> list[tuple[str, int, int]]:
    """(currency, open breaks, amount at risk in minor units) per currency of `open_breaks` (with
    at_risk_minor), sorted by currency."""
    per = (
        open_breaks.group_by("currency")
        .agg(pl.len().alias("n"), pl.col("at_risk_minor").cast(pl.Int128).sum().alias("amount"))
        .sort("currency")
    )
    return [(str(c), int(n), int(a)) for c, n, a in per.iter_rows()]


def bucket_of(age_days: int) -> int:
    """The index into AGING_BUCKETS of a break `age_days` old."""
    assert age_days >= 0, age_days
    for i, (_, low, high) in enumerate(AGING_BUCKETS):
        if age_days >= low and (high is None or age_days <= high):
            return i
    raise AssertionError(f"no bucket for {age_days}")


def _checked_breaks(frame: pl.DataFrame, what: str, schema: dict[str, pl.DataType] = BREAKS_SCHEMA) -> pl.DataFrame:
    frame = check_frame(frame, schema, what)
    if frame["age_days"].is_null().any() or (frame["age_days"] < 0).any():
        raise ReportInputError(f"{what}: age_days must be present and >= 0 on every break")
    return frame


def build(
    *,
    business_date: date,
    breaks: pl.DataFrame,
    summary: dict[str, Any],
    history: pl.DataFrame | None,
    open_breaks: pl.DataFrame | None = None,
    closed_breaks: pl.DataFrame | None = None,
) -> ReportModel:
    """The report's figures from the day's `breaks` (BREAKS_SCHEMA), `summary` (the summary.json
    dict agreed with the engine), the optional `history` (break rows as reported per day,
    BREAKS_SCHEMA, summarised here to HISTORY_SCHEMA; or already summarised, HISTORY_SCHEMA) and the optional `open_breaks` (every break still
    open on the day, BREAKS_SCHEMA with age_days counted to the day). The aging is of
    `open_breaks` when given, else of the day's breaks."""
    breaks = _checked_breaks(breaks, "breaks")
    if open_breaks is not None:
        open_breaks = _checked_breaks(open_breaks, "open breaks")
        if (open_breaks["business_date"] > business_date).any():
            raise ReportInputError(f"open breaks: a break reported after {business_date}")
    if closed_breaks is not None:
        closed_breaks = _checked_breaks(closed_breaks, "closed breaks", CLOSED_BREAKS_SCHEMA)
    if history is not None and list(history.columns) == list(HISTORY_SCHEMA):
        # Already summarised per day, channel and currency (the warehouse sums it in DuckDB).
        history = check_frame(history, HISTORY_SCHEMA, "history").filter(pl.col("business_date") <= business_date)
        history = history.sort("business_date", "channel", "currency")
    elif history is not None:
        history = (
            with_amount_at_risk(check_frame(history, BREAKS_SCHEMA, "history"))
            .filter(pl.col("business_date") <= business_date)
            .group_by("business_date", "channel", "currency")
            .agg(
                pl.len().cast(pl.Int64).alias("breaks"),
                pl.col("at_risk_minor").cast(pl.Int128).sum().alias("amount_at_risk_minor"),
            )
            .sort("business_date", "channel", "currency")
            .select([pl.col(c).cast(t) for c, t in HISTORY_SCHEMA.items()])
        )
    if summary.get("business_date") != business_date.isoformat():
        raise ReportInputError(f"summary is for {summary.get('business_date')!r}, the report for {business_date}")
    rules: dict[str, str] = summary.get("rules", {})
    channels = []
    for name in sorted(summary.get("channels", {})):
        ch = summary["channels"][name]
        try:
            counters = {side: {k: int(ch[side][k]) for k in COUNTERS} for side in SIDES}
        except KeyError as exc:
            raise ReportInputError(f"summary.channels.{name}: missing counter {exc}") from None
        channels.append(
            ChannelRow(
                channel=name,
                rule=rules.get(name, ""),
                currency=str(ch.get("currency", "")),
                counters=counters,
                breaks_by_kind={k: int(v) for k, v in sorted(ch.get("breaks_by_kind", {}).items())},
                amount_at_risk_minor=int(ch.get("amount_at_risk_minor", 0)),
                quarantined=sorted(
                    ({k: str(q.get(k, "")) for k in ("file", "reason", "detail")} for q in ch.get("quarantined", [])),
                    key=lambda q: (q["file"], q["reason"], q["detail"]),
                ),
            )
        )
    # Kinds in the order of the SPEC's table, then any the enum does not know (shown, not hidden).
    known = [k.value for k in BreakKind]
    seen = set(summary.get("breaks_by_kind", {})) | set(breaks["kind"].unique().drop_nulls().to_list())
    kinds = [k for k in known if k in seen] + sorted(seen - set(known))

    by_channel_kind: dict[tuple[str, str], int] = {}
    for channel, kind, n in breaks.group_by("channel", "kind").len().sort("channel", "kind").iter_rows():
        by_channel_kind[(channel, kind)] = int(n)

    risky = with_amount_at_risk(breaks)
    open_risky = None if open_breaks is None else with_amount_at_risk(open_breaks)
    aged = risky if open_risky is None else open_risky
    aging_rows: list[AgingRow] = []
    if aged.height:
        bucketed = aged.with_columns(bucket_expr().alias("bucket"))
        grouped = (
            bucketed.group_by("channel", "currency", "bucket")
            .agg(pl.len().alias("n"), pl.col("at_risk_minor").cast(pl.Int128).sum().alias("amount"))
            .sort("channel", "currency", "bucket")
        )
        cells: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
        for channel, currency, bucket, n, amount in grouped.iter_rows():
            counts, amounts = cells.setdefault(
                (channel, currency), ([0] * len(AGING_BUCKETS), [0] * len(AGING_BUCKETS))
            )
            counts[bucket] += int(n)
            amounts[bucket] += int(amount)
        aging_rows = [AgingRow(ch, cur, tuple(c), tuple(a)) for (ch, cur), (c, a) in sorted(cells.items())]

    carry = summary.get("carry_forward", {})
    return ReportModel(
        business_date=business_date,
        channels=channels,
        kinds=kinds,
        breaks_by_kind={k: int(v) for k, v in summary.get("breaks_by_kind", {}).items()},
        breaks_by_channel_kind=by_channel_kind,
        at_risk_by_currency={k: int(v) for k, v in sorted(summary.get("amount_at_risk_minor_by_currency", {}).items())},
        aging=aging_rows,
        carry_forward={
            k: int(carry.get(k, 0))
            for k in ("pending_in", "matched_from_previous", "expired_to_breaks", "pending_out", "breaks_matched_late")
        },
        breaks_closed=int(summary.get("breaks_closed", 0)),
        breaks=risky.sort("channel", "kind", pl.col("age_days"), "break_id", descending=[False, False, True, False]),
        history=history,
        # Oldest first, then by currency, the largest amount at risk first (minor units of two
        # currencies are not compared).
        open_breaks=None
        if open_risky is None
        else open_risky.sort(
            ["age_days", "currency", "at_risk_minor", "break_id"],
            descending=[True, False, True, False],
            nulls_last=True,
        ),
        # By currency, the largest amount that was at risk first.
        closed_breaks=None
        if closed_breaks is None
        else with_amount_at_risk(closed_breaks).sort(
            ["currency", "at_risk_minor", "break_id"], descending=[False, True, False], nulls_last=True
        ),
    )


def bucket_expr() -> pl.Expr:
    """`bucket_of` as a Polars expression on `age_days` (the same buckets, for whole frames)."""
    age = pl.col("age_days")
    expr = pl.lit(len(AGING_BUCKETS) - 1, dtype=pl.Int64)
    for i, (_, _low, high) in reversed(list(enumerate(AGING_BUCKETS))):
        if high is not None:
            expr = pl.when(age <= high).then(pl.lit(i, dtype=pl.Int64)).otherwise(expr)
    return expr
