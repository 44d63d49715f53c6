"""Writers and parsers agree: random lines -> write -> parse give the same lines back."""

from __future__ import annotations

import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.statements import Writer, get_format
from pipelines.matching.rules import rule_for
from pipelines.records import LineType, StatementLine

DAY = date(2026, 11, 2)


def _writer(name: str) -> Writer:
    """The format's writer (every format the simulator uses has one)."""
    write = get_format(name).write
    assert write is not None, f"{name} has no writer"
    return write


IDS = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ0123456789_-", min_size=1, max_size=24)
# What the round trip must keep (SPEC: channel_txn_id, payment_id, line_type, amounts, currency, booked_at).
KEPT = ("channel_txn_id", "payment_id", "line_type", "gross_minor", "fee_minor", "net_minor", "currency", "booked_at")


@st.composite
def lines(
    draw: st.DrawFn, channel: str, currency: str, types: tuple[LineType, ...], max_minor: int
) -> list[StatementLine]:
    n = draw(st.integers(0, 12))
    txns = draw(st.lists(IDS, min_size=n, max_size=n, unique=True))
    out = []
    for i in range(n):
        lt = draw(st.sampled_from(types))
        magnitude = draw(st.integers(1, max_minor))
        gross = magnitude if lt in (LineType.PAYMENT, LineType.REVERSAL) else -magnitude
        fee = draw(st.integers(0, magnitude // 10))
        # Native formats keep whole seconds (WeChat, Alipay, Stripe) in their own time zone.
        booked = datetime(2026, 11, 2, tzinfo=UTC) + timedelta(seconds=draw(st.integers(0, 86_399)))
        pid = draw(st.none() | IDS)
        out.append(StatementLine(channel, "", DAY, "", "", i, lt, txns[i], pid, gross, fee, gross - fee, currency,
                                 booked, DAY, ""))  # fmt: skip
    return out


def _roundtrip(channel: str, fmt: str, written: list[StatementLine]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        paths = _writer(fmt)(written, Path(tmp), rule=rule_for(channel), business_date=DAY)
        parsed = [ln for p in paths for ln in get_format(fmt).parse(p, channel=channel, business_date=DAY).lines]
        # Payouts may go to a second file (WeChat's fund-flow bill), so compare as sorted sets of records.
        want = sorted(tuple(getattr(ln, k) for k in KEPT) for ln in written)
        got = sorted(tuple(getattr(ln, k) for k in KEPT) for ln in parsed)
        assert got == want
        again = _writer(fmt)(written, Path(tmp) / "again", rule=rule_for(channel), business_date=DAY)
        assert [p.read_bytes() for p in again] == [p.read_bytes() for p in paths], "same lines, same bytes"


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(lines("wechatpay", "CNY", (LineType.PAYMENT, LineType.REFUND, LineType.PAYOUT), 10**9))
def test_wechatpay_trade_and_fund_flow_bills(written: list[StatementLine]) -> None:
    _roundtrip("wechatpay", "wechatpay", written)


@SETTINGS
@given(lines("alipay", "CNY", (LineType.PAYMENT, LineType.REFUND, LineType.PAYOUT), 10**9))
def test_alipay_merchant_bill_zip(written: list[StatementLine]) -> None:
    _roundtrip("alipay", "alipay", written)


@SETTINGS
@given(lines("stripe", "USD", tuple(LineType), 10**11))
def test_stripe_balance_report(written: list[StatementLine]) -> None:
    _roundtrip("stripe", "stripe", written)


@SETTINGS
@given(lines("jpbank", "JPY", tuple(LineType), 10**12))
def test_camt053_statement(written: list[StatementLine]) -> None:
    _roundtrip("jpbank", "camt053", written)
