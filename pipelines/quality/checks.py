"""The closed vocabulary of quality checks, and what each means to both engines.

A suite is a list of `Check`s. Each check knows its Great Expectations expectation (`to_gx`), the
DuckDB SQL that finds the same unexpected rows (`run_duckdb`), and how to read a GX result back
(`from_gx`). Both engines end in the same `Outcome`, so a failure reads the same whichever engine
found it: `expect_column_values_to_be_unique(channel_txn_id): 2 unexpected values, e.g. ['T1']
at lines [5, 9]`.

Semantics follow GX's column-map expectations: null cells are not judged by a value check (only
`NotNull` judges them); `unexpected_count` counts rows; examples are the first distinct unexpected
values in row order; locations are the first unexpected rows' line numbers (statement files) or
0-based row indexes (other frames).

Amount bounds are integers. GX compares them as float64; every bound payrecon uses is below 2**53
(asserted where the bound is made), where float64 holds integers exactly and the int-to-float
rounding of a column value cannot cross the bound, so both engines agree to the unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb
    from great_expectations.core.expectation_validation_result import ExpectationValidationResult
    from great_expectations.expectations import Expectation

# How many distinct example values and locations a failure message quotes.
EXAMPLES_MAX = 3
LOCATIONS_MAX = 5
# The largest integer float64 holds exactly; integer bounds handed to GX must stay below it.
FLOAT_EXACT_INT_MAX = 2**53


def plain(value: Any) -> Any:
    """A value from pandas, numpy or DuckDB as a plain Python value for messages (timestamps as
    ISO 8601 UTC text, dates as ISO text, numpy scalars as int/bool/str, missing as None)."""
    if value is None:
        return None
    if isinstance(value, tuple | list):
        return tuple(plain(v) for v in value)
    if isinstance(value, float) and math.isnan(value):
        return None
    to_py = getattr(value, "to_pydatetime", None)
    if to_py is not None:  # pandas Timestamp
        if str(value) == "NaT":
            return None
        value = to_py()
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    item = getattr(value, "item", None)
    if item is not None and not isinstance(value, str):  # numpy scalar
        return plain(item())
    if str(value) == "<NA>":  # pandas.NA
        return None
    return value


def _dedupe(values: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for v in values:
        if v not in seen:
            seen.append(v)
    return seen


@dataclass(frozen=True)
class Outcome:
    """What one check found. `unexpected_count` is None for table-level checks, which report
    `observed` against `expected` instead."""

    check: Check
    success: bool
    unexpected_count: int | None = None
    examples: tuple[Any, ...] = ()
    locations: tuple[Any, ...] = ()
    observed: Any = None
    expected: Any = None
    location_label: str = "rows"

    def message(self) -> str:
        """One line naming the expectation, its column(s) and what was wrong."""
        head = self.check.label()
        if self.success:
            return f"{head}: ok"
        if self.unexpected_count is None:
            return f"{head}: observed {self.observed!r}, expected {self.expected!r}"
        text = f"{head}: {self.unexpected_count} unexpected values"
        shown = [v for v in self.examples if v is not None]
        if shown:
            text += f", e.g. {list(shown)!r}"
        if self.locations:
            text += f" at {self.location_label} {list(self.locations)!r}"
        return text


class Check:
    """One expectation. Subclasses set `expectation` (GX's snake-case name) and implement the rest."""

    expectation: str = ""

    def label(self) -> str:
        raise NotImplementedError

    def columns_used(self) -> tuple[str, ...]:
        """The columns this check reads (engines hand only those to GX or DuckDB)."""
        return ()

    def gx_kwargs(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_gx(self) -> Expectation:
        """The GX 1.x expectation object of this check."""
        from great_expectations.expectations.registry import get_expectation_impl

        return get_expectation_impl(self.expectation)(**self.gx_kwargs())

    def run_duckdb(self, con: duckdb.DuckDBPyConnection, table: str, location_column: str) -> Outcome:
        raise NotImplementedError

    def from_gx(self, evr: ExpectationValidationResult, location_column: str) -> Outcome:
        raise NotImplementedError


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(value: Any) -> str:
    """A SQL literal for the values checks carry (text, int, bool, aware datetime)."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        assert value.tzinfo is not None, "window bounds are aware UTC datetimes"
        return f"TIMESTAMPTZ '{value.astimezone(UTC).isoformat()}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"no SQL literal for {type(value).__name__}")


class ColumnMapCheck(Check):
    """A row-wise check on one column (or a pair): unexpected rows are found by a SQL predicate."""

    column: str

    def columns(self) -> tuple[str, ...]:
        return (self.column,)

    def columns_used(self) -> tuple[str, ...]:
        return self.columns()

    def label(self) -> str:
        return f"{self.expectation}({', '.join(self.columns())})"

    def judged_sql(self) -> str:
        """Rows this check judges at all (GX skips nulls in value checks)."""
        return " AND ".join(f"{_q(c)} IS NOT NULL" for c in self.columns())

    def unexpected_sql(self) -> str:
        """Among judged rows, those that fail."""
        raise NotImplementedError

    def example_sql(self) -> str:
        cols = self.columns()
        return _q(cols[0]) if len(cols) == 1 else "(" + ", ".join(_q(c) for c in cols) + ")"

    def where_sql(self) -> str:
        """The rows this check finds unexpected."""
        return f"({self.judged_sql()}) AND ({self.unexpected_sql()})"

    def run_duckdb(
        self, con: duckdb.DuckDBPyConnection, table: str, location_column: str, count: int | None = None
    ) -> Outcome:
        """`count`: the unexpected rows when already counted (engines count every map check in one
        scan); the examples are fetched only for a check that failed."""
        where = self.where_sql()
        if count is None:
            row = con.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()
            assert row is not None
            count = int(row[0])
        if count == 0:
            return Outcome(self, True, 0)
        return self._failed(
            con, f"SELECT {self.example_sql()}, {_q(location_column)} FROM {table} WHERE {where}", count,
            location_column,
        )  # fmt: skip

    def _failed(self, con: duckdb.DuckDBPyConnection, select_sql: str, count: int, location_column: str) -> Outcome:
        """A failed outcome: `select_sql` yields (example value, location) of the unexpected rows."""
        first = con.execute(f"{select_sql} ORDER BY __row LIMIT {max(20, LOCATIONS_MAX)}").fetchall()
        examples = _dedupe([plain(r[0]) for r in first])[:EXAMPLES_MAX]
        locations = tuple(plain(r[1]) for r in first[:LOCATIONS_MAX])
        return Outcome(self, False, count, tuple(examples), locations, location_label=_label_of(location_column))

    def from_gx(self, evr: ExpectationValidationResult, location_column: str) -> Outcome:
        _raise_gx_exception(self, evr)
        result = evr.result
        count = int(result.get("unexpected_count") or 0)
        if evr.success:
            return Outcome(self, True, count)
        values = [plain(v) for v in result.get("partial_unexpected_list") or []]
        examples = _dedupe(values)[:EXAMPLES_MAX]
        index = result.get("partial_unexpected_index_list") or []
        locations = tuple(plain(i[location_column] if isinstance(i, dict) else i) for i in index[:LOCATIONS_MAX])
        return Outcome(self, False, count, tuple(examples), locations, location_label=_label_of(location_column))


def _label_of(location_column: str) -> str:
    # Statement lines carry their line number in the file; other frames are named by 0-based row
    # (`__row`) or by a key column of their own.
    return {"line_no": "lines", "__row": "rows"}.get(location_column, location_column)


def _raise_gx_exception(check: Check, evr: ExpectationValidationResult) -> None:
    # A metric that raised inside GX is a bug in the suite or in GX, never a data defect: say so.
    info = evr.exception_info or {}
    if info.get("raised_exception"):
        raise RuntimeError(f"{check.label()}: GX raised {info.get('exception_message')}")
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception", True) and value.get("exception_message"):
            raise RuntimeError(f"{check.label()}: GX raised {value['exception_message']}")


@dataclass(frozen=True, eq=False)
class NotNull(ColumnMapCheck):
    """Every value of `column` is present; with `where=(col, value)` only on rows where col == value."""

    column: str
    where: tuple[str, str] | None = None
    expectation = "expect_column_values_to_not_be_null"

    def label(self) -> str:
        base = f"{self.expectation}({self.column})"
        return base if self.where is None else f"{base} where {self.where[0]} == {self.where[1]}"

    def gx_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"column": self.column}
        if self.where is not None:
            kwargs["row_condition"] = f'{self.where[0]}=="{self.where[1]}"'
            kwargs["condition_parser"] = "pandas"
        return kwargs

    def columns_used(self) -> tuple[str, ...]:
        return (self.column,) if self.where is None else (self.column, self.where[0])

    def judged_sql(self) -> str:
        return "TRUE" if self.where is None else f"{_q(self.where[0])} = {_lit(self.where[1])}"

    def unexpected_sql(self) -> str:
        return f"{_q(self.column)} IS NULL"


@dataclass(frozen=True, eq=False)
class Unique(ColumnMapCheck):
    """No non-null value of `column` occurs twice; every row holding a repeated value is unexpected."""

    column: str
    expectation = "expect_column_values_to_be_unique"

    def gx_kwargs(self) -> dict[str, Any]:
        return {"column": self.column}

    def run_duckdb(
        self, con: duckdb.DuckDBPyConnection, table: str, location_column: str, count: int | None = None
    ) -> Outcome:
        # Uniqueness is not a row predicate: it is always counted here, from its own aggregation.
        # The usual case, no value repeated, is settled before this by counting distinct hashes
        # in Polars (`engines.run_duckdb`); here only values whose hash repeats (true duplicates,
        # or rare collisions) are grouped exactly.
        c = _q(self.column)
        repeated = f"SELECT hash({c}) FROM {table} WHERE {c} IS NOT NULL GROUP BY 1 HAVING count(*) > 1"
        groups = (
            f"SELECT {c}, count(*) AS n FROM {table} WHERE {c} IS NOT NULL AND hash({c}) IN ({repeated}) "
            f"GROUP BY {c} HAVING count(*) > 1"
        )
        row = con.execute(f"SELECT coalesce(sum(n), 0) FROM ({groups})").fetchone()
        assert row is not None
        duplicated = int(row[0])
        if duplicated == 0:
            return Outcome(self, True, 0)
        return self._failed(
            con, f"SELECT {c}, {_q(location_column)} FROM {table} WHERE {c} IN (SELECT {c} FROM ({groups}))",
            duplicated, location_column,
        )  # fmt: skip


@dataclass(frozen=True, eq=False)
class InSet(ColumnMapCheck):
    """Every non-null value of `column` is one of `values` (a closed vocabulary)."""

    column: str
    values: tuple[str, ...]
    expectation = "expect_column_values_to_be_in_set"

    def gx_kwargs(self) -> dict[str, Any]:
        return {"column": self.column, "value_set": list(self.values)}

    def unexpected_sql(self) -> str:
        return f"{_q(self.column)} NOT IN ({', '.join(_lit(v) for v in self.values)})"

    def run_duckdb(
        self, con: duckdb.DuckDBPyConnection, table: str, location_column: str, count: int | None = None
    ) -> Outcome:
        # A closed vocabulary has few distinct values: grouping by them and checking each against
        # the set costs far less than testing every row against a long IN list (the 150 currencies).
        c = _q(self.column)
        distinct = con.execute(f"SELECT {c}, count(*) FROM {table} WHERE {c} IS NOT NULL GROUP BY {c}").fetchall()
        allowed = set(self.values)
        unexpected = sum(int(n) for value, n in distinct if value not in allowed)
        return super().run_duckdb(con, table, location_column, unexpected)


@dataclass(frozen=True, eq=False)
class Between(ColumnMapCheck):
    """Every non-null value of `column` is in [min_value, max_value] (max exclusive with
    `strict_max`). Bounds are ints (minor units, each below 2**53) or aware UTC datetimes."""

    column: str
    min_value: int | datetime
    max_value: int | datetime
    strict_max: bool = False
    expectation = "expect_column_values_to_be_between"

    def __post_init__(self) -> None:
        for bound in (self.min_value, self.max_value):
            if isinstance(bound, int):
                assert abs(bound) < FLOAT_EXACT_INT_MAX, f"{bound} is beyond float64's exact integers"
            else:
                assert bound.tzinfo is not None, "time bounds are aware UTC datetimes"

    def label(self) -> str:
        lo, hi = plain(self.min_value), plain(self.max_value)
        return f"{self.expectation}({self.column}, [{lo}, {hi}{')' if self.strict_max else ']'})"

    def gx_kwargs(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "min_value": self.min_value,
            "max_value": self.max_value,
            "strict_max": self.strict_max,
        }

    def unexpected_sql(self) -> str:
        c = _q(self.column)
        op = ">=" if self.strict_max else ">"
        return f"({c} < {_lit(self.min_value)} OR {c} {op} {_lit(self.max_value)})"


@dataclass(frozen=True, eq=False)
class PairEqual(ColumnMapCheck):
    """`column` equals `column_b` on every row where both are present (rows with a null are left to
    the NotNull checks)."""

    column: str
    column_b: str
    expectation = "expect_column_pair_values_to_be_equal"

    def columns(self) -> tuple[str, ...]:
        return (self.column, self.column_b)

    def gx_kwargs(self) -> dict[str, Any]:
        return {"column_A": self.column, "column_B": self.column_b, "ignore_row_if": "either_value_is_missing"}

    def unexpected_sql(self) -> str:
        return f"{_q(self.column)} <> {_q(self.column_b)}"


@dataclass(frozen=True, eq=False)
class RowCount(Check):
    """The table has exactly `value` rows (a file's control total)."""

    value: int
    expectation = "expect_table_row_count_to_equal"

    def label(self) -> str:
        return self.expectation

    def gx_kwargs(self) -> dict[str, Any]:
        return {"value": self.value}

    def run_duckdb(self, con: duckdb.DuckDBPyConnection, table: str, location_column: str) -> Outcome:
        row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
        assert row is not None
        observed = int(row[0])
        return Outcome(self, observed == self.value, observed=observed, expected=self.value)

    def from_gx(self, evr: ExpectationValidationResult, location_column: str) -> Outcome:
        _raise_gx_exception(self, evr)
        observed = int(plain(evr.result.get("observed_value")))
        return Outcome(self, bool(evr.success), observed=observed, expected=self.value)


@dataclass(frozen=True, eq=False)
class SumEquals(Check):
    """The sum of `column` (minor units) equals `value` exactly (a file's control total).

    The observed sum is always computed exactly (DuckDB HUGEINT): GX sums through numpy int64 and
    reports it as a float beyond 2**53, so its verdict is kept for Data Docs but the number and the
    verdict in our outcome are the exact ones.
    """

    column: str
    value: int
    expectation = "expect_column_sum_to_be_between"

    def label(self) -> str:
        return f"{self.expectation}({self.column})"

    def columns_used(self) -> tuple[str, ...]:
        return (self.column,)

    def gx_kwargs(self) -> dict[str, Any]:
        return {"column": self.column, "min_value": self.value, "max_value": self.value}

    def run_duckdb(self, con: duckdb.DuckDBPyConnection, table: str, location_column: str) -> Outcome:
        row = con.execute(f"SELECT coalesce(sum({_q(self.column)}::HUGEINT), 0) FROM {table}").fetchone()
        assert row is not None
        observed = int(row[0])
        return Outcome(self, observed == self.value, observed=observed, expected=self.value)

    def from_gx(self, evr: ExpectationValidationResult, location_column: str) -> Outcome:
        raise AssertionError("SumEquals is always evaluated exactly (see the class docstring)")


@dataclass(frozen=True, eq=False)
class ColumnsMatch(Check):
    """The frame's column names, in order (evaluated on the Polars schema, before anything else)."""

    names: tuple[str, ...]
    expectation = "expect_table_columns_to_match_ordered_list"

    def label(self) -> str:
        return self.expectation

    def gx_kwargs(self) -> dict[str, Any]:
        return {"column_list": list(self.names)}


@dataclass(frozen=True, eq=False)
class ColumnType(Check):
    """The Polars dtype of `column` is exactly `dtype` (e.g. `Int64`, `Datetime(time_unit='us',
    time_zone='UTC')`). Evaluated on the Polars schema: after conversion to pandas an Int64 column
    with nulls and a float column look alike, which is exactly the confusion this check exists for."""

    column: str
    dtype: str
    expectation = "expect_column_values_to_be_of_type"

    def label(self) -> str:
        return f"{self.expectation}({self.column})"

    def gx_kwargs(self) -> dict[str, Any]:
        return {"column": self.column, "type_": self.dtype}
