"""`mt942`: SWIFT MT942 interim transaction report (intraday), read like MT940.

It carries no closing balance: its control totals are `:90D:` and `:90C:` (the number and sum of
the debit and credit `:61:` lines), checked against the lines (`control_total_mismatch`). The
reader is shared with MT940 (`connectors.statements.mt940`, which documents the grammar).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from connectors.statements import ParsedFile, StatementFormat, register
from connectors.statements._common import ControlPolicy
from connectors.statements.mt940 import parse_swift

NAME = "mt942"


def parse(
    path: Path, *, channel: str, business_date: date | None = None, controls: ControlPolicy = "enforce"
) -> ParsedFile:
    """Parse an MT942 file into lines; refuse it whole when :90D:/:90C: disagree with its lines
    (`controls="report"`: list the disagreement in `ParsedFile.controls["mismatches"]` instead)."""
    return parse_swift(path, channel=channel, business_date=business_date, name=NAME, interim=True, controls=controls)


def sniff(head: bytes, name: str) -> bool:
    return (b":20:" in head and (b":34F:" in head or b":90D:" in head)) or b"{2:O942" in head


FORMAT = register(StatementFormat(NAME, parse=parse, sniff=sniff, description=__doc__.splitlines()[0]))
