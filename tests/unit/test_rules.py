"""Rule files: typed, closed vocabulary, errors that name the file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest
from damaged_files import damage, fuzz_settings
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from pipelines.matching.rules import RULES_DIR, RuleError, load_rule_file, load_rules, parse_rule
from pipelines.records import BizType, PaymentStatus

ALIPAY = (RULES_DIR / "alipay.yaml").read_text(encoding="utf-8")


def test_every_committed_rule_file_loads() -> None:
    rules = load_rules()
    assert {"alipay", "wechatpay", "stripe", "jpbank"} <= set(rules)
    for channel, rule in rules.items():
        assert rule.channel == channel and rule.version >= 1
        assert PaymentStatus.SUCCEEDED in rule.status_map.values()
    assert rules["jpbank"].callback_window_s is None  # a bank sends no callbacks


def _line_of(text: str, key: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if line.lstrip().startswith(key))


@pytest.mark.parametrize(
    ("old", "new", "key", "reason_part"),
    [
        ("strategy:", "stratgy:", "stratgy", "unknown key"),
        ("strategy: one_to_many", "strategy: best_guess", "strategy", "one_to_one"),
        ("currency: CNY", "currency: CNX", "currency", "ISO 4217"),
        ("amount_tolerance_minor: 0", "amount_tolerance_minor: -1", "amount_tolerance_minor", "greater than"),
        ("amount_tolerance_minor: 0", "amount_tolerance_minor: 0.5", "amount_tolerance_minor", "integer"),
        ("TRADE_CLOSED: CLOSED", "TRADE_CLOSED: GONE", "status_map.TRADE_CLOSED", "CREATED"),
        # Inside lists: a key of the second contracted rate, and the rate itself not a mapping.
        (
            "- {biz_type: TOPUP, rate_ppm: 6000}",
            "- {biz_type: TOPUPS, rate_ppm: 6000}",
            "fees.contracted.1.biz_type",
            "PAY",
        ),
        ("- {biz_type: TOPUP, rate_ppm: 6000}", "- 6000", "fees.contracted.1", "dictionary"),
    ],
)
def test_invalid_rule_names_path_line_and_key(old: str, new: str, key: str, reason_part: str) -> None:
    text = ALIPAY.replace(old, new)
    assert text != ALIPAY
    with pytest.raises(RuleError) as err:
        parse_rule(text, "rules/alipay.yaml")
    e = err.value
    assert e.path == "rules/alipay.yaml" and e.key == key
    assert e.line == _line_of(text, new)
    assert reason_part in e.reason
    assert str(e).startswith(f"rules/alipay.yaml:{e.line}: {key}:")


def test_file_must_be_named_after_its_channel(tmp_path: Path) -> None:
    path = tmp_path / "other.yaml"
    path.write_text(ALIPAY, encoding="utf-8")
    with pytest.raises(RuleError, match="named after its channel"):
        load_rule_file(path)


def test_yaml_syntax_error_has_a_line() -> None:
    with pytest.raises(RuleError) as err:
        parse_rule("rule_id: x\nversion: [1\n", "bad.yaml")
    assert err.value.line >= 2


def test_expected_fee_follows_the_contract() -> None:
    rules = load_rules()
    assert rules["stripe"].fees.expected_fee(BizType.PAY, 10000) == 290 + 30
    assert rules["alipay"].fees.expected_fee(BizType.WITHDRAW, 1) == 10  # minimum
    assert rules["alipay"].fees.expected_fee(BizType.WITHDRAW, 10**9) == 2500  # maximum
    assert rules["alipay"].fees.expected_fee(BizType.REFUND, 10000) == 0  # not contracted


def test_a_date_that_does_not_exist_names_its_key_and_line() -> None:
    """YAML reads `2026-13-45` as a date and raises ValueError, which used to escape the loader."""
    text = ALIPAY.replace("rule_id: alipay-cny", "rule_id: 2026-13-45")
    assert text != ALIPAY
    with pytest.raises(RuleError) as err:
        parse_rule(text, "rules/alipay.yaml")
    assert (err.value.key, err.value.line) == ("rule_id", _line_of(text, "rule_id"))


def test_a_rule_file_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "alipay.yaml"
    path.write_bytes(ALIPAY.encode("utf-8").replace(b"rule_id: alipay-cny", b"rule_id: \xff"))
    with pytest.raises(RuleError) as err:
        load_rule_file(path)
    assert (err.value.key, err.value.line) == ("<encoding>", _line_of(ALIPAY, "rule_id"))


@fuzz_settings(200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_damaged_rule_file_is_refused_as_rule_error_never_a_crash(tmp_path: Path, data: st.DataObject) -> None:
    path = tmp_path / "alipay.yaml"
    path.write_bytes(data.draw(damage(ALIPAY.encode("utf-8"))))
    try:
        load_rule_file(path)
    except RuleError as exc:
        assert exc.line >= 0 and exc.key
