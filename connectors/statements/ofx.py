"""`ofx`: Open Financial Exchange bank statements, OFX 1.x (SGML, unclosed tags) and 2.x (XML).

Our own reader: the one Python library (`ofxparse`) converts amounts to Decimal through float-prone
paths in places, is not in our lock file, and reports no source lines. The grammar we need is
small: a `KEY:VALUE` header (1.x) or an XML prolog (2.x), then `<STMTTRN>` blocks inside
`<BANKTRANLIST>`, each with `TRNTYPE`, `DTPOSTED`, `TRNAMT` (signed, major units), `FITID`, and
optionally `REFNUM`, `NAME`, `MEMO`; `CURDEF` names the currency. The 1.x text is decoded with
its declared `CHARSET` (1252 is Windows-1252), which a byte outside that code page refuses.

Lines: TRNAMT > 0 is a PAYMENT (credit), < 0 a PAYOUT, with TRNTYPE FEE/SRVCHG a FEE;
channel_txn_id = FITID, payment_id = REFNUM (null when absent), booked_at = DTPOSTED with its
`[offset:TZ]` in UTC, raw = BOOK.

OFX carries no statement control totals (LEDGERBAL is a closing balance without its opening), so
what is checked is each transaction's completeness and its amount; the summary says so.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

from connectors.statements import ParsedFile, StatementFormat, register
from connectors.statements._common import (
    ControlCheck,
    ControlPolicy,
    build_frame,
    decode,
    line_of_offset,
    read_bytes,
    refuse,
)
from connectors.statements.intake import sha256_bytes
from pipelines.money import MoneyError, parse_amount
from pipelines.records import LineType

NAME = "ofx"
FIELD_RE = re.compile(r"<(?P<tag>[A-Z0-9.]+)>(?P<value>[^<\r\n]*)")
DATE_RE = re.compile(r"^([0-9]{8})([0-9]{6})?(?:\.[0-9]+)?(?:\[([+-]?[0-9]+(?:\.[0-9]+)?)(?::[A-Za-z]+)?\])?$")
CHARSETS = {"1252": "cp1252", "NONE": "ascii", "UTF-8": "utf-8", "ISO-8859-1": "latin-1"}


def _when(path: Path, text: str, line: int) -> datetime:
    m = DATE_RE.match(text.strip())
    if m is None:
        raise refuse(path, line, "bad_timestamp", f"DTPOSTED {text!r}")
    stamp = datetime.strptime(m.group(1) + (m.group(2) or "000000"), "%Y%m%d%H%M%S")
    offset = timedelta(hours=float(m.group(3))) if m.group(3) else timedelta(0)
    return stamp.replace(tzinfo=timezone(offset)).astimezone(UTC)


def parse(
    path: Path, *, channel: str, business_date: date | None = None, controls: ControlPolicy = "enforce"
) -> ParsedFile:
    """Parse an OFX bank statement into lines; refuse it whole on a malformed transaction. OFX has
    no control totals, so `controls` changes nothing but adds an empty `mismatches` list under `report`."""
    path = Path(path)
    data = read_bytes(path)
    sha = sha256_bytes(data)
    charset = re.search(rb"CHARSET:\s*([A-Za-z0-9-]+)", data[:1024])
    text = decode(
        path, data, CHARSETS.get(charset.group(1).decode().upper(), "cp1252") if charset else "utf-8", allow_bom=True
    )
    if "<OFX>" not in text:
        raise refuse(path, 1, "bad_header", "no <OFX> element")
    if "</OFX>" not in text:
        raise refuse(path, text.count("\n") + 1, "truncated", "the file ends before </OFX>")
    cur_m = re.search(r"<CURDEF>([A-Z]{3})", text)
    if cur_m is None:
        raise refuse(path, 0, "missing_field", "no CURDEF: the statement's currency is unknown")
    currency = cur_m.group(1)
    rows = []
    for block in re.finditer(r"<STMTTRN>(.*?)</STMTTRN>", text, flags=re.S):
        line = line_of_offset(text, block.start())
        fields = {m.group("tag"): m.group("value").strip() for m in FIELD_RE.finditer(block.group(1))}
        for need in ("TRNTYPE", "DTPOSTED", "TRNAMT", "FITID"):
            if not fields.get(need):
                raise refuse(path, line, "missing_field", f"STMTTRN without {need}")
        try:
            amount = parse_amount(fields["TRNAMT"], currency, channel=channel)
        except MoneyError as exc:
            raise refuse(path, line, exc.reason, f"TRNAMT: {exc.detail}") from None
        kind = fields["TRNTYPE"].upper()
        line_type = LineType.FEE if kind in ("FEE", "SRVCHG") else LineType.PAYMENT if amount >= 0 else LineType.PAYOUT
        booked = _when(path, fields["DTPOSTED"], line)
        rows.append((line, line_type.value, fields["FITID"], fields.get("REFNUM") or None, amount, booked))
    if not rows and "<BANKTRANLIST>" not in text:
        raise refuse(path, 0, "header_only", "no BANKTRANLIST")
    frame = build_frame(
        path=path,
        sha256=sha,
        channel=channel,
        account=(re.search(r"<ACCTID>([^<\r\n]*)", text) or re.search(r"()", "")).group(1).strip(),  # type: ignore[union-attr]
        business_date=business_date,
        columns={
            "line_no": [r[0] for r in rows],
            "line_type": [r[1] for r in rows],
            "channel_txn_id": [r[2] for r in rows],
            "payment_id": [r[3] for r in rows],
            "gross_minor": [r[4] for r in rows],
            "fee_minor": [0 for _ in rows],
            "net_minor": [r[4] for r in rows],
            "currency": [currency for _ in rows],
            "booked_at": [r[5] for r in rows],
            "value_date": [r[5].date() for r in rows],
            "raw": ["BOOK" for _ in rows],
        },
    )
    return ParsedFile(path=path, sha256=sha, format=NAME, frame=frame,
                      controls=ControlCheck(path, controls).summary({"transactions": len(rows), "control_totals": "none in OFX"}))  # fmt: skip


def sniff(head: bytes, name: str) -> bool:
    return head.lstrip().startswith(b"OFXHEADER") or b"<OFX>" in head


FORMAT = register(StatementFormat(NAME, parse=parse, sniff=sniff, description=__doc__.splitlines()[0]))
