"""The two engines that run a suite of checks on a Polars frame: Great Expectations and DuckDB.

Both return the same `Outcome`s (see `checks`). GX runs on pandas (it has no Polars data source in
1.x); the conversion keeps Int64 columns as pandas' nullable Int64, so an amount column with a null
never turns into float64 on the way. DuckDB reads the frame through Arrow without a copy.

Checks GX cannot answer exactly are evaluated by payrecon in both engines and recorded beside GX's
own results, so Data Docs still list them: the schema (pandas dtypes lose the distinction the
check exists for) and control-total sums (GX sums through numpy and reports a float).

GX is imported lazily: it costs seconds at import, and the DuckDB engine never needs it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import polars as pl

from pipelines.frames import as_arrow
from pipelines.quality.checks import Check, ColumnMapCheck, ColumnsMatch, ColumnType, InSet, Outcome, SumEquals, Unique

if TYPE_CHECKING:
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResult

# The pseudo-column that carries each row's 0-based index into both engines.
ROW = "__row"


def schema_outcomes(frame: pl.DataFrame, expected: dict[str, pl.DataType]) -> list[Outcome]:
    """Column names in order, then each expected column's exact Polars dtype. Exact in both engines."""
    names = tuple(expected)
    outcomes = [
        Outcome(
            ColumnsMatch(names),
            tuple(frame.columns) == names,
            observed=list(frame.columns),
            expected=list(names),
        )
    ]
    for name, dtype in expected.items():
        if name not in frame.schema:
            continue
        observed = frame.schema[name]
        outcomes.append(
            Outcome(ColumnType(name, str(dtype)), observed == dtype, observed=str(observed), expected=str(dtype))
        )
    return outcomes


def exact_outcomes(frame: pl.DataFrame, checks: Sequence[Check]) -> list[Outcome]:
    """Control-total sums, exactly (Int128), for the GX engine; the DuckDB engine uses HUGEINT."""
    outcomes = []
    for check in checks:
        assert isinstance(check, SumEquals)
        observed = int(frame[check.column].cast(pl.Int128).sum())
        outcomes.append(Outcome(check, observed == check.value, observed=observed, expected=check.value))
    return outcomes


def run_duckdb(frame: pl.DataFrame, checks: Sequence[Check], *, location_column: str) -> list[Outcome]:
    """Evaluate `checks` on `frame` with DuckDB SQL; `location_column` names each unexpected row in
    messages (`line_no` for statement lines, `__row` for a 0-based row index)."""
    import duckdb

    con = duckdb.connect()
    try:
        # Timestamps come back in UTC whatever the machine's zone, so messages do not depend on it.
        con.execute("SET TimeZone = 'UTC'")
        # As Arrow without a copy (`as_arrow`: string views, which DuckDB scans in place; a whole
        # frame export would copy it, as the row index added here is chunked unlike the frame).
        con.register("t", as_arrow(frame.with_row_index(ROW)))
        # Every row-wise check is counted in one scan of the table; only failures query again.
        single = [c for c in checks if isinstance(c, ColumnMapCheck) and not isinstance(c, Unique | InSet)]
        counts: dict[int, int] = {}
        if single:
            select = ", ".join(f"count(*) FILTER (WHERE {c.where_sql()})" for c in single)
            row = con.execute(f"SELECT {select} FROM t").fetchone()
            assert row is not None
            counts = {id(c): int(n) for c, n in zip(single, row, strict=True)}
        return [
            check.run_duckdb(con, "t", location_column, counts[id(check)])
            if isinstance(check, ColumnMapCheck) and id(check) in counts
            else Outcome(check, True, 0)
            if isinstance(check, Unique) and _hashes_distinct(frame, check.column)
            else check.run_duckdb(con, "t", location_column)
            for check in checks
        ]
    finally:
        con.close()


def _hashes_distinct(frame: pl.DataFrame, column: str) -> bool:
    """Whether the non-null values of `column` have distinct 64-bit hashes, so no value repeats:
    the usual outcome of a uniqueness check, settled in Polars (0.25 s at ten million ids, where
    DuckDB's count of distinct hashes took 0.65-1.2 s). When a hash repeats, the check runs in
    DuckDB, which tells a duplicate from a collision and names the rows."""
    values = pl.col(column).drop_nulls()
    return bool(frame.select(values.hash().n_unique() == values.len()).item())


def _gx() -> Any:
    # Analytics would phone home from every worker; it must be off before the first import.
    os.environ["GX_ANALYTICS_ENABLED"] = "False"
    import great_expectations as gx

    return gx


def _context() -> Any:
    """A fresh in-memory GX context: nothing is written to the repository or the home folder, and
    results do not pile up across calls in a long-lived worker."""
    gx = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


def to_pandas(frame: pl.DataFrame) -> Any:
    """The frame as pandas for GX, Int64 kept as nullable Int64 (never float64 because of a null)."""
    import pandas as pd
    import pyarrow as pa

    mapping = {pa.int64(): pd.Int64Dtype()}
    return frame.to_pandas(types_mapper=mapping.get)


def safe_name(name: str) -> str:
    """`name` as one path segment: GX's file stores refuse slashes in keys (run and batch names)."""
    return re.sub(r"[^A-Za-z0-9_.:-]+", "__", name)


def run_id_for(run_time: datetime, name: str) -> Any:
    from great_expectations.core.run_identifier import RunIdentifier

    # The run time is the business day, never now(): reruns of a day name their results alike.
    return RunIdentifier(run_name=safe_name(name), run_time=run_time)


def run_gx(
    frame: pl.DataFrame,
    checks: Sequence[Check],
    *,
    suite_name: str,
    asset_name: str,
    location_column: str,
    run_time: datetime,
) -> tuple[list[Outcome], ExpectationSuiteValidationResult]:
    """Evaluate `checks` with Great Expectations on `frame`; returns the outcomes in `checks` order
    and GX's own suite validation result (for Data Docs)."""
    gx = _gx()
    context = _context()
    batch_definition = (
        context.data_sources.add_pandas("payrecon")
        .add_dataframe_asset(asset_name)
        .add_batch_definition_whole_dataframe("whole")
    )
    suite = context.suites.add(gx.ExpectationSuite(name=suite_name))
    by_id: dict[str, Check] = {}
    for check in checks:
        added = suite.add_expectation(check.to_gx())
        by_id[str(added.id)] = check
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=suite_name, data=batch_definition, suite=suite)
    )
    result_format: dict[str, Any] = {"result_format": "SUMMARY"}
    if location_column != ROW:
        result_format["unexpected_index_column_names"] = [location_column]
    result = definition.run(
        batch_parameters={"dataframe": to_pandas(frame)},
        result_format=result_format,
        run_id=run_id_for(run_time, asset_name),
    )
    found: dict[int, Outcome] = {}
    for evr in result.results:
        check = by_id[str(evr.expectation_config.id)]
        found[id(check)] = check.from_gx(evr, location_column)
    assert len(found) == len(checks), "GX returned a result per expectation"
    return [found[id(check)] for check in checks], result


def gx_result_of(
    outcomes: Sequence[Outcome],
    *,
    suite_name: str,
    asset_name: str,
    run_time: datetime,
    engine: str,
    rows: int,
    base: ExpectationSuiteValidationResult | None = None,
) -> ExpectationSuiteValidationResult:
    """A GX suite validation result holding `outcomes` (evaluated outside GX, on a table of `rows`
    rows), added to `base`'s results when given, so Data Docs show every check of a suite whichever
    engine ran it."""
    _gx()
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    results = []
    for outcome in outcomes:
        result: dict[str, Any] = {}
        if outcome.unexpected_count is not None:
            # The fields GX's renderers read for a column-map expectation.
            result["element_count"] = rows
            result["unexpected_count"] = outcome.unexpected_count
            result["unexpected_percent"] = 100.0 * outcome.unexpected_count / rows if rows else 0.0
            result["partial_unexpected_list"] = list(outcome.examples)
        else:
            result["observed_value"] = outcome.observed
        results.append(
            ExpectationValidationResult(
                success=outcome.success,
                expectation_config=ExpectationConfiguration(
                    type=outcome.check.expectation,
                    kwargs=outcome.check.gx_kwargs(),
                    meta={"evaluated_by": engine, "message": outcome.message()},
                ),
                result=result,
            )
        )
    if base is not None:
        results = [*results, *base.results]
        meta = dict(base.meta)
    else:
        meta = {
            "run_id": run_id_for(run_time, asset_name),
            "validation_time": run_time,
            "active_batch_definition": {"datasource_name": "payrecon", "data_asset_name": asset_name},
            "batch_spec": {"engine": engine},
        }
    successful = sum(1 for r in results if r.success)
    return ExpectationSuiteValidationResult(
        success=successful == len(results),
        results=results,
        suite_name=suite_name,
        statistics={
            "evaluated_expectations": len(results),
            "successful_expectations": successful,
            "unsuccessful_expectations": len(results) - successful,
            "success_percent": 100.0 * successful / len(results) if results else 100.0,
        },
        meta=meta,
    )
