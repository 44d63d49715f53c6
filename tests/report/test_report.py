"""The finance reports: sheet layout, exact amount texts, aging buckets, a self-contained HTML page
with its charts, and byte-identical output for the same inputs."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from report_fixtures import CHANNELS, DAY, breaks_frame, history_frame, open_frame, summary_for
from report_xlsx_reader import Workbook

from pipelines.frames import CLOSED_BREAKS_SCHEMA
from pipelines.records import BreakKind
from pipelines.report import ReportInputError, write_reports
from pipelines.report.model import (
    AGING_BUCKETS,
    amount_text,
    bucket_expr,
    bucket_of,
    build,
    grouped,
    with_amount_at_risk,
)


def _write(tmp: Path, **overrides: object) -> tuple[Path, Path]:
    breaks = breaks_frame()
    kwargs: dict[str, object] = {
        "business_date": DAY,
        "breaks": breaks,
        "summary": summary_for(breaks),
        "history": history_frame(),
    }
    kwargs.update(overrides)
    xlsx, html = write_reports(tmp, **kwargs)  # type: ignore[arg-type]
    return xlsx, html


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (1234, "CNY", "12.34"),
        (500, "JPY", "500"),
        (1234, "KWD", "1.234"),
        (5, "USD", "0.05"),
        (-5, "USD", "-0.05"),
        (-1234, "KWD", "-1.234"),
        (0, "JPY", "0"),
        (None, "CNY", ""),
        (2**63 - 1, "CNY", "92233720368547758.07"),
    ],
)
def test_amount_text_is_exact_in_the_currency_digits(minor: int | None, currency: str, text: str) -> None:
    assert amount_text(minor, currency) == text


def test_amount_text_of_an_unknown_currency_shows_minor_units_not_a_guess() -> None:
    assert amount_text(1234, "XYZ") == "1234 (minor units, XYZ)"


@given(st.integers(min_value=0, max_value=10_000))
def test_bucket_expression_agrees_with_bucket_of(age: int) -> None:
    got = pl.DataFrame({"age_days": [age]}, schema={"age_days": pl.Int64}).select(bucket_expr()).item()
    assert got == bucket_of(age)
    label, low, high = AGING_BUCKETS[got]
    assert low <= age and (high is None or age <= high), label


def test_bucket_edges() -> None:
    assert [bucket_of(a) for a in (0, 1, 2, 3, 4, 7, 8, 30, 31, 400)] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    # The labels finance reads say the bounds the code uses (the 0-1, 2-3, 4-7, 8-30, over 30).
    assert [label for label, _, _ in AGING_BUCKETS] == ["0-1", "2-3", "4-7", "8-30", "over 30"]
    assert all(
        label == (f"{low}-{high}" if high is not None else f"over {low - 1}") for label, low, high in AGING_BUCKETS
    )


def test_workbook_has_summary_one_sheet_per_kind_and_aging(tmp_path: Path) -> None:
    xlsx, _ = _write(tmp_path)
    wb = Workbook(xlsx)
    assert wb.names == ["Summary", *[k.value for k in BreakKind], "Aging", "Quarantined", "History"]
    for name in wb.names:
        header_row = 2 if name == "Summary" else 0
        assert wb.frozen_rows(name) == header_row + 1, name
        assert wb.has_autofilter(name), name


def test_summary_sheet_amounts_are_exact_text_beside_integer_minor_units(tmp_path: Path) -> None:
    xlsx, _ = _write(tmp_path)
    rows = Workbook(xlsx).rows("Summary")
    assert rows[0][0] == "Reconciliation, business date 2026-11-02"
    header = rows[2]
    by_channel = {r[0]: dict(zip(header, r, strict=False)) for r in rows[3 : 3 + len(CHANNELS)]}
    summary = summary_for(breaks_frame())
    for channel, currency in CHANNELS.items():
        row = by_channel[channel]
        minor = summary["channels"][channel]["amount_at_risk_minor"]
        assert row["currency"] == currency
        assert row["amount at risk (minor units)"] == minor
        assert row["amount at risk"] == amount_text(minor, currency)
        assert row["internal rows_in"] == 1000 and row["channel rejected"] == 10
        assert row["breaks"] == len(BreakKind)
        assert row["counts add up"] == "yes"
    assert by_channel["stripe"]["quarantined files"] == 1
    # The per-currency block: JPY has no decimals, KWD three.
    flat = [r for r in rows if r and r[0] in ("CNY", "JPY", "KWD", "USD")]
    texts = {r[0]: r[1] for r in flat}
    assert texts["JPY"] == str(summary["amount_at_risk_minor_by_currency"]["JPY"])
    assert re.fullmatch(r"\d+\.\d{3}", str(texts["KWD"]))
    assert re.fullmatch(r"\d+\.\d{2}", str(texts["CNY"]))


def test_kind_sheets_hold_that_kinds_breaks_with_exact_amounts(tmp_path: Path) -> None:
    xlsx, _ = _write(tmp_path)
    wb = Workbook(xlsx)
    rows = wb.rows("AMOUNT_MISMATCH")
    header = rows[0]
    records = [dict(zip(header, r, strict=False)) for r in rows[1:]]
    assert sorted(r["channel"] for r in records) == sorted(CHANNELS)
    by_channel = {r["channel"]: r for r in records}
    # CNY 10000 -> 11234: 100.00 ours, 112.34 theirs, delta 12.34.
    assert (by_channel["alipay"]["internal_amount"], by_channel["alipay"]["channel_amount"]) == ("100.00", "112.34")
    assert by_channel["alipay"]["delta"] == "12.34" and by_channel["alipay"]["delta_minor"] == 1234
    assert by_channel["jpbank"]["delta"] == "500" and by_channel["jpbank"]["delta_minor"] == 500
    assert by_channel["kwbank"]["delta"] == "1.234" and by_channel["kwbank"]["delta_minor"] == 1234
    assert by_channel["stripe"]["delta"] == "-10.00"
    # A missing side stays empty, never 0.
    missing = {r[1]: r for r in wb.rows("MISSING_INTERNAL")[1:]}
    assert missing["alipay"][header.index("internal_amount")] is None
    assert missing["alipay"][header.index("at_risk")] == "112.34"


def test_aging_sheet_counts_and_amounts_per_bucket(tmp_path: Path) -> None:
    xlsx, _ = _write(tmp_path)
    rows = Workbook(xlsx).rows("Aging")
    header = rows[0]
    records = {(r[0], r[1]): dict(zip(header, r, strict=False)) for r in rows[1:]}
    assert set(records) == {(c, cur) for c, cur in CHANNELS.items()}
    # Ages 0,1 | 2,3 | 4,7,5 | 8,30 | 31,40 (see the fixture), the same on every channel.
    jp = records[("jpbank", "JPY")]
    assert [jp[f"{b[0]} days: count"] for b in AGING_BUCKETS] == [2, 2, 3, 2, 2]
    breaks = breaks_frame().filter(pl.col("channel") == "jpbank")
    expected_over_30 = 0
    for d, c, i, age in breaks.select(
        "delta_minor", "channel_amount_minor", "internal_amount_minor", "age_days"
    ).iter_rows():
        if age > 30:
            expected_over_30 += abs(d if d is not None else c if c is not None else i)
    assert jp["over 30 days: minor units"] == expected_over_30
    assert jp["over 30 days: amount"] == str(expected_over_30)
    kw = records[("kwbank", "KWD")]
    assert re.fullmatch(r"\d+\.\d{3}", str(kw["0-1 days: amount"]))


def test_html_is_self_contained_with_the_charts(tmp_path: Path) -> None:
    _, html = _write(tmp_path)
    text = html.read_text(encoding="utf-8")
    for chart in ("chart-breaks", "chart-at-risk", "chart-aging", "chart-history"):
        assert f'id="{chart}"' in text, chart
    assert text.count("<svg") == 4
    # No script, no fetched resource: it opens from disk with no server and no network.
    assert "<script" not in text.lower()
    assert not re.search(r"""(src|href)=["']https?:""", text)
    assert "@import" not in text
    # Amounts appear as text in the currency's digits.
    assert ">12.34<" in text and ">1.234<" in text and ">500<" in text
    assert "control_total_mismatch" in text and "stripe_2026-11-02.csv" in text
    assert "All 44 breaks." in text


def test_html_and_xlsx_are_byte_identical_across_two_calls(tmp_path: Path) -> None:
    a_xlsx, a_html = _write(tmp_path / "a")
    b_xlsx, b_html = _write(tmp_path / "b")
    assert a_html.read_bytes() == b_html.read_bytes()
    assert a_xlsx.read_bytes() == b_xlsx.read_bytes()
    # And a rerun into the same folder replaces, leaving no temporary files behind.
    _write(tmp_path / "a")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["report.html", "report.xlsx"]
    assert a_html.read_bytes() == b_html.read_bytes()


def test_input_order_does_not_change_the_bytes(tmp_path: Path) -> None:
    breaks = breaks_frame()
    summary = summary_for(breaks)
    shuffled = breaks.sample(fraction=1.0, shuffle=True, seed=3)
    reordered = {**summary, "channels": dict(reversed(list(summary["channels"].items())))}
    a = write_reports(tmp_path / "a", business_date=DAY, breaks=breaks, summary=summary)
    b = write_reports(tmp_path / "b", business_date=DAY, breaks=shuffled, summary=reordered)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]


def test_the_breaks_table_is_cut_with_a_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pipelines.report.html as html_mod

    monkeypatch.setattr(html_mod, "TABLE_ROWS_MAX", 10)
    _, html = _write(tmp_path)
    text = html.read_text(encoding="utf-8")
    assert "Showing the first 10 of 44 breaks" in text


def test_a_kind_sheet_is_capped_with_a_note_and_the_summary_stays_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipelines.report.xlsx as xlsx_mod

    monkeypatch.setattr(xlsx_mod, "SHEET_ROWS_MAX", 2)
    xlsx, _ = _write(tmp_path)
    wb = Workbook(xlsx)
    rows = wb.rows("AMOUNT_MISMATCH")
    total = breaks_frame().filter(pl.col("kind") == "AMOUNT_MISMATCH").height
    assert total > 2
    listed = [r for r in rows[1:] if r and r[0] and str(r[0]).startswith("brk_")]
    assert len(listed) == 2
    # The largest breaks by amount at risk are the ones listed, largest first.
    largest = (
        with_amount_at_risk(breaks_frame().filter(pl.col("kind") == "AMOUNT_MISMATCH"))
        .sort("at_risk_minor", descending=True)["at_risk_minor"]
        .head(2)
        .to_list()
    )
    at_risk_col = rows[0].index("at_risk_minor")
    assert [int(r[at_risk_col]) for r in listed] == largest
    assert any(r and str(r[0]).startswith(f"{total - 2} more breaks of this kind ({total} in all)") for r in rows)
    # The summary still counts every break of the kind.
    summary = wb.rows("Summary")
    assert any(r and r[0] == "AMOUNT_MISMATCH" and total in r for r in summary), summary


def test_an_empty_day_still_renders(tmp_path: Path) -> None:
    empty = breaks_frame().head(0)
    summary = summary_for(empty)
    xlsx, html = write_reports(tmp_path, business_date=DAY, breaks=empty, summary=summary)
    assert "No breaks." in html.read_text(encoding="utf-8")
    assert Workbook(xlsx).rows("AMBIGUOUS")[0][0] == "break_id"


def test_float_amounts_are_refused_with_the_column_named(tmp_path: Path) -> None:
    breaks = breaks_frame().with_columns(pl.col("delta_minor").cast(pl.Float64))
    with pytest.raises(ReportInputError, match="delta_minor"):
        write_reports(tmp_path, business_date=DAY, breaks=breaks, summary=summary_for(breaks_frame()))
    assert not (tmp_path / "report.xlsx").exists()


def test_a_summary_of_another_day_is_refused(tmp_path: Path) -> None:
    summary = {**summary_for(breaks_frame()), "business_date": "2026-11-03"}
    with pytest.raises(ReportInputError, match="2026-11-03"):
        write_reports(tmp_path, business_date=DAY, breaks=breaks_frame(), summary=summary)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("0.05", "0.05"),
        ("999", "999"),
        ("1000", "1,000"),
        ("-1234567.89", "-1,234,567.89"),
        ("12345.678", "12,345.678"),
        ("", ""),
    ],
)
def test_grouped_inserts_thousands_separators_without_touching_digits(text: str, shown: str) -> None:
    assert grouped(text) == shown


@given(st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1), st.sampled_from(["JPY", "CNY", "KWD"]))
def test_grouped_text_reads_back_to_the_same_minor_units(minor: int, currency: str) -> None:
    from pipelines.money import parse_amount

    shown = grouped(amount_text(minor, currency))
    assert parse_amount(shown, currency, allow_thousands=True) == minor


def test_html_amounts_are_grouped(tmp_path: Path) -> None:
    _, html = _write(tmp_path)
    text = html.read_text(encoding="utf-8")
    jpy = summary_for(breaks_frame())["amount_at_risk_minor_by_currency"]["JPY"]
    assert f"{jpy:,} JPY" in text


def test_with_the_open_breaks_the_aging_is_of_them_and_they_get_a_sheet(tmp_path: Path) -> None:
    open_breaks = open_frame()
    earlier = open_breaks.filter(pl.col("business_date") < DAY)
    assert earlier.height == breaks_frame().filter(pl.col("channel") == "stripe").height > 0
    xlsx, html = _write(tmp_path, open_breaks=open_breaks)
    wb = Workbook(xlsx)
    assert "Open breaks" in wb.names
    sheet = wb.rows("Open breaks")
    header = sheet[0]
    assert len(sheet) - 1 == open_breaks.height
    assert {r[header.index("break_id")] for r in sheet[1:]} == set(open_breaks["break_id"])
    last = {r[header.index("break_id")]: r[header.index("last reported")] for r in sheet[1:]}
    assert all(str(last[b]).startswith((DAY - timedelta(days=3)).isoformat()) for b in earlier["break_id"])
    # The aging counts every open break: stripe's buckets hold the day's breaks and the earlier ones.
    rows = wb.rows("Aging")
    records = {(r[0], r[1]): dict(zip(rows[0], r, strict=False)) for r in rows[1:]}
    stripe = records[("stripe", "USD")]
    ages = open_breaks.filter(pl.col("channel") == "stripe")["age_days"].to_list()
    assert [stripe[f"{b[0]} days: count"] for b in AGING_BUCKETS] == [
        sum(1 for a in ages if bucket_of(a) == i) for i in range(len(AGING_BUCKETS))
    ]
    jp = records[("jpbank", "JPY")]
    assert [jp[f"{b[0]} days: count"] for b in AGING_BUCKETS] == [2, 2, 3, 2, 2]
    text = html.read_text(encoding="utf-8")
    assert "Open from earlier days" in text
    assert f"{earlier.height} breaks reported on earlier days are still open" in text
    assert f"({earlier.height} from earlier days)" in text
    # Without the open breaks (no warehouse), the aging is of the day's breaks and no sheet is added.
    xlsx2, html2 = _write(tmp_path / "without")
    assert "Open breaks" not in Workbook(xlsx2).names
    assert "Open from earlier days" not in html2.read_text(encoding="utf-8")


def test_the_breaks_closed_on_the_day_get_a_sheet_and_a_section_saying_how(tmp_path: Path) -> None:
    how = ["late_line", "late_record", "moved", "no_longer_reported"]
    closed = (
        breaks_frame()
        .head(8)
        .with_columns(
            pl.lit("CLOSED").alias("status"),
            pl.Series("closed_by", [how[i % 4] for i in range(8)]),
            pl.Series("closed_with", [None if i % 4 == 3 else f"x{i}" for i in range(8)]),
        )
    )
    xlsx, html = _write(tmp_path, closed_breaks=closed)
    sheet = Workbook(xlsx).rows("Closed")
    header = sheet[0]
    assert header[:2] == ["closed by", "with"]
    assert len(sheet) - 1 == closed.height
    got = {(r[header.index("break_id")], r[0], r[1]) for r in sheet[1:]}
    assert got == set(closed.select("break_id", "closed_by", "closed_with").rows())
    text = html.read_text(encoding="utf-8")
    assert "Closed on this day" in text
    assert (
        "8 breaks closed on this day: 2 answered by a late line, 2 answered by a late record of ours, "
        "2 closed by hand, 2 no longer reported by a rerun of their day." in text
    )
    # A frame without how it closed is refused with the missing column named.
    with pytest.raises(ReportInputError, match="closed_by"):
        _write(tmp_path / "bad", closed_breaks=closed.drop("closed_by"))
    assert "Closed on this day" not in _write(tmp_path / "without")[1].read_text(encoding="utf-8")


def test_open_breaks_reported_after_the_day_are_refused(tmp_path: Path) -> None:
    later = open_frame().with_columns(pl.lit(DAY + timedelta(days=1)).alias("business_date"))
    with pytest.raises(ReportInputError, match="reported after"):
        _write(tmp_path, open_breaks=later)


def test_a_history_summarised_beforehand_gives_the_same_bytes(tmp_path: Path) -> None:
    """The warehouse sums the history in DuckDB (`Warehouse.history_summary`); the report reads
    that as it reads the break rows."""
    rows = history_frame()
    summed = (
        with_amount_at_risk(rows)
        .group_by("business_date", "channel", "currency")
        .agg(
            pl.len().cast(pl.Int64).alias("breaks"),
            pl.col("at_risk_minor").cast(pl.Int128).sum().alias("amount_at_risk_minor"),
        )
        .sort("currency", descending=True)  # any order
    )
    a = _write(tmp_path / "rows", history=rows)
    b = _write(tmp_path / "summed", history=summed)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    with pytest.raises(ReportInputError, match="amount_at_risk_minor"):
        _write(tmp_path / "float", history=summed.with_columns(pl.col("amount_at_risk_minor").cast(pl.Float64)))


def _two_per_kind() -> pl.DataFrame:
    """breaks_frame() with a second, older break of every kind on stripe, and a closed copy."""
    base = breaks_frame()
    older = base.filter(pl.col("channel") == "stripe").with_columns(
        (pl.col("break_id") + "-older").alias("break_id"), (pl.col("age_days") + 5).alias("age_days")
    )
    return pl.concat([base, older])


def test_the_tables_come_in_the_order_finance_reads_them() -> None:
    breaks = _two_per_kind()
    closed = breaks.with_columns(
        pl.lit("CLOSED").alias("status"),
        pl.lit("late_line").alias("closed_by"),
        pl.col("channel_txn_id").alias("closed_with"),
    ).select(list(CLOSED_BREAKS_SCHEMA))
    model = build(
        business_date=DAY, breaks=breaks, summary=summary_for(breaks), history=None, open_breaks=open_frame(),
        closed_breaks=closed,
    )  # fmt: skip
    # The day's breaks: by channel and kind, the oldest first.
    rows = model.breaks.select("channel", "kind", "age_days", "break_id").rows()
    assert rows == sorted(rows, key=lambda r: (r[0], r[1], -r[2], r[3]))
    # Every open break: the oldest first, then by currency, the largest amount at risk first.
    assert model.open_breaks is not None and model.closed_breaks is not None
    rows = model.open_breaks.select("age_days", "currency", "at_risk_minor", "break_id").rows()
    assert rows == sorted(rows, key=lambda r: (-r[0], r[1], -r[2], r[3]))
    # The day's closed breaks: by currency, the largest amount that was at risk first.
    rows = model.closed_breaks.select("currency", "at_risk_minor", "break_id").rows()
    assert rows == sorted(rows, key=lambda r: (r[0], -r[1], r[2]))
    assert len({r[1] for r in rows}) > 2  # amounts that differ, so the order is seen


@pytest.mark.parametrize("age", [None, -1])
def test_a_break_without_a_sound_age_is_refused(age: int | None) -> None:
    breaks = breaks_frame()
    bad = breaks.with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(pl.lit(age, dtype=pl.Int64)).otherwise("age_days").alias("age_days")
    )
    with pytest.raises(ReportInputError, match="age_days"):
        build(business_date=DAY, breaks=bad, summary=summary_for(breaks), history=None)


@pytest.mark.parametrize("summed", [False, True], ids=["rows", "summed"])
def test_the_history_runs_to_the_day_itself_and_no_later(summed: bool) -> None:
    """A warehouse read again after later days ran holds rows past the report's day."""
    day_rows = breaks_frame()
    later = day_rows.with_columns(pl.lit(DAY + timedelta(days=1)).alias("business_date"))
    history = pl.concat([history_frame(), day_rows, later])
    if summed:
        history = build(business_date=DAY + timedelta(days=1), breaks=day_rows, history=history,
                        summary={**summary_for(day_rows), "business_date": (DAY + timedelta(days=1)).isoformat()}).history  # fmt: skip
        assert history is not None
    model = build(business_date=DAY, breaks=day_rows, summary=summary_for(day_rows), history=history)
    assert model.history is not None
    days = model.history["business_date"].unique().sort().to_list()
    assert days[-1] == DAY and len(days) == 8
    on_the_day = model.history.filter(pl.col("business_date") == DAY)["breaks"].sum()
    assert on_the_day == day_rows.height
