"""Kafka record codecs for the stream topics: strict JSON in, JSON out.

Input records (payment events, channel callbacks, watermark ticks) are decoded strictly: a missing
field, a float or text amount, an unknown enum value or currency, or a naive timestamp is a
`DecodeError` with a short machine-readable `reason` and a human `detail`; the worker sends such a
record to the dead-letter topic with both and goes on. Nothing is coerced or guessed.

Every output carries the payment's `trace_id` in its value and in the `trace_id` header.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from pipelines.money import CURRENCY_EXPONENTS, MoneyError, check_currency
from pipelines.records import BizType, ChannelCallback, PaymentEvent, PaymentStatus

E = TypeVar("E", BizType, PaymentStatus)

# msgspec (installed with Airflow) parses JSON about 4x faster than the standard library. It is
# only a fast path: whatever it refuses (NaN, a BOM, a lone surrogate, bad UTF-8, ...) goes to
# `json.loads`, so every record decodes, or fails with the same reason, exactly as without it.
try:
    import msgspec

    _fast_loads: Callable[[bytes], Any] | None = msgspec.json.Decoder().decode
    _fast_dumps: Callable[[Any], bytes] | None = msgspec.json.Encoder().encode
    _FAST_JSON_ERRORS: tuple[type[Exception], ...] = (msgspec.MsgspecError,)
except ImportError:  # pragma: no cover - msgspec comes with the locked environment
    _fast_loads = _fast_dumps = None
    _FAST_JSON_ERRORS = ()
_UNDECODED = object()

TRACE_HEADER = "trace_id"
TICK_KEY = b"__tick__"
# Why a record went to the dead-letter topic, and where it came from, as headers too, so that a
# consumer of the DLQ can filter without parsing the value.
DLQ_REASON_HEADER = "payrecon-dlq-reason"
# On a re-keyed callback or tick: the raw callback partition it came from and how many there are
# ("N/COUNT"), so the matcher keeps one callback watermark per raw source.
SOURCE_HEADER = "payrecon-src"


class DecodeError(ValueError):
    """An input record that cannot be decided: `reason` (short code) and `detail` (for a person)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Tick:
    """A watermark tick: no record with an earlier event time will follow on this partition.

    The replay sends one to every partition of both input topics after a day's last record, so that
    every callback window that ends inside the day closes in event time (never by wall clock)."""

    at: datetime


def _obj(raw: bytes) -> dict[str, Any]:
    value: Any = _UNDECODED
    if _fast_loads is not None:
        try:  # noqa: SIM105 - a try costs nothing when nothing is raised; suppress() does
            value = _fast_loads(raw)
        except _FAST_JSON_ERRORS:
            pass  # the standard library decides (and names the error) below
    if value is _UNDECODED:
        try:
            value = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DecodeError("not_json", str(exc)) from None
    if not isinstance(value, dict):
        raise DecodeError("not_an_object", f"expected a JSON object, got {type(value).__name__}")
    return value


def _str(d: dict[str, Any], key: str, *, optional: bool = False) -> str | None:
    if key not in d:
        raise DecodeError("missing_field", key)
    value = d[key]
    if value is None or value == "":
        if optional:
            return None
        raise DecodeError("empty_field", key)
    if not isinstance(value, str):
        raise DecodeError("bad_type", f"{key} must be text, got {type(value).__name__}")
    return value


def _req(d: dict[str, Any], key: str) -> str:
    value = _str(d, key)
    assert value is not None
    return value


def _int(d: dict[str, Any], key: str, *, optional: bool = False) -> int | None:
    if key not in d:
        raise DecodeError("missing_field", key)
    value = d[key]
    if value is None and optional:
        return None
    # bool is an int subclass and a float is never money: both are refused.
    if type(value) is not int:
        raise DecodeError("bad_amount", f"{key} must be an integer count of minor units, got {value!r}")
    if value < 0:
        raise DecodeError("bad_amount", f"{key} must not be negative, got {value}")
    return value


def _time(d: dict[str, Any], key: str, *, optional: bool = False) -> datetime | None:
    text = _str(d, key, optional=optional)
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise DecodeError("bad_timestamp", f"{key}={text!r} is not ISO 8601") from None
    if value.tzinfo is None:
        raise DecodeError("bad_timestamp", f"{key}={text!r} has no time zone (UTC expected)")
    return value.astimezone(UTC)


def _currency(d: dict[str, Any]) -> str:
    try:
        return check_currency(_req(d, "currency"))
    except MoneyError as exc:
        raise DecodeError("bad_currency", str(exc)) from None


def _enum(d: dict[str, Any], key: str, enum: type[E]) -> E:
    text = _req(d, key)
    try:
        return enum(text)
    except ValueError:
        raise DecodeError("bad_enum", f"{key}={text!r} is not one of {[e.value for e in enum]}") from None


def _tick(d: dict[str, Any]) -> Tick:
    at = _time(d, "at")
    assert at is not None
    return Tick(at)


_BIZ_TYPES = {e.value: e for e in BizType}
_STATUSES = {e.value: e for e in PaymentStatus}


def _fast_time(value: Any) -> datetime | None:
    """An aware ISO 8601 timestamp in UTC, or None for anything else (the strict path decides)."""
    if type(value) is not str or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return None if parsed.tzinfo is None else parsed.astimezone(UTC)


def _fast_event(d: dict[str, Any]) -> PaymentEvent | None:
    """The PaymentEvent of a well-formed record, checked field by field as the strict decoder
    does, in one pass without its per-field calls; None when any field is not plainly valid (the
    strict decoder then returns the same event or raises the precise DecodeError)."""
    try:
        event_id, payment_id, merchant_id, account_id, channel, trace_id = (
            d["event_id"], d["payment_id"], d["merchant_id"], d["account_id"], d["channel"], d["trace_id"],
        )  # fmt: skip
        txn, amount, currency = d["channel_txn_id"], d["amount_minor"], d["currency"]
        biz, status = _BIZ_TYPES[d["biz_type"]], _STATUSES[d["status"]]
    except (KeyError, TypeError):
        return None
    parent = d.get("parent_payment_id")
    fee = d.get("fee_minor")
    for text in (event_id, payment_id, merchant_id, account_id, channel, trace_id):
        if type(text) is not str or not text:
            return None
    if (txn is not None and type(txn) is not str) or (parent is not None and type(parent) is not str):
        return None
    if type(amount) is not int or amount < 0 or (fee is not None and (type(fee) is not int or fee < 0)):
        return None
    if type(currency) is not str or currency not in CURRENCY_EXPONENTS:
        return None
    occurred_at = _fast_time(d.get("occurred_at"))
    if occurred_at is None:
        return None
    return PaymentEvent(
        event_id=event_id,
        payment_id=payment_id,
        biz_type=biz,
        parent_payment_id=parent or None,
        merchant_id=merchant_id,
        account_id=account_id,
        channel=channel,
        channel_txn_id=txn or None,
        amount_minor=amount,
        currency=currency,
        fee_minor=fee,
        status=status,
        occurred_at=occurred_at,
        trace_id=trace_id,
    )


def _fast_callback(d: dict[str, Any]) -> ChannelCallback | None:
    """As `_fast_event`, for a channel callback."""
    try:
        callback_id, channel, txn, payment_id, channel_status, trace_id = (
            d["callback_id"], d["channel"], d["channel_txn_id"], d["payment_id"], d["channel_status"], d["trace_id"],
        )  # fmt: skip
        amount, currency, status = d["amount_minor"], d["currency"], _STATUSES[d["status"]]
    except (KeyError, TypeError):
        return None
    for text in (callback_id, channel, txn, payment_id, channel_status, trace_id):
        if type(text) is not str or not text:
            return None
    if type(amount) is not int or amount < 0:
        return None
    if type(currency) is not str or currency not in CURRENCY_EXPONENTS:
        return None
    received_at = _fast_time(d.get("received_at"))
    if received_at is None:
        return None
    paid_at = None
    if "paid_at" in d and d["paid_at"] is not None and d["paid_at"] != "":
        paid_at = _fast_time(d["paid_at"])
        if paid_at is None:
            return None
    raw_payload = d.get("raw", "")
    return ChannelCallback(
        callback_id=callback_id,
        channel=channel,
        channel_txn_id=txn,
        payment_id=payment_id,
        amount_minor=amount,
        currency=currency,
        status=status,
        channel_status=channel_status,
        paid_at=paid_at,
        received_at=received_at,
        trace_id=trace_id,
        raw=raw_payload if isinstance(raw_payload, str) else json.dumps(raw_payload, sort_keys=True),
    )


def decode_payment_event(raw: bytes) -> PaymentEvent | Tick:
    """A `payrecon.payment-events` record value: a PaymentEvent, or a watermark Tick."""
    d = _obj(raw)
    if d.get("type") == "tick":
        return _tick(d)
    fast = _fast_event(d)
    if fast is not None:
        return fast
    occurred_at = _time(d, "occurred_at")
    assert occurred_at is not None
    return PaymentEvent(
        event_id=_req(d, "event_id"),
        payment_id=_req(d, "payment_id"),
        biz_type=_enum(d, "biz_type", BizType),
        parent_payment_id=_str(d, "parent_payment_id", optional=True) if "parent_payment_id" in d else None,
        merchant_id=_req(d, "merchant_id"),
        account_id=_req(d, "account_id"),
        channel=_req(d, "channel"),
        channel_txn_id=_str(d, "channel_txn_id", optional=True),
        amount_minor=_int(d, "amount_minor") or 0,
        currency=_currency(d),
        fee_minor=_int(d, "fee_minor", optional=True) if "fee_minor" in d else None,
        status=_enum(d, "status", PaymentStatus),
        occurred_at=occurred_at,
        trace_id=_req(d, "trace_id"),
    )


def decode_channel_callback(raw: bytes) -> ChannelCallback | Tick:
    """A `payrecon.channel-callbacks` record value: a ChannelCallback, or a watermark Tick."""
    d = _obj(raw)
    if d.get("type") == "tick":
        return _tick(d)
    fast = _fast_callback(d)
    if fast is not None:
        return fast
    received_at = _time(d, "received_at")
    assert received_at is not None
    raw_payload = d.get("raw", "")
    return ChannelCallback(
        callback_id=_req(d, "callback_id"),
        channel=_req(d, "channel"),
        channel_txn_id=_req(d, "channel_txn_id"),
        payment_id=_req(d, "payment_id"),
        amount_minor=_int(d, "amount_minor") or 0,
        currency=_currency(d),
        status=_enum(d, "status", PaymentStatus),
        channel_status=_req(d, "channel_status"),
        paid_at=_time(d, "paid_at", optional=True) if "paid_at" in d else None,
        received_at=received_at,
        trace_id=_req(d, "trace_id"),
        raw=raw_payload if isinstance(raw_payload, str) else json.dumps(raw_payload, sort_keys=True),
    )


def raw_callback_key(channel: str, channel_txn_id: str) -> bytes:
    """The key a channel's own delivery has on the raw callback topic: `channel/channel_txn_id`."""
    return f"{channel}/{channel_txn_id}".encode()


def rekey_callback(raw: bytes) -> tuple[bytes, str] | Tick:
    """A raw callback record value: (its payment_id as the new key, its trace_id), or a Tick. Only
    what re-keying needs is checked (a JSON object with a non-empty text payment_id); the matcher
    decodes the rest strictly. Raises DecodeError."""
    d = _obj(raw)
    if d.get("type") == "tick":
        return _tick(d)
    payment_id = _req(d, "payment_id")
    trace = d.get("trace_id")
    return payment_id.encode(), trace if isinstance(trace, str) else ""


def parse_source(value: bytes) -> str:
    """A SOURCE_HEADER value checked: "N/COUNT" with 0 <= N < COUNT. Raises DecodeError."""
    text = value.decode("utf-8", "replace")
    index, sep, count = text.partition("/")
    # ASCII digits only: str.isdigit() takes '²', which int() then refuses with a ValueError, not
    # the DecodeError that sends a poison record to the dead-letter topic.
    if not (sep and text.isascii() and index.isdigit() and count.isdigit() and int(index) < int(count)):
        raise DecodeError("bad_source_header", f"{SOURCE_HEADER}={text!r} is not N/COUNT")
    return text


def iso(value: datetime) -> str:
    """UTC ISO 8601 text with a `Z` suffix and millisecond precision (the simulator's format)."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode_tick(at: datetime) -> bytes:
    return json.dumps({"type": "tick", "at": iso(at)}).encode()


def encode_json(value: dict[str, Any]) -> bytes:
    """Canonical JSON (sorted keys, no spaces): the same record always has the same bytes, so that a
    re-sent output is byte-identical to the first copy."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def encode_compact(value: Any) -> bytes:
    """Compact JSON (no spaces, UTF-8, keys in insertion order): for internal records that are
    read back as JSON, never compared byte for byte (the table changelog)."""
    if _fast_dumps is not None:
        return _fast_dumps(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def headers_for(trace_id: str | None, **extra: str) -> list[tuple[str, bytes]]:
    """Kafka headers of an output record: its trace_id plus any `extra` text headers."""
    out = [(TRACE_HEADER, (trace_id or "").encode())]
    out += [(k, v.encode()) for k, v in extra.items()]
    return out
