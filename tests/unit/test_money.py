"""Money: integer minor units, strict parsing, no float, no mixing (SPEC section 8)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

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


@pytest.mark.parametrize("text", ["１２.５０", "١٢", "12.٥0", "1２", "²", "12.3４"])
def test_only_ascii_digits_are_digits(text: str) -> None:
    """int() reads '١٢' and '１２' as 12 and a regex's \\d matches them: an amount in any other
    digits is malformed, never read, in the scalar parser and the column parser alike."""
    with pytest.raises(MoneyError) as err:
        parse_amount(text, "USD")
    assert err.value.reason == "malformed_amount"
    with pytest.raises(MoneyError) as err:
        parse_amount_column(pl.Series("a", ["1.00", text]), 2, currency="USD")
    assert err.value.reason == "malformed_amount" and err.value.detail.startswith("row 1:")


# Cells near an amount: digits of several scripts, signs, separators, blanks, long runs.
amount_cells = st.one_of(
    st.text(alphabet="0123456789.+-, \t１٣e", max_size=24),
    st.integers(-(10**21), 10**21).map(str),
    st.builds(lambda whole, frac: f"{whole}.{frac}", st.integers(0, 10**6), st.text("0123456789", max_size=5)),
    st.none(),
)


@settings(max_examples=400)
@given(st.sampled_from(["USD", "JPY", "KWD", "CLF"]), st.lists(amount_cells, min_size=1, max_size=6), st.booleans())
def test_the_column_parser_accepts_exactly_what_the_scalar_parser_does(
    currency: str, cells: list[str | None], allow_empty: bool
) -> None:
    """The same values, or the same refusal at the same first row with the same reason."""
    want: list[int | None] = []
    refusal: tuple[int, str] | None = None
    for row, cell in enumerate(cells):
        if allow_empty and (cell is None or cell.strip() == ""):
            want.append(None)
            continue
        try:
            want.append(parse_amount(cell or "", currency))
        except MoneyError as exc:
            refusal = (row, exc.reason)
            break
    column = pl.Series("a", cells, dtype=pl.String)
    if refusal is None:
        assert (
            parse_amount_column(column, exponent(currency), currency=currency, allow_empty=allow_empty).to_list()
            == want
        )
    else:
        with pytest.raises(MoneyError) as err:
            parse_amount_column(column, exponent(currency), currency=currency, allow_empty=allow_empty)
        assert (err.value.reason, err.value.detail.split(":")[0]) == (refusal[1], f"row {refusal[0]}")


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


# ISO 4217's currencies whose minor unit is not a hundredth (the standard's list, not the table's):
# every other currency in the table must have two decimals. CLDR (babel) is no oracle here: its
# display digits differ from ISO 4217 for IQD, AFN, IRR and ten more.
ISO_ZERO_DECIMALS = {"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
                     "VUV", "XAF", "XOF", "XPF"}  # fmt: skip
ISO_THREE_DECIMALS = {"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"}
ISO_FOUR_DECIMALS = {"CLF", "UYW"}


def test_the_exponent_table_is_iso_4217() -> None:
    by_exponent: dict[int, set[str]] = {}
    for currency, exp in CURRENCY_EXPONENTS.items():
        by_exponent.setdefault(exp, set()).add(currency)
    assert by_exponent.pop(0) == ISO_ZERO_DECIMALS
    assert by_exponent.pop(3) == ISO_THREE_DECIMALS
    assert by_exponent.pop(4) == ISO_FOUR_DECIMALS
    assert set(by_exponent) == {2} and {"USD", "EUR", "CNY", "GBP", "HUF", "TWD"} <= by_exponent[2]
    assert all(len(c) == 3 and c.isupper() for c in CURRENCY_EXPONENTS)


@given(amounts, amounts, st.sampled_from(CURRENCIES))
def test_money_orders_like_its_minor_units(a: int, b: int, currency: str) -> None:
    x, y = Money(a, currency), Money(b, currency)
    assert ((x < y), (x <= y), (x > y), (x >= y), (x == y)) == ((a < b), (a <= b), (a > b), (a >= b), (a == b))
    assert (x < x, x <= x, x > x, x >= x) == (False, True, False, True)
    assert -x == Money(-a, currency) and x - x == Money(0, currency)


def test_the_amount_range_is_signed_64_bits_on_both_sides() -> None:
    assert parse_amount("92233720368547758.07", "USD") == AMOUNT_MINOR_MAX
    assert parse_amount("-92233720368547758.07", "USD") == -AMOUNT_MINOR_MAX
    assert parse_amount(str(AMOUNT_MINOR_MAX), "JPY") == AMOUNT_MINOR_MAX == 2**63 - 1
    for text in ("92233720368547758.08", "-92233720368547758.08", str(-AMOUNT_MINOR_MAX - 1)):
        with pytest.raises(MoneyError) as err:
            parse_amount(text, "JPY" if "." not in text else "USD")
        assert err.value.reason == "overflow", text
    assert Money(-AMOUNT_MINOR_MAX, "USD").amount_minor == -AMOUNT_MINOR_MAX
    for value in (AMOUNT_MINOR_MAX + 1, -AMOUNT_MINOR_MAX - 1):
        with pytest.raises(MoneyError) as err:
            Money(value, "USD")
        assert err.value.reason == "overflow"


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (0, "USD", "0.00"),
        (5, "USD", "0.05"),
        (-5, "USD", "-0.05"),
        (-100, "USD", "-1.00"),
        (123456, "USD", "1234.56"),
        (0, "JPY", "0"),
        (-123, "JPY", "-123"),
        (1, "KWD", "0.001"),
        (-1000, "KWD", "-1.000"),
        (1, "CLF", "0.0001"),
    ],
)
def test_amounts_are_written_with_exactly_the_currency_digits(minor: int, currency: str, text: str) -> None:
    assert format_amount(minor, currency) == text
    assert str(Money(minor, currency)) == f"{text} {currency}"


@pytest.mark.parametrize(
    ("text", "options", "minor"),
    [
        ("1,234,567.00", {"allow_thousands": True}, 123456700),
        ("999.99", {"allow_thousands": True}, 99999),
        ("107,", {"decimal_sep": ",", "allow_trailing_sep": True}, 10700),
        ("107,5", {"decimal_sep": ","}, 10750),
    ],
)
def test_separators_as_the_format_declares_them(text: str, options: dict[str, Any], minor: int) -> None:
    assert parse_amount(text, "EUR", **options) == minor


@pytest.mark.parametrize(
    ("text", "options"),
    [
        ("1234,567.00", {"allow_thousands": True}),  # a group of four digits
        ("12,34.00", {"allow_thousands": True}),  # a group of two
        ("1,234,56.00", {"allow_thousands": True}),
        ("107.", {}),  # a trailing separator only where the format writes one (MT940)
        ("107,", {"decimal_sep": ","}),
        ("107.5", {"decimal_sep": ","}),
    ],
)
def test_separators_the_format_does_not_declare_are_refused(text: str, options: dict[str, Any]) -> None:
    with pytest.raises(MoneyError):
        parse_amount(text, "EUR", **options)


@given(st.integers(-(10**12), 10**12), st.integers(0, 1_000_000), st.integers(0, 1000))
def test_contracted_fee_is_exact_half_up(amount: int, rate_ppm: int, fixed: int) -> None:
    """On the amount's magnitude: a refund of 10.00 costs the fee a payment of 10.00 does."""
    fee = contracted_fee(amount, rate_ppm, fixed_minor=fixed)
    exact = Decimal(abs(amount)) * Decimal(rate_ppm) / Decimal(1_000_000)
    floor = int(exact)
    expected = floor + (1 if exact - floor >= Decimal("0.5") else 0) + fixed
    assert fee == expected >= 0


def test_contracted_fee_clamps_and_takes_ints_only() -> None:
    assert contracted_fee(10_000, 6_000) == 60  # 0.6 % of 100.00
    assert contracted_fee(10_000, 6_000, min_minor=100) == 100
    assert contracted_fee(10_000, 6_000, max_minor=50) == 50
    assert contracted_fee(10_000, 6_000, fixed_minor=30, min_minor=10, max_minor=200) == 90
    assert contracted_fee(83, 6_000) == 0 and contracted_fee(84, 6_000) == 1  # 0.498 down, 0.504 up
    for args, kwargs in (((10.0, 6_000), {}), ((10_000, 0.006), {}), ((10_000, 6_000), {"fixed_minor": 0.5})):
        with pytest.raises(MoneyError) as err:
            contracted_fee(*args, **kwargs)  # type: ignore[arg-type]
        assert err.value.reason == "not_integer_minor_units"


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
