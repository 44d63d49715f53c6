"""The quality gate: each suite's expectations, their failure messages (the same from GX and from
DuckDB), the engine choice, the schema guard, and integration with a real statement parser.

GX costs seconds to import and about half a second per validation, so tests that run GX are
marked slow; the DuckDB engine gives the same messages (a property test holds the two together).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from quality_frames import DAY, controls_of, lines, outputs, payments, set_cell

import pipelines.quality.gate as gate
from connectors.statements import get_format
from pipelines.matching.rules import rule_for
from pipelines.quality import Engine, validate_internal, validate_outputs, validate_statement
from pipelines.records import LineType, StatementLine

ALIPAY = rule_for("alipay")
ENGINES = [pytest.param("duckdb"), pytest.param("gx", marks=pytest.mark.slow)]
BOUND = 10**12  # AMOUNT_MAJOR_MAX major units of CNY in fen


def _defective_lines() -> pl.DataFrame:
    frame = lines(6)
    frame = set_cell(frame, "booked_at", 0, datetime(2026, 11, 4, tzinfo=UTC))  # window end is exclusive
    frame = set_cell(frame, "line_type", 1, "X")
    frame = set_cell(frame, "currency", 2, "USD")
    frame = set_cell(frame, "channel_txn_id", 3, "4200000002")  # the id of line 4 again
    frame = set_cell(frame, "net_minor", 4, 9000)
    frame = set_cell(frame, "gross_minor", 5, BOUND + 1)
    return set_cell(frame, "net_minor", 5, BOUND + 1 - 60)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_clean_statement_passes(engine: Engine) -> None:
    frame = lines(6)
    result = validate_statement(
        frame, rule=ALIPAY, business_date=DAY, source="alipay/a.csv", controls=controls_of(frame), engine=engine
    )
    assert result.ok, result.failures
    assert result.failures == []
    assert result.statistics == {"rows": 6, "evaluated": 39, "failed": 0, "engine": engine}
    assert (result.source, result.suite) == ("alipay/a.csv", "statement.alipay")


@pytest.mark.parametrize("engine", ENGINES)
def test_statement_defects_are_named_with_their_lines(engine: Engine) -> None:
    frame = _defective_lines()
    controls = {"rows": 7, "gross": 60_000, "fee": 360, "net": 59_640}
    result = validate_statement(
        frame, rule=ALIPAY, business_date=DAY, source="alipay/a.csv", controls=controls, engine=engine
    )
    assert not result.ok
    assert result.failures == [
        "expect_column_values_to_be_in_set(line_type): 1 unexpected values, e.g. ['X'] at lines [3]",
        "expect_column_values_to_be_unique(channel_txn_id): 2 unexpected values, e.g. ['4200000002'] at lines [4, 5]",
        "expect_column_values_to_be_in_set(currency): 1 unexpected values, e.g. ['USD'] at lines [4]",
        f"expect_column_values_to_be_between(gross_minor, [-{BOUND}, {BOUND}]): 1 unexpected values, "
        f"e.g. [{BOUND + 1}] at lines [7]",
        "expect_column_pair_values_to_be_equal(net_minor, gross_minus_fee_minor): 1 unexpected values, "
        "e.g. [(9000, 9940)] at lines [6]",
        "expect_column_values_to_be_between(booked_at, [2026-11-01T00:00:00+00:00, 2026-11-04T00:00:00+00:00)): "
        "1 unexpected values, e.g. ['2026-11-04T00:00:00+00:00'] at lines [2]",
        "expect_table_row_count_to_equal: observed 6, expected 7",
        f"expect_column_sum_to_be_between(gross_minor): observed {50_000 + BOUND + 1}, expected 60000",
        f"expect_column_sum_to_be_between(net_minor): observed {5 * 9940 - 940 + BOUND + 1 - 60}, expected 59640",
    ]


def test_control_totals_are_compared_exactly_beyond_float_precision() -> None:
    # 10,000 lines of 10^12 fen sum to 10^16, past 2**53: one fen off must still be seen.
    frame = lines(10_000, gross=BOUND, fee=0)
    controls = controls_of(frame)
    assert controls["gross"] == 10**16
    ok = validate_statement(frame, rule=ALIPAY, business_date=DAY, source="s", controls=controls, engine="duckdb")
    assert ok.ok, ok.failures
    off = validate_statement(
        frame, rule=ALIPAY, business_date=DAY, source="s", controls={**controls, "gross": 10**16 + 1}, engine="duckdb"
    )
    assert off.failures == [f"expect_column_sum_to_be_between(gross_minor): observed {10**16}, expected {10**16 + 1}"]


@pytest.mark.slow
def test_control_totals_are_exact_with_gx_too() -> None:
    frame = lines(10_000, gross=BOUND, fee=0)
    controls = {**controls_of(frame), "net": 10**16 - 1}
    result = validate_statement(frame, rule=ALIPAY, business_date=DAY, source="s", controls=controls, engine="gx")
    assert result.failures == [f"expect_column_sum_to_be_between(net_minor): observed {10**16}, expected {10**16 - 1}"]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_float_amount_column_stops_the_suite_at_the_schema(engine: str) -> None:
    frame = lines(3).with_columns(pl.col("gross_minor").cast(pl.Float64))
    result = validate_statement(frame, rule=ALIPAY, business_date=DAY, source="s", engine=engine)  # type: ignore[arg-type]
    assert result.failures == ["expect_column_values_to_be_of_type(gross_minor): observed 'Float64', expected 'Int64'"]
    # Only the schema was judged: nothing else can be on the wrong types.
    assert result.statistics["evaluated"] == 1 + 16


def test_missing_and_reordered_columns_are_named() -> None:
    frame = lines(2).drop("raw")
    result = validate_statement(frame, rule=ALIPAY, business_date=DAY, source="s", engine="duckdb")
    assert len(result.failures) == 1
    assert result.failures[0].startswith("expect_table_columns_to_match_ordered_list: observed [")
    assert "'value_date'], expected [" in result.failures[0]


def test_booked_at_window_follows_the_rules_time_zone() -> None:
    shanghai = ALIPAY.model_copy(update={"timezone": "Asia/Shanghai"})
    # The window opens at 2026-11-01 00:00 in Shanghai, 2026-10-31 16:00 UTC.
    inside = set_cell(lines(2), "booked_at", 0, datetime(2026, 10, 31, 16, tzinfo=UTC))
    assert validate_statement(inside, rule=shanghai, business_date=DAY, source="s", engine="duckdb").ok
    outside = set_cell(inside, "booked_at", 1, datetime(2026, 10, 31, 15, 59, 59, tzinfo=UTC))
    result = validate_statement(outside, rule=shanghai, business_date=DAY, source="s", engine="duckdb")
    assert result.failures == [
        "expect_column_values_to_be_between(booked_at, [2026-10-31T16:00:00+00:00, 2026-11-03T16:00:00+00:00)): "
        "1 unexpected values, e.g. ['2026-10-31T15:59:59+00:00'] at lines [3]"
    ]


# --- GX and DuckDB agree ---------------------------------------------------------------------------

MUTATIONS = ("line_type", "dup_txn", "null_txn", "currency", "net", "booked_at", "gross", "fee", "channel")


def _mutate(frame: pl.DataFrame, what: str, row: int, k: int) -> pl.DataFrame:
    n = frame.height
    if what == "line_type":
        return set_cell(frame, "line_type", row, ["X", "payment", ""][k % 3])
    if what == "dup_txn":
        return set_cell(frame, "channel_txn_id", row, frame["channel_txn_id"][(row + 1 + k) % n])
    if what == "null_txn":
        return set_cell(frame, "channel_txn_id", row, None)
    if what == "currency":
        return set_cell(frame, "currency", row, ["USD", "cny", "JPY"][k % 3])
    if what == "net":
        return set_cell(frame, "net_minor", row, frame["net_minor"][row] + k - 2)
    if what == "booked_at":
        return set_cell(frame, "booked_at", row, frame["booked_at"][row] + timedelta(days=k - 2, hours=k * 7))
    if what == "gross":
        return set_cell(frame, "gross_minor", row, [BOUND, BOUND + 1, -BOUND - 1, 0, -5][k % 5])
    if what == "fee":
        return set_cell(frame, "fee_minor", row, [-(BOUND + 3), 61, 0, 2**62, -1][k % 5])
    assert what == "channel"
    return set_cell(frame, "channel", row, "wechatpay")


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(MUTATIONS), st.integers(0, 7), st.integers(0, 9)), max_size=6))
def test_gx_and_duckdb_give_the_same_failures(mutations: list[tuple[str, int, int]]) -> None:
    frame = lines(8)
    for what, row, k in mutations:
        frame = _mutate(frame, what, row, k)
    controls = controls_of(lines(8))
    gx = validate_statement(frame, rule=ALIPAY, business_date=DAY, source="s", controls=controls, engine="gx")
    duck = validate_statement(frame, rule=ALIPAY, business_date=DAY, source="s", controls=controls, engine="duckdb")
    assert gx.failures == duck.failures
    assert gx.ok == duck.ok == (not duck.failures)


# --- a real parser's output ------------------------------------------------------------------------


def _statement_lines(n: int) -> list[StatementLine]:
    return [
        StatementLine(
            channel="alipay",
            account=ALIPAY.account,
            business_date=DAY,
            source_file="",
            source_sha256="",
            line_no=0,
            line_type=LineType.PAYMENT,
            channel_txn_id=f"42000{i:05d}",
            payment_id=f"P{i:05d}",
            gross_minor=10_000 + i,
            fee_minor=60,
            net_minor=9_940 + i,
            currency="CNY",
            booked_at=datetime(2026, 11, 2, 9, i, tzinfo=UTC),
            value_date=DAY,
            raw="TRADE_SUCCESS",
        )
        for i in range(5)
    ]


def test_a_parsed_payrecon_csv_file_passes_with_its_control_totals(tmp_path: Path) -> None:
    fmt = get_format("payrecon_csv")
    assert fmt.write is not None
    (path,) = fmt.write(_statement_lines(5), tmp_path, rule=ALIPAY, business_date=DAY)
    parsed = fmt.parse(path, channel="alipay", business_date=DAY)
    result = validate_statement(
        parsed.frame, rule=ALIPAY, business_date=DAY, source=path.name, controls=parsed.controls, engine="duckdb"
    )
    assert result.ok, result.failures
    assert result.statistics["evaluated"] == 17 + 18 + 4  # schema, checks, the 4 control totals


def test_the_same_txn_id_twice_in_a_parsed_file_is_named_by_file_line(tmp_path: Path) -> None:
    fmt = get_format("payrecon_csv")
    assert fmt.write is not None
    lines_ = _statement_lines(5)
    lines_[3].channel_txn_id = lines_[1].channel_txn_id  # the parser accepts it; the gate must not
    (path,) = fmt.write(lines_, tmp_path, rule=ALIPAY, business_date=DAY)
    parsed = fmt.parse(path, channel="alipay", business_date=DAY)
    result = validate_statement(
        parsed.frame, rule=ALIPAY, business_date=DAY, source=path.name, controls=parsed.controls, engine="duckdb"
    )
    # Line 1 is the header: the second and fourth records are lines 3 and 5 of the file.
    assert result.failures == [
        "expect_column_values_to_be_unique(channel_txn_id): 2 unexpected values, e.g. ['4200000001'] at lines [3, 5]"
    ]


# --- internal records ------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_clean_internal_records_pass(engine: str) -> None:
    result = validate_internal(payments(), business_date=DAY, source="internal/payments.csv", engine=engine)  # type: ignore[arg-type]
    assert result.ok, result.failures
    assert result.statistics["engine"] == engine


@pytest.mark.parametrize("engine", ENGINES)
def test_internal_defects_are_named_with_their_rows(engine: str) -> None:
    frame = payments(7)
    frame = set_cell(frame, "payment_id", 1, "P00000")  # duplicate of row 0
    frame = set_cell(frame, "biz_type", 2, "PAYOUT")
    frame = set_cell(frame, "parent_payment_id", 3, None)  # row 3 is a REFUND
    frame = set_cell(frame, "status", 4, "DONE")
    frame = set_cell(frame, "amount_minor", 5, -1)
    frame = set_cell(frame, "currency", 6, "XXX")
    frame = set_cell(frame, "created_at", 0, datetime(2026, 11, 3, tzinfo=UTC))  # the next day: outside
    result = validate_internal(frame, business_date=DAY, source="internal/payments.csv", engine=engine)  # type: ignore[arg-type]
    assert result.failures == [
        "expect_column_values_to_be_unique(payment_id): 2 unexpected values, e.g. ['P00000'] at rows [0, 1]",
        "expect_column_values_to_be_in_set(biz_type): 1 unexpected values, e.g. ['PAYOUT'] at rows [2]",
        "expect_column_values_to_be_in_set(status): 1 unexpected values, e.g. ['DONE'] at rows [4]",
        "expect_column_values_to_be_between(amount_minor, [0, 100000000000000]): 1 unexpected values, "
        "e.g. [-1] at rows [5]",
        "expect_column_values_to_be_in_set(currency): 1 unexpected values, e.g. ['XXX'] at rows [6]",
        "expect_column_values_to_not_be_null(parent_payment_id) where biz_type == REFUND: 1 unexpected values at rows [3]",
        "expect_column_values_to_be_between(created_at, [2026-11-01T00:00:00+00:00, 2026-11-03T00:00:00+00:00)): "
        "1 unexpected values, e.g. ['2026-11-03T00:00:00+00:00'] at rows [0]",
    ]


def test_auto_uses_duckdb_from_the_row_limit_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gate, "GX_ROWS_MAX", 5)
    assert validate_internal(payments(5), business_date=DAY, source="p", engine="auto").statistics["engine"] == "duckdb"


@pytest.mark.slow
def test_auto_uses_gx_below_the_row_limit() -> None:
    assert validate_internal(payments(5), business_date=DAY, source="p", engine="auto").statistics["engine"] == "gx"


def test_internal_timestamps_must_be_utc_microseconds() -> None:
    frame = payments().with_columns(pl.col("created_at").dt.replace_time_zone(None))
    result = validate_internal(frame, business_date=DAY, source="p", engine="duckdb")
    assert result.failures == [
        "expect_column_values_to_be_of_type(created_at): observed \"Datetime(time_unit='us', time_zone=None)\", "
        "expected \"Datetime(time_unit='us', time_zone='UTC')\""
    ]


# --- outputs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_consistent_outputs_pass(engine: str) -> None:
    summary, breaks = outputs()
    result = validate_outputs(summary, breaks, engine=engine)  # type: ignore[arg-type]
    assert result.ok, result.failures
    assert [t.suite for t in result.tables] == ["outputs.invariant6", "outputs.breaks", "outputs.breaks_by_kind"]


@pytest.mark.parametrize("engine", ENGINES)
def test_output_defects_are_named(engine: str) -> None:
    summary, breaks = outputs()
    summary["channels"]["alipay"]["internal"]["matched"] = 89  # 100 != 89 + 5 + 3 + 2
    summary["channels"]["jpbank"]["breaks_by_kind"] = {"AMBIGUOUS": 2}
    breaks = set_cell(breaks, "break_id", 1, breaks["break_id"][0])
    breaks = set_cell(breaks, "kind", 2, "LOST")
    result = validate_outputs(summary, breaks, engine=engine)  # type: ignore[arg-type]
    assert result.failures == [
        "expect_column_pair_values_to_be_equal(rows_in, accounted): 1 unexpected values, "
        "e.g. [(100, 99)] at key ['alipay/internal']",
        "expect_column_values_to_be_unique(break_id): 2 unexpected values, "
        f"e.g. [{breaks['break_id'][0]!r}] at rows [0, 1]",
        "expect_column_values_to_be_in_set(kind): 1 unexpected values, e.g. ['LOST'] at rows [2]",
        "expect_column_pair_values_to_be_equal(in_summary, in_breaks): 5 unexpected values, "
        "e.g. [(0, 1), (1, 0), (2, 1)] at key ['*/LOST', '*/MISSING_INTERNAL', 'alipay/LOST', "
        "'alipay/MISSING_INTERNAL', 'jpbank/AMBIGUOUS']",
    ]


# --- Data Docs -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_data_docs_for_the_day_live_in_their_own_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.quality import write_data_docs

    home, cwd, out = tmp_path / "home", tmp_path / "cwd", tmp_path / "out"
    for folder in (home, cwd, out):
        folder.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    frame = _defective_lines()
    results = [
        validate_statement(frame, rule=ALIPAY, business_date=DAY, source="alipay/bad.csv", engine="gx"),
        validate_statement(lines(3), rule=ALIPAY, business_date=DAY, source="alipay/good.csv", engine="duckdb"),
        validate_internal(payments(), business_date=DAY, source="internal/payments.csv", engine="duckdb"),
        validate_outputs(*outputs(), engine="gx"),
    ]
    stale = out / "data_docs" / "stale.html"
    stale.parent.mkdir()
    stale.write_text("from an earlier run")
    index = write_data_docs(results, out)
    assert index == out / "data_docs" / "index.html" and index.exists()
    assert not stale.exists()  # a rerun replaces the day's docs whole
    pages = sorted(
        p.relative_to(out / "data_docs").as_posix() for p in (out / "data_docs" / "validations").rglob("*.html")
    )
    # One page per validated table, named by source and business date, never by the clock.
    assert len(pages) == 6, pages
    assert all("/20261102T000000.000000Z/" in p for p in pages), pages
    bad_page = next(p for p in pages if "alipay__bad.csv.html" in p)
    text = (out / "data_docs" / bad_page).read_text(encoding="utf-8")
    assert "channel_txn_id" in text and "4200000002" in text
    plain_index = (out / "data_docs" / "payrecon.html").read_text(encoding="utf-8")
    assert "alipay/bad.csv [statement.alipay]" in plain_index and "failed (6)" in plain_index
    assert "expect_column_values_to_be_unique(channel_txn_id): 2 unexpected values" in plain_index
    assert plain_index.count("passed") == 5
    # GX wrote nothing into the home folder or the working directory.
    assert list(home.iterdir()) == [] and list(cwd.iterdir()) == []


def test_outputs_with_float_amounts_stop_at_the_schema() -> None:
    summary, breaks = outputs()
    result = validate_outputs(summary, breaks.with_columns(pl.col("delta_minor").cast(pl.Float64)), engine="duckdb")
    assert result.failures == ["expect_column_values_to_be_of_type(delta_minor): observed 'Float64', expected 'Int64'"]


@pytest.mark.parametrize(
    ("values", "unexpected"),
    [
        (["A", "A", None], 2),  # nulls beside a repeat: the distinct count must not take them for a value
        (["A", None, None, "B"], 0),  # nulls are not values: never duplicates of each other
        (["A", "B", "C"], 0),
        ([None, None], 0),
        (["A", "B", "A", None, "B", "C"], 4),
    ],
)
def test_uniqueness_in_duckdb_ignores_nulls_and_counts_every_repeated_row(
    values: list[str | None], unexpected: int
) -> None:
    from pipelines.quality.checks import Unique
    from pipelines.quality.engines import ROW, run_duckdb

    (outcome,) = run_duckdb(pl.DataFrame({"v": values}, schema={"v": pl.String()}), [Unique("v")], location_column=ROW)
    assert outcome.success is (unexpected == 0)
    assert (outcome.unexpected_count or 0) == unexpected
