"""Small typed frames for the quality gate tests: clean statement lines, internal records, outputs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl

from connectors.statements import LINE_SCHEMA
from pipelines.frames import INTERNAL_SCHEMA
from pipelines.records import BREAKS_CSV_COLUMNS, break_id

DAY = date(2026, 11, 2)
NOON = datetime(2026, 11, 2, 12, tzinfo=UTC)


def lines(n: int = 6, *, gross: int = 10_000, fee: int = 60) -> pl.DataFrame:
    """`n` clean alipay (CNY) statement lines on DAY, line numbers 2.. as in a file with a header."""
    return pl.DataFrame(
        {
            "channel": ["alipay"] * n,
            "account": ["2088000000000001"] * n,
            "business_date": [DAY] * n,
            "source_file": ["alipay_2026-11-02.csv"] * n,
            "source_sha256": ["0" * 64] * n,
            "line_no": list(range(2, n + 2)),
            "line_type": ["PAYMENT"] * n,
            "channel_txn_id": [f"42000{i:05d}" for i in range(n)],
            "payment_id": [f"P{i:05d}" for i in range(n)],
            "gross_minor": [gross] * n,
            "fee_minor": [fee] * n,
            "net_minor": [gross - fee] * n,
            "currency": ["CNY"] * n,
            "booked_at": [NOON + timedelta(seconds=i) for i in range(n)],
            "value_date": [DAY] * n,
            "raw": ["TRADE_SUCCESS"] * n,
        },
        schema=LINE_SCHEMA,
    )


def set_cell(frame: pl.DataFrame, column: str, row: int, value: Any) -> pl.DataFrame:
    """`frame` with one cell replaced (the column keeps its type)."""
    values = frame[column].to_list()
    values[row] = value
    return frame.with_columns(pl.Series(column, values, dtype=frame.schema[column]))


def controls_of(frame: pl.DataFrame) -> dict[str, int]:
    return {
        "rows": frame.height,
        "gross": int(frame["gross_minor"].sum()),
        "fee": int(frame["fee_minor"].sum()),
        "net": int(frame["net_minor"].sum()),
    }


def payments(n: int = 7) -> pl.DataFrame:
    """`n` clean internal records of DAY, every biz type, refunds pointing at a parent."""
    biz = ["PAY", "TOPUP", "WITHDRAW", "REFUND", "TRANSFER", "PAY", "PAY"]
    rows = []
    for i in range(n):
        kind = biz[i % len(biz)]
        rows.append(
            {
                "payment_id": f"P{i:05d}",
                "biz_type": kind,
                "parent_payment_id": "P00000" if kind == "REFUND" else None,
                "merchant_id": "M1",
                "account_id": f"A{i}",
                "channel": "alipay",
                "channel_txn_id": f"42000{i:05d}",
                "amount_minor": 1000 + i,
                "currency": "CNY" if i % 2 else "JPY",
                "fee_minor": None if i == 1 else 6,
                "status": "SUCCEEDED",
                "created_at": NOON + timedelta(minutes=i),
                "updated_at": NOON + timedelta(minutes=i),
                "trace_id": f"t{i}",
            }
        )
    return pl.DataFrame(rows, schema=INTERNAL_SCHEMA)


BREAKS_SCHEMA: dict[str, pl.DataType] = {
    c: (pl.Int64() if c.endswith("_minor") or c == "age_days" else pl.Date() if c.endswith("date") else pl.String())
    for c in BREAKS_CSV_COLUMNS
}


def outputs() -> tuple[dict[str, Any], pl.DataFrame]:
    """A summary and its breaks that agree: invariant 6 holds, counts by kind match."""
    rows = []
    for channel, kinds in (
        ("alipay", ["AMOUNT_MISMATCH", "AMOUNT_MISMATCH", "MISSING_INTERNAL"]),
        ("jpbank", ["AMBIGUOUS"]),
    ):
        for i, kind in enumerate(kinds):
            rows.append(
                {
                    "break_id": break_id(channel, kind, f"P{i}", f"T{i}"),
                    "kind": kind,
                    "channel": channel,
                    "business_date": DAY,
                    "payment_id": f"P{i}",
                    "channel_txn_id": f"T{i}",
                    "internal_amount_minor": 100,
                    "channel_amount_minor": 110,
                    "currency": "CNY" if channel == "alipay" else "JPY",
                    "delta_minor": 10,
                    "rule_id": f"{channel}@1",
                    "status": "OPEN",
                    "first_seen_date": DAY,
                    "age_days": 0,
                    "action": "MANUAL_REVIEW",
                    "trace_id": None,
                }
            )
    breaks = pl.DataFrame(rows, schema=BREAKS_SCHEMA)
    side = {"rows_in": 100, "matched": 90, "pending": 5, "breaks": 3, "rejected": 2}
    summary = {
        "business_date": DAY.isoformat(),
        "rules": {"alipay": "alipay-cny@1", "jpbank": "jpbank-jpy@1"},
        "channels": {
            "alipay": {
                "currency": "CNY",
                "internal": dict(side),
                "channel": dict(side),
                "breaks_by_kind": {"AMOUNT_MISMATCH": 2, "MISSING_INTERNAL": 1},
                "amount_at_risk_minor": 30,
                "quarantined": [],
            },
            "jpbank": {
                "currency": "JPY",
                "internal": dict(side),
                "channel": dict(side),
                "breaks_by_kind": {"AMBIGUOUS": 1},
                "amount_at_risk_minor": 10,
                "quarantined": [],
            },
        },
        "breaks_by_kind": {"AMOUNT_MISMATCH": 2, "MISSING_INTERNAL": 1, "AMBIGUOUS": 1},
        "amount_at_risk_minor_by_currency": {"CNY": 30, "JPY": 10},
        "carry_forward": {"pending_in": 0, "matched_from_previous": 0, "expired_to_breaks": 0, "pending_out": 0},
        "breaks_closed": 0,
    }
    return summary, breaks
