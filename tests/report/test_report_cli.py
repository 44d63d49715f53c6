"""`payrecon report`: a day's reports rendered again from its breaks.parquet and summary.json."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from report_fixtures import DAY, breaks_frame, history_frame, open_frame, summary_for
from typer.testing import CliRunner

from pipelines.report import write_reports
from pipelines.report.cli import register


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    app.command("noop", hidden=True)(lambda: None)  # a second command keeps `report` a subcommand
    return app


def test_report_renders_a_day_again_with_the_same_bytes(tmp_path: Path) -> None:
    breaks = breaks_frame()
    breaks.write_parquet(tmp_path / "breaks.parquet")
    history_frame().write_parquet(tmp_path / "history.parquet")
    (tmp_path / "summary.json").write_text(json.dumps(summary_for(breaks)), encoding="utf-8")
    args = ["report", "--day-dir", str(tmp_path), "--history", str(tmp_path / "history.parquet")]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    first = [(tmp_path / n).read_bytes() for n in ("report.xlsx", "report.html")]
    assert b'id="chart-history"' in first[1]
    assert CliRunner().invoke(_app(), args).exit_code == 0
    assert [(tmp_path / n).read_bytes() for n in ("report.xlsx", "report.html")] == first


def test_report_names_what_is_missing(tmp_path: Path) -> None:
    result = CliRunner().invoke(_app(), ["report", "--day-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "summary.json does not exist" in " ".join(result.output.split())


def test_report_refuses_float_amounts_with_the_column_named(tmp_path: Path) -> None:
    import polars as pl

    breaks = breaks_frame()
    breaks.with_columns(pl.col("delta_minor").cast(pl.Float64)).write_parquet(tmp_path / "breaks.parquet")
    (tmp_path / "summary.json").write_text(json.dumps(summary_for(breaks)), encoding="utf-8")
    result = CliRunner().invoke(_app(), ["report", "--day-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "delta_minor" in result.output


def test_report_reads_the_open_breaks_beside_the_day(tmp_path: Path) -> None:
    """A day's open_breaks.parquet (written by recon) is read back, so the aging and the Open
    breaks sheet come out as the run wrote them."""
    breaks, open_breaks = breaks_frame(), open_frame()
    breaks.write_parquet(tmp_path / "breaks.parquet")
    open_breaks.write_parquet(tmp_path / "open_breaks.parquet")
    summary = summary_for(breaks)
    (tmp_path / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    result = CliRunner().invoke(_app(), ["report", "--day-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    direct = tmp_path / "direct"
    write_reports(direct, business_date=DAY, breaks=breaks, summary=summary, open_breaks=open_breaks)
    for name in ("report.xlsx", "report.html"):
        assert (tmp_path / name).read_bytes() == (direct / name).read_bytes(), name
    assert b"Open from earlier days" in (tmp_path / "report.html").read_bytes()
