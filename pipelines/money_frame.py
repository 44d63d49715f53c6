"""Strict amount parsing for whole columns, so that large files never go through Python per row.

The rules are those of `pipelines.money.parse_amount`: a plain decimal with at most the currency's
exponent of fraction digits; the first offending row is reported with its index and text.
"""

from __future__ import annotations

import polars as pl

from pipelines.money import AMOUNT_MINOR_MAX, MoneyError, parse_amount


def parse_amount_column(
    values: pl.Series, exp: int, *, currency: str, channel: str | None = None, allow_empty: bool = False
) -> pl.Series:
    """Parse a String series of major-unit amounts into an Int64 series of minor units.

    `exp` is the currency's exponent (as the channel counts it). Empty cells are refused unless
    `allow_empty`, when they become null. On the first bad cell a MoneyError is raised whose detail
    starts with `row N` (0-based index into `values`).
    """
    text = values.cast(pl.String).str.strip_chars()
    pattern = r"^[+-]?[0-9]+$" if exp == 0 else rf"^[+-]?[0-9]+(\.[0-9]{{1,{exp}}})?$"
    well_formed = text.str.contains(pattern).fill_null(False)
    parts = text.str.split_exact(".", 1)
    frame = pl.DataFrame({"whole": parts.struct.field("field_0"), "frac": parts.struct.field("field_1").fill_null("")})
    digits = frame.select(
        (pl.col("whole").str.replace(r"^[+-]", "") + pl.col("frac").str.pad_end(exp, "0")).alias("digits"),
        pl.col("whole").str.starts_with("-").alias("negative"),
    )
    magnitude = digits["digits"].cast(pl.UInt64, strict=False)
    # A well-formed cell beyond 64 bits: over the maximum, or too long for the cast at all (null),
    # which a 16-digit amount is once padded to a four-decimal currency's minor units.
    overflow = well_formed & (magnitude > AMOUNT_MINOR_MAX).fill_null(True)
    ok = well_formed & ~overflow
    if allow_empty:
        ok = ok | text.is_null() | (text == "")
    bad = (~ok.fill_null(False)).arg_true()
    if len(bad):
        row = int(bad[0])
        cell = text[row]
        if overflow[row]:
            raise MoneyError("overflow", f"row {row}: {cell!r} does not fit a signed 64-bit amount")
        try:
            parse_amount(cell if cell is not None else "", currency, channel=channel)
        except MoneyError as exc:
            raise MoneyError(exc.reason, f"row {row}: {exc.detail}") from None
        raise MoneyError("malformed_amount", f"row {row}: {cell!r} is not a plain decimal amount")
    result = (
        pl.DataFrame({"m": magnitude, "neg": digits["negative"]})
        .select(pl.when(pl.col("neg")).then(-pl.col("m").cast(pl.Int64)).otherwise(pl.col("m").cast(pl.Int64)))
        .to_series()
    )
    if allow_empty:
        empty = (text == "").fill_null(True)
        result = pl.select(pl.when(empty).then(None).otherwise(result)).to_series()
    return result.alias(values.name)
