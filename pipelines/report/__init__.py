"""Reports finance can read: `report.xlsx` and `report.html` for one business day.

`write_reports(day_dir, business_date=..., breaks=..., summary=..., history=None)` writes both
beside the day's breaks.csv and summary.json and returns their paths. `breaks` has the columns of
`pipelines.records.BREAKS_CSV_COLUMNS` (amounts Int64 minor units, dates Date); `summary` is the
summary.json dict agreed with the T+1 engine:

    {"business_date": "YYYY-MM-DD", "rules": {"<channel>": "<rule_id>@<version>"},
     "channels": {"<channel>": {"currency": "CNY",
         "internal": {"rows_in": n, "matched": n, "pending": n, "breaks": n, "rejected": n},
         "channel":  {"rows_in": n, "matched": n, "pending": n, "breaks": n, "rejected": n},
         "breaks_by_kind": {"KIND": n}, "amount_at_risk_minor": n,
         "quarantined": [{"file": "...", "reason": "...", "detail": "..."}]}},
     "breaks_by_kind": {"KIND": n}, "amount_at_risk_minor_by_currency": {"CNY": n},
     "carry_forward": {"pending_in": n, "matched_from_previous": n, "expired_to_breaks": n,
                       "pending_out": n, "breaks_matched_late": n},
     "breaks_closed": n,
     "open_breaks": {"count": n, "from_earlier_days": n, "amount_at_risk_minor_by_currency": {"CNY": n}}}

`open_breaks` (optional; BREAKS_SCHEMA, age_days counted to the business date) is every break
still open on the day, earlier days' included: the aging and the Open breaks sheet are of it.
`closed_breaks` (optional; CLOSED_BREAKS_SCHEMA: BREAKS_SCHEMA plus closed_by and closed_with) is
every break closed on the day and how: the Closed sheet and the page's "Closed on this day".

`history` (optional) is the breaks as reported on each day up to this one (the warehouse's
break_history: BREAKS_SCHEMA, `business_date` the reporting day); the report charts and lists it
per day, channel and currency. The same inputs give byte-identical files.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.files import write_replacing
from pipelines.report.html import write_html
from pipelines.report.model import BREAKS_SCHEMA, HISTORY_SCHEMA, ReportInputError, build
from pipelines.report.xlsx import write_xlsx

__all__ = ["BREAKS_SCHEMA", "HISTORY_SCHEMA", "ReportInputError", "write_reports"]


def write_reports(
    day_dir: Path,
    *,
    business_date: date,
    breaks: pl.DataFrame,
    summary: dict[str, Any],
    history: pl.DataFrame | None = None,
    open_breaks: pl.DataFrame | None = None,
    closed_breaks: pl.DataFrame | None = None,
) -> list[Path]:
    """Write `day_dir/report.xlsx` and `day_dir/report.html`; returns [xlsx path, html path].
    Raises ReportInputError when `breaks`, `summary` or `history` do not have the agreed shape."""
    day_dir = Path(day_dir)
    day_dir.mkdir(parents=True, exist_ok=True)
    model = build(
        business_date=business_date,
        breaks=breaks,
        summary=summary,
        history=history,
        open_breaks=open_breaks,
        closed_breaks=closed_breaks,
    )
    # Written beside the target and renamed over it, so a crash never leaves half a report and a
    # rerun simply replaces the file.
    return [
        write_replacing(day_dir / "report.xlsx", lambda p: write_xlsx(model, p)),
        write_replacing(day_dir / "report.html", lambda p: write_html(model, p)),
    ]
