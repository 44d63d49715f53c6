"""Small typed frames for engine tests: our records and statement lines built from a few fields."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl

from pipelines.batch.load import MAPPED_LINE_SCHEMA
from pipelines.frames import INTERNAL_SCHEMA
from pipelines.records import trace_id_for

DAY = date(2026, 11, 2)
T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def internal(rows: list[dict[str, Any]], *, day: date = DAY) -> pl.DataFrame:
    """Our records; each row needs payment_id and amount_minor, the rest has clean defaults."""
    full = []
    for n, row in enumerate(rows):
        created = row.get("created_at", T0 + timedelta(seconds=n))
        full.append(
            {
                "payment_id": row["payment_id"],
                "biz_type": row.get("biz_type", "PAY"),
                "parent_payment_id": row.get("parent_payment_id"),
                "merchant_id": "m1",
                "account_id": "a1",
                "channel": row.get("channel", "alipay"),
                "channel_txn_id": row.get("channel_txn_id"),
                "amount_minor": row["amount_minor"],
                "currency": row.get("currency", "CNY"),
                "fee_minor": row.get("fee_minor"),
                "status": row.get("status", "SUCCEEDED"),
                "created_at": created,
                "updated_at": created,
                "trace_id": trace_id_for(row["payment_id"]),
                "since_date": row.get("since_date", day),
                "after_cutoff": row.get("after_cutoff", False),
            }
        )
    schema = {**INTERNAL_SCHEMA, "since_date": pl.Date(), "after_cutoff": pl.Boolean()}
    return pl.DataFrame(full, schema=schema, orient="row") if full else pl.DataFrame(schema=schema)


def lines(rows: list[dict[str, Any]], *, day: date = DAY, channel: str = "alipay") -> pl.DataFrame:
    """Statement lines; each row needs gross_minor; fee defaults to 0, status to SUCCEEDED."""
    full = []
    for n, row in enumerate(rows):
        fee = row.get("fee_minor", 0)
        full.append(
            {
                "channel": channel,
                "account": "",
                "business_date": day,
                "source_file": row.get("source_file", "f.csv"),
                "source_sha256": "0" * 64,
                "line_no": row.get("line_no", n + 2),
                "line_type": row.get("line_type", "PAYMENT"),
                "channel_txn_id": row.get("channel_txn_id"),
                "payment_id": row.get("payment_id"),
                "gross_minor": row["gross_minor"],
                "fee_minor": fee,
                "net_minor": row["gross_minor"] - fee,
                "currency": row.get("currency", "CNY"),
                "booked_at": row.get("booked_at", T0 + timedelta(seconds=n)),
                "value_date": day,
                "raw": row.get("raw", "TRADE_SUCCESS"),
                "status": row.get("status", "SUCCEEDED"),
            }
        )
    return (
        pl.DataFrame(full, schema=MAPPED_LINE_SCHEMA, orient="row") if full else pl.DataFrame(schema=MAPPED_LINE_SCHEMA)
    )
