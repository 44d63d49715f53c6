"""The T+1 day job end to end on simulated days: truth, carry-forward, reruns, quarantine, outbox."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from conftest import START, simulated, truth_keys
from typer.testing import CliRunner

from connectors.warehouse import Warehouse
from pipelines.batch.day import DayResult, run_day
from pipelines.records import BREAKS_CSV_COLUMNS, DEFAULT_ACTION, BreakKind, task_id

DAY2 = START + timedelta(days=1)
OUTPUTS = (
    "breaks.csv",
    "breaks.parquet",
    "open_breaks.csv",
    "open_breaks.parquet",
    "closed_breaks.csv",
    "closed_breaks.parquet",
    "summary.json",
)


def recon(root: Path, out: Path, day=START, **kw: object) -> DayResult:
    # The DuckDB engine of the gate and no Data Docs keep these tests fast; test_quality_gate_with_gx runs GX.
    return run_day(day, root, out, quality_engine="duckdb", data_docs=False, **kw)  # type: ignore[arg-type]


def snapshot(out: Path) -> dict[str, bytes]:
    return {
        f"{d}/{name}": (out / d / name).read_bytes() for d in (START.isoformat(), DAY2.isoformat()) for name in OUTPUTS
    }


def table_counts(path: Path) -> dict[str, int]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = ["file_log", "pending", "breaks", "break_history", "outbox", "run_log", "quarantine_log"]
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in tables}
    finally:
        con.close()


@pytest.fixture(scope="module")
def two_days(small_days: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[DayResult]]:
    out = tmp_path_factory.mktemp("recon2k")
    return out, [recon(small_days, out, START), recon(small_days, out, DAY2)]


def test_breaks_equal_truth_on_both_days(small_days: Path, two_days: tuple[Path, list[DayResult]]) -> None:
    out, _ = two_days
    for day in (START, DAY2):
        got = truth_keys(out / day.isoformat() / "breaks.csv")
        want = truth_keys(small_days / day.isoformat() / "truth" / "breaks.csv")
        assert got == want, (
            f"{day}: missed {sorted(set(want) - set(got))[:5]}, false {sorted(set(got) - set(want))[:5]}"
        )
        assert len(want) > 40  # the profile put faults of every kind in the day


def test_cross_day_items_are_pending_then_matched(small_days: Path, two_days: tuple[Path, list[DayResult]]) -> None:
    out, (day1, day2) = two_days
    faults = pl.read_csv(small_days / START.isoformat() / "truth" / "faults.csv", infer_schema=False)
    cross = set(faults.filter(pl.col("fault") == "cross_day")["payment_id"].to_list())
    assert cross, "the simulated day has cross-day payments"
    with Warehouse(out / "warehouse.duckdb") as wh:
        pending_day1 = {row[0] for row in wh.execute("SELECT payment_id FROM pending WHERE as_of_date = ?", [START])}
    assert len(pending_day1) == day1.summary["carry_forward"]["pending_out"]
    assert cross <= pending_day1
    breaks2 = pl.read_csv(out / DAY2.isoformat() / "breaks.csv", infer_schema=False)
    assert not cross & set(breaks2["payment_id"].drop_nulls().to_list())
    carry = day2.summary["carry_forward"]
    assert carry["pending_in"] == day1.summary["carry_forward"]["pending_out"]
    assert carry["matched_from_previous"] == carry["pending_in"] and carry["expired_to_breaks"] == 0


def test_summary_counts_add_up_and_match_breaks(two_days: tuple[Path, list[DayResult]]) -> None:
    _, results = two_days
    for result in results:
        s = result.summary
        assert s["breaks_by_kind"] and sum(s["breaks_by_kind"].values()) == sum(
            sum(c["breaks_by_kind"].values()) for c in s["channels"].values()
        )
        for channel, entry in s["channels"].items():
            for side in ("internal", "channel"):
                c = entry[side]
                assert c["rows_in"] == c["matched"] + c["pending"] + c["breaks"] + c["rejected"], (channel, side)
                assert c["rows_in"] > 0
        breaks = pl.read_csv(result.outputs["breaks.csv"], infer_schema=False)
        assert tuple(breaks.columns) == BREAKS_CSV_COLUMNS
        assert breaks.height == sum(s["breaks_by_kind"].values())
        assert breaks["break_id"].is_unique().all()
    # Day two judges day two's records only: day one's breaks stay open there, a day older, until
    # repaired, written off or no longer found by a rerun of day one.
    day1, day2 = results
    assert day2.summary["breaks_closed"] == 0
    n1, n2 = (sum(r.summary["breaks_by_kind"].values()) for r in results)
    assert day1.summary["open_breaks"]["count"] == n1 and day1.summary["open_breaks"]["from_earlier_days"] == 0
    assert day2.summary["open_breaks"]["count"] == n1 + n2
    assert day2.summary["open_breaks"]["from_earlier_days"] == n1
    open2 = pl.read_csv(day2.outputs["open_breaks.csv"], infer_schema=False)
    assert tuple(open2.columns) == BREAKS_CSV_COLUMNS and open2.height == n1 + n2
    breaks1 = pl.read_csv(day1.outputs["breaks.csv"], infer_schema=False)
    carried = open2.filter(pl.col("business_date") == START.isoformat())
    assert sorted(carried["break_id"]) == sorted(breaks1["break_id"])
    # Aged to day two: a break first seen on day one is 1 day old there.
    ages = dict(zip(breaks1["break_id"], breaks1["age_days"].cast(int), strict=True))
    assert all(int(a) == ages[b] + 1 for b, a in zip(carried["break_id"], carried["age_days"], strict=True))
    total = {c: 0 for c in day2.summary["open_breaks"]["amount_at_risk_minor_by_currency"]}
    for r in results:
        for c, a in r.summary["amount_at_risk_minor_by_currency"].items():
            total[c] += a
    assert day2.summary["open_breaks"]["amount_at_risk_minor_by_currency"] == total


def test_a_payment_settled_or_recorded_after_the_window_closes_its_break_two_days_later(tmp_path: Path) -> None:
    """The simulator's settled_late fault: the channel books the payment two days late, past the
    one-day window. Day one has it as MISSING_AT_CHANNEL (truth); day three's line matches it,
    raises no MISSING_INTERNAL (truth) and closes the break there, once, on every format. Its
    mirror, recorded_late: our record reaches the extract two days after the line; day one has a
    MISSING_INTERNAL, day three's record closes it (by the channel id on wallets and cards, by
    the reference on the bank)."""
    from pipelines.records import break_id
    from pipelines.simulate.generator import simulate

    profile = tmp_path / "late.yaml"
    profile.write_text(
        "settled_late: 0.02\nrecorded_late: 0.02\nmissing_at_channel: 0.004\ncross_day: 0.01\nmissing_internal: 0.003\n"
    )
    days = [START + timedelta(days=k) for k in range(3)]
    root, out = tmp_path / "in", tmp_path / "out"
    channels = ["alipay", "wechatpay", "stripe", "jpbank"]
    simulate(start=START, days=3, payments=1500, seed=5, out_root=root, channels=channels, faults=str(profile))
    results = [recon(root, out, day) for day in days]
    for day in days:
        d = day.isoformat()
        assert truth_keys(out / d / "breaks.csv") == truth_keys(root / d / "truth" / "breaks.csv"), d
    faults = pl.read_csv(root / START.isoformat() / "truth" / "faults.csv", infer_schema=False)
    late = faults.filter(pl.col("fault") == "settled_late").select("channel", "payment_id").rows()
    recorded = faults.filter(pl.col("fault") == "recorded_late").select("channel", "channel_txn_id").rows()
    assert {c for c, _ in late} == set(channels)  # every format's line carries the reference
    assert {c for c, _ in recorded} == set(channels)
    ids = {break_id(c, "MISSING_AT_CHANNEL", p, None) for c, p in late}
    ids |= {break_id(c, "MISSING_INTERNAL", None, t) for c, t in recorded}
    assert [r.summary["carry_forward"]["breaks_matched_late"] for r in results] == [0, 0, len(ids)]
    assert results[2].summary["breaks_closed"] == len(ids)
    with Warehouse(out / "warehouse.duckdb") as wh:
        states = wh.execute(
            "SELECT DISTINCT status, status_date FROM breaks WHERE list_contains(?, break_id)", [list(ids)]
        )
    assert states == [("CLOSED", days[2])]
    open_ids = [set(pl.read_csv(out / d.isoformat() / "open_breaks.csv", infer_schema=False)["break_id"]) for d in days]
    assert ids <= open_ids[1] and not ids & open_ids[2]
    day3 = {name: (out / days[2].isoformat() / name).read_bytes() for name in OUTPUTS}
    recon(root, out, days[2])
    assert {name: (out / days[2].isoformat() / name).read_bytes() for name in OUTPUTS} == day3


def test_rerun_is_byte_identical_and_adds_no_rows(small_days: Path, two_days: tuple[Path, list[DayResult]]) -> None:
    out, _ = two_days
    before, counts = snapshot(out), table_counts(out / "warehouse.duckdb")
    recon(small_days, out, START)  # a backfill of day one after day two ran
    recon(small_days, out, DAY2)
    recon(small_days, out, DAY2)
    assert snapshot(out) == before
    assert table_counts(out / "warehouse.duckdb") == counts


@pytest.mark.slow
def test_three_reruns_of_a_day_at_once_change_nothing(small_days: Path, tmp_path: Path) -> None:
    """SPEC section 9, rerun and backfill: the same day three times at once, in three processes
    (as an operator and a scheduler may start them). Each run holds the warehouse's lock from
    start to end, so the others wait for it and find the day as it was left: all succeed, with the
    bytes and the rows of the run before them."""
    recon(small_days, tmp_path, START)
    day_out = tmp_path / START.isoformat()
    before = {name: (day_out / name).read_bytes() for name in OUTPUTS}
    counts = table_counts(tmp_path / "warehouse.duckdb")
    command = [sys.executable, "-m", "pipelines.cli", "recon", "--date", START.isoformat(), "--input",
               str(small_days), "--out", str(tmp_path), "--quality-engine", "duckdb", "--no-data-docs"]  # fmt: skip
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(3)]
    for run in runs:
        output, _ = run.communicate(timeout=600)
        assert run.returncode == 0, output
    assert {name: (day_out / name).read_bytes() for name in OUTPUTS} == before
    assert table_counts(tmp_path / "warehouse.duckdb") == counts


def test_a_fresh_warehouse_gives_the_same_bytes(
    small_days: Path, two_days: tuple[Path, list[DayResult]], tmp_path: Path
) -> None:
    out, _ = two_days
    recon(small_days, tmp_path, START)
    recon(small_days, tmp_path, DAY2)
    assert snapshot(tmp_path) == snapshot(out)


def test_an_extract_read_in_blocks_and_channels_matched_in_shards_give_the_same_bytes(
    small_days: Path, two_days: tuple[Path, list[DayResult]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scale path (`_prepare_in_blocks`, `match_in_shards`) forced onto the small days: every
    output and every warehouse table count equal the run in one piece."""
    from pipelines.batch import day as day_module
    from pipelines.batch import shards

    monkeypatch.setattr(day_module, "INTERNAL_BLOCK_BYTES", 40_000)  # about 250 payments a block
    monkeypatch.setattr(shards, "SHARD_ROWS", 150)
    cut: list[int] = []
    real = shards.match_in_shards

    def counted(*args: Any, **kwargs: Any) -> Any:
        cut.append(args[4])
        return real(*args, **kwargs)

    monkeypatch.setattr(day_module, "match_in_shards", counted)
    out, _ = two_days
    recon(small_days, tmp_path, START)
    recon(small_days, tmp_path, DAY2)
    assert len(cut) == 8 and min(cut) >= 3, cut  # four channels, two days, each in shards
    staged = list((tmp_path / "warehouse_parquet" / "internal").glob("*/*/part-*.parquet"))
    assert len(staged) > 16  # and the extract in blocks
    assert snapshot(tmp_path) == snapshot(out)
    assert table_counts(tmp_path / "warehouse.duckdb") == table_counts(out / "warehouse.duckdb")
    assert not (tmp_path / "warehouse_parquet" / "shards").exists()


def test_outbox_has_one_task_per_break_and_action(two_days: tuple[Path, list[DayResult]]) -> None:
    out, _ = two_days
    con = duckdb.connect(str(out / "warehouse.duckdb"), read_only=True)
    try:
        tasks = con.sql("SELECT * FROM outbox").pl()
        history = con.sql("SELECT * FROM break_history").pl()
    finally:
        con.close()
    acting = history.filter(pl.col("action") != "NONE")
    assert tasks.height == acting.height and tasks["task_id"].is_unique().all()
    joined = tasks.join(acting, on="break_id", suffix="_b")
    assert joined.height == tasks.height
    for row in joined.iter_rows(named=True):
        assert row["task_id"] == task_id(row["break_id"], row["action"])
        assert row["action"] == row["action_b"]
        assert row["amount_minor"] >= 0
        kind = BreakKind(row["kind"])
        if row["requires_approval"]:
            assert row["action"] == "MANUAL_REVIEW"
        elif kind != BreakKind.STATUS_MISMATCH:
            assert row["action"] == DEFAULT_ACTION[kind].value
        else:
            assert row["action"] in ("CONFIRM_SUCCESS", "CONFIRM_FAILURE")
    assert tasks["requires_approval"].any()  # thresholds are low enough that some tasks need approval


def corrupt_copy(small_days: Path, root: Path) -> Path:
    shutil.copytree(small_days, root)
    return root


def test_a_corrupted_file_is_quarantined_and_the_others_reconcile(small_days: Path, tmp_path: Path) -> None:
    root = corrupt_copy(small_days, tmp_path / "in")
    target = next((root / START.isoformat() / "channels" / "stripe").iterdir())
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])  # truncated mid-file
    result = recon(root, tmp_path / "out", START)
    stripe = result.summary["channels"]["stripe"]
    assert [q["file"] for q in stripe["quarantined"]] == [target.name]
    assert stripe["quarantined"][0]["reason"]
    assert stripe["channel"]["rows_in"] == 0 and stripe["internal"]["pending"] == stripe["internal"]["rows_in"]
    qdir = tmp_path / "out" / START.isoformat() / "quarantine" / "stripe"
    assert (qdir / target.name).read_bytes() == target.read_bytes()
    note = json.loads((qdir / f"{target.name}.reason.json").read_text())
    assert note["reason"] == stripe["quarantined"][0]["reason"] and note["channel"] == "stripe"
    # The other channels reconcile exactly as without the fault.
    got = [k for k in truth_keys(tmp_path / "out" / START.isoformat() / "breaks.csv") if k[1] != "stripe"]
    want = [k for k in truth_keys(small_days / START.isoformat() / "truth" / "breaks.csv") if k[1] != "stripe"]
    assert got == want


def test_a_parser_failing_unforeseen_quarantines_its_file_and_the_day_goes_on(
    small_days: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A parser bug on a file it did not foresee (any exception but StatementError and OSError) is
    the file's refusal as `parser_error`, with the exception named, not the end of the day."""
    from pipelines.batch import day as day_module

    parse = day_module.parse_channel_file

    def stripe_fails(path: Path, rule: Any, day: Any) -> Any:
        if rule.channel == "stripe":
            raise KeyError("a column the parser assumed")
        return parse(path, rule, day)

    monkeypatch.setattr(day_module, "parse_channel_file", stripe_fails)
    result = recon(small_days, tmp_path / "out", START)
    stripe = result.summary["channels"]["stripe"]
    assert [(q["reason"], q["detail"]) for q in stripe["quarantined"]] == [
        ("parser_error", "KeyError: 'a column the parser assumed'")
    ]
    got = [k for k in truth_keys(tmp_path / "out" / START.isoformat() / "breaks.csv") if k[1] != "stripe"]
    want = [k for k in truth_keys(small_days / START.isoformat() / "truth" / "breaks.csv") if k[1] != "stripe"]
    assert got == want


def test_the_same_file_again_is_refused_as_a_duplicate(small_days: Path, tmp_path: Path) -> None:
    root = corrupt_copy(small_days, tmp_path / "in")
    day1_file = next((root / START.isoformat() / "channels" / "jpbank").iterdir())
    shutil.copyfile(day1_file, root / DAY2.isoformat() / "channels" / "jpbank" / f"resent-{day1_file.name}")
    recon(root, tmp_path / "out", START)
    result = recon(root, tmp_path / "out", DAY2)
    jpbank = result.summary["channels"]["jpbank"]
    assert [(q["file"], q["reason"]) for q in jpbank["quarantined"]] == [(f"resent-{day1_file.name}", "duplicate_file")]
    got = truth_keys(tmp_path / "out" / DAY2.isoformat() / "breaks.csv")
    assert got == truth_keys(small_days / DAY2.isoformat() / "truth" / "breaks.csv")


def test_recon_command(small_days: Path, tmp_path: Path) -> None:
    import typer

    from pipelines.batch.cli import register

    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # a second command keeps typer from flattening `recon`
    args = ["recon", "--date", START.isoformat(), "--input", str(small_days), "--out", str(tmp_path)]
    result = CliRunner().invoke(
        app, [*args, "--channels", "alipay,jpbank", "--quality-engine", "duckdb", "--no-data-docs"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / START.isoformat() / "summary.json").read_text())
    assert sorted(summary["channels"]) == ["alipay", "jpbank"]
    opened = summary["open_breaks"]["count"]
    assert f"open breaks, all days: {opened} (0 from earlier days)" in " ".join(result.output.split())
    assert (tmp_path / "warehouse.duckdb").exists()
    bad = CliRunner().invoke(app, ["recon", "--date", "2026-13-01", "--input", str(small_days), "--out", str(tmp_path)])
    assert bad.exit_code != 0


def test_a_bad_internal_extract_stops_the_day_with_file_and_line(small_days: Path, tmp_path: Path) -> None:
    from pipelines.batch.load import InputFileError

    root = corrupt_copy(small_days, tmp_path / "in")
    csv = root / START.isoformat() / "internal" / "payments.csv"
    lines = csv.read_text().splitlines()
    cells = lines[5].split(",")
    cells[7] = "12.50"  # a major-unit amount where integer minor units belong
    lines[5] = ",".join(cells)
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputFileError) as info:
        recon(root, tmp_path / "out", START)
    assert info.value.line == 6 and info.value.reason == "bad_amount" and str(csv) in str(info.value)


@pytest.mark.slow
def test_quality_gate_with_gx_and_reports(small_days: Path, tmp_path: Path) -> None:
    """The default path: GX validates the files, Data Docs and reports are written beside the breaks."""
    result = run_day(START, small_days, tmp_path, channels=["jpbank"])
    assert truth_keys(result.outputs["breaks.csv"]) == [
        k for k in truth_keys(small_days / START.isoformat() / "truth" / "breaks.csv") if k[1] == "jpbank"
    ]
    # One set of Data Docs for the day, beside the report that links to it, covering every part.
    docs = tmp_path / START.isoformat() / "data_docs"
    assert result.outputs["data_docs"] == docs / "index.html" and (docs / "index.html").exists()
    listing = (docs / "payrecon.html").read_text(encoding="utf-8")
    assert "payments.csv" in listing and "jpbank_" in listing and "outputs" in listing
    assert 'href="data_docs/index.html"' in (tmp_path / START.isoformat() / "report.html").read_text(encoding="utf-8")
    assert not [p for p in (tmp_path / START.isoformat()).rglob("data_docs") if p != docs]


def test_the_gate_checks_each_files_own_control_totals(small_days: Path, tmp_path: Path) -> None:
    """The parser's control totals reach the gate: a file whose lines disagree with them fails it."""
    from pipelines.batch import gates
    from pipelines.batch.day import DayPaths, kept_quality, take_in_channel
    from pipelines.batch.load import parse_channel_file
    from pipelines.matching.rules import load_rules
    from pipelines.quality.checks import RowCount

    rule = load_rules()["stripe"]
    paths = DayPaths(small_days, tmp_path, START, "duckdb", data_docs=True)
    with Warehouse(tmp_path / "wh.duckdb") as wh:
        take_in_channel(wh, paths, rule)
    results = kept_quality(paths, ["stripe"])
    assert len(results) == 1 and results[0].ok
    (counted,) = [o for o in results[0].outcomes if isinstance(o.check, RowCount)]
    assert counted.success and counted.observed > 0
    (path,) = sorted(paths.channel_dir("stripe").iterdir())
    parsed, _ = parse_channel_file(path, rule, START)
    rows = int(parsed.controls["rows"])  # type: ignore[call-overload]
    failures, _ = gates.check_statement(
        parsed.frame.slice(1), rule=rule, business_date=START, source=path.name, controls=parsed.controls,
        engine="duckdb",
    )  # fmt: skip
    assert failures == [f"expect_table_row_count_to_equal: observed {rows - 1}, expected {rows}"], failures


@pytest.mark.slow
def test_100k_payments_equal_truth(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = simulated(tmp_path_factory.mktemp("sim100k"), payments=100_000, seed=11)
    out = tmp_path_factory.mktemp("recon100k")
    for day in (START, DAY2):
        recon(root, out, day)
        got = truth_keys(out / day.isoformat() / "breaks.csv")
        assert got == truth_keys(root / day.isoformat() / "truth" / "breaks.csv")


def test_a_channel_with_records_but_no_files_is_held_not_dropped(small_days: Path, tmp_path: Path) -> None:
    root = corrupt_copy(small_days, tmp_path / "in")
    shutil.rmtree(root / START.isoformat() / "channels" / "stripe")
    result = recon(root, tmp_path / "out", START)
    stripe = result.summary["channels"]["stripe"]
    assert stripe["internal"]["rows_in"] > 0
    assert stripe["internal"]["pending"] == stripe["internal"]["rows_in"]
    assert [q["reason"] for q in stripe["quarantined"]] == ["no_files"]


def test_payrecon_report_renders_a_reconciled_day_again_to_the_runs_bytes(
    two_days: tuple[Path, list[DayResult]], tmp_path: Path
) -> None:
    """`payrecon report --day-dir OUT/<date>` reads the earlier days from the warehouse beside the
    day's folder, so the reports it writes are the bytes the run wrote, earlier-days chart included."""
    from pipelines.cli import app

    out, _ = two_days
    copy = tmp_path / "out"
    shutil.copytree(out / DAY2.isoformat(), copy / DAY2.isoformat())
    shutil.copy(out / "warehouse.duckdb", copy / "warehouse.duckdb")
    written = {name: (copy / DAY2.isoformat() / name).read_bytes() for name in ("report.xlsx", "report.html")}
    assert b'id="chart-history"' in written["report.html"]
    for name in written:
        (copy / DAY2.isoformat() / name).unlink()
    result = CliRunner().invoke(app, ["report", "--day-dir", str(copy / DAY2.isoformat())])
    assert result.exit_code == 0, result.output
    assert {name: (copy / DAY2.isoformat() / name).read_bytes() for name in written} == written
    # Without a warehouse the earlier days are left out, and a warehouse named that is not there is an error.
    (copy / "warehouse.duckdb").unlink()
    assert CliRunner().invoke(app, ["report", "--day-dir", str(copy / DAY2.isoformat())]).exit_code == 0
    assert b'id="chart-history"' not in (copy / DAY2.isoformat() / "report.html").read_bytes()
    missing = ["report", "--day-dir", str(copy / DAY2.isoformat()), "--warehouse", str(copy / "nowhere.duckdb")]
    assert CliRunner().invoke(app, missing).exit_code == 2
