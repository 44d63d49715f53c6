"""Statement and settlement file formats: one module per native format.

Each format module registers a `StatementFormat` with:
- `parse(path, channel=..., business_date=..., controls="enforce") -> ParsedFile`: every line of
  the file as a `StatementLine`, after checking the file's own control totals. A bad file raises
  `StatementError` naming the file, the line and the reason; nothing is returned half-parsed.
  With `controls="report"` a disagreement between the file's own totals and its lines
  (`balance_mismatch`, `control_total_mismatch`) is listed in `ParsedFile.controls["mismatches"]`
  instead of raised, and `controls["ok"]` is False; every other defect still raises.
- `write(lines, directory, rule=..., business_date=...) -> list[Path]` (optional): renders lines in
  the native format; the simulator uses it so the T+1 path runs on real formats end to end.
- `sniff(head: bytes, name: str) -> bool` (optional): format detection for `payrecon parse`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import polars as pl

from pipelines.records import STATEMENT_LINE_COLUMNS, LineType, StatementLine

if TYPE_CHECKING:
    from pipelines.matching.rules import Rule


class StatementError(ValueError):
    """A file that must be refused whole: `path`, `line` (1-based, 0 for the whole file), `reason`
    (a short code such as `control_total_mismatch`) and a human `detail`."""

    def __init__(self, path: Path | str, line: int, reason: str, detail: str) -> None:
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {reason}: {detail}")
        self.path, self.line, self.reason, self.detail = str(path), line, reason, detail


# The columns and explicit types of a table of statement lines; amounts are Int64 minor units,
# never inferred. Every parser returns exactly this schema, in this order.
LINE_SCHEMA: dict[str, pl.DataType] = {
    "channel": pl.String(),
    "account": pl.String(),
    "business_date": pl.Date(),
    "source_file": pl.String(),
    "source_sha256": pl.String(),
    "line_no": pl.Int64(),
    "line_type": pl.String(),
    "channel_txn_id": pl.String(),
    "payment_id": pl.String(),
    "gross_minor": pl.Int64(),
    "fee_minor": pl.Int64(),
    "net_minor": pl.Int64(),
    "currency": pl.String(),
    "booked_at": pl.Datetime("us", "UTC"),
    "value_date": pl.Date(),
    "raw": pl.String(),
}
assert tuple(LINE_SCHEMA) == STATEMENT_LINE_COLUMNS


def lines_to_frame(lines: Sequence[StatementLine]) -> pl.DataFrame:
    """StatementLine objects to a typed frame (for parsers that build lines one by one)."""
    rows = {name: [getattr(line, name) for line in lines] for name in LINE_SCHEMA}
    rows["line_type"] = [str(v) for v in rows["line_type"]]
    return pl.DataFrame(rows, schema=LINE_SCHEMA)


def frame_to_lines(frame: pl.DataFrame) -> list[StatementLine]:
    return [
        StatementLine(**{**row, "line_type": LineType(row["line_type"])})
        for row in frame.select(list(LINE_SCHEMA)).iter_rows(named=True)
    ]


@dataclass
class ParsedFile:
    """One parsed file: its lines as a typed frame (LINE_SCHEMA) and what its control totals said."""

    path: Path
    sha256: str
    format: str
    frame: pl.DataFrame
    # What the file's own control totals said and whether they held, for the parse summary.
    controls: dict[str, object] = field(default_factory=dict)

    @property
    def lines(self) -> list[StatementLine]:
        return frame_to_lines(self.frame)


class Parser(Protocol):
    def __call__(
        self,
        path: Path,
        *,
        channel: str,
        business_date: date | None = None,
        controls: Literal["enforce", "report"] = "enforce",
    ) -> ParsedFile: ...


class Writer(Protocol):
    def __call__(
        self, lines: Sequence[StatementLine], directory: Path, *, rule: Rule, business_date: date
    ) -> list[Path]: ...


@dataclass(frozen=True)
class StatementFormat:
    name: str
    parse: Parser
    write: Writer | None = None
    sniff: Callable[[bytes, str], bool] | None = None
    description: str = ""


FORMATS: dict[str, StatementFormat] = {}


def register(fmt: StatementFormat) -> StatementFormat:
    assert fmt.name not in FORMATS, f"format {fmt.name} registered twice"
    FORMATS[fmt.name] = fmt
    return fmt


def get_format(name: str) -> StatementFormat:
    _load_all()
    try:
        return FORMATS[name]
    except KeyError:
        known = ", ".join(sorted(FORMATS))
        raise KeyError(f"unknown statement format {name!r}; known: {known}") from None


def _load_all() -> None:
    # Importing a format module registers it. Listed here so one place names every format.
    import importlib

    for module in _FORMAT_MODULES:
        importlib.import_module(f"connectors.statements.{module}")


_FORMAT_MODULES: list[str] = [
    "payrecon_csv", "wechatpay", "alipay", "stripe", "camt053", "camt054", "mt940", "mt942", "bai2", "ofx",
    "adyen", "paypal_stl",
]  # fmt: skip


# Sniffing order: the most specific signatures first (a camt.054 is also XML; an MT942 also has :20:).
_SNIFF_ORDER: tuple[str, ...] = (
    "camt054", "camt053", "mt942", "mt940", "bai2", "wechatpay", "alipay", "stripe", "adyen",
    "paypal_stl", "ofx", "payrecon_csv",
)  # fmt: skip


def detect_format(path: Path) -> str:
    """The name of the format `path` is in, from its first 64 KiB and its name; StatementError
    `unknown_format` when no format recognises it."""
    _load_all()
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    names = [n for n in _SNIFF_ORDER if n in FORMATS] + [n for n in FORMATS if n not in _SNIFF_ORDER]
    for name in names:
        sniff = FORMATS[name].sniff
        if sniff is not None and sniff(head, Path(path).name):
            return name
    raise StatementError(path, 0, "unknown_format", f"not one of {', '.join(sorted(FORMATS))}; name it with --format")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def changed_since(path: Path, before: os.stat_result) -> bool:
    """Whether the file at `path` is no longer the one `before` described (size, modification
    time, inode): written to, replaced or removed while it was being read."""
    try:
        after = os.stat(path)
    except FileNotFoundError:
        return True
    return (after.st_size, after.st_mtime_ns, after.st_ino) != (before.st_size, before.st_mtime_ns, before.st_ino)
