"""The T+1 job's calls into the quality gate (`pipelines.quality`) and the reports (`pipelines.report`).

Both packages are built beside this one; the interfaces are agreed (see the issue): the gate answers
a result with `ok` and named `failures`, the reports write `report.xlsx` and `report.html` into the
day's folder. Until a package is importable its step is skipped and the day's summary says so
(`gates` lists which ran), so a run never pretends a check it did not make.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any

import polars as pl

from pipelines.matching.rules import Rule


def _module(name: str, attribute: str) -> ModuleType | None:
    """The collaborator's package when it is installed and offers `attribute`, else None."""
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise  # the package exists and is broken: that is a bug to see, not a step to skip
        return None
    return module if hasattr(module, attribute) else None


def available() -> dict[str, bool]:
    """Which of the two collaborators this installation has."""
    return {
        "quality": _module("pipelines.quality", "validate_statement") is not None,
        "report": _module("pipelines.report", "write_reports") is not None,
    }


def _engine(engine: str) -> dict[str, str]:
    # "auto" is the gate's own choice (GX below its row limit, DuckDB above); tests pick "duckdb"
    # to stay fast and one test runs GX itself.
    return {} if engine == "auto" else {"engine": engine}


def check_statement(
    frame: pl.DataFrame,
    *,
    rule: Rule,
    business_date: date,
    source: str,
    controls: Mapping[str, Any] | None = None,
    engine: str = "auto",
) -> tuple[list[str], Any]:
    """The named failures of one statement file (empty when it passes or no gate is installed)
    and the gate's result object (None without a gate). `controls`: the file's own control totals
    as its parser read them (`ParsedFile.controls`: `rows`, and `gross`/`fee`/`net` in minor units
    where the format states them), which the gate checks against the lines."""
    quality = _module("pipelines.quality", "validate_statement")
    if quality is None:
        return [], None
    result = quality.validate_statement(
        frame,
        rule=rule,
        business_date=business_date,
        source=source,
        controls=dict(controls) if controls else None,
        **_engine(engine),
    )
    return ([] if result.ok else list(result.failures)), result


def check_internal(
    frame: pl.DataFrame, *, business_date: date, source: str, engine: str = "auto"
) -> tuple[list[str], Any]:
    quality = _module("pipelines.quality", "validate_internal")
    if quality is None:
        return [], None
    result = quality.validate_internal(frame, business_date=business_date, source=source, **_engine(engine))
    return ([] if result.ok else list(result.failures)), result


def check_outputs(summary: dict[str, Any], breaks: pl.DataFrame, engine: str = "auto") -> tuple[list[str], Any]:
    quality = _module("pipelines.quality", "validate_outputs")
    if quality is None:
        return [], None
    result = quality.validate_outputs(summary, breaks, **_engine(engine))
    return ([] if result.ok else list(result.failures)), result


def data_docs(results: list[Any], out_dir: Path) -> Path | None:
    quality = _module("pipelines.quality", "write_data_docs")
    if quality is None or not results:
        return None
    path: Path = quality.write_data_docs(results, out_dir)
    return path


def reports(
    day_dir: Path,
    *,
    business_date: date,
    breaks: pl.DataFrame,
    summary: dict[str, Any],
    history: pl.DataFrame | None,
    open_breaks: pl.DataFrame | None = None,
    closed_breaks: pl.DataFrame | None = None,
) -> list[Path]:
    report = _module("pipelines.report", "write_reports")
    if report is None:
        return []
    paths: list[Path] = report.write_reports(
        day_dir,
        business_date=business_date,
        breaks=breaks,
        summary=summary,
        history=history,
        open_breaks=open_breaks,
        closed_breaks=closed_breaks,
    )
    return paths
