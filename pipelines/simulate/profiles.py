"""Fault profiles: the rate per payment of each fault the simulator injects.

A profile is a name (`none`, `default`, `heavy`) or a YAML file mapping fault names to rates, e.g.

    duplicate_payment: 0.01
    ambiguous: 0.002

Faults are exclusive per payment and drawn independently with these probabilities, so the sum of
the rates must stay below one. Unknown fault names are refused.
"""

from __future__ import annotations

from pathlib import Path

import yaml

FAULTS: tuple[str, ...] = (
    "missing_at_channel",
    "missing_internal",
    "lost_callback",
    "status_mismatch",
    "amount_mismatch",
    "partial_payment",
    "duplicate_payment",
    "fee_mismatch",
    "currency_mismatch",
    "ambiguous",
    "duplicate_callback",
    "late_callback",
    "callback_first",
    "missing_reference",
    "cross_day",
    "partial_refund",
    "settled_late",
    "recorded_late",
)

# Faults that only a channel without callbacks (a bank) can have: our records never learn the
# bank's transaction id, so its lines match on the reference or on amount and time.
BANK_ONLY_FAULTS: frozenset[str] = frozenset({"ambiguous", "missing_reference"})
# Faults about callbacks, which a bank never sends.
CALLBACK_FAULTS: frozenset[str] = frozenset(
    {"lost_callback", "status_mismatch", "duplicate_callback", "late_callback", "callback_first"}
)

_DEFAULT: dict[str, float] = {
    "missing_at_channel": 0.004,
    "missing_internal": 0.003,
    "lost_callback": 0.004,
    "status_mismatch": 0.004,
    "amount_mismatch": 0.003,
    "partial_payment": 0.003,
    "duplicate_payment": 0.003,
    "fee_mismatch": 0.004,
    "currency_mismatch": 0.002,
    "ambiguous": 0.002,
    "duplicate_callback": 0.01,
    "late_callback": 0.01,
    "callback_first": 0.01,
    "missing_reference": 0.01,
    "cross_day": 0.01,
    "partial_refund": 0.02,
    # Needs three days to show (the line lands two days after the payment), and a rate above 0
    # would change every draw of the committed sample days: a profile file turns it on.
    "settled_late": 0.0,
    "recorded_late": 0.0,  # likewise: our record reaches the extract two days after the line
}

PROFILES: dict[str, dict[str, float]] = {
    "none": {},
    "default": _DEFAULT,
    "heavy": {name: rate * 5 for name, rate in _DEFAULT.items()},
}


def load_profile(name_or_path: str) -> dict[str, float]:
    """The rates of a named profile or of a YAML profile file; every fault is present (0 when absent)."""
    if name_or_path in PROFILES:
        rates = dict(PROFILES[name_or_path])
    else:
        path = Path(name_or_path)
        if not path.is_file():
            known = ", ".join(PROFILES)
            raise ValueError(f"fault profile {name_or_path!r} is neither a known profile ({known}) nor a file")
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a fault profile maps fault names to rates")
        rates = {}
        for key, value in data.items():
            if key not in FAULTS:
                raise ValueError(f"{path}: unknown fault {key!r}; known: {', '.join(FAULTS)}")
            if not isinstance(value, int | float) or not 0 <= value < 1:
                raise ValueError(f"{path}: rate of {key} must be a number in [0, 1), got {value!r}")
            rates[key] = float(value)
    full = {name: float(rates.get(name, 0.0)) for name in FAULTS}
    if sum(full.values()) >= 1:
        raise ValueError(f"fault rates of {name_or_path!r} add up to {sum(full.values()):.3f}; they must stay below 1")
    return full
