"""The record types of SPEC section 4, their closed enums, and deterministic ids.

One name per concept: `payment_id` is our transaction id everywhere (the merchant reference the
channel echoes back), `channel_txn_id` is the channel's, amounts are `*_minor` integers beside a
`currency`, and every record carries the `trace_id` of the payment it belongs to.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pipelines.money import check_currency


class BizType(StrEnum):
    PAY = "PAY"
    TOPUP = "TOPUP"  # 充值
    WITHDRAW = "WITHDRAW"  # 提现
    REFUND = "REFUND"  # 退款
    TRANSFER = "TRANSFER"  # 转账


# Money flows in to the merchant's channel account for these, out for the others; a statement's
# signed gross is positive for a credit. The matching engine compares signed amounts through this.
BIZ_TYPE_SIGN: dict[BizType, int] = {
    BizType.PAY: 1,
    BizType.TOPUP: 1,
    BizType.WITHDRAW: -1,
    BizType.REFUND: -1,
    BizType.TRANSFER: -1,
}


class PaymentStatus(StrEnum):
    CREATED = "CREATED"
    PROCESSING = "PROCESSING"  # sent to the channel, outcome unknown
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CLOSED = "CLOSED"  # closed by us (timeout, cancel) without a charge


class LineType(StrEnum):
    PAYMENT = "PAYMENT"
    REFUND = "REFUND"
    FEE = "FEE"
    CHARGEBACK = "CHARGEBACK"
    PAYOUT = "PAYOUT"
    ADJUSTMENT = "ADJUSTMENT"
    REVERSAL = "REVERSAL"


# The statement line type a channel reports for each of our biz types.
BIZ_TYPE_LINE_TYPE: dict[BizType, LineType] = {
    BizType.PAY: LineType.PAYMENT,
    BizType.TOPUP: LineType.PAYMENT,
    BizType.WITHDRAW: LineType.PAYOUT,
    BizType.REFUND: LineType.REFUND,
    BizType.TRANSFER: LineType.PAYOUT,
}


class BreakKind(StrEnum):
    MISSING_CALLBACK = "MISSING_CALLBACK"
    MISSING_AT_CHANNEL = "MISSING_AT_CHANNEL"  # short 短款
    MISSING_INTERNAL = "MISSING_INTERNAL"  # long 长款
    STATUS_MISMATCH = "STATUS_MISMATCH"
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"
    PARTIAL_PAYMENT = "PARTIAL_PAYMENT"
    DUPLICATE_PAYMENT = "DUPLICATE_PAYMENT"
    DUPLICATE_CALLBACK = "DUPLICATE_CALLBACK"
    FEE_MISMATCH = "FEE_MISMATCH"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
    AMBIGUOUS = "AMBIGUOUS"


class BreakStatus(StrEnum):
    PROVISIONAL = "PROVISIONAL"  # raised by the stream, not yet confirmed by T+1
    OPEN = "OPEN"
    REPAIRING = "REPAIRING"
    CLOSED = "CLOSED"
    WRITTEN_OFF = "WRITTEN_OFF"


class RepairAction(StrEnum):
    NONE = "NONE"  # counted only (a duplicate callback moves no money)
    REQUERY_CHANNEL = "REQUERY_CHANNEL"
    CONFIRM_SUCCESS = "CONFIRM_SUCCESS"
    CONFIRM_FAILURE = "CONFIRM_FAILURE"
    REFUND = "REFUND"
    REVERSE = "REVERSE"
    ADJUST = "ADJUST"
    MANUAL_REVIEW = "MANUAL_REVIEW"


# The default repair action of each break kind (SPEC section 4). Rules may raise an action to
# MANUAL_REVIEW above their approval threshold; they never invent a new one.
DEFAULT_ACTION: dict[BreakKind, RepairAction] = {
    BreakKind.MISSING_CALLBACK: RepairAction.REQUERY_CHANNEL,
    BreakKind.MISSING_AT_CHANNEL: RepairAction.REQUERY_CHANNEL,
    BreakKind.MISSING_INTERNAL: RepairAction.MANUAL_REVIEW,
    BreakKind.STATUS_MISMATCH: RepairAction.CONFIRM_SUCCESS,
    BreakKind.AMOUNT_MISMATCH: RepairAction.ADJUST,
    BreakKind.PARTIAL_PAYMENT: RepairAction.MANUAL_REVIEW,
    BreakKind.DUPLICATE_PAYMENT: RepairAction.REFUND,
    BreakKind.DUPLICATE_CALLBACK: RepairAction.NONE,
    BreakKind.FEE_MISMATCH: RepairAction.ADJUST,
    BreakKind.CURRENCY_MISMATCH: RepairAction.MANUAL_REVIEW,
    BreakKind.AMBIGUOUS: RepairAction.MANUAL_REVIEW,
}

# Kinds about one of the channel's transactions rather than one of our orders: their identity
# includes the channel's transaction id (a duplicate charge is one break per extra charge). The
# others are about our order and are identified by channel and payment_id alone, so the stream and
# the T+1 job name the same break the same way even when only one of them knows the channel's id.
TXN_KEYED_KINDS: frozenset[BreakKind] = frozenset(
    {
        BreakKind.MISSING_INTERNAL,
        BreakKind.DUPLICATE_PAYMENT,
        BreakKind.DUPLICATE_CALLBACK,
        BreakKind.AMBIGUOUS,
    }
)


def _digest(prefix: str, *parts: str) -> str:
    # The unit separator cannot occur in ids, so ("a|b", "c") and ("a", "b|c") never collide.
    h = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return f"{prefix}_{h[:32]}"


def break_id(channel: str, kind: BreakKind | str, payment_id: str | None, channel_txn_id: str | None) -> str:
    """The stable id of a break: the same channel, kind and references give the same id in every run
    and in both engines. For order-keyed kinds the channel transaction id is not part of the identity.
    """
    kind = BreakKind(kind)
    txn = (channel_txn_id or "") if kind in TXN_KEYED_KINDS else ""
    return _digest("brk", channel, kind.value, payment_id or "", txn)


def task_id(break_id_: str, action: RepairAction | str) -> str:
    """The repair task id, also the `Idempotency-Key` sent to the payment core: one per break and action."""
    return _digest("tsk", break_id_, RepairAction(action).value)


def event_id_for(payment_id: str, status: PaymentStatus | str, seq: int = 0) -> str:
    """A deterministic payment event id (the payment core's idempotency key for that transition)."""
    return _digest("evt", payment_id, str(status), str(seq))


def trace_id_for(payment_id: str) -> str:
    """The trace id of a payment: carried by every record, break, task and journal entry about it."""
    return hashlib.sha256(("trace\x1f" + payment_id).encode()).hexdigest()[:32]


@dataclass(slots=True)
class PaymentEvent:
    event_id: str
    payment_id: str
    biz_type: BizType
    parent_payment_id: str | None
    merchant_id: str
    account_id: str
    channel: str
    channel_txn_id: str | None
    amount_minor: int
    currency: str
    fee_minor: int | None
    status: PaymentStatus
    occurred_at: datetime
    trace_id: str

    def __post_init__(self) -> None:
        assert type(self.amount_minor) is int and self.amount_minor >= 0, self.amount_minor
        check_currency(self.currency)


@dataclass(slots=True)
class ChannelCallback:
    callback_id: str
    channel: str
    channel_txn_id: str
    payment_id: str
    amount_minor: int
    currency: str
    status: PaymentStatus
    channel_status: str
    paid_at: datetime | None
    received_at: datetime
    trace_id: str
    raw: str = ""

    def __post_init__(self) -> None:
        assert type(self.amount_minor) is int and self.amount_minor >= 0, self.amount_minor
        check_currency(self.currency)


@dataclass(slots=True)
class StatementLine:
    """One line of a channel's statement or settlement file, in the channel's sign convention
    turned to ours: `gross_minor` is positive when money comes in to us, `fee_minor` positive when
    the channel charges a fee, and `net_minor == gross_minor - fee_minor`.
    """

    channel: str
    account: str
    business_date: date
    source_file: str
    source_sha256: str
    line_no: int
    line_type: LineType
    channel_txn_id: str | None
    payment_id: str | None
    gross_minor: int
    fee_minor: int
    net_minor: int
    currency: str
    booked_at: datetime | None
    value_date: date | None
    raw: str = ""

    def __post_init__(self) -> None:
        assert type(self.gross_minor) is int and type(self.fee_minor) is int and type(self.net_minor) is int
        check_currency(self.currency)


@dataclass(slots=True)
class Break:
    break_id: str
    kind: BreakKind
    channel: str
    business_date: date
    payment_id: str | None
    channel_txn_id: str | None
    internal_amount_minor: int | None
    channel_amount_minor: int | None
    currency: str
    delta_minor: int | None
    rule_id: str
    status: BreakStatus
    first_seen_date: date
    age_days: int
    action: RepairAction
    trace_id: str | None


@dataclass(slots=True)
class RepairTask:
    task_id: str
    break_id: str
    action: RepairAction
    payment_id: str | None
    amount_minor: int
    currency: str
    reason: str
    requires_approval: bool
    created_at: datetime
    trace_id: str | None
    extra: dict[str, Any] = field(default_factory=dict)


def to_dict(record: Any) -> dict[str, Any]:
    """A record as a plain dict (enums as their values, dates as ISO text) for JSON and CSV."""
    out: dict[str, Any] = {}
    for key, value in asdict(record).items():
        if isinstance(value, StrEnum):
            value = value.value
        elif isinstance(value, datetime | date):
            value = value.isoformat()
        out[key] = value
    return out


# Column order of internal/payments.csv (SPEC section 4).
PAYMENTS_CSV_COLUMNS: tuple[str, ...] = (
    "payment_id", "biz_type", "parent_payment_id", "merchant_id", "account_id", "channel",
    "channel_txn_id", "amount_minor", "currency", "fee_minor", "status", "created_at", "updated_at",
    "trace_id",
)  # fmt: skip

# Column order of breaks.csv (SPEC section 4).
BREAKS_CSV_COLUMNS: tuple[str, ...] = (
    "break_id", "kind", "channel", "business_date", "payment_id", "channel_txn_id",
    "internal_amount_minor", "channel_amount_minor", "currency", "delta_minor", "rule_id", "status",
    "first_seen_date", "age_days", "action", "trace_id",
)  # fmt: skip

# Column order of StatementLine tables (parquet/csv written by `payrecon parse` and the loaders).
STATEMENT_LINE_COLUMNS: tuple[str, ...] = (
    "channel", "account", "business_date", "source_file", "source_sha256", "line_no", "line_type",
    "channel_txn_id", "payment_id", "gross_minor", "fee_minor", "net_minor", "currency", "booked_at",
    "value_date", "raw",
)  # fmt: skip

# Truth files written by the simulator: one row per break the engines must find.
TRUTH_COLUMNS: tuple[str, ...] = ("kind", "channel", "payment_id", "channel_txn_id")
