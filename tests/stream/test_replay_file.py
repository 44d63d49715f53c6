"""The day's events.jsonl as the replayer reads it: every line it cannot use is a ReplayError
naming the file and the line, never another exception."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from damaged_files import damage, fuzz_settings
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from pipelines.stream.replay import ReplayError, count_events, read_events

EVENT = {"payment_id": "P1", "channel": "alipay", "amount_minor": 100, "currency": "CNY", "trace_id": "t1"}
CALLBACK = {**EVENT, "channel_txn_id": "T1", "status": "SUCCEEDED"}
LINES = [
    {"type": "payment_event", "at": "2026-11-02T00:00:05.894Z", "value": EVENT},
    {"type": "channel_callback", "at": "2026-11-02T00:00:33.954Z", "value": CALLBACK},
    {"type": "payment_event", "at": "2026-11-02T00:00:34.154Z", "value": {**EVENT, "payment_id": "P2"}},
]
GOOD = "".join(json.dumps(row) + "\n" for row in LINES).encode()


def test_a_good_file_is_read_in_order(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(GOOD)
    assert [r.key for r in read_events(path)] == [b"P1", b"P1", b"P2"]
    assert count_events(path) == 3


@pytest.mark.parametrize(
    ("bad", "reason"),
    [(b"\x80not utf-8\n", "not UTF-8"), (b"{not json\n", "not a stream record"), (b'{"type": "x"}\n', "not a")],
)
def test_a_bad_line_is_named(tmp_path: Path, bad: bytes, reason: str) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(GOOD + bad)
    assert count_events(path) == 4
    with pytest.raises(ReplayError) as exc:
        list(read_events(path))
    assert exc.value.line == 4 and reason in str(exc.value)


@fuzz_settings(200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_damaged_file_is_read_or_refused_never_a_crash(tmp_path: Path, data: st.DataObject) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(data.draw(damage(GOOD)))
    count_events(path)
    try:
        list(read_events(path))
    except ReplayError as exc:
        assert exc.line >= 1
