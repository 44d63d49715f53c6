"""The business-day simulator: layout, determinism, fault rates, and the cases that must not break."""

from __future__ import annotations

import csv
import filecmp
import json
import math
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from connectors.statements import get_format
from pipelines.matching.rules import load_rules
from pipelines.records import PAYMENTS_CSV_COLUMNS, TRUTH_COLUMNS, BizType
from pipelines.simulate.generator import simulate
from pipelines.simulate.profiles import FAULTS, load_profile

D1 = date(2026, 11, 2)


def _tree_equal(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.diff_files or cmp.funny_files:
        return False
    _same, diff, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    return not diff and not errors and all(_tree_equal(a / d, b / d) for d in cmp.common_dirs)


@pytest.fixture(scope="module")
def two_days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sim")
    simulate(start=D1, days=2, payments=3000, seed=11, out_root=root)
    return root


def test_layout_and_columns(two_days: Path) -> None:
    for day in ("2026-11-02", "2026-11-03"):
        d = two_days / day
        with open(d / "internal" / "payments.csv", encoding="utf-8") as fh:
            assert tuple(next(csv.reader(fh))) == PAYMENTS_CSV_COLUMNS
        for name in ("breaks.csv", "stream_breaks.csv"):
            with open(d / "truth" / name, encoding="utf-8") as fh:
                assert tuple(next(csv.reader(fh))) == TRUTH_COLUMNS
        for channel in ("alipay", "wechatpay", "stripe", "jpbank"):
            assert any((d / "channels" / channel).iterdir())
    manifest = json.loads((two_days / "manifest.json").read_text())
    assert manifest["seed"] == 11 and manifest["days"] == 2


def test_same_seed_same_bytes_different_seed_differs(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    simulate(start=D1, days=2, payments=400, seed=5, out_root=a)
    simulate(start=D1, days=2, payments=400, seed=5, out_root=b)
    simulate(start=D1, days=2, payments=400, seed=6, out_root=c)
    assert _tree_equal(a, b)
    assert not filecmp.cmp(
        a / "2026-11-02/internal/payments.csv", c / "2026-11-02/internal/payments.csv", shallow=False
    )


def test_all_biz_types_and_amounts_are_integers(two_days: Path) -> None:
    frame = pl.read_csv(two_days / "2026-11-02/internal/payments.csv", schema_overrides={"amount_minor": pl.Int64})
    assert set(frame["biz_type"].unique()) == {b.value for b in BizType}
    smallest = frame["amount_minor"].min()
    assert frame["amount_minor"].dtype == pl.Int64 and isinstance(smallest, int) and smallest > 0
    refunds = frame.filter(pl.col("biz_type") == "REFUND")
    assert refunds["parent_payment_id"].null_count() == 0


def test_events_are_in_arrival_order_and_belong_to_payments(two_days: Path) -> None:
    day = two_days / "2026-11-02"
    payments = set(pl.read_csv(day / "internal/payments.csv", infer_schema=False)["payment_id"])
    last = ""
    kinds: Counter[str] = Counter()
    with open(day / "stream/events.jsonl", encoding="utf-8") as fh:
        for line in fh:
            event = json.loads(line)
            assert event["at"] >= last
            last = event["at"]
            kinds[event["type"]] += 1
            assert event["value"]["payment_id"] in payments
            assert isinstance(event["value"]["amount_minor"], int)
    assert kinds["payment_event"] > kinds["channel_callback"] > 0


def _channel_lines(day_dir: Path) -> pl.DataFrame:
    rules = load_rules()
    frames = []
    for channel_dir in sorted((day_dir / "channels").iterdir()):
        rule = rules[channel_dir.name]
        for path in sorted(channel_dir.iterdir()):
            frames.append(get_format(rule.parser).parse(path, channel=rule.channel).frame)
    return pl.concat(frames)


def test_cross_day_items_are_in_the_next_days_file_only(two_days: Path) -> None:
    faults = pl.read_csv(two_days / "2026-11-02/truth/faults.csv", infer_schema=False)
    cross = set(faults.filter(pl.col("fault") == "cross_day")["payment_id"])
    assert cross
    day1 = set(_channel_lines(two_days / "2026-11-02")["payment_id"].drop_nulls())
    day2 = set(_channel_lines(two_days / "2026-11-03")["payment_id"].drop_nulls())
    assert not cross & day1
    assert cross <= day2
    internal1 = set(pl.read_csv(two_days / "2026-11-02/internal/payments.csv", infer_schema=False)["payment_id"])
    assert cross <= internal1


def test_settled_late_items_are_in_the_file_two_days_later_only(tmp_path: Path) -> None:
    profile = tmp_path / "late.yaml"
    profile.write_text("settled_late: 0.05\n")
    simulate(start=D1, days=3, payments=600, seed=2, out_root=tmp_path / "d", faults=str(profile))
    days = [(tmp_path / "d" / (D1 + timedelta(days=k)).isoformat()) for k in range(3)]
    faults = pl.read_csv(days[0] / "truth/faults.csv", infer_schema=False)
    late = set(faults.filter(pl.col("fault") == "settled_late")["payment_id"])
    assert late
    lines = [set(_channel_lines(d)["payment_id"].drop_nulls()) for d in days]
    assert not late & lines[0] and not late & lines[1] and late <= lines[2]
    truth = pl.read_csv(days[0] / "truth/breaks.csv", infer_schema=False)
    assert late <= set(truth.filter(pl.col("kind") == "MISSING_AT_CHANNEL")["payment_id"])
    # Its callback came: the stream has nothing to say about it.
    assert not late & set(pl.read_csv(days[0] / "truth/stream_breaks.csv", infer_schema=False)["payment_id"])


def test_recorded_late_items_are_in_the_extract_two_days_later_only(tmp_path: Path) -> None:
    profile = tmp_path / "late.yaml"
    profile.write_text("recorded_late: 0.05\n")
    simulate(start=D1, days=3, payments=600, seed=2, out_root=tmp_path / "d", faults=str(profile))
    days = [(tmp_path / "d" / (D1 + timedelta(days=k)).isoformat()) for k in range(3)]
    faults = pl.read_csv(days[0] / "truth/faults.csv", infer_schema=False)
    late = faults.filter(pl.col("fault") == "recorded_late")
    ids, txns = set(late["payment_id"]), set(late["channel_txn_id"])
    assert ids and len(ids) == late.height
    ours = [pl.read_csv(d / "internal/payments.csv", infer_schema=False) for d in days]
    assert not ids & set(ours[0]["payment_id"]) and not ids & set(ours[1]["payment_id"])
    assert ids <= set(ours[2]["payment_id"])
    # The line is in day one's file, with our payment id as its reference.
    assert set(late.select("payment_id", "channel_txn_id").rows()) <= set(
        _channel_lines(days[0]).select("payment_id", "channel_txn_id").rows()
    )
    truth = pl.read_csv(days[0] / "truth/breaks.csv", infer_schema=False)
    assert txns <= set(truth.filter(pl.col("kind") == "MISSING_INTERNAL")["channel_txn_id"])
    for d in days:  # the stream sees neither side of it
        events = (d / "stream/events.jsonl").read_text()
        assert not any(pid in events for pid in ids)


def test_truth_counts_match_the_profile_rates(tmp_path: Path) -> None:
    n = 20_000
    simulate(start=D1, days=1, payments=n, seed=3, out_root=tmp_path)
    rates = load_profile("default")
    faults = Counter(pl.read_csv(tmp_path / "2026-11-02/truth/faults.csv", infer_schema=False)["fault"].to_list())
    for fault in FAULTS:
        expected = n * rates[fault]
        sigma = math.sqrt(n * rates[fault] * (1 - rates[fault]))
        assert abs(faults[fault] - expected) <= 5 * sigma + 1, (fault, faults[fault], expected)
    truth = Counter(pl.read_csv(tmp_path / "2026-11-02/truth/breaks.csv", infer_schema=False)["kind"].to_list())
    assert truth["STATUS_MISMATCH"] == faults["lost_callback"] + faults["status_mismatch"]
    for fault, kind in [
        ("missing_at_channel", "MISSING_AT_CHANNEL"), ("missing_internal", "MISSING_INTERNAL"),
        ("amount_mismatch", "AMOUNT_MISMATCH"), ("partial_payment", "PARTIAL_PAYMENT"),
        ("duplicate_payment", "DUPLICATE_PAYMENT"), ("fee_mismatch", "FEE_MISMATCH"),
        ("currency_mismatch", "CURRENCY_MISMATCH"), ("ambiguous", "AMBIGUOUS"),
    ]:  # fmt: skip
        assert truth[kind] == faults[fault], kind
    # What must never be a T+1 break is not in the truth at all.
    assert "DUPLICATE_CALLBACK" not in truth and "MISSING_CALLBACK" not in truth
    stream = Counter(pl.read_csv(tmp_path / "2026-11-02/truth/stream_breaks.csv", infer_schema=False)["kind"].to_list())
    assert stream["DUPLICATE_CALLBACK"] == faults["duplicate_callback"]
    assert stream["MISSING_CALLBACK"] >= faults["lost_callback"]


def test_profile_validation(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("duplicate_paymnt: 0.1\n")
    with pytest.raises(ValueError, match="unknown fault"):
        load_profile(str(bad))
    bad.write_text("duplicate_payment: 0.7\nambiguous: 0.5\n")
    with pytest.raises(ValueError, match="below 1"):
        load_profile(str(bad))
    assert sum(load_profile("none").values()) == 0
