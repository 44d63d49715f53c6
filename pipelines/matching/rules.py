"""Rule files: how one channel's records match ours (SPEC section 5).

A rule file is data reviewed like code: `rules/<channel>.yaml`. It is loaded through a typed schema
with a closed vocabulary (unknown keys are errors, values are checked), and an invalid file fails
with its path, the line of the offending key and the reason. Both engines take the same `Rule`
object: the T+1 engine compiles it to DuckDB SQL, the stream matcher to a plain decision function.
Nothing is ever `eval`-ed.
"""

from __future__ import annotations

from datetime import time
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipelines.money import check_currency, contracted_fee
from pipelines.records import BizType, PaymentStatus

RULES_DIR = Path(__file__).resolve().parents[2] / "rules"


class RuleError(ValueError):
    """An invalid rule file: `path`, `line` (1-based, 0 when unknown), `key` and the reason."""

    def __init__(self, path: Path | str, line: int, key: str, reason: str) -> None:
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {key}: {reason}")
        self.path, self.line, self.key, self.reason = str(path), line, key, reason


class MatchKey(StrEnum):
    CHANNEL_TXN_ID = "channel_txn_id"  # the channel's own transaction id, when our record knows it
    PAYMENT_ID = "payment_id"  # our id echoed back by the channel as merchant reference
    AMOUNT_TIME = "amount_time"  # same signed amount within `amount_time_window_s`; ties are AMBIGUOUS


class Strategy(StrEnum):
    ONE_TO_ONE = "one_to_one"
    ONE_TO_MANY = "one_to_many"  # one order, several channel lines (partial refunds, split settlement)
    MANY_TO_ONE = "many_to_one"  # several orders, one aggregated channel line


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeeRate(_Strict):
    """A contracted fee: `rate_ppm` parts per million of the principal, rounded half up, clamped."""

    biz_type: BizType
    rate_ppm: int = Field(ge=0, le=1_000_000)
    fixed_minor: int = Field(default=0, ge=0)
    min_minor: int = Field(default=0, ge=0)
    max_minor: int | None = Field(default=None, ge=0)


class Fees(_Strict):
    # gross: the file's gross is compared with our amount and the fee checked on its own line;
    # net: the channel reports only net, and our amount minus the contracted fee is compared with it.
    basis: Literal["gross", "net"] = "gross"
    contracted: tuple[FeeRate, ...] = ()
    tolerance_minor: int = Field(default=0, ge=0)

    def rate_for(self, biz_type: BizType) -> FeeRate | None:
        for rate in self.contracted:
            if rate.biz_type == biz_type:
                return rate
        return None

    def expected_fee(self, biz_type: BizType, amount_minor: int) -> int:
        """The contracted fee in minor units for one of our records (0 where no rate is contracted)."""
        rate = self.rate_for(biz_type)
        if rate is None:
            return 0
        return contracted_fee(
            amount_minor,
            rate.rate_ppm,
            fixed_minor=rate.fixed_minor,
            min_minor=rate.min_minor,
            max_minor=rate.max_minor,
        )


class CarryForward(_Strict):
    # Records of ours completed after `cutoff` (the channel's local clock, `timezone`) may settle in
    # the next file(s): they are pending, not breaks, for up to `window_days` business days.
    cutoff: time = time(23, 50)
    window_days: int = Field(default=1, ge=0, le=31)


class Rule(_Strict):
    rule_id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    version: int = Field(ge=1)
    channel: str = Field(pattern=r"^[a-z0-9_]+$")
    parser: str = Field(pattern=r"^[a-z0-9_]+$")
    account: str
    currency: str
    timezone: str = "UTC"
    match_keys: tuple[MatchKey, ...] = (MatchKey.CHANNEL_TXN_ID, MatchKey.PAYMENT_ID, MatchKey.AMOUNT_TIME)
    amount_tolerance_minor: int = Field(default=0, ge=0)
    amount_time_window_s: int = Field(default=600, ge=0)
    # None: the channel sends no callbacks (a bank account); the stream matcher does not watch it.
    callback_window_s: int | None = Field(default=300, gt=0)
    carry_forward: CarryForward = CarryForward()
    status_map: dict[str, PaymentStatus]
    fees: Fees = Fees()
    strategy: Strategy = Strategy.ONE_TO_ONE
    approval_threshold_minor: int = Field(ge=0)
    description: str = ""

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        return check_currency(value)

    @field_validator("match_keys")
    @classmethod
    def _keys(cls, value: tuple[MatchKey, ...]) -> tuple[MatchKey, ...]:
        if not value:
            raise ValueError("at least one match key is needed")
        if len(set(value)) != len(value):
            raise ValueError("a match key is listed twice")
        return value

    @model_validator(mode="after")
    def _relations(self) -> Rule:
        if not self.status_map:
            raise ValueError("status_map must map at least one channel status")
        return self

    @property
    def ref(self) -> str:
        """What every break records: the rule id and version, e.g. `alipay-cny@3`."""
        return f"{self.rule_id}@{self.version}"

    def map_status(self, channel_status: str) -> PaymentStatus:
        """Normalise a raw channel status; an unknown code is an error, never a guess."""
        try:
            return self.status_map[channel_status]
        except KeyError:
            raise KeyError(f"rule {self.ref}: unknown channel status {channel_status!r}") from None


def _key_lines(node: yaml.Node, prefix: str = "") -> dict[str, int]:
    """Map dotted key paths to 1-based line numbers in the YAML source."""
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
            lines[path] = key_node.start_mark.line + 1
            lines.update(_key_lines(value_node, path))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            path = f"{prefix}.{i}"
            lines[path] = item.start_mark.line + 1
            lines.update(_key_lines(item, path))
    return lines


def _unreadable_scalar(node: yaml.Node, prefix: str = "") -> tuple[str, int] | None:
    """The key path and 1-based line of the first plain scalar under `node` that YAML cannot
    construct (a date like `2026-13-45`), or None."""
    if isinstance(node, yaml.ScalarNode):
        try:
            yaml.safe_load(node.value) if node.style is None else None
        except (yaml.YAMLError, ValueError):
            return prefix or "<root>", node.start_mark.line + 1
        return None
    children: list[tuple[str, yaml.Node]] = []
    if isinstance(node, yaml.MappingNode):
        children = [(f"{prefix}.{k.value}" if prefix else str(k.value), v) for k, v in node.value]
    elif isinstance(node, yaml.SequenceNode):
        children = [(f"{prefix}.{i}" if prefix else str(i), item) for i, item in enumerate(node.value)]
    for path, child in children:
        found = _unreadable_scalar(child, path)
        if found is not None:
            return found
    return None


def parse_rule(text: str, path: Path | str = "<rule>") -> Rule:
    """Parse and validate one rule file's text; raise RuleError naming the line and key."""
    node: yaml.Node | None = None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise RuleError(path, (mark.line + 1) if mark else 0, "<yaml>", str(exc)) from None
    except ValueError as exc:
        # A plain scalar that YAML reads as a date or time that does not exist (`2026-13-45`).
        key, line = (_unreadable_scalar(node) if node is not None else None) or ("<yaml>", 0)
        raise RuleError(path, line, key, f"not a valid value: {exc}") from None
    if not isinstance(data, dict):
        raise RuleError(path, 1, "<root>", "a rule file is a mapping of keys to values")
    lines = _key_lines(node) if node is not None else {}
    try:
        return Rule.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "<root>"
        # For an unknown key or a bad value the deepest known path names the line.
        line = 0
        parts = [str(p) for p in err["loc"]]
        while parts and not line:
            line = lines.get(".".join(parts), 0)
            parts.pop()
        reason = "unknown key (not in the rule vocabulary)" if err["type"] == "extra_forbidden" else err["msg"]
        raise RuleError(path, line, key, reason) from None


def load_rule_file(path: Path | str) -> Rule:
    path = Path(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RuleError(path, line, "<encoding>", f"not UTF-8 at byte {exc.start}") from None
    rule = parse_rule(text, path)
    if path.stem != rule.channel:
        raise RuleError(path, 0, "channel", f"file {path.name} must be named after its channel {rule.channel!r}")
    return rule


@cache
def load_rules(rules_dir: Path | str = RULES_DIR) -> dict[str, Rule]:
    """All rule files of a folder, by channel; the first invalid one raises RuleError."""
    rules: dict[str, Rule] = {}
    for path in sorted(Path(rules_dir).glob("*.yaml")):
        rule = load_rule_file(path)
        rules[rule.channel] = rule
    if not rules:
        raise RuleError(rules_dir, 0, "<folder>", "no rule files (*.yaml) found")
    return rules


def rule_for(channel: str, rules_dir: Path | str = RULES_DIR) -> Rule:
    rules = load_rules(rules_dir)
    try:
        return rules[channel]
    except KeyError:
        raise RuleError(rules_dir, 0, channel, f"no rule file for channel {channel!r}") from None
