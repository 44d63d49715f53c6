"""`camt054`: ISO 20022 camt.054 bank-to-customer debit/credit notification, 001.02 to 001.13.

A notification carries entries but no balances, so its control totals are the `TxsSummry` counts
and sums and each batch's `Btch` totals; the reader is shared with camt.053
(`connectors.statements.iso20022`, which documents how entries become lines).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from connectors.statements import ParsedFile, StatementFormat, register
from connectors.statements._common import ControlPolicy
from connectors.statements.iso20022 import parse_camt

NAME = "camt054"


def parse(
    path: Path, *, channel: str, business_date: date | None = None, controls: ControlPolicy = "enforce"
) -> ParsedFile:
    """Parse a camt.054 notification file (one or more `Ntfctn`) into lines; refuse it whole on any
    defect (`controls="report"`: list control totals that disagree in `ParsedFile.controls["mismatches"]`)."""
    return parse_camt(path, channel=channel, business_date=business_date, name=NAME,
                      container="BkToCstmrDbtCdtNtfctn", item="Ntfctn", with_balances=False, controls=controls)  # fmt: skip


def sniff(head: bytes, name: str) -> bool:
    return b"camt.054" in head or b"BkToCstmrDbtCdtNtfctn" in head


FORMAT = register(StatementFormat(NAME, parse=parse, sniff=sniff, description=__doc__.splitlines()[0]))
