"""Hand-built breaks and summary for the report tests: every kind, CNY, JPY, KWD and USD."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import polars as pl

from pipelines.frames import BREAKS_SCHEMA
from pipelines.records import DEFAULT_ACTION, BreakKind, break_id

DAY = date(2026, 11, 2)
CHANNELS = {"alipay": "CNY", "jpbank": "JPY", "kwbank": "KWD", "stripe": "USD"}


def breaks_frame() -> pl.DataFrame:
    """One break of every kind on every channel, ages 0..40 spread over the aging buckets, with
    amounts chosen so their texts are known: CNY 1234 -> 12.34, JPY 500 -> 500, KWD 1234 -> 1.234."""
    rows: list[dict[str, Any]] = []
    ages = [0, 1, 2, 3, 4, 7, 8, 30, 31, 40, 5]
    amounts = {"CNY": (10_000, 11_234), "JPY": (1_000, 1_500), "KWD": (5_000, 6_234), "USD": (2_000, 1_000)}
    for channel, currency in CHANNELS.items():
        ours, theirs = amounts[currency]
        for i, kind in enumerate(BreakKind):
            age = ages[i]
            internal: int | None = ours
            external: int | None = theirs
            if kind == BreakKind.MISSING_INTERNAL:
                internal = None
            if kind == BreakKind.MISSING_AT_CHANNEL:
                external = None
            payment = None if kind == BreakKind.MISSING_INTERNAL else f"P-{channel}-{i}"
            txn = None if kind == BreakKind.MISSING_AT_CHANNEL else f"T-{channel}-{i}"
            rows.append(
                {
                    "break_id": break_id(channel, kind, payment, txn),
                    "kind": kind.value,
                    "channel": channel,
                    "business_date": DAY,
                    "payment_id": payment,
                    "channel_txn_id": txn,
                    "internal_amount_minor": internal,
                    "channel_amount_minor": external,
                    "currency": currency,
                    "delta_minor": None if internal is None or external is None else external - internal,
                    "rule_id": f"{channel}@1",
                    "status": "OPEN",
                    "first_seen_date": DAY - timedelta(days=age),
                    "age_days": age,
                    "action": DEFAULT_ACTION[kind].value,
                    "trace_id": f"trace-{channel}-{i}",
                }
            )
    return pl.DataFrame(rows, schema=BREAKS_SCHEMA)


def summary_for(breaks: pl.DataFrame) -> dict[str, Any]:
    """A summary that agrees with `breaks` (counts by kind, amount at risk) and holds invariant 6."""
    channels: dict[str, Any] = {}
    at_risk_by_currency: dict[str, int] = {}
    for channel, currency in CHANNELS.items():
        mine = breaks.filter(pl.col("channel") == channel)
        by_kind = {k: int(n) for k, n in mine.group_by("kind").len().sort("kind").iter_rows()}
        at_risk = sum(
            abs(d) if d is not None else abs(c if c is not None else i or 0)
            for d, c, i in mine.select("delta_minor", "channel_amount_minor", "internal_amount_minor").iter_rows()
        )
        at_risk_by_currency[currency] = at_risk_by_currency.get(currency, 0) + at_risk
        channels[channel] = {
            "currency": currency,
            "internal": {"rows_in": 1000, "matched": 980, "pending": 5, "breaks": 10, "rejected": 5},
            "channel": {"rows_in": 1001, "matched": 980, "pending": 0, "breaks": 11, "rejected": 10},
            "breaks_by_kind": by_kind,
            "amount_at_risk_minor": at_risk,
            "quarantined": [],
        }
    channels["stripe"]["quarantined"] = [
        {"file": "stripe_2026-11-02.csv", "reason": "control_total_mismatch", "detail": "trailer says 10 rows"}
    ]
    total = {k: int(n) for k, n in breaks.group_by("kind").len().sort("kind").iter_rows()}
    return {
        "business_date": DAY.isoformat(),
        "rules": {c: f"{c}-{cur.lower()}@1" for c, cur in CHANNELS.items()},
        "channels": channels,
        "breaks_by_kind": total,
        "amount_at_risk_minor_by_currency": at_risk_by_currency,
        "carry_forward": {"pending_in": 7, "matched_from_previous": 6, "expired_to_breaks": 1, "pending_out": 5},
        "breaks_closed": 3,
    }


def history_frame() -> pl.DataFrame:
    """Break rows as reported on the seven days before DAY (break_history's shape): a varying
    share of the day's breaks per channel, so the trend lines differ."""
    days = []
    base = breaks_frame()
    for d in range(1, 8):
        for k, channel in enumerate(CHANNELS):
            keep = 3 + (d * (k + 2)) % 8
            days.append(
                base.filter(pl.col("channel") == channel)
                .head(keep)
                .with_columns(pl.lit(DAY - timedelta(days=d)).alias("business_date"))
            )
    return pl.concat(days).select(list(BREAKS_SCHEMA))


def open_frame() -> pl.DataFrame:
    """The breaks open on DAY: the day's own (`breaks_frame`) and stripe's of three days before,
    still open (ages counted to DAY; break ids of their own)."""
    earlier = (
        breaks_frame()
        .filter(pl.col("channel") == "stripe")
        .with_columns(
            (pl.col("break_id") + "-earlier").alias("break_id"),
            pl.lit(DAY - timedelta(days=3)).alias("business_date"),
            (pl.col("age_days") + 3).alias("age_days"),
        )
    )
    return pl.concat([breaks_frame(), earlier]).select(list(BREAKS_SCHEMA))
