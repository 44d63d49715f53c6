"""The classification of one matched pair (our record, the channel's record) into a break kind.

This is the reference semantics both engines share: the stream matcher calls `classify_pair`
directly, the T+1 engine compiles the same precedence into DuckDB SQL and is property-tested
against this function. The precedence, first that applies:

1. CURRENCY_MISMATCH: the currencies differ (nothing else can be compared).
2. STATUS_MISMATCH: one side says the money moved (SUCCEEDED) and the other does not. PROCESSING
   against FAILED is no break: neither side moved money.
3. PARTIAL_PAYMENT: on a credit (PAY, TOPUP) the channel moved less than the order, beyond the
   rule's tolerance. AMOUNT_MISMATCH: any other difference beyond the tolerance (more than the
   order, any difference on a debit, or the opposite sign).
4. FEE_MISMATCH: the channel's fee differs from the contracted fee beyond the fee tolerance
   (only where the channel reports a fee: statement lines, not callbacks).

Amounts are signed from our account's point of view: a credit (money in) is positive. Our records
hold a positive `amount_minor` whose sign comes from `biz_type` (records.BIZ_TYPE_SIGN).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.matching.rules import Rule
from pipelines.records import BIZ_TYPE_SIGN, BizType, BreakKind, PaymentStatus

CREDIT_BIZ_TYPES: frozenset[BizType] = frozenset({BizType.PAY, BizType.TOPUP})


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a pair is: `kind` None for a clean match; the amounts a break reports (minor units):
    for FEE_MISMATCH the expected and the charged fee, otherwise our signed amount and the channel's."""

    kind: BreakKind | None
    internal_amount_minor: int | None = None
    channel_amount_minor: int | None = None

    @property
    def delta_minor(self) -> int | None:
        if self.internal_amount_minor is None or self.channel_amount_minor is None:
            return None
        return self.channel_amount_minor - self.internal_amount_minor


MATCHED = Verdict(None)


def signed_internal_amount(biz_type: BizType, amount_minor: int) -> int:
    return BIZ_TYPE_SIGN[biz_type] * amount_minor


def classify_pair(
    rule: Rule,
    *,
    biz_type: BizType,
    internal_amount_minor: int,
    internal_currency: str,
    internal_status: PaymentStatus,
    channel_gross_minor: int,
    channel_currency: str,
    channel_status: PaymentStatus,
    channel_fee_minor: int | None,
) -> Verdict:
    """Classify one pair. `internal_amount_minor` is our positive amount; `channel_gross_minor` the
    channel's signed gross (positive = money in). `channel_fee_minor` None when the source carries
    no fee (a callback). Returns MATCHED or a Verdict naming the break kind and its amounts."""
    assert internal_amount_minor >= 0, internal_amount_minor
    ours = signed_internal_amount(biz_type, internal_amount_minor)
    if internal_currency != channel_currency:
        return Verdict(BreakKind.CURRENCY_MISMATCH, ours, channel_gross_minor)
    if (internal_status == PaymentStatus.SUCCEEDED) != (channel_status == PaymentStatus.SUCCEEDED):
        return Verdict(BreakKind.STATUS_MISMATCH, ours, channel_gross_minor)
    delta = channel_gross_minor - ours
    if abs(delta) > rule.amount_tolerance_minor:
        same_sign = (channel_gross_minor >= 0) == (ours >= 0)
        short = abs(channel_gross_minor) < abs(ours)
        if biz_type in CREDIT_BIZ_TYPES and same_sign and short:
            return Verdict(BreakKind.PARTIAL_PAYMENT, ours, channel_gross_minor)
        return Verdict(BreakKind.AMOUNT_MISMATCH, ours, channel_gross_minor)
    if channel_fee_minor is not None:
        expected = rule.fees.expected_fee(biz_type, internal_amount_minor)
        if abs(channel_fee_minor - expected) > rule.fees.tolerance_minor:
            return Verdict(BreakKind.FEE_MISMATCH, expected, channel_fee_minor)
    return MATCHED
