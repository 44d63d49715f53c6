"""Hand-made payment events and callbacks for the stream matcher's unit tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipelines.records import (
    BizType,
    ChannelCallback,
    PaymentEvent,
    PaymentStatus,
    event_id_for,
    trace_id_for,
)

T0 = datetime(2026, 11, 2, 10, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def event(
    payment_id: str,
    status: PaymentStatus,
    t: float,
    *,
    amount: int = 10_000,
    currency: str = "CNY",
    channel: str = "alipay",
    biz: BizType = BizType.PAY,
    txn: str | None = None,
    seq: int = 0,
) -> PaymentEvent:
    return PaymentEvent(
        event_id=event_id_for(payment_id, status, seq),
        payment_id=payment_id,
        biz_type=biz,
        parent_payment_id=None,
        merchant_id="m1",
        account_id="a1",
        channel=channel,
        channel_txn_id=txn,
        amount_minor=amount,
        currency=currency,
        fee_minor=None,
        status=status,
        occurred_at=at(t),
        trace_id=trace_id_for(payment_id),
    )


def callback(
    payment_id: str,
    t: float,
    *,
    txn: str = "T1",
    status: PaymentStatus = PaymentStatus.SUCCEEDED,
    amount: int = 10_000,
    currency: str = "CNY",
    channel: str = "alipay",
    callback_id: str | None = None,
) -> ChannelCallback:
    return ChannelCallback(
        callback_id=callback_id or f"cb-{payment_id}-{txn}",
        channel=channel,
        channel_txn_id=txn,
        payment_id=payment_id,
        amount_minor=amount,
        currency=currency,
        status=status,
        channel_status="TRADE_SUCCESS" if status == PaymentStatus.SUCCEEDED else "TRADE_CLOSED",
        paid_at=at(t),
        received_at=at(t),
        trace_id=trace_id_for(payment_id),
    )


def clean(payment_id: str, t: float, txn: str = "T1") -> list[PaymentEvent | ChannelCallback]:
    """A clean payment: sent, called back inside the window, succeeded."""
    return [
        event(payment_id, PaymentStatus.PROCESSING, t),
        callback(payment_id, t + 5, txn=txn),
        event(payment_id, PaymentStatus.SUCCEEDED, t + 6, txn=txn),
    ]
