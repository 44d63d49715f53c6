"""Money: an integer count of minor units and an ISO 4217 currency (SPEC section 8).

There is no float anywhere on a money path. Text amounts are parsed with a strict pattern sized to
the currency's exponent, straight to integer minor units: more digits than the currency allows is
an error, never a rounding. No Decimal is needed either: amounts go from text to int and back by
their digits, and fee rates are integer parts per million, rounded half up by integer arithmetic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# ISO 4217 minor-unit exponents of the active currencies. A currency missing here is refused, never
# guessed: add it with its exponent from the standard.
CURRENCY_EXPONENTS: dict[str, int] = {
    # zero-decimal
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
    "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    # three-decimal
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    # four-decimal (unit of account)
    "CLF": 4, "UYW": 4,
    # two-decimal
    "AED": 2, "AFN": 2, "ALL": 2, "AMD": 2, "AOA": 2, "ARS": 2, "AUD": 2, "AWG": 2, "AZN": 2,
    "BAM": 2, "BBD": 2, "BDT": 2, "BGN": 2, "BMD": 2, "BND": 2, "BOB": 2, "BRL": 2, "BSD": 2,
    "BTN": 2, "BWP": 2, "BYN": 2, "BZD": 2, "CAD": 2, "CDF": 2, "CHF": 2, "CNY": 2, "COP": 2,
    "CRC": 2, "CUP": 2, "CVE": 2, "CZK": 2, "DKK": 2, "DOP": 2, "DZD": 2, "EGP": 2, "ERN": 2,
    "ETB": 2, "EUR": 2, "FJD": 2, "FKP": 2, "GBP": 2, "GEL": 2, "GHS": 2, "GIP": 2, "GMD": 2,
    "GTQ": 2, "GYD": 2, "HKD": 2, "HNL": 2, "HTG": 2, "HUF": 2, "IDR": 2, "ILS": 2, "INR": 2,
    "IRR": 2, "JMD": 2, "KES": 2, "KGS": 2, "KHR": 2, "KPW": 2, "KYD": 2, "KZT": 2, "LAK": 2,
    "LBP": 2, "LKR": 2, "LRD": 2, "LSL": 2, "MAD": 2, "MDL": 2, "MGA": 2, "MKD": 2, "MMK": 2,
    "MNT": 2, "MOP": 2, "MRU": 2, "MUR": 2, "MVR": 2, "MWK": 2, "MXN": 2, "MYR": 2, "MZN": 2,
    "NAD": 2, "NGN": 2, "NIO": 2, "NOK": 2, "NPR": 2, "NZD": 2, "PAB": 2, "PEN": 2, "PGK": 2,
    "PHP": 2, "PKR": 2, "PLN": 2, "QAR": 2, "RON": 2, "RSD": 2, "RUB": 2, "SAR": 2, "SBD": 2,
    "SCR": 2, "SDG": 2, "SEK": 2, "SGD": 2, "SHP": 2, "SLE": 2, "SOS": 2, "SRD": 2, "SSP": 2,
    "STN": 2, "SVC": 2, "SYP": 2, "SZL": 2, "THB": 2, "TJS": 2, "TMT": 2, "TOP": 2, "TRY": 2,
    "TTD": 2, "TWD": 2, "TZS": 2, "UAH": 2, "USD": 2, "UYU": 2, "UZS": 2, "VES": 2, "WST": 2,
    "XCD": 2, "YER": 2, "ZAR": 2, "ZMW": 2, "ZWG": 2,
}  # fmt: skip

# Providers that count some currencies in other units than ISO 4217 does. Stripe, for example,
# takes ISK, HUF, TWD and UGX in two-decimal units for API compatibility; a Stripe file in those
# currencies must be read with the provider's exponent and converted, never misread by 100x.
CHANNEL_EXPONENT_OVERRIDES: dict[str, dict[str, int]] = {
    "stripe": {"ISK": 2, "HUF": 2, "TWD": 2, "UGX": 2},
}

# The largest amount a signed 64-bit column can hold; anything larger is refused on parse so that
# nothing wraps in Polars or DuckDB. Sums that may exceed it are done in DuckDB HUGEINT or Int128.
AMOUNT_MINOR_MAX = 2**63 - 1


class MoneyError(ValueError):
    """A money value or amount text that must be refused; `reason` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class CurrencyMismatch(MoneyError):
    """Two amounts in different currencies were combined."""


def exponent(currency: str, channel: str | None = None) -> int:
    """The number of minor-unit digits of `currency` (as `channel` counts them, when it overrides)."""
    if channel is not None:
        override = CHANNEL_EXPONENT_OVERRIDES.get(channel, {}).get(currency)
        if override is not None:
            return override
    try:
        return CURRENCY_EXPONENTS[currency]
    except KeyError:
        raise MoneyError("unknown_currency", f"{currency!r} is not an ISO 4217 code in the table") from None


def check_currency(currency: str) -> str:
    """Return `currency` when it is a known ISO 4217 code, else raise MoneyError."""
    if not isinstance(currency, str) or currency not in CURRENCY_EXPONENTS:
        raise MoneyError("unknown_currency", f"{currency!r} is not an ISO 4217 code in the table")
    return currency


@dataclass(frozen=True, slots=True, order=False)
class Money:
    """An exact amount: `amount_minor` (int, minor units, signed) in `currency` (ISO 4217 code)."""

    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        # bool is an int subclass; a float is never money.
        if type(self.amount_minor) is not int:
            raise MoneyError(
                "not_integer_minor_units",
                f"amount_minor must be an int, got {type(self.amount_minor).__name__} {self.amount_minor!r}",
            )
        check_currency(self.currency)
        if not -AMOUNT_MINOR_MAX <= self.amount_minor <= AMOUNT_MINOR_MAX:
            raise MoneyError("overflow", f"{self.amount_minor} does not fit a signed 64-bit amount")

    # --- arithmetic: same currency only -------------------------------------------------------
    def _same(self, other: object) -> Money:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatch("currency_mismatch", f"{self.currency} and {other.currency}")
        return other

    def __add__(self, other: Money) -> Money:
        return Money(self.amount_minor + self._same(other).amount_minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        return Money(self.amount_minor - self._same(other).amount_minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount_minor, self.currency)

    def __lt__(self, other: Money) -> bool:
        return self.amount_minor < self._same(other).amount_minor

    def __le__(self, other: Money) -> bool:
        return self.amount_minor <= self._same(other).amount_minor

    def __gt__(self, other: Money) -> bool:
        return self.amount_minor > self._same(other).amount_minor

    def __ge__(self, other: Money) -> bool:
        return self.amount_minor >= self._same(other).amount_minor

    # --- text ---------------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str, currency: str, *, channel: str | None = None) -> Money:
        """Parse `text` (e.g. "12.34") strictly for `currency`; see `parse_amount`."""
        return cls(parse_amount(text, currency, channel=channel), currency)

    def to_text(self) -> str:
        """The amount in major units with exactly the currency's exponent digits ("-0.05", "100")."""
        return format_amount(self.amount_minor, self.currency)

    def __str__(self) -> str:
        return f"{self.to_text()} {self.currency}"


_AMOUNT_RE = re.compile(r"^(?P<sign>[+-]?)(?P<int>[0-9]+)(?:\.(?P<frac>[0-9]+))?$")
_AMOUNT_THOUSANDS_RE = re.compile(r"^(?P<sign>[+-]?)(?P<int>[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.(?P<frac>[0-9]+))?$")


def parse_amount(
    text: str,
    currency: str,
    *,
    channel: str | None = None,
    decimal_sep: str = ".",
    allow_thousands: bool = False,
    allow_trailing_sep: bool = False,
) -> int:
    """Parse an amount written in major units into integer minor units of `currency`.

    `text` is a plain decimal number: an optional sign, digits, and at most `exponent(currency)`
    fraction digits after `decimal_sep`. Refused with a MoneyError naming the reason: empty text,
    NaN/Infinity, exponents ("1e3"), thousand separators (unless `allow_thousands`), more fraction
    digits than the currency has (never rounded), a fraction on a zero-decimal currency, or a value
    that does not fit 64 bits. `allow_trailing_sep` accepts "107," (MT940 writes whole amounts so).
    """
    if not isinstance(text, str):
        raise MoneyError("not_text", f"amount must be text, got {type(text).__name__} {text!r}")
    exp = exponent(currency, channel)
    raw = text.strip()
    if raw == "":
        raise MoneyError("empty_amount", "the amount is empty")
    lowered = raw.lower()
    if any(word in lowered for word in ("nan", "inf")):
        raise MoneyError("not_a_number", f"{text!r} is not a finite amount")
    if "e" in lowered:
        raise MoneyError("exponent_notation", f"{text!r} uses exponent notation")
    if decimal_sep != ".":
        if "." in raw:
            raise MoneyError("bad_separator", f"{text!r} has '.' where the decimal separator is {decimal_sep!r}")
        raw = raw.replace(decimal_sep, ".")
    if allow_trailing_sep and raw.endswith("."):
        raw = raw[:-1]
    pattern = _AMOUNT_THOUSANDS_RE if allow_thousands else _AMOUNT_RE
    m = pattern.match(raw)
    if m is None:
        if "," in raw and not allow_thousands:
            raise MoneyError("thousands_separator", f"{text!r} has a thousands separator")
        raise MoneyError("malformed_amount", f"{text!r} is not a plain decimal amount")
    frac = m.group("frac") or ""
    if len(frac) > exp:
        if exp == 0:
            raise MoneyError("too_many_decimals", f"{text!r} has decimals but {currency} has none")
        raise MoneyError("too_many_decimals", f"{text!r} has {len(frac)} decimals but {currency} allows {exp}")
    units = int(m.group("int").replace(",", "") + frac.ljust(exp, "0"))
    if m.group("sign") == "-":
        units = -units
    if abs(units) > AMOUNT_MINOR_MAX:
        raise MoneyError("overflow", f"{text!r} does not fit a signed 64-bit amount of {currency}")
    return units


def format_amount(amount_minor: int, currency: str, *, channel: str | None = None) -> str:
    """Write integer minor units as major-unit text with exactly the currency's digits."""
    if type(amount_minor) is not int:
        raise MoneyError("not_integer_minor_units", f"{amount_minor!r} is not an int")
    exp = exponent(currency, channel)
    sign = "-" if amount_minor < 0 else ""
    digits = str(abs(amount_minor))
    if exp == 0:
        return sign + digits
    digits = digits.rjust(exp + 1, "0")
    return f"{sign}{digits[:-exp]}.{digits[-exp:]}"


# Fee rates are parts per million of the principal (6000 ppm = 0.6 %), so a contracted rate is an
# integer too. The rounding is declared, not incidental: half up, to the currency's minor unit.
PPM = 1_000_000


def contracted_fee(
    amount_minor: int,
    rate_ppm: int,
    *,
    fixed_minor: int = 0,
    min_minor: int = 0,
    max_minor: int | None = None,
) -> int:
    """The fee in minor units on `amount_minor`: `rate_ppm` of it rounded half up, plus `fixed_minor`,
    clamped to [min_minor, max_minor]. Always non-negative."""
    if type(amount_minor) is not int or type(rate_ppm) is not int or type(fixed_minor) is not int:
        raise MoneyError("not_integer_minor_units", "fee inputs must be ints")
    magnitude = (abs(amount_minor) * rate_ppm * 2 + PPM) // (2 * PPM) + fixed_minor
    magnitude = max(magnitude, min_minor)
    if max_minor is not None:
        magnitude = min(magnitude, max_minor)
    return magnitude
