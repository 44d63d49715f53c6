"""`mt940`: SWIFT MT940 customer statement (and, through `mt942`, the MT942 interim report).

Our own reader, not the `mt-940` library: that library returns Decimal amounts without the source
line of each tag, accepts statements whose balances do not add up, and guesses encodings; here
every error must name its line, the balance check is the point, and the bytes are decoded before
any parsing. The library stays useful as an independent second reading of the same fixtures in
the tests (same transaction count and amounts).

Decoding: UTF-8 when the bytes are valid UTF-8, else Latin-1 (German and Dutch banks write
umlauts in `:86:`); CRLF becomes LF; the SWIFT message delimiters SOH (0x01) and ETX (0x03) and
the block wrapper `{1:...}{2:...}{4:` ... `-}` are removed; any other control byte refuses the
file (`encoding`). Bank preambles (`ABNANL2A`, `940`) before `:20:` are skipped.

A statement is `:20:` ... `:60F:`/`:60M:` (opening), `:61:` lines each optionally followed by
`:86:`, `:62F:`/`:62M:` (closing); statements are separated by a `-` line or by the next `:20:`.
`:61:` is `YYMMDD[MMDD](C|D|RC|RD)[funds code]amount(N|S|F)code reference[//bank ref]`: C and RD
add to the balance, D and RC take from it; RC/RD are REVERSALs, C PAYMENT, D PAYOUT, and a
`CHG`/`COM` transaction code is a FEE. Amounts use a decimal comma ("107," is 107.00) and never
more digits than the currency has. payment_id = the SEPA `EREF+` of `:86:` when present, else the
customer reference unless `NONREF`; channel_txn_id = the bank reference after `//`; booked_at =
the entry date (value date when absent) at midnight UTC; raw = BOOK.

Control totals: opening + lines = closing, per statement (each page of a `60M`/`62M` chain on its
own) (`balance_mismatch`); MT942 checks `:90D:`/`:90C:` counts and sums (`control_total_mismatch`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from connectors.statements import ParsedFile, StatementFormat, register
from connectors.statements._common import ControlCheck, ControlPolicy, build_frame, read_bytes, refuse
from connectors.statements.intake import sha256_bytes
from pipelines.money import MoneyError, parse_amount
from pipelines.records import LineType

NAME = "mt940"
TAG_RE = re.compile(r"^:([0-9][0-9][A-Z]?):")
BALANCE_RE = re.compile(r"^(?P<mark>[CD])(?P<date>[0-9]{6})(?P<cur>[A-Z]{3})(?P<amount>[0-9][0-9,]*)$")
LINE_RE = re.compile(
    r"^(?P<vdate>[0-9]{6})(?P<edate>[0-9]{4})?(?P<mark>RC|RD|EC|ED|C|D)(?P<funds>[A-Z])?(?P<amount>[0-9][0-9]*,[0-9]*)"
    r"(?P<type>[NSF])(?P<code>[A-Z0-9]{3})(?P<ref>.*?)(?://(?P<bankref>.*))?$"
)
SUMMARY_RE = re.compile(r"^(?P<count>[0-9]+)(?P<cur>[A-Z]{3})(?P<amount>[0-9][0-9,]*)$")
EREF_RE = re.compile(r"EREF\+(.*?)(?=(?:KREF|MREF|CRED|DEBT|SVWZ|ABWA|ABWE|IBAN|BIC|PURP)\+|$)")
KEYWORD_RE = re.compile(r"^(?:EREF|KREF|MREF|CRED|DEBT|SVWZ|ABWA|ABWE|IBAN|BIC|PURP)\+")
_CONTROL = re.compile(r"[\x00\x02\x04-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass
class Entry:
    line_no: int
    value_date: date
    entry_date: date | None
    mark: str
    amount: int  # signed, minor units, as it moves the balance
    code: str
    customer_ref: str
    bank_ref: str | None
    info: str = ""


@dataclass
class Statement:
    line_no: int
    reference: str
    account: str = ""
    currency: str = ""
    opening: tuple[int, int] | None = None  # (signed minor units, line)
    closing: tuple[int, int] | None = None
    entries: list[Entry] = field(default_factory=list)
    summaries: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # 90D/90C: (count, sum, line)


def decode_swift(path: Path, data: bytes) -> list[str]:
    """SWIFT bytes to text lines: UTF-8 or Latin-1, LF, without SOH/ETX and block wrappers."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x01", "").replace("\x03", "")
    if m := _CONTROL.search(text):
        raise refuse(path, text[: m.start()].count("\n") + 1, "encoding", f"control byte 0x{ord(m.group()):02x}")
    text = re.sub(r"\{1:[^}]*\}(\{2:[^}]*\})?(\{3:(\{[^}]*\})*\})?\{4:\n?", "", text)
    text = re.sub(r"\n?-\}(\{5:(\{[^}]*\})*\})?", "\n-", text)
    return text.split("\n")


def _amount(path: Path, text: str, currency: str, line: int, what: str) -> int:
    try:
        return parse_amount(text, currency, decimal_sep=",", allow_trailing_sep=True)
    except MoneyError as exc:
        raise refuse(path, line, exc.reason, f"{what}: {exc.detail}") from None


def _date(path: Path, text: str, line: int) -> date:
    try:
        return datetime.strptime(text, "%y%m%d").date()
    except ValueError:
        raise refuse(path, line, "bad_timestamp", f"{text!r} is not YYMMDD") from None


def read_statements(path: Path, data: bytes) -> list[Statement]:
    """Every statement of an MT940/MT942 file, with amounts in signed minor units; the grammar is
    checked here, the balances are not (see `check`)."""
    raw_lines = decode_swift(path, data)
    # Join continuation lines to their tag; remember the line each tag starts on.
    tags: list[tuple[str, str, int]] = []
    seen_first = False
    for i, text in enumerate(raw_lines, start=1):
        m = TAG_RE.match(text)
        if m:
            seen_first = seen_first or m.group(1) == "20"
            if seen_first:
                tags.append((m.group(1), text[m.end() :], i))
        elif text.strip() == "-":
            if seen_first:
                tags.append(("-", "", i))
        elif seen_first and tags and tags[-1][0] != "-" and text.strip():
            tag, value, at = tags[-1]
            tags[-1] = (tag, value + "\n" + text, at)
    if not tags:
        raise refuse(path, 1, "bad_header", "no :20: tag: not an MT940/MT942 file")
    statements: list[Statement] = []
    current: Statement | None = None
    last_entry: Entry | None = None
    for tag, value, line in tags:
        if tag == "20":
            current = Statement(line, value.strip())
            statements.append(current)
            last_entry = None
            continue
        if tag == "-" or current is None:
            current = None if tag == "-" else current
            continue
        if tag == "25":
            current.account = value.strip()
        elif tag in ("60F", "60M", "62F", "62M"):
            m = BALANCE_RE.match(value.strip())
            if m is None:
                raise refuse(
                    path, line, "bad_record", f":{tag}: {value.strip()!r} is not D/C, YYMMDD, currency, amount"
                )
            current.currency = current.currency or m.group("cur")
            if m.group("cur") != current.currency:
                raise refuse(
                    path, line, "mixed_currency", f":{tag}: {m.group('cur')} in a {current.currency} statement"
                )
            amount = _amount(path, m.group("amount"), m.group("cur"), line, f":{tag}:")
            signed = amount if m.group("mark") == "C" else -amount
            if tag.startswith("60"):
                current.opening = (signed, line)
            else:
                current.closing = (signed, line)
        elif tag in ("34F",) and not current.currency:
            current.currency = value.strip()[:3]
        elif tag == "61":
            first = value.partition("\n")[0]  # the supplementary details line is not used
            m = LINE_RE.match(first.strip())
            if m is None:
                raise refuse(path, line, "bad_record", f":61: {first.strip()!r} does not follow the :61: grammar")
            if not current.currency:
                raise refuse(path, line, "missing_field", ":61: before any balance says the currency")
            vdate = _date(path, m.group("vdate"), line)
            edate = None
            if m.group("edate"):
                month, day = int(m.group("edate")[:2]), int(m.group("edate")[2:])
                year = vdate.year + (1 if month < vdate.month - 6 else -1 if month > vdate.month + 6 else 0)
                try:
                    edate = date(year, month, day)
                except ValueError:
                    raise refuse(path, line, "bad_timestamp", f"entry date {m.group('edate')!r}") from None
            amount = _amount(path, m.group("amount"), current.currency, line, ":61:")
            mark = m.group("mark")
            signed = amount if mark in ("C", "RD", "EC") else -amount
            last_entry = Entry(line, vdate, edate, mark, signed, m.group("code"), m.group("ref").strip(),
                               (m.group("bankref") or "").strip() or None)  # fmt: skip
            current.entries.append(last_entry)
        elif tag == "86" and last_entry is not None:
            last_entry.info = value
        elif tag in ("90D", "90C"):
            m = SUMMARY_RE.match(value.strip())
            if m is None:
                raise refuse(path, line, "bad_record", f":{tag}: {value.strip()!r} is not count, currency, amount")
            current.summaries[tag] = (
                int(m.group("count")),
                _amount(path, m.group("amount"), m.group("cur"), line, tag),
                line,
            )
    return statements


def check(path: Path, statements: list[Statement], *, interim: bool, ctl: ControlCheck | None = None) -> None:
    """Refuse the file unless every statement's own totals hold; with a `report` ControlCheck a
    statement whose totals disagree is recorded there instead (a missing balance still refuses)."""
    ctl = ctl or ControlCheck(path)
    if not statements:
        raise refuse(path, 1, "header_only", "no statement in the file")
    for st in statements:
        booked = sum(e.amount for e in st.entries)
        if interim:
            for tag, sign in (("90D", -1), ("90C", 1)):
                if tag not in st.summaries:
                    continue
                count, total, line = st.summaries[tag]
                picked = [e.amount for e in st.entries if (e.amount > 0) == (sign > 0)]
                if (count, total) != (len(picked), abs(sum(picked))):
                    ctl.disagree(line, "control_total_mismatch",
                                 f":{tag}: says {count} lines for {total}, the :61: lines give {len(picked)} for {abs(sum(picked))}")  # fmt: skip
            continue
        if st.opening is None or st.closing is None:
            raise refuse(path, st.line_no, "truncated", "a statement needs its :60F:/:60M: and :62F:/:62M: balances")
        if st.opening[0] + booked != st.closing[0]:
            ctl.disagree(
                st.closing[1],
                "balance_mismatch",
                f"opening {st.opening[0]} + lines {booked} = {st.opening[0] + booked}, closing says {st.closing[0]} (minor units)",
            )


def _payment_id(entry: Entry) -> str | None:
    info = entry.info.replace("\n", "")
    ref: str | None = None
    if "?2" in info:
        # SEPA structured :86: spreads the purpose over ?20..?29, 27 characters each; an EREF+
        # value continues into the next subfield only when its own is full.
        subfields = re.findall(r"\?2[0-9]([^?]*)", info)
        for i, sub in enumerate(subfields):
            if sub.startswith("EREF+"):
                ref = sub[5:]
                j = i
                while len(subfields[j]) >= 27 and j + 1 < len(subfields) and not KEYWORD_RE.match(subfields[j + 1]):
                    j += 1
                    ref += subfields[j]
                break
    elif m := EREF_RE.search(info):
        ref = m.group(1)
    if ref is not None and ref.strip() and ref.strip() != "NOTPROVIDED":
        return ref.strip()
    return entry.customer_ref if entry.customer_ref and entry.customer_ref != "NONREF" else None


def _line_type(entry: Entry) -> str:
    if entry.mark in ("RC", "RD"):
        return LineType.REVERSAL.value
    if entry.code in ("CHG", "COM"):
        return LineType.FEE.value
    return (LineType.PAYMENT if entry.amount >= 0 else LineType.PAYOUT).value


def parse_swift(
    path: Path,
    *,
    channel: str,
    business_date: date | None,
    name: str,
    interim: bool,
    controls: ControlPolicy = "enforce",
) -> ParsedFile:
    """Shared parse of MT940 and MT942: a ParsedFile in LINE_SCHEMA, or StatementError."""
    path = Path(path)
    ctl = ControlCheck(path, controls)
    data = read_bytes(path)
    sha = sha256_bytes(data)
    statements = read_statements(path, data)
    check(path, statements, interim=interim, ctl=ctl)
    entries = [(st, e) for st in statements for e in st.entries]

    def midnight(d: date) -> datetime:
        return datetime(d.year, d.month, d.day, tzinfo=UTC)

    frame = build_frame(
        path=path,
        sha256=sha,
        channel=channel,
        account=statements[0].account,
        business_date=business_date,
        columns={
            "line_no": [e.line_no for _, e in entries],
            "line_type": [_line_type(e) for _, e in entries],
            "channel_txn_id": [e.bank_ref for _, e in entries],
            "payment_id": [_payment_id(e) for _, e in entries],
            "gross_minor": [e.amount for _, e in entries],
            "fee_minor": [0 for _ in entries],
            "net_minor": [e.amount for _, e in entries],
            "currency": [st.currency for st, _ in entries],
            "booked_at": [midnight(e.entry_date or e.value_date) for _, e in entries],
            "value_date": [e.value_date for _, e in entries],
            "raw": ["BOOK" for _ in entries],
        },
    )
    summary = ctl.summary({"statements": len(statements), "lines": len(entries)})
    return ParsedFile(path=path, sha256=sha, format=name, frame=frame, controls=summary)


def parse(
    path: Path, *, channel: str, business_date: date | None = None, controls: ControlPolicy = "enforce"
) -> ParsedFile:
    """Parse an MT940 file (one or more statements) into lines; refuse it whole unless every
    statement's opening balance plus its lines equals its closing balance (`controls="report"`:
    list each statement that does not balance in `ParsedFile.controls["mismatches"]` instead)."""
    return parse_swift(path, channel=channel, business_date=business_date, name=NAME, interim=False, controls=controls)


def sniff(head: bytes, name: str) -> bool:
    return (b":20:" in head and (b":60F:" in head or b":60M:" in head)) or b"{2:O940" in head


FORMAT = register(StatementFormat(NAME, parse=parse, sniff=sniff, description=__doc__.splitlines()[0]))
