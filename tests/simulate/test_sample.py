"""The committed sample (`data/samples/`, the demo's input) is exactly what `make sample` generates."""

from __future__ import annotations

import filecmp
import json
from datetime import date
from pathlib import Path

from pipelines.demo import SAMPLES_DIR
from pipelines.simulate.generator import simulate


def _differences(a: Path, b: Path, prefix: str = "") -> list[str]:
    cmp = filecmp.dircmp(a, b)
    out = [f"{prefix}{n} (only in one)" for n in cmp.left_only + cmp.right_only]
    _, diff, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    out += [f"{prefix}{n}" for n in diff + errors]
    for d in cmp.common_dirs:
        out += _differences(a / d, b / d, f"{prefix}{d}/")
    return out


def test_committed_sample_is_reproducible(tmp_path: Path) -> None:
    manifest = json.loads((SAMPLES_DIR / "manifest.json").read_text(encoding="utf-8"))
    simulate(
        start=date.fromisoformat(manifest["start"]), days=manifest["days"], payments=manifest["payments"],
        seed=manifest["seed"], out_root=tmp_path, channels=manifest["channels"], faults=manifest["faults"],
    )  # fmt: skip
    # A difference means the simulator or a format writer changed: run `make sample` and commit.
    assert _differences(SAMPLES_DIR, tmp_path) == []
