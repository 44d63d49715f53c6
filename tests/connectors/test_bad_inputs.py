"""The catalogue of bad files: each is refused whole, with its named reason and line."""

from __future__ import annotations

import gzip
import io
import tracemalloc
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from connectors.statements import StatementError, Writer, get_format
from connectors.statements.intake import Intake, MemorySeen
from pipelines.matching.rules import rule_for
from pipelines.records import LineType, StatementLine

DAY = date(2026, 11, 2)


def _writer(name: str) -> Writer:
    """The format's writer (every format the simulator uses has one)."""
    write = get_format(name).write
    assert write is not None, f"{name} has no writer"
    return write


AT = datetime(2026, 11, 2, 3, 4, 5, tzinfo=UTC)


def _line(
    channel: str, currency: str, txn: str, pid: str | None, line_type: LineType, gross: int, fee: int
) -> StatementLine:
    return StatementLine(
        channel, "", DAY, "", "", 0, line_type, txn, pid, gross, fee, gross - fee, currency, AT, DAY, ""
    )


def _refused(fmt: str, path: Path, channel: str | None = None) -> StatementError:
    with pytest.raises(StatementError) as exc:
        get_format(fmt).parse(path, channel=channel or fmt)
    return exc.value


@pytest.fixture
def wechat_text(tmp_path: Path) -> str:
    """A valid two-row WeChat ALL bill, as text (header, 2 rows, summary header, summary)."""
    lines = [_line("wechatpay", "CNY", "W1", "P1", LineType.PAYMENT, 10000, 60),
             _line("wechatpay", "CNY", "W2", "P2", LineType.PAYMENT, 2500, 15)]  # fmt: skip
    [path] = _writer("wechatpay")(lines, tmp_path / "w", rule=rule_for("wechatpay"), business_date=DAY)
    return gzip.decompress(path.read_bytes()).decode("utf-8")


def _put(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def test_the_valid_bill_parses(tmp_path: Path, wechat_text: str) -> None:
    # The baseline every mutation below starts from: proves the refusals are caused by the defect.
    assert get_format("wechatpay").parse(_put(tmp_path, "ok.csv", wechat_text), channel="wechatpay").frame.height == 2


def test_empty_file(tmp_path: Path) -> None:
    err = _refused("wechatpay", _put(tmp_path, "e.csv", ""))
    assert (err.reason, err.line) == ("empty_file", 0)


def test_header_only(tmp_path: Path, wechat_text: str) -> None:
    err = _refused("wechatpay", _put(tmp_path, "h.csv", wechat_text.split("\n")[0] + "\n"))
    assert (err.reason, err.line) == ("header_only", 1)


def test_truncated_bill_loses_its_summary(tmp_path: Path, wechat_text: str) -> None:
    cut = "\n".join(wechat_text.split("\n")[:3]) + "\n"  # header and two rows, no summary
    err = _refused("wechatpay", _put(tmp_path, "t.csv", cut))
    assert (err.reason, err.line) == ("truncated", 3)


def test_truncated_mid_row(tmp_path: Path, wechat_text: str) -> None:
    lines = wechat_text.split("\n")
    lines[2] = lines[2][:40]  # the second row cut inside its fields, the summary still there
    err = _refused("wechatpay", _put(tmp_path, "r.csv", "\n".join(lines)))
    assert (err.reason, err.line) == ("truncated", 3)


def test_wrong_encoding(tmp_path: Path, wechat_text: str) -> None:
    data = wechat_text.replace("payrecon", "").encode("utf-8")
    header, rest = data.split(b"\n", 1)
    gbk = header + b"\n" + rest.replace(b"NATIVE", "扫码".encode("gbk"), 1)
    err = _refused("wechatpay", _put(tmp_path, "g.csv", gbk))
    assert (err.reason, err.line) == ("encoding", 2)


def test_bom(tmp_path: Path, wechat_text: str) -> None:
    err = _refused("wechatpay", _put(tmp_path, "b.csv", b"\xef\xbb\xbf" + wechat_text.encode()))
    assert (err.reason, err.line) == ("bom", 1)


def test_summary_that_disagrees(tmp_path: Path, wechat_text: str) -> None:
    lines = wechat_text.rstrip("\n").split("\n")
    lines[-1] = lines[-1].replace("`125.00", "`125.01", 1)  # 应结订单总金额: 100.00 + 25.00 = 125.00
    err = _refused("wechatpay", _put(tmp_path, "s.csv", "\n".join(lines) + "\n"))
    assert (err.reason, err.line) == ("control_total_mismatch", 5)
    assert "应结订单总金额" in err.detail


def test_sub_fen_fee_is_refused_not_rounded(tmp_path: Path, wechat_text: str) -> None:
    err = _refused("wechatpay", _put(tmp_path, "f.csv", wechat_text.replace("`0.60000", "`0.60600", 1)))
    assert (err.reason, err.line) == ("inexact_fee", 2)


def test_stripe_thousands_separator(tmp_path: Path) -> None:
    lines = [_line("stripe", "USD", "ch_1", "P1", LineType.PAYMENT, 123400, 0)]
    [path] = _writer("stripe")(lines, tmp_path, rule=rule_for("stripe"), business_date=DAY)
    text = path.read_text().replace(",1234.00,", ',"1,234.00",', 1)
    err = _refused("stripe", _put(tmp_path, "k.csv", text))
    assert (err.reason, err.line) == ("thousands_separator", 2)


def test_stripe_more_decimals_than_usd_has(tmp_path: Path) -> None:
    lines = [
        _line("stripe", "USD", "ch_1", "P1", LineType.PAYMENT, 1000, 0),
        _line("stripe", "USD", "ch_2", "P2", LineType.PAYMENT, 1000, 0),
    ]
    [path] = _writer("stripe")(lines, tmp_path, rule=rule_for("stripe"), business_date=DAY)
    rows = path.read_text().split("\n")
    rows[2] = rows[2].replace(",10.00,", ",10.005,", 1)
    err = _refused("stripe", _put(tmp_path, "d.csv", "\n".join(rows)))
    assert (err.reason, err.line) == ("too_many_decimals", 3)


def test_stripe_net_that_is_not_gross_minus_fee(tmp_path: Path) -> None:
    lines = [_line("stripe", "USD", "ch_1", "P1", LineType.PAYMENT, 1000, 59)]
    [path] = _writer("stripe")(lines, tmp_path, rule=rule_for("stripe"), business_date=DAY)
    err = _refused("stripe", _put(tmp_path, "n.csv", path.read_text().replace(",9.41,", ",9.42,", 1)))
    assert (err.reason, err.line) == ("net_mismatch", 2)


def _camt(tmp_path: Path) -> str:
    lines = [
        _line("jpbank", "JPY", "B1", "P1", LineType.PAYMENT, 10000, 0),
        _line("jpbank", "JPY", "B2", None, LineType.PAYOUT, -5000, 330),
    ]
    [path] = _writer("camt053")(lines, tmp_path / "c", rule=rule_for("jpbank"), business_date=DAY)
    return path.read_text()


def test_camt053_balance_that_disagrees(tmp_path: Path) -> None:
    # Entries +10000 and -5330 JPY from 0 close at 4670; the file is made to say 4671.
    text = _camt(tmp_path).replace('<Amt Ccy="JPY">4670</Amt>', '<Amt Ccy="JPY">4671</Amt>', 1)
    err = _refused("camt053", _put(tmp_path, "c.xml", text))
    assert err.reason == "balance_mismatch"
    assert err.line == next(i for i, t in enumerate(text.split("\n"), 1) if "CLBD" in t)


def test_camt053_yen_with_decimals(tmp_path: Path) -> None:
    text = _camt(tmp_path).replace('<Amt Ccy="JPY">10000</Amt>', '<Amt Ccy="JPY">10000.5</Amt>', 1)
    err = _refused("camt053", _put(tmp_path, "y.xml", text))
    assert err.reason == "too_many_decimals"
    assert err.line == next(i for i, t in enumerate(text.split("\n"), 1) if "10000.5" in t)


def test_camt053_truncated(tmp_path: Path) -> None:
    text = _camt(tmp_path)
    cut = text[: text.index("</Ntry>") + 7]
    err = _refused("camt053", _put(tmp_path, "t.xml", cut))
    assert err.reason == "truncated"


def test_xml_entity_declarations_are_refused(tmp_path: Path) -> None:
    bomb = '<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>\n<Document>&b;</Document>\n'
    err = _refused("camt053", _put(tmp_path, "x.xml", bomb))
    assert (err.reason, err.line) == ("bad_xml", 2)


def test_an_xml_declaration_naming_an_unknown_encoding_is_refused(tmp_path: Path) -> None:
    """expat asks Python for the codec and gets LookupError, which used to escape the parser."""
    text = _camt(tmp_path).replace('encoding="UTF-8"', 'encoding="ATF-8"', 1)
    assert 'encoding="ATF-8"' in text
    err = _refused("camt053", _put(tmp_path, "e.xml", text))
    assert (err.reason, err.line) == ("encoding", 1)


def test_bai2_trailer_that_disagrees_and_missing_trailer(tmp_path: Path) -> None:
    src = (Path(__file__).parent / "fixtures/bai2/moj_svb_us_example.bai2").read_text()
    err = _refused("bai2", _put(tmp_path, "a.bai2", src.replace("49,138884258,7/", "49,138884259,7/")))
    assert (err.reason, err.line) == ("control_total_mismatch", 9)
    err = _refused("bai2", _put(tmp_path, "b.bai2", src.rsplit("\n99,", 1)[0] + "\n"))
    assert (err.reason, err.line) == ("truncated", 19)


def test_the_same_file_twice(tmp_path: Path, wechat_text: str) -> None:
    first = _put(tmp_path, "day1.csv", wechat_text)
    again = _put(tmp_path, "day1-resent.csv", wechat_text)  # another name, the same bytes
    intake = Intake(MemorySeen())
    assert intake.admit(first, format="wechatpay", channel="wechatpay").frame.height == 2
    with pytest.raises(StatementError) as exc:
        intake.admit(again, format="wechatpay", channel="wechatpay")
    assert (exc.value.reason, exc.value.line) == ("duplicate_file", 0)
    assert str(first) in exc.value.detail


def test_a_refused_file_is_not_marked_seen(tmp_path: Path, wechat_text: str) -> None:
    bad = _put(tmp_path, "bad.csv", wechat_text.replace("`125.00", "`125.01", 1))
    seen: set[str] = set()
    intake = Intake(seen)
    with pytest.raises(StatementError):
        intake.admit(bad, format="wechatpay", channel="wechatpay")
    assert seen == set()  # nothing recorded: the corrected resend is taken
    good = _put(tmp_path, "good.csv", wechat_text)
    assert intake.admit(good, format="wechatpay", channel="wechatpay").frame.height == 2
    assert len(seen) == 1


def test_zip_bomb_is_refused_with_bounded_memory(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("2088_20261102_业务明细.csv", b"0" * (256 * 1024 * 1024))  # 256 MiB of zeros, ~250 KiB zipped
    path = _put(tmp_path, "bomb.csv.zip", buf.getvalue())
    tracemalloc.start()
    try:
        err = _refused("alipay", path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (err.reason, err.line) == ("zip_bomb", 0)
    assert peak < 64 * 1024 * 1024, f"peak {peak} bytes while refusing a bomb"


def test_gzip_bomb_is_stopped_while_inflating(tmp_path: Path) -> None:
    # gzip declares no size up front: the stream itself must be cut off at the limit.
    path = _put(tmp_path, "wechatpay_ALL.csv.gz", gzip.compress(b"0" * (128 * 1024 * 1024), compresslevel=9))
    tracemalloc.start()
    try:
        err = _refused("wechatpay", path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (err.reason, err.line) == ("zip_bomb", 0)
    assert peak < 64 * 1024 * 1024


def test_alipay_gbk_bill_read_as_utf8_is_refused(tmp_path: Path) -> None:
    lines = [_line("alipay", "CNY", "A1", "P1", LineType.PAYMENT, 1000, 6)]
    [path] = _writer("alipay")(lines, tmp_path, rule=rule_for("alipay"), business_date=DAY)
    with zipfile.ZipFile(path) as zf:
        gbk = zf.read(zf.namelist()[0])
    utf8 = _put(tmp_path, "bill.csv", gbk.decode("gbk").encode("utf-8"))  # the same bill, wrongly re-encoded
    err = _refused("alipay", utf8)
    assert err.reason in ("encoding", "bad_header")


def _zip(members: dict[str, bytes], *, gbk_names: bool = False) -> bytes:
    """A zip of `members`; with `gbk_names`, the names are written in GBK without the UTF-8 flag,
    as Chinese tools write them (zipfile itself would write UTF-8 and flag it)."""
    placeholders = {name: f"n{i}".ljust(len(name.encode("gbk")), "_") for i, name in enumerate(members)}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(placeholders[name] if gbk_names else name, data)
    raw = out.getvalue()
    if gbk_names:
        for name, placeholder in placeholders.items():
            assert raw.count(placeholder.encode()) == 2  # the local header and the central directory
            raw = raw.replace(placeholder.encode(), name.encode("gbk"))
    return raw


def test_an_alipay_archive_gives_its_details_not_its_summary(tmp_path: Path) -> None:
    from connectors.statements._common import unzip_member

    details, summary = "2088000000000001_20261102_业务明细.csv", "2088000000000001_20261102_业务明细(汇总).csv"
    for gbk_names in (True, False):
        data = _zip({summary: b"summary", details: b"details"}, gbk_names=gbk_names)
        assert unzip_member(tmp_path / "a.zip", data, prefer=lambda n: "汇总" not in n) == (details, b"details")
    # A folder named like a member is no member; a member of another kind is not read.
    data = _zip({"bill.csv/": b"", "bill.csv": b"rows", "readme.txt": b"x"})
    assert unzip_member(tmp_path / "b.zip", data) == ("bill.csv", b"rows")
    # Two candidates that nothing tells apart: refused, naming what the archive holds.
    for prefer in (None, lambda n: "nothing" in n):
        with pytest.raises(StatementError) as err:
            unzip_member(tmp_path / "c.zip", _zip({"a.csv": b"1", "b.csv": b"2"}), prefer=prefer)
        assert err.value.reason == "bad_archive" and "a.csv" in str(err.value)
