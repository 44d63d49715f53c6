"""`payrecon parse` as a user runs it: summary, output file, and a refused file's message and exit code."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import typer
from typer.testing import CliRunner

from connectors.statements import LINE_SCHEMA
from connectors.statements.cli import register

FIXTURES = Path(__file__).parent / "fixtures"


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command()
    def other() -> None:  # a second command, so typer keeps `parse` as a named subcommand
        pass

    return app


def test_parse_detects_summarises_and_writes(tmp_path: Path) -> None:
    out = tmp_path / "lines.parquet"
    result = CliRunner().invoke(_app(), ["parse", str(FIXTURES / "bai2/moj_svb_us_example.bai2"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "bai2" in result.output and "13959.96" in result.output  # 4901.96 + 9058.00 USD
    assert "control totals: ok" in result.output
    frame = pl.read_parquet(out)
    assert dict(frame.schema) == LINE_SCHEMA
    assert frame["gross_minor"].to_list() == [490196, 905800]


def test_parse_writes_csv_with_a_given_format_and_channel(tmp_path: Path) -> None:
    out = tmp_path / "lines.csv"
    args = [
        "parse",
        str(FIXTURES / "ofx/ofxparse_bank_medium.ofx"),
        "--format",
        "ofx",
        "--channel",
        "rbc",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    frame = pl.read_csv(out, schema_overrides={"gross_minor": pl.Int64})
    assert frame["channel"].unique().to_list() == ["rbc"]
    assert frame["gross_minor"].sum() == -34527


def test_a_refused_file_names_file_line_and_reason() -> None:
    path = FIXTURES / "mt940/wolph_jejik_abnamro.sta"
    result = CliRunner().invoke(_app(), ["parse", str(path)])
    assert result.exit_code == 1
    assert "wolph_jejik_abnamro.sta:27: balance_mismatch" in result.output.replace("\n", "")


def test_an_unknown_format_name_is_a_usage_error() -> None:
    result = CliRunner().invoke(_app(), ["parse", str(FIXTURES / "ofx/ofxparse_bank_medium.ofx"), "--format", "qif"])
    assert result.exit_code == 2
    assert "unknown statement format" in result.output


@pytest.mark.parametrize(
    ("fixture", "fmt", "expected"),
    [
        # Adyen batch 42: three Settled lines net 98.20 + 25.01 + 45.40 = 168.61 EUR; the payout 83.49.
        ("adyen/settlement_detail_report_batch_42.csv", "adyen", ("PAYMENT", "168.61", "-83.49", "payouts_checked=1")),
        # PayPal STL: USD payments gross 100.00 + 25.99 = 125.99, the yen payment 12000 JPY.
        ("paypal_stl/STL-20261102.01.009.CSV", "paypal_stl", ("125.99", "12000", "JPY", "sections=1")),
        # MT942: credits 1250.00 + 75.50 = 1325.50 EUR.
        ("mt942/interim_eur.sta", "mt942", ("1325.50", "-300.00", "FEE")),
        # camt.054.001.08: the refund's net -25.50 USD and the reversal -80.00.
        ("camt054/notification_v08_usd.xml", "camt054", ("-25.50", "-80.00", "REVERSAL")),
    ],
)
def test_parse_detects_each_new_format(tmp_path: Path, fixture: str, fmt: str, expected: tuple[str, ...]) -> None:
    out = tmp_path / "lines.parquet"
    result = CliRunner().invoke(_app(), ["parse", str(FIXTURES / fixture), "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = result.output.replace("\n", " ")
    assert f": {fmt}," in text and "control totals: ok" in text
    for needle in expected:
        assert needle in text, (needle, result.output)
    assert dict(pl.read_parquet(out).schema) == LINE_SCHEMA


def test_a_refused_settlement_report_exits_1_with_its_line(tmp_path: Path) -> None:
    source = (FIXTURES / "paypal_stl/STL-20261102.01.009.CSV").read_text()
    bad = tmp_path / "STL-20261102.01.009.CSV"
    bad.write_text(source.replace('"SC",5', '"SC",4'))
    result = CliRunner().invoke(_app(), ["parse", str(bad)])
    assert result.exit_code == 1
    assert "STL-20261102.01.009.CSV:12: control_total_mismatch" in result.output.replace("\n", "")


def test_controls_report_prints_each_disagreement_and_exits_3(tmp_path: Path) -> None:
    path = FIXTURES / "alipay/debsig_example-alipay-records_GBK.csv"
    out = tmp_path / "lines.csv"
    strict = CliRunner().invoke(_app(), ["parse", str(path)])
    assert strict.exit_code == 1  # refused: the preamble's 共66笔记录 against 10 rows
    result = CliRunner().invoke(_app(), ["parse", str(path), "--controls", "report", "--out", str(out)])
    assert result.exit_code == 3, result.output
    assert "10 lines" in result.output and "1 disagree" in result.output
    assert ":8: control_total_mismatch" in result.output
    assert pl.read_csv(out).height == 10  # the lines are still written
    ok = CliRunner().invoke(_app(), ["parse", str(FIXTURES / "bai2/moj_svb_us_example.bai2"), "--controls", "report"])
    assert ok.exit_code == 0 and "control totals: ok" in ok.output
    bad = CliRunner().invoke(_app(), ["parse", str(path), "--controls", "lenient"])
    assert bad.exit_code == 2
