"""`report.html`: one self-contained page (inline CSS, inline SVG, no script, no network).

Charts are drawn here as SVG from the report model: breaks by kind and channel, amount at risk by
channel per currency, aging buckets, and the trend of earlier days when history is given. Pixel
sizes are computed with integer arithmetic (amounts are never turned into floats, not even to
draw them). Nothing depends on the clock or on dict order, so the same inputs give the same bytes.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

import polars as pl

from pipelines.report.model import AGING_BUCKETS, COUNTERS, SIDES, ReportModel, grouped, open_by_currency
from pipelines.report.model import amount_text as _plain_amount

# The breaks table shows this many rows; the rest are in breaks.csv and report.xlsx.
TABLE_ROWS_MAX = 500
BAR_WIDTH_MAX_PX = 560
PALETTE = ("#3366cc", "#dc3912", "#ff9900", "#109618", "#990099", "#0099c6", "#dd4477", "#66aa00", "#b82e2e", "#316395")

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#1d2733;max-width:1200px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7e2;padding-bottom:4px}
.sub{color:#5a6b7f;margin:0 0 16px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid #d0d7e2;border-radius:6px;padding:10px 14px;min-width:150px}
.card .v{font-size:20px;font-weight:600} .card .k{color:#5a6b7f;font-size:12px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border:1px solid #d0d7e2;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eef2f7} td.n{text-align:right;font-variant-numeric:tabular-nums} td.d{white-space:nowrap}
.bad{color:#b00020;font-weight:600} .note{color:#5a6b7f;font-size:12px}
svg text{font-family:inherit;font-size:12px}
"""


def amount_text(amount_minor: int | None, currency: str | None) -> str:
    """The exact amount text, grouped by thousands for reading on the page."""
    return grouped(_plain_amount(amount_minor, currency))


def _color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _legend(names: list[str], x: int, y: int) -> list[str]:
    parts = []
    for i, name in enumerate(names):
        xi = x + i * 130
        parts.append(f'<rect x="{xi}" y="{y}" width="12" height="12" fill="{_color(i)}"/>')
        parts.append(f'<text x="{xi + 16}" y="{y + 11}">{escape(name)}</text>')
    return parts


def breaks_chart(model: ReportModel) -> str:
    """Horizontal bars, one per break kind, stacked by channel (counts)."""
    channels = sorted({c for c, _ in model.breaks_by_channel_kind})
    kinds = [k for k in model.kinds if any(model.breaks_by_channel_kind.get((c, k), 0) for c in channels)]
    if not kinds:
        return '<p class="note">No breaks.</p>'
    totals = {k: sum(model.breaks_by_channel_kind.get((c, k), 0) for c in channels) for k in kinds}
    top = max(totals.values())
    left, row_h = 190, 24
    height = 30 + row_h * len(kinds) + 10
    parts = [
        f'<svg class="chart" id="chart-breaks" xmlns="http://www.w3.org/2000/svg" width="880" height="{height}" role="img" aria-label="breaks by kind and channel">'
    ]
    parts += _legend(channels, left, 4)
    for r, kind in enumerate(kinds):
        y = 30 + r * row_h
        parts.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{escape(kind)}</text>')
        x = left
        for i, channel in enumerate(channels):
            n = model.breaks_by_channel_kind.get((channel, kind), 0)
            if not n:
                continue
            w = max(1, n * BAR_WIDTH_MAX_PX // top)
            parts.append(
                f'<rect x="{x}" y="{y + 3}" width="{w}" height="{row_h - 6}" fill="{_color(i)}">'
                f"<title>{escape(channel)} {escape(kind)}: {n}</title></rect>"
            )
            x += w
        parts.append(f'<text x="{x + 6}" y="{y + 15}">{totals[kind]}</text>')
    parts.append("</svg>")
    return "".join(parts)


def at_risk_chart(model: ReportModel) -> str:
    """Per currency, one bar per channel: the amount at risk, scaled within the currency (amounts
    in different currencies are never drawn against one another)."""
    by_currency: dict[str, list[tuple[str, int]]] = {}
    for ch in model.channels:
        by_currency.setdefault(ch.currency, []).append((ch.channel, ch.amount_at_risk_minor))
    rows = [(cur, ch, amt) for cur in sorted(by_currency) for ch, amt in sorted(by_currency[cur])]
    if not rows:
        return '<p class="note">No channels.</p>'
    left, row_h = 190, 24
    height = 10 + row_h * len(rows)
    channel_index = {c.channel: i for i, c in enumerate(model.channels)}
    parts = [
        f'<svg class="chart" id="chart-at-risk" xmlns="http://www.w3.org/2000/svg" width="880" height="{height}" role="img" aria-label="amount at risk by channel and currency">'
    ]
    for r, (currency, channel, amount) in enumerate(rows):
        top = max(a for _, a in by_currency[currency]) or 1
        y = 5 + r * row_h
        w = abs(amount) * BAR_WIDTH_MAX_PX // abs(top) if amount else 0
        label = f"{amount_text(amount, currency)} {currency}"
        parts.append(
            f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{escape(channel)} ({escape(currency)})</text>'
        )
        parts.append(
            f'<rect x="{left}" y="{y + 3}" width="{w}" height="{row_h - 6}" fill="{_color(channel_index[channel])}"/>'
        )
        parts.append(f'<text x="{left + w + 6}" y="{y + 15}">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def aging_chart(model: ReportModel) -> str:
    """Vertical bars, one per aging bucket, stacked by channel (counts of breaks)."""
    channels = sorted({row.channel for row in model.aging})
    if not channels:
        return '<p class="note">No open breaks to age.</p>'
    counts = {
        (channel, b): sum(row.counts[b] for row in model.aging if row.channel == channel)
        for channel in channels
        for b in range(len(AGING_BUCKETS))
    }
    totals = [sum(counts[(c, b)] for c in channels) for b in range(len(AGING_BUCKETS))]
    top = max(totals) or 1
    base, bar_h_max, col_w = 230, 180, 110
    parts = [
        '<svg class="chart" id="chart-aging" xmlns="http://www.w3.org/2000/svg" width="880" height="270" role="img" aria-label="aging buckets">'
    ]
    parts += _legend(channels, 60, 4)
    for b, (label, _, _) in enumerate(AGING_BUCKETS):
        x = 60 + b * col_w
        y = base
        for i, channel in enumerate(channels):
            n = counts[(channel, b)]
            if not n:
                continue
            h = max(1, n * bar_h_max // top)
            y -= h
            parts.append(
                f'<rect x="{x}" y="{y}" width="{col_w - 30}" height="{h}" fill="{_color(i)}">'
                f"<title>{escape(channel)} {escape(label)} days: {n}</title></rect>"
            )
        parts.append(f'<text x="{x + (col_w - 30) // 2}" y="{y - 4}" text-anchor="middle">{totals[b]}</text>')
        parts.append(
            f'<text x="{x + (col_w - 30) // 2}" y="{base + 18}" text-anchor="middle">{escape(label)} days</text>'
        )
    parts.append(f'<line x1="50" y1="{base}" x2="{60 + len(AGING_BUCKETS) * col_w}" y2="{base}" stroke="#5a6b7f"/>')
    parts.append("</svg>")
    return "".join(parts)


def history_chart(history: pl.DataFrame) -> str:
    """Breaks per channel over the earlier business days (a line per channel)."""
    if history.height == 0:
        return '<p class="note">No history.</p>'
    per = history.group_by("business_date", "channel").agg(pl.col("breaks").sum()).sort("business_date", "channel")
    dates = sorted(set(per["business_date"].to_list()))
    channels = sorted(set(per["channel"].to_list()))
    top = max(max(per["breaks"].to_list(), default=0), 1)
    left, width, base, h = 60, 760, 200, 170
    step = width // max(len(dates) - 1, 1)
    parts = [
        '<svg class="chart" id="chart-history" xmlns="http://www.w3.org/2000/svg" width="880" height="250" role="img" aria-label="breaks over time">'
    ]
    parts += _legend(channels, left, 4)
    values = {(d, c): int(n) for d, c, n in per.iter_rows()}
    for i, channel in enumerate(channels):
        points = " ".join(
            f"{left + j * step},{base - values.get((d, channel), 0) * h // top}" for j, d in enumerate(dates)
        )
        parts.append(f'<polyline fill="none" stroke="{_color(i)}" stroke-width="2" points="{points}"/>')
    for j, d in enumerate(dates):
        if len(dates) <= 10 or j % (len(dates) // 10 + 1) == 0:
            parts.append(f'<text x="{left + j * step}" y="{base + 18}" text-anchor="middle">{d.isoformat()}</text>')
    parts.append(f'<text x="{left - 6}" y="{base - h + 4}" text-anchor="end">{top}</text>')
    parts.append(f'<text x="{left - 6}" y="{base + 4}" text-anchor="end">0</text>')
    parts.append(f'<line x1="{left}" y1="{base}" x2="{left + width}" y2="{base}" stroke="#5a6b7f"/>')
    parts.append("</svg>")
    return "".join(parts)


def _table(headers: list[str], rows: list[list[tuple[str, str]]]) -> str:
    """A table; each cell is (text, css class). Text is escaped here."""
    out = ["<table><thead><tr>", *(f"<th>{escape(h)}</th>" for h in headers), "</tr></thead><tbody>"]
    for row in rows:
        out.append("<tr>")
        out += [f'<td class="{cls}">{escape(text)}</td>' if cls else f"<td>{escape(text)}</td>" for text, cls in row]
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def render(model: ReportModel) -> str:
    """The whole page as text."""
    day = model.business_date.isoformat()
    total_breaks = sum(model.breaks_by_kind.values())
    quarantined = model.quarantined
    cards = [(str(total_breaks), "breaks")]
    cards += [(f"{amount_text(a, c)} {c}", "amount at risk") for c, a in model.at_risk_by_currency.items()]
    cards += [
        (str(len(quarantined)), "quarantined files"),
        (str(model.carry_forward["pending_out"]), "pending, carried forward"),
        (str(model.breaks_closed), f"breaks closed ({model.carry_forward['breaks_matched_late']} matched late)"),
    ]
    earlier = model.open_from_earlier_days
    if model.open_breaks is not None and earlier is not None:
        cards.append((str(model.open_breaks.height), f"open breaks, all days ({earlier.height} from earlier days)"))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>payrecon reconciliation {day}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>Reconciliation report, business date {day}</h1>",
        '<p class="sub">Rules: '
        + escape(", ".join(f"{c.channel} {c.rule}" for c in model.channels if c.rule) or "none")
        + "</p>",
        '<div class="cards">',
        *(
            f'<div class="card"><div class="v">{escape(v)}</div><div class="k">{escape(k)}</div></div>'
            for v, k in cards
        ),
        "</div>",
        "<h2>Channels</h2>",
        _channels_table(model),
        "<h2>Breaks by kind and channel</h2>",
        breaks_chart(model),
        "<h2>Amount at risk by channel and currency</h2>",
        at_risk_chart(model),
        "<h2>Aging of open breaks</h2>",
        aging_chart(model),
        _aging_table(model),
    ]
    if model.open_breaks is not None:
        parts += ["<h2>Open from earlier days</h2>", _open_table(model)]
    if model.closed_breaks is not None:
        parts += ["<h2>Closed on this day</h2>", _closed_table(model.closed_breaks)]
    if model.history is not None:
        parts += ["<h2>Earlier days</h2>", history_chart(model.history)]
    parts += ["<h2>Quarantined files</h2>", _quarantined_table(model)]
    parts += ["<h2>Carry-forward</h2>", _carry_table(model)]
    parts += ["<h2>Breaks of the day</h2>", _breaks_table(model)]
    parts += [
        '<p class="note">Data quality: the Great Expectations Data Docs of this day are in '
        '<a href="data_docs/index.html">data_docs/index.html</a> beside this report.</p>',
        "</body></html>",
        "",
    ]
    return "\n".join(parts)


def _channels_table(model: ReportModel) -> str:
    headers = ["channel", "currency"] + [f"{s} {c}" for s in SIDES for c in COUNTERS]
    headers += ["breaks", "quarantined", "amount at risk", "counts add up"]
    rows = []
    for ch in model.channels:
        row = [(ch.channel, ""), (ch.currency, "")]
        row += [(str(ch.counters[s][c]), "n") for s in SIDES for c in COUNTERS]
        balanced = all(ch.balanced(s) for s in SIDES)
        row += [
            (str(ch.breaks), "n"),
            (str(len(ch.quarantined)), "n"),
            (amount_text(ch.amount_at_risk_minor, ch.currency), "n"),
            ("yes" if balanced else "NO", "" if balanced else "bad"),
        ]
        rows.append(row)
    return _table(headers, rows)


def _aging_table(model: ReportModel) -> str:
    labels = [b[0] for b in AGING_BUCKETS]
    headers = ["channel", "currency"] + [f"{label} days" for label in labels]
    rows = []
    for r in model.aging:
        cells = [(r.channel, ""), (r.currency, "")]
        cells += [(f"{n} / {amount_text(a, r.currency)}", "n") for n, a in zip(r.counts, r.amounts_minor, strict=True)]
        rows.append(cells)
    if not rows:
        return ""
    scope = (
        "the day's breaks"
        if model.open_breaks is None
        else "every break still open on this day, earlier days' included"
    )
    return _table(headers, rows) + f'<p class="note">Each cell: number of breaks / amount at risk; of {scope}.</p>'


def _open_table(model: ReportModel) -> str:
    """The open breaks reported on earlier days: oldest first, then by currency, the largest amount
    at risk first (amounts of different currencies are not compared)."""
    earlier = model.open_from_earlier_days
    assert model.open_breaks is not None and earlier is not None

    totals = "; ".join(
        f"{n} open in {cur}, {amount_text(a, cur)} at risk" for cur, n, a in open_by_currency(model.open_breaks)
    )
    if not earlier.height:
        return f'<p class="note">None. All days: {escape(totals or "no open break")}.</p>'
    shown = earlier.head(TABLE_ROWS_MAX)
    headers = ["kind", "channel", "payment_id", "channel_txn_id", "at risk", "currency"]
    headers += ["first seen", "age", "last reported", "status", "action", "break_id"]
    rows = [
        [
            (b["kind"], ""),
            (b["channel"], ""),
            (b["payment_id"] or "", ""),
            (b["channel_txn_id"] or "", ""),
            (amount_text(b["at_risk_minor"], b["currency"]), "n"),
            (b["currency"] or "", ""),
            (b["first_seen_date"].isoformat(), "d"),
            (str(b["age_days"]), "n"),
            (b["business_date"].isoformat(), "d"),
            (b["status"], ""),
            (b["action"] or "", ""),
            (b["break_id"], ""),
        ]
        for b in shown.iter_rows(named=True)
    ]
    note = (
        f"{earlier.height} breaks reported on earlier days are still open"
        + (f"; the {shown.height} oldest shown" if earlier.height > shown.height else "")
        + f". All days: {totals}. Every open break is in open_breaks.csv and the Open breaks sheet of report.xlsx."
    )
    return f'<p class="note">{escape(note)}</p>' + _table(headers, rows)


CLOSED_BY_TEXT = {
    "late_line": "answered by a late line",
    "late_record": "answered by a late record of ours",
    "moved": "closed by hand",
    "no_longer_reported": "no longer reported by a rerun of their day",
}


def _closed_table(closed: pl.DataFrame) -> str:
    """The breaks closed on the day and how, by currency, the largest amount that was at risk first."""
    if not closed.height:
        return '<p class="note">No break was closed on this day.</p>'
    counts = dict(closed.group_by("closed_by").len().sort("closed_by").iter_rows())
    how = ", ".join(f"{counts[k]} {text}" for k, text in CLOSED_BY_TEXT.items() if k in counts)
    shown = closed.head(TABLE_ROWS_MAX)
    headers = ["closed by", "with", "kind", "channel", "payment_id", "channel_txn_id", "was at risk", "currency"]
    headers += ["first seen", "age", "last reported", "break_id"]
    rows = [
        [
            (b["closed_by"].replace("_", " "), ""),
            (b["closed_with"] or "", ""),
            (b["kind"], ""),
            (b["channel"], ""),
            (b["payment_id"] or "", ""),
            (b["channel_txn_id"] or "", ""),
            (amount_text(b["at_risk_minor"], b["currency"]), "n"),
            (b["currency"] or "", ""),
            (b["first_seen_date"].isoformat(), "d"),
            (str(b["age_days"]), "n"),
            (b["business_date"].isoformat(), "d"),
            (b["break_id"], ""),
        ]
        for b in shown.iter_rows(named=True)
    ]
    note = (
        f"{closed.height} breaks closed on this day: {how}"
        + (f"; the {shown.height} largest shown" if closed.height > shown.height else "")
        + ". Every one is in closed_breaks.csv and the Closed sheet of report.xlsx."
    )
    return f'<p class="note">{escape(note)}</p>' + _table(headers, rows)


def _quarantined_table(model: ReportModel) -> str:
    rows = [[(q["channel"], ""), (q["file"], ""), (q["reason"], "bad"), (q["detail"], "")] for q in model.quarantined]
    if not rows:
        return '<p class="note">No file was quarantined.</p>'
    return _table(["channel", "file", "reason", "detail"], rows)


def _carry_table(model: ReportModel) -> str:
    rows = [[(k.replace("_", " "), ""), (str(v), "n")] for k, v in model.carry_forward.items()]
    rows.append([("breaks closed", ""), (str(model.breaks_closed), "n")])
    return _table(["figure", "count"], rows)


def _breaks_table(model: ReportModel) -> str:
    total = model.breaks.height
    shown = model.breaks.head(TABLE_ROWS_MAX)
    headers = [
        "kind",
        "channel",
        "payment_id",
        "channel_txn_id",
        "ours",
        "channel's",
        "delta",
        "currency",
        "age",
        "action",
        "break_id",
    ]
    rows = []
    for b in shown.iter_rows(named=True):
        cur = b["currency"]
        rows.append(
            [
                (b["kind"], ""),
                (b["channel"], ""),
                (b["payment_id"] or "", ""),
                (b["channel_txn_id"] or "", ""),
                (amount_text(b["internal_amount_minor"], cur), "n"),
                (amount_text(b["channel_amount_minor"], cur), "n"),
                (amount_text(b["delta_minor"], cur), "n"),
                (cur or "", ""),
                (str(b["age_days"]), "n"),
                (b["action"] or "", ""),
                (b["break_id"], ""),
            ]
        )
    if not rows:
        return '<p class="note">No breaks.</p>'
    note = (
        f'<p class="note">Showing the first {shown.height} of {total} breaks (by channel, kind, oldest first); '
        "all of them are in breaks.csv and report.xlsx.</p>"
        if total > shown.height
        else f'<p class="note">All {total} breaks.</p>'
    )
    return note + _table(headers, rows)


def write_html(model: ReportModel, path: Path) -> Path:
    """Write the page for `model` at `path` (UTF-8, LF line ends); returns `path`."""
    path.write_bytes(render(model).encode("utf-8"))
    return path
