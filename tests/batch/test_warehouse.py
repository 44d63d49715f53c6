"""Break identity across runs in the warehouse: aging, closing, reopening, compare-and-set, reruns."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from frames import lines

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


def save(wh: Warehouse, day: date, ids: list[str], *, reconciled: bool = True) -> pl.DataFrame:
    breaks = pl.DataFrame([brk(p) for p in ids], schema=BREAK_SCHEMA, orient="row")
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
