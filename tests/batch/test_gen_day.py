"""The bench's column-wise day generator (bench/gen_day.py): its truth is what recon finds, exactly."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from conftest import START, truth_keys

from pipelines.batch.day import run_day

REPO = Path(__file__).resolve().parents[2]


def _gen_day() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_gen_day", REPO / "bench" / "gen_day.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gen_day() -> ModuleType:
    return _gen_day()


def test_recon_equals_the_generated_truth(gen_day: ModuleType, tmp_path: Path) -> None:
    # Shares raised so a small day still has dozens of breaks of every kind.
    faults = {name: 0.01 for name in gen_day.FAULTS}
    written = gen_day.generate(START, 10_000, tmp_path / "in", seed=3, faults=faults)
    assert set(written["breaks_by_kind"]) == {k.value for k in gen_day.FAULT_KIND.values()}
    assert min(written["breaks_by_kind"].values()) > 40
    result = run_day(
        START,
        tmp_path / "in",
        tmp_path / "out",
        rules_dir=gen_day.BENCH_RULES,
        quality_engine="duckdb",
        data_docs=False,
    )
    got = truth_keys(tmp_path / "out" / START.isoformat() / "breaks.csv")
    want = truth_keys(tmp_path / "in" / START.isoformat() / "truth" / "breaks.csv")
    assert got == want, f"missed {sorted(set(want) - set(got))[:5]}, false {sorted(set(got) - set(want))[:5]}"
    assert result.summary["breaks_by_kind"] == written["breaks_by_kind"]
    # Every payment and line is accounted for, and nothing is left pending (all before the cutoff).
    for channel, entry in result.summary["channels"].items():
        assert entry["internal"]["rows_in"] + entry["channel"]["rows_in"] > 0, channel
        assert entry["internal"]["pending"] == 0 and not entry["quarantined"], channel
    assert sum(e["channel"]["rows_in"] for e in result.summary["channels"].values()) == sum(
        written[c] for c in ("cardusd", "walletcny", "bankjpy")
    )


def test_same_seed_same_bytes_other_seed_other_day(gen_day: ModuleType, tmp_path: Path) -> None:
    def files(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.csv"))}

    gen_day.generate(START, 3_000, tmp_path / "a", seed=5)
    gen_day.generate(START, 3_000, tmp_path / "b", seed=5)
    gen_day.generate(START, 3_000, tmp_path / "c", seed=6)
    a, b, c = files(tmp_path / "a"), files(tmp_path / "b"), files(tmp_path / "c")
    assert a == b and len(a) == 5
    assert a.keys() == c.keys() and a != c


def test_unknown_fault_and_impossible_shares_are_refused(gen_day: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        gen_day.generate(START, 10, tmp_path, faults={"lost_in_space": 0.1})
    with pytest.raises(ValueError, match="less than 1"):
        gen_day.generate(START, 10, tmp_path, faults={"amount_mismatch": 0.99})
