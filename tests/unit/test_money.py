"""Money: integer minor units, strict parsing, no float, no mixing (SPEC section 8)."""

from __future__ import annotations

from decimal import Decimal

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.money import (
    AMOUNT_MINOR_MAX,
    CURRENCY_EXPONENTS,
    CurrencyMismatch,
    Money,
    MoneyError,
    contracted_fee,
    convert_minor,
    decimal_to_minor,
    exponent,
    format_amount,
    parse_amount,
)
from pipelines.money_frame import parse_amount_column

CURRENCIES = sorted(CURRENCY_EXPONENTS)
amounts = st.integers(min_value=-AMOUNT_MINOR_MAX, max_value=AMOUNT_MINOR_MAX)


@given(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(CURRENCIES))
def test_money_never_accepts_a_float(value: float, currency: str) -> None:
    with pytest.raises(MoneyError) as err:
        Money(value, currency)  # type: ignore[arg-type]
    assert err.value.reason == "not_integer_minor_units"


def test_money_refuses_bool_and_decimal() -> None:
    for value in (True, Decimal("1"), "100"):
        with pytest.raises(MoneyError):
            Money(value, "USD")  # type: ignore[arg-type]


@given(amounts, amounts, st.sampled_from(CURRENCIES), st.sampled_from(CURRENCIES))
def test_money_never_mixes_currencies(a: int, b: int, c1: str, c2: str) -> None:
    x, y = Money(a, c1), Money(b, c2)
    if c1 == c2:
        if abs(a + b) <= AMOUNT_MINOR_MAX:
            assert (x + y).amount_minor == a + b
    else:
        with pytest.raises(CurrencyMismatch):
            _ = x + y
        with pytest.raises(CurrencyMismatch):
            _ = x - y
        with pytest.raises(CurrencyMismatch):
            _ = x < y


@settings(max_examples=500)
@given(st.sampled_from(CURRENCIES), amounts)
def test_text_round_trips_for_every_currency(currency: str, units: int) -> None:
    text = format_amount(units, currency)
    assert parse_amount(text, currency) == units
    assert Money.parse(text, currency) == Money(units, currency)


@given(st.sampled_from(CURRENCIES), st.integers(min_value=0, max_value=10**12), st.integers(1, 9))
def test_more_decimals_than_the_currency_allows_is_refused(currency: str, whole: int, extra_digit: int) -> None:
    exp = exponent(currency)
    text = f"{whole}." + "0" * exp + str(extra_digit)
    with pytest.raises(MoneyError) as err:
        parse_amount(text, currency)
    assert err.value.reason == "too_many_decimals"


@pytest.mark.parametrize(
    ("text", "currency", "reason"),
    [
        ("10.005", "USD", "too_many_decimals"),
        ("100.5", "JPY", "too_many_decimals"),
        ("1.2345", "KWD", "too_many_decimals"),
        ("1,000.00", "USD", "thousands_separator"),
        ("1e3", "USD", "exponent_notation"),
        ("NaN", "USD", "not_a_number"),
        ("inf", "EUR", "not_a_number"),
        ("", "USD", "empty_amount"),
        ("   ", "USD", "empty_amount"),
        ("12.3.4", "USD", "malformed_amount"),
        ("$12", "USD", "malformed_amount"),
        ("92233720368547758.08", "USD", "overflow"),
        ("1.00", "XYZ", "unknown_currency"),
    ],
)
def test_bad_amount_texts_are_refused_with_a_reason(text: str, currency: str, reason: str) -> None:
    with pytest.raises(MoneyError) as err:
        parse_amount(text, currency)
    assert err.value.reason == reason


def test_exponents_and_channel_overrides() -> None:
    assert (exponent("JPY"), exponent("USD"), exponent("KWD")) == (0, 2, 3)
    assert exponent("ISK") == 0 and exponent("ISK", "stripe") == 2
    assert parse_amount("1.005", "KWD") == 1005
    assert parse_amount("107,", "EUR", decimal_sep=",", allow_trailing_sep=True) == 10700
    assert parse_amount("1,234.50", "USD", allow_thousands=True) == 123450
    assert convert_minor(12300, 2, 0) == 123
    with pytest.raises(MoneyError):
        convert_minor(12345, 2, 0)


def test_decimal_edges_trap_inexact_results() -> None:
    assert decimal_to_minor(Decimal("12.34"), "USD") == 1234
    assert decimal_to_minor(Decimal("12.340"), "USD") == 1234
    with pytest.raises(MoneyError):
        decimal_to_minor(Decimal("12.345"), "USD")
    with pytest.raises(MoneyError):
        decimal_to_minor(Decimal("0.5"), "JPY")


@given(st.integers(0, 10**12), st.integers(0, 1_000_000), st.integers(0, 1000))
def test_contracted_fee_is_exact_half_up(amount: int, rate_ppm: int, fixed: int) -> None:
    fee = contracted_fee(amount, rate_ppm, fixed_minor=fixed)
    exact = Decimal(amount) * Decimal(rate_ppm) / Decimal(1_000_000)
    floor = int(exact)
    expected = floor + (1 if exact - floor >= Decimal("0.5") else 0) + fixed
    assert fee == expected >= 0


@settings(max_examples=200)
@given(st.sampled_from(["USD", "JPY", "KWD", "CNY"]), st.lists(amounts, min_size=1, max_size=20))
def test_column_parsing_equals_scalar_parsing(currency: str, values: list[int]) -> None:
    texts = [format_amount(v, currency) for v in values]
    parsed = parse_amount_column(pl.Series("a", texts), exponent(currency), currency=currency)
    assert parsed.dtype == pl.Int64
    assert parsed.to_list() == values


def test_column_parsing_names_the_first_bad_row() -> None:
    with pytest.raises(MoneyError) as err:
        parse_amount_column(pl.Series("a", ["1.00", "2.00", "3.001"]), 2, currency="USD")
    assert err.value.reason == "too_many_decimals" and err.value.detail.startswith("row 2:")
