"""Compile a `Rule` to DuckDB SQL expressions, never through `eval`.

Every expression is built from the typed rule (integers and closed enums) and quoted literals, so a
rule file cannot inject SQL. Amount arithmetic is done in HUGEINT: the difference or the fee product
of two 64-bit amounts can exceed 64 bits, and DuckDB must neither wrap nor fail on a legal input.

The classification (`classify_expr`) is the precedence of `pipelines.matching.classify.classify_pair`
written as one CASE; `tests/batch/test_sql_classify.py` checks the two agree on random pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.matching.classify import CREDIT_BIZ_TYPES
from pipelines.matching.rules import Rule
from pipelines.money import PPM
from pipelines.records import BIZ_TYPE_SIGN, TXN_KEYED_KINDS, BizType, BreakKind, PaymentStatus


def lit(text: str) -> str:
    """A SQL string literal (single quotes doubled)."""
    return "'" + text.replace("'", "''") + "'"


def _int(value: int) -> str:
    assert type(value) is int, value
    return str(value)


def signed_amount_expr(biz_type: str, amount: str) -> str:
    """Our positive `amount` signed from the account's point of view (credit positive), as BIGINT."""
    credits = ", ".join(lit(b.value) for b in BizType if BIZ_TYPE_SIGN[b] > 0)
    return f"(CASE WHEN {biz_type} IN ({credits}) THEN {amount} ELSE -{amount} END)"


def is_credit_expr(biz_type: str) -> str:
    credits = ", ".join(lit(b.value) for b in sorted(CREDIT_BIZ_TYPES))
    return f"({biz_type} IN ({credits}))"


def expected_fee_expr(rule: Rule, biz_type: str, amount: str) -> str:
    """The contracted fee (HUGEINT, minor units) of our record, as `Fees.expected_fee` computes it:
    rate_ppm of |amount| rounded half up, plus fixed, clamped to [min, max]; 0 without a rate."""
    arms = []
    for rate in rule.fees.contracted:
        fee = f"((abs({amount}::HUGEINT) * {_int(rate.rate_ppm)} * 2 + {PPM}) // {2 * PPM} + {_int(rate.fixed_minor)})"
        fee = f"greatest({fee}, {_int(rate.min_minor)}::HUGEINT)"
        if rate.max_minor is not None:
            fee = f"least({fee}, {_int(rate.max_minor)}::HUGEINT)"
        arms.append(f"WHEN {lit(rate.biz_type.value)} THEN {fee}")
    if not arms:
        return "0::HUGEINT"
    return f"(CASE {biz_type} {' '.join(arms)} ELSE 0::HUGEINT END)"


@dataclass(frozen=True)
class PairColumns:
    """Names (or expressions) of the inputs of one classification, as `classify_pair` takes them.

    `ours` is our signed amount, `expected_fee` the contracted fee, `channel_amount` the channel's
    signed gross, `channel_fee` NULL where the source carries no fee; statuses are PaymentStatus values.
    """

    credit: str
    ours: str
    expected_fee: str
    internal_currency: str
    internal_status: str
    channel_amount: str
    channel_currency: str
    channel_status: str
    channel_fee: str


def classify_expr(rule: Rule, c: PairColumns) -> tuple[str, str, str]:
    """Three SQL expressions: the break kind (NULL for a clean match) and the internal and channel
    amounts a break reports (for FEE_MISMATCH the expected and the charged fee), in the precedence
    of `classify_pair`: currency, status, amount (partial on a short credit), fee."""
    ok = lit(PaymentStatus.SUCCEEDED.value)
    delta = f"({c.channel_amount}::HUGEINT - {c.ours}::HUGEINT)"
    tol = _int(rule.amount_tolerance_minor)
    fee_tol = _int(rule.fees.tolerance_minor)
    partial = (
        f"{c.credit} AND (({c.channel_amount} >= 0) = ({c.ours} >= 0)) "
        f"AND abs({c.channel_amount}::HUGEINT) < abs({c.ours}::HUGEINT)"
    )
    fee_bad = f"{c.channel_fee} IS NOT NULL AND abs({c.channel_fee}::HUGEINT - {c.expected_fee}::HUGEINT) > {fee_tol}"
    kind = (
        "CASE"
        f" WHEN {c.internal_currency} <> {c.channel_currency} THEN {lit(BreakKind.CURRENCY_MISMATCH)}"
        f" WHEN ({c.internal_status} = {ok}) <> ({c.channel_status} = {ok}) THEN {lit(BreakKind.STATUS_MISMATCH)}"
        f" WHEN abs({delta}) > {tol} THEN CASE WHEN {partial} THEN {lit(BreakKind.PARTIAL_PAYMENT)}"
        f" ELSE {lit(BreakKind.AMOUNT_MISMATCH)} END"
        f" WHEN {fee_bad} THEN {lit(BreakKind.FEE_MISMATCH)}"
        " ELSE NULL END"
    )
    # Which amounts a break reports depends only on whether it is a fee break.
    is_fee = (
        f"({c.internal_currency} = {c.channel_currency} AND ({c.internal_status} = {ok}) = ({c.channel_status} = {ok})"
        f" AND abs({delta}) <= {tol} AND {fee_bad})"
    )
    internal_amount = f"(CASE WHEN {is_fee} THEN {c.expected_fee}::HUGEINT ELSE {c.ours}::HUGEINT END)"
    channel_amount = f"(CASE WHEN {is_fee} THEN {c.channel_fee}::HUGEINT ELSE {c.channel_amount}::HUGEINT END)"
    return kind, internal_amount, channel_amount


def break_id_expr(channel: str, kind: str, payment_id: str, channel_txn_id: str) -> str:
    """SQL computing `pipelines.records.break_id` (same digest, same inputs) for every row."""
    keyed = ", ".join(lit(k.value) for k in sorted(TXN_KEYED_KINDS))
    txn = f"(CASE WHEN {kind} IN ({keyed}) THEN coalesce({channel_txn_id}, '') ELSE '' END)"
    parts = f"{channel} || chr(31) || {kind} || chr(31) || coalesce({payment_id}, '') || chr(31) || {txn}"
    return f"('brk_' || left(sha256({parts}), 32))"


def task_id_expr(break_id: str, action: str) -> str:
    """SQL computing `pipelines.records.task_id(break_id, action)` for every row."""
    return f"('tsk_' || left(sha256({break_id} || chr(31) || {action}), 32))"
