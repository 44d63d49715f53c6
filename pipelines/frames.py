"""Typed Polars schemas of the data contracts (SPEC section 4), defined once.

Amount columns are Int64 minor units and timestamps UTC; nothing is ever inferred. Every loader,
gate and report that holds one of these tables as a frame uses the schema from here.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from pipelines.records import BREAKS_CSV_COLUMNS, PAYMENTS_CSV_COLUMNS

# internal/payments.csv, typed.
INTERNAL_SCHEMA: dict[str, pl.DataType] = {
    "payment_id": pl.String(),
    "biz_type": pl.String(),
    "parent_payment_id": pl.String(),
    "merchant_id": pl.String(),
    "account_id": pl.String(),
    "channel": pl.String(),
    "channel_txn_id": pl.String(),
    "amount_minor": pl.Int64(),
    "currency": pl.String(),
    "fee_minor": pl.Int64(),
    "status": pl.String(),
    "created_at": pl.Datetime("us", "UTC"),
    "updated_at": pl.Datetime("us", "UTC"),
    "trace_id": pl.String(),
}
assert tuple(INTERNAL_SCHEMA) == PAYMENTS_CSV_COLUMNS

# breaks.csv / breaks.parquet, typed.
BREAKS_SCHEMA: dict[str, pl.DataType] = {
    "break_id": pl.String(),
    "kind": pl.String(),
    "channel": pl.String(),
    "business_date": pl.Date(),
    "payment_id": pl.String(),
    "channel_txn_id": pl.String(),
    "internal_amount_minor": pl.Int64(),
    "channel_amount_minor": pl.Int64(),
    "currency": pl.String(),
    "delta_minor": pl.Int64(),
    "rule_id": pl.String(),
    "status": pl.String(),
    "first_seen_date": pl.Date(),
    "age_days": pl.Int64(),
    "action": pl.String(),
    "trace_id": pl.String(),
}
assert tuple(BREAKS_SCHEMA) == BREAKS_CSV_COLUMNS

# The breaks closed on a day (closed_breaks.csv): as last reported, and how each closed
# (`Warehouse.closed_breaks`: late_line, late_record, moved, no_longer_reported) and with what (the
# line's channel id, our record's payment id, or who moved it).
CLOSED_BREAKS_SCHEMA: dict[str, pl.DataType] = {**BREAKS_SCHEMA, "closed_by": pl.String(), "closed_with": pl.String()}


def as_arrow(frame: pl.DataFrame) -> pa.Table:
    """`frame` as an Arrow table for DuckDB to scan, without copying it.

    Column by column, at Polars' newest level (string views, which DuckDB scans in place): Polars
    exports a whole frame without a copy only when all its columns are chunked alike, and a column
    added to a frame read from CSV in hundreds of chunks (a row index, a literal) made it copy the
    whole frame first (0.9 GB and 0.4 s at 5M rows). An Arrow table lets each column keep its chunks.
    """
    newest = pl.CompatLevel.newest()
    return pa.table({name: frame.select(name).to_arrow(compat_level=newest).column(0) for name in frame.columns})
