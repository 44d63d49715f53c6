"""The quality gate: the suites every input and the outputs of a business day must pass.

- `validate_statement`: one channel file's parsed lines (`LINE_SCHEMA`) against its rule.
- `validate_internal`: the day's `internal/payments.csv` as a typed frame (`INTERNAL_SCHEMA`).
- `validate_outputs`: the day's `summary.json` and breaks against invariant 6 and each other.

Each returns a `QualityResult`: `ok`, one line per failed expectation in `failures`, and the GX
validation result Data Docs render. A file whose result is not `ok` is quarantined whole by the
caller, with `failures` as the named reasons.

Engines: `gx` runs Great Expectations on pandas; `duckdb` runs the same checks as SQL with the
same failure messages; `auto` picks DuckDB from `GX_ROWS_MAX` rows up, because GX's cost grows
with the rows far faster than DuckDB's (figures in bench/README.md, "Quality gate").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

import polars as pl

from connectors.statements import LINE_SCHEMA
from pipelines.frames import BREAKS_SCHEMA, INTERNAL_SCHEMA
from pipelines.money import CURRENCY_EXPONENTS, exponent
from pipelines.quality import engines
from pipelines.quality.checks import (
    FLOAT_EXACT_INT_MAX,
    Between,
    Check,
    ColumnsMatch,
    ColumnType,
    InSet,
    NotNull,
    Outcome,
    PairEqual,
    RowCount,
    SumEquals,
    Unique,
)
from pipelines.records import BizType, BreakKind, LineType, PaymentStatus

if TYPE_CHECKING:
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResult

    from pipelines.matching.rules import Rule

Engine = Literal["auto", "gx", "duckdb"]

# From this many rows up, `auto` validates with DuckDB: GX on pandas costs seconds per million
# rows per expectation family, DuckDB a fraction of that (bench/quality.py), and merely importing
# GX costs 5-15 s, more than DuckDB needs for a million rows. Below it (the sample days, a small
# channel's file) GX runs itself; a 1M-payment day never pays for GX.
GX_ROWS_MAX = 100_000

# The largest amount one line or record may carry, in major units of its currency: ten billion
# covers a bank payout in VND or IDR and is still far from any real single payment. Scaled to
# minor units it stays below 2**53 for every exponent in the table, which keeps GX's float
# comparison exact (see checks.py).
AMOUNT_MAJOR_MAX = 10**10
assert AMOUNT_MAJOR_MAX * 10 ** max(CURRENCY_EXPONENTS.values()) < FLOAT_EXACT_INT_MAX


# Summary counters of one side of one channel; invariant 6 says the first equals the sum of the rest.
SIDE_COUNTERS = ("rows_in", "matched", "pending", "breaks", "rejected")


@dataclass(frozen=True)
class TableResult:
    """The outcomes of a suite on one table, and GX's result object when GX ran it."""

    suite: str
    asset: str
    outcomes: list[Outcome]
    rows: int
    gx_result: ExpectationSuiteValidationResult | None = None


@dataclass
class QualityResult:
    """The verdict of one suite on one source.

    `ok`: every expectation held. `failures`: one line per failed expectation naming it, its
    column(s) and the detail (examples, line numbers or observed against expected). `source`: what
    was validated (e.g. `alipay/alipay_2026-11-02.csv`, `internal/payments.csv`, `outputs`).
    `suite`: the suite's name. `statistics`: rows, evaluated, failed, engine. `tables`: the
    outcomes per table (and GX's own result when GX ran); `gx_results()` gives what Data Docs render.
    """

    ok: bool
    failures: list[str]
    source: str
    suite: str
    statistics: dict[str, Any]
    run_time: datetime
    tables: list[TableResult] = field(default_factory=list, repr=False)

    @property
    def outcomes(self) -> list[Outcome]:
        return [o for t in self.tables for o in t.outcomes]

    def gx_results(self) -> list[ExpectationSuiteValidationResult]:
        """GX suite validation results for every table: GX's own when it ran the checks, else
        built from the DuckDB outcomes (imports GX)."""
        return [
            t.gx_result
            if t.gx_result is not None
            else engines.gx_result_of(
                t.outcomes,
                suite_name=t.suite,
                asset_name=t.asset,
                run_time=self.run_time,
                engine=str(self.statistics["engine"]),
                rows=t.rows,
            )
            for t in self.tables
        ]


@dataclass(frozen=True)
class _Table:
    """One table a suite validates: its frame, the schema it must have, columns derived once the
    schema holds, its checks, and how a row is named in messages."""

    name: str
    frame: pl.DataFrame
    checks: Sequence[Check]
    location_column: str
    schema: dict[str, pl.DataType] | None = None
    derive: Sequence[pl.Expr] = ()


def _midnight(day: date, tz: str = "UTC") -> datetime:
    return datetime.combine(day, time(0), ZoneInfo(tz)).astimezone(UTC)


def _pick(engine: Engine, rows: int) -> Literal["gx", "duckdb"]:
    if engine == "auto":
        return "duckdb" if rows >= GX_ROWS_MAX else "gx"
    assert engine in ("gx", "duckdb"), engine
    return engine


def _run_table(table: _Table, *, suite: str, asset: str, run_time: datetime, engine: str) -> TableResult:
    found = engines.schema_outcomes(table.frame, table.schema) if table.schema is not None else []
    if not all(o.success for o in found):
        # Nothing else can be judged on the wrong columns or types.
        return TableResult(suite, asset, found, table.frame.height)
    frame = table.frame.with_columns(*table.derive) if table.derive else table.frame
    # Only the columns the checks read go to the engine: converting a wide frame (hashes, raw
    # lines) to Arrow or pandas would cost more than checking it.
    used = {table.location_column} - {engines.ROW}
    for check in table.checks:
        used.update(check.columns_used())
    frame = frame.select([c for c in frame.columns if c in used])
    if engine == "duckdb":
        return TableResult(
            suite,
            asset,
            found + engines.run_duckdb(frame, table.checks, location_column=table.location_column),
            frame.height,
        )
    exact = [c for c in table.checks if isinstance(c, SumEquals)]
    found += engines.exact_outcomes(frame, exact)
    by_gx, result = engines.run_gx(
        frame,
        [c for c in table.checks if not isinstance(c, SumEquals)],
        suite_name=suite,
        asset_name=asset,
        location_column=table.location_column,
        run_time=run_time,
    )
    merged = engines.gx_result_of(
        found, suite_name=suite, asset_name=asset, run_time=run_time, engine="payrecon", rows=frame.height, base=result
    )
    # Failures keep the order of the suite: schema, then the checks as listed.
    by_check = {id(o.check): o for o in [*found, *by_gx]}
    ordered = [o for o in found if isinstance(o.check, (ColumnsMatch, ColumnType))]
    ordered += [by_check[id(c)] for c in table.checks]
    return TableResult(suite, asset, ordered, frame.height, merged)


def _run(tables: Sequence[_Table], *, suite: str, source: str, run_time: datetime, engine: Engine) -> QualityResult:
    chosen = _pick(engine, max((t.frame.height for t in tables), default=0))
    results = [
        _run_table(
            table,
            suite=suite if len(tables) == 1 else f"{suite}.{table.name}",
            asset=source if len(tables) == 1 else f"{source}:{table.name}",
            run_time=run_time,
            engine=chosen,
        )
        for table in tables
    ]
    outcomes = [o for r in results for o in r.outcomes]
    failed = [o for o in outcomes if not o.success]
    return QualityResult(
        ok=not failed,
        failures=[o.message() for o in failed],
        source=source,
        suite=suite,
        statistics={
            "rows": sum(t.frame.height for t in tables),
            "evaluated": len(outcomes),
            "failed": len(failed),
            "engine": chosen,
        },
        run_time=run_time,
        tables=results,
    )


def statement_checks(rule: Rule, business_date: date, controls: Mapping[str, Any] | None = None) -> list[Check]:
    """The statement suite for one file of `rule`'s channel on `business_date` (see validate_statement)."""
    bound = AMOUNT_MAJOR_MAX * 10 ** exponent(rule.currency)
    checks: list[Check] = [
        *(NotNull(c) for c in ("channel", "business_date", "source_file", "line_no", "line_type")),
        *(NotNull(c) for c in ("gross_minor", "fee_minor", "net_minor", "currency")),
        InSet("channel", (rule.channel,)),
        InSet("line_type", tuple(t.value for t in LineType)),
        # A duplicate charge has two distinct transaction ids; one id twice in a file is a defect.
        Unique("channel_txn_id"),
        InSet("currency", (rule.currency,)),
        *(Between(c, -bound, bound) for c in ("gross_minor", "fee_minor", "net_minor")),
        PairEqual("net_minor", "gross_minus_fee_minor"),
        # The day before (late bookings of cross-day items) to the day after (cross-day items of
        # this day booked in the next one), in the channel's own time zone.
        Between(
            "booked_at",
            _midnight(business_date - timedelta(days=1), rule.timezone),
            _midnight(business_date + timedelta(days=2), rule.timezone),
            strict_max=True,
        ),
    ]
    if controls:
        if controls.get("rows") is not None:
            checks.append(RowCount(int(controls["rows"])))
        for key in ("gross", "fee", "net"):
            if controls.get(key) is not None:
                checks.append(SumEquals(f"{key}_minor", int(controls[key])))
    return checks


def validate_statement(
    frame: pl.DataFrame,
    *,
    rule: Rule,
    business_date: date,
    source: str,
    controls: dict[str, Any] | None = None,
    engine: Engine = "auto",
) -> QualityResult:
    """Validate one parsed statement file.

    `frame`: the file's lines with `connectors.statements.LINE_SCHEMA` (amounts Int64 minor units).
    `rule`: the channel's rule (its channel, currency and time zone). `business_date`: the day the
    file covers. `source`: how the file is named in messages and Data Docs. `controls`: the file's
    own control totals when its format has them, keys `rows` (count) and `gross`/`fee`/`net`
    (minor units). Expectations: the schema and types; the not-null columns; channel, line_type
    and currency in their closed sets; `channel_txn_id` unique where present; every amount within
    `AMOUNT_MAJOR_MAX` major units; net = gross - fee; `booked_at` in [business_date - 1 day,
    business_date + 2 days) in the rule's time zone; the control totals.
    """
    # Int128 so the difference itself cannot wrap; beyond Int64 it becomes null, which only happens
    # when the amount bounds already fail.
    gross_minus_fee = (
        (pl.col("gross_minor").cast(pl.Int128) - pl.col("fee_minor").cast(pl.Int128))
        .cast(pl.Int64, strict=False)
        .alias("gross_minus_fee_minor")
    )
    checks = statement_checks(rule, business_date, controls)
    table = _Table("lines", frame, checks, "line_no", dict(LINE_SCHEMA), derive=(gross_minus_fee,))
    return _run(
        [table], suite=f"statement.{rule.channel}", source=source, run_time=_midnight(business_date), engine=engine
    )


def internal_checks(business_date: date) -> list[Check]:
    """The suite of the day's internal records (see validate_internal)."""
    bound = AMOUNT_MAJOR_MAX * 10 ** max(CURRENCY_EXPONENTS.values())
    return [
        NotNull("payment_id"),
        Unique("payment_id"),
        *(NotNull(c) for c in ("biz_type", "channel", "amount_minor", "currency", "status", "created_at")),
        InSet("biz_type", tuple(t.value for t in BizType)),
        InSet("status", tuple(s.value for s in PaymentStatus)),
        Between("amount_minor", 0, bound),
        Between("fee_minor", 0, bound),
        InSet("currency", tuple(sorted(CURRENCY_EXPONENTS))),
        NotNull("parent_payment_id", where=("biz_type", BizType.REFUND.value)),
        Between(
            "created_at",
            _midnight(business_date - timedelta(days=1)),
            _midnight(business_date + timedelta(days=1)),
            strict_max=True,
        ),
    ]


def validate_internal(
    frame: pl.DataFrame, *, business_date: date, source: str, engine: Engine = "auto"
) -> QualityResult:
    """Validate the day's internal records.

    `frame`: `internal/payments.csv` typed as `INTERNAL_SCHEMA` (amount_minor and fee_minor Int64
    minor units, timestamps Datetime(us, UTC)), rows in file order (failures name 0-based rows).
    Expectations: the schema; payment_id present and unique; biz_type and status in their enums;
    amount_minor and fee_minor in [0, `AMOUNT_MAJOR_MAX` major units of the widest currency];
    currency in the ISO 4217 table; parent_payment_id present on a REFUND; created_at in
    [business_date - 1 day, business_date + 1 day) UTC. `engine`: see the module docstring.
    """
    table = _Table("payments", frame, internal_checks(business_date), engines.ROW, INTERNAL_SCHEMA)
    return _run([table], suite="internal", source=source, run_time=_midnight(business_date), engine=engine)


def validate_outputs(summary: dict[str, Any], breaks: pl.DataFrame, *, engine: Engine = "auto") -> QualityResult:
    """Validate a day's outputs against each other.

    `summary`: the day's summary.json as a dict (shape agreed with the engine; see
    pipelines/report). `breaks`: the day's breaks (`BREAKS_CSV_COLUMNS`). Expectations: invariant 6
    for each channel and side (rows_in = matched + pending + breaks + rejected); break_id present
    and unique; kind in the closed set; the count of breaks per channel and kind, and per kind over
    all channels, equals the summary's.
    """
    business_date = date.fromisoformat(summary["business_date"])
    run_time = _midnight(business_date)
    if not all(o.success for o in engines.schema_outcomes(breaks, BREAKS_SCHEMA)):
        # Counting breaks by kind needs the agreed columns; report the schema alone.
        table = _Table("breaks", breaks, [], engines.ROW, BREAKS_SCHEMA)
        return _run([table], suite="outputs", source="outputs", run_time=run_time, engine=engine)
    channels: dict[str, Any] = summary.get("channels", {})
    rows: list[dict[str, Any]] = []
    for channel in sorted(channels):
        for side in ("internal", "channel"):
            counters = channels[channel][side]
            rows.append(
                {
                    "key": f"{channel}/{side}",
                    "rows_in": int(counters["rows_in"]),
                    "accounted": sum(int(counters[k]) for k in SIDE_COUNTERS[1:]),
                }
            )
    invariant = pl.DataFrame(rows, schema={"key": pl.String, "rows_in": pl.Int64, "accounted": pl.Int64})

    observed: dict[str, int] = {}
    if breaks.height:
        per = breaks.group_by("channel", "kind").len()
        for channel, kind, n in per.iter_rows():
            observed[f"{channel}/{kind}"] = observed.get(f"{channel}/{kind}", 0) + int(n)
            observed[f"*/{kind}"] = observed.get(f"*/{kind}", 0) + int(n)
    expected: dict[str, int] = {}
    for channel in sorted(channels):
        for kind, n in channels[channel].get("breaks_by_kind", {}).items():
            expected[f"{channel}/{kind}"] = int(n)
    for kind, n in summary.get("breaks_by_kind", {}).items():
        expected[f"*/{kind}"] = int(n)
    keys = sorted(set(observed) | set(expected))
    # A kind with no breaks may be left out of the summary or listed as 0: both mean zero.
    by_kind = pl.DataFrame(
        {
            "key": keys,
            "in_summary": [expected.get(k, 0) for k in keys],
            "in_breaks": [observed.get(k, 0) for k in keys],
        },
        schema={"key": pl.String, "in_summary": pl.Int64, "in_breaks": pl.Int64},
    )
    tables = [
        _Table("invariant6", invariant, [PairEqual("rows_in", "accounted")], "key"),
        _Table(
            "breaks",
            breaks,
            [
                NotNull("break_id"),
                Unique("break_id"),
                NotNull("kind"),
                InSet("kind", tuple(k.value for k in BreakKind)),
            ],
            engines.ROW,
        ),
        _Table("breaks_by_kind", by_kind, [PairEqual("in_summary", "in_breaks")], "key"),
    ]
    return _run(tables, suite="outputs", source="outputs", run_time=run_time, engine=engine)
