"""`stripe`: Stripe's itemized balance-transaction report (balance change from activity / payout
reconciliation, `*.itemized.*`), as CSV from the Reports API or the Dashboard.

Our own reader on Polars: Stripe publishes no parser for its report CSVs, and Polars reads ten
million rows without a Python loop. Columns are located by name (Stripe lets the caller choose
and order them); the ones we need are

    balance_transaction_id, created_utc, available_on_utc, currency, gross, fee, net,
    reporting_category, source_id, payment_metadata[payment_id], refund_metadata[payment_id]

Amounts are major units with the currency's decimals as Stripe counts them ("12.34"; ISK, HUF,
TWD and UGX in two-decimal units, see `pipelines.money.CHANNEL_EXPONENT_OVERRIDES`): they are read
with Stripe's exponent and converted to ISO minor units, refusing any that would lose a digit.
Signs follow Stripe's balance: gross is positive when funds come in, `fee` is what Stripe charged,
`net = gross - fee`, which is checked on every line (`net_mismatch`).

reporting_category -> line type: charge PAYMENT; refund, partial_capture_reversal REFUND; payout,
transfer PAYOUT; fee, network_cost, tax FEE; dispute CHARGEBACK; dispute_reversal, refund_failure,
payout_reversal REVERSAL; anything else ADJUSTMENT. payment_id is our id from the metadata Stripe
echoes (`refund_metadata[payment_id]` on a refund, else `payment_metadata[payment_id]`);
channel_txn_id is `source_id` (ch_, re_, po_...), else the balance transaction id. A balance
transaction exists only for money that moved, so raw is `succeeded` (the rule's status code).

The report has no control totals of its own: what is checked is the header, every amount, every
line's net, and that the file is complete (a CSV cut inside a row fails its field count).
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from connectors.statements import ParsedFile, StatementFormat, register
from connectors.statements._common import (
    ControlCheck,
    ControlPolicy,
    amounts_by_currency,
    build_frame,
    csv_fields,
    decode,
    null_if_empty,
    read_bytes,
    refuse,
    timestamps,
)
from connectors.statements.intake import sha256_bytes
from pipelines.money import CURRENCY_EXPONENTS, exponent, format_amount
from pipelines.records import LineType, StatementLine

if TYPE_CHECKING:
    from pipelines.matching.rules import Rule

NAME = "stripe"
REQUIRED = ("balance_transaction_id", "created_utc", "currency", "gross", "fee", "net", "reporting_category")
COLUMNS = (
    "balance_transaction_id", "created_utc", "available_on_utc", "currency", "gross", "fee", "net",
    "reporting_category", "source_id", "description", "customer_facing_amount", "customer_facing_currency",
    "automatic_payout_id", "payment_metadata[payment_id]", "refund_metadata[payment_id]",
)  # fmt: skip
CATEGORY = {
    "charge": LineType.PAYMENT,
    "refund": LineType.REFUND,
    "partial_capture_reversal": LineType.REFUND,
    "payout": LineType.PAYOUT,
    "transfer": LineType.PAYOUT,
    "fee": LineType.FEE,
    "network_cost": LineType.FEE,
    "tax": LineType.FEE,
    "dispute": LineType.CHARGEBACK,
    "dispute_reversal": LineType.REVERSAL,
    "refund_failure": LineType.REVERSAL,
    "payout_reversal": LineType.REVERSAL,
}
CATEGORY_OF = {LineType.PAYMENT: "charge", LineType.REFUND: "refund", LineType.PAYOUT: "payout",
               LineType.FEE: "fee", LineType.CHARGEBACK: "dispute", LineType.REVERSAL: "dispute_reversal",
               LineType.ADJUSTMENT: "other_adjustment"}  # fmt: skip
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def _to_iso_minor(path: Path, minor: pl.Series, currencies: pl.Series, line_nos: pl.Series) -> pl.Series:
    """Stripe counts a few currencies in other units than ISO 4217; re-express them exactly."""
    out = minor
    for cur in currencies.unique().to_list():
        shift = exponent(cur, NAME) - CURRENCY_EXPONENTS[cur]
        if shift <= 0:
            continue
        mask = currencies == cur
        lost = (mask & (minor % 10**shift != 0)).arg_true()
        if len(lost):
            i = int(lost[0])
            raise refuse(path, int(line_nos[i]), "too_many_decimals", f"{minor[i]} Stripe units of {cur} lose digits")
        out = pl.select(pl.when(mask).then(out // 10**shift).otherwise(out)).to_series()
    return out


def parse(
    path: Path, *, channel: str, business_date: date | None = None, controls: ControlPolicy = "enforce"
) -> ParsedFile:
    """Parse one Stripe itemized balance report CSV into statement lines (ISO minor units); refuse
    it whole on any defect. The report carries no control totals of its own, so `controls` changes
    nothing but adds an empty `mismatches` list under `report`."""
    path = Path(path)
    data = read_bytes(path)
    sha = sha256_bytes(data)
    text = decode(path, data, "utf-8")
    first = text.split("\n", 1)[0]
    header = csv_fields(path, 1, first)
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise refuse(path, 1, "bad_header", f"a Stripe balance report needs the columns {missing}")
    if text.count("\n") <= 1 and not text.split("\n", 1)[-1].strip():
        raise refuse(path, 1, "header_only", "a header and no balance transactions")
    if not text.endswith("\n"):
        # Stripe ends every report with a newline; without it the last row may be cut.
        raise refuse(path, text.count("\n") + 1, "truncated", "the file does not end with a newline")
    try:
        rows = pl.read_csv(io.StringIO(text), infer_schema=False, has_header=True, empty_string_is_null=False)
    except pl.exceptions.PolarsError as exc:
        raise refuse(path, 0, "bad_record", str(exc).splitlines()[0]) from None
    n = rows.height
    # Rows are one line each (Stripe quotes but never breaks a field across lines).
    if text.count("\n") != n + 1:
        raise refuse(path, 0, "bad_record", f"{text.count(chr(10)) - 1} lines but {n} rows: a field holds a newline")
    line_nos = pl.int_range(2, n + 2, eager=True).cast(pl.Int64)
    short = rows["reporting_category"].is_null() | (rows["reporting_category"] == "")
    if short.any():
        i = int(short.arg_true()[0])
        raise refuse(path, i + 2, "truncated", "the row ends before reporting_category")
    cur = rows["currency"].str.to_uppercase()
    gross, fee, net = (
        _to_iso_minor(path, amounts_by_currency(path, rows[c], cur, line_nos, NAME, c), cur, line_nos)
        for c in ("gross", "fee", "net")
    )
    category = rows["reporting_category"]
    line_type = category.replace_strict({k: v.value for k, v in CATEGORY.items()}, default=LineType.ADJUSTMENT.value)

    def col(name: str) -> pl.Series:
        return null_if_empty(rows[name]) if name in rows.columns else pl.Series([None] * n, dtype=pl.String)

    is_refund = line_type == LineType.REFUND.value
    payment_id = pl.select(
        pl.when(is_refund & col("refund_metadata[payment_id]").is_not_null())
        .then(col("refund_metadata[payment_id]"))
        .otherwise(col("payment_metadata[payment_id]"))
    ).to_series()
    txn = pl.select(pl.coalesce(col("source_id"), col("balance_transaction_id"))).to_series()
    booked = timestamps(path, rows["created_utc"], line_nos, TIME_FORMAT, "created_utc")
    if "available_on_utc" in rows.columns:
        available = timestamps(path, rows["available_on_utc"], line_nos, TIME_FORMAT, "available_on_utc")
        value_date = pl.select(pl.coalesce(available, booked)).to_series().dt.date()
    else:
        value_date = booked.dt.date()
    frame = build_frame(
        path=path,
        sha256=sha,
        channel=channel,
        account="",
        business_date=business_date,
        columns={
            "line_no": line_nos,
            "line_type": line_type,
            "channel_txn_id": txn,
            "payment_id": payment_id,
            "gross_minor": gross,
            "fee_minor": fee,
            "net_minor": net,
            "currency": cur,
            "booked_at": booked,
            "value_date": value_date,
            "raw": pl.Series(["succeeded"] * n, dtype=pl.String),
        },
    )
    return ParsedFile(
        path=path, sha256=sha, format=NAME, frame=frame, controls=ControlCheck(path, controls).summary({"rows": n})
    )


def write(lines: Sequence[StatementLine], directory: Path, *, rule: Rule, business_date: date) -> list[Path]:
    """Write `lines` as one itemized balance report `<channel>_<date>_balance.csv` (UTF-8, quoted
    where needed, LF). Amounts in Stripe's units of the currency; times in UTC. A day without
    lines writes no file: the report has no trailer, so a header-only file cannot be told from a
    cut-off one and is refused on read (`header_only`)."""
    if not lines:
        return []
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{rule.channel}_{business_date.isoformat()}_balance.csv"
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for line in lines:
        cur = line.currency
        shift = exponent(cur, NAME) - CURRENCY_EXPONENTS[cur]

        def money(minor: int, cur: str = cur, shift: int = shift) -> str:
            return format_amount(minor * 10**shift, cur, channel=NAME)

        refund = line.line_type is LineType.REFUND
        ref = line.channel_txn_id or ""
        btx = "txn_" + hashlib.sha256(f"{ref}\x1f{line.line_no}".encode()).hexdigest()[:24]
        created = line.booked_at.strftime(TIME_FORMAT) if line.booked_at else ""
        available = (line.value_date.isoformat() + " 00:00:00") if line.value_date else created
        w.writerow((
            btx, created, available, cur.lower(), money(line.gross_minor), money(line.fee_minor),
            money(line.net_minor), CATEGORY_OF[line.line_type], ref, "payrecon", money(line.gross_minor),
            cur.lower(), "", "" if refund else (line.payment_id or ""), (line.payment_id or "") if refund else "",
        ))  # fmt: skip
    path.write_text(buf.getvalue(), encoding="utf-8")
    return [path]


def sniff(head: bytes, name: str) -> bool:
    first = head.split(b"\n", 1)[0]
    return b"balance_transaction_id" in first and b"reporting_category" in first


FORMAT = register(StatementFormat(NAME, parse=parse, write=write, sniff=sniff, description=__doc__.splitlines()[0]))
