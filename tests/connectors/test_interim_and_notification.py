"""MT942 interim reports and camt.054 notifications: hand-written, realistic files with the counts
and totals worked out by hand (in the comments), and the same files with their control totals
made to disagree, refused with the named reason at the footer's line."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from connectors.statements import StatementError, detect_format, get_format

FIXTURES = Path(__file__).parent / "fixtures"
MT942 = FIXTURES / "mt942/interim_eur.sta"
CAMT054_V02 = FIXTURES / "camt054/notification_v02_eur.xml"
CAMT054_V08 = FIXTURES / "camt054/notification_v08_usd.xml"
COLS = ("line_no", "line_type", "channel_txn_id", "payment_id", "gross_minor", "fee_minor", "net_minor", "currency")


def _refused(fmt: str, path: Path) -> StatementError:
    with pytest.raises(StatementError) as exc:
        get_format(fmt).parse(path, channel="bank")
    return exc.value


def _variant(tmp_path: Path, source: Path, old: str, new: str) -> Path:
    text = source.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur once in {source.name}"
    out = tmp_path / source.name
    out.write_text(text.replace(old, new), encoding="utf-8")
    return out


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, t in enumerate(path.read_text().split("\n"), 1) if needle in t)


# --- MT942 -----------------------------------------------------------------------------------


def test_mt942_lines_and_summaries() -> None:
    assert detect_format(MT942) == "mt942"
    pf = get_format("mt942").parse(MT942, channel="bank")
    # :61: credits 1250,00 + 75,50 = 1325,50 in 2 lines (:90C:2EUR1325,50);
    # debits 300, + 2,50 = 302,50 in 2 lines (:90D:2EUR302,50). The CHG line is a FEE.
    # payment ids: the customer reference P-3001 (its /EREF/ is not the SEPA EREF+ form), EREF+P-3002.
    assert pf.frame.select(COLS).rows() == [
        (7, "PAYMENT", "BK-0001", "P-3001", 125000, 0, 125000, "EUR"),
        (9, "PAYMENT", "BK-0002", "P-3002", 7550, 0, 7550, "EUR"),
        (11, "PAYOUT", "BK-0003", None, -30000, 0, -30000, "EUR"),
        (13, "FEE", "BK-0004", None, -250, 0, -250, "EUR"),
    ]
    assert pf.frame["account"][0] == "NL91ABNA0417164300"
    assert pf.frame["booked_at"][0] == datetime(2026, 11, 2, tzinfo=UTC)  # entry date 1102 at midnight UTC
    assert pf.controls == {"statements": 1, "lines": 4, "ok": True}


def test_mt942_in_a_swift_envelope_with_crlf_reads_the_same(tmp_path: Path) -> None:
    # The same report as a bank delivers it over FIN: block wrapper, CRLF line ends.
    body = MT942.read_text().rstrip("\n").removesuffix("\n-")
    wrapped = "{1:F01ABNANL2AXXXX0000000000}{2:O9421530261102ABNANL2AXXXX00000000002611021530N}{4:\n" + body + "\n-}"
    path = tmp_path / "wrapped.fin"
    path.write_bytes(wrapped.replace("\n", "\r\n").encode("ascii"))
    assert detect_format(path) == "mt942"
    got = get_format("mt942").parse(path, channel="bank").frame.select(COLS[1:]).rows()
    assert got == get_format("mt942").parse(MT942, channel="bank").frame.select(COLS[1:]).rows()


@pytest.mark.parametrize(
    ("old", "new", "tag"),
    [
        (":90D:2EUR302,50", ":90D:3EUR302,50", ":90D:"),  # three debits declared, two booked
        (":90D:2EUR302,50", ":90D:2EUR302,51", ":90D:"),  # a cent more than the debits
        (":90C:2EUR1325,50", ":90C:2EUR1352,50", ":90C:"),  # transposed digits in the credit sum
    ],
)
def test_mt942_summary_that_disagrees(tmp_path: Path, old: str, new: str, tag: str) -> None:
    path = _variant(tmp_path, MT942, old, new)
    err = _refused("mt942", path)
    assert (err.reason, err.line) == ("control_total_mismatch", _line_of(path, tag))
    assert tag in err.detail


def test_mt942_bad_amount_and_line(tmp_path: Path) -> None:
    err = _refused("mt942", _variant(tmp_path, MT942, "D2,50NCHG", "D2,505NCHG"))
    assert (err.reason, err.line) == ("too_many_decimals", 13)
    err = _refused("mt942", _variant(tmp_path, MT942, ":61:2611021102C75,50NTRF", ":61:2611021102X75,50NTRF"))
    assert (err.reason, err.line) == ("bad_record", 9)


# --- camt.054 --------------------------------------------------------------------------------


def test_camt054_v02_single_batch_and_charged_entries() -> None:
    assert detect_format(CAMT054_V02) == "camt054"
    pf = get_format("camt054").parse(CAMT054_V02, channel="bank")
    # Entry 1: 1200.00 CRDT, one TxDtls, EndToEndId P-4001, the entry's AcctSvcrRef BANK-E1.
    # Entry 2: a batch (Btch NbOfTxs 2, TtlAmt 350.00) booked as one entry: 200.00 + 150.00 = 350.00,
    #          one line per TxDtls, each at its <TxDtls> line, with its own AcctSvcrRef.
    # Entry 3: 101.00 DBIT = payout 100.00 (TxAmt) + 1.00 charges (fee): gross -100.00, net -101.00.
    # TxsSummry: 3 entries, 1200 + 350 + 101 = 1651.00; credits 2 for 1550.00; debits 1 for 101.00.
    assert pf.frame.select(COLS).rows() == [
        (_line_of(CAMT054_V02, "<Ntry>"), "PAYMENT", "BANK-E1", "P-4001", 120000, 0, 120000, "EUR"),
        (60, "PAYMENT", "BANK-E2-1", "P-4002", 20000, 0, 20000, "EUR"),
        (64, "PAYMENT", "BANK-E2-2", "P-4003", 15000, 0, 15000, "EUR"),
        (70, "PAYOUT", "BANK-E3", "W-4004", -10000, 100, -10100, "EUR"),
    ]
    lines = CAMT054_V02.read_text().split("\n")
    assert [lines[i - 1].strip() for i in (60, 64)] == ["<TxDtls>", "<TxDtls>"]
    assert "<Ntry>" in lines[69] and "101.00" in lines[70]
    assert pf.frame["value_date"].to_list() == [
        date(2026, 11, 2),
        date(2026, 11, 3),
        date(2026, 11, 3),
        date(2026, 11, 2),
    ]
    assert (pf.controls["account"], pf.controls["entries"]) == ("DE89370400440532013000", 3)


def test_camt054_v08_reversal_refund_pending_and_date_times() -> None:
    pf = get_format("camt054").parse(CAMT054_V08, channel="bank")
    # 500.00 CRDT payment; 80.00 DBIT with RvslInd true (REVERSAL); 25.50 DBIT = refund 25.00 (TxAmt)
    # + 0.50 charges (Chrgs/Rcrd, DBIT); 10.00 CRDT PDNG with EndToEndId NOTPROVIDED (no payment_id).
    # TxsSummry: 4 entries, 500 + 80 + 25.50 + 10 = 615.50; net 500 - 80 - 25.50 + 10 = 404.50 CRDT;
    # credits 2 for 510.00; debits 2 for 105.50.
    assert pf.frame.select(*COLS, "raw").rows() == [
        (24, "PAYMENT", "US-1", "P-5001", 50000, 0, 50000, "USD", "BOOK"),
        (41, "REVERSAL", "US-2", "P-4999", -8000, 0, -8000, "USD", "BOOK"),
        (58, "REFUND", "US-3", "R-5001", -2500, 50, -2550, "USD", "BOOK"),
        (77, "PAYMENT", "US-4", None, 1000, 0, 1000, "USD", "PDNG"),
    ]
    assert [CAMT054_V08.read_text().split("\n")[i - 1].strip() for i in (24, 41, 58, 77)] == ["<Ntry>"] * 4
    # BookgDt/DtTm 2026-11-02T10:15:30+09:00 is 01:15:30 UTC.
    assert pf.frame["booked_at"][0] == datetime(2026, 11, 2, 1, 15, 30, tzinfo=UTC)
    assert pf.frame["account"][0] == "US-0001-7788"


@pytest.mark.parametrize(
    ("source", "old", "new", "at"),
    [
        (CAMT054_V02, "<NbOfNtries>3</NbOfNtries>", "<NbOfNtries>4</NbOfNtries>", "<TtlNtries>"),
        (CAMT054_V02, "<Sum>1550.00</Sum>", "<Sum>1550.01</Sum>", "<TtlCdtNtries>"),
        (CAMT054_V02, "<NbOfTxs>2</NbOfTxs>", "<NbOfTxs>3</NbOfTxs>", "<Btch>"),
        (CAMT054_V02, '<TtlAmt Ccy="EUR">350.00</TtlAmt>', '<TtlAmt Ccy="EUR">305.00</TtlAmt>', "<Btch>"),
        # The batch's transactions no longer add up to the entry's 350.00: refused at that <Ntry> (line 46).
        (CAMT054_V02, '<Amt Ccy="EUR">150.00</Amt>', '<Amt Ccy="EUR">150.50</Amt>', 46),
        # TxAmt 100.00 + charges 1.00 is the 101.00 booked; 100.10 would not be.
        (CAMT054_V02, '<Amt Ccy="EUR">100.00</Amt>', '<Amt Ccy="EUR">100.10</Amt>', '"EUR">100.10'),
        (CAMT054_V08, "<Amt>404.50</Amt>", "<Amt>405.40</Amt>", "<TtlNtries>"),
        (CAMT054_V08, "<Sum>105.50</Sum>", "<Sum>105.00</Sum>", "<TtlDbtNtries>"),
    ],
)
def test_camt054_control_totals_that_disagree(tmp_path: Path, source: Path, old: str, new: str, at: str | int) -> None:
    path = _variant(tmp_path, source, old, new)
    err = _refused("camt054", path)
    assert (err.reason, err.line) == ("control_total_mismatch", at if isinstance(at, int) else _line_of(path, at))


def test_camt054_bad_amounts_and_structure(tmp_path: Path) -> None:
    err = _refused("camt054", _variant(tmp_path, CAMT054_V08, '<Amt Ccy="USD">10.00</Amt>\n        <CdtDbtInd>CRDT',
                                       '<Amt Ccy="USD">10.001</Amt>\n        <CdtDbtInd>CRDT'))  # fmt: skip
    assert err.reason == "too_many_decimals"
    path = _variant(tmp_path, CAMT054_V02, "<Ntfctn>", "<Stmt>").read_text().replace("</Ntfctn>", "</Stmt>")
    (tmp_path / "s.xml").write_text(path)
    assert _refused("camt054", tmp_path / "s.xml").reason == "header_only"  # a notification without Ntfctn
    cut = tmp_path / "cut.xml"
    cut.write_text(CAMT054_V08.read_text()[:-60])
    assert _refused("camt054", cut).reason == "truncated"


@pytest.mark.parametrize(
    ("code", "gross", "line_type"),
    [
        (("PMNT", "RCDT", "ESCT"), 12_345, "PAYMENT"),
        (("PMNT", "ICDT", "ESCT"), -12_345, "PAYOUT"),
        # The code decides over the sign (a received credit booked as a debit is still its payment).
        (("PMNT", "RCDT", "ESCT"), -12_345, "PAYMENT"),
        (("PMNT", "ICDT", "ESCT"), 12_345, "PAYOUT"),
        (("PMNT", "ICDT", "RRTN"), -12_345, "REFUND"),
        (("ACMT", "MDOP", "CHRG"), -12_345, "FEE"),
        (("ACMT", "MCOP", "ADJT"), 12_345, "ADJUSTMENT"),
        (("PMNT", "CCRD", "CHBK"), -12_345, "CHARGEBACK"),
        # A card family without the chargeback sub-family, and a code we do not map: by the sign.
        (("PMNT", "CCRD", "POSD"), 12_345, "PAYMENT"),
        (("PMNT", "MCRD", "CHBK"), -12_345, "PAYOUT"),
        (("XTND", "NTAV", "NTAV"), -12_345, "PAYOUT"),
    ],
)
def test_a_camt053_entry_is_typed_by_its_bank_transaction_code(
    tmp_path: Path, code: tuple[str, str, str], gross: int, line_type: str
) -> None:
    from connectors.statements import camt053
    from pipelines.records import LineType, StatementLine

    day = date(2026, 11, 2)
    booked = datetime(2026, 11, 2, 3, tzinfo=UTC)
    written = LineType.PAYMENT if gross > 0 else LineType.PAYOUT
    line = StatementLine("jpbank", "", day, "", "", 0, written, "T1", "P1", gross, 0, gross, "JPY", booked, day, "")
    text = camt053.render([line], account="ACC", currency="JPY", business_date=day, stmt_id="S1")
    domain, family, sub = camt053.BANK_TX_CODE[written]
    usual = f"<Domn><Cd>{domain}</Cd><Fmly><Cd>{family}</Cd><SubFmlyCd>{sub}</SubFmlyCd></Fmly></Domn>"
    assert text.count(usual) == 1
    path = tmp_path / "s.camt053.xml"
    path.write_text(
        text.replace(
            usual, f"<Domn><Cd>{code[0]}</Cd><Fmly><Cd>{code[1]}</Cd><SubFmlyCd>{code[2]}</SubFmlyCd></Fmly></Domn>"
        ),
        encoding="utf-8",
    )
    parsed = get_format("camt053").parse(path, channel="jpbank")
    assert parsed.frame["line_type"].to_list() == [line_type]
