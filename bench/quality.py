"""What the quality gate costs: Great Expectations against the same checks in DuckDB SQL.

Builds typed frames of a statement file and of an internal extract at each size (synthetic, clean,
so every expectation is evaluated over every row and none short-circuits), then times
`validate_statement` and `validate_internal` with `engine="gx"` and `engine="duckdb"` side by side
in one run. Each measurement runs in a fresh process, so its peak RSS is its own; one-time costs
(the GX import takes seconds) are paid on a 100-row warm-up and reported apart as start-up.

    .venv/bin/python bench/quality.py --rows 1000000 --rows 10000000

Figures go to bench/README.md, section "Quality gate".
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BUSINESS_DATE = date(2026, 11, 2)


def statement_frame(rows: int) -> pl.DataFrame:
    """`rows` clean statement lines of the alipay rule (CNY), typed as LINE_SCHEMA."""
    from connectors.statements import LINE_SCHEMA

    start = datetime(2026, 11, 2, tzinfo=UTC)
    i = pl.int_range(0, rows, dtype=pl.Int64, eager=True)
    gross = (i * 7919) % 1_000_000 + 100
    fee = (gross * 6000 * 2 + 1_000_000) // 2_000_000
    return pl.DataFrame(
        {
            "channel": pl.repeat("alipay", rows, eager=True),
            "account": pl.repeat("2088000000000001", rows, eager=True),
            "business_date": pl.repeat(BUSINESS_DATE, rows, eager=True),
            "source_file": pl.repeat("alipay_2026-11-02.csv", rows, eager=True),
            "source_sha256": pl.repeat("0" * 64, rows, eager=True),
            "line_no": i + 2,
            "line_type": pl.select(
                pl.when(i % 20 == 0).then(pl.lit("REFUND")).otherwise(pl.lit("PAYMENT"))
            ).to_series(),
            "channel_txn_id": ("2026110222001" + i.cast(pl.String).str.zfill(10)),
            "payment_id": ("P" + i.cast(pl.String).str.zfill(10)),
            "gross_minor": gross,
            "fee_minor": fee,
            "net_minor": gross - fee,
            "currency": pl.repeat("CNY", rows, eager=True),
            "booked_at": pl.select(
                pl.lit(start) + pl.duration(microseconds=(pl.lit(i) * 86_399_000_000) // max(rows, 1))
            ).to_series(),
            "value_date": pl.repeat(BUSINESS_DATE, rows, eager=True),
            "raw": pl.repeat("TRADE_SUCCESS", rows, eager=True),
        }
    ).select([pl.col(name).cast(dtype) for name, dtype in LINE_SCHEMA.items()])


def internal_frame(rows: int) -> pl.DataFrame:
    """`rows` clean internal records over four channels and currencies, typed as INTERNAL_SCHEMA."""
    from pipelines.frames import INTERNAL_SCHEMA

    start = datetime(2026, 11, 2, tzinfo=UTC)
    i = pl.int_range(0, rows, dtype=pl.Int64, eager=True)
    biz = ["PAY", "PAY", "PAY", "TOPUP", "WITHDRAW", "REFUND", "TRANSFER"]
    refund = (i % len(biz)) == biz.index("REFUND")
    created = pl.select(
        pl.lit(start) + pl.duration(microseconds=(pl.lit(i) * 86_399_000_000) // max(rows, 1))
    ).to_series()
    frame = pl.DataFrame(
        {
            "payment_id": "P" + i.cast(pl.String).str.zfill(10),
            "biz_type": pl.Series(biz).gather(i % len(biz)),
            "parent_payment_id": pl.select(
                pl.when(refund).then("P" + (i // 2).cast(pl.String).str.zfill(10))
            ).to_series(),
            "merchant_id": "M" + (i % 1000).cast(pl.String),
            "account_id": "A" + (i % 100_000).cast(pl.String),
            "channel": pl.Series(["alipay", "wechatpay", "stripe", "jpbank"]).gather(i % 4),
            "channel_txn_id": "T" + i.cast(pl.String).str.zfill(12),
            "amount_minor": (i * 7919) % 1_000_000 + 100,
            "currency": pl.Series(["CNY", "CNY", "USD", "JPY"]).gather(i % 4),
            "fee_minor": (i * 31) % 500,
            "status": pl.Series(["SUCCEEDED"] * 9 + ["FAILED"]).gather(i % 10),
            "created_at": created,
            "updated_at": created,
            "trace_id": i.cast(pl.String).str.zfill(32),
        }
    )
    return frame.select([pl.col(name).cast(dtype) for name, dtype in INTERNAL_SCHEMA.items()])


def _measure(kind: str, engine: str, path: str, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    from pipelines.matching.rules import rule_for
    from pipelines.quality import QualityResult, validate_internal, validate_statement

    frame = pl.read_parquet(path)

    def validate(part: pl.DataFrame) -> QualityResult:
        if kind == "statement":
            return validate_statement(
                part,
                rule=rule_for("alipay"),
                business_date=BUSINESS_DATE,
                source="bench",
                engine=engine,  # type: ignore[arg-type]
            )
        return validate_internal(part, business_date=BUSINESS_DATE, source="bench", engine=engine)  # type: ignore[arg-type]

    # One-time costs (imports, engine start-up) are paid on a 100-row slice and reported apart.
    t = time.perf_counter()
    validate(frame.head(100))
    first_s = time.perf_counter() - t
    t = time.perf_counter()
    result = validate(frame)
    seconds = time.perf_counter() - t
    assert result.ok, result.failures  # the frames are clean: a failure here is a bug in the gate
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((seconds, first_s, peak_mb, result.statistics["evaluated"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append", help="frame sizes (repeatable); default 1M and 10M")
    parser.add_argument("--engines", default="gx,duckdb", help="comma-separated engines to time")
    args = parser.parse_args()
    sizes = args.rows or [1_000_000, 10_000_000]
    ctx = mp.get_context("spawn")
    print("| suite | rows | engine | expectations | validate s | start-up s | peak RSS MB | GX / DuckDB |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="payrecon-bench-quality-") as tmp:
        for rows in sizes:
            for kind, build in (("statement", statement_frame), ("internal", internal_frame)):
                path = str(Path(tmp) / f"{kind}-{rows}.parquet")
                build(rows).write_parquet(path)
                timings: dict[str, float] = {}
                for engine in args.engines.split(","):
                    queue: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
                    proc = ctx.Process(target=_measure, args=(kind, engine, path, queue))
                    proc.start()
                    seconds, first_s, peak_mb, evaluated = queue.get()
                    proc.join()
                    timings[engine] = seconds
                    ratio = f"{timings['gx'] / timings['duckdb']:.1f}x" if len(timings) == 2 else ""
                    print(
                        f"| {kind} | {rows:,} | {engine} | {evaluated} | {seconds:.2f} | "
                        f"{first_s:.1f} | {peak_mb:,.0f} | {ratio} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
