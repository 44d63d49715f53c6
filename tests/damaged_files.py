"""Damage done to a file's bytes, for the tests that hold every reader to refusing a bad file by
its reason (a StatementError or InputFileError), never crashing on it."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st


def fuzz_settings(examples: int, **kwargs: Any) -> settings:
    """How hard a fuzz test looks. By default `examples` fixed examples (derandomized), so a run of
    the suite never fails on damage it happened to draw this time. `PAYRECON_FUZZ_EXAMPLES=N`
    draws N random examples a test instead (vary them with `--hypothesis-seed`): that is how new
    crashes are found, and each one found becomes a fix and a test."""
    explore = os.environ.get("PAYRECON_FUZZ_EXAMPLES")
    return settings(
        max_examples=int(explore) if explore else examples, derandomize=not explore, deadline=None, **kwargs
    )


# Cells a damaged or hostile file may hold where a value should be.
NASTY = ["", "soon", "1e3", "NaN", "-", "9" * 25, "0.0000001", "\u00ff\u00fe", '"', "\t", "2026-13-45", "#TOTAL"]


@st.composite
def damage(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` with one kind of damage."""
    kind = draw(st.sampled_from(["truncate", "overwrite", "cell", "drop_line", "repeat_line"]))
    if kind == "truncate":
        return data[: draw(st.integers(0, max(0, len(data) - 1)))]
    if kind == "overwrite":
        at = draw(st.integers(0, max(0, len(data) - 1)))
        junk = draw(st.binary(min_size=1, max_size=8))
        return data[:at] + junk + data[at + len(junk) :]
    lines = data.split(b"\n")
    row = draw(st.integers(0, len(lines) - 1))
    if kind == "drop_line":
        return b"\n".join(lines[:row] + lines[row + 1 :])
    if kind == "repeat_line":
        return b"\n".join(lines[: row + 1] + lines[row:])
    # One value between separators replaced by a nasty one.
    separator = b"," if lines[row].count(b",") >= lines[row].count(b">") else b">"
    cells = lines[row].split(separator)
    at = draw(st.integers(0, len(cells) - 1))
    nasty = draw(st.sampled_from(NASTY)).encode("utf-8")
    cells[at] = nasty + b"<" + cells[at].split(b"<", 1)[1] if separator == b">" and b"<" in cells[at] else nasty
    lines[row] = separator.join(cells)
    return b"\n".join(lines)
