"""`bai2`: BAI Version 2 cash-management balance report (US banks' prior-day / current-day file).

Our own reader: the maintained Python one (`bai2`, ministryofjustice) models the whole file as
objects without source lines and is not in our lock file; the grammar is small. ASCII text of
records, each starting with a two-digit type and ending with `/`:

    01 file header   02 group header (as-of date, currency)   03 account (currency, summaries)
    16 transaction detail   88 continuation of the previous record   49 account trailer
    98 group trailer   99 file trailer

Several records may share one physical line (split at a `/` followed by the next record's type)
and a record may continue on `88` lines; the last record may lack its `/`. Amounts carry no
decimal point: they are minor units of the account's currency (the 03 record's, else the
group's). A `16` record is `16,type,amount,funds type[,availability],bank ref,customer ref,text`
where the availability fields depend on the funds type (S: three amounts; V: date and time;
D: a count and that many day/amount pairs).

Lines: one per `16` record. Type codes 100-399 are credits (PAYMENT, positive), 400-699 debits
(PAYOUT, negative); any other code in a 16 is refused (`bad_line_type`). payment_id = the
customer reference, channel_txn_id = the bank reference, booked_at = the group's as-of date and
time (UTC), raw = BOOK.

Control totals, all checked (`control_total_mismatch`): each `49` carries the sum of every amount
in its 03 and 16 records and the count of records from 03 to 49; each `98` the sum of its 49s, its
number of accounts and its record count from 02 to 98; the `99` the sum of the 98s, the number of
groups and the record count of the whole file. A file without its `99` is `truncated`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from connectors.statements import ParsedFile, StatementError, StatementFormat, register
from connectors.statements._common import (
    ControlCheck,
    ControlPolicy,
    build_frame,
    decode,
    read_bytes,
    refuse,
    whole_number,
)
from connectors.statements.intake import sha256_bytes
from pipelines.money import MoneyError, check_currency
from pipelines.records import LineType

NAME = "bai2"
SPLIT_RE = re.compile(r"/(?=\s*(?:01|02|03|16|49|88|98|99),)")


@dataclass
class Record:
    code: str
    fields: list[str]
    line: int
    continuations: list[str] = field(default_factory=list)  # the text after `88,` of each 88 record

    @property
    def physical(self) -> int:
        """How many records the trailers count for this one: itself and its 88s."""
        return 1 + len(self.continuations)

    def all_fields(self) -> list[str]:
        """The fields with the 88s' fields appended (for 03 summaries). Banks differ in whether a
        record ends `,,/` or `,,,/`, so a reader skips empty fields between summary groups."""
        out = list(self.fields)
        for cont in self.continuations:
            out.extend(cont.split(","))
        return out


@dataclass
class Detail:
    line: int
    type_code: int
    amount: int  # signed minor units
    bank_ref: str | None
    customer_ref: str | None
    text: str
    currency: str
    as_of: datetime


def records(path: Path, text: str) -> list[Record]:
    """Logical records (continuations joined) with the physical line each starts on."""
    out: list[Record] = []
    for line_no, physical in enumerate(text.split("\n"), start=1):
        if not physical.strip():
            continue
        for chunk in SPLIT_RE.split(physical.strip()):
            chunk = chunk.strip()
            if chunk.endswith("/"):
                chunk = chunk[:-1]
            code, _, rest = chunk.partition(",")
            if code not in ("01", "02", "03", "16", "49", "88", "98", "99"):
                raise refuse(path, line_no, "bad_record", f"record type {code!r} is not BAI2")
            if code == "88":
                if not out:
                    raise refuse(path, line_no, "bad_record", "a continuation before any record")
                out[-1].continuations.append(rest)
                continue
            out.append(Record(code, rest.split(","), line_no))
    return out


def _int(path: Path, text: str, line: int, what: str) -> int:
    t = text.strip()
    if not re.fullmatch(r"[+-]?[0-9]+", t):
        reason = "thousands_separator" if "," in t else "too_many_decimals" if "." in t else "malformed_amount"
        raise refuse(path, line, reason if t else "empty_amount", f"{what} {text!r} is not whole minor units")
    value = int(t)
    if abs(value) > 2**63 - 1:
        raise refuse(path, line, "overflow", f"{what} {text!r} does not fit 64 bits")
    return value


def _availability(funds: str, rest: list[str]) -> int:
    """How many fields the funds type's availability takes after it."""
    if funds == "S":
        return 3
    if funds == "V":
        return 2
    if funds == "D":
        return 1 + 2 * int(rest[0] or 0)
    return 0


def read_details(path: Path, data: bytes, ctl: ControlCheck | None = None) -> tuple[list[Detail], dict[str, int]]:
    """Every 16 record as a Detail, after checking every trailer's totals and counts (a `report`
    ControlCheck records a trailer that disagrees instead of refusing; the returned totals are
    always the ones computed from the records, so one wrong trailer does not cascade upward)."""
    ctl = ctl or ControlCheck(path)
    text = decode(path, data, "ascii")
    recs = records(path, text)
    if not recs:
        raise refuse(path, 0, "empty_file", "no records")
    if recs[0].code != "01":
        raise refuse(path, recs[0].line, "bad_header", "a BAI2 file starts with its 01 header")
    if recs[-1].code != "99":
        raise refuse(
            path, recs[-1].line, "truncated" if len(recs) > 1 else "header_only", "the file ends before its 99 trailer"
        )

    details: list[Detail] = []
    file_total = file_records = groups = 0
    group_total = group_records = accounts = 0
    acct_total = acct_records = 0
    group_currency = account_currency = ""
    as_of = datetime(1970, 1, 1, tzinfo=UTC)
    for rec in recs:
        try:
            f = rec.fields if rec.code == "16" else rec.all_fields()
            n = rec.physical
            file_records += n
            if rec.code == "02":
                groups += 1
                group_total = 0
                group_records = n
                accounts = 0
                try:
                    day = datetime.strptime(f[3], "%y%m%d").date()
                    hhmm = f[4].strip() or "0000"
                    hour = 0 if hhmm in ("2400", "9999") else int(hhmm[:2])
                    as_of = datetime(day.year, day.month, day.day, hour, int(hhmm[2:4]) if hour else 0, tzinfo=UTC)
                except (ValueError, IndexError):
                    raise refuse(path, rec.line, "bad_timestamp", f"02 as-of date/time {f[3:5]}") from None
                group_currency = (f[5] if len(f) > 5 else "").strip() or "USD"
                continue
            group_records += n
            if rec.code == "03":
                accounts += 1
                acct_total, acct_records = 0, n
                account_currency = (f[1].strip() if len(f) > 1 else "") or group_currency
                try:
                    check_currency(account_currency)
                except MoneyError as exc:
                    raise refuse(path, rec.line, exc.reason, exc.detail) from None
                # Summaries: (type, amount, item count, funds type [, availability]) repeated.
                i = 2
                while i + 1 < len(f):
                    if not f[i].strip():
                        i += 1  # a trailing empty field of a record that ended `,/`
                        continue
                    acct_total += _int(path, f[i + 1], rec.line, f"03 amount of type {f[i]}") if f[i + 1].strip() else 0
                    funds = f[i + 3].strip() if i + 3 < len(f) else ""
                    i += 4 + _availability(funds, f[i + 4 :])
                continue
            acct_records += n
            if rec.code == "16":
                type_code = whole_number(f[0].strip())
                type_code = -1 if type_code is None else type_code
                amount = _int(path, f[1], rec.line, "16 amount")
                acct_total += amount
                funds = f[2].strip()
                j = 3 + _availability(funds, f[3:])
                bank_ref = f[j].strip() if j < len(f) else ""
                customer_ref = f[j + 1].strip() if j + 1 < len(f) else ""
                # The text is the rest of the record (it may hold commas), then each 88's text.
                text_field = " ".join([",".join(f[j + 2 :]).strip(), *rec.continuations]).strip()
                if 100 <= type_code <= 399:
                    signed = amount
                elif 400 <= type_code <= 699:
                    signed = -amount
                else:
                    raise refuse(
                        path, rec.line, "bad_line_type", f"16 type code {f[0]!r} is neither a credit nor a debit"
                    )
                details.append(Detail(rec.line, type_code, signed, bank_ref or None, customer_ref or None, text_field,
                                      account_currency, as_of))  # fmt: skip
            elif rec.code == "49":
                declared, declared_n = _int(path, f[0], rec.line, "49 total"), _int(path, f[1], rec.line, "49 count")
                if (declared, declared_n) != (acct_total, acct_records):
                    ctl.disagree(rec.line, "control_total_mismatch",
                                 f"49 says total {declared} over {declared_n} records; the account has {acct_total} over {acct_records}")  # fmt: skip
                group_total += acct_total
            elif rec.code == "98":
                declared, n_accts, n_recs = (_int(path, x, rec.line, "98 field") for x in f[:3])
                if (declared, n_accts, n_recs) != (group_total, accounts, group_records):
                    ctl.disagree(rec.line, "control_total_mismatch",
                                 f"98 says {declared}/{n_accts} accounts/{n_recs} records; the group has {group_total}/{accounts}/{group_records}")  # fmt: skip
                file_total += group_total
            elif rec.code == "99":
                declared, n_groups, n_recs = (_int(path, x, rec.line, "99 field") for x in f[:3])
                if (declared, n_groups, n_recs) != (file_total, groups, file_records):
                    ctl.disagree(rec.line, "control_total_mismatch",
                                 f"99 says {declared}/{n_groups} groups/{n_recs} records; the file has {file_total}/{groups}/{file_records}")  # fmt: skip
        except StatementError:
            raise
        except (IndexError, ValueError):
            # A record cut short (a trailer without its counts, a 16 without its amount).
            raise refuse(path, rec.line, "bad_record", f"the {rec.code} record has too few fields") from None
    return details, {"groups": groups, "records": file_records, "total": file_total}


def parse(
    path: Path, *, channel: str, business_date: date | None = None, controls: ControlPolicy = "enforce"
) -> ParsedFile:
    """Parse a BAI2 file into one line per 16 record (amounts in minor units); refuse it whole
    unless every 49/98/99 trailer's totals and record counts hold (`controls="report"`: list each
    trailer that disagrees in `ParsedFile.controls["mismatches"]` instead)."""
    path = Path(path)
    ctl = ControlCheck(path, controls)
    data = read_bytes(path)
    sha = sha256_bytes(data)
    details, totals = read_details(path, data, ctl)
    frame = build_frame(
        path=path,
        sha256=sha,
        channel=channel,
        account="",
        business_date=business_date,
        columns={
            "line_no": [d.line for d in details],
            "line_type": [(LineType.PAYMENT if d.amount >= 0 else LineType.PAYOUT).value for d in details],
            "channel_txn_id": [d.bank_ref for d in details],
            "payment_id": [d.customer_ref for d in details],
            "gross_minor": [d.amount for d in details],
            "fee_minor": [0 for _ in details],
            "net_minor": [d.amount for d in details],
            "currency": [d.currency for d in details],
            "booked_at": [d.as_of for d in details],
            "value_date": [d.as_of.date() for d in details],
            "raw": ["BOOK" for _ in details],
        },
    )
    return ParsedFile(path=path, sha256=sha, format=NAME, frame=frame, controls=ctl.summary(totals))


def sniff(head: bytes, name: str) -> bool:
    return head.startswith(b"01,") and b"\n02," in head.replace(b"\r\n", b"\n")


FORMAT = register(StatementFormat(NAME, parse=parse, sniff=sniff, description=__doc__.splitlines()[0]))
