"""Damaged files of every format with a writer: a parse either reads the file or refuses it with a
StatementError (the file, a line, a reason). Any other exception would stop a day's run instead
of quarantining the one file."""

from __future__ import annotations

import gzip
import io
import tempfile
import zipfile
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from damaged_files import damage, fuzz_settings
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from connectors.statements import StatementError, get_format
from pipelines.matching.rules import RULES_DIR, Rule, rule_for
from pipelines.money import format_amount
from pipelines.records import LineType, StatementLine

DAY = date(2026, 11, 2)
BENCH_RULES = Path(__file__).parents[2] / "bench" / "rules"
# format -> (channel, its rules folder)
CHANNELS = {
    "adyen": ("adyen", RULES_DIR),
    "alipay": ("alipay", RULES_DIR),
    "camt053": ("jpbank", RULES_DIR),
    "paypal_stl": ("paypal", RULES_DIR),
    "stripe": ("stripe", RULES_DIR),
    "wechatpay": ("wechatpay", RULES_DIR),
    "payrecon_csv": ("cardusd", BENCH_RULES),
}


def _lines(rule: Rule) -> list[StatementLine]:
    types = [LineType.PAYMENT, LineType.REFUND, LineType.PAYMENT, LineType.PAYOUT]
    out = []
    for i, lt in enumerate(types):
        gross = 12_345 * (i + 1) * (1 if lt == LineType.PAYMENT else -1)
        fee = 37 if lt == LineType.PAYMENT else 0
        booked = datetime(2026, 11, 2, 1, tzinfo=UTC) + timedelta(minutes=7 * i)
        out.append(StatementLine(rule.channel, "", DAY, "", "", i, lt, f"TX{i:04d}", f"P{i:04d}", gross, fee,
                                 gross - fee, rule.currency, booked, DAY, next(iter(rule.status_map))))  # fmt: skip
    return out


@pytest.mark.parametrize("fmt", sorted(CHANNELS))
@fuzz_settings(120, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_damaged_file_is_read_or_refused_never_a_crash(fmt: str, data: st.DataObject) -> None:
    channel, rules_dir = CHANNELS[fmt]
    rule = rule_for(channel, rules_dir)
    write = get_format(fmt).write
    assert write is not None
    with tempfile.TemporaryDirectory() as tmp:
        (written,) = write(_lines(rule), Path(tmp) / "clean", rule=rule, business_date=DAY)[:1]
        # Compressed formats (Alipay's zip, WeChat Pay's gzip) are damaged as the bytes that arrive.
        damaged = Path(tmp) / written.name
        damaged.write_bytes(data.draw(damage(written.read_bytes())))
        try:
            get_format(fmt).parse(damaged, channel=channel, business_date=DAY)
        except StatementError as exc:
            assert exc.reason and exc.line >= 0 and exc.path == str(damaged), exc


FIXTURES = Path(__file__).parent / "fixtures"
# Real files written by others (their licences beside them in shared/fixtures), one per format.
FIXTURE_FILES = sorted(p for p in FIXTURES.glob("*/*") if p.is_file() and not p.name.endswith((".md", ".txt")))


@pytest.mark.parametrize("source", FIXTURE_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
@fuzz_settings(80, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_damaged_real_file_is_read_or_refused_never_a_crash(source: Path, data: st.DataObject) -> None:
    """The same for the formats without a writer (BAI2, MT940/942, OFX, camt.054) and every other
    fixture: real files written by others, damaged."""
    fmt = source.parent.name
    with tempfile.TemporaryDirectory() as tmp:
        damaged = Path(tmp) / source.name
        damaged.write_bytes(data.draw(damage(source.read_bytes())))
        try:
            get_format(fmt).parse(damaged, channel="bank")
        except StatementError as exc:
            assert exc.reason and exc.line >= 0 and exc.path == str(damaged), exc


def test_a_count_is_ascii_digits_only() -> None:
    """`str.isdigit()` accepts '²' (int() refuses it: a PayPal footer `4²` crashed the parser) and
    '٣' (int() reads it as 3); counts in files are ASCII digits or refused."""
    from connectors.statements._common import whole_number

    assert [whole_number(t) for t in ("0", "42", "4²", "٣", "", " 4", "-1", "4\x1c")] == [
        0, 42, None, None, None, None, None, None,
    ]  # fmt: skip


def _rewrite_text(path: Path, change: Callable[[str], str]) -> None:
    """Apply `change` to the text a written file holds (inside its gzip or zip, in its encoding)."""

    def changed(raw: bytes) -> bytes:
        for encoding in ("utf-8", "gbk"):
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError:
                continue
            return change(text).encode(encoding)
        raise AssertionError(f"{path.name}: neither UTF-8 nor GBK")

    data = path.read_bytes()
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(changed(gzip.decompress(data))))
    elif path.name.endswith(".zip"):
        out = io.BytesIO()
        with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
            for info in src.infolist():
                dst.writestr(info, changed(src.read(info)))
        path.write_bytes(out.getvalue())
    else:
        path.write_bytes(changed(data))


# Fullwidth digits (as Chinese spreadsheets write them) and Arabic-Indic ones, in every format
# whose encoding has them (GBK, Alipay's, has no Arabic-Indic digits).
OTHER_DIGITS = [(fmt, digit) for fmt in sorted(CHANNELS) for digit in ("１", "١") if fmt != "alipay" or digit == "１"]


@pytest.mark.parametrize(("fmt", "digit"), OTHER_DIGITS)
def test_an_amount_in_other_digits_refuses_the_file(tmp_path: Path, fmt: str, digit: str) -> None:
    """The first line's gross (123.45, or 12345 where the file writes minor units or the currency
    has no decimals; no other amount of the file has those digits) with its first digit written in
    another script: int() would read it and
    a regex's \\d match it, and the column parsers made such a cell a null amount, loaded."""
    channel, rules_dir = CHANNELS[fmt]
    rule = rule_for(channel, rules_dir)
    write = get_format(fmt).write
    assert write is not None
    (path,) = write(_lines(rule), tmp_path, rule=rule, business_date=DAY)[:1]
    done: list[str] = []

    def change(text: str) -> str:
        for amount in (format_amount(12_345, rule.currency), "12345"):
            if not done and amount in text:
                done.append(amount)
                return text.replace(amount, digit + amount[1:])  # every column that holds it
        return text

    _rewrite_text(path, change)
    assert done, f"no amount 123.45 or 12345 in the {fmt} file"
    with pytest.raises(StatementError) as err:
        get_format(fmt).parse(path, channel=channel, business_date=DAY)
    assert err.value.line >= 1 and err.value.reason, err.value
