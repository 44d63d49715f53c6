"""`paypal_stl`: the PayPal Settlement Report (STL, `STL-yyyymmdd.seq.version.CSV`), from PayPal's
Settlement Report Specification (v9 layout, with its column header row).

Our own parser: no maintained library reads STL (the Magento module that did skips every footer),
and the footers are the point. Layout (UTF-8, a byte order mark allowed as the specification notes,
comma separated, text fields in double quotes), one record per line, its type in the first field:

    RH  report header: generation time, reporting window, account id, report version
    FH  file header: file sequence number
    SH  section header: section start, section end, account id, partner account id
    CH  column header: the names of the SB fields (located by name, as the specification advises)
    SB  section body: one transaction
    SF  section footer, one per currency: Balance Currency, Total Gross Amount Credit, Total Gross
        Amount Debit, Total Fee Amount Credit, Total Fee Amount Debit, and optionally Beginning
        Available Balance Debit or Credit, Beginning Available Balance, Ending Available Balance
        Debit or Credit, Ending Available Balance (then the payable balances, not used)
    SC  section record count: the number of SB rows in the section
    RF  report footer, one per currency: the SF fields for the whole report
    RC  report record count: the number of SB rows in the report
    FF  file footer: the number of rows in the file

A file is RH, FH, one or more sections (SH, CH, SB..., SF..., SC), then RF..., RC, FF. A report
PayPal splits over several files (beyond a million rows) is read one whole report at a time: a
file without its RF/RC/FF is refused (`truncated`).

Amounts: "unsigned, with no currency symbol, decimal separator, or other punctuation ... 100,00
yen and $100.00 USD are both represented as 10000" (the specification). So the file counts every
currency in hundredths of its unit, which are ISO minor units for two-decimal currencies only: a
JPY amount is divided by 100 (refused, `too_many_decimals`, when that leaves a remainder) and a
three-decimal one multiplied by 10. A signed or punctuated amount is refused (`malformed_amount`).
The direction is the field beside it: Transaction Debit or Credit (CR money in, DR money out) for
the gross, Fee Debit or Credit for the fee (DR charged to us: our fee_minor is positive; CR a fee
returned). No fee is written as empty fields, read as 0.

Lines: channel_txn_id = Transaction ID; payment_id = Invoice ID, else Custom Field; gross = the
signed gross, fee as above, net = gross - fee, currency = Gross Transaction Currency (a different
Fee Currency is refused, `mixed_currency`); booked_at = Transaction Completion Date (else the
Initiation Date) in UTC, written `yyyy/mm/dd hh:mm:ss +hhmm`; value_date = its date as written;
raw = `settled` (the report lists only money that moved the balance). Transaction Event Code
(T-code) -> line type, by PayPal's T-code groups: T00xx payments PAYMENT when credited, PAYOUT
when sent (MassPay and the like); T01xx fees FEE; T04xx withdrawals to a bank PAYOUT; T1107
(payment refund) REFUND; T1106 (payment reversal initiated by PayPal) and T1201 (chargeback)
CHARGEBACK; T1202 (chargeback reversal) and the other T11xx reversals REVERSAL; everything else
(holds T15xx, reserves T21xx, adjustments T12xx, conversions T02xx, ...) ADJUSTMENT.

Control totals, all refused as `control_total_mismatch` at the footer line: each SC equals its
section's SB rows; RC the report's; FF the file's rows (the specification leaves open whether the
header and footer rows count; either reading is accepted, nothing else). Each SF (per section) and
RF (per report) equals, for its currency, the sums of the gross credits, gross debits, fee credits
and fee debits of the SB rows, in the file's units; a currency with SB rows but no footer row is
refused too. Where a footer states the available balances, beginning + credits - debits (gross
and fee) must equal ending (`balance_mismatch`).
"""

from __future__ import annotations

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
    build_frame,
    check_quoted_field_counts,
    csv_fields,
    decode,
    null_if_empty,
    read_bytes,
    refuse,
    split_lines,
    timestamps,
    whole_number,
)
from connectors.statements.intake import sha256_bytes
from pipelines.money import AMOUNT_MINOR_MAX, MoneyError, exponent
from pipelines.records import LineType, StatementLine

if TYPE_CHECKING:
    from pipelines.matching.rules import Rule

NAME = "paypal_stl"
COLUMNS = (
    "Transaction ID", "Invoice ID", "PayPal Reference ID", "PayPal Reference ID Type", "Transaction Event Code",
    "Transaction Initiation Date", "Transaction Completion Date", "Transaction Debit or Credit",
    "Gross Transaction Amount", "Gross Transaction Currency", "Fee Debit or Credit", "Fee Amount", "Fee Currency",
    "Custom Field", "Consumer ID", "Payment Tracking ID", "Store ID", "Bank Reference ID",
    "Credit Transactional Fee", "Credit Promotional Fee", "Credit Term",
)  # fmt: skip
REQUIRED = (
    "Transaction ID", "Invoice ID", "Transaction Event Code", "Transaction Initiation Date",
    "Transaction Completion Date", "Transaction Debit or Credit", "Gross Transaction Amount",
    "Gross Transaction Currency", "Fee Debit or Credit", "Fee Amount", "Fee Currency", "Custom Field",
)  # fmt: skip
FOOTER_FIELDS = ("currency", "gross_cr", "gross_dr", "fee_cr", "fee_dr", "begin_dc", "begin", "end_dc", "end")
# Every currency is written in hundredths of its unit, whatever its ISO exponent (see the docstring).
FILE_EXPONENT = 2
TIME_FORMAT = "%Y/%m/%d %H:%M:%S %z"
STATUS = "settled"
TCODE_OF = {LineType.PAYMENT: "T0006", LineType.REFUND: "T1107", LineType.CHARGEBACK: "T1201",
            LineType.REVERSAL: "T1202", LineType.PAYOUT: "T0400", LineType.FEE: "T0100",
            LineType.ADJUSTMENT: "T1900"}  # fmt: skip
# A file's rows, in order: each row type and the types that may follow it.
FOLLOWS: dict[str, frozenset[str]] = {
    "RH": frozenset({"FH"}),
    "FH": frozenset({"SH"}),
    "SH": frozenset({"CH"}),
    "CH": frozenset({"SB", "SF", "SC"}),
    "SB": frozenset({"SB", "SF", "SC"}),
    "SF": frozenset({"SF", "SC"}),
    "SC": frozenset({"SH", "RF", "RC"}),
    "RF": frozenset({"RF", "RC"}),
    "RC": frozenset({"FF"}),
    "FF": frozenset(),
}
ALLOWED_PAIRS = frozenset(f"{a}>{b}" for a, follow in FOLLOWS.items() for b in follow)
# Limits: an STL file holds at most a million transactions (PayPal splits beyond); an amount of more
# than 18 digits cannot be an Int64.
amount_digits_max = 18


def _line_type(tcode: pl.Series, credit: pl.Series) -> pl.Series:
    """T-code (and direction, for T00xx) to line type, per the module docstring."""
    group = tcode.str.slice(0, 3)
    return pl.select(
        pl.when(tcode == "T1107")
        .then(pl.lit(LineType.REFUND.value))
        .when(tcode.is_in(["T1106", "T1201"]))
        .then(pl.lit(LineType.CHARGEBACK.value))
        .when((tcode == "T1202") | (group == "T11"))
        .then(pl.lit(LineType.REVERSAL.value))
        .when(group == "T00")
        .then(pl.when(credit).then(pl.lit(LineType.PAYMENT.value)).otherwise(pl.lit(LineType.PAYOUT.value)))
        .when(group == "T01")
        .then(pl.lit(LineType.FEE.value))
        .when(group == "T04")
        .then(pl.lit(LineType.PAYOUT.value))
        .otherwise(pl.lit(LineType.ADJUSTMENT.value))
    ).to_series()


def _units(path: Path, values: pl.Series, line_nos: pl.Series, column: str, *, allow_empty: bool = False) -> pl.Series:
    """Unsigned digit strings (the file's hundredths) to Int64; the first bad cell refuses the file."""
    text = values.fill_null("").str.strip_chars()
    ok = text.str.contains(r"^[0-9]+$")
    if allow_empty:
        ok = ok | (text == "")
    if len(bad := (~ok).arg_true()):
        i = int(bad[0])
        reason = "empty_amount" if text[i] == "" else "malformed_amount"
        raise refuse(path, int(line_nos[i]), reason, f"{column} {values[i]!r}: STL amounts are unsigned digits")
    if len(big := (text.str.strip_chars_start("0").str.len_chars() > amount_digits_max).arg_true()):
        i = int(big[0])
        raise refuse(path, int(line_nos[i]), "overflow", f"{column} {values[i]!r} does not fit 64 bits")
    return pl.select(pl.when(text == "").then(None).otherwise(text).cast(pl.Int64)).to_series().alias(column)


def _to_iso(path: Path, units: pl.Series, currencies: pl.Series, line_nos: pl.Series, column: str) -> pl.Series:
    """The file's hundredths to ISO minor units of each row's currency, exactly."""
    out = units
    for cur in currencies.unique().sort().to_list():
        mask = currencies == cur
        try:
            shift = exponent(cur) - FILE_EXPONENT
        except MoneyError as exc:
            raise refuse(path, int(line_nos[int(mask.arg_true()[0])]), exc.reason, exc.detail) from None
        if shift == 0:
            continue
        if shift < 0:
            lost = (mask & (units % 10**-shift != 0)).arg_true()
            if len(lost):
                i = int(lost[0])
                raise refuse(path, int(line_nos[i]), "too_many_decimals",
                             f"{column} {units[i]} hundredths of {cur} is not a whole minor unit")  # fmt: skip
            out = pl.select(pl.when(mask).then(out // 10**-shift).otherwise(out)).to_series()
        else:
            if len(big := (mask & (units.abs() > AMOUNT_MINOR_MAX // 10**shift)).arg_true()):
                raise refuse(path, int(line_nos[int(big[0])]), "overflow", f"{column} does not fit 64 bits in {cur}")
            out = pl.select(pl.when(mask).then(out * 10**shift).otherwise(out)).to_series()
    return out.alias(column)


def parse(
    path: Path, *, channel: str, business_date: date | None = None, controls: ControlPolicy = "enforce"
) -> ParsedFile:
    """Parse one PayPal STL file into statement lines (ISO minor units); refuse it whole when its
    grammar, its amounts, or any of its footers and counts disagree with its rows
    (`controls="report"`: list each footer that disagrees in `ParsedFile.controls["mismatches"]`)."""
    path = Path(path)
    ctl = ControlCheck(path, controls)
    data = read_bytes(path)
    sha = sha256_bytes(data)
    text = decode(path, data, "utf-8", allow_bom=True)
    lines = split_lines(text)
    kinds = lines.str.extract(r'^"?([A-Z]{2})"?(?:,|$)', 1)
    if kinds[0] != "RH":
        raise refuse(path, 1, "bad_header", "an STL file starts with its RH report header row")
    if len(bad := kinds.is_null().arg_true()):
        i = int(bad[0])
        raise refuse(path, i + 1, "bad_record", f"{lines[i][:40]!r} is not an STL row (RH, FH, SH, CH, SB, ...)")
    if kinds.is_in(["RH", "FH"]).all():
        raise refuse(path, len(kinds), "header_only", "report and file headers but no section")
    # The grammar: every row type may only follow the ones FOLLOWS allows; the last row is FF.
    pairs = (kinds.shift(1) + ">" + kinds).slice(1)
    if len(bad := (~pairs.is_in(sorted(ALLOWED_PAIRS))).arg_true()):
        i = int(bad[0]) + 1
        raise refuse(path, i + 1, "bad_record", f"a {kinds[i]} row cannot follow a {kinds[i - 1]} row")
    if kinds[-1] != "FF":
        raise refuse(path, len(kinds), "truncated", f"the file ends with a {kinds[-1]} row, not its FF footer")

    # Small rows (headers, footers, counts) through csv; SB rows, the bulk, through Polars below.
    other = {int(i) + 1: csv_fields(path, int(i) + 1, lines[int(i)]) for i in (kinds != "SB").arg_true()}
    column_headers = [(ln, f[1:]) for ln, f in other.items() if f[0] == "CH"]
    header = column_headers[0][1]
    for ln, names in column_headers:
        if names != header:
            raise refuse(path, ln, "bad_header", "every section's CH row must name the same columns")
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise refuse(path, column_headers[0][0], "bad_header", f"an STL column header needs {missing}")

    sb_idx = (kinds == "SB").arg_true()
    section = (kinds == "SH").cum_sum().gather(sb_idx).alias("section")
    line_nos = (sb_idx + 1).cast(pl.Int64)
    names = ["_type", *header]
    n = len(sb_idx)
    if n:
        check_quoted_field_counts(path, lines.gather(sb_idx), line_nos, len(names))
        try:
            rows = pl.read_csv(
                io.BytesIO((lines.gather(sb_idx).str.join("\n")[0] + "\n").encode("utf-8")),
                has_header=False,
                schema=dict.fromkeys(names, pl.String()),
                empty_string_is_null=False,
                truncate_ragged_lines=False,
            )
        except pl.exceptions.PolarsError as exc:
            raise refuse(
                path, 0, "bad_record", f"an SB row does not follow the CH columns: {str(exc).splitlines()[0]}"
            ) from None
        if rows.height != n:
            raise refuse(path, 0, "bad_record", f"{n} SB lines but {rows.height} rows: a field holds a newline")
    else:
        rows = pl.DataFrame(schema=dict.fromkeys(names, pl.String()))

    direction = rows["Transaction Debit or Credit"].str.strip_chars()
    if len(bad := (~direction.is_in(["CR", "DR"])).arg_true()):
        i = int(bad[0])
        raise refuse(
            path, int(line_nos[i]), "missing_field", f"Transaction Debit or Credit {direction[i]!r}, not CR/DR"
        )
    fee_direction = rows["Fee Debit or Credit"].str.strip_chars()
    gross_units = _units(path, rows["Gross Transaction Amount"], line_nos, "Gross Transaction Amount")
    fee_units = _units(path, rows["Fee Amount"], line_nos, "Fee Amount", allow_empty=True).fill_null(0)
    if len(bad := ((fee_units != 0) & ~fee_direction.is_in(["CR", "DR"])).arg_true()):
        i = int(bad[0])
        raise refuse(path, int(line_nos[i]), "missing_field", f"Fee Debit or Credit {fee_direction[i]!r}, not CR/DR")
    currency = rows["Gross Transaction Currency"].str.strip_chars().str.to_uppercase()
    fee_currency = rows["Fee Currency"].str.strip_chars().str.to_uppercase()
    if len(bad := ((fee_units != 0) & (fee_currency != currency)).arg_true()):
        i = int(bad[0])
        raise refuse(
            path, int(line_nos[i]), "mixed_currency", f"a {fee_currency[i]} fee on a {currency[i]} transaction"
        )

    credit = direction == "CR"
    fee_credit = fee_direction == "CR"
    frame_units = pl.DataFrame(
        {
            "section": section,
            "currency": currency,
            "gross_cr": pl.select(pl.when(credit).then(gross_units).otherwise(0)).to_series(),
            "gross_dr": pl.select(pl.when(credit).then(0).otherwise(gross_units)).to_series(),
            "fee_cr": pl.select(pl.when(fee_credit).then(fee_units).otherwise(0)).to_series(),
            "fee_dr": pl.select(pl.when(fee_credit).then(0).otherwise(fee_units)).to_series(),
        }
    )
    footers = _check_footers(path, other, len(kinds), frame_units, ctl)

    gross_iso = _to_iso(path, gross_units, currency, line_nos, "Gross Transaction Amount")
    fee_iso = _to_iso(path, fee_units, currency, line_nos, "Fee Amount")
    gross = pl.select(pl.when(credit).then(gross_iso).otherwise(-gross_iso)).to_series()
    fee = pl.select(pl.when(fee_credit).then(-fee_iso).otherwise(fee_iso)).to_series()
    completed = rows["Transaction Completion Date"].str.strip_chars()
    when = pl.select(
        pl.when(completed == "").then(rows["Transaction Initiation Date"]).otherwise(completed)
    ).to_series()
    booked = timestamps(path, when, line_nos, TIME_FORMAT, "Transaction Completion Date")
    if len(bad := booked.is_null().arg_true()):
        raise refuse(path, int(line_nos[int(bad[0])]), "missing_field", "no Transaction Completion or Initiation Date")
    payment_id = pl.select(
        pl.coalesce(null_if_empty(rows["Invoice ID"]), null_if_empty(rows["Custom Field"]))
    ).to_series()
    frame = build_frame(
        path=path,
        sha256=sha,
        channel=channel,
        account=str(other[1][3]) if len(other[1]) > 3 else "",
        business_date=business_date,
        columns={
            "line_no": line_nos,
            "line_type": _line_type(rows["Transaction Event Code"].str.strip_chars(), credit),
            "channel_txn_id": null_if_empty(rows["Transaction ID"]),
            "payment_id": payment_id,
            "gross_minor": gross,
            "fee_minor": fee,
            "net_minor": gross - fee,
            "currency": currency,
            "booked_at": booked,
            # The date as PayPal wrote it, in the account's own time zone.
            "value_date": when.str.strip_chars().str.slice(0, 10).str.to_date("%Y/%m/%d"),
            "raw": pl.repeat(STATUS, n, dtype=pl.String, eager=True),
        },
    )
    return ParsedFile(path=path, sha256=sha, format=NAME, frame=frame, controls=ctl.summary(footers))


def _count(path: Path, line: int, fields: list[str]) -> int:
    count = whole_number(fields[1].strip()) if len(fields) >= 2 else None
    if count is None:
        raise refuse(path, line, "bad_record", f"{fields[0]} needs a record count, found {fields[1:]}")
    return count


def _check_footers(
    path: Path, other: dict[int, list[str]], n_rows: int, units: pl.DataFrame, ctl: ControlCheck
) -> dict[str, object]:
    """SC, RC, FF counts and SF/RF totals (in the file's units) against the SB rows; the available
    balances where a footer states them."""
    sums = ["gross_cr", "gross_dr", "fee_cr", "fee_dr"]
    by_section = units.group_by("section", "currency").agg(pl.col(c).cast(pl.Int128).sum() for c in sums)
    by_report = units.group_by("currency").agg(pl.col(c).cast(pl.Int128).sum() for c in sums)

    def totals(frame: pl.DataFrame) -> dict[str, tuple[int, ...]]:
        return {r[0]: tuple(int(v) for v in r[1:]) for r in frame.select("currency", *sums).iter_rows()}

    def check_footer(line: int, fields: list[str], expected: dict[str, tuple[int, ...]], seen: set[str]) -> None:
        if len(fields) < 6:
            raise refuse(path, line, "truncated", f"{fields[0]} needs a currency and four totals")
        cur = fields[1].strip().upper()
        declared = tuple(
            int(_units(path, pl.Series([v]), pl.Series([line]), f"{fields[0]} total")[0]) for v in fields[2:6]
        )
        actual = expected.get(cur, (0, 0, 0, 0))
        seen.add(cur)
        if declared != actual:
            labels = ("gross credits", "gross debits", "fee credits", "fee debits")
            diff = ", ".join(
                f"{lb} {d} vs rows {a}" for lb, d, a in zip(labels, declared, actual, strict=True) if d != a
            )
            ctl.disagree(line, "control_total_mismatch", f"{fields[0]} {cur}: {diff} (hundredths)")
        if len(fields) >= 10 and fields[7].strip() != "":
            signs = {"CR": 1, "DR": -1}
            if fields[6].strip() not in signs or fields[8].strip() not in signs:
                raise refuse(path, line, "bad_record", f"{fields[0]} balance direction must be CR or DR")
            begin = signs[fields[6].strip()] * int(
                _units(path, pl.Series([fields[7]]), pl.Series([line]), "balance")[0]
            )
            end = signs[fields[8].strip()] * int(_units(path, pl.Series([fields[9]]), pl.Series([line]), "balance")[0])
            moved = declared[0] - declared[1] + declared[2] - declared[3]
            if begin + moved != end:
                ctl.disagree(line, "balance_mismatch",
                             f"{fields[0]} {cur}: beginning {begin} + movements {moved} != ending {end} (hundredths)")  # fmt: skip

    def missing_footers(line: int, kind: str, expected: dict[str, tuple[int, ...]], seen: set[str]) -> None:
        if absent := sorted(set(expected) - seen):
            ctl.disagree(line, "control_total_mismatch", f"no {kind} row for {', '.join(absent)}, which the rows hold")

    section = 0
    section_rows = {int(k): int(v) for k, v in units.group_by("section").len().iter_rows()}
    expected_section: dict[str, tuple[int, ...]] = {}
    seen: set[str] = set()
    report_seen: set[str] = set()
    n_sb = units.height
    for line in sorted(other):
        fields = other[line]
        kind = fields[0]
        if kind == "SH":
            section += 1
            expected_section = totals(by_section.filter(pl.col("section") == section))
            seen = set()
        elif kind == "SF":
            check_footer(line, fields, expected_section, seen)
        elif kind == "SC":
            missing_footers(line, "SF", expected_section, seen)
            count, rows_in = _count(path, line, fields), section_rows.get(section, 0)
            if count != rows_in:
                ctl.disagree(line, "control_total_mismatch", f"SC says {count} rows, the section has {rows_in} SB rows")
        elif kind == "RF":
            check_footer(line, fields, totals(by_report), report_seen)
        elif kind == "RC":
            missing_footers(line, "RF", totals(by_report), report_seen)
            if (count := _count(path, line, fields)) != n_sb:
                ctl.disagree(line, "control_total_mismatch", f"RC says {count} rows, the report has {n_sb} SB rows")
        elif kind == "FF":
            count = _count(path, line, fields)
            if count not in (n_sb, n_rows):
                ctl.disagree(line, "control_total_mismatch",
                             f"FF says {count} rows; the file has {n_sb} SB rows, {n_rows} rows in all")  # fmt: skip
    return {"sections": section, "rows": n_sb, "currencies": sorted(report_seen)}


def _q(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def write(lines: Sequence[StatementLine], directory: Path, *, rule: Rule, business_date: date) -> list[Path]:
    """Write `lines` as one STL report `STL-<yyyymmdd>.01.009.CSV` (one section, UTC times, amounts
    in hundredths as PayPal writes them) with SF/RF footers per currency (available balance from 0
    to the day's movement), SC, RC and FF counts. A PAYMENT must be a credit (PayPal books a sent
    payment under the same T-code, which reads back as a PAYOUT)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"STL-{business_date.strftime('%Y%m%d')}.01.009.CSV"
    day = business_date.strftime("%Y/%m/%d")
    account = rule.account
    out = [f'"RH",{day} 23:59:59 +0000,"A",{_q(account)},009', '"FH",01',
           f'"SH",{day} 00:00:00 +0000,{day} 23:59:59 +0000,{_q(account)},""',
           ",".join(_q(c) for c in ("CH", *COLUMNS))]  # fmt: skip
    totals: dict[str, list[int]] = {}
    for line in lines:
        if line.booked_at is None:
            raise ValueError(f"{line.channel_txn_id}: an STL row needs its completion time")
        if line.line_type is LineType.PAYMENT and line.gross_minor < 0:
            raise ValueError(f"{line.channel_txn_id}: a PayPal payment received is a credit")
        shift = FILE_EXPONENT - exponent(line.currency)
        gross_units, fee_units = (
            (abs(v) * 10**shift if shift >= 0 else _exact_down(abs(v), -shift, line.channel_txn_id))
            for v in (line.gross_minor, line.fee_minor)
        )
        t = totals.setdefault(line.currency, [0, 0, 0, 0])
        t[0 if line.gross_minor >= 0 else 1] += gross_units
        if line.fee_minor:
            t[3 if line.fee_minor > 0 else 2] += fee_units
        stamp = line.booked_at.astimezone(UTC).strftime("%Y/%m/%d %H:%M:%S +0000")
        row = dict.fromkeys(COLUMNS, "")
        row.update({
            "Transaction ID": line.channel_txn_id or "", "Invoice ID": line.payment_id or "",
            "Transaction Event Code": TCODE_OF[line.line_type], "Transaction Initiation Date": stamp,
            "Transaction Completion Date": stamp, "Transaction Debit or Credit": "CR" if line.gross_minor >= 0 else "DR",
            "Gross Transaction Amount": str(gross_units), "Gross Transaction Currency": line.currency,
            "Fee Debit or Credit": ("DR" if line.fee_minor > 0 else "CR") if line.fee_minor else "",
            "Fee Amount": str(fee_units) if line.fee_minor else "", "Fee Currency": line.currency if line.fee_minor else "",
        })  # fmt: skip
        numeric = ("Gross Transaction Amount", "Fee Amount")
        out.append(",".join(['"SB"', *(row[c] if c in numeric else _q(row[c]) for c in COLUMNS)]))

    def footer(kind: str) -> list[str]:
        rows = []
        for cur in sorted(totals):
            gc, gd, fc, fd = totals[cur]
            end = gc - gd + fc - fd
            rows.append(f'"{kind}",{_q(cur)},{gc},{gd},{fc},{fd},"CR",0,{_q("CR" if end >= 0 else "DR")},{abs(end)}')
        return rows

    out += [*footer("SF"), f'"SC",{len(lines)}', *footer("RF"), f'"RC",{len(lines)}', f'"FF",{len(lines)}']
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return [path]


def _exact_down(minor: int, digits: int, ref: str | None) -> int:
    if minor % 10**digits:
        raise ValueError(f"{ref}: {minor} minor units cannot be written in hundredths")
    return minor // 10**digits


def sniff(head: bytes, name: str) -> bool:
    return head.lstrip(b"\xef\xbb\xbf").startswith((b'"RH",', b"RH,"))


FORMAT = register(StatementFormat(NAME, parse=parse, write=write, sniff=sniff, description=__doc__.splitlines()[0]))
