"""Every channel with a rule file, each in its own native format, reconciles to the simulator's truth."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from pipelines.batch.day import run_day
from pipelines.demo import compare_with_truth
from pipelines.matching.rules import load_rules
from pipelines.simulate.generator import simulate


@pytest.mark.slow
def test_two_days_over_every_channel_match_the_truth(tmp_path: Path) -> None:
    rules = load_rules()
    channels = sorted(rules)
    assert {rules[c].parser for c in channels} >= {"alipay", "wechatpay", "stripe", "camt053", "adyen", "paypal_stl"}
    days = [date(2026, 11, 2), date(2026, 11, 3)]
    simulate(start=days[0], days=2, payments=2500, seed=21, out_root=tmp_path / "in", channels=channels)
    for day in days:
        result = run_day(day, tmp_path / "in", tmp_path / "out", data_docs=False)
        assert sorted(result.channels) == channels
        expected, missed, false = compare_with_truth(
            tmp_path / "out" / day.isoformat() / "breaks.csv",
            tmp_path / "in" / day.isoformat() / "truth" / "breaks.csv",
        )
        assert expected > 0 and (missed, false) == (0, 0)
    # Day two matched what day one carried forward.
    assert result.summary["carry_forward"]["matched_from_previous"] > 0
