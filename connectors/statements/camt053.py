"""`camt053`: ISO 20022 camt.053 bank-to-customer statement, versions 001.02 to 001.13.

The reader is shared with camt.054 in `connectors.statements.iso20022` (see there for how entries
become lines and which control totals are checked). The writer renders one statement per file in
camt.053.001.08, the version most banks moved to with the SWIFT CBPR+ migration: opening balance
zero, the day's entries, closing balance = their sum, and a `TxsSummry` that agrees.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

from connectors.statements import ParsedFile, StatementFormat, register
from connectors.statements._common import ControlPolicy
from connectors.statements.iso20022 import parse_camt
from pipelines.money import format_amount
from pipelines.records import LineType, StatementLine

if TYPE_CHECKING:
    from pipelines.matching.rules import Rule

NAME = "camt053"
NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"
# Bank transaction codes (Domain/Family/SubFamily) written for each line type; the reader maps them back.
BANK_TX_CODE = {
    LineType.PAYMENT: ("PMNT", "RCDT", "ESCT"),
    LineType.PAYOUT: ("PMNT", "ICDT", "ESCT"),
    LineType.REFUND: ("PMNT", "ICDT", "RRTN"),
    LineType.FEE: ("ACMT", "MDOP", "CHRG"),
    LineType.CHARGEBACK: ("PMNT", "CCRD", "CHBK"),
    LineType.ADJUSTMENT: ("ACMT", "MCOP", "ADJT"),
    LineType.REVERSAL: ("PMNT", "RCDT", "ESCT"),
}


def parse(
    path: Path, *, channel: str, business_date: date | None = None, controls: ControlPolicy = "enforce"
) -> ParsedFile:
    """Parse a camt.053 statement file (one or more `Stmt`) into lines; refuse it whole on any
    defect, including balances that do not add up (`balance_mismatch`); `controls="report"` lists
    control totals and balances that disagree in `ParsedFile.controls["mismatches"]` instead."""
    return parse_camt(path, channel=channel, business_date=business_date, name=NAME,
                      container="BkToCstmrStmt", item="Stmt", with_balances=True, controls=controls)  # fmt: skip


def _amt(minor: int, currency: str, tag: str = "Amt") -> str:
    return f'<{tag} Ccy="{currency}">{format_amount(abs(minor), currency)}</{tag}>'


def _ind(minor: int) -> str:
    return f"<CdtDbtInd>{'CRDT' if minor >= 0 else 'DBIT'}</CdtDbtInd>"


def render(lines: Sequence[StatementLine], *, account: str, currency: str, business_date: date, stmt_id: str) -> str:
    """The XML text of one camt.053.001.08 statement holding `lines` (one entry per line)."""
    created = datetime(business_date.year, business_date.month, business_date.day, 23, 59, 59, tzinfo=UTC)
    day = business_date.isoformat()
    entries = []
    for line in lines:
        if line.currency != currency:
            raise ValueError(f"{line.channel_txn_id}: a {currency} statement cannot hold {line.currency}")
        if line.booked_at is None:
            raise ValueError(f"{line.channel_txn_id}: a camt.053 entry needs its booking time")
        domain, family, sub = BANK_TX_CODE[line.line_type]
        ref = escape(line.channel_txn_id) if line.channel_txn_id else None
        e2e = escape(line.payment_id) if line.payment_id else "NOTPROVIDED"
        charges = ""
        if line.fee_minor:
            charges = (f"<Chrgs><Rcrd>{_amt(abs(line.fee_minor), currency)}"
                       f"<CdtDbtInd>{'DBIT' if line.fee_minor > 0 else 'CRDT'}</CdtDbtInd></Rcrd></Chrgs>")  # fmt: skip
        value = line.value_date.isoformat() if line.value_date else line.booked_at.date().isoformat()
        stamp = line.booked_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        entries.append(
            "<Ntry>"
            + _amt(line.net_minor, currency)
            + _ind(line.net_minor)
            + f"<RvslInd>{'true' if line.line_type is LineType.REVERSAL else 'false'}</RvslInd>"
            + f"<Sts><Cd>{escape(line.raw or 'BOOK')}</Cd></Sts>"
            + f"<BookgDt><DtTm>{stamp}</DtTm></BookgDt><ValDt><Dt>{value}</Dt></ValDt>"
            + (f"<AcctSvcrRef>{ref}</AcctSvcrRef>" if ref else "")
            + f"<BkTxCd><Domn><Cd>{domain}</Cd><Fmly><Cd>{family}</Cd><SubFmlyCd>{sub}</SubFmlyCd></Fmly></Domn></BkTxCd>"
            + charges
            + "<NtryDtls><TxDtls><Refs>"
            + (f"<AcctSvcrRef>{ref}</AcctSvcrRef>" if ref else "")
            + f"<EndToEndId>{e2e}</EndToEndId></Refs>"
            + f"<AmtDtls><TxAmt>{_amt(line.gross_minor, currency)}</TxAmt></AmtDtls>"
            + "</TxDtls></NtryDtls></Ntry>"
        )
    booked = [ln for ln in lines if (ln.raw or "BOOK") == "BOOK"]
    closing = sum(ln.net_minor for ln in booked)
    nets = [ln.net_minor for ln in lines]
    credits = [v for v in nets if v >= 0]
    debits = [v for v in nets if v < 0]

    def bal(code: str, minor: int) -> str:
        return f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp>{_amt(minor, currency)}{_ind(minor)}<Dt><Dt>{day}</Dt></Dt></Bal>"

    summary = (
        "<TxsSummry>"
        + f"<TtlNtries><NbOfNtries>{len(nets)}</NbOfNtries><Sum>{format_amount(sum(abs(v) for v in nets), currency)}</Sum>"
        + f"<TtlNetNtry><Amt>{format_amount(abs(sum(nets)), currency)}</Amt>{_ind(sum(nets))}</TtlNetNtry></TtlNtries>"
        + f"<TtlCdtNtries><NbOfNtries>{len(credits)}</NbOfNtries><Sum>{format_amount(sum(credits), currency)}</Sum></TtlCdtNtries>"
        + f"<TtlDbtNtries><NbOfNtries>{len(debits)}</NbOfNtries><Sum>{format_amount(-sum(debits), currency)}</Sum></TtlDbtNtries>"
        + "</TxsSummry>"
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        + f'<Document xmlns="{NAMESPACE}">\n<BkToCstmrStmt>\n'
        + f"<GrpHdr><MsgId>{escape(stmt_id)}</MsgId><CreDtTm>{created.isoformat().replace('+00:00', 'Z')}</CreDtTm></GrpHdr>\n"
        + f"<Stmt><Id>{escape(stmt_id)}</Id><CreDtTm>{created.isoformat().replace('+00:00', 'Z')}</CreDtTm>\n"
        + f"<Acct><Id><Othr><Id>{escape(account)}</Id></Othr></Id><Ccy>{currency}</Ccy></Acct>\n"
        + bal("OPBD", 0) + "\n" + bal("CLBD", closing) + "\n" + summary + "\n"
        + "\n".join(entries)
        + ("\n" if entries else "")
        + "</Stmt>\n</BkToCstmrStmt>\n</Document>\n"
    )  # fmt: skip


def write(lines: Sequence[StatementLine], directory: Path, *, rule: Rule, business_date: date) -> list[Path]:
    """Write `lines` as one camt.053.001.08 statement `<channel>_<date>.camt053.xml` (UTF-8)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{rule.channel}_{business_date.isoformat()}.camt053.xml"
    stmt_id = f"{rule.channel.upper()}-{business_date.strftime('%Y%m%d')}"
    text = render(lines, account=rule.account, currency=rule.currency, business_date=business_date, stmt_id=stmt_id)
    path.write_text(text, encoding="utf-8")
    return [path]


def sniff(head: bytes, name: str) -> bool:
    return b"camt.053" in head or b"BkToCstmrStmt" in head


FORMAT = register(StatementFormat(NAME, parse=parse, write=write, sniff=sniff, description=__doc__.splitlines()[0]))
