"""The SQL the engine compiles from a rule equals the reference semantics in Python.

`classify_expr` must classify every pair exactly as `classify_pair` does (kind and reported
amounts), and the SQL ids must equal `records.break_id` / `records.task_id`, so breaks keep one
identity across the stream and batch engines.
"""

from __future__ import annotations

from typing import Any

import duckdb
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.matching.classify import classify_pair
from pipelines.matching.rules import Rule
from pipelines.matching.sql import (
    PairColumns,
    break_id_expr,
    classify_expr,
    expected_fee_expr,
    is_credit_expr,
    signed_amount_expr,
    task_id_expr,
)
from pipelines.records import BIZ_TYPE_SIGN, BizType, BreakKind, PaymentStatus, RepairAction, break_id, task_id

INT64_MAX = 2**63 - 1
CON = duckdb.connect()
# Ids are printable text; NUL never occurs in them (DuckDB strings stop there).
id_text = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]), max_size=20)

amounts = st.one_of(st.integers(0, 10_000), st.integers(0, INT64_MAX))
signed = st.one_of(st.integers(-10_000, 10_000), st.integers(-INT64_MAX, INT64_MAX))
statuses = st.sampled_from([s.value for s in PaymentStatus])

fee_rates = st.fixed_dictionaries(
    {
        "biz_type": st.sampled_from([b.value for b in BizType]),
        "rate_ppm": st.integers(0, 1_000_000),
        "fixed_minor": st.integers(0, 1000),
        "min_minor": st.integers(0, 500),
        "max_minor": st.one_of(st.none(), st.integers(0, 100_000)),
    }
)


@st.composite
def rules(draw: st.DrawFn) -> Rule:
    contracted = draw(st.lists(fee_rates, max_size=3, unique_by=lambda r: r["biz_type"]))
    return Rule.model_validate(
        {
            "rule_id": "prop",
            "version": 1,
            "channel": "prop",
            "parser": "payrecon_csv",
            "account": "acct",
            "currency": "CNY",
            "status_map": {"OK": "SUCCEEDED"},
            "amount_tolerance_minor": draw(st.integers(0, 50)),
            "approval_threshold_minor": 0,
            "fees": {"basis": "gross", "tolerance_minor": draw(st.integers(0, 5)), "contracted": contracted},
        }
    )


pairs = st.fixed_dictionaries(
    {
        "biz_type": st.sampled_from([b.value for b in BizType]),
        "amount_minor": amounts,
        "i_currency": st.sampled_from(["CNY", "USD"]),
        "i_status": statuses,
        "c_amount": signed,
        "c_currency": st.sampled_from(["CNY", "USD"]),
        "c_status": statuses,
        "c_fee": st.one_of(st.none(), st.integers(-1000, 10_000)),
    }
)


@st.composite
def pairs_for(draw: st.DrawFn, rule: Rule) -> dict[str, Any]:
    """A pair, half the time one whose channel side is within a few units of ours and of the
    contracted fee: where the tolerances decide. Independent amounts almost never land there (a
    delta within 5 of 20,000 possible), so the fee branch went all but untested."""
    row: dict[str, Any] = draw(pairs)
    if draw(st.booleans()):
        biz_type = BizType(row["biz_type"])
        row["amount_minor"] = amount = draw(st.integers(0, 10**9))
        row["c_currency"] = row["i_currency"]
        slack = rule.amount_tolerance_minor + 2
        row["c_amount"] = BIZ_TYPE_SIGN[biz_type] * amount + draw(st.integers(-slack, slack))
        expected, slack = rule.fees.expected_fee(biz_type, amount), rule.fees.tolerance_minor + 2
        row["c_fee"] = draw(st.one_of(st.none(), st.integers(expected - slack, expected + slack)))
    return row


def _sql_verdicts(rule: Rule, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    frame = pl.DataFrame(
        rows,
        schema={
            "biz_type": pl.String,
            "amount_minor": pl.Int64,
            "i_currency": pl.String,
            "i_status": pl.String,
            "c_amount": pl.Int64,
            "c_currency": pl.String,
            "c_status": pl.String,
            "c_fee": pl.Int64,
        },
        orient="row",
    )
    con = CON
    con.register("pairs", frame)
    cols = PairColumns(
        credit="credit",
        ours="ours",
        expected_fee="exp_fee",
        internal_currency="i_currency",
        internal_status="i_status",
        channel_amount="c_amount",
        channel_currency="c_currency",
        channel_status="c_status",
        channel_fee="c_fee",
    )
    kind, internal_amount, channel_amount = classify_expr(rule, cols)
    query = f"""
        WITH p AS (
            SELECT row_number() OVER () AS n, *, {signed_amount_expr("biz_type", "amount_minor")} AS ours,
                   {expected_fee_expr(rule, "biz_type", "amount_minor")} AS exp_fee,
                   {is_credit_expr("biz_type")} AS credit
            FROM pairs)
        SELECT {kind}, CASE WHEN {kind} IS NULL THEN NULL ELSE {internal_amount} END,
               CASE WHEN {kind} IS NULL THEN NULL ELSE {channel_amount} END
        FROM p ORDER BY n"""
    return [
        (k, None if a is None else int(a), None if b is None else int(b)) for k, a, b in con.execute(query).fetchall()
    ]


@settings(max_examples=200, deadline=None)
@given(rule=rules(), data=st.data())
def test_sql_classification_equals_classify_pair(rule: Rule, data: st.DataObject) -> None:
    rows = data.draw(st.lists(pairs_for(rule), min_size=1, max_size=25))
    got = _sql_verdicts(rule, rows)
    for row, (kind, internal_amount, channel_amount) in zip(rows, got, strict=True):
        want = classify_pair(
            rule,
            biz_type=BizType(row["biz_type"]),
            internal_amount_minor=row["amount_minor"],
            internal_currency=row["i_currency"],
            internal_status=PaymentStatus(row["i_status"]),
            channel_gross_minor=row["c_amount"],
            channel_currency=row["c_currency"],
            channel_status=PaymentStatus(row["c_status"]),
            channel_fee_minor=row["c_fee"],
        )
        assert (kind, internal_amount, channel_amount) == (
            want.kind.value if want.kind else None,
            want.internal_amount_minor,
            want.channel_amount_minor,
        ), row


def test_classification_covers_each_kind_once() -> None:
    """A hand-written pair per kind, so a precedence slip shows by name and not only as a counterexample."""
    rule = Rule.model_validate(
        {
            "rule_id": "r",
            "version": 1,
            "channel": "c",
            "parser": "payrecon_csv",
            "account": "a",
            "currency": "CNY",
            "status_map": {"OK": "SUCCEEDED"},
            "approval_threshold_minor": 0,
            "fees": {"contracted": [{"biz_type": "PAY", "rate_ppm": 6000}]},
        }
    )
    base = {"biz_type": "PAY", "amount_minor": 10_000, "i_currency": "CNY", "i_status": "SUCCEEDED"}
    chan = {"c_amount": 10_000, "c_currency": "CNY", "c_status": "SUCCEEDED", "c_fee": 60}
    cases: list[tuple[dict[str, Any], dict[str, Any], BreakKind | None]] = [
        ({}, {}, None),
        ({"i_currency": "USD"}, {}, BreakKind.CURRENCY_MISMATCH),
        ({"i_status": "PROCESSING"}, {}, BreakKind.STATUS_MISMATCH),
        ({"i_status": "PROCESSING"}, {"c_status": "FAILED"}, None),
        ({}, {"c_amount": 9_000}, BreakKind.PARTIAL_PAYMENT),
        ({}, {"c_amount": 0}, BreakKind.PARTIAL_PAYMENT),  # captured nothing of a payment: still partial
        ({}, {"c_amount": 11_000}, BreakKind.AMOUNT_MISMATCH),
        ({"biz_type": "WITHDRAW"}, {"c_amount": -9_000, "c_fee": 0}, BreakKind.AMOUNT_MISMATCH),
        ({}, {"c_fee": 61}, BreakKind.FEE_MISMATCH),
        ({}, {"c_fee": 59}, BreakKind.FEE_MISMATCH),  # charged less than contracted is a break too
        ({}, {"c_fee": None}, None),
        ({}, {"c_amount": -10_000}, BreakKind.AMOUNT_MISMATCH),  # the opposite sign is never partial
        ({"biz_type": "REFUND"}, {"c_amount": -9_000, "c_fee": 0}, BreakKind.AMOUNT_MISMATCH),  # a debit
    ]
    rows = [{**base, **i, **chan, **c} for i, c, _ in cases]
    got = [k for k, _, _ in _sql_verdicts(rule, rows)]
    assert got == [k.value if k else None for _, _, k in cases]


@settings(max_examples=100, deadline=None)
@given(
    channel=id_text.filter(bool),
    kind=st.sampled_from(list(BreakKind)),
    payment_id=st.one_of(st.none(), id_text),
    txn=st.one_of(st.none(), id_text),
    action=st.sampled_from(list(RepairAction)),
)
def test_sql_ids_equal_records_ids(
    channel: str, kind: BreakKind, payment_id: str | None, txn: str | None, action: RepairAction
) -> None:
    bid = break_id_expr("c", "k", "p", "t")
    query = f"SELECT {bid} FROM (SELECT ?::VARCHAR AS c, ?::VARCHAR AS k, ?::VARCHAR AS p, ?::VARCHAR AS t)"
    got = CON.execute(query, [channel, kind.value, payment_id, txn]).fetchall()[0][0]
    assert got == break_id(channel, kind, payment_id, txn)
    query = f"SELECT {task_id_expr('b', 'a')} FROM (SELECT ?::VARCHAR AS b, ?::VARCHAR AS a)"
    tid = CON.execute(query, [got, action.value]).fetchall()[0][0]
    assert tid == task_id(got, action)
