"""A late counterpart closes the earlier day's break it answers, exactly once across reruns: a line
that arrives after the carry-forward window closes a MISSING_AT_CHANNEL (instead of standing beside
it as a MISSING_INTERNAL), and a record of ours that reaches the extract late closes a
MISSING_INTERNAL (instead of standing beside it as a MISSING_AT_CHANNEL)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from frames import DAY, internal, lines
from typer.testing import CliRunner

from connectors.warehouse import Warehouse
from pipelines.batch import shards
from pipelines.batch.day import DayPaths, match_and_persist
from pipelines.batch.late import _pair_is_clean
from pipelines.cli import app
from pipelines.frames import INTERNAL_SCHEMA
from pipelines.matching.rules import load_rules
from pipelines.records import BizType, break_id

RULE = load_rules()["alipay"]
D2, D3 = DAY + timedelta(days=2), DAY + timedelta(days=3)
ACCEPTED: dict[str, Any] = {"accepted": ["f.csv"], "quarantined": []}


def run(
    wh: Warehouse,
    tmp: Path,
    day: Any,
    ours: list[dict[str, Any]],
    theirs: list[dict[str, Any]],
    *,
    sharded: bool = False,
) -> dict[str, Any]:
    staged = internal(ours, day=day).select(list(INTERNAL_SCHEMA))
    paths = DayPaths(tmp / "in", tmp / "out", day, "duckdb", False)
    # Staged as prepare_day stages them: a late pair is classified against our record staged on
    # the day its break was first seen.
    wh.write_partition("internal", day, "alipay", staged)
    # Staged as take_in_channel stages them: a late record is classified against the line.
    wh.write_partition("lines", day, "alipay", lines(theirs, day=day))
    if not sharded:
        return match_and_persist(wh, paths, RULE, ACCEPTED, lines(theirs, day=day), staged).summary
    # From the staged partitions, cut in shards (as a channel too large to hold is matched).
    return match_and_persist(wh, paths, RULE, ACCEPTED).summary


def line(payment_id: str, txn: str, gross: int, **kw: Any) -> dict[str, Any]:
    """A late line of a PAY with alipay's contracted fee (0.6%), unless `fee_minor` says otherwise."""
    return {"payment_id": payment_id, "channel_txn_id": txn, "gross_minor": gross, "fee_minor": gross * 6 // 1000, **kw}


def missing_at_channel(payment_id: str) -> str:
    return break_id("alipay", "MISSING_AT_CHANNEL", payment_id, None)


def missing_internal(txn: str) -> str:
    return break_id("alipay", "MISSING_INTERNAL", None, txn)


def status(wh: Warehouse, bid: str) -> tuple[str, Any]:
    rows = wh.execute("SELECT status, status_date FROM breaks WHERE break_id = ?", [bid])
    return rows[0][0], rows[0][1]


@pytest.mark.parametrize("sharded", [False, True], ids=["whole", "sharded"])
def test_a_late_line_closes_the_break_it_answers_and_a_rerun_without_it_reopens_it(
    tmp_path: Path, sharded: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if sharded:
        monkeypatch.setattr(shards, "SHARD_ROWS", 2)
    with Warehouse(tmp_path / "w.duckdb") as wh:
        day1 = run(
            wh,
            tmp_path,
            DAY,
            [
                {"payment_id": "P1", "amount_minor": 10000},
                {"payment_id": "P2", "amount_minor": 20000},
                {"payment_id": "P3", "amount_minor": 30000, "channel_txn_id": "T3"},
                {"payment_id": "P4", "amount_minor": 40000},
            ],
            [],
            sharded=sharded,
        )
        assert day1["breaks_by_kind"] == {"MISSING_AT_CHANNEL": 4}
        late = [
            line("P1", "T1", 10000),  # answers P1: our payment id
            line("P3", "T3", 30000),
            line("P2", "T2", 20001),  # another amount: a person's call
            line("", "T4", 40000),  # no reference: never paired
        ]
        day3 = run(wh, tmp_path, D2, [], late, sharded=sharded)
        assert day3["breaks_by_kind"] == {"MISSING_INTERNAL": 2}
        assert day3["channel"] == {"rows_in": 4, "matched": 2, "pending": 0, "breaks": 2, "rejected": 0}
        stored = wh.run_summary(D2, "alipay")
        assert stored is not None and stored["carry_forward"]["breaks_matched_late"] == 2
        # Lines that answer a break are not records carried forward: those counts stay as they were.
        assert {k: stored["carry_forward"][k] for k in ("pending_in", "matched_from_previous", "expired_to_breaks")} == {
            "pending_in": 0, "matched_from_previous": 0, "expired_to_breaks": 0,
        }  # fmt: skip
        assert status(wh, missing_at_channel("P1")) == ("CLOSED", D2)
        assert status(wh, missing_at_channel("P3")) == ("CLOSED", D2)
        assert status(wh, missing_at_channel("P2")) == ("OPEN", DAY)
        assert wh.closed_on(D2, "alipay") == 2
        open_d2 = set(wh.open_breaks(D2, ["alipay"])["break_id"])
        assert open_d2 == {missing_at_channel("P2"), missing_at_channel("P4")} | {
            break_id("alipay", "MISSING_INTERNAL", None, t) for t in ("T2", "T4")
        }
        assert missing_at_channel("P1") in set(wh.open_breaks(DAY, ["alipay"])["break_id"])

        shown = wh.break_record(missing_at_channel("P1"))["resolutions"]
        assert shown.select("business_date", "channel_txn_id", "from_status").rows() == [(D2, "T1", "OPEN")]
        # A rerun of the day: the same state, no second resolution.
        assert run(wh, tmp_path, D2, [], late, sharded=sharded) == day3
        assert wh.count("break_resolutions") == 2 and status(wh, missing_at_channel("P1")) == ("CLOSED", D2)
        # A rerun whose file no longer has P1's line: P1's break is open again, as before the day.
        again = run(wh, tmp_path, D2, [], late[1:], sharded=sharded)
        assert again["channel"]["matched"] == 1
        assert status(wh, missing_at_channel("P1")) == ("OPEN", DAY)
        assert wh.count("break_resolutions") == 1
        # A later day's line for a closed break is a MISSING_INTERNAL like any other.
        day4 = run(wh, tmp_path, D3, [], [line("P3", "T3b", 30000)])
        assert day4["breaks_by_kind"] == {"MISSING_INTERNAL": 1}


def test_two_candidates_are_never_a_pick(tmp_path: Path) -> None:
    with Warehouse(tmp_path / "w.duckdb") as wh:
        run(wh, tmp_path, DAY, [{"payment_id": "P1", "amount_minor": 10000}], [])
        both = [line("P1", "T1", 10000), line("P1", "T1b", 10000)]
        day3 = run(wh, tmp_path, D2, [], both)
        assert day3["breaks_by_kind"] == {"MISSING_INTERNAL": 2}
        assert status(wh, missing_at_channel("P1")) == ("OPEN", DAY)


def test_a_break_written_off_is_not_closed_by_a_late_line(tmp_path: Path) -> None:
    """The write-off stands (compare-and-set); the line is then a MISSING_INTERNAL for a person."""
    with Warehouse(tmp_path / "w.duckdb") as wh:
        run(wh, tmp_path, DAY, [{"payment_id": "P1", "amount_minor": 10000}], [])
        bid = missing_at_channel("P1")
        wh.move_break(bid, expected="OPEN", to="WRITTEN_OFF", on=DAY, reason="lost", actor="ops")
        day3 = run(wh, tmp_path, D2, [], [line("P1", "T1", 10000)])
        assert day3["breaks_by_kind"] == {"MISSING_INTERNAL": 1}
        assert status(wh, bid) == ("WRITTEN_OFF", DAY)
        assert pl.DataFrame(wh.open_breaks(D2, ["alipay"]))["kind"].to_list() == ["MISSING_INTERNAL"]


def test_a_break_reopened_by_hand_after_its_late_match_is_left_alone_by_a_rerun(tmp_path: Path) -> None:
    """Someone judged the late match wrong and reopened the break on a later day: a rerun of the
    match's day neither closes it again nor counts its line as matched (a MISSING_INTERNAL stays)."""
    with Warehouse(tmp_path / "w.duckdb") as wh:
        run(wh, tmp_path, DAY, [{"payment_id": "P1", "amount_minor": 10000}], [])
        late = [line("P1", "T1", 10000)]
        assert run(wh, tmp_path, D2, [], late)["breaks_by_kind"] == {}
        bid = missing_at_channel("P1")
        wh.move_break(bid, expected="CLOSED", to="OPEN", on=D3, reason="not the same payment", actor="ops")
        again = run(wh, tmp_path, D2, [], late)
        assert again["breaks_by_kind"] == {"MISSING_INTERNAL": 1}
        assert again["channel"] == {"rows_in": 1, "matched": 0, "pending": 0, "breaks": 1, "rejected": 0}
        assert status(wh, bid) == ("OPEN", D3) and wh.count("break_resolutions") == 0


def test_a_late_line_is_classified_like_any_pair_fee_and_status_included(tmp_path: Path) -> None:
    """A late line with another fee than the contracted one is not its break's answer: both
    breaks stay for a person. A refund's late line (money out) pairs."""
    with Warehouse(tmp_path / "w.duckdb") as wh:
        ours = [
            {"payment_id": "P1", "amount_minor": 10000},
            {"payment_id": "P2", "amount_minor": 20000},
            {"payment_id": "R3", "amount_minor": 5000, "biz_type": "REFUND", "parent_payment_id": "P0"},
        ]
        run(wh, tmp_path, DAY, ours, [])
        late = [
            line("P1", "T1", 10000, fee_minor=61),  # contracted: 60
            line("P2", "T2", 20000),
            line("R3", "T3", -5000, fee_minor=0),
        ]
        day3 = run(wh, tmp_path, D2, [], late)
        assert day3["breaks_by_kind"] == {"MISSING_INTERNAL": 1}
        assert status(wh, missing_at_channel("P1")) == ("OPEN", DAY)
        assert status(wh, missing_at_channel("P2"))[0] == "CLOSED"
        assert status(wh, missing_at_channel("R3"))[0] == "CLOSED"


@pytest.mark.parametrize("sharded", [False, True], ids=["whole", "sharded"])
def test_a_late_record_closes_the_missing_internal_it_answers_and_a_rerun_without_it_reopens_it(
    tmp_path: Path, sharded: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if sharded:
        monkeypatch.setattr(shards, "SHARD_ROWS", 2)
    with Warehouse(tmp_path / "w.duckdb") as wh:
        theirs = [
            line("P1", "T1", 10000),
            line("", "T2", 20000),  # no reference: the channel id pairs it
            line("P3", "T3", 30000),
            line("P4", "T4", 40000),
        ]
        day1 = run(wh, tmp_path, DAY, [], theirs, sharded=sharded)
        assert day1["breaks_by_kind"] == {"MISSING_INTERNAL": 4}
        late = [
            {"payment_id": "P1", "amount_minor": 10000, "channel_txn_id": "T1"},  # both keys name T1
            {"payment_id": "Q2", "amount_minor": 20000, "channel_txn_id": "T2"},  # its channel id
            {"payment_id": "P3", "amount_minor": 30000},  # its payment id is T3's reference
            {"payment_id": "P4", "amount_minor": 40001, "channel_txn_id": "T4"},  # another amount
        ]
        day3 = run(wh, tmp_path, D2, late, [], sharded=sharded)
        assert day3["breaks_by_kind"] == {"MISSING_AT_CHANNEL": 1}
        assert day3["internal"] == {"rows_in": 4, "matched": 3, "pending": 0, "breaks": 1, "rejected": 0}
        stored = wh.run_summary(D2, "alipay")
        assert stored is not None and stored["carry_forward"]["breaks_matched_late"] == 3
        for txn in ("T1", "T2", "T3"):
            assert status(wh, missing_internal(txn)) == ("CLOSED", D2)
        assert status(wh, missing_internal("T4")) == ("OPEN", DAY)
        assert set(wh.open_breaks(D2, ["alipay"])["break_id"]) == {missing_internal("T4"), missing_at_channel("P4")}
        shown = wh.break_record(missing_internal("T2"))["resolutions"]
        assert shown.select("business_date", "payment_id", "channel_txn_id").rows() == [(D2, "Q2", "T2")]
        printed = CliRunner().invoke(app, ["breaks", "show", missing_internal("T2"), "--warehouse", str(wh.path)])
        assert "our record Q2 with the line T2" in " ".join(printed.output.split()), printed.output
        # A rerun of the day: the same state, no second resolution.
        assert run(wh, tmp_path, D2, late, [], sharded=sharded) == day3
        assert wh.count("break_resolutions") == 3
        # A rerun whose extract no longer has Q2: T2's break is open again, as before the day.
        again = run(wh, tmp_path, D2, [late[0], *late[2:]], [], sharded=sharded)
        assert again["internal"]["matched"] == 2
        assert status(wh, missing_internal("T2")) == ("OPEN", DAY)
        assert wh.count("break_resolutions") == 2


def test_two_late_records_for_one_line_are_never_a_pick(tmp_path: Path) -> None:
    with Warehouse(tmp_path / "w.duckdb") as wh:
        run(wh, tmp_path, DAY, [], [line("", "T1", 10000)])
        both = [
            {"payment_id": "P1", "amount_minor": 10000, "channel_txn_id": "T1"},
            {"payment_id": "P2", "amount_minor": 10000, "channel_txn_id": "T1"},
        ]
        day3 = run(wh, tmp_path, D2, both, [])
        assert day3["breaks_by_kind"] == {"MISSING_AT_CHANNEL": 2}
        assert status(wh, missing_internal("T1")) == ("OPEN", DAY)


def test_a_late_record_is_classified_like_any_pair(tmp_path: Path) -> None:
    """A record of ours in another currency does not answer the line: both breaks stay for a
    person. One that failed raises no break of its own (no money moved on our side, none is
    missing at the channel), so it answers nothing and the line's break stays."""
    with Warehouse(tmp_path / "w.duckdb") as wh:
        run(wh, tmp_path, DAY, [], [line("P1", "T1", 10000), line("P2", "T2", 20000), line("P3", "T3", 30000)])
        late = [
            {"payment_id": "P1", "amount_minor": 10000, "channel_txn_id": "T1", "status": "FAILED"},
            {"payment_id": "P2", "amount_minor": 20000, "channel_txn_id": "T2", "currency": "USD"},
            {"payment_id": "P3", "amount_minor": 30000, "channel_txn_id": "T3"},
        ]
        day3 = run(wh, tmp_path, D2, late, [])
        assert day3["breaks_by_kind"] == {"MISSING_AT_CHANNEL": 1}
        assert day3["internal"] == {"rows_in": 3, "matched": 2, "pending": 0, "breaks": 1, "rejected": 0}
        assert [status(wh, missing_internal(t))[0] for t in ("T1", "T2", "T3")] == ["OPEN", "OPEN", "CLOSED"]


def test_a_warehouse_of_the_late_lines_only_gets_their_payment_ids(tmp_path: Path) -> None:
    """break_resolutions without payment_id (the ninth session's): the column is added on open and
    filled from the break, so `breaks show` names the pair of every resolution."""
    path = tmp_path / "w.duckdb"
    with Warehouse(path) as wh:
        run(wh, tmp_path, DAY, [{"payment_id": "P1", "amount_minor": 10000}], [])
        run(wh, tmp_path, D2, [], [line("P1", "T1", 10000)])
        wh.execute("ALTER TABLE break_resolutions DROP COLUMN payment_id")
    with Warehouse(path) as wh:
        shown = wh.break_record(missing_at_channel("P1"))["resolutions"]
        assert shown.select("payment_id", "channel_txn_id").rows() == [("P1", "T1")]


def test_a_late_record_carried_forward_closes_the_break_when_its_window_ends(tmp_path: Path) -> None:
    """Our late record was created after the cut-off, so it is pending on its own day, not a
    break; when its window ends it pairs with the earlier line, counted as matched from the
    previous day, not as expired."""
    with Warehouse(tmp_path / "w.duckdb") as wh:
        run(wh, tmp_path, DAY, [], [line("P9", "T9", 9000)])
        after_cutoff = datetime.combine(D2, time(23, 55), tzinfo=UTC)
        late = [{"payment_id": "P9", "amount_minor": 9000, "channel_txn_id": "T9", "created_at": after_cutoff}]
        day3 = run(wh, tmp_path, D2, late, [])
        assert day3["breaks_by_kind"] == {} and day3["internal"]["pending"] == 1
        assert status(wh, missing_internal("T9")) == ("OPEN", DAY)
        day4 = run(wh, tmp_path, D3, [], [])
        assert day4["breaks_by_kind"] == {}
        assert day4["internal"] == {"rows_in": 1, "matched": 1, "pending": 0, "breaks": 0, "rejected": 0}
        stored = wh.run_summary(D3, "alipay")
        assert stored is not None
        assert {k: stored["carry_forward"][k] for k in ("matched_from_previous", "expired_to_breaks")} == {
            "matched_from_previous": 1,
            "expired_to_breaks": 0,
        }
        assert status(wh, missing_internal("T9")) == ("CLOSED", D3)


def test_the_breaks_closed_on_a_day_say_how_each_closed(tmp_path: Path) -> None:
    """closed_breaks lists what `closed_on` counts, with how and with what: a late line, a late
    record of ours, a move by hand, or a rerun of the break's day that no longer found it."""
    with Warehouse(tmp_path / "w.duckdb") as wh:
        ours = [{"payment_id": p, "amount_minor": a} for p, a in (("P1", 10000), ("P5", 5000), ("P6", 6000))]
        run(wh, tmp_path, DAY, ours, [line("", "T7", 7000)])
        run(wh, tmp_path, DAY, ours[:2], [line("", "T7", 7000)])  # P6 was a mistake in the extract
        wh.move_break(missing_at_channel("P5"), expected="OPEN", to="CLOSED", on=D2, reason="refunded", actor="ops.a")
        late = [{"payment_id": "Q7", "amount_minor": 7000, "channel_txn_id": "T7"}]
        run(wh, tmp_path, D2, late, [line("P1", "T1", 10000)])

        def closed(day: Any) -> list[tuple[Any, ...]]:
            frame = wh.closed_breaks(day, ["alipay"])
            assert frame.height == wh.closed_on(day, "alipay")
            return frame.select("break_id", "closed_by", "closed_with", "status", "age_days").rows()

        assert closed(DAY) == [(missing_at_channel("P6"), "no_longer_reported", None, "CLOSED", 0)]
        assert sorted(closed(D2)) == sorted(
            [
                (missing_at_channel("P1"), "late_line", "T1", "CLOSED", 2),
                (missing_at_channel("P5"), "moved", "ops.a", "CLOSED", 2),
                (missing_internal("T7"), "late_record", "Q7", "CLOSED", 2),
            ]
        )
        amounts = wh.closed_breaks(D2, ["alipay"]).select("break_id", "internal_amount_minor", "channel_amount_minor")
        assert sorted(amounts.rows()) == sorted(
            [(missing_at_channel("P1"), 10000, None), (missing_at_channel("P5"), 5000, None),
             (missing_internal("T7"), None, 7000)]
        )  # fmt: skip


def test_a_missing_internal_keeps_its_lines_reference_and_an_older_warehouse_still_pairs(tmp_path: Path) -> None:
    """The late record's query picks the earlier MISSING_INTERNAL breaks by the reference their
    line carried (kept with the break, "" for none); a break an older warehouse kept without it
    (null) is still a candidate, so upgrading loses no pair."""
    path = tmp_path / "w.duckdb"
    with Warehouse(path) as wh:
        run(wh, tmp_path, DAY, [], [line("P1", "T1", 10000), line("", "T2", 20000)])
        refs = dict(wh.execute("SELECT channel_txn_id, reference FROM breaks ORDER BY channel_txn_id"))
        assert refs == {"T1": "P1", "T2": ""}
        printed = CliRunner().invoke(app, ["breaks", "show", missing_internal("T1"), "--warehouse", str(path)])
        assert "the line's reference P1" in " ".join(printed.output.split()), printed.output
        wh.execute("ALTER TABLE breaks DROP COLUMN reference")
    with Warehouse(path) as wh:
        assert dict(wh.execute("SELECT channel_txn_id, reference FROM breaks")) == {"T1": None, "T2": None}
        late = [{"payment_id": "P1", "amount_minor": 10000}]  # no channel id: only the reference pairs it
        day3 = run(wh, tmp_path, D2, late, [])
        assert day3["internal"]["matched"] == 1 and day3["breaks_by_kind"] == {}
        assert status(wh, missing_internal("T1")) == ("CLOSED", D2)
        assert status(wh, missing_internal("T2")) == ("OPEN", DAY)
        # A later day that reports T2 again gives its break the reference it lacked.
        run(wh, tmp_path, D3, [], [line("", "T2", 20000)])
        assert wh.execute("SELECT reference FROM breaks WHERE channel_txn_id = 'T2'") == [("",)]


@pytest.mark.parametrize("basis", ["gross", "net"])
def test_a_late_pair_is_judged_on_the_rules_fee_basis(basis: str) -> None:
    """With a net basis a line's net plus our contracted fee stands for its gross (and no fee is
    compared); with a gross basis its gross and fee are compared as they are."""
    rule = RULE.model_copy(update={"fees": RULE.fees.model_copy(update={"basis": basis})})
    contracted = rule.fees.expected_fee(BizType.PAY, 10_000)
    assert contracted > 0
    ours = {"biz_type": "PAY", "amount_minor": 10_000, "currency_ours": "CNY", "status_ours": "SUCCEEDED",
            "currency": "CNY", "status": "SUCCEEDED"}  # fmt: skip
    gross_line = {**ours, "gross_minor": 10_000, "fee_minor": contracted, "net_minor": 10_000 - contracted}
    net_only = {**ours, "gross_minor": None, "fee_minor": None, "net_minor": 10_000 - contracted}
    short = {**gross_line, "gross_minor": 9_000, "net_minor": 9_000 - contracted}
    no_net = {**gross_line, "net_minor": None}
    if basis == "net":
        assert [_pair_is_clean(rule, p) for p in (gross_line, net_only, short, no_net)] == [True, True, False, False]
        assert not _pair_is_clean(rule, {**net_only, "net_minor": 10_000})  # no fee taken: net plus ours is over
    else:
        assert [_pair_is_clean(rule, p) for p in (gross_line, net_only, short, no_net)] == [True, False, False, True]
        assert not _pair_is_clean(rule, {**gross_line, "fee_minor": contracted + 1})
