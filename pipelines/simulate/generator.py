"""Generate simulated business days (see the package docstring for the contract).

Determinism: every random draw comes from a numpy Generator seeded by (seed, date, purpose), so the
same arguments give the same bytes, and day D+1 can regenerate the cross-day items of day D without
regenerating all of D. Nothing reads the clock.
"""

from __future__ import annotations

import csv
import gc
import heapq
import io
import json
import multiprocessing
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TextIO

import numpy as np

from connectors.statements import get_format
from pipelines.matching.rules import Rule, load_rules
from pipelines.records import (
    BIZ_TYPE_LINE_TYPE,
    BIZ_TYPE_SIGN,
    PAYMENTS_CSV_COLUMNS,
    TRUTH_COLUMNS,
    BizType,
    BreakKind,
    LineType,
    PaymentStatus,
    StatementLine,
    event_id_for,
    trace_id_for,
)
from pipelines.simulate.profiles import BANK_ONLY_FAULTS, CALLBACK_FAULTS, FAULTS, load_profile

# Each payment's trace id is needed by its record, its events and its callbacks, one after another.
_trace = lru_cache(maxsize=64)(trace_id_for)

DEFAULT_CHANNELS: tuple[str, ...] = ("alipay", "wechatpay", "stripe", "jpbank")
DAY_MS = 86_400_000

# Amount ranges in minor units. Normal payments stay below `normal_amount_max_minor`; the faults
# that rely on matching by amount and time (missing_reference, ambiguous, missing_internal) take
# `reserved_amount` above it, one thousand apart per fault in the day's order, so no clean payment
# and no other such fault can ever be a second candidate by accident, however large the day.
# (Three ranges a million apart overlapped past a thousand such faults a day: an ambiguous pair
# at 2,000,000 + 1000k met a missing_internal line at 3,000,000 + 10k' in a 100k-payment day.)
normal_amount_min_minor = 100
normal_amount_max_minor = 500_000
reserved_amount_base_minor = 1_000_000
assert normal_amount_max_minor < reserved_amount_base_minor


def reserved_amount(k: int, offset: int) -> int:
    """The amount of the day's `k`-th reserved fault (k counts from 1), `offset` in [0, 1000)."""
    assert k >= 1 and 0 <= offset < 1000
    return reserved_amount_base_minor + 1000 * k + offset


# Biz types a channel carries: a bank account takes transfers in and out, wallets and cards all five.
BANK_BIZ_TYPES: tuple[BizType, ...] = (BizType.TOPUP, BizType.WITHDRAW, BizType.TRANSFER)
WALLET_BIZ_TYPES: tuple[BizType, ...] = (
    BizType.PAY, BizType.TOPUP, BizType.WITHDRAW, BizType.REFUND, BizType.TRANSFER,
)  # fmt: skip
WALLET_BIZ_WEIGHTS: tuple[float, ...] = (0.70, 0.10, 0.08, 0.07, 0.05)
# The currency our record wrongly carries under `currency_mismatch`, per channel currency.
WRONG_CURRENCY: dict[str, str] = {"CNY": "HKD", "USD": "EUR", "JPY": "USD", "EUR": "GBP"}

# Share of clean payments that fail or are closed at both sides (no money moves, no break).
failed_share = 0.03
closed_share = 0.02


@dataclass
class DayOutput:
    """Everything one simulated day holds before it is written."""

    business_date: date
    payments: int = 0  # rows written to internal/payments.csv
    # The cross-day payments (channel, biz, txn, payment_id, amount, fee, created_ms): the next day's files hold them.
    cross_day: list[tuple[str, BizType, str, str, int, int, int]] = field(default_factory=list)
    # The settled_late payments, likewise, and those of the day before, which the next day's files hold.
    settled_late: list[tuple[str, BizType, str, str, int, int, int]] = field(default_factory=list)
    settled_late_due: list[tuple[str, BizType, str, str, int, int, int]] = field(default_factory=list)
    # The recorded_late payments (channel, biz, payment_id, our txn, amount, fee, merchant, account):
    # the extract of the day after next holds our record of them; and those of the day before.
    recorded_late: list[tuple[str, BizType, str, str | None, int, int, str, str]] = field(default_factory=list)
    recorded_late_due: list[tuple[str, BizType, str, str | None, int, int, str, str]] = field(default_factory=list)
    lines: dict[str, list[StatementLine]] = field(default_factory=dict)
    events: int = 0  # lines written to stream/events.jsonl
    truth: list[tuple[str, str, str, str]] = field(default_factory=list)
    stream_truth: list[tuple[str, str, str, str]] = field(default_factory=list)
    faults: list[tuple[str, str, str, str]] = field(default_factory=list)  # fault, channel, payment_id, txn


def _rng(seed: int, day: date, purpose: str) -> np.random.Generator:
    # crc32 of the purpose keeps streams for different purposes independent and stable across runs.
    return np.random.default_rng([seed, day.toordinal(), zlib.crc32(purpose.encode())])


# "HH:MM:SS" for every second of a day: formatting timestamps dominated the simulator's profile.
_HMS: list[str] = [f"{h:02d}:{m:02d}:{sec:02d}" for h in range(24) for m in range(60) for sec in range(60)]
_DAY_PREFIX: dict[tuple[datetime, int], str] = {}


def _iso(day_start: datetime, ms: int) -> str:
    """ISO 8601 UTC with milliseconds and a Z suffix, for `ms` after `day_start` (may exceed a day)."""
    if 0 <= ms < DAY_MS:
        day_offset, rest = 0, ms
    else:
        day_offset, rest = divmod(ms, DAY_MS)
    prefix = _DAY_PREFIX.get((day_start, day_offset))
    if prefix is None:
        prefix = (day_start + timedelta(days=day_offset)).strftime("%Y-%m-%dT")
        _DAY_PREFIX[(day_start, day_offset)] = prefix
    secs, milli = divmod(rest, 1000)
    return f"{prefix}{_HMS[secs]}.{milli:03d}Z"


def _q(text: str | None) -> str:
    """A JSON string or null, for the simulator's own ASCII ids and codes."""
    if text is None:
        return "null"
    assert text.isascii() and '"' not in text and "\\" not in text, text
    return f'"{text}"'


_STATUS_CODES: dict[tuple[str, PaymentStatus, BizType], str] = {}


def _status_code(rule: Rule, status: PaymentStatus, biz_type: BizType) -> str:
    """The channel's own status code for a normalised status (first in the rule's map)."""
    key = (rule.ref, status, biz_type)
    code = _STATUS_CODES.get(key)
    if code is None:
        code = _STATUS_CODES[key] = _find_status_code(rule, status, biz_type)
    return code


def _find_status_code(rule: Rule, status: PaymentStatus, biz_type: BizType) -> str:
    codes = [code for code, mapped in rule.status_map.items() if mapped == status]
    if biz_type == BizType.REFUND:
        refund_codes = [c for c in codes if "REFUND" in c.upper()]
        codes = refund_codes or codes
    else:
        codes = [c for c in codes if "REFUND" not in c.upper()] or codes
    if not codes and status == PaymentStatus.FAILED:
        return _status_code(rule, PaymentStatus.CLOSED, biz_type)
    assert codes, f"rule {rule.ref} maps no channel status to {status}"
    return codes[0]


class _TxnIds:
    """Channel transaction ids in each channel's own style, unique within a run by a counter."""

    def __init__(self, day: date, salt: int) -> None:
        self.day = day.strftime("%Y%m%d")
        self.n = 0
        self.salt = salt

    def next(self, channel: str, rnd: int) -> str:
        self.n += 1
        n, r = self.n, rnd % 10_000_000
        if channel == "alipay":
            return f"{self.day}2200{self.salt}{n:07d}{r:07d}"
        if channel == "wechatpay":
            return f"42000{self.salt}{self.day}{n:07d}{r:07d}"
        if channel == "stripe":
            return f"ch_{self.day}{n:07d}{np.base_repr(r, 36).lower():0>5}"
        return f"{channel.upper()[:3]}{self.day}{self.salt}{n:08d}"


class DayBuilder:
    """Builds one day's records, lines, events and truth."""

    def __init__(
        self, rules: dict[str, Rule], channels: Sequence[str], business_date: date, seed: int,
        payments_fh: TextIO, events_fh: TextIO,
    ) -> None:  # fmt: skip
        self.payments_fh = payments_fh
        self.events_fh = events_fh
        # Events wait here until no later payment can produce an earlier one (see `flush`).
        self.pending_events: list[tuple[int, int, str]] = []
        self.rules = rules
        self.channels = list(channels)
        self.day = business_date
        self.day_start = datetime(business_date.year, business_date.month, business_date.day, tzinfo=UTC)
        self.seed = seed
        self.out = DayOutput(business_date, lines={ch: [] for ch in channels})
        self.event_seq = 0
        self.txn = _TxnIds(business_date, 1)
        self.callback_seq = 0

    # --- emitters -------------------------------------------------------------------------------
    def payment(
        self, pid: str, biz: BizType, parent: str | None, merchant: str, account: str, channel: str,
        txn: str | None, amount: int, currency: str, fee: int | None, status: PaymentStatus,
        created_ms: int, updated_ms: int,
    ) -> None:  # fmt: skip
        # Written as it is made: ids, codes, ints and timestamps never need CSV quoting.
        self.out.payments += 1
        self.payments_fh.write(
            f"{pid},{biz},{parent or ''},{merchant},{account},{channel},{txn or ''},{amount},{currency},"
            f"{'' if fee is None else fee},{status},{_iso(self.day_start, created_ms)},"
            f"{_iso(self.day_start, updated_ms)},{_trace(pid)}\n"
        )

    def flush(self, before_ms: int) -> None:
        """Write every waiting event that arrives before `before_ms`. Payments are generated in order
        of creation and none has an event before its creation, so once the generator has reached a
        payment created at `before_ms`, all earlier events are known: the file comes out sorted by
        (arrival, generation order) without holding the day's events in memory."""
        heap = self.pending_events
        write = self.events_fh.write
        while heap and heap[0][0] < before_ms:
            write(heapq.heappop(heap)[2])
            self.out.events += 1

    def event(
        self, at_ms: int, pid: str, biz: BizType, parent: str | None, merchant: str, account: str, channel: str,
        txn: str | None, amount: int, currency: str, fee: int | None, status: PaymentStatus, occurred_ms: int,
    ) -> None:  # fmt: skip
        # One f-string per event: the simulator writes millions and a generic JSON encoder
        # dominated its profile. Every value here is an ASCII id, a code, an int or null.
        self.event_seq += 1
        at = _iso(self.day_start, at_ms)
        occurred = at if occurred_ms == at_ms else _iso(self.day_start, occurred_ms)
        heapq.heappush(
            self.pending_events,
            (
                at_ms,
                self.event_seq,
                (
                    f'{{"type":"payment_event","at":"{at}","value":{{"event_id":"{event_id_for(pid, status)}",'
                    f'"payment_id":"{pid}","biz_type":"{biz}","parent_payment_id":{_q(parent)},'
                    f'"merchant_id":"{merchant}","account_id":"{account}","channel":"{channel}",'
                    f'"channel_txn_id":{_q(txn)},"amount_minor":{amount},"currency":"{currency}",'
                    f'"fee_minor":{"null" if fee is None else fee},"status":"{status}","occurred_at":"{occurred}",'
                    f'"trace_id":"{_trace(pid)}"}}}}\n'
                ),
            ),
        )

    def callback(
        self, at_ms: list[int], pid: str, channel: str, txn: str, amount: int, currency: str,
        status: PaymentStatus, biz: BizType, paid_ms: int | None,
    ) -> None:  # fmt: skip
        """One channel notification, delivered once per entry of `at_ms` (a duplicate repeats its id)."""
        rule = self.rules[channel]
        code = _status_code(rule, status, biz)
        self.callback_seq += 1
        cb_id = f"cb_{self.txn.day}_{self.callback_seq:08d}"
        paid_at = _iso(self.day_start, paid_ms) if paid_ms is not None else None
        # The channel's own payload, kept as the callback's `raw` (a JSON document in a JSON string).
        raw_json = (
            f'"{{\\"out_trade_no\\":\\"{pid}\\",\\"transaction_id\\":\\"{txn}\\",'
            f'\\"total_amount\\":{amount},\\"currency\\":\\"{currency}\\",\\"trade_status\\":\\"{code}\\",'
            f'\\"gmt_payment\\":{"null" if paid_at is None else chr(92) + chr(34) + paid_at + chr(92) + chr(34)}}}"'
        )
        for at in at_ms:
            self.event_seq += 1
            received = _iso(self.day_start, at)
            heapq.heappush(
                self.pending_events,
                (
                    at,
                    self.event_seq,
                    (
                        f'{{"type":"channel_callback","at":"{received}","value":{{"callback_id":"{cb_id}",'
                        f'"channel":"{channel}","channel_txn_id":"{txn}","payment_id":"{pid}","amount_minor":{amount},'
                        f'"currency":"{currency}","status":"{status}","channel_status":"{code}",'
                        f'"paid_at":{_q(paid_at)},"received_at":"{received}","trace_id":"{_trace(pid)}","raw":{raw_json}}}}}\n'
                    ),
                ),
            )

    def line(
        self, channel: str, biz: BizType, txn: str, pid: str | None, gross_abs: int, fee: int,
        booked_ms: int, status_code: str, file_day: date | None = None,
    ) -> None:  # fmt: skip
        rule = self.rules[channel]
        gross = BIZ_TYPE_SIGN[biz] * gross_abs
        # Statement formats carry whole seconds; booking times are whole seconds so lines round-trip.
        booked = self.day_start + timedelta(seconds=booked_ms // 1000)
        self.out.lines[channel].append(StatementLine(
            channel=channel, account=rule.account, business_date=file_day or self.day, source_file="",
            source_sha256="", line_no=0, line_type=BIZ_TYPE_LINE_TYPE[biz], channel_txn_id=txn,
            payment_id=pid, gross_minor=gross, fee_minor=fee, net_minor=gross - fee, currency=rule.currency,
            booked_at=booked, value_date=file_day or self.day, raw=status_code,
        ))  # fmt: skip


def _cutoff_ms(rule: Rule) -> int:
    c = rule.carry_forward.cutoff
    return ((c.hour * 60 + c.minute) * 60 + c.second) * 1000


def _window_ms(rule: Rule) -> int:
    return (rule.callback_window_s or 0) * 1000


def generate_day(
    business_date: date,
    *,
    payments: int,
    seed: int,
    channels: Sequence[str],
    rates: dict[str, float],
    rules: dict[str, Rule],
    previous: DayOutput | None,
    payments_fh: TextIO,
    events_fh: TextIO,
) -> DayOutput:
    """Generate one business day; our records and the stream events are written to `payments_fh`
    and `events_fh` as they are made (header included), the rest is returned. `previous`: the
    previous day of the run (same arguments), whose cross-day items appear in this day's files;
    None for the first day."""
    payments_fh.write(",".join(PAYMENTS_CSV_COLUMNS) + "\n")
    b = DayBuilder(rules, channels, business_date, seed, payments_fh, events_fh)
    rng = _rng(seed, business_date, "main")
    bank_channels = [ch for ch in channels if rules[ch].callback_window_s is None]
    wallet_channels = [ch for ch in channels if rules[ch].callback_window_s is not None]
    fault_names = list(FAULTS)
    probs = np.array([rates[f] for f in fault_names] + [1.0 - sum(rates.values())])
    n = payments
    fault_idx = rng.choice(len(probs), size=n, p=probs).tolist()
    chan_idx = rng.integers(0, len(channels), size=n).tolist()
    wallet_biz = rng.choice(len(WALLET_BIZ_TYPES), size=n, p=np.array(WALLET_BIZ_WEIGHTS)).tolist()
    bank_biz = rng.integers(0, len(BANK_BIZ_TYPES), size=n).tolist()
    amounts = rng.integers(normal_amount_min_minor, normal_amount_max_minor, size=n).tolist()
    u_time = rng.random(size=n).tolist()
    u_status = rng.random(size=n).tolist()
    delays = rng.integers(500, 60_000, size=n).tolist()  # callback delay, ms
    extra = rng.integers(0, 1 << 30, size=(n, 3)).tolist()
    merchants = rng.integers(0, 200, size=n).tolist()
    accounts = rng.integers(0, 5_000_000, size=n).tolist()

    # Draw each slot's fault, channel and time first, then order by creation time so that payment
    # ids increase with time, as a payment core's would.
    slots: list[tuple[int, int, str | None, str, BizType]] = []
    for i in range(n):
        fi = fault_idx[i]
        fault = fault_names[fi] if fi < len(fault_names) else None
        if fault in BANK_ONLY_FAULTS:
            if not bank_channels:
                fault = None
            channel = bank_channels[chan_idx[i] % len(bank_channels)] if fault else channels[chan_idx[i]]
        elif fault in CALLBACK_FAULTS or fault in ("duplicate_payment", "amount_mismatch", "partial_payment"):
            if not wallet_channels:
                fault = None
            channel = wallet_channels[chan_idx[i] % len(wallet_channels)] if fault else channels[chan_idx[i]]
        else:
            channel = channels[chan_idx[i]]
        rule = rules[channel]
        is_bank = rule.callback_window_s is None
        biz = BANK_BIZ_TYPES[bank_biz[i]] if is_bank else WALLET_BIZ_TYPES[wallet_biz[i]]
        if fault in (
            "amount_mismatch", "partial_payment", "duplicate_payment", "ambiguous", "missing_internal", "recorded_late"
        ):  # fmt: skip
            biz = BizType.TOPUP if is_bank else BizType.PAY
        if fault == "partial_refund":
            biz = BizType.REFUND if not is_bank else BizType.WITHDRAW
        if fault is None and biz == BizType.REFUND:
            biz = BizType.PAY  # refunds come from the partial_refund fault, with their parent
        cutoff = _cutoff_ms(rule)
        if fault == "cross_day":
            created = cutoff + int(u_time[i] * (DAY_MS - 120_000 - cutoff))
        elif fault is None or fault in ("partial_refund", "duplicate_callback", "callback_first"):
            # Clean payments end before the cut-off minus the callback window: everything about
            # them happens inside the day.
            created = int(u_time[i] * (cutoff - 600_000 - _window_ms(rule)))
        else:
            created = int(u_time[i] * (cutoff - 3_600_000))
        slots.append((created, i, fault, channel, biz))
    slots.sort()

    day_tag = business_date.strftime("%Y%m%d")
    pay_ids_by_channel: dict[str, list[tuple[str, int]]] = {ch: [] for ch in channels}
    seq = 0
    k_reserved = 0
    for created, i, fault, channel, biz in slots:
        b.flush(created)
        rule = rules[channel]
        is_bank = rule.callback_window_s is None
        currency = rule.currency
        seq += 1
        pid = f"P{day_tag}{seq:07d}"
        merchant = f"M{merchants[i]:04d}"
        account = f"A{accounts[i]:07d}"
        amount = amounts[i]
        if currency == "JPY":
            amount = max(100, amount // 10)  # yen amounts of a plausible size
        delay = delays[i]
        r0, r1, r2 = extra[i]
        window = _window_ms(rule)
        parent: str | None = None
        if biz == BizType.REFUND:
            earlier = pay_ids_by_channel[channel]
            if earlier:
                parent, parent_amount = earlier[r0 % len(earlier)]
                amount = max(1, (parent_amount * (10 + r1 % 80)) // 100)  # a partial refund
            else:
                parent = f"P{(business_date - timedelta(days=1)).strftime('%Y%m%d')}{1 + r0 % 1000:07d}"
        fee = rule.fees.expected_fee(biz, amount)
        txn = b.txn.next(channel, r2)
        ok_code = _status_code(rule, PaymentStatus.SUCCEEDED, biz)
        succeeded_ms = created + delay + 200
        if fault is not None:
            b.out.faults.append((fault, channel, pid if fault != "missing_internal" else "", txn))

        if fault == "missing_internal":
            k_reserved += 1
            gross = reserved_amount(k_reserved, r1 % 1000)
            b.line(channel, biz, txn, None, gross, rule.fees.expected_fee(biz, gross), created + delay, ok_code)
            b.out.truth.append((BreakKind.MISSING_INTERNAL, channel, "", txn))
            seq -= 1  # no record of ours: the id is not used
            continue

        if fault == "recorded_late":
            # The channel booked it today (the line names our payment id), but our record of it
            # reaches the extract only the day after next, booked by the payment core after
            # review (补单): MISSING_INTERNAL today; the late record matches it then. No event and
            # no callback: the stream sees neither side (the stream truth of missing_internal).
            k_reserved += 1
            amount = reserved_amount(k_reserved, r1 % 1000)
            fee = rule.fees.expected_fee(biz, amount)
            b.line(channel, biz, txn, pid, amount, fee, created + delay, ok_code)
            b.out.truth.append((BreakKind.MISSING_INTERNAL, channel, "", txn))
            b.out.recorded_late.append((channel, biz, pid, None if is_bank else txn, amount, fee, merchant, account))
            continue

        if fault == "ambiguous":
            k_reserved += 1
            amount = reserved_amount(k_reserved, 0)
            half = rule.amount_time_window_s * 1000 // 4
            pid2 = f"P{day_tag}{seq:07d}B"
            for p, t in ((pid, created), (pid2, created + half)):
                b.payment(p, biz, None, merchant, account, channel, None, amount, currency, fee,
                          PaymentStatus.SUCCEEDED, t, t + 1000)  # fmt: skip
                b.event(t, p, biz, None, merchant, account, channel, None, amount, currency, fee,
                        PaymentStatus.PROCESSING, t)  # fmt: skip
                b.event(t + 1000, p, biz, None, merchant, account, channel, None, amount, currency, fee,
                        PaymentStatus.SUCCEEDED, t + 1000)  # fmt: skip
            b.line(channel, biz, txn, None, amount, fee, created + half + 30_000, ok_code)
            b.out.truth.append((BreakKind.AMBIGUOUS, channel, "", txn))
            continue

        if fault == "missing_reference":
            k_reserved += 1
            amount = reserved_amount(k_reserved, r1 % 1000)
            fee = rule.fees.expected_fee(biz, amount)

        # What the channel did, what we recorded, which callbacks came.
        line_pid: str | None = pid
        line_gross = amount
        line_fee = fee
        our_status = PaymentStatus.SUCCEEDED
        our_txn: str | None = None if is_bank else txn
        our_currency = currency
        cb_times: list[int] = [] if is_bank else [created + delay]
        cb_status = PaymentStatus.SUCCEEDED
        channel_moved = True
        final_event_ms: int | None = succeeded_ms
        updated = succeeded_ms
        processing_at = created
        file_day: date | None = None

        if fault is None and not is_bank and u_status[i] < failed_share + closed_share:
            # A clean failure (or an order closed at both sides): no money moved anywhere.
            channel_moved = False
            our_status = PaymentStatus.FAILED if u_status[i] < failed_share else PaymentStatus.CLOSED
            cb_status = our_status
            our_txn = txn if our_status == PaymentStatus.FAILED else None
            if our_status == PaymentStatus.CLOSED:
                cb_times = []
        elif fault == "missing_at_channel":
            channel_moved = False
            cb_times = []
            final_event_ms = created + 2_000  # the synchronous answer said success
            updated = final_event_ms
            b.out.truth.append((BreakKind.MISSING_AT_CHANNEL, channel, pid, ""))
            if not is_bank:
                b.out.stream_truth.append((BreakKind.MISSING_CALLBACK, channel, pid, ""))
        elif fault == "lost_callback":
            cb_times = []
            our_status = PaymentStatus.PROCESSING
            our_txn = None
            final_event_ms = None
            updated = created
            b.out.truth.append((BreakKind.STATUS_MISMATCH, channel, pid, txn))
            b.out.stream_truth.append((BreakKind.MISSING_CALLBACK, channel, pid, ""))
        elif fault == "status_mismatch":
            our_status = PaymentStatus.CLOSED
            our_txn = None
            final_event_ms = created + window + 60_000
            updated = final_event_ms
            cb_times = [final_event_ms + 60_000 + delay]
            b.out.truth.append((BreakKind.STATUS_MISMATCH, channel, pid, txn))
            b.out.stream_truth.append((BreakKind.STATUS_MISMATCH, channel, pid, txn))
        elif fault == "amount_mismatch":
            line_gross = amount + 1 + r1 % 1000
            line_fee = rule.fees.expected_fee(biz, line_gross)
            b.out.truth.append((BreakKind.AMOUNT_MISMATCH, channel, pid, txn))
            b.out.stream_truth.append((BreakKind.AMOUNT_MISMATCH, channel, pid, txn))
        elif fault == "partial_payment":
            amount = max(amount, 200)
            fee = rule.fees.expected_fee(biz, amount)
            line_gross = amount - 1 - r1 % (amount // 2)
            line_fee = rule.fees.expected_fee(biz, line_gross)
            b.out.truth.append((BreakKind.PARTIAL_PAYMENT, channel, pid, txn))
            b.out.stream_truth.append((BreakKind.PARTIAL_PAYMENT, channel, pid, txn))
        elif fault == "fee_mismatch":
            line_fee = fee + 1 + r1 % 50
            b.out.truth.append((BreakKind.FEE_MISMATCH, channel, pid, txn))
        elif fault == "currency_mismatch":
            our_currency = WRONG_CURRENCY.get(currency, "EUR")
            b.out.truth.append((BreakKind.CURRENCY_MISMATCH, channel, pid, txn))
            if not is_bank:
                b.out.stream_truth.append((BreakKind.CURRENCY_MISMATCH, channel, pid, txn))
        elif fault == "duplicate_callback":
            cb_times = [created + delay, created + delay + 1_000 + r1 % 30_000]
            if r1 % 3 == 0:
                cb_times.append(cb_times[-1] + 5_000)
            b.out.stream_truth.append((BreakKind.DUPLICATE_CALLBACK, channel, pid, txn))
        elif fault == "late_callback":
            cb_times = [created + window + 60_000 + r1 % 540_000]
            final_event_ms = cb_times[0] + 200
            updated = final_event_ms
        elif fault == "callback_first":
            processing_at = created + delay + 30_000  # the payment core's event is published late
            final_event_ms = processing_at + 200
            updated = final_event_ms
        elif fault == "missing_reference":
            line_pid = None
        elif fault == "cross_day":
            file_day = business_date + timedelta(days=1)
            b.out.cross_day.append((channel, biz, txn, pid, amount, fee, created))
        elif fault == "settled_late":
            # The channel charged it (its callback came) but books it two days later, past the
            # carry-forward window: MISSING_AT_CHANNEL today, and the late line matches it then.
            file_day = business_date + timedelta(days=2)
            b.out.settled_late.append((channel, biz, txn, pid, amount, fee, created))
            b.out.truth.append((BreakKind.MISSING_AT_CHANNEL, channel, pid, ""))

        if our_status == PaymentStatus.SUCCEEDED and biz in (BizType.PAY, BizType.TOPUP):
            pay_ids_by_channel[channel].append((pid, amount))

        b.payment(pid, biz, parent, merchant, account, channel, our_txn, amount, our_currency, fee, our_status,
                  created, updated)  # fmt: skip
        b.event(processing_at, pid, biz, parent, merchant, account, channel, None, amount, our_currency, fee,
                PaymentStatus.PROCESSING, created)  # fmt: skip
        if final_event_ms is not None:
            b.event(final_event_ms, pid, biz, parent, merchant, account, channel, our_txn, amount, our_currency,
                    fee, our_status, final_event_ms)  # fmt: skip
        if cb_times:
            b.callback(cb_times, pid, channel, txn, line_gross, currency, cb_status, biz,
                       cb_times[0] - 100 if channel_moved else None)  # fmt: skip
        if fault == "duplicate_payment":
            txn2 = b.txn.next(channel, r1)
            second = created + delay + 5_000 + r1 % 55_000
            b.callback([second], pid, channel, txn2, amount, currency, PaymentStatus.SUCCEEDED, biz, second - 100)
            b.line(channel, biz, txn2, pid, amount, fee, second, ok_code)
            b.out.truth.append((BreakKind.DUPLICATE_PAYMENT, channel, pid, txn2))
            b.out.stream_truth.append((BreakKind.DUPLICATE_PAYMENT, channel, pid, txn2))
        if channel_moved and file_day is None:
            booked = (cb_times[0] - 100) if cb_times else created + delay
            b.line(channel, biz, txn, line_pid, line_gross, line_fee, booked, ok_code)

    # This day's cross-day items are in its internal records above; the previous day's land here.
    if previous is not None:
        assert previous.business_date == business_date - timedelta(days=1)
        for channel, biz, txn, pid, amount, fee, booked_ms, code in cross_day_lines(previous, rules):
            b.line(channel, biz, txn, pid, amount, fee, booked_ms - DAY_MS, code)
        # The day before yesterday's settled_late payments land here, booked early in the day.
        for channel, biz, txn, pid, amount, fee, created_ms in previous.settled_late_due:
            code = _status_code(rules[channel], PaymentStatus.SUCCEEDED, biz)
            b.line(channel, biz, txn, pid, amount, fee, 120_000 + created_ms % 1_200_000, code)
        b.out.settled_late_due = previous.settled_late
        # The day before yesterday's recorded_late payments: our records, booked early in the day.
        for n, (channel, biz, pid, our_txn, amount, fee, merchant, account) in enumerate(previous.recorded_late_due):
            at = 60_000 + (1_000 * n) % 1_200_000  # within 00:01-00:21, however many
            b.payment(pid, biz, None, merchant, account, channel, our_txn, amount, rules[channel].currency, fee,
                      PaymentStatus.SUCCEEDED, at, at)  # fmt: skip
        b.out.recorded_late_due = previous.recorded_late
    b.flush(1 << 62)
    return b.out


def cross_day_lines(out: DayOutput, rules: dict[str, Rule]) -> list[tuple[str, BizType, str, str, int, int, int, str]]:
    """The statement lines that a day's cross-day payments put into the next day's files:
    (channel, biz, txn, payment_id, amount, fee, booked_ms after that day's start, code)."""
    result = []
    for channel, biz, txn, pid, amount, fee, created_ms in out.cross_day:
        # Booked just after midnight: the channel's next business day.
        booked_ms = DAY_MS + 60_000 + (created_ms % 1_200_000)
        code = _status_code(rules[channel], PaymentStatus.SUCCEEDED, biz)
        result.append((channel, biz, txn, pid, amount, fee, booked_ms, code))
    return result


@dataclass(frozen=True)
class DaySummary:
    """What one written day holds: its folder and its counts."""

    day_dir: Path
    payments: int
    channel_lines: int
    events: int
    truth_breaks: int
    stream_truth_breaks: int


# --- writing ------------------------------------------------------------------------------------------


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")


# The day being written, visible to forked writer processes without pickling a million lines.
_WRITING: tuple[DayOutput, Path, dict[str, Rule]] | None = None
# Days this large write their channel files in forked processes beside the main one; below it the
# fork costs more than it saves.
parallel_write_payments_min = 50_000


def _write_channel(channel: str) -> None:
    assert _WRITING is not None
    out, day_dir, rules = _WRITING
    rule = rules[channel]
    lines = out.lines[channel]
    lines.sort(key=lambda ln: (ln.booked_at or datetime.min.replace(tzinfo=UTC), ln.channel_txn_id or ""))
    fmt = get_format(rule.parser)
    assert fmt.write is not None, f"format {rule.parser} has no writer"
    fmt.write(lines, day_dir / "channels" / channel, rule=rule, business_date=out.business_date)


def write_day(out: DayOutput, root: Path, rules: dict[str, Rule]) -> Path:
    """Write one generated day under `root/<date>/`; returns that folder."""
    global _WRITING
    day_dir = root / out.business_date.isoformat()
    _WRITING = (out, day_dir, rules)
    pool = None
    try:
        if out.payments >= parallel_write_payments_min and "fork" in multiprocessing.get_all_start_methods():
            # Native writers are pure Python; on big days they run in forked children while this
            # process writes the internal records and the events.
            pool = ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("fork"))
            futures = [pool.submit(_write_channel, channel) for channel in out.lines]
        else:
            for channel in out.lines:
                _write_channel(channel)
        _write_rest(out, day_dir)
        if pool is not None:
            for future in futures:
                future.result()
    finally:
        if pool is not None:
            pool.shutdown()
        _WRITING = None
    return day_dir


def _write_rest(out: DayOutput, day_dir: Path) -> None:
    truth_dir = day_dir / "truth"
    _write_csv(truth_dir / "breaks.csv", TRUTH_COLUMNS, sorted((str(k), c, p, t) for k, c, p, t in out.truth))
    _write_csv(
        truth_dir / "stream_breaks.csv", TRUTH_COLUMNS, sorted((str(k), c, p, t) for k, c, p, t in out.stream_truth)
    )
    _write_csv(truth_dir / "faults.csv", ("fault", "channel", "payment_id", "channel_txn_id"), sorted(out.faults))


def simulate(
    *,
    start: date,
    days: int,
    payments: int,
    seed: int,
    out_root: Path,
    channels: Sequence[str] = DEFAULT_CHANNELS,
    faults: str = "default",
    rules_dir: Path | None = None,
    progress: Callable[[date], None] | None = None,
) -> list[DaySummary]:
    """Generate and write `days` consecutive business days from `start`; returns what each holds."""
    assert days >= 1 and payments >= 1
    rules = load_rules(rules_dir) if rules_dir else load_rules()
    unknown = [ch for ch in channels if ch not in rules]
    if unknown:
        raise ValueError(f"no rule file for channel(s) {', '.join(unknown)}; known: {', '.join(sorted(rules))}")
    rates = load_profile(faults)
    out_root.mkdir(parents=True, exist_ok=True)
    written: list[DaySummary] = []
    previous: DayOutput | None = None
    # Millions of small tuples and no reference cycles: the cyclic collector would only rescan them.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for k in range(days):
            day = start + timedelta(days=k)
            day_dir = out_root / day.isoformat()
            (day_dir / "internal").mkdir(parents=True, exist_ok=True)
            (day_dir / "stream").mkdir(parents=True, exist_ok=True)
            with (
                open(day_dir / "internal" / "payments.csv", "w", encoding="utf-8", buffering=1 << 20) as pay_fh,
                open(day_dir / "stream" / "events.jsonl", "w", encoding="utf-8", buffering=1 << 20) as ev_fh,
            ):
                out = generate_day(
                    day, payments=payments, seed=seed, channels=channels, rates=rates, rules=rules,
                    previous=previous, payments_fh=pay_fh, events_fh=ev_fh,
                )  # fmt: skip
            day_dir = write_day(out, out_root, rules)
            written.append(
                DaySummary(
                    day_dir,
                    out.payments,
                    sum(len(lines) for lines in out.lines.values()),
                    out.events,
                    len(out.truth),
                    len(out.stream_truth),
                )
            )
            out.lines.clear()  # the next day needs only the cross-day payments
            previous = out
            if progress:
                progress(day)
    finally:
        if gc_was_enabled:
            gc.enable()
    manifest = {
        "generator": "payrecon simulate",
        "start": start.isoformat(),
        "days": days,
        "payments": payments,
        "seed": seed,
        "channels": list(channels),
        "faults": faults,
        "rates": rates,
        "rules": {ch: rules[ch].ref for ch in channels},
        "formats": {ch: rules[ch].parser for ch in channels},
    }
    (out_root / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return written


__all__ = ["DEFAULT_CHANNELS", "LineType", "simulate"]
