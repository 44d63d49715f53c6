"""Simulated business days shared by the batch tests (generated once per session, under pytest's tmp)."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from pipelines.simulate.generator import simulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for damaged_files.py

START = date(2026, 11, 2)
TRUTH_KEY = ["kind", "channel", "payment_id", "channel_txn_id"]


def simulated(root: Path, *, payments: int, seed: int, days: int = 2) -> Path:
    simulate(
        start=START,
        days=days,
        payments=payments,
        seed=seed,
        out_root=root,
        channels=["alipay", "wechatpay", "stripe", "jpbank"],
        faults="default",
    )
    return root


@pytest.fixture(scope="session")
def small_days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two days of 2,000 payments each with every fault kind of the default profile."""
    return simulated(tmp_path_factory.mktemp("sim2k"), payments=2000, seed=7)


def truth_keys(path: Path) -> list[tuple[str, ...]]:
    """The (kind, channel, payment_id, channel_txn_id) rows of a breaks file, sorted, empty for null."""
    frame = pl.read_csv(path, schema_overrides={c: pl.String for c in TRUTH_KEY}, columns=TRUTH_KEY)
    return sorted(tuple(r) for r in frame.select(TRUTH_KEY).fill_null("").iter_rows())
