"""`report.xlsx`: the day's reconciliation for finance, in Excel.

Sheets: Summary (per channel: counters per side, breaks, quarantined files, amount at risk;
totals per currency; carry-forward), one sheet per break kind (every kind, in the SPEC's order,
so the workbook's layout never changes from day to day), Aging (count and amount per bucket,
channel and currency, of the breaks still open on the day), Open breaks (every break still open,
earlier days' included, largest first), Quarantined, and History when given.

Amounts: Excel keeps numbers as binary floats, which cannot hold 12.34 exactly, so an amount is
written twice: as exact major-unit text in the currency's digits (what finance reads) and as an
integer count of minor units (a number, exact up to 2**53, to sum and filter on). The workbook's
creation time is the business date and xlsxwriter dates zip members 1980-01-01, so the same
inputs give the same bytes.
"""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import polars as pl
import xlsxwriter

from pipelines.records import BreakKind
from pipelines.report.model import AGING_BUCKETS, COUNTERS, SIDES, ReportModel, amount_text, open_by_currency

# A kind's sheet lists its largest breaks first (amount at risk, then age, then break_id) and at
# most this many, then says how many more there are and where (breaks.csv and breaks.parquet hold
# them all; the Summary and Aging sheets count them all). A sheet is a review list read by a
# person, and xlsxwriter writes cells at about 4 us each: 5,000 rows per kind cost a 10M-payment
# day 3-4 s for rows nobody reads in order, the largest 1,000 under a second.
SHEET_ROWS_MAX = 1_000
COLUMN_WIDTH_MAX = 48

# The break columns of a kind's sheet: (header, source column, how the cell is written).
BREAK_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("break_id", "break_id", "text"),
    ("channel", "channel", "text"),
    ("payment_id", "payment_id", "text"),
    ("channel_txn_id", "channel_txn_id", "text"),
    ("currency", "currency", "text"),
    ("internal_amount", "internal_amount_minor", "amount"),
    ("channel_amount", "channel_amount_minor", "amount"),
    ("delta", "delta_minor", "amount"),
    ("at_risk", "at_risk_minor", "amount"),
    ("internal_amount_minor", "internal_amount_minor", "int"),
    ("channel_amount_minor", "channel_amount_minor", "int"),
    ("delta_minor", "delta_minor", "int"),
    ("at_risk_minor", "at_risk_minor", "int"),
    ("age_days", "age_days", "int"),
    ("first_seen_date", "first_seen_date", "date"),
    ("status", "status", "text"),
    ("action", "action", "text"),
    ("rule_id", "rule_id", "text"),
    ("trace_id", "trace_id", "text"),
)


class _Sheet:
    """A worksheet that remembers column widths and writes a header with filter and frozen panes."""

    def __init__(self, workbook: Any, name: str, styles: dict[str, Any]) -> None:
        self.ws = workbook.add_worksheet(name)
        self.styles = styles
        self.widths: dict[int, int] = {}

    def cell(self, row: int, col: int, value: Any, style: str = "text") -> None:
        fmt = self.styles[style]
        if value is None or value == "":
            self.ws.write_blank(row, col, None, fmt)
            text = ""
        elif style in ("int", "int_bold"):
            assert isinstance(value, int) and not isinstance(value, bool), value
            self.ws.write_number(row, col, value, fmt)
            text = str(value)
        else:
            text = value.isoformat() if isinstance(value, date) else str(value)
            self.ws.write_string(row, col, text, fmt)
        self.widths[col] = max(self.widths.get(col, 0), len(text) + 2)

    def header(self, row: int, names: list[str]) -> None:
        for col, name in enumerate(names):
            self.cell(row, col, name, "header")

    def table(self, header_row: int, names: list[str], last_row: int) -> None:
        """Freeze everything above the first data row and put a filter on the header."""
        self.ws.freeze_panes(header_row + 1, 0)
        self.ws.autofilter(header_row, 0, max(last_row, header_row), len(names) - 1)

    def finish(self) -> None:
        for col, width in sorted(self.widths.items()):
            self.ws.set_column(col, col, min(max(width, 8), COLUMN_WIDTH_MAX))


def write_xlsx(model: ReportModel, path: Path) -> Path:
    """Write `model` as an Excel workbook at `path`; returns `path`."""
    workbook = xlsxwriter.Workbook(str(path), {"in_memory": True})
    workbook.set_properties(
        {
            "title": f"payrecon reconciliation {model.business_date.isoformat()}",
            "author": "payrecon",
            "created": datetime.combine(model.business_date, time(0)),
        }
    )
    styles = {
        "text": workbook.add_format({}),
        "title": workbook.add_format({"bold": True, "font_size": 14}),
        "header": workbook.add_format({"bold": True, "bg_color": "#DDE4EE", "bottom": 1}),
        "amount": workbook.add_format({"align": "right"}),
        "amount_bold": workbook.add_format({"align": "right", "bold": True}),
        "int": workbook.add_format({"num_format": "0"}),
        "int_bold": workbook.add_format({"num_format": "0", "bold": True}),
        "date": workbook.add_format({}),
        "bad": workbook.add_format({"font_color": "#B00020", "bold": True}),
    }
    _summary(workbook, styles, model)
    for kind in [k.value for k in BreakKind] + [k for k in model.kinds if k not in BreakKind.__members__]:
        _kind_sheet(workbook, styles, model, kind)
    _aging(workbook, styles, model)
    if model.open_breaks is not None:
        _open_sheet(workbook, styles, model.open_breaks)
    if model.closed_breaks is not None:
        _closed_sheet(workbook, styles, model.closed_breaks)
    _quarantined(workbook, styles, model)
    if model.history is not None:
        _history(workbook, styles, model.history)
    workbook.close()
    return path


def _summary(workbook: Any, styles: dict[str, Any], model: ReportModel) -> None:
    s = _Sheet(workbook, "Summary", styles)
    s.cell(0, 0, f"Reconciliation, business date {model.business_date.isoformat()}", "title")
    names = ["channel", "rule", "currency"]
    names += [f"{side} {counter}" for side in SIDES for counter in COUNTERS]
    names += ["breaks", "quarantined files", "amount at risk", "amount at risk (minor units)", "counts add up"]
    s.header(2, names)
    row = 3
    for ch in model.channels:
        values: list[tuple[Any, str]] = [(ch.channel, "text"), (ch.rule, "text"), (ch.currency, "text")]
        values += [(ch.counters[side][counter], "int") for side in SIDES for counter in COUNTERS]
        values += [(ch.breaks, "int"), (len(ch.quarantined), "int")]
        values += [(amount_text(ch.amount_at_risk_minor, ch.currency), "amount"), (ch.amount_at_risk_minor, "int")]
        balanced = all(ch.balanced(side) for side in SIDES)
        values += [("yes" if balanced else "NO", "text" if balanced else "bad")]
        for col, (value, style) in enumerate(values):
            s.cell(row, col, value, style)
        row += 1
    s.table(2, names, row - 1)

    row += 1
    s.cell(row, 0, "Amount at risk by currency", "header")
    s.cell(row, 1, "amount", "header")
    s.cell(row, 2, "minor units", "header")
    for currency, amount in model.at_risk_by_currency.items():
        row += 1
        s.cell(row, 0, currency)
        s.cell(row, 1, amount_text(amount, currency), "amount_bold")
        s.cell(row, 2, amount, "int_bold")
    row += 2
    s.cell(row, 0, "Breaks by kind", "header")
    s.cell(row, 1, "count", "header")
    for kind in model.kinds:
        row += 1
        s.cell(row, 0, kind)
        s.cell(row, 1, model.breaks_by_kind.get(kind, 0), "int")
    row += 2
    s.cell(row, 0, "Carry-forward", "header")
    s.cell(row, 1, "count", "header")
    for key, value in [*model.carry_forward.items(), ("breaks_closed", model.breaks_closed)]:
        row += 1
        s.cell(row, 0, key.replace("_", " "))
        s.cell(row, 1, value, "int")
    if model.open_breaks is not None:
        row += 2
        s.cell(row, 0, "Open breaks, all days", "header")
        s.cell(row, 1, "count", "header")
        s.cell(row, 2, "amount at risk", "header")
        s.cell(row, 3, "minor units", "header")
        for currency, n, amount in open_by_currency(model.open_breaks):
            row += 1
            s.cell(row, 0, currency)
            s.cell(row, 1, n, "int")
            s.cell(row, 2, amount_text(amount, currency), "amount_bold")
            s.cell(row, 3, amount, "int_bold")
        earlier = model.open_from_earlier_days
        row += 1
        s.cell(row, 0, "of which reported on earlier days")
        s.cell(row, 1, 0 if earlier is None else earlier.height, "int")
    s.finish()


def _kind_sheet(workbook: Any, styles: dict[str, Any], model: ReportModel, kind: str) -> None:
    rows = model.breaks.filter(pl.col("kind") == kind)
    rows = rows.sort(["at_risk_minor", "age_days", "break_id"], descending=[True, True, False], nulls_last=True)
    more = "breaks of this kind ({n} in all) are in breaks.csv and breaks.parquet beside this workbook"
    _break_sheet(workbook, styles, kind[:31], rows, more, BREAK_COLUMNS)


def _open_sheet(workbook: Any, styles: dict[str, Any], open_breaks: pl.DataFrame) -> None:
    more = "open breaks ({n} in all) are in open_breaks.csv and open_breaks.parquet beside this workbook"
    columns = (*BREAK_COLUMNS[:1], ("kind", "kind", "text"), ("last reported", "business_date", "date"))
    _break_sheet(workbook, styles, "Open breaks", open_breaks, more, columns + BREAK_COLUMNS[1:])


def _closed_sheet(workbook: Any, styles: dict[str, Any], closed_breaks: pl.DataFrame) -> None:
    more = "closed breaks ({n} in all) are in closed_breaks.csv and closed_breaks.parquet beside this workbook"
    columns = (
        ("closed by", "closed_by", "text"),
        ("with", "closed_with", "text"),
        *BREAK_COLUMNS[:1],
        ("kind", "kind", "text"),
        ("last reported", "business_date", "date"),
    )
    _break_sheet(workbook, styles, "Closed", closed_breaks, more, columns + BREAK_COLUMNS[1:])


def _break_sheet(
    workbook: Any,
    styles: dict[str, Any],
    name: str,
    rows: pl.DataFrame,
    more: str,
    columns: tuple[tuple[str, str, str], ...],
) -> None:
    """A review list of `rows` (with at_risk_minor) in their order: the first SHEET_ROWS_MAX, then
    how many more there are (`more` formatted with n, the total) and where."""
    s = _Sheet(workbook, name, styles)
    names = [c[0] for c in columns]
    s.header(0, names)
    shown = rows.head(SHEET_ROWS_MAX)
    r = 0
    for r, record in enumerate(shown.iter_rows(named=True), start=1):
        for col, (_, source, how) in enumerate(columns):
            value = record[source]
            if how == "amount":
                s.cell(r, col, amount_text(value, record["currency"]), "amount")
            elif how == "int":
                s.cell(r, col, value, "int")
            else:
                s.cell(r, col, value, "date" if how == "date" else "text")
    s.table(0, names, r)
    if rows.height > shown.height:
        s.cell(
            r + 2,
            0,
            f"{rows.height - shown.height} more " + more.format(n=rows.height),
            "bad",
        )
    s.finish()


def _aging(workbook: Any, styles: dict[str, Any], model: ReportModel) -> None:
    s = _Sheet(workbook, "Aging", styles)
    labels = [b[0] for b in AGING_BUCKETS]
    names = ["channel", "currency"]
    names += [f"{label} days: count" for label in labels]
    names += [f"{label} days: amount" for label in labels]
    names += [f"{label} days: minor units" for label in labels]
    s.header(0, names)
    r = 0
    for r, row in enumerate(model.aging, start=1):
        values: list[tuple[Any, str]] = [(row.channel, "text"), (row.currency, "text")]
        values += [(n, "int") for n in row.counts]
        values += [(amount_text(a, row.currency), "amount") for a in row.amounts_minor]
        values += [(a, "int") for a in row.amounts_minor]
        for col, (value, style) in enumerate(values):
            s.cell(r, col, value, style)
    s.table(0, names, r)
    s.finish()


def _quarantined(workbook: Any, styles: dict[str, Any], model: ReportModel) -> None:
    s = _Sheet(workbook, "Quarantined", styles)
    names = ["channel", "file", "reason", "detail"]
    s.header(0, names)
    r = 0
    for r, q in enumerate(model.quarantined, start=1):
        for col, name in enumerate(names):
            s.cell(r, col, q[name])
    s.table(0, names, r)
    s.finish()


def _history(workbook: Any, styles: dict[str, Any], history: pl.DataFrame) -> None:
    s = _Sheet(workbook, "History", styles)
    names = ["business_date", "channel", "currency", "breaks", "amount at risk", "amount at risk (minor units)"]
    s.header(0, names)
    r = 0
    for r, row in enumerate(history.iter_rows(named=True), start=1):
        s.cell(r, 0, row["business_date"], "date")
        s.cell(r, 1, row["channel"])
        s.cell(r, 2, row["currency"])
        s.cell(r, 3, row["breaks"], "int")
        s.cell(r, 4, amount_text(row["amount_at_risk_minor"], row["currency"]), "amount")
        s.cell(r, 5, row["amount_at_risk_minor"], "int")
    s.table(0, names, r)
    s.finish()
