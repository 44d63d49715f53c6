"""Break identity across runs in the warehouse: aging, closing, reopening, compare-and-set, reruns."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from frames import lines
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.warehouse import OUTBOX_COLUMNS, PENDING_COLUMNS, Warehouse
from pipelines.records import break_id

D1 = date(2026, 11, 2)

BREAK_SCHEMA = {
    "break_id": pl.String,
    "kind": pl.String,
    "channel": pl.String,
    "payment_id": pl.String,
    "channel_txn_id": pl.String,
    "internal_amount_minor": pl.Int64,
    "channel_amount_minor": pl.Int64,
    "currency": pl.String,
    "delta_minor": pl.Int64,
    "rule_id": pl.String,
    "trace_id": pl.String,
    "action": pl.String,
}


def brk(payment_id: str) -> dict[str, Any]:
    return {
        "break_id": break_id("alipay", "MISSING_AT_CHANNEL", payment_id, None),
        "kind": "MISSING_AT_CHANNEL",
        "channel": "alipay",
        "payment_id": payment_id,
        "channel_txn_id": None,
        "internal_amount_minor": 100,
        "channel_amount_minor": None,
        "currency": "CNY",
        "delta_minor": None,
        "rule_id": "alipay-cny@1",
        "trace_id": None,
        "action": "REQUERY_CHANNEL",
    }


def save(
    wh: Warehouse, day: date, ids: list[str], *, reconciled: bool = True, rows: list[dict[str, Any]] | None = None
) -> pl.DataFrame:
    """Save the day's breaks of `ids` (as `brk` makes them; `rows` instead, when given)."""
    breaks = pl.DataFrame(rows if rows is not None else [brk(p) for p in ids], schema=BREAK_SCHEMA, orient="row")
    pending = pl.DataFrame(schema={c: pl.String for c in PENDING_COLUMNS}).with_columns(
        pl.col("amount_minor", "fee_minor").cast(pl.Int64),
        pl.col("created_at", "updated_at").cast(pl.Datetime("us", "UTC")),
        pl.col("since_date").cast(pl.Date),
    )
    outbox = pl.DataFrame(schema={c: pl.String for c in OUTBOX_COLUMNS}).with_columns(
        pl.col("amount_minor").cast(pl.Int64),
        pl.col("requires_approval").cast(pl.Boolean),
        pl.col("created_at").cast(pl.Datetime("us", "UTC")),
        pl.col("business_date").cast(pl.Date),
    )
    wh.save_channel_day(
        day,
        "alipay",
        rule_ref="alipay-cny@1",
        breaks=breaks,
        pending=pending,
        outbox=outbox,
        quarantined=[],
        summary={},
        reconciled=reconciled,
    )
    return wh.breaks_of_day(day, ["alipay"])


def state(wh: Warehouse, payment_id: str) -> tuple[str, date, date]:
    rows = wh.execute(
        "SELECT status, first_seen_date, status_date FROM breaks WHERE break_id = ?",
        [break_id("alipay", "MISSING_AT_CHANNEL", payment_id, None)],
    )
    return rows[0]


def open_ids(wh: Warehouse, day: date) -> dict[str, tuple[date, int]]:
    """payment_id -> (the day that last reported it, age on `day`) of the breaks open on `day`."""
    frame = wh.open_breaks(day, ["alipay"])
    return {p: (d, a) for p, d, a in frame.select("payment_id", "business_date", "age_days").iter_rows()}


D4, D6 = D1 + timedelta(days=3), D1 + timedelta(days=5)


def test_a_break_stays_open_and_ages_until_its_own_day_no_longer_finds_it(tmp_path: Path) -> None:
    with Warehouse(tmp_path / "w.duckdb") as wh:
        first = save(wh, D1, ["p1", "p2"])
        assert first["age_days"].to_list() == [0, 0] and set(first["status"]) == {"OPEN"}
        again = save(wh, D4, ["p1"])
        row = again.row(0, named=True)
        assert (row["first_seen_date"], row["age_days"], row["status"]) == (D1, 3, "OPEN")
        # D4's run judged D4's records: p2, a break of D1, is still open there, 3 days old.
        assert state(wh, "p2") == ("OPEN", D1, D1)
        assert open_ids(wh, D4) == {"p1": (D4, 3), "p2": (D1, 3)}
        assert open_ids(wh, D1) == {"p1": (D1, 0), "p2": (D1, 0)}
        save(wh, D4, ["p1"])  # a rerun of the later day changes nothing
        assert state(wh, "p2") == ("OPEN", D1, D1) and wh.count("break_history") == 3
        # A rerun of D1 that no longer finds p2 (its input was corrected) closes it; p1, which D4
        # reported too, stays open.
        save(wh, D1, ["p1"])
        assert state(wh, "p2") == ("CLOSED", D1, D1) and state(wh, "p1")[0] == "OPEN"
        assert open_ids(wh, D4) == {"p1": (D4, 3)}
        save(wh, D1, [])
        assert state(wh, "p1")[0] == "OPEN" and open_ids(wh, D1) == {}
        # Found again by a rerun of its day: reopened, the same rows as the first run.
        rerun = save(wh, D1, ["p1", "p2"])
        assert rerun.equals(first) and state(wh, "p2") == ("OPEN", D1, D1)
        # Reported on a later day after it was closed: reopened, first-seen date kept.
        save(wh, D1, ["p1"])
        back = save(wh, D6, ["p2"])
        assert (back["first_seen_date"][0], back["age_days"][0]) == (D1, 5)
        assert state(wh, "p2") == ("OPEN", D1, D6)
        assert wh.count("breaks") == 2 and wh.count("break_history") == 3


def test_a_rerun_of_a_later_day_leaves_open_a_break_its_first_day_still_reports(tmp_path: Path) -> None:
    """A rerun reads the other days' reports of the breaks it no longer finds from their earliest
    first-seen date on; that date itself must count (p1's other report is on it)."""
    with Warehouse(tmp_path / "w.duckdb") as wh:
        save(wh, D1, ["p1"])
        save(wh, D4, ["p1", "p2"])
        save(wh, D4, [])  # a rerun of D4 that finds neither
        assert state(wh, "p1") == ("OPEN", D1, D1)  # D1 still reports it
        assert state(wh, "p2") == ("CLOSED", D4, D4)  # reported for no other day


_DAYS = [D1 + timedelta(days=n) for n in range(6)]
_RUNS = st.lists(
    st.tuples(st.sampled_from(_DAYS), st.sets(st.sampled_from(["p1", "p2", "p3", "p4"])), st.booleans()),
    min_size=1,
    max_size=6,
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(runs=_RUNS)
def test_no_report_of_a_break_precedes_its_first_seen_date(tmp_path: Path, runs: list[Any]) -> None:
    """What overdue_breaks, closed_breaks and a rerun's closing rely on to read the history only
    from their breaks' earliest first_seen_date on: days run in any order, reruns and backfills
    included, never leave a report of a break dated before its first_seen_date. (The date may be
    earlier than every report left: a rerun that no longer finds a break keeps the date.)"""
    path = tmp_path / f"w{abs(hash(repr(runs)))}.duckdb"
    with Warehouse(path) as wh:
        for day, ids, reconciled in runs:
            save(wh, day, sorted(ids), reconciled=reconciled)
            early = wh.execute(
                """SELECT count(*) FROM break_history h JOIN breaks b USING (break_id)
                   WHERE h.business_date < b.first_seen_date"""
            )[0][0]
            assert early == 0, runs
    path.unlink()


def test_the_open_breaks_of_a_day_do_not_change_with_later_events(tmp_path: Path) -> None:
    """A break written off (or closed) on a later day is still open in an earlier day's list, so a
    rerun of that day reports the same rows."""
    with Warehouse(tmp_path / "w.duckdb") as wh:
        save(wh, D1, ["p1", "p2"])
        save(wh, D4, [])
        before = wh.open_breaks(D4, ["alipay"])
        assert before.height == 2 and before["age_days"].to_list() == [3, 3]
        wh.execute(
            "UPDATE breaks SET status = 'WRITTEN_OFF', status_date = ? WHERE payment_id = 'p1' AND status = 'OPEN'",
            [D6],
        )
        assert wh.open_breaks(D4, ["alipay"]).equals(before)
        assert open_ids(wh, D6) == {"p2": (D1, 5)}
        assert open_ids(wh, D1 - timedelta(days=1)) == {}
        assert wh.open_breaks(D6, ["stripe"]).height == 0


def test_a_rerun_does_not_close_a_break_someone_moved_after_its_day(tmp_path: Path) -> None:
    with Warehouse(tmp_path / "w.duckdb") as wh:
        save(wh, D1, ["p1"])
        p1 = break_id("alipay", "MISSING_AT_CHANNEL", "p1", None)
        wh.move_break(p1, expected="OPEN", to="REPAIRING", on=D4, reason="re-queried", actor="ops")
        save(wh, D1, [])
        assert state(wh, "p1") == ("REPAIRING", D1, D4)


def test_a_held_channel_closes_nothing(tmp_path: Path) -> None:
    with Warehouse(tmp_path / "w.duckdb") as wh:
        save(wh, D1, ["p1"])
        save(wh, D1, [], reconciled=False)
        assert state(wh, "p1")[0] == "OPEN"


def test_close_is_compare_and_set(tmp_path: Path) -> None:
    """A break someone moved to WRITTEN_OFF is never closed or reopened by a run."""
    with Warehouse(tmp_path / "w.duckdb") as wh:
        save(wh, D1, ["p1"])
        wh.execute("UPDATE breaks SET status = 'WRITTEN_OFF' WHERE payment_id = 'p1' AND status = 'OPEN'")
        save(wh, D1, [])
        assert state(wh, "p1")[0] == "WRITTEN_OFF"
        save(wh, D1, ["p1"])
        assert state(wh, "p1")[0] == "WRITTEN_OFF"


def test_a_duplicate_file_is_named_and_a_rerun_is_not(tmp_path: Path) -> None:
    with Warehouse(tmp_path / "w.duckdb") as wh:
        kw: dict[str, Any] = {"rows": 3, "format": "payrecon_csv"}
        assert wh.claim_file("abc", business_date=D1, channel="alipay", source_file="a.csv", **kw) is None
        assert wh.claim_file("abc", business_date=D1, channel="alipay", source_file="a.csv", **kw) is None
        prior = wh.claim_file("abc", business_date=D1 + timedelta(days=1), channel="alipay", source_file="b.csv", **kw)
        assert prior == "2026-11-02/alipay/a.csv"


def test_background_partition_writes_are_waited_for_and_their_failures_surface(tmp_path: Path) -> None:
    frame = pl.DataFrame({"payment_id": ["p1", "p2"], "amount_minor": [100, 250]})
    with Warehouse(tmp_path / "wh.duckdb", background_writes=True) as wh:
        target = wh.write_partition("internal", D1, "alipay", frame)
        # A read waits for the writes before it, so it sees the frame whole.
        staged = wh.read_partition("internal", D1, "alipay")
        assert staged is not None and staged.equals(frame)
        assert target.exists()
        # A write that fails (its folder is a file) raises when the run waits for its writes.
        wh.partition("lines", D1, "alipay").parent.mkdir(parents=True)
        wh.partition("lines", D1, "alipay").write_text("not a folder")
        wh.write_partition("lines", D1, "alipay", frame)
        try:
            wh.wait_for_writes()
        except (FileExistsError, NotADirectoryError):
            pass
        else:
            raise AssertionError("the failed background write did not surface")
        wh.wait_for_writes()  # nothing is left to wait for


def test_a_partition_written_in_parts_replaces_the_old_one_only_when_committed(tmp_path: Path) -> None:
    one = pl.DataFrame({"payment_id": ["p1"], "amount_minor": [100]})
    two = pl.DataFrame({"payment_id": ["p2"], "amount_minor": [250]})
    with Warehouse(tmp_path / "wh.duckdb", background_writes=True) as wh:
        wh.write_partition("internal", D1, "alipay", one)
        for index in range(3):
            wh.write_partition_part("internal", D1, "alipay", index, two)
        staged = wh.read_partition("internal", D1, "alipay")
        assert staged is not None and staged.equals(one)  # not committed yet
        wh.commit_partition_parts("internal", D1, "alipay", 3)
        staged = wh.read_partition("internal", D1, "alipay")
        assert staged is not None and staged.equals(pl.concat([two] * 3))
        assert staged["payment_id"].n_chunks() == 1
        # Written whole again: the parts beyond the first go.
        wh.write_partition("internal", D1, "alipay", one)
        assert [p.name for p in wh.partition_files("internal", D1, "alipay")] == ["part-0.parquet"]
        # Parts of a refused extract are discarded and leave the partition as it was.
        wh.write_partition_part("internal", D1, "alipay", 0, two)
        wh.discard_partition_parts("internal", D1, "alipay")
        staged = wh.read_partition("internal", D1, "alipay")
        assert staged is not None and staged.equals(one)
        assert not list(wh.partition("internal", D1, "alipay").glob(".*"))


def test_a_staged_partition_reads_back_as_written(tmp_path: Path) -> None:
    """Vocabulary columns are written dictionary-encoded from Categorical; Polars and DuckDB both
    read back the strings as staged, nulls and empty strings included, in the staged schema."""
    staged_lines = lines([{"gross_minor": 100, "payment_id": "p1"}, {"gross_minor": 5, "line_type": "FEE"}])
    staged_lines = staged_lines.with_columns(
        pl.Series("status", [None, "SUCCEEDED"], dtype=pl.String), pl.Series("account", ["", "acct-9"])
    )
    with Warehouse(tmp_path / "wh.duckdb", background_writes=True) as wh:
        wh.write_partition("lines", D1, "alipay", staged_lines)
        for index in range(2):
            wh.write_partition_part("lines", D1, "wechat", index, staged_lines)
        wh.commit_partition_parts("lines", D1, "wechat", 2)
        alipay = wh.read_partition("lines", D1, "alipay")
        wechat = wh.read_partition("lines", D1, "wechat")
        files = ", ".join(f"'{f}'" for f in wh.partition_files("lines", D1, "alipay"))
        seen = wh.frame(f"SELECT * FROM read_parquet([{files}])")
    assert alipay is not None and alipay.schema == staged_lines.schema and alipay.equals(staged_lines)
    assert wechat is not None and wechat.equals(pl.concat([staged_lines] * 2))
    assert seen.select(staged_lines.columns).equals(staged_lines)


def test_a_move_by_hand_is_compare_and_set_logged_and_idempotent(tmp_path: Path) -> None:
    p1 = break_id("alipay", "MISSING_AT_CHANNEL", "p1", None)
    with Warehouse(tmp_path / "w.duckdb") as wh:
        save(wh, D1, ["p1"])
        move: dict[str, Any] = {
            "expected": "OPEN",
            "to": "WRITTEN_OFF",
            "on": D4,
            "reason": "under 1.00",
            "actor": "ops.a",
        }
        assert wh.move_break(p1, **move) == ("moved", "WRITTEN_OFF")
        assert state(wh, "p1") == ("WRITTEN_OFF", D1, D4)
        assert wh.move_break(p1, **move) == ("already", "WRITTEN_OFF")  # a retry
        # Someone else's move from a status the break no longer has changes nothing.
        assert wh.move_break(p1, **{**move, "to": "REPAIRING"}) == ("conflict", "WRITTEN_OFF")
        assert wh.move_break(p1, **{**move, "reason": "another reason"}) == ("conflict", "WRITTEN_OFF")
        back: dict[str, Any] = {
            "expected": "WRITTEN_OFF",
            "to": "OPEN",
            "on": D6,
            "reason": "reversed",
            "actor": "ops.b",
        }
        assert wh.move_break(p1, **back) == ("moved", "OPEN")
        moves = wh.break_record(p1)["moves"]
        assert moves.select("seq", "from_status", "to_status", "status_date", "actor").rows() == [
            (1, "OPEN", "WRITTEN_OFF", D4, "ops.a"),
            (2, "WRITTEN_OFF", "OPEN", D6, "ops.b"),
        ]
        bad: dict[str, Any]
        for bad, message in (
            ({"on": D4}, "before"),  # before its last change (D6)
            ({"on": D1 - timedelta(days=1), "to": "CLOSED"}, "before"),
            ({"to": "PROVISIONAL"}, "statuses"),
            ({"to": "OPEN"}, "statuses"),  # from OPEN to OPEN
            ({"reason": " "}, "reason"),
        ):
            with pytest.raises(ValueError, match=message):
                wh.move_break(p1, **{**move, "to": "CLOSED", "on": D6, **bad})
        with pytest.raises(KeyError):
            wh.move_break("brk_none", **move)
        assert wh.count("break_status_log") == 2 and state(wh, "p1") == ("OPEN", D1, D6)


def test_a_write_off_leaves_the_open_breaks_from_its_date_and_reruns_keep_their_rows(tmp_path: Path) -> None:
    p1 = break_id("alipay", "MISSING_AT_CHANNEL", "p1", None)
    with Warehouse(tmp_path / "w.duckdb") as wh:
        first = save(wh, D1, ["p1", "p2"])
        save(wh, D4, ["p1"])
        before = wh.open_breaks(D4, ["alipay"])
        wh.move_break(p1, expected="OPEN", to="WRITTEN_OFF", on=D6, reason="agreed loss", actor="ops.a")
        assert wh.open_breaks(D4, ["alipay"]).equals(before)
        assert open_ids(wh, D6) == {"p2": (D1, 5)}
        # Reruns of the days before the write-off report the break as it was then: OPEN.
        assert save(wh, D1, ["p1", "p2"]).equals(first)
        assert save(wh, D4, ["p1"])["status"].to_list() == ["OPEN"]
        # A run of a later day that finds it again does not reopen it, and reports it written off.
        assert save(wh, D6, ["p1"])["status"].to_list() == ["WRITTEN_OFF"]
        assert state(wh, "p1") == ("WRITTEN_OFF", D1, D6)
        assert open_ids(wh, D6) == {"p2": (D1, 5)}


def test_breaks_show_and_move_from_the_command_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pipelines.cli import app

    p1 = break_id("alipay", "MISSING_AT_CHANNEL", "p1", None)
    with Warehouse(tmp_path / "warehouse.duckdb") as wh:
        save(wh, D1, ["p1"])
    runner = CliRunner()
    where = ["--out", str(tmp_path)]
    shown = runner.invoke(app, ["breaks", "show", p1, *where])
    assert shown.exit_code == 0, shown.output
    assert "MISSING_AT_CHANNEL" in shown.output and "OPEN" in shown.output and "2026-11-02" in shown.output
    move = ["breaks", "move", p1, "--from", "open", "--to", "written_off", "--date", D4.isoformat()]
    move += ["--reason", "under materiality", "--by", "ops.a", *where]
    assert runner.invoke(app, move).exit_code == 0
    again = runner.invoke(app, move)
    assert again.exit_code == 0 and "already" in again.output
    conflict = runner.invoke(app, [*move[:6], "closed", *move[7:]])
    assert conflict.exit_code == 1 and "WRITTEN_OFF" in conflict.output
    assert runner.invoke(app, ["breaks", "show", "brk_none", *where]).exit_code == 2
    assert runner.invoke(app, ["breaks", "show", p1, "--out", str(tmp_path / "elsewhere")]).exit_code == 2
    shown = runner.invoke(app, ["breaks", "show", p1, *where])
    assert "under materiality" in shown.output and "ops.a" in shown.output


def test_breaks_are_written_off_in_bulk_from_a_file_and_again_without_harm(tmp_path: Path) -> None:
    """Finance keeps the rows of open_breaks.csv to write off and hands the file back: each break
    is moved compare-and-set; one someone moved first, or an unknown id, is named and exits 1;
    the same file again moves nothing twice."""
    from typer.testing import CliRunner

    from pipelines.cli import app

    ids = {p: break_id("alipay", "MISSING_AT_CHANNEL", p, None) for p in ("p1", "p2", "p3")}
    with Warehouse(tmp_path / "warehouse.duckdb") as wh:
        save(wh, D1, list(ids))
        wh.move_break(ids["p3"], expected="OPEN", to="REPAIRING", on=D1, reason="requeried", actor="bot")
    chosen = tmp_path / "write_off.csv"
    pl.DataFrame({"break_id": [ids["p1"], ids["p2"], ids["p3"], "brk_none", ids["p1"]], "note": ["a"] * 5}).write_csv(
        chosen
    )
    runner = CliRunner()
    move = ["breaks", "move", "--ids-file", str(chosen), "--from", "OPEN", "--to", "WRITTEN_OFF"]
    move += ["--date", D4.isoformat(), "--reason", "under materiality", "--by", "ops.a", "--out", str(tmp_path)]
    first = runner.invoke(app, move)
    assert first.exit_code == 1, first.output
    text = " ".join(first.output.split())
    assert "4 breaks of" in text and "2 moved, 0 already, 1 conflict, 1 unknown, 0 refused" in text
    assert f"{ids['p3']} is REPAIRING" in text and "brk_none" in text
    again = runner.invoke(app, move)
    assert "0 moved, 2 already, 1 conflict, 1 unknown" in " ".join(again.output.split())
    with Warehouse(tmp_path / "warehouse.duckdb") as wh:
        assert [state(wh, p)[0] for p in ("p1", "p2", "p3")] == ["WRITTEN_OFF", "WRITTEN_OFF", "REPAIRING"]
        assert wh.count("break_status_log") == 3
        # A date before the break's last change is refused for that break alone, and says why.
        early = wh.move_breaks(
            [ids["p3"], ids["p2"]], expected="REPAIRING", to="CLOSED", on=D1 - timedelta(days=1), reason="x", actor="y"
        )
        assert early.select("outcome", "status").rows() == [("refused", "REPAIRING"), ("conflict", "WRITTEN_OFF")]
        assert "before the break was first reported (2026-11-02)" in early["detail"][0]
        assert state(wh, "p3")[0] == "REPAIRING" and wh.count("break_status_log") == 3
    # A file without a break_id column, or with an empty one, is refused before anything moves.
    bad = tmp_path / "bad.csv"
    bad.write_text("id\nbrk_x\n")
    assert runner.invoke(app, [*move[:3], str(bad), *move[4:]]).exit_code == 2
    bad.write_text("break_id\nbrk_x\n\n \n")
    refused = runner.invoke(app, [*move[:3], str(bad), *move[4:]])
    assert refused.exit_code == 2 and "line 4" in " ".join(refused.output.split()), refused.output
    assert runner.invoke(app, [*move, ids["p1"]]).exit_code == 2  # an id and a file: one of them


def test_the_history_is_summed_exactly_in_duckdb(tmp_path: Path) -> None:
    """Counts and amounts at risk per day, channel and currency, past 2**63 in total, exact."""
    with Warehouse(tmp_path / "w.duckdb") as wh:
        big = 2**62
        wh.execute(
            """INSERT INTO break_history VALUES
               (?, 'b1', 'MISSING_AT_CHANNEL', 'alipay', 'p1', NULL, ?, NULL, 'CNY', NULL, 'r@1', 'OPEN', ?, 0, 'A', NULL),
               (?, 'b2', 'MISSING_AT_CHANNEL', 'alipay', 'p2', NULL, ?, NULL, 'CNY', NULL, 'r@1', 'OPEN', ?, 0, 'A', NULL),
               (?, 'b3', 'AMOUNT_MISMATCH', 'alipay', 'p3', 't3', 100, 93, 'CNY', -7, 'r@1', 'OPEN', ?, 0, 'A', NULL),
               (?, 'b4', 'MISSING_INTERNAL', 'alipay', NULL, 't4', NULL, -250, 'CNY', NULL, 'r@1', 'OPEN', ?, 0, 'A', NULL),
               (?, 'b5', 'MISSING_INTERNAL', 'stripe', NULL, 't5', NULL, 9, 'USD', NULL, 'r@1', 'OPEN', ?, 0, 'A', NULL)""",
            [D1, big, D1, D1, -big, D1, D1, D1, D4, D4, D6, D6],
        )
        summed = wh.history_summary(D4)
        assert summed.schema["amount_at_risk_minor"] == pl.Int128 and summed.schema["breaks"] == pl.Int64
        assert summed.rows() == [(D1, "alipay", "CNY", 3, 2 * big + 7), (D4, "alipay", "CNY", 1, 250)]


def test_overdue_breaks_give_the_latest_report_before_the_day_nulls_included(tmp_path: Path) -> None:
    """Each candidate as its latest report before the day says, a null there included (an
    aggregate per column that skips nulls would give an earlier day's value instead)."""
    with Warehouse(tmp_path / "w.duckdb") as wh:
        save(wh, D1, [], rows=[{**brk("p1"), "channel_amount_minor": 90}, brk("p2")])
        save(wh, D4, [], rows=[{**brk("p1"), "internal_amount_minor": 250}])

        def amounts(day: date) -> dict[str, tuple[int | None, int | None]]:
            got = wh.overdue_breaks(day, "alipay")
            return {
                r["payment_id"]: (r["internal_amount_minor"], r["channel_amount_minor"])
                for r in got.iter_rows(named=True)
            }

        assert amounts(D4) == {"p1": (100, 90), "p2": (100, None)}  # D1's reports: D4's is the day's own
        assert amounts(D6) == {"p1": (250, None), "p2": (100, None)}


def test_overdue_breaks_are_chosen_by_the_days_keys_in_the_query(tmp_path: Path) -> None:
    with Warehouse(tmp_path / "w.duckdb") as wh:
        assert not wh.any_overdue(D4, "alipay", "MISSING_AT_CHANNEL")
        save(wh, D1, ["p1", "p2", "p3"])
        save(wh, D4, ["p1"])
        assert wh.any_overdue(D4, "alipay", "MISSING_AT_CHANNEL")
        assert not wh.any_overdue(D1, "alipay", "MISSING_AT_CHANNEL")  # nothing before the first day
        assert not wh.any_overdue(D4, "alipay", "MISSING_INTERNAL")
        every = wh.overdue_breaks(D4, "alipay")
        assert every["payment_id"].to_list() == sorted(["p1", "p2", "p3"], key=lambda p: brk(p)["break_id"])
        assert set(every["first_seen_date"]) == {D1}
        keyed = wh.overdue_breaks(D4, "alipay", payment_ids=pl.Series(["p3", "p1", "p1", None, "p9"]))
        assert keyed.equals(every.filter(pl.col("payment_id").is_in(["p1", "p3"])))
        assert wh.overdue_breaks(D4, "alipay", payment_ids=pl.Series([], dtype=pl.String)).height == 0
        assert wh.overdue_breaks(D4, "alipay", channel_txn_ids=pl.Series(["T1"])).height == 0
        # On a later day p1's latest report before it is D4's; p2 and p3 were last reported on D1.
        later = wh.overdue_breaks(D6, "alipay", payment_ids=pl.Series(["p1", "p2"]))
        assert dict(later.select("payment_id", "first_seen_date").iter_rows()) == {"p1": D1, "p2": D1}
        # A break closed (p2, by a rerun of D1 that no longer finds it) is no candidate.
        save(wh, D1, ["p1", "p3"])
        assert wh.overdue_breaks(D4, "alipay", payment_ids=pl.Series(["p2", "p3"]))["payment_id"].to_list() == ["p3"]
