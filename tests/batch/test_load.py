"""The strict loader of our internal extract and the status mapping of channel files."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from damaged_files import damage, fuzz_settings
from frames import lines
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from connectors.statements import ParsedFile, StatementError
from pipelines.batch.load import (
    _TS_FAST,
    _TS_FORMAT,
    InputFileError,
    _timestamp,
    map_status,
    read_internal,
    read_internal_blocks,
)
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


def test_amounts_from_one_digit_to_the_64_bit_limit_are_read_exactly(tmp_path: Path) -> None:
    rows = [GOOD.replace("10050", "5").replace(",60,", ",0,"),
            GOOD.replace("P1", "P2").replace("10050", "9223372036854775807").replace(",60,", ",9223372036854775807,")]  # fmt: skip
    frame = read_internal(write(tmp_path, *rows))
    assert frame["amount_minor"].to_list() == [5, 2**63 - 1] and frame["fee_minor"].to_list() == [0, 2**63 - 1]


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


def test_a_column_of_mixed_fraction_widths_is_read_whole(tmp_path: Path) -> None:
    """The fixed-width parser takes three digits of fraction only; a column with one other width
    goes through the general format, and every row keeps its own instant."""
    rows = [
        GOOD.replace("P1", f"P{i}").replace("2026-11-02T10:00:01.5Z", stamp)
        for i, stamp in enumerate(["2026-11-02T10:00:01.250Z", "2026-11-02T10:00:01.5Z", "2026-11-02T10:00:01Z"])
    ]
    frame = read_internal(write(tmp_path, *rows))
    assert [t.isoformat() for t in frame["updated_at"]] == [
        "2026-11-02T10:00:01.250000+00:00",
        "2026-11-02T10:00:01.500000+00:00",
        "2026-11-02T10:00:01+00:00",
    ]


def _stamp(moment: datetime, separator: str, digits: int, suffix: str) -> str:
    fraction = f"{moment.microsecond:06d}{moment.microsecond % 7}"[:digits]
    return f"{moment:%Y-%m-%d}{separator}{moment:%H:%M:%S}{'.' if digits else ''}{fraction}{suffix}"


# Real instants written in our form and in near misses (another width of fraction, no `Z`, an
# offset, another separator), and a few impossible dates and times.
_STAMPS = st.one_of(
    st.builds(
        _stamp,
        st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
        st.sampled_from(["T", "T", "T", " ", "t"]),
        st.sampled_from([3, 3, 3, 0, 1, 2, 4, 6, 7]),
        st.sampled_from(["Z", "Z", "Z", "", "z", "+00:00", "Z "]),
    ),
    st.sampled_from(["2026-02-30T00:00:01.123Z", "2026-11-02T24:00:00.000Z", "2026-11-02T00:60:00.000Z",
                     "2026-13-02T00:00:00.000Z", "2026-11-02T00:00:01.12aZ", "2026-11-02T00:00:01.Z"]),
)  # fmt: skip


@given(st.lists(_STAMPS, min_size=1, max_size=20))
def test_the_fixed_width_parser_reads_no_timestamp_differently(values: list[str]) -> None:
    """Where the fast format reads a value, the general one reads the same instant; so trying it
    first changes no result (a value it refuses goes to the general format)."""
    text = pl.DataFrame({"t": values})
    fast = text.select(pl.col("t").str.to_datetime(_TS_FAST, time_zone="UTC", time_unit="us", strict=False))["t"]
    general = text.select(pl.col("t").str.to_datetime(_TS_FORMAT, time_zone="UTC", time_unit="us", strict=False))
    # Compared as microseconds since the epoch: a Python datetime has no year 0.
    for value, mine, theirs in zip(values, fast.to_physical(), general["t"].to_physical(), strict=True):
        assert mine is None or mine == theirs, value
    if fast.null_count() == 0:
        assert _timestamp(text, "t").equals(general["t"])


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (GOOD.replace("10050", "100.50"), "bad_amount"),
        (GOOD.replace("10050", "1e5"), "bad_amount"),
        (GOOD.replace("10050", "-5"), "bad_amount"),
        (GOOD.replace("10050", "99999999999999999999"), "bad_amount"),
        (GOOD.replace("10050", "9223372036854775808"), "overflow"),
        # Digits other than ASCII: the regex's \d took them and the cast made the amount null, loaded.
        (GOOD.replace("10050", "１００５０"), "bad_amount"),  # fullwidth, as a Chinese spreadsheet writes
        (GOOD.replace("10050", "١٠٠٥٠"), "bad_amount"),  # Arabic-Indic
        (GOOD.replace("10050", "1005０"), "bad_amount"),
        (GOOD.replace(",60,", ",6.0,"), "bad_amount"),  # a fee, too, is whole minor units
        (GOOD.replace(",60,", ",sixty,"), "bad_amount"),
        (GOOD.replace(",60,", ",9223372036854775808,"), "overflow"),
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


def test_an_extract_cut_short_while_it_is_read_is_refused_as_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, GOOD)
    read_csv = pl.read_csv

    def cut_short(source: object, *args: object, **kwargs: object) -> pl.DataFrame:
        if source == path:
            # What Polars does when the file shrinks under its read (seen on a 550 MB file cut in
            # place mid-read): it fails to read the size it found at the start.
            with open(path, "r+b") as fh:
                fh.truncate(10)
            raise OSError("failed to fill whole buffer")
        return read_csv(source, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pl, "read_csv", cut_short)
    with pytest.raises(InputFileError) as info:
        read_internal(path)
    assert (info.value.reason, info.value.line) == ("file_changed", 0)


def _extract(rows: int) -> bytes:
    body = [GOOD.replace("P1", f"P{i}").replace("T1", f"T{i}") for i in range(rows)]
    return ("\n".join([HEADER, *body]) + "\n").encode()


@fuzz_settings(300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_damaged_extract_is_refused_with_a_reason_never_a_crash(tmp_path: Path, data: st.DataObject) -> None:
    """Whole or in blocks, a damaged extract (cut short, bytes overwritten, a cell replaced, a line
    dropped or repeated) is read or refused as InputFileError: a row cut short after its first
    field raised Polars' SchemaError, and the header alone made the block reader concat nothing."""
    path = tmp_path / "payments.csv"
    path.write_bytes(data.draw(damage(_extract(6))))
    for read in (read_internal, lambda p: list(read_internal_blocks(p, 200))):
        try:
            read(path)
        except InputFileError as exc:
            assert exc.reason and exc.line >= 0
