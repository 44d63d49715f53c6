"""The strict loader of our internal extract and the status mapping of channel files."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from frames import lines

from connectors.statements import ParsedFile, StatementError
from pipelines.batch.load import InputFileError, map_status, read_internal, read_internal_blocks
from pipelines.matching.rules import rule_for
from pipelines.records import PAYMENTS_CSV_COLUMNS

HEADER = ",".join(PAYMENTS_CSV_COLUMNS)
GOOD = "P1,PAY,,M1,A1,alipay,T1,10050,CNY,60,SUCCEEDED,2026-11-02T10:00:00Z,2026-11-02T10:00:01.5Z,tr1"


def write(tmp_path: Path, *rows: str, header: str = HEADER) -> Path:
    path = tmp_path / "payments.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_reads_typed_columns(tmp_path: Path) -> None:
    frame = read_internal(write(tmp_path, GOOD, GOOD.replace("P1", "P2").replace(",60,", ",,")))
    assert frame["amount_minor"].dtype.is_integer() and frame["amount_minor"].to_list() == [10050, 10050]
    assert frame["fee_minor"].to_list() == [60, None]
    assert str(frame["created_at"].dtype) == "Datetime(time_unit='us', time_zone='UTC')"


def test_timestamps_in_other_iso_forms_are_read_to_the_same_instant(tmp_path: Path) -> None:
    """Our usual form parses without inference; blanks around it and other ISO 8601 forms take the
    slower paths, and every row lands on the same UTC instant."""
    usual = GOOD.replace("2026-11-02T10:00:01.5Z", "2026-11-02T10:00:00.000Z")
    padded = usual.replace("P1", "P2").replace(",2026-11-02T10:00:00Z,", ", 2026-11-02T10:00:00.000Z ,")
    other = usual.replace("P1", "P3").replace(",2026-11-02T10:00:00Z,", ",2026-11-02 10:00:00+00:00,")
    padded = padded.replace(",10050,", ", 10050 ,")  # blanks around an amount are stripped too
    frame = read_internal(write(tmp_path, usual, padded, other))
    assert frame["amount_minor"].to_list() == [10050, 10050, 10050]
    assert frame["created_at"].n_unique() == 1
    assert frame["created_at"][0].isoformat() == "2026-11-02T10:00:00+00:00"


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (GOOD.replace("10050", "100.50"), "bad_amount"),
        (GOOD.replace("10050", "1e5"), "bad_amount"),
        (GOOD.replace("10050", "-5"), "bad_amount"),
        (GOOD.replace("10050", "99999999999999999999"), "bad_amount"),
        (GOOD.replace("10050", "9223372036854775808"), "overflow"),
        (GOOD.replace("SUCCEEDED", "DONE"), "bad_status"),
        (GOOD.replace(",PAY,", ",PAYMENT,"), "bad_biz_type"),
        (GOOD.replace("CNY", "XYZ"), "bad_currency"),
        (GOOD.replace("2026-11-02T10:00:00Z", "yesterday"), "bad_timestamp"),
        (GOOD.replace("P1,", ",", 1), "empty_cell"),
        (GOOD.replace("2026-11-02T10:00:00Z", ""), "empty_cell"),
        # Two defects: the cell checks come before the timestamps, whichever is read first.
        (GOOD.replace("10050", "1e5").replace("2026-11-02T10:00:00Z", "yesterday"), "bad_amount"),
        (GOOD.replace("2026-11-02T10:00:01.5Z", "later"), "bad_timestamp"),
        (GOOD.replace("10050", " 10050 ").replace("P1,", ",", 1), "empty_cell"),
    ],
)
def test_a_bad_row_names_file_line_and_reason(tmp_path: Path, row: str, reason: str) -> None:
    path = write(tmp_path, GOOD.replace("P1", "P0"), row)
    with pytest.raises(InputFileError) as info:
        read_internal(path)
    assert (info.value.line, info.value.reason) == (3, reason)
    assert str(path) in str(info.value)


def test_duplicate_payment_and_bad_header(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="duplicate_key"):
        read_internal(write(tmp_path, GOOD, GOOD))
    with pytest.raises(InputFileError, match="bad_header"):
        read_internal(write(tmp_path, GOOD, header=HEADER.replace("amount_minor", "amount")))


def test_an_unknown_channel_status_refuses_the_file() -> None:
    frame = lines([{"gross_minor": 1, "raw": "TRADE_SUCCESS"}, {"gross_minor": 1, "raw": "TRADE_MAYBE"}])
    parsed = ParsedFile(path=Path("bill.csv"), sha256="0", format="x", frame=frame.drop("status"))
    with pytest.raises(StatementError) as info:
        map_status(parsed, rule_for("alipay"))
    assert (info.value.reason, info.value.line) == ("unknown_channel_status", 3)
    ok = ParsedFile(path=Path("bill.csv"), sha256="0", format="x", frame=frame.drop("status").head(1))
    assert map_status(ok, rule_for("alipay"))["status"].to_list() == ["SUCCEEDED"]


def _rows(n: int) -> list[str]:
    return [GOOD.replace("P1", f"P{i:05d}").replace("tr1", f"tr{i}") for i in range(n)]


def test_reading_in_blocks_gives_the_frame_read_whole(tmp_path: Path) -> None:
    path = write(tmp_path, *_rows(500))
    blocks = list(read_internal_blocks(path, 4096))
    assert len(blocks) > 10
    # Each block starts on the line after the previous one ended.
    assert [first for first, _ in blocks] == [2 + sum(b.height for _, b in blocks[:k]) for k in range(len(blocks))]
    assert pl.concat([b for _, b in blocks]).equals(read_internal(path))


@pytest.mark.parametrize("at", [3, 250, 499])
def test_a_bad_row_in_a_later_block_names_its_own_line(tmp_path: Path, at: int) -> None:
    rows = _rows(500)
    rows[at] = rows[at].replace("10050", "100.50")
    path = write(tmp_path, *rows)
    with pytest.raises(InputFileError) as info:
        list(read_internal_blocks(path, 4096))
    assert (info.value.line, info.value.reason) == (at + 2, "bad_amount")


def test_a_payment_listed_in_two_blocks_is_a_duplicate(tmp_path: Path) -> None:
    rows = _rows(500)
    rows[420] = rows[17]
    path = write(tmp_path, *rows)
    seen = []
    with pytest.raises(InputFileError) as info:
        for first, _block in read_internal_blocks(path, 4096):
            seen.append(first)
    assert len(seen) > 10  # found only once every block was read, which is why callers stage nothing before
    assert (info.value.line, info.value.reason) == (19, "duplicate_key")
    assert "P00017" in str(info.value)
