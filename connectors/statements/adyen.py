"""`adyen`: the Adyen Settlement details report (`settlement_detail_report_batch_<N>.csv`), one
settlement batch per file, as Adyen generates it at each payout.

Our own reader on Polars: Adyen publishes no parser for its report CSVs, and Polars reads millions
of rows without a Python loop. Columns are located by their header names, since Adyen lets the
user add, drop and reorder columns (and its 2024 report migration moved some); the ones we read are

    Merchant Account, Psp Reference, Merchant Reference, Creation Date, TimeZone, Type,
    Modification Reference, Gross Currency, Gross Debit (GC), Gross Credit (GC), Net Currency,
    Net Debit (NC), Net Credit (NC), Commission (NC), Markup (NC), Scheme Fees (NC),
    Interchange (NC), Modification Merchant Reference, Batch Number

(`Merchant Account`, `Modification Reference` and `Modification Merchant Reference` may be absent;
every other one is required, `bad_header` otherwise). Amounts are unsigned major units of the
row's own currency ("12.34"), the direction given by the Debit or Credit column that is filled:
gross in the gross (transaction) currency, net and the four fee columns in the net (settlement)
currency. Creation Date is `YYYY-MM-DD HH:MM:SS` in the account's time zone, named per row by an
abbreviation in TimeZone (CET, CEST, BST, PST, ...); an abbreviation outside `TZ_OFFSETS_S`, or an
ambiguous one such as CST, refuses the file (`bad_timestamp`) rather than be guessed.

Lines (signed as ours: positive when money comes in):
- net = Net Credit - Net Debit (exactly one of the two is filled), in the net currency; that is the
  line's currency;
- fee = Commission + Markup + Scheme Fees + Interchange (empty cells are 0; Adyen fills Commission
  on blended pricing and the other three on Interchange++);
- gross = Gross Credit - Gross Debit when the gross currency is the net currency; then
  `gross - fee == net` must hold on the line (`net_mismatch`). When the currencies differ the gross
  is `net + fee` in the net currency: the report prints the exchange rate rounded, so the
  transaction-currency gross cannot be converted exactly and is not checked. Batch-level rows
  (Fee, MerchantPayout, ...) carry no gross; their gross is `net + fee` as well.
- Type -> line type: Settled, SettledBulk PAYMENT; Refunded, RefundedBulk REFUND; Chargeback,
  SecondChargeback, ChargebackBulk CHARGEBACK; ChargebackReversed, ChargebackReversal,
  RefundedReversed, PaidOutReversed, ChargebackReversedBulk REVERSAL; MerchantPayout, PaidOut
  PAYOUT; Fee, MiscCosts, PaymentCost, InvoiceDeduction FEE; any other journal type ADJUSTMENT.
- references: a modification of a payment (refund, chargeback, their reversals) carries its own
  ids, so its channel_txn_id is the Modification Reference and its payment_id the Modification
  Merchant Reference (our refund's id), each falling back to the payment's Psp Reference and
  Merchant Reference; any other line takes Psp Reference (else Modification Reference, which is
  where a MerchantPayout or Fee row puts its reference) and Merchant Reference.
- booked_at = Creation Date in UTC; value_date = its date in the account's time zone;
  raw = `settled`: the report lists only money that settled, so one status code serves the rule.

Control totals: the report has no trailer, so what is checked is the header, every amount, every
line's `gross - fee = net`, that the file ends with a newline (a CSV cut inside a row fails its
field count), and the batch: when a batch (Merchant Account, Batch Number, Net Currency) holds
its MerchantPayout row, the batch's lines net to zero, i.e. the payout equals the sum of the
batch's other nets (`control_total_mismatch` at the payout row).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC, date
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from connectors.statements import ParsedFile, StatementFormat, register
from connectors.statements._common import (
    ControlCheck,
    ControlPolicy,
    amounts_by_currency,
    build_frame,
    check_quoted_field_counts,
    csv_fields,
    decode,
    null_if_empty,
    read_bytes,
    refuse,
    split_lines,
    timestamps,
)
from connectors.statements.intake import sha256_bytes
from pipelines.money import format_amount
from pipelines.records import LineType, StatementLine

if TYPE_CHECKING:
    from pipelines.matching.rules import Rule

NAME = "adyen"
# The layout Adyen documents (before the optional Reserved columns), in its order; the writer uses it.
COLUMNS = (
    "Company Account", "Merchant Account", "Psp Reference", "Merchant Reference", "Payment Method",
    "Creation Date", "TimeZone", "Type", "Modification Reference", "Gross Currency", "Gross Debit (GC)",
    "Gross Credit (GC)", "Exchange Rate", "Net Currency", "Net Debit (NC)", "Net Credit (NC)",
    "Commission (NC)", "Markup (NC)", "Scheme Fees (NC)", "Interchange (NC)", "Payment Method Variant",
    "Modification Merchant Reference", "Batch Number",
)  # fmt: skip
REQUIRED = (
    "Psp Reference", "Merchant Reference", "Creation Date", "TimeZone", "Type", "Gross Currency",
    "Gross Debit (GC)", "Gross Credit (GC)", "Net Currency", "Net Debit (NC)", "Net Credit (NC)",
    "Commission (NC)", "Markup (NC)", "Scheme Fees (NC)", "Interchange (NC)", "Batch Number",
)  # fmt: skip
FEE_COLUMNS = ("Commission (NC)", "Markup (NC)", "Scheme Fees (NC)", "Interchange (NC)")
TYPES: dict[str, LineType] = {
    "Settled": LineType.PAYMENT,
    "SettledBulk": LineType.PAYMENT,
    "Refunded": LineType.REFUND,
    "RefundedBulk": LineType.REFUND,
    "Chargeback": LineType.CHARGEBACK,
    "SecondChargeback": LineType.CHARGEBACK,
    "ChargebackBulk": LineType.CHARGEBACK,
    "ChargebackReversed": LineType.REVERSAL,
    "ChargebackReversal": LineType.REVERSAL,
    "ChargebackReversedBulk": LineType.REVERSAL,
    "RefundedReversed": LineType.REVERSAL,
    "PaidOutReversed": LineType.REVERSAL,
    "MerchantPayout": LineType.PAYOUT,
    "PaidOut": LineType.PAYOUT,
    "Fee": LineType.FEE,
    "MiscCosts": LineType.FEE,
    "PaymentCost": LineType.FEE,
    "InvoiceDeduction": LineType.FEE,
}
# Journal types that modify a payment and carry their own modification references.
MODIFICATIONS = frozenset(
    {"Refunded", "RefundedBulk", "Chargeback", "SecondChargeback", "ChargebackBulk", "ChargebackReversed",
     "ChargebackReversal", "ChargebackReversedBulk", "RefundedReversed"}
)  # fmt: skip
PAYOUT_TYPE = "MerchantPayout"
# What the writer emits for each line type (PAYOUT as PaidOut: a payout to a third party, which
# does not close the batch the way a MerchantPayout does).
TYPE_OF = {LineType.PAYMENT: "Settled", LineType.REFUND: "Refunded", LineType.CHARGEBACK: "Chargeback",
           LineType.REVERSAL: "ChargebackReversed", LineType.PAYOUT: "PaidOut", LineType.FEE: "Fee",
           LineType.ADJUSTMENT: "ManualCorrected"}  # fmt: skip
# The time zone abbreviations Adyen writes in TimeZone, as UTC offsets in seconds. Ambiguous ones
# (CST: US Central or China; IST: India, Ireland or Israel) are left out on purpose.
TZ_OFFSETS_S: dict[str, int] = {
    "UTC": 0, "GMT": 0, "WET": 0, "WEST": 3600, "BST": 3600, "CET": 3600, "CEST": 7200, "EET": 7200,
    "EEST": 10800, "MSK": 10800, "SGT": 28800, "HKT": 28800, "AWST": 28800, "JST": 32400, "KST": 32400,
    "AEST": 36000, "AEDT": 39600, "NZST": 43200, "NZDT": 46800, "BRT": -10800, "ART": -10800,
    "EST": -18000, "EDT": -14400, "CDT": -18000, "MST": -25200, "MDT": -21600, "PST": -28800,
    "PDT": -25200, "AKST": -32400, "AKDT": -28800, "HST": -36000,
}  # fmt: skip
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
STATUS = "settled"


def parse(
    path: Path, *, channel: str, business_date: date | None = None, controls: ControlPolicy = "enforce"
) -> ParsedFile:
    """Parse one Adyen Settlement details report CSV into statement lines (ISO minor units of the
    net currency); refuse it whole on any defect, including a batch whose MerchantPayout does not
    equal its lines (`controls="report"`: list each such batch in `ParsedFile.controls["mismatches"]`)."""
    path = Path(path)
    ctl = ControlCheck(path, controls)
    data = read_bytes(path)
    sha = sha256_bytes(data)
    text = decode(path, data, "utf-8")
    header = csv_fields(path, 1, text.split("\n", 1)[0])
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise refuse(path, 1, "bad_header", f"an Adyen settlement details report needs the columns {missing}")
    if not text.split("\n", 1)[-1].strip():
        raise refuse(path, 1, "header_only", "a header and no settlement rows")
    if not text.endswith("\n"):
        # Adyen ends every report with a newline; without it the last row may be cut.
        raise refuse(path, text.count("\n") + 1, "truncated", "the file does not end with a newline")
    # Field counts first, per line and quote-aware: Polars pads a short row and fails a long one
    # without naming its line.
    data_lines = split_lines(text).slice(1)
    line_nos = pl.int_range(2, len(data_lines) + 2, eager=True).cast(pl.Int64)
    check_quoted_field_counts(path, data_lines, line_nos, len(header))
    try:
        rows = pl.read_csv(io.StringIO(text), infer_schema=False, has_header=True, empty_string_is_null=False)
    except pl.exceptions.PolarsError as exc:
        raise refuse(path, 0, "bad_record", str(exc).splitlines()[0]) from None
    n = rows.height
    if n != len(data_lines):
        raise refuse(path, 0, "bad_record", f"{len(data_lines)} lines but {n} rows: a field holds a newline")

    kind = rows["Type"].str.strip_chars()
    net_cur = rows["Net Currency"].str.strip_chars().str.to_uppercase()
    no_cur = (net_cur == "").arg_true()
    if len(no_cur):
        raise refuse(path, int(no_cur[0]) + 2, "missing_field", "Net Currency is empty")
    net_debit, net_credit = (
        amounts_by_currency(path, rows[c], net_cur, line_nos, NAME, c, allow_empty=True)
        for c in ("Net Debit (NC)", "Net Credit (NC)")
    )
    sides = net_debit.is_not_null().cast(pl.Int8) + net_credit.is_not_null().cast(pl.Int8)
    if len(bad := (sides != 1).arg_true()):
        i = int(bad[0])
        what = "neither Net Debit nor Net Credit" if sides[i] == 0 else "both Net Debit and Net Credit"
        raise refuse(path, i + 2, "missing_field" if sides[i] == 0 else "bad_record", f"the row has {what}")
    net = net_credit.fill_null(0) - net_debit.fill_null(0)
    fee = pl.repeat(0, n, dtype=pl.Int64, eager=True).alias("fee")
    for c in FEE_COLUMNS:
        # Blended pricing fills only Commission, Interchange++ only the other three: an all-empty
        # column adds nothing and is not worth a strict parse of every cell.
        if (rows[c].str.strip_chars() != "").any():
            fee = fee + amounts_by_currency(path, rows[c], net_cur, line_nos, NAME, c, allow_empty=True).fill_null(0)

    gross_debit_text, gross_credit_text = rows["Gross Debit (GC)"], rows["Gross Credit (GC)"]
    has_gross = (gross_debit_text.str.strip_chars() != "") | (gross_credit_text.str.strip_chars() != "")
    gross_cur_text = rows["Gross Currency"].str.strip_chars().str.to_uppercase()
    if len(bad := (has_gross & (gross_cur_text == "")).arg_true()):
        raise refuse(path, int(bad[0]) + 2, "missing_field", "a gross amount without its Gross Currency")
    # A row without a gross amount is booked at the batch level; its (absent) gross is read in the
    # net currency so that every cell parses under a known currency.
    gross_cur = pl.select(pl.when(has_gross).then(gross_cur_text).otherwise(net_cur)).to_series()
    gross_debit, gross_credit = (
        amounts_by_currency(path, rows[c], gross_cur, line_nos, NAME, c, allow_empty=True)
        for c in ("Gross Debit (GC)", "Gross Credit (GC)")
    )
    if len(bad := (gross_debit.is_not_null() & gross_credit.is_not_null()).arg_true()):
        raise refuse(path, int(bad[0]) + 2, "bad_record", "the row has both Gross Debit and Gross Credit")
    stated = gross_credit.fill_null(0) - gross_debit.fill_null(0)
    same_currency = has_gross & (gross_cur == net_cur)
    # Where the currencies agree the gross is the file's own and build_frame checks gross - fee = net;
    # elsewhere it is derived from the net currency's amounts (see the module docstring).
    gross = pl.select(pl.when(same_currency).then(stated).otherwise(net + fee)).to_series()

    offsets = rows["TimeZone"].str.strip_chars().replace_strict(TZ_OFFSETS_S, default=None, return_dtype=pl.Int64)
    if len(bad := offsets.is_null().arg_true()):
        i = int(bad[0])
        raise refuse(path, i + 2, "bad_timestamp",
                     f"TimeZone {rows['TimeZone'][i]!r} is not one of {', '.join(TZ_OFFSETS_S)}")  # fmt: skip
    local = timestamps(path, rows["Creation Date"], line_nos, TIME_FORMAT, "Creation Date")
    if len(bad := local.is_null().arg_true()):
        raise refuse(path, int(bad[0]) + 2, "missing_field", "Creation Date is empty")
    # Offsets are whole seconds; as microsecond durations they shift the naive local time to UTC.
    booked = (local - (offsets * 1_000_000).cast(pl.Duration("us"))).alias("booked_at")

    def col(name: str) -> pl.Series:
        return (
            null_if_empty(rows[name])
            if name in rows.columns
            else pl.repeat(None, n, dtype=pl.String, eager=True).alias(name)
        )

    is_mod = kind.is_in(sorted(MODIFICATIONS))
    txn = pl.select(
        pl.when(is_mod)
        .then(pl.coalesce(col("Modification Reference"), col("Psp Reference")))
        .otherwise(pl.coalesce(col("Psp Reference"), col("Modification Reference")))
    ).to_series()
    payment_id = pl.select(
        pl.when(is_mod)
        .then(pl.coalesce(col("Modification Merchant Reference"), col("Merchant Reference")))
        .otherwise(col("Merchant Reference"))
    ).to_series()
    line_type = kind.replace_strict({k: v.value for k, v in TYPES.items()}, default=LineType.ADJUSTMENT.value)

    frame = build_frame(
        path=path,
        sha256=sha,
        channel=channel,
        account=str(rows["Merchant Account"][0]) if "Merchant Account" in rows.columns else "",
        business_date=business_date,
        columns={
            "line_no": line_nos,
            "line_type": line_type,
            "channel_txn_id": txn,
            "payment_id": payment_id,
            "gross_minor": gross,
            "fee_minor": fee,
            "net_minor": net,
            "currency": net_cur,
            "booked_at": booked,
            "value_date": local.dt.date(),
            "raw": pl.repeat(STATUS, n, dtype=pl.String, eager=True),
        },
    )
    # After build_frame, so that a line whose own gross - fee != net is named before its batch.
    batches = _check_batches(path, rows, kind, net_cur, net, line_nos, ctl)
    return ParsedFile(path=path, sha256=sha, format=NAME, frame=frame,
                      controls=ctl.summary({"rows": n, "batches": batches[0], "payouts_checked": batches[1]}))  # fmt: skip


def _check_batches(
    path: Path,
    rows: pl.DataFrame,
    kind: pl.Series,
    currency: pl.Series,
    net: pl.Series,
    line_nos: pl.Series,
    ctl: ControlCheck,
) -> tuple[int, int]:
    """A batch that holds its MerchantPayout nets to zero: the payout takes exactly what the batch's
    other lines brought in. Returns (batches, batches whose payout was checked)."""
    account = rows["Merchant Account"] if "Merchant Account" in rows.columns else pl.Series([""] * rows.height)
    frame = pl.DataFrame(
        {
            "account": account,
            "batch": rows["Batch Number"].str.strip_chars(),
            "currency": currency,
            "payout": kind == PAYOUT_TYPE,
            "net": net.cast(pl.Int128),
            "line_no": line_nos,
        }
    )
    if len(bad := (frame["batch"] == "").arg_true()):
        raise refuse(path, int(line_nos[int(bad[0])]), "missing_field", "Batch Number is empty")
    sums = (
        frame.group_by("account", "batch", "currency")
        .agg(
            pl.col("net").sum().alias("total"),
            pl.col("payout").any().alias("has_payout"),
            pl.col("net").filter(pl.col("payout")).sum().alias("paid"),
            pl.col("line_no").filter(pl.col("payout")).min().alias("payout_line"),
        )
        .sort("payout_line", nulls_last=True)
    )
    wrong = sums.filter(pl.col("has_payout") & (pl.col("total") != 0))
    for row in wrong.iter_rows(named=True):
        brought = int(row["total"]) - int(row["paid"])
        ctl.disagree(
            int(row["payout_line"]),
            "control_total_mismatch",
            f"batch {row['batch']} ({row['currency']}): the MerchantPayout pays out {-int(row['paid'])} but the "
            f"batch's other lines net to {brought} (minor units)",
        )
    return sums.height, int(sums["has_payout"].sum())


def write(lines: Sequence[StatementLine], directory: Path, *, rule: Rule, business_date: date) -> list[Path]:
    """Write `lines` as one Settlement details report `<channel>_<date>_settlement_detail_batch_1.csv`
    (UTF-8, LF, the documented column order), batch 1 of the rule's account, times in UTC. Each line
    becomes one row in its own currency with exchange rate 1 and the fee in Commission (NC); a
    modification (refund, chargeback, reversal) keeps its ids in the Modification columns. A day
    without lines writes no file (the report has no trailer: header-only is refused on read)."""
    if not lines:
        return []
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{rule.channel}_{business_date.isoformat()}_settlement_detail_batch_1.csv"
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(COLUMNS)
    for line in lines:
        if line.booked_at is None:
            raise ValueError(f"{line.channel_txn_id}: an Adyen row needs its creation time")
        cur = line.currency

        def money(minor: int, cur: str = cur) -> str:
            return format_amount(minor, cur)

        kind = TYPE_OF[line.line_type]
        mod = kind in MODIFICATIONS
        ref, pid = line.channel_txn_id or "", line.payment_id or ""
        row = dict.fromkeys(COLUMNS, "")
        row.update({
            "Company Account": "PayreconCompany", "Merchant Account": rule.account,
            "Psp Reference": "" if mod else ref, "Merchant Reference": "" if mod else pid,
            "Payment Method": "visa", "Creation Date": line.booked_at.astimezone(UTC).strftime(TIME_FORMAT),
            "TimeZone": "UTC", "Type": kind, "Modification Reference": ref if mod else "",
            "Gross Currency": cur, "Exchange Rate": "1", "Net Currency": cur,
            "Gross Debit (GC)" if line.gross_minor < 0 else "Gross Credit (GC)": money(abs(line.gross_minor)),
            "Net Debit (NC)" if line.net_minor < 0 else "Net Credit (NC)": money(abs(line.net_minor)),
            "Commission (NC)": money(line.fee_minor) if line.fee_minor else "",
            "Modification Merchant Reference": pid if mod else "", "Batch Number": "1",
        })  # fmt: skip
        out.writerow(row[c] for c in COLUMNS)
    path.write_text(buf.getvalue(), encoding="utf-8")
    return [path]


def sniff(head: bytes, name: str) -> bool:
    first = head.split(b"\n", 1)[0]
    return b"Psp Reference" in first and b"Net Credit (NC)" in first


FORMAT = register(StatementFormat(NAME, parse=parse, write=write, sniff=sniff, description=__doc__.splitlines()[0]))
