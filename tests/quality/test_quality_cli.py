"""`payrecon validate` on a real simulated day (files in native formats)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from pipelines.quality.cli import register as register_validate
from pipelines.simulate.generator import simulate

DAY = date(2026, 11, 2)


@pytest.fixture(scope="module")
def day_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sim")
    simulate(start=DAY, days=1, payments=300, seed=11, out_root=root)
    return root


def _app() -> typer.Typer:
    app = typer.Typer()
    register_validate(app)
    app.command("noop", hidden=True)(lambda: None)  # a second command keeps `validate` a subcommand
    return app


def test_every_simulated_input_passes_the_gate(day_root: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        _app(),
        ["validate", "--date", DAY.isoformat(), "--input", str(day_root), "--engine", "duckdb"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "internal/payments.csv" in result.output and "statement.alipay" in result.output
    assert "passed" in result.output and "unexpected" not in result.output


def test_a_record_from_another_month_fails_the_gate_with_its_row(day_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    source = day_root / DAY.isoformat()
    for path in source.rglob("*"):
        if path.is_file() and "truth" not in path.parts:
            target = root / DAY.isoformat() / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    csv = root / DAY.isoformat() / "internal" / "payments.csv"
    lines = csv.read_text(encoding="utf-8").splitlines(keepends=True)
    cells = lines[3].split(",")
    cells[11] = "2026-10-01T08:00:00Z"  # created_at: a month before the business day
    lines[3] = ",".join(cells)
    csv.write_text("".join(lines), encoding="utf-8")
    result = CliRunner().invoke(
        _app(),
        ["validate", "--date", DAY.isoformat(), "--input", str(root), "--engine", "duckdb"],
        env={"COLUMNS": "400"},
    )
    assert result.exit_code == 1, result.output
    assert (
        "expect_column_values_to_be_between(created_at, [2026-11-01T00:00:00+00:00, 2026-11-03T00:00:00+00:00)): "
        "1 unexpected values, e.g. ['2026-10-01T08:00:00+00:00'] at rows [2]"
    ) in " ".join(result.output.split())


def test_validate_refuses_a_bad_engine_name(day_root: Path) -> None:
    result = CliRunner().invoke(
        _app(), ["validate", "--date", DAY.isoformat(), "--input", str(day_root), "--engine", "fast"]
    )
    assert result.exit_code == 2
