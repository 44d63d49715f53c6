"""`controls="report"`: files whose own control totals disagree with their lines still parse, with
every disagreement listed, while `enforce` (the default) refuses them and every other defect is
refused under both policies.

The two real fixtures here contradict their own totals (PROVENANCE.md says how); the expected
counts and sums below were worked out by reading the files, with the arithmetic beside them.
"""

from __future__ import annotations

import gzip
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from connectors.statements import ParsedFile, StatementError, get_format
from pipelines.matching.rules import rule_for
from pipelines.records import LineType, StatementLine

FIXTURES = Path(__file__).parent / "fixtures"
DAY = date(2026, 11, 2)
AT = datetime(2026, 11, 2, 3, 4, 5, tzinfo=UTC)


def _line(channel: str, currency: str, txn: str, line_type: LineType, gross: int, fee: int) -> StatementLine:
    return StatementLine(channel, "", DAY, "", "", 0, line_type, txn, f"P-{txn}", gross, fee, gross - fee, currency,
                         AT, DAY, "")  # fmt: skip


def _put(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _both(fmt: str, path: Path, channel: str) -> tuple[StatementError, ParsedFile]:
    """The refusal under `enforce` (the default) and the parse under `report`, of the same file."""
    with pytest.raises(StatementError) as exc:
        get_format(fmt).parse(path, channel=channel)
    return exc.value, get_format(fmt).parse(path, channel=channel, controls="report")


def _by_type(pf: ParsedFile) -> dict[str, tuple[int, int]]:
    """line_type -> (lines, sum of gross in minor units)."""
    rows = pf.frame.group_by("line_type").agg(pl.len(), pl.col("gross_minor").sum()).rows()
    return {t: (int(n), int(s)) for t, n, s in rows}


def _mismatches(pf: ParsedFile) -> list[tuple[int, str]]:
    listed = pf.controls["mismatches"]
    assert isinstance(listed, list)
    return [(m["line"], m["reason"]) for m in listed]


def test_mt940_abnamro_report_returns_every_line_and_both_unbalanced_statements() -> None:
    path = FIXTURES / "mt940/wolph_jejik_abnamro.sta"
    refused, pf = _both("mt940", path, "bank")
    assert (refused.reason, refused.line) == ("balance_mismatch", 27)
    # grep -n '^:61:': lines 8, 12, 14, 16, 18, 20, 23, 25 (statement 1) and 36, 38 (statement 2), all D, EUR.
    # Statement 1: 9 + 11,59 + 11,63 + 11,8 + 13,45 + 15,49 + 107 + 141,48 = 321,44 of debits;
    # Statement 2: 9,49 + 15 = 24,49. File: 321,44 + 24,49 = 345,93 EUR of debits, no credits.
    assert pf.frame["line_no"].to_list() == [8, 12, 14, 16, 18, 20, 23, 25, 36, 38]
    assert pf.frame["gross_minor"].to_list() == [-900, -1159, -1163, -1180, -1345, -1549, -10700, -14148, -949, -1500]
    assert _by_type(pf) == {"PAYOUT": (10, -34593)}
    assert pf.frame["currency"].unique().to_list() == ["EUR"]
    # :60F: C 3236,28 - 321,44 = 2914,84, but :62F: (line 27) says 876,84;
    # :60M: C 2876,84 - 24,49 = 2852,35, but :62M: (line 40) says 1849,75.
    assert pf.controls["ok"] is False
    assert _mismatches(pf) == [(27, "balance_mismatch"), (40, "balance_mismatch")]
    listed = pf.controls["mismatches"]
    assert isinstance(listed, list) and "closing says 87684" in listed[0]["detail"]
    assert (pf.controls["statements"], pf.controls["lines"]) == (2, 10)


def test_alipay_personal_report_returns_the_ten_rows_and_the_summary_mismatch() -> None:
    path = FIXTURES / "alipay/debsig_example-alipay-records_GBK.csv"
    refused, pf = _both("alipay", path, "alipay")
    assert (refused.reason, refused.line) == ("control_total_mismatch", 8)
    # Rows on lines 26..35 (10 rows; the preamble's line 8 says 共66笔记录), all CNY:
    # 收入 (PAYMENT): 222228.50 (line 30);
    # 支出 (PAYOUT): 49.74 + 20.00 + 50.00 + 9.90 + 82.00 = 211.64 (5 rows);
    # 不计收支 with a refund state (REFUND): 16.03 + 50.00 = 66.03 (2 rows);
    # 不计收支 otherwise (ADJUSTMENT, taken out): 99.34 + 82.00 = 181.34 (2 rows).
    # Net: 222228.50 - 211.64 + 66.03 - 181.34 = 221901.55.
    assert pf.frame["line_no"].to_list() == list(range(26, 36))
    assert _by_type(pf) == {
        "PAYMENT": (1, 22222850),
        "PAYOUT": (5, -21164),
        "REFUND": (2, 6603),
        "ADJUSTMENT": (2, -18134),
    }
    assert int(pf.frame["gross_minor"].sum()) == 22190155 == 22222850 - 21164 + 6603 - 18134
    assert pf.frame["currency"].unique().to_list() == ["CNY"]
    # The preamble's own figures, kept as declared: 66 records; 收入 1 for 28.50; 支出 63 for 16.54;
    # 不计收支 2 for 16.37: every one disagrees with the rows, in one control line.
    assert pf.controls["记录"] == [66, 0, 0] and pf.controls["支出"] == [63, 1654, 0]
    assert pf.controls["ok"] is False
    assert _mismatches(pf) == [(8, "control_total_mismatch")]


def test_report_still_refuses_every_other_defect(tmp_path: Path) -> None:
    text = (FIXTURES / "mt940/wolph_jejik_abnamro.sta").read_text("ascii")
    # Three decimals on a EUR amount: refused under report too, never rounded or skipped.
    bad = _put(tmp_path, "three_decimals.sta", text.replace(":61:1105240524D9,N192", ":61:1105240524D9,123N192", 1))
    with pytest.raises(StatementError) as exc:
        get_format("mt940").parse(bad, channel="bank", controls="report")
    assert (exc.value.reason, exc.value.line) == ("too_many_decimals", 8)
    # Cut before the first statement's closing balance: truncated, under either policy.
    cut = _put(tmp_path, "cut.sta", text[: text.index(":62F:")])
    with pytest.raises(StatementError) as exc:
        get_format("mt940").parse(cut, channel="bank", controls="report")
    assert exc.value.reason == "truncated"


def test_a_file_whose_totals_hold_reports_no_mismatch() -> None:
    pf = get_format("bai2").parse(FIXTURES / "bai2/moj_svb_us_example.bai2", channel="svb", controls="report")
    strict = get_format("bai2").parse(FIXTURES / "bai2/moj_svb_us_example.bai2", channel="svb")
    assert pf.controls == {**strict.controls, "mismatches": []} and pf.controls["ok"] is True
    assert pf.frame.equals(strict.frame)
    assert "mismatches" not in strict.controls  # enforce's summary is what it always was


def test_camt053_wrong_closing_balance(tmp_path: Path) -> None:
    lines = [
        _line("jpbank", "JPY", "B1", LineType.PAYMENT, 10000, 0),
        _line("jpbank", "JPY", "B2", LineType.PAYOUT, -5000, 330),
    ]
    write = get_format("camt053").write
    assert write is not None
    [path] = write(lines, tmp_path / "c", rule=rule_for("jpbank"), business_date=DAY)
    # Entries +10000 and -5330 JPY from an opening of 0 close at 4670; the file is made to say 4671.
    text = path.read_text().replace('<Amt Ccy="JPY">4670</Amt>', '<Amt Ccy="JPY">4671</Amt>', 1)
    clbd = next(i for i, t in enumerate(text.split("\n"), 1) if "CLBD" in t)
    refused, pf = _both("camt053", _put(tmp_path, "c.xml", text), "jpbank")
    assert (refused.reason, refused.line) == ("balance_mismatch", clbd)
    assert pf.frame.select("gross_minor", "fee_minor", "net_minor").rows() == [(10000, 0, 10000), (-5000, 330, -5330)]
    assert _mismatches(pf) == [(clbd, "balance_mismatch")]


# A minimal BAI2 file written by hand. Account total = the 03 summary amount 1000 + the 16 amounts
# 1500 + 500 = 3000 over 4 records (03, 16, 16, 49); group: 3000, 1 account, 6 records (02..98);
# file: 3000, 1 group, 8 records. Type 142 is a credit, 475 a debit.
BAI2 = """01,SENDER,RECEIVER,261102,0800,1,,,2/
02,RECEIVER,SENDER,1,261102,0800,USD,2/
03,123456789,USD,010,1000,,/
16,142,1500,Z,REF1,CUST1,ACH credit/
16,475,500,Z,REF2,CUST2,check paid/
49,3000,4/
98,3000,1,6/
99,3000,1,8/
"""


def test_bai2_wrong_file_trailer(tmp_path: Path) -> None:
    assert get_format("bai2").parse(_put(tmp_path, "ok.bai2", BAI2), channel="svb").controls["ok"] is True
    path = _put(tmp_path, "wrong.bai2", BAI2.replace("99,3000,1,8/", "99,3001,1,9/"))
    refused, pf = _both("bai2", path, "svb")
    assert (refused.reason, refused.line) == ("control_total_mismatch", 8)
    assert pf.frame.select("line_no", "gross_minor", "line_type").rows() == [(4, 1500, "PAYMENT"), (5, -500, "PAYOUT")]
    assert _mismatches(pf) == [(8, "control_total_mismatch")]
    # The totals kept are the ones the records give, not the wrong trailer's.
    assert (pf.controls["total"], pf.controls["records"]) == (3000, 8)


def test_wechatpay_wrong_summary(tmp_path: Path) -> None:
    lines = [
        _line("wechatpay", "CNY", "W1", LineType.PAYMENT, 10000, 60),
        _line("wechatpay", "CNY", "W2", LineType.PAYMENT, 2500, 15),
    ]
    write = get_format("wechatpay").write
    assert write is not None
    [path] = write(lines, tmp_path / "w", rule=rule_for("wechatpay"), business_date=DAY)
    text = gzip.decompress(path.read_bytes()).decode("utf-8")
    # Header, 2 rows, summary header, summary (line 5): 应结订单总金额 100.00 + 25.00 = 125.00, said 125.01.
    assert "`125.00" in text
    bill = _put(tmp_path, "w.csv", text.replace("`125.00", "`125.01", 1))
    refused, pf = _both("wechatpay", bill, "wechatpay")
    assert (refused.reason, refused.line) == ("control_total_mismatch", 5)
    assert pf.frame.select("gross_minor", "fee_minor", "net_minor").rows() == [(10000, 60, 9940), (2500, 15, 2485)]
    assert _mismatches(pf) == [(5, "control_total_mismatch")]
    listed = pf.controls["mismatches"]
    assert isinstance(listed, list) and "应结订单总金额" in listed[0]["detail"]


def test_unknown_policy_is_a_bug_not_a_silent_enforce(tmp_path: Path) -> None:
    with pytest.raises(AssertionError):
        get_format("bai2").parse(_put(tmp_path, "ok.bai2", BAI2), channel="svb", controls="lenient")  # type: ignore[arg-type]
