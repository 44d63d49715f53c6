"""Strict decoding of the stream's input records: exact integers in, everything else refused."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stream_helpers import callback, event

from connectors.kafka.codecs import (
    DecodeError,
    Tick,
    decode_channel_callback,
    decode_payment_event,
    encode_tick,
    parse_source,
)
from pipelines.records import PaymentStatus, to_dict


def _raw(record, **override) -> bytes:
    d = to_dict(record)
    d.update(override)
    return json.dumps(d).encode()


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_integer_amounts_round_trip_exactly(amount: int):
    ev = event("P1", PaymentStatus.SUCCEEDED, 0, amount=amount)
    assert decode_payment_event(_raw(ev)) == ev


@given(st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8) | st.booleans())
def test_non_integer_amounts_are_refused(amount):
    with pytest.raises(DecodeError) as err:
        decode_payment_event(_raw(event("P1", PaymentStatus.SUCCEEDED, 0), amount_minor=amount))
    assert err.value.reason == "bad_amount"


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"amount_minor": -1}, "bad_amount"),
        ({"currency": "EURO"}, "bad_currency"),
        ({"status": "DONE"}, "bad_enum"),
        ({"occurred_at": "2026-11-02T10:00:00"}, "bad_timestamp"),
        ({"occurred_at": "yesterday"}, "bad_timestamp"),
        ({"payment_id": ""}, "empty_field"),
        ({"event_id": 7}, "bad_type"),
    ],
)
def test_bad_fields_name_the_reason(override, reason):
    with pytest.raises(DecodeError) as err:
        decode_payment_event(_raw(event("P1", PaymentStatus.SUCCEEDED, 0), **override))
    assert err.value.reason == reason


def test_missing_field_and_not_an_object():
    d = to_dict(event("P1", PaymentStatus.SUCCEEDED, 0))
    del d["trace_id"]
    with pytest.raises(DecodeError, match="missing_field: trace_id"):
        decode_payment_event(json.dumps(d).encode())
    with pytest.raises(DecodeError) as err:
        decode_channel_callback(b"[1, 2]")
    assert err.value.reason == "not_an_object"


def test_callbacks_and_ticks_decode():
    cb = callback("P1", 5)
    assert decode_channel_callback(_raw(cb)) == cb
    tick = decode_payment_event(encode_tick(cb.received_at))
    assert isinstance(tick, Tick) and tick.at == cb.received_at


def _outcome(decode, raw: bytes):
    try:
        return ("ok", decode(raw))
    except DecodeError as exc:
        return ("refused", exc.reason, exc.detail)


def _variants() -> list[tuple[object, bytes]]:
    ev = to_dict(event("P1", PaymentStatus.SUCCEEDED, 0, txn="T1"))
    cb = to_dict(callback("P1", 5))
    good_ev, good_cb = json.dumps(ev).encode(), json.dumps(cb).encode()
    out: list[tuple[object, bytes]] = [(decode_payment_event, good_ev), (decode_channel_callback, good_cb)]
    for decode, base, raw in ((decode_payment_event, ev, good_ev), (decode_channel_callback, cb, good_cb)):
        out += [
            (decode, b"\xef\xbb\xbf" + raw),  # a UTF-8 byte order mark: the standard library accepts it
            (decode, raw.replace(b'"amount_minor": ', b'"amount_minor": NaN, "x": ')),
            (decode, raw.replace(b'"amount_minor": ', b'"amount_minor": 1e400, "x": ')),
            (decode, raw.replace(b'"amount_minor": ', b'"amount_minor": 123456789012345678901234567890, "x": ')),
            (decode, raw.replace(b'"trace_id": "', b'"trace_id": "\\ud800')),
            (decode, raw + b"x"),
            (decode, b"\xff" + raw),
            (decode, json.dumps({**base, "amount_minor": 0}).encode()),
            (decode, json.dumps({**base, "channel_txn_id": ""}).encode()),
            (decode, json.dumps({**base, "currency": None}).encode()),
            (decode, json.dumps({k: v for k, v in base.items() if k != "channel"}).encode()),
        ]
    out.append((decode_payment_event, json.dumps({**ev, "parent_payment_id": "", "fee_minor": None}).encode()))
    out.append((decode_payment_event, json.dumps({**ev, "fee_minor": -3}).encode()))
    out.append((decode_channel_callback, json.dumps({**cb, "paid_at": ""}).encode()))
    out.append((decode_channel_callback, json.dumps({**cb, "paid_at": "noon"}).encode()))
    return out


def test_the_fast_paths_decode_and_refuse_exactly_as_the_strict_decoder(monkeypatch: pytest.MonkeyPatch):
    """msgspec and the one-pass field check are only shortcuts: every input gets the outcome (the
    same record, or the same DecodeError reason and detail) the standard library and the
    field-by-field checks give."""
    from connectors.kafka import codecs

    variants = _variants()
    fast = [_outcome(decode, raw) for decode, raw in variants]
    monkeypatch.setattr(codecs, "_fast_loads", None)
    monkeypatch.setattr(codecs, "_fast_event", lambda d: None)
    monkeypatch.setattr(codecs, "_fast_callback", lambda d: None)
    strict = [_outcome(decode, raw) for decode, raw in variants]
    assert fast == strict
    assert {o[0] for o in fast} == {"ok", "refused"}


@pytest.mark.parametrize("value", [b"0/2", b"1/2", b"3/12"])
def test_a_source_header_is_read(value: bytes) -> None:
    assert parse_source(value) == value.decode()


@pytest.mark.parametrize("value", ["²/5", "0/²", "٣/5", "１/5", "2/2", "x/2", "1", "", "/", "-1/2"])
def test_a_bad_source_header_is_a_decode_error_never_another_exception(value: str) -> None:
    """'²' passes str.isdigit() and int() refuses it with a ValueError: the header must still give
    the DecodeError that sends the record to the dead-letter topic."""
    with pytest.raises(DecodeError) as err:
        parse_source(value.encode())
    assert err.value.reason == "bad_source_header"
