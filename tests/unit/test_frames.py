"""`as_arrow`: a frame handed to DuckDB as Arrow, each column as it is chunked, nothing copied."""

from __future__ import annotations

import duckdb
import polars as pl

from pipelines.frames import as_arrow


def _chunked_unlike() -> pl.DataFrame:
    """Three chunks per column (as a CSV read leaves them), then a one-chunk row index beside them."""
    parts = [
        pl.DataFrame({"payment_id": [f"P{i:020d}" for i in range(start, start + 5)], "amount_minor": list(range(5))})
        for start in (0, 5, 10)
    ]
    frame = pl.concat(parts, rechunk=False).with_row_index("_row")
    assert frame.n_chunks("all") == [1, 3, 3]
    return frame


def test_each_column_keeps_its_chunks() -> None:
    frame = _chunked_unlike()
    table = as_arrow(frame)
    # A whole-frame export would have rechunked (copied) every column into one.
    assert [table.column(name).num_chunks for name in frame.columns] == frame.n_chunks("all")
    assert str(table.schema.field("payment_id").type) == "string_view"


def test_duckdb_reads_the_rows_aligned() -> None:
    frame = _chunked_unlike()
    con = duckdb.connect()
    con.register("t", as_arrow(frame))
    rows = con.sql("SELECT _row, payment_id, amount_minor FROM t ORDER BY _row").fetchall()
    assert rows == frame.rows()
