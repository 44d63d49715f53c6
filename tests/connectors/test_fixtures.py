"""Real third-party files: counts and totals worked out by reading each file (arithmetic in the
comments), checked against the parsers; files whose own totals disagree must be refused under the
default `controls="enforce"` (their lines and mismatches under `report`: test_control_policy.py)."""

from __future__ import annotations

import gc
import re
from pathlib import Path
from typing import Any

import pytest

from connectors.statements import StatementError, get_format
from connectors.statements import alipay as alipay_fmt
from connectors.statements import mt940 as mt940_fmt

FIXTURES = Path(__file__).parent / "fixtures"


def test_camt053_two_statements_balance_and_end_to_end_ids() -> None:
    pf = get_format("camt053").parse(FIXTURES / "camt053/genkgo_camt053.v2.multi.statement.xml", channel="bank")
    # Stmt 253...: OPBD 18.15 CRDT + entry 8.85 CRDT = CLBD 27.00; Stmt 254...: 27.00 - 7.00 DBIT = 20.00.
    rows = pf.frame.select("line_no", "payment_id", "gross_minor", "net_minor", "currency", "line_type", "raw").rows()
    assert rows == [
        (66, "000000001", 885, 885, "EUR", "PAYMENT", "BOOK"),  # <Ntry> at line 66
        (145, "000000002", -700, -700, "EUR", "PAYOUT", "BOOK"),  # <Ntry> at line 145
    ]
    assert pf.controls["statements"] == 2
    assert pf.frame["booked_at"].dt.date().to_list() == [pf.frame["booked_at"][0].date()] * 2  # both BookgDt 2014-12-31
    assert str(pf.frame["value_date"][0]) == "2015-01-02"


def test_bai2_two_groups_trailers_hold() -> None:
    pf = get_format("bai2").parse(FIXTURES / "bai2/moj_svb_us_example.bai2", channel="svb")
    # Two 16 records (type 142, ACH credit received): 490196 and 905800 cents USD.
    # 49 (group 1): 34726979 + 35217175 + 32742537 + 35217175 + 0 + 0 + 490196 + 0 + 490196 = 138884258, 7 records
    # 49 (group 2): 35217175 + 36122975 + 33871213 + 36122975 + 905800 + 905800 = 143145938, 7 records
    # 99: 138884258 + 143145938 = 282030196, 2 groups, 1 + 9 + 9 + 1 = 20 records.
    assert pf.frame.select("line_no", "channel_txn_id", "gross_minor", "currency", "line_type").rows() == [
        (7, "172629", 490196, "USD", "PAYMENT"),
        (16, "150675", 905800, "USD", "PAYMENT"),
    ]
    assert pf.controls["total"] == 282030196 and pf.controls["records"] == 20 and pf.controls["groups"] == 2


def test_wechatpay_all_layout_summary_holds() -> None:
    pf = get_format("wechatpay").parse(FIXTURES / "wechatpay/gunsluo_tradebill_ALL.csv", channel="wechatpay")
    # Three SUCCESS rows of 0.01 CNY, fee 0.00000 (exact: no sub-fen digits); summary `3,`0.03,...,`0.00000.
    assert pf.frame.height == 3
    assert pf.frame["gross_minor"].to_list() == [1, 1, 1]
    assert pf.frame["fee_minor"].to_list() == [0, 0, 0]
    assert pf.frame["payment_id"].to_list() == [
        "S20210128170702357723",
        "S20210128153505214586",
        "S20210128165824499930",
    ]
    assert pf.frame["channel_txn_id"][0] == "4200000925202101284997714292"
    assert pf.frame["raw"].unique().to_list() == ["SUCCESS"]
    # 交易时间 2021-01-28 17:07:11 Beijing time is 09:07:11 UTC.
    assert pf.frame["booked_at"][0].strftime("%H:%M:%S") == "09:07:11"
    assert pf.controls["总交易单数"] == 3 and pf.controls["应结订单总金额"] == 3


def test_ofx_three_debits_in_cad() -> None:
    pf = get_format("ofx").parse(FIXTURES / "ofx/ofxparse_bank_medium.ofx", channel="bank")
    # TRNAMT -6.60, -316.67, -22.00: 3 lines, total -345.27 CAD.
    assert pf.frame["gross_minor"].to_list() == [-660, -31667, -2200]
    assert int(pf.frame["gross_minor"].sum()) == -34527
    assert pf.frame["channel_txn_id"][0] == "0000123456782009040100001"
    # DTPOSTED 20090401122017.000[-5:EST] is 17:20:17 UTC.
    assert pf.frame["booked_at"][0].strftime("%Y-%m-%d %H:%M:%S") == "2009-04-01 17:20:17"


def test_mt940_betterplace_97_lines_in_26_balanced_statements() -> None:
    path = FIXTURES / "mt940/wolph_betterplace_sepa_mt9401.sta"
    pf = get_format("mt940").parse(path, channel="bank")
    # grep -c '^:61:' = 97; by mark: C 41, D 54, RC 2 (reversals of credits), RD 0; grep -c '^:20:' = 26.
    assert pf.frame.height == 97
    assert pf.controls["statements"] == 26
    counts = dict(pf.frame.group_by("line_type").len().rows())
    assert counts == {"PAYMENT": 41, "PAYOUT": 54, "REVERSAL": 2}
    # Sum of (62F - 60F) over the 26 statements, read from the balance tags: -9269135.90 EUR;
    # credits 5188474.94, debits 14457201.08, reversed credits 409.76: 5188474.94 - 14457201.08 - 409.76.
    assert int(pf.frame["gross_minor"].sum()) == -926913590 == 518847494 - 1445720108 - 40976
    # First statement by hand: opening D 1234718,36; +300 +335,33 +15000 +66295,08 +915311,55 -204,88 (RC)
    # -999946,95 = -2909,87; closing D 1237628,23 = -1234718,36 - 2909,87.
    first = pf.frame.head(7)["gross_minor"].to_list()
    assert first == [30000, 33533, 1500000, 6629508, 91531155, -20488, -99994695]
    # A SEPA :86: carries the end-to-end id after EREF+ in ?20..; NONREF lines have none.
    assert pf.frame["payment_id"][0] == "TFNR 40005 00005"


def test_mt940_betterplace_agrees_with_the_mt940_library() -> None:
    mt940_lib = pytest.importorskip("mt940")
    path = FIXTURES / "mt940/wolph_betterplace_sepa_mt9401.sta"
    frame = get_format("mt940").parse(path, channel="bank").frame
    theirs = [int(t.data["amount"].amount * 100) for t in mt940_lib.parse(str(path))]
    # The library signs a reversal of credit (RC) as a credit; SWIFT books it as a debit, and only
    # then do this file's statements balance. Elsewhere the two readings agree exactly.
    ours = [(-g if t == "REVERSAL" else g) for g, t in frame.select("gross_minor", "line_type").rows()]
    assert ours == theirs


def test_mt940_abnamro_is_refused_because_its_balances_disagree() -> None:
    path = FIXTURES / "mt940/wolph_jejik_abnamro.sta"
    # Statement 1: :60F: C 3236,28; :61: debits 9 + 11,59 + 11,63 + 11,8 + 13,45 + 15,49 + 107 + 141,48 = 321,44;
    # 3236,28 - 321,44 = 2914,84 but :62F: (line 27) says C 876,84.
    with pytest.raises(StatementError) as exc:
        get_format("mt940").parse(path, channel="bank")
    assert (exc.value.reason, exc.value.line) == ("balance_mismatch", 27)
    statements = mt940_fmt.read_statements(path, path.read_bytes())
    assert [len(s.entries) for s in statements] == [8, 2]
    assert [sum(e.amount for e in s.entries) for s in statements] == [-32144, -2449]  # second: 9,49 + 15
    assert statements[0].entries[6].amount == -10700  # "D107," is 107.00


def test_alipay_personal_export_is_refused_because_its_summary_disagrees() -> None:
    path = FIXTURES / "alipay/debsig_example-alipay-records_GBK.csv"
    # Preamble line 8 says 共66笔记录; the file has 10 rows.
    with pytest.raises(StatementError) as exc:
        get_format("alipay").parse(path, channel="alipay")
    assert (exc.value.reason, exc.value.line) == ("control_total_mismatch", 8)
    bill = alipay_fmt.read(path)
    # 收入: 222228.50 (1 row); 支出: 49.74 + 20.00 + 50.00 + 9.90 + 82.00 = 211.64 (5 rows);
    # 不计收支: 16.03 + 99.34 + 82.00 + 50.00 = 247.37 (4 rows).
    assert bill.computed == {
        "记录": (10, 0, 0),
        "收入": (1, 22222850, 0),
        "支出": (5, 21164, 0),
        "不计收支": (4, 24737, 0),
    }
    assert bill.declared["支出"] == (63, 1654, 0)  # 支出：63笔 16.54元
    # Ids end with a TAB in the file; the reader strips it.
    ids = bill.rows["交易订单号"].to_list()
    assert ids[0] == "202302xxxxxx0011000103xxxxxx" and not any(re.search(r"\s$", i) for i in ids)


def test_every_fixture_is_detected_as_its_format() -> None:
    from connectors.statements import detect_format

    expected = {"alipay": "alipay", "bai2": "bai2", "camt053": "camt053", "mt940": "mt940", "ofx": "ofx",
                "wechatpay": "wechatpay"}  # fmt: skip
    for folder, name in expected.items():
        for path in (FIXTURES / folder).iterdir():
            assert detect_format(path) == name, path


def test_the_camt_reader_leaves_its_xml_tree_to_reference_counting() -> None:
    """The tree of a parse is freed when the parse is done, not when the cyclic collector next
    traces it (a cycle through the expat handlers made a 240,000-entry statement twice as slow)."""
    from connectors.statements import iso20022

    gc.collect()
    gc.disable()
    try:
        get_format("camt053").parse(FIXTURES / "camt053/genkgo_camt053.v2.multi.statement.xml", channel="bank")
        assert not [o for o in gc.get_objects() if isinstance(o, iso20022.Node)]
    finally:
        gc.enable()


def test_the_camt_reader_takes_each_entry_out_of_the_tree_as_it_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    """Entries are read as they end and dropped, so the tree holds one entry at a time (whole, a
    statement of 243,449 entries held 2.4 GB of Nodes); every statement's lines still come out."""
    from connectors.statements import iso20022

    held: list[int] = []
    read_xml = iso20022.read_xml

    def watched(path: Path, data: bytes, consume: Any = None, consume_tag: str = "") -> iso20022.Node:
        def consume_and_count(node: iso20022.Node, ancestors: list[iso20022.Node]) -> bool:
            held.append(sum(1 for c in ancestors[-1].children if c.tag == "Ntry"))
            return bool(consume(node, ancestors))

        root = read_xml(path, data, consume_and_count, consume_tag)
        assert not list(root.iter("Ntry")), "an entry was left in the tree"
        return root

    monkeypatch.setattr(iso20022, "read_xml", watched)
    parsed = get_format("camt053").parse(FIXTURES / "camt053/genkgo_camt053.v2.multi.statement.xml", channel="bank")
    assert parsed.controls["statements"] == 2 and parsed.controls["entries"] == 2
    assert held == [1, 1], "each entry is consumed alone, in both statements"
    assert parsed.frame.height == 2
