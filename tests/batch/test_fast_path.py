"""The engine's fast path (clean one-to-one pairs taken out first) changes no result."""

from __future__ import annotations

from datetime import timedelta

import duckdb
import polars as pl
import pytest
from frames import DAY, T0, internal, lines
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.batch import engine
from pipelines.batch.engine import ChannelResult, match_channel
from pipelines.matching.rules import Rule

# Few ids, so collisions (two records or lines on one id, a reference naming another order) are common.
TXNS = st.sampled_from([None, "", "t1", "t2", "t3", "t4", "t5"])
REFS = st.sampled_from([None, "", "p1", "p2", "p3", "p4", "p5", "p9"])
AMOUNTS = st.sampled_from([100, 103, 250, 1000])

record = st.fixed_dictionaries(
    {
        "channel_txn_id": TXNS,
        "amount_minor": AMOUNTS,
        "biz_type": st.sampled_from(["PAY", "REFUND", "WITHDRAW"]),
        "status": st.sampled_from(["SUCCEEDED", "SUCCEEDED", "PROCESSING", "CLOSED"]),
        "currency": st.sampled_from(["CNY", "CNY", "USD"]),
        "previous": st.booleans(),
        "after_cutoff": st.booleans(),
        "second": st.integers(0, 900),
    }
)
line = st.fixed_dictionaries(
    {
        "channel_txn_id": TXNS,
        "payment_id": REFS,
        "gross_minor": st.sampled_from([100, 103, 250, 1000, -100, -250, 50]),
        "fee_minor": st.sampled_from([0, 0, 2, 4, 3]),  # 2 and 4: the contracted fee of 100 and 250
        "status": st.sampled_from(["SUCCEEDED", "SUCCEEDED", "FAILED"]),
        "currency": st.sampled_from(["CNY", "CNY", "USD"]),
        "second": st.integers(0, 900),
    }
)


def _rule(strategy: str, basis: str, keys: list[str]) -> Rule:
    return Rule.model_validate(
        {
            "rule_id": "fast-cny",
            "version": 1,
            "channel": "alipay",
            "parser": "payrecon_csv",
            "account": "acct",
            "currency": "CNY",
            "status_map": {"TRADE_SUCCESS": "SUCCEEDED"},
            "approval_threshold_minor": 100_000,
            "strategy": strategy,
            "match_keys": keys,
            "fees": {"basis": basis, "contracted": [{"biz_type": "PAY", "rate_ppm": 10_000, "fixed_minor": 1}]},
            "amount_time_window_s": 300,
        }
    )


def _run(
    rule: Rule, ours: pl.DataFrame, theirs: pl.DataFrame, fast: bool, monkeypatch: pytest.MonkeyPatch
) -> ChannelResult:
    monkeypatch.setattr(engine, "FAST_PATH", fast)
    return match_channel(duckdb.connect(), rule, DAY, ours, theirs)


@pytest.mark.slow
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    records=st.lists(record, max_size=8),
    statement=st.lists(line, max_size=9),
    strategy=st.sampled_from(["one_to_one", "one_to_many", "many_to_one"]),
    basis=st.sampled_from(["gross", "net"]),
    keys=st.sampled_from(
        [["channel_txn_id", "payment_id", "amount_time"], ["channel_txn_id"], ["payment_id", "channel_txn_id"]]
    ),
    # Pairs are classified in batches; 2 makes most examples span several.
    batch=st.sampled_from([2, 1_000_000]),
)
def test_fast_path_gives_the_general_engines_result(
    records: list[dict],
    statement: list[dict],
    strategy: str,
    basis: str,
    keys: list[str],
    batch: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine, "PAIR_BATCH", batch)
    ours = internal(
        [
            {
                **{
                    k: r[k]
                    for k in ("channel_txn_id", "amount_minor", "biz_type", "status", "currency", "after_cutoff")
                },
                "payment_id": f"p{n + 1}",
                "parent_payment_id": "p0" if r["biz_type"] == "REFUND" else None,
                "created_at": T0 + timedelta(seconds=r["second"]),
                "since_date": DAY - timedelta(days=1) if r["previous"] else DAY,
            }
            for n, r in enumerate(records)
        ]
    )
    theirs = lines([{**r, "booked_at": T0 + timedelta(seconds=r["second"])} for r in statement])
    rule = _rule(strategy, basis, keys)
    slow = _run(rule, ours, theirs, False, monkeypatch)
    fast = _run(rule, ours, theirs, True, monkeypatch)
    assert fast.breaks.sort("break_id").equals(slow.breaks.sort("break_id"))
    assert fast.pending.sort("payment_id").equals(slow.pending.sort("payment_id"))
    assert (fast.internal, fast.channel, fast.carry_forward) == (slow.internal, slow.channel, slow.carry_forward)


def test_a_clean_day_goes_all_through_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The common case is taken out first: a clean day leaves nothing for the general passes."""
    taken: list[int] = []
    original = engine._take_clean_pairs

    def spy(
        con: duckdb.DuckDBPyConnection, rule: Rule, day: object, ours: pl.DataFrame, theirs: pl.DataFrame
    ) -> tuple[int, int]:
        result = original(con, rule, day, ours, theirs)  # type: ignore[arg-type]
        taken.append(con.execute("SELECT count(*) FROM in_internal").fetchall()[0][0])
        return result

    monkeypatch.setattr(engine, "_take_clean_pairs", spy)
    ours = internal([{"payment_id": f"p{n}", "amount_minor": 100, "channel_txn_id": f"t{n}"} for n in range(4)])
    # The contracted fee of 100 at 1% plus 1 is 2.
    theirs = lines(
        [{"channel_txn_id": f"t{n}", "payment_id": f"p{n}", "gross_minor": 100, "fee_minor": 2} for n in range(4)]
    )
    result = match_channel(
        duckdb.connect(), _rule("one_to_many", "gross", ["channel_txn_id", "payment_id"]), DAY, ours, theirs
    )
    assert taken == [0] and result.internal["matched"] == 4 and result.channel["matched"] == 4
