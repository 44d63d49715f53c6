"""ISO 20022 cash-management messages: camt.053 (statement) and camt.054 (debit/credit notification).

Our own reader on the standard library's expat, for three reasons no library met at once: it is
namespace-agnostic (camt.053.001.02 to .13 and camt.054 coexist with different namespaces and a
few moved elements: `Sts` became `Sts/Cd` in .08, `TxDtls/Amt` appeared in .04), every element
keeps its source line so an error names it, and a DTD or entity declaration is refused outright
(`bad_xml`): a bank statement never needs one, and refusing it closes the entity-expansion bombs
without an extra dependency. A UTF-8 BOM is accepted, as XML allows it.

What becomes a statement line:
- an entry (`Ntry`) with at most one `TxDtls` is one line: net = the entry's amount signed by
  `CdtDbtInd` (credit positive), fee = its charges (`Chrgs`, debit charges positive), gross = net +
  fee, checked against `AmtDtls/TxAmt` when present in the same currency;
- a batch-booked entry (`NtryDtls/Btch`, several `TxDtls`) is one line per `TxDtls`, each with its
  own amount; their count must equal `Btch/NbOfTxs`, and their sum the entry's amount (and
  `Btch/TtlAmt`), or the file is refused (`control_total_mismatch`);
- `RvslInd` true makes a REVERSAL; otherwise the bank transaction code decides (`BkTxCd/Domn`:
  PMNT/RCDT PAYMENT, PMNT/ICDT PAYOUT, PMNT/ICDT/RRTN REFUND, ACMT/MDOP/CHRG FEE, PMNT/CCRD/CHBK
  CHARGEBACK, ACMT/MCOP/ADJT ADJUSTMENT), and without one the sign (credit PAYMENT, debit PAYOUT);
- payment_id = `EndToEndId` (null when absent or `NOTPROVIDED`); channel_txn_id = the bank's
  reference (`TxDtls/Refs/AcctSvcrRef`, `Ntry/AcctSvcrRef`, `Refs/TxId`, `NtryRef`, in that order);
  booked_at = `BookgDt/DtTm` or `BookgDt/Dt` at midnight UTC; value_date = `ValDt`;
  raw = the entry status (BOOK, PDNG, INFO), a key of the bank rule's status_map.

Control totals, per statement: opening balance (OPBD, PRCD, or the first ITBD of a page) plus the
booked entries equals the closing balance (CLBD, or the last ITBD) (`balance_mismatch`);
`TxsSummry` counts and sums equal the entries (`control_total_mismatch`). Several statements per
file are read in order; pages of one statement (`StmtPgntn`) each balance from their own interim
balances.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from xml.parsers import expat

from connectors.statements import ParsedFile
from connectors.statements._common import (
    ControlCheck,
    ControlPolicy,
    build_frame,
    gc_paused,
    read_bytes,
    refuse,
    whole_number,
)
from connectors.statements.intake import sha256_bytes
from pipelines.money import MoneyError, parse_amount
from pipelines.records import LineType


@dataclass(slots=True)
class Node:
    """One XML element with its local name (no namespace), text, attributes and source line."""

    tag: str
    line: int
    attrib: dict[str, str]
    children: list[Node] = field(default_factory=list)
    text: str = ""

    def find(self, path: str) -> Node | None:
        node = self
        for step in _steps(path):
            # A plain loop: a generator per step was a fifth of the reader's time.
            for child in node.children:
                if child.tag == step:
                    node = child
                    break
            else:
                return None
        return node

    def findall(self, path: str) -> list[Node]:
        *head, last = _steps(path)
        parent = self.find("/".join(head)) if head else self
        return [c for c in parent.children if c.tag == last] if parent else []

    def findtext(self, path: str) -> str | None:
        node = self.find(path)
        return node.text.strip() if node is not None else None

    def iter(self, tag: str) -> Iterator[Node]:
        for child in self.children:
            if child.tag == tag:
                yield child
            yield from child.iter(tag)


@functools.lru_cache(maxsize=256)
def _steps(path: str) -> tuple[str, ...]:
    return tuple(path.split("/"))


@functools.lru_cache(maxsize=1024)  # bounded: a hostile file may hold any number of names
def _local(name: str) -> str:
    """An element or attribute name without its namespace (expat gives `namespace}local`)."""
    return name.rsplit("}", 1)[-1]


def read_xml(
    path: Path, data: bytes, consume: Callable[[Node, list[Node]], bool] | None = None, consume_tag: str = ""
) -> Node:
    """Parse XML bytes into Nodes with source lines; refuse malformed XML, DTDs and entities.

    `consume(node, ancestors)`, when given, is called as each `consume_tag` element ends, with
    the elements it is inside (the root first); when it returns True the element is taken out of
    the tree. A statement's entries are read this way as they end, so the tree never holds more
    than one entry (whole, a statement of 243,449 entries held 2.4 GB of Nodes)."""
    root: list[Node] = []
    stack: list[Node] = []
    parser = expat.ParserCreate(namespace_separator="}")
    # Text in one piece per element between tags, not one callback per buffer or entity.
    parser.buffer_text = True

    def start(name: str, attrs: dict[str, str]) -> None:
        node = Node(_local(name), parser.CurrentLineNumber, {_local(k): v for k, v in attrs.items()} if attrs else {})
        if stack:
            stack[-1].children.append(node)
        else:
            root.append(node)
        stack.append(node)

    def end(name: str) -> None:
        node = stack.pop()
        if node.tag == consume_tag and consume is not None and stack and consume(node, stack):
            stack[-1].children.pop()  # the element just ended is its parent's last child

    def chars(text: str) -> None:
        if stack:
            stack[-1].text += text

    def no_dtd(*args: Any) -> None:
        raise refuse(path, parser.CurrentLineNumber, "bad_xml", "a DOCTYPE or entity declaration; statements need none")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.StartDoctypeDeclHandler = no_dtd
    parser.EntityDeclHandler = no_dtd
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        reason = "truncated" if "no element found" in str(exc) or "unclosed token" in str(exc) else "bad_xml"
        if stack and reason == "bad_xml" and exc.lineno >= data.count(b"\n"):
            reason = "truncated"
        raise refuse(path, exc.lineno, reason, str(exc)) from None
    except LookupError as exc:  # an XML declaration naming an encoding Python does not know
        raise refuse(path, 1, "encoding", f"the XML declaration names an unknown encoding: {exc}") from None
    finally:
        # The handlers close over the parser (for its line number) and the tree: a reference
        # cycle, which kept the whole tree alive until the cyclic collector traced all of it (a
        # second per 12,000 entries). Without the handlers the tree is freed as soon as it is
        # no longer used.
        parser.StartElementHandler = parser.EndElementHandler = parser.CharacterDataHandler = None
        parser.StartDoctypeDeclHandler = parser.EntityDeclHandler = None
    if not root:
        raise refuse(path, 0, "empty_file", "no XML element")
    return root[0]


@dataclass
class Line:
    line_no: int
    line_type: str
    channel_txn_id: str | None
    payment_id: str | None
    gross: int
    fee: int
    net: int
    currency: str
    booked_at: datetime | None
    value_date: date | None
    raw: str


class _Reader:
    def __init__(self, path: Path, channel: str, ctl: ControlCheck) -> None:
        self.path, self.channel, self.ctl = path, channel, ctl

    def amount(self, node: Node | None, where: Node, what: str, currency: str = "") -> tuple[int, str]:
        """A money element as (minor units, currency); `currency` for the plain decimals of
        TxsSummry, which carry no Ccy attribute of their own."""
        if node is None:
            raise refuse(self.path, where.line, "missing_field", f"{where.tag} has no {what}")
        currency = node.attrib.get("Ccy") or currency
        try:
            return parse_amount(node.text.strip(), currency, channel=self.channel), currency
        except MoneyError as exc:
            raise refuse(self.path, node.line, exc.reason, f"{what}: {exc.detail}") from None

    def signed(self, parent: Node, amt_path: str = "Amt", ind_path: str = "CdtDbtInd") -> tuple[int, str]:
        value, currency = self.amount(parent.find(amt_path), parent, amt_path)
        ind = parent.findtext(ind_path)
        if ind not in ("CRDT", "DBIT"):
            raise refuse(self.path, parent.line, "missing_field", f"{parent.tag} {ind_path} is {ind!r}, not CRDT/DBIT")
        return (value if ind == "CRDT" else -value), currency

    def when(self, node: Node | None) -> tuple[datetime | None, date | None]:
        """A DateAndDateTime choice: (timestamp in UTC or None, date or None)."""
        if node is None:
            return None, None
        try:
            if (text := node.findtext("DtTm")) is not None:
                stamp = datetime.fromisoformat(text)
                stamp = stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)
                return stamp, stamp.date()
            if (text := node.findtext("Dt")) is not None:
                day = date.fromisoformat(text)
                return datetime(day.year, day.month, day.day, tzinfo=UTC), day
        except ValueError as exc:
            raise refuse(self.path, node.line, "bad_timestamp", f"{node.tag}: {exc}") from None
        raise refuse(self.path, node.line, "missing_field", f"{node.tag} has neither Dt nor DtTm")

    def charges(self, node: Node) -> int:
        """Charges on an entry or transaction: positive when the bank charged us."""
        total = 0
        for chrgs in node.findall("Chrgs"):
            # .02-.03: Chrgs repeats with Amt directly; .04+: one Chrgs holding Rcrd records.
            records = chrgs.findall("Rcrd") or [chrgs]
            for rec in records:
                value, _ = self.amount(rec.find("Amt"), rec, "Chrgs/Amt")
                ind = rec.findtext("CdtDbtInd") or "DBIT"
                total += value if ind == "DBIT" else -value
        return total

    def line_type(self, entry: Node, tx: Node | None, net: int) -> str:
        if (entry.findtext("RvslInd") or "").lower() == "true":
            return LineType.REVERSAL.value
        for holder in (tx, entry):
            if holder is None:
                continue
            domain = holder.find("BkTxCd/Domn")
            if domain is None:
                continue
            code = (domain.findtext("Cd"), domain.findtext("Fmly/Cd"), domain.findtext("Fmly/SubFmlyCd"))
            if code[1] == "CCRD" and code[2] == "CHBK":
                return LineType.CHARGEBACK.value
            if code[2] == "RRTN":
                return LineType.REFUND.value
            if code[2] == "CHRG":
                return LineType.FEE.value
            if code[2] == "ADJT":
                return LineType.ADJUSTMENT.value
            if code[1] == "RCDT":
                return LineType.PAYMENT.value
            if code[1] == "ICDT":
                return LineType.PAYOUT.value
        return (LineType.PAYMENT if net >= 0 else LineType.PAYOUT).value

    def entry_lines(self, entry: Node) -> list[Line]:
        net, currency = self.signed(entry)
        sts = entry.find("Sts")
        status = ((sts.findtext("Cd") or sts.text) if sts is not None else "").strip() or "BOOK"
        booked_at, _ = self.when(entry.find("BookgDt"))
        _, value_date = self.when(entry.find("ValDt"))
        txs = [tx for details in entry.findall("NtryDtls") for tx in details.findall("TxDtls")]
        entry_ref = entry.findtext("AcctSvcrRef") or entry.findtext("NtryRef")

        def refs(tx: Node | None) -> tuple[str | None, str | None]:
            if tx is None:
                return entry_ref, None
            e2e = tx.findtext("Refs/EndToEndId")
            txn = (
                tx.findtext("Refs/AcctSvcrRef")
                or entry.findtext("AcctSvcrRef")
                or tx.findtext("Refs/TxId")
                or entry.findtext("NtryRef")
            )
            return txn or None, (e2e if e2e and e2e != "NOTPROVIDED" else None)

        batch = entry.find("NtryDtls/Btch")
        has_amounts = all(tx.find("Amt") is not None or tx.find("AmtDtls/TxAmt/Amt") is not None for tx in txs)
        if len(txs) <= 1 or not has_amounts:
            tx = txs[0] if len(txs) == 1 else None
            fee = self.charges(entry) + (self.charges(tx) if tx is not None else 0)
            gross = net + fee
            if tx is not None and (ta := tx.find("AmtDtls/TxAmt/Amt")) is not None and ta.attrib.get("Ccy") == currency:
                value, _ = self.amount(ta, tx, "AmtDtls/TxAmt/Amt")
                if value != abs(gross):
                    self.ctl.disagree(ta.line, "control_total_mismatch",
                                 f"TxAmt {value} but entry {abs(net)} with charges {fee} gives gross {abs(gross)}")  # fmt: skip
            txn, e2e = refs(tx)
            if len(txs) > 1:
                # A batch without per-transaction amounts can only be one line for the whole entry.
                e2e = None
            lt = self.line_type(entry, tx, net)
            return [Line(entry.line, lt, txn, e2e, gross, fee, net, currency, booked_at, value_date, status)]
        lines = []
        total = 0
        for tx in txs:
            amt_path = "Amt" if tx.find("Amt") is not None else "AmtDtls/TxAmt/Amt"
            value, cur = self.amount(tx.find(amt_path), tx, amt_path)
            ind = tx.findtext("CdtDbtInd") or entry.findtext("CdtDbtInd")
            tx_gross = value if ind == "CRDT" else -value
            fee = self.charges(tx)
            tx_net = tx_gross - fee
            # Each transaction's amount is its gross; the entry books the sum of their nets.
            total += tx_net
            txn, e2e = refs(tx)
            lines.append(Line(tx.line, self.line_type(entry, tx, tx_gross), txn, e2e, tx_gross, fee, tx_net, cur,
                              booked_at, value_date, status))  # fmt: skip
        if total != net:
            self.ctl.disagree(
                entry.line,
                "control_total_mismatch",
                f"the batch's transactions sum to {total}, the entry books {net}",
            )
        if batch is not None:
            declared = batch.findtext("NbOfTxs")
            if declared is not None and declared != str(len(txs)):
                self.ctl.disagree(
                    batch.line, "control_total_mismatch", f"Btch/NbOfTxs {declared} but {len(txs)} TxDtls"
                )
            if batch.find("TtlAmt") is not None:
                ttl, _ = self.amount(batch.find("TtlAmt"), batch, "TtlAmt")
                if ttl != abs(net):
                    self.ctl.disagree(
                        batch.line,
                        "control_total_mismatch",
                        f"Btch/TtlAmt {ttl} but the entry books {abs(net)}",
                    )
        return lines

    def balances(self, stmt: Node) -> tuple[tuple[int, Node] | None, tuple[int, Node] | None]:
        found: dict[str, list[tuple[int, Node]]] = {}
        for bal in stmt.findall("Bal"):
            code = bal.findtext("Tp/CdOrPrtry/Cd") or bal.findtext("Tp/CdOrPrtry/Prtry") or ""
            value, _ = self.signed(bal)
            found.setdefault(code, []).append((value, bal))
        openings = found.get("OPBD") or found.get("PRCD") or found.get("ITBD") or []
        closings = found.get("CLBD") or found.get("ITBD") or []
        opening = openings[0] if openings else None
        closing = closings[-1] if closings else None
        if opening is not None and closing is not None and opening[1] is closing[1]:
            closing = None
        return opening, closing

    def entry(self, entry: Node, seen: _Entries) -> None:
        """Read one entry of a statement as it ends (`read_xml`'s consume) into `seen`."""
        entry_lines = self.entry_lines(entry)
        net = sum(ln.net for ln in entry_lines) if len(entry_lines) > 1 else entry_lines[0].net
        if not seen.nets and (amt := entry.find("Amt")) is not None:
            seen.currency = amt.attrib.get("Ccy", "")
        seen.nets.append(net)
        if entry_lines[0].raw == "BOOK":
            seen.booked_total += net
        seen.lines.extend(entry_lines)

    def summary(self, stmt: Node, seen: _Entries) -> None:
        ss = stmt.find("TxsSummry")
        if ss is None:
            return
        nets = seen.nets
        currency = stmt.findtext("Acct/Ccy") or seen.currency
        checks: list[tuple[str, Node | None, int, int]] = []
        for key, mask in (("TtlNtries", None), ("TtlCdtNtries", 1), ("TtlDbtNtries", -1)):
            node = ss.find(key)
            if node is None:
                continue
            picked = [v for v in nets if mask is None or (v >= 0) == (mask > 0)]
            count = node.findtext("NbOfNtries")
            if count is not None:
                declared = whole_number(count)
                if declared is None:
                    raise refuse(
                        self.path, node.line, "bad_record", f"TxsSummry {key}/NbOfNtries {count!r} is no count"
                    )
                checks.append((f"{key}/NbOfNtries", node, declared, len(picked)))
            if node.find("Sum") is not None:
                total, _ = self.amount(node.find("Sum"), node, f"{key}/Sum", currency)
                checks.append((f"{key}/Sum", node, total, sum(abs(v) for v in picked)))
            if key == "TtlNtries" and node.find("TtlNetNtry") is not None:
                ttl = node.find("TtlNetNtry")
                assert ttl is not None
                value, _ = self.amount(ttl.find("Amt"), ttl, "TtlNetNtry/Amt", currency)
                net = value if ttl.findtext("CdtDbtInd") == "CRDT" else -value
                checks.append(("TtlNetNtry", node, net, sum(nets)))
        for what, node, declared, actual in checks:
            if declared != actual:
                assert node is not None
                self.ctl.disagree(
                    node.line,
                    "control_total_mismatch",
                    f"TxsSummry {what} says {declared}, the entries give {actual}",
                )

    def statement(self, stmt: Node, seen: _Entries, with_balances: bool) -> list[Line]:
        """Check a statement whose entries were read into `seen`: TxsSummry and balances."""
        self.summary(stmt, seen)
        if with_balances:
            opening, closing = self.balances(stmt)
            if opening is None or closing is None:
                if stmt.find("StmtPgntn") is None:
                    raise refuse(
                        self.path, stmt.line, "missing_field", "a statement needs its opening and closing balances"
                    )
            elif opening[0] + seen.booked_total != closing[0]:
                self.ctl.disagree(
                    closing[1].line,
                    "balance_mismatch",
                    f"opening {opening[0]} + booked entries {seen.booked_total} = {opening[0] + seen.booked_total}, closing says {closing[0]} (minor units)",
                )
        return seen.lines


@dataclass
class _Entries:
    """What a statement's entries gave, read one by one as they end: their lines, each entry's
    net, the booked entries' total and the first entry's currency (for TxsSummry's plain sums)."""

    lines: list[Line] = field(default_factory=list)
    nets: list[int] = field(default_factory=list)
    booked_total: int = 0
    currency: str = ""


def read_lines(
    path: Path,
    data: bytes,
    *,
    channel: str,
    container: str,
    item: str,
    with_balances: bool,
    ctl: ControlCheck | None = None,
) -> tuple[list[Line], dict[str, object]]:
    """All lines of a camt message, checked. `container`/`item`: BkToCstmrStmt/Stmt for camt.053,
    BkToCstmrDbtCdtNtfctn/Ntfctn for camt.054. A `report` ControlCheck records control totals
    and balances that disagree instead of refusing.

    Each entry (`Document/<container>/<item>/Ntry`) is read as soon as it ends and then dropped
    from the tree, so memory grows with the lines, not with the XML; the statement's own checks
    (TxsSummry, balances) run once the whole message has parsed."""
    ctl = ctl or ControlCheck(path)
    reader = _Reader(path, channel, ctl)
    seen: dict[int, _Entries] = {}  # by id() of the statement's Node, which the tree keeps alive

    def consume(node: Node, ancestors: list[Node]) -> bool:
        if len(ancestors) != 3:
            return False
        document, body, stmt = ancestors
        if stmt.tag != item or body.tag != container or document.tag != "Document":
            return False
        reader.entry(node, seen.setdefault(id(stmt), _Entries()))
        return True

    root = read_xml(path, data, consume, "Ntry")
    if root.tag != "Document":
        raise refuse(path, root.line, "bad_header", f"root element {root.tag}, not Document")
    body = root.find(container)
    if body is None:
        found = root.children[0].tag if root.children else "nothing"
        raise refuse(path, root.line, "bad_header", f"expected {container}, found {found}")
    items = body.findall(item)
    if not items:
        raise refuse(path, body.line, "header_only", f"no {item} in the message")
    lines: list[Line] = []
    entries = 0
    for stmt in items:
        of_stmt = seen.get(id(stmt)) or _Entries()  # a statement without entries has none
        entries += len(of_stmt.nets)
        lines.extend(reader.statement(stmt, of_stmt, with_balances))
    account = ""
    if acct := items[0].find("Acct/Id"):
        account = acct.findtext("IBAN") or acct.findtext("Othr/Id") or ""
    return lines, {"statements": len(items), "account": account, "entries": entries}


def parse_camt(path: Path, *, channel: str, business_date: date | None, name: str, container: str, item: str,
               with_balances: bool, controls: ControlPolicy = "enforce") -> ParsedFile:  # fmt: skip
    """Shared parse of camt.053 and camt.054: a ParsedFile in LINE_SCHEMA, or StatementError."""
    path = Path(path)
    ctl = ControlCheck(path, controls)
    data = read_bytes(path)
    sha = sha256_bytes(data)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    with gc_paused():
        lines, facts = read_lines(
            path, data, channel=channel, container=container, item=item, with_balances=with_balances, ctl=ctl
        )
    frame = build_frame(
        path=path,
        sha256=sha,
        channel=channel,
        account=str(facts["account"]),
        business_date=business_date,
        columns={
            "line_no": [ln.line_no for ln in lines],
            "line_type": [ln.line_type for ln in lines],
            "channel_txn_id": [ln.channel_txn_id for ln in lines],
            "payment_id": [ln.payment_id for ln in lines],
            "gross_minor": [ln.gross for ln in lines],
            "fee_minor": [ln.fee for ln in lines],
            "net_minor": [ln.net for ln in lines],
            "currency": [ln.currency for ln in lines],
            "booked_at": [ln.booked_at for ln in lines],
            "value_date": [ln.value_date for ln in lines],
            "raw": [ln.raw for ln in lines],
        },
    )
    return ParsedFile(path=path, sha256=sha, format=name, frame=frame, controls=ctl.summary(facts))
