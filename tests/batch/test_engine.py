"""The matching engine on small hand-built days: passes, groups, strategies, ties, carry-forward."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
import polars as pl
import pytest
from frames import DAY, T0, internal, lines

from pipelines.batch import engine
from pipelines.batch.engine import ChannelResult, match_channel
from pipelines.matching.rules import Rule, rule_for


def make_rule(**overrides: Any) -> Rule:
    base: dict[str, Any] = {
        "rule_id": "test-cny",
        "version": 2,
        "channel": "alipay",
        "parser": "payrecon_csv",
        "account": "acct",
        "currency": "CNY",
        "status_map": {"TRADE_SUCCESS": "SUCCEEDED"},
        "approval_threshold_minor": 100_000,
        "strategy": "one_to_many",
    }
    base.update(overrides)
    return Rule.model_validate(base)


def run(rule: Rule, ours: pl.DataFrame, theirs: pl.DataFrame, day: date = DAY) -> ChannelResult:
    return match_channel(duckdb.connect(), rule, day, ours, theirs)


def kinds(result: ChannelResult) -> list[tuple[str, str | None, str | None]]:
    return sorted(
        (row["kind"], row["payment_id"], row["channel_txn_id"]) for row in result.breaks.iter_rows(named=True)
    )


def test_clean_day_has_no_breaks_and_counts_add_up() -> None:
    ours = internal([{"payment_id": f"p{n}", "amount_minor": 100 + n, "channel_txn_id": f"t{n}"} for n in range(5)])
    theirs = lines([{"channel_txn_id": f"t{n}", "payment_id": f"p{n}", "gross_minor": 100 + n} for n in range(5)])
    result = run(make_rule(), ours, theirs)
    assert kinds(result) == []
    assert result.internal == {"rows_in": 5, "matched": 5, "pending": 0, "breaks": 0, "rejected": 0}
    assert result.channel == {"rows_in": 5, "matched": 5, "pending": 0, "breaks": 0, "rejected": 0}


def test_payment_id_pass_takes_lines_without_our_txn_id() -> None:
    ours = internal([{"payment_id": "p1", "amount_minor": 500}])
    theirs = lines([{"channel_txn_id": "t1", "payment_id": "p1", "gross_minor": 500}])
    assert kinds(run(make_rule(), ours, theirs)) == []


def test_amount_time_matches_the_only_candidate() -> None:
    ours = internal([{"payment_id": "p1", "amount_minor": 700}, {"payment_id": "p2", "amount_minor": 800}])
    theirs = lines([{"channel_txn_id": "t1", "gross_minor": 700}])
    result = run(make_rule(), ours, theirs)
    assert kinds(result) == [("MISSING_AT_CHANNEL", "p2", None)]


def test_amount_time_respects_the_window() -> None:
    ours = internal([{"payment_id": "p1", "amount_minor": 700, "created_at": T0}])
    theirs = lines([{"channel_txn_id": "t1", "gross_minor": 700, "booked_at": T0 + timedelta(seconds=601)}])
    result = run(make_rule(amount_time_window_s=600), ours, theirs)
    assert kinds(result) == [("MISSING_AT_CHANNEL", "p1", None), ("MISSING_INTERNAL", None, "t1")]


def test_a_tie_is_one_ambiguous_break_and_never_a_pick() -> None:
    ours = internal([{"payment_id": "p1", "amount_minor": 700}, {"payment_id": "p2", "amount_minor": 700}])
    theirs = lines([{"channel_txn_id": "t1", "gross_minor": 700}])
    result = run(make_rule(), ours, theirs)
    assert kinds(result) == [("AMBIGUOUS", None, "t1")]
    assert result.internal["breaks"] == 2 and result.internal["matched"] == 0
    assert result.channel["breaks"] == 1


def test_two_lines_competing_for_one_record_are_both_ambiguous() -> None:
    ours = internal([{"payment_id": "p1", "amount_minor": 700}])
    theirs = lines([{"channel_txn_id": "t1", "gross_minor": 700}, {"channel_txn_id": "t2", "gross_minor": 700}])
    result = run(make_rule(), ours, theirs)
    assert kinds(result) == [("AMBIGUOUS", None, "t1"), ("AMBIGUOUS", None, "t2")]


def test_the_channel_id_pass_matches_one_candidate_and_never_picks_among_two() -> None:
    """A bank line without our reference, known to us by its channel id alone (the fast path
    leaves nothing here: it pairs by the payment id)."""
    ours = internal([{"payment_id": "p1", "amount_minor": 700, "channel_txn_id": "t1"}])
    theirs = lines([{"channel_txn_id": "t1", "gross_minor": 700}])
    result = run(make_rule(), ours, theirs)
    assert kinds(result) == [] and result.internal["matched"] == 1
    # Two of our records name the same channel id: both and the line are a person's call.
    ours = internal([{"payment_id": "p1", "amount_minor": 700, "channel_txn_id": "t1"},
                     {"payment_id": "p2", "amount_minor": 700, "channel_txn_id": "t1"}])  # fmt: skip
    result = run(make_rule(), ours, theirs)
    assert kinds(result) == [("AMBIGUOUS", None, "t1")]
    assert result.internal["breaks"] == 2 and result.internal["matched"] == 0


def test_a_line_with_a_reference_never_matches_on_amount() -> None:
    ours = internal([{"payment_id": "p1", "amount_minor": 700}])
    theirs = lines([{"channel_txn_id": "t1", "payment_id": "unknown", "gross_minor": 700}])
    result = run(make_rule(), ours, theirs)
    assert kinds(result) == [("MISSING_AT_CHANNEL", "p1", None), ("MISSING_INTERNAL", None, "t1")]


def test_split_settlement_sums_to_the_order() -> None:
    ours = internal([{"payment_id": "p1", "amount_minor": 1000, "channel_txn_id": "t1"}])
    theirs = lines(
        [
            {"channel_txn_id": "t1", "payment_id": "p1", "gross_minor": 600},
            {"channel_txn_id": "t1b", "payment_id": "p1", "gross_minor": 400},
        ]
    )
    result = run(make_rule(), ours, theirs)
    assert kinds(result) == []
    assert result.channel["matched"] == 2


def test_duplicate_charges_each_carry_the_full_amount() -> None:
    ours = internal([{"payment_id": "p1", "amount_minor": 1000, "channel_txn_id": "t1"}])
    theirs = lines(
        [
            {"channel_txn_id": "t1", "payment_id": "p1", "gross_minor": 1000},
            {"channel_txn_id": "t2", "payment_id": "p1", "gross_minor": 1000},
            {"channel_txn_id": "t3", "payment_id": "p1", "gross_minor": 1000},
        ]
    )
    result = run(make_rule(), ours, theirs)
    assert kinds(result) == [("DUPLICATE_PAYMENT", "p1", "t2"), ("DUPLICATE_PAYMENT", "p1", "t3")]
    assert result.internal["matched"] == 1
    assert result.channel == {"rows_in": 3, "matched": 1, "pending": 0, "breaks": 2, "rejected": 0}


def test_lines_that_neither_split_nor_duplicate_are_classified_by_their_sum() -> None:
    ours = internal([{"payment_id": "p1", "amount_minor": 1000, "channel_txn_id": "t1"}])
    theirs = lines(
        [
            {"channel_txn_id": "t1", "payment_id": "p1", "gross_minor": 300},
            {"channel_txn_id": "t2", "payment_id": "p1", "gross_minor": 300},
        ]
    )
    result = run(make_rule(), ours, theirs)
    assert kinds(result) == [("PARTIAL_PAYMENT", "p1", "t1")]
    row = result.breaks.row(0, named=True)
    assert (row["internal_amount_minor"], row["channel_amount_minor"], row["delta_minor"]) == (1000, 600, -400)


def test_one_to_one_takes_a_second_line_as_a_duplicate() -> None:
    ours = internal([{"payment_id": "p1", "amount_minor": 1000}])
    theirs = lines(
        [
            {"channel_txn_id": "t1", "payment_id": "p1", "gross_minor": 600},
            {"channel_txn_id": "t2", "payment_id": "p1", "gross_minor": 400},
        ]
    )
    result = run(make_rule(strategy="one_to_one"), ours, theirs)
    assert kinds(result) == [("DUPLICATE_PAYMENT", "p1", "t2"), ("PARTIAL_PAYMENT", "p1", "t1")]


def test_many_to_one_aggregated_line() -> None:
    ours = internal([{"payment_id": f"p{n}", "amount_minor": 100, "channel_txn_id": "batch-1"} for n in range(3)])
    good = lines([{"channel_txn_id": "batch-1", "gross_minor": 300}])
    assert kinds(run(make_rule(strategy="many_to_one"), ours, good)) == []
    short = lines([{"channel_txn_id": "batch-1", "gross_minor": 250}])
    result = run(make_rule(strategy="many_to_one"), ours, short)
    assert kinds(result) == [("PARTIAL_PAYMENT", "p0", "batch-1")]
    assert result.internal["breaks"] == 3
    # The same shape under one_to_one is three of ours claiming one channel id: a tie.
    assert kinds(run(make_rule(strategy="one_to_one"), ours, good)) == [("AMBIGUOUS", None, "batch-1")]


def test_contracted_fee_and_net_basis() -> None:
    fees = {"contracted": [{"biz_type": "PAY", "rate_ppm": 6000}]}
    ours = internal([{"payment_id": "p1", "amount_minor": 10_000, "channel_txn_id": "t1"}])
    right = lines([{"channel_txn_id": "t1", "payment_id": "p1", "gross_minor": 10_000, "fee_minor": 60}])
    wrong = lines([{"channel_txn_id": "t1", "payment_id": "p1", "gross_minor": 10_000, "fee_minor": 70}])
    assert kinds(run(make_rule(fees=fees), ours, right)) == []
    result = run(make_rule(fees=fees), ours, wrong)
    assert kinds(result) == [("FEE_MISMATCH", "p1", "t1")]
    assert result.breaks.row(0, named=True)["delta_minor"] == 10
    # Net basis: our amount minus the contracted fee against the net; a wrong fee is an amount break.
    net = {**fees, "basis": "net"}
    assert kinds(run(make_rule(fees=net), ours, right)) == []
    assert kinds(run(make_rule(fees=net), ours, wrong)) == [("PARTIAL_PAYMENT", "p1", "t1")]


def test_status_currency_and_debits() -> None:
    ours = internal(
        [
            {"payment_id": "p1", "amount_minor": 500, "channel_txn_id": "t1", "status": "PROCESSING"},
            {"payment_id": "p2", "amount_minor": 500, "channel_txn_id": "t2", "currency": "USD"},
            {"payment_id": "p3", "amount_minor": 500, "channel_txn_id": "t3", "biz_type": "REFUND"},
            {"payment_id": "p4", "amount_minor": 500, "channel_txn_id": "t4", "biz_type": "WITHDRAW"},
        ]
    )
    theirs = lines(
        [
            {"channel_txn_id": "t1", "payment_id": "p1", "gross_minor": 500},
            {"channel_txn_id": "t2", "payment_id": "p2", "gross_minor": 500},
            {"channel_txn_id": "t3", "payment_id": "p3", "gross_minor": -500},
            {"channel_txn_id": "t4", "payment_id": "p4", "gross_minor": -400},
        ]
    )
    result = run(make_rule(), ours, theirs)
    assert kinds(result) == [
        ("AMOUNT_MISMATCH", "p4", "t4"),
        ("CURRENCY_MISMATCH", "p2", "t2"),
        ("STATUS_MISMATCH", "p1", "t1"),
    ]
    currency = result.breaks.filter(pl.col("kind") == "CURRENCY_MISMATCH").row(0, named=True)
    assert currency["delta_minor"] is None  # amounts in two currencies are never subtracted


def test_records_that_moved_no_money_agree_without_a_line() -> None:
    ours = internal([{"payment_id": "p1", "amount_minor": 500, "status": "FAILED"}])
    theirs = lines([{"channel_txn_id": "t9", "gross_minor": 0, "status": "FAILED"}])
    result = run(make_rule(), ours, theirs)
    assert kinds(result) == []
    assert result.internal["matched"] == 1 and result.channel["matched"] == 1


def test_carry_forward_pending_then_matched_then_expired() -> None:
    rule = make_rule(carry_forward={"cutoff": "23:50:00", "window_days": 1})
    late = {"payment_id": "late", "amount_minor": 900, "channel_txn_id": "tl", "after_cutoff": True}
    day1 = run(rule, internal([late]), lines([]))
    assert kinds(day1) == []
    assert day1.internal["pending"] == 1 and day1.pending["payment_id"].to_list() == ["late"]
    day2 = DAY + timedelta(days=1)
    carried = internal([{**late, "since_date": DAY}], day=day2)
    matched = run(rule, carried, lines([{"channel_txn_id": "tl", "gross_minor": 900}], day=day2), day2)
    assert kinds(matched) == []
    assert matched.carry_forward == {
        "pending_in": 1,
        "matched_from_previous": 1,
        "expired_to_breaks": 0,
        "pending_out": 0,
    }
    expired = run(rule, carried, lines([], day=day2), day2)
    assert kinds(expired) == [("MISSING_AT_CHANNEL", "late", None)]
    assert expired.carry_forward["expired_to_breaks"] == 1


@pytest.mark.parametrize("fast_path", [True, False])
def test_the_cutoff_is_judged_by_the_rules_clock_when_the_caller_leaves_it(
    fast_path: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run_day` leaves `after_cutoff` to the engine: 23:50 in Shanghai is 15:50 UTC."""
    monkeypatch.setattr(engine, "FAST_PATH", fast_path)
    rule = make_rule(timezone="Asia/Shanghai", carry_forward={"cutoff": "23:50:00", "window_days": 1})
    at = datetime(2026, 11, 2, 15, 50, tzinfo=UTC)
    ours = internal([
        {"payment_id": "before", "amount_minor": 900, "channel_txn_id": "t1", "created_at": at - timedelta(seconds=1)},
        {"payment_id": "at", "amount_minor": 900, "channel_txn_id": "t2", "created_at": at},
        {"payment_id": "clean", "amount_minor": 700, "channel_txn_id": "t3", "created_at": at},
    ]).drop("after_cutoff")  # fmt: skip
    result = run(rule, ours, lines([{"channel_txn_id": "t3", "payment_id": "clean", "gross_minor": 700}]))
    assert kinds(result) == [("MISSING_AT_CHANNEL", "before", None)]
    assert result.pending["payment_id"].to_list() == ["at"]
    assert "after_cutoff" not in result.pending.columns
    assert result.internal == {"rows_in": 3, "matched": 1, "pending": 1, "breaks": 1, "rejected": 0}


def test_a_record_before_the_cutoff_is_a_break_at_once() -> None:
    result = run(make_rule(), internal([{"payment_id": "p1", "amount_minor": 900}]), lines([]))
    assert kinds(result) == [("MISSING_AT_CHANNEL", "p1", None)]


def test_match_keys_follow_the_rule_order() -> None:
    # Only amount_time: the line's channel id and reference are ignored.
    ours = internal([{"payment_id": "p1", "amount_minor": 500, "channel_txn_id": "t1"}])
    theirs = lines([{"channel_txn_id": "t1", "payment_id": "p1", "gross_minor": 500}])
    result = run(make_rule(match_keys=["amount_time"]), ours, theirs)
    assert kinds(result) == [("MISSING_AT_CHANNEL", "p1", None), ("MISSING_INTERNAL", None, "t1")]


def test_break_ids_are_records_break_ids() -> None:
    from pipelines.records import break_id

    result = run(make_rule(), internal([{"payment_id": "p1", "amount_minor": 900}]), lines([]))
    row = result.breaks.row(0, named=True)
    assert row["break_id"] == break_id("alipay", row["kind"], row["payment_id"], row["channel_txn_id"])
    assert row["rule_id"] == "test-cny@2"


@pytest.mark.parametrize("channel", ["alipay", "jpbank", "stripe", "wechatpay"])
def test_every_shipped_rule_compiles_and_runs(channel: str) -> None:
    rule = rule_for(channel)
    result = run(rule, internal([{"payment_id": "p1", "amount_minor": 900}]), lines([], channel=channel))
    assert result.internal["rows_in"] == 1
