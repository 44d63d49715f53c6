"""payrecon_csv, the columnar format the large days use: each defect refuses the file whole, with its
named reason and line, and a valid file parses exactly."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.statements import StatementError, get_format, payrecon_csv

HEADER = "channel_txn_id,payment_id,line_type,gross,fee,net,currency,booked_at,value_date,channel_status"
ROWS = [
    "T1,P1,PAYMENT,100.00,0.60,99.40,USD,2026-11-02T00:00:05Z,2026-11-02,succeeded",
    "T2,P2,PAYMENT,25.00,0.15,24.85,USD,2026-11-02T00:00:08Z,2026-11-02,succeeded",
]
TRAILER = "#TOTAL,2,125.00,0.75,124.25"


def _file(tmp_path: Path, data: bytes | str) -> Path:
    path = tmp_path / "cardusd_2026-11-02.csv"
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def _text(rows: list[str] = ROWS, trailer: str = TRAILER) -> str:
    return "\n".join([HEADER, *rows, trailer]) + "\n"


def _refused(path: Path) -> StatementError:
    with pytest.raises(StatementError) as exc:
        get_format("payrecon_csv").parse(path, channel="cardusd")
    return exc.value


def test_the_valid_file_parses_exactly(tmp_path: Path) -> None:
    path = _file(tmp_path, _text())
    parsed = get_format("payrecon_csv").parse(path, channel="cardusd")
    assert parsed.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    frame = parsed.frame
    assert frame["gross_minor"].to_list() == [10000, 2500]
    assert frame["fee_minor"].to_list() == [60, 15]
    assert frame["line_no"].to_list() == [2, 3]
    assert str(frame["booked_at"][0]) == "2026-11-02 00:00:05+00:00"
    assert parsed.controls["rows"] == 2


def test_a_booked_at_in_another_iso_form_is_still_read(tmp_path: Path) -> None:
    rows = [ROWS[0].replace("2026-11-02T00:00:05Z", "2026-11-02T00:00:05.250+00:00"), ROWS[1]]
    frame = get_format("payrecon_csv").parse(_file(tmp_path, _text(rows)), channel="cardusd").frame
    assert str(frame["booked_at"][0]) == "2026-11-02 00:00:05.250000+00:00"


@pytest.mark.parametrize(
    ("data", "reason", "line"),
    [
        ("", "empty_file", 0),
        ("\n\n", "empty_file", 0),
        ("\ufeff" + _text(), "bom", 1),
        (HEADER + "\n" + ROWS[0] + "\n", "truncated", 3),
        ("channel_txn_id,payment_id\n" + TRAILER + "\n", "bad_header", 1),
        (_text(trailer="#TOTAL,2,125.00,0.75,124.26"), "control_total_mismatch", 4),
        (_text(trailer="#TOTAL,3,125.00,0.75,124.25"), "control_total_mismatch", 4),
        (_text([ROWS[0].replace("100.00", "100.005"), ROWS[1]]), "too_many_decimals", 2),
        (_text([ROWS[0], ROWS[1].replace("PAYMENT", "GIFT")]), "bad_line_type", 3),
        (_text([ROWS[0].replace(",USD,", ",,"), ROWS[1].replace(",USD,", ",,")]), "missing_field", 2),
        (_text([ROWS[0], ROWS[1].replace(",USD,", ",,")]), "missing_field", 3),
        (_text([ROWS[0], ROWS[1].replace("2026-11-02T00:00:08Z", "soon")]), "bad_timestamp", 3),
        (_text([ROWS[0], ROWS[1].replace(",2026-11-02,", ",2026-13-01,")]), "bad_timestamp", 3),
        (_text([ROWS[0], ROWS[1].replace("24.85", "24.86")], "#TOTAL,2,125.00,0.75,124.26"), "net_mismatch", 3),
        # Amounts past 64 bits: the canonical form's fast conversion stops at 18 digits, the rest
        # goes to the general parser, which names the cell.
        (_text([ROWS[0], ROWS[1].replace("25.00", "99999999999999999.99")]), "overflow", 3),
        (_text([ROWS[0], ROWS[1].replace("25.00", "92233720368547758.08")]), "overflow", 3),
        (_text([ROWS[0], ROWS[1].replace("25.00", "-92233720368547758.08")]), "overflow", 3),
        # No decimals (JPY): 18 digits are the fast conversion's, 19 the general parser's.
        (
            _text(
                [ROWS[0].replace("100.00,0.60,99.40,USD", "9999999999999999999,0,9999999999999999999,JPY")],
                "#TOTAL,1,0,0,0",
            ),
            "overflow",
            2,
        ),
    ],
)
def test_a_bad_file_is_refused_with_its_reason_and_line(tmp_path: Path, data: str, reason: str, line: int) -> None:
    err = _refused(_file(tmp_path, data))
    assert (err.reason, err.line) == (reason, line), err


@pytest.mark.parametrize(
    ("gross", "net", "minor"),
    [
        ("9999999999999999.99", "9999999999999999.39", 999999999999999999),
        ("92233720368547758.07", "92233720368547758.07", 2**63 - 1),
    ],
    ids=["fast conversion", "general parser"],
)
def test_the_largest_amounts_are_read_exactly(tmp_path: Path, gross: str, net: str, minor: int) -> None:
    """Up to 16 digits before the point the canonical form is converted by dropping the point;
    17 (up to 2**63 - 1 minor units) go to the general parser. Both exact."""
    fee = "0.60" if gross != net else "0.00"
    row = ROWS[0].replace("100.00", gross).replace("0.60", fee).replace("99.40", net)
    data = _text([row], f"#TOTAL,1,{gross},{fee},{net}")
    frame = get_format("payrecon_csv").parse(_file(tmp_path, data), channel="cardusd").frame
    assert frame["gross_minor"].to_list() == [minor]


def test_bytes_that_are_not_utf8_name_their_line(tmp_path: Path) -> None:
    data = _text().encode("utf-8").replace(b"P2", "付".encode("gbk"), 1)
    err = _refused(_file(tmp_path, data))
    assert (err.reason, err.line) == ("encoding", 3)


def test_bytes_that_are_not_utf8_in_the_trailer_name_their_line(tmp_path: Path) -> None:
    data = _text().encode("utf-8").replace(b"#TOTAL,2", b"#TOTAL,2\xff", 1)
    err = _refused(_file(tmp_path, data))
    assert (err.reason, err.line) == ("encoding", 4)


# --- the two ways a file is read ------------------------------------------------------------------
_FIELD = st.one_of(
    st.sampled_from(["", "T1", "P1", "PAYMENT", "100.00", "USD", "2026-11-02T00:00:05Z", "succeeded", "#TOTAL"]),
    st.text(alphabet=st.sampled_from('ab,"付 \r#'), max_size=6).map(lambda t: '"' + t.replace('"', '""') + '"'),
)


@given(
    rows=st.lists(st.lists(_FIELD, min_size=10, max_size=10).map(",".join), max_size=6),
    trailer=st.sampled_from([TRAILER, "#TOTAL,0,0.00,0.00,0.00", "#TOTAL,,1,2,3", '#TOTAL,"2",1,2,3', "#TOTAL,2,1,2"]),
    ending=st.sampled_from(["\n", "", "\n\n"]),
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_reading_by_path_gives_what_reading_in_memory_gives(
    tmp_path: Path, rows: list[str], trailer: str, ending: str
) -> None:
    """Whatever the rows hold (quoted commas and newlines, empty values, a row that looks like the
    trailer), the file is either read by path to exactly what the in-memory read gives, or left
    to the in-memory read."""
    path = _file(tmp_path, "\n".join([HEADER, *rows, trailer]) + ending)
    mapped = payrecon_csv._read_mapped(path)
    try:
        whole = payrecon_csv._read_in_memory(path)
    except StatementError:
        assert mapped is None
        return
    if mapped is not None:
        assert mapped.frame.equals(whole.frame)
        assert (mapped.trailer, mapped.sha256, mapped.trailer_line()) == (
            whole.trailer,
            whole.sha256,
            whole.trailer_line(),
        )


def test_the_usual_file_is_read_by_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: Path) -> None:
        raise AssertionError("read in memory")

    monkeypatch.setattr(payrecon_csv, "_read_in_memory", refuse)
    for text in (_text(), _text([], "#TOTAL,0,0,0,0"), _text().rstrip("\n")):
        parsed = get_format("payrecon_csv").parse(_file(tmp_path, text), channel="cardusd")
        assert parsed.frame.height == text.count("PAYMENT")


def test_a_file_that_changes_while_it_is_read_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _file(tmp_path, _text())
    hash_of = payrecon_csv.file_sha256

    def touched_first(target: Path) -> str:
        # Written to again while it is read (its modification time moves): what was parsed and
        # what is hashed may differ. Only the time is changed, so the read itself is not raced.
        stat = target.stat()
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        return hash_of(target)

    monkeypatch.setattr(payrecon_csv, "file_sha256", touched_first)
    err = _refused(path)
    assert err.reason == "file_changed"


@pytest.mark.parametrize("cut", [True, False])
@pytest.mark.parametrize("reader", ["streaming", "text"])
def test_a_file_cut_short_while_polars_reads_it_is_refused_as_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cut: bool, reader: str
) -> None:
    """Polars fails to read the size it found at the start when the file shrinks under it (seen on
    a 550 MB file cut in place mid-read): the file is refused as changed, whichever read was
    under way (the usual file's streaming conversion, or the read of its text that an unusual
    file gets). The same error from a file that did not change is not disguised as one."""
    path = _file(tmp_path, _text())

    def fail(source: object) -> None:
        if source == path:
            if cut:
                with open(path, "r+b") as fh:
                    fh.truncate(10)
            raise OSError("failed to fill whole buffer")

    if reader == "streaming":

        def scan_failing(source: Path, exp: int) -> object:
            fail(source)
            raise AssertionError("unreachable")

        monkeypatch.setattr(payrecon_csv, "_scan_typed", scan_failing)
    else:
        read_csv = payrecon_csv.pl.read_csv

        def read_failing(source: object, *args: object, **kwargs: object) -> object:
            fail(source)
            return read_csv(source, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(payrecon_csv, "_typed_by_path", lambda path, channel: None)
        monkeypatch.setattr(payrecon_csv.pl, "read_csv", read_failing)
    if cut:
        assert _refused(path).reason == "file_changed"
    else:
        with pytest.raises(OSError, match="fill whole buffer"):
            get_format("payrecon_csv").parse(path, channel="cardusd")


# --- the usual file converted as it streams -------------------------------------------------------
def test_the_usual_file_is_converted_as_it_streams(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: Path) -> None:
        raise AssertionError("read as text")

    monkeypatch.setattr(payrecon_csv, "_read_mapped", refuse)
    monkeypatch.setattr(payrecon_csv, "_read_in_memory", refuse)
    path = _file(tmp_path, _text())
    parsed = get_format("payrecon_csv").parse(path, channel="cardusd")
    assert parsed.frame["net_minor"].to_list() == [9940, 2485]
    assert parsed.frame["line_no"].to_list() == [2, 3]
    assert parsed.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert all(column.n_chunks() == 1 for column in parsed.frame.get_columns())


# Each column's usual cell (as `write` writes it, twenty times as likely as each other one) and unusual ones.
_CELLS = {
    "channel_txn_id": ("T1", ["T2", "", '"T,3"', '"T\n4"', "#TOTAL"]),
    "payment_id": ("P1", [""]),
    "line_type": ("PAYMENT", ["REFUND", "GIFT"]),
    "gross": ("100.00", ["0.60", "1.5", "100.005", "", "-5.00", "7"]),
    "fee": ("0.60", ["0.00", "", "1"]),
    "net": ("99.40", ["100.00", "-5.60", "0.5"]),
    "currency": ("USD", ["JPY", ""]),
    "booked_at": ("2026-11-02T00:00:05Z", ["2026-11-02T00:00:05.250+00:00", "", "soon"]),
    "value_date": ("2026-11-02", ["", "2026-13-01"]),
    "channel_status": ("succeeded", [""]),
}
_ROW = st.tuples(*(st.sampled_from([usual] * 20 + other) for usual, other in _CELLS.values())).map(",".join)


@given(
    rows=st.lists(_ROW, max_size=5),
    trailer=st.sampled_from([TRAILER, "#TOTAL,1,100.00,0.60,99.40", "#TOTAL,0,0,0,0", "#TOTAL,x,1,2,3"]),
    ending=st.sampled_from(["\n", "", "\n\n"]),
)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_converting_as_it_streams_gives_what_converting_the_text_gives(
    tmp_path: Path, rows: list[str], trailer: str, ending: str
) -> None:
    """Whatever the cells hold, the usual file's streaming conversion gives the frame, controls
    and refusal that reading the text and then converting it give, or leaves the file to that."""
    path = _file(tmp_path, "\n".join([HEADER, *rows, trailer]) + ending)

    def outcome() -> object:
        try:
            parsed = get_format("payrecon_csv").parse(path, channel="cardusd", controls="report")
        except StatementError as exc:
            return (exc.reason, exc.line)
        return (parsed.frame.to_dicts(), parsed.controls, parsed.sha256)

    streamed = outcome()
    typed_by_path = payrecon_csv._typed_by_path
    payrecon_csv._typed_by_path = lambda path, channel: None
    try:
        assert outcome() == streamed
    finally:
        payrecon_csv._typed_by_path = typed_by_path
