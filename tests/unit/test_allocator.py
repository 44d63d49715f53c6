"""The allocator settings `pipelines` gives Polars' jemalloc (see pipelines/__init__.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import pipelines

REPO = Path(__file__).resolve().parents[2]
SHOW = "import {first}, os, polars; print(os.environ['_RJEM_MALLOC_CONF'])"


def _conf(env: dict[str, str], first: str = "pipelines") -> str:
    code = SHOW.format(first=first)
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


# Either package may be imported first (the bench's child imported connectors.warehouse first,
# which imports Polars, and ran on Polars' own setting).
@pytest.mark.parametrize("first", ["pipelines", "connectors.warehouse", "pipelines.batch.day"])
def test_importing_the_project_sets_the_decay_before_polars_loads(first: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    # Polars puts its own defaults first; jemalloc takes the last value of each option.
    assert pipelines.JEMALLOC_CONF == "dirty_decay_ms:100,muzzy_decay_ms:0"
    assert _conf(env, first).endswith("," + pipelines.JEMALLOC_CONF)


def test_a_setting_of_the_users_is_kept() -> None:
    conf = _conf({**os.environ, "_RJEM_MALLOC_CONF": "dirty_decay_ms:10000"})
    assert conf.endswith(",dirty_decay_ms:10000")
    assert pipelines.JEMALLOC_CONF not in conf
