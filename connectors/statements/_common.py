"""What every statement parser shares: bounded reading, strict decoding, archive guards, typed columns.

Each parser reads a file whole, checks it, and only then builds its frame, so a defect anywhere
refuses the file with a `StatementError(path, line, reason, detail)` and nothing half-parsed escapes.
The reason codes are a closed set (`REASONS`), so the quarantine, the tests and the operator all
speak of the same defect by the same name.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import gzip
import io
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Literal

import polars as pl

from connectors.statements import LINE_SCHEMA, StatementError
from pipelines.money import MoneyError, exponent
from pipelines.money_frame import parse_amount_column
from pipelines.records import LineType

# Every reason a statement file can be refused for. A parser that needs a new one adds it here, so
# the list stays the one place an operator reads to learn what can go wrong with a file.
REASONS: frozenset[str] = frozenset(
    {
        "empty_file",  # no bytes, or only whitespace
        "header_only",  # a header and nothing after it: no lines, no control totals
        "truncated",  # the file ends before its trailer/summary/closing tag
        "encoding",  # bytes that are not valid in the format's declared encoding
        "bom",  # a byte order mark where the format has none
        "bad_header",  # the column header is not the format's
        "bad_record",  # a line or element that does not follow the format's grammar
        "missing_field",  # a required field is absent or empty
        "bad_line_type",  # a transaction type the format does not define
        "bad_timestamp",  # a date or time that does not parse
        "malformed_amount",  # an amount that is not a plain decimal
        "empty_amount",
        "thousands_separator",  # "1,234.00": refused, never guessed
        "too_many_decimals",  # more fraction digits than the currency has: never rounded
        "inexact_fee",  # a sub-minor-unit fee (WeChat's 5 decimals) that is not whole minor units
        "overflow",  # an amount beyond signed 64 bits
        "not_a_number",
        "exponent_notation",
        "unknown_currency",
        "mixed_currency",  # a single-currency file holding another currency
        "net_mismatch",  # gross - fee != net on one line
        "control_total_mismatch",  # the file's own totals or counts disagree with its lines
        "balance_mismatch",  # opening balance + entries != closing balance
        "duplicate_file",  # the same bytes (sha256) were already taken in
        "zip_bomb",  # an archive whose declared or actual expansion exceeds the limit
        "bad_archive",  # a zip/gzip that cannot be opened, or holds the wrong members
        "bad_xml",  # not well-formed XML, or a DTD/entity declaration (refused outright)
        "unknown_format",  # `payrecon parse` could not tell which format a file is in
        "parser_error",  # the parser failed in a way it does not name (a bug of ours): refused all the same
    }
)

# Limits, unit last. A statement file of a day is at most a few GB uncompressed (10M lines of ~250
# bytes); anything beyond is refused before it can exhaust memory.
file_bytes_max = 8 * 1024**3
archive_expanded_bytes_max = 8 * 1024**3
# A real bill compresses 5-20x; 200x is the mark of a bomb, refused before inflating it further.
archive_ratio_max = 200
read_chunk_bytes = 1 << 20
assert archive_expanded_bytes_max <= file_bytes_max


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause CPython's cyclic garbage collector for a parse that builds many small objects (an XML
    tree: 28 elements per camt.053 entry). Every few hundred allocations the collector scans the
    objects built so far, which made the camt.053 reader 1.7x slower; a parse makes no reference
    cycles worth collecting, and what it leaves is collected as usual once it returns."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def refuse(path: Path | str, line: int, reason: str, detail: str) -> StatementError:
    """A StatementError with a reason from the closed set (an unknown reason is a bug)."""
    assert reason in REASONS, f"unknown refusal reason {reason!r}"
    return StatementError(path, line, reason, detail)


# What a parser does when the file's own control totals (balances, record counts, trailer and
# summary sums) disagree with its lines: `enforce` refuses the file, as a reconciliation must;
# `report` returns every line and lists each disagreement, for an operator inspecting a file whose
# totals are known to be wrong (anonymised samples, a bank's broken export). Every other defect is
# refused under both.
ControlPolicy = Literal["enforce", "report"]
CONTROL_POLICIES: tuple[ControlPolicy, ...] = ("enforce", "report")
# The only reasons `report` may record instead of raising; everything else in REASONS always refuses.
CONTROL_REASONS: frozenset[str] = frozenset({"control_total_mismatch", "balance_mismatch"})


class ControlCheck:
    """One file's control-total verdicts under a policy.

    `disagree(line, reason, detail)` raises the StatementError under `enforce` and records it under
    `report`; `summary(facts)` is the `ParsedFile.controls` dict: the file's declared figures plus
    `ok` (no disagreement) and, under `report`, `mismatches` (dicts of line, reason, detail)."""

    def __init__(self, path: Path | str, policy: ControlPolicy = "enforce") -> None:
        assert policy in CONTROL_POLICIES, f"unknown control policy {policy!r}"
        self.path, self.policy = path, policy
        self.mismatches: list[dict[str, object]] = []

    def disagree(self, line: int, reason: str, detail: str) -> None:
        assert reason in CONTROL_REASONS, f"{reason!r} is not a control-total reason; refuse it instead"
        if self.policy == "enforce":
            raise refuse(self.path, line, reason, detail)
        self.mismatches.append({"line": line, "reason": reason, "detail": detail})

    def summary(self, facts: Mapping[str, object]) -> dict[str, object]:
        out: dict[str, object] = {**facts, "ok": not self.mismatches}
        if self.policy == "report":
            # Only under `report`, so `enforce` output stays what it always was.
            out["mismatches"] = list(self.mismatches)
        return out


def read_bytes(path: Path) -> bytes:
    """The whole file, refused when empty or larger than `file_bytes_max`."""
    size = path.stat().st_size
    if size > file_bytes_max:
        raise refuse(path, 0, "zip_bomb", f"{size} bytes exceeds the {file_bytes_max}-byte limit for one file")
    data = path.read_bytes()
    if not data.strip():
        raise refuse(path, 0, "empty_file", "the file is empty")
    return data


def line_of_offset(data: bytes | str, offset: int) -> int:
    """The 1-based line number of a byte (or character) offset."""
    newline: bytes | str = b"\n" if isinstance(data, bytes) else "\n"
    return data[:offset].count(newline) + 1  # type: ignore[arg-type]


def decode(path: Path, data: bytes, encoding: str, *, allow_bom: bool = False) -> str:
    """Decode strictly; a byte that is not valid `encoding` refuses the file at its line.

    A UTF-8 byte order mark is refused (`bom`) unless `allow_bom`: the SPEC lists it as a defect of
    the CSV formats, where it would glue itself to the first column name. CRLF becomes LF.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        if not allow_bom:
            raise refuse(path, 1, "bom", "the file starts with a UTF-8 byte order mark; this format has none")
        data = data[3:]
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise refuse(
            path, line_of_offset(data, exc.start), "encoding", f"byte {exc.start} is not valid {encoding}: {exc.reason}"
        ) from None
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    return text


def gunzip(path: Path, data: bytes) -> bytes:
    """Inflate a gzip member with bounded memory: stops at `archive_expanded_bytes_max` or the ratio."""
    limit = min(archive_expanded_bytes_max, max(len(data), 1 << 16) * archive_ratio_max)
    out = io.BytesIO()
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as fh:
            while chunk := fh.read(read_chunk_bytes):
                if out.tell() + len(chunk) > limit:
                    raise refuse(path, 0, "zip_bomb", f"gzip expands beyond {limit} bytes ({len(data)} compressed)")
                out.write(chunk)
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise refuse(path, 0, "bad_archive", f"not a readable gzip file: {exc}") from None
    return out.getvalue()


# What zipfile raises for a damaged archive: besides BadZipFile, a directory whose offsets point
# outside the file gives ValueError ("negative seek value"), damaged deflate data zlib.error, an
# unknown method NotImplementedError, an encrypted member RuntimeError.
_ZIP_ERRORS = (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error, NotImplementedError, RuntimeError)


def unzip_member(
    path: Path, data: bytes, *, suffix: str = ".csv", prefer: Callable[[str], bool] | None = None
) -> tuple[str, bytes]:
    """Extract the one member ending in `suffix` (or, among several, the one `prefer` picks by
    name) with bounded memory. The declared size is checked before reading and the actual size
    while streaming, since a crafted archive can lie in its directory.
    """
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except _ZIP_ERRORS as exc:
        raise refuse(path, 0, "bad_archive", f"not a readable zip file: {exc}") from None
    with zf:
        for info in zf.infolist():
            # Without the UTF-8 flag, zipfile decodes names as cp437; Chinese tools write GBK names.
            if not info.flag_bits & 0x800:
                with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
                    info.filename = info.filename.encode("cp437").decode("gbk")
        members = [i for i in zf.infolist() if i.filename.endswith(suffix) and not i.is_dir()]
        if prefer is not None and len(members) > 1:
            members = [i for i in members if prefer(i.filename)] or members
        if len(members) != 1:
            names = [i.filename for i in zf.infolist()]
            raise refuse(path, 0, "bad_archive", f"expected one {suffix} member, found {names}")
        info = members[0]
        limit = min(archive_expanded_bytes_max, max(len(data), 1 << 16) * archive_ratio_max)
        if info.file_size > limit:
            raise refuse(path, 0, "zip_bomb", f"{info.filename} declares {info.file_size} bytes; the limit is {limit}")
        out = io.BytesIO()
        try:
            with zf.open(info) as fh:
                while chunk := fh.read(read_chunk_bytes):
                    if out.tell() + len(chunk) > limit:
                        raise refuse(path, 0, "zip_bomb", f"{info.filename} expands beyond {limit} bytes")
                    out.write(chunk)
        except StatementError:
            raise  # the bomb refused above (a ValueError too)
        except _ZIP_ERRORS as exc:
            raise refuse(path, 0, "bad_archive", f"{info.filename}: {exc}") from None
    return info.filename, out.getvalue()


def whole_number(text: str) -> int | None:
    """`text` as a non-negative integer when it is ASCII digits only, else None. Not
    `str.isdigit()` alone: it also accepts digits int() refuses ('²') or reads ('٣')."""
    return int(text) if text.isascii() and text.isdigit() else None


def csv_fields(path: Path, line: int, text: str) -> list[str]:
    """The fields of one CSV line of `path` (its line number `line`); a line the csv module cannot
    read (a carriage return inside a field, a stray quote) refuses the file as `bad_record` there."""
    try:
        return next(csv.reader([text]), [])
    except csv.Error as exc:
        raise refuse(path, line, "bad_record", f"not a CSV line: {exc}") from None


def split_lines(text: str) -> pl.Series:
    """The lines of `text` as a String series (no trailing empty line), split natively by Polars."""
    body = text[:-1] if text.endswith("\n") else text
    return pl.Series("line", [body], dtype=pl.String).str.split("\n").explode()


def split_fields(lines: pl.Series, n_fields: int, first_line_no: int, path: Path, sep: str = ",") -> pl.DataFrame:
    """Split unquoted separated lines into `n_fields` String columns `f0..`; a line with another
    field count refuses the file at that line (`truncated` when short, `bad_record` when long).
    The count is checked per line first, then Polars' native reader splits the fields."""
    counts = lines.str.count_matches(sep, literal=True) + 1
    bad = (counts != n_fields).arg_true()
    if len(bad):
        i = int(bad[0])
        raise refuse(
            path,
            first_line_no + i,
            # Fewer fields: the line ends early (cut off); more: it does not follow the layout.
            "truncated" if counts[i] < n_fields else "bad_record",
            f"{counts[i]} fields where the layout has {n_fields}",
        )
    names = [f"f{i}" for i in range(n_fields)]
    if len(lines) == 0:
        return pl.DataFrame(schema=dict.fromkeys(names, pl.String()))
    body = (lines.str.join("\n")[0] + "\n").encode("utf-8")
    return pl.read_csv(
        io.BytesIO(body),
        has_header=False,
        separator=sep,
        quote_char=None,
        schema=dict.fromkeys(names, pl.String()),
        empty_string_is_null=False,
    )


def check_quoted_field_counts(path: Path, lines: pl.Series, line_nos: pl.Series, n_fields: int) -> None:
    """Refuse the first of `lines` (CSV with double-quoted fields, quotes doubled inside) whose field
    count is not `n_fields`: `truncated` when short, `bad_record` when long. Polars' reader pads a
    short row with empty strings, so a row cut off at a field boundary would otherwise pass."""
    # A doubled quote inside a field splits it into two adjacent quoted runs; both are removed alike.
    unquoted = lines.str.replace_all(r'"[^"]*"', "")
    counts = unquoted.str.count_matches(",", literal=True) + 1
    bad = (counts != n_fields).arg_true()
    if len(bad):
        i = int(bad[0])
        raise refuse(
            path,
            int(line_nos[i]),
            "truncated" if counts[i] < n_fields else "bad_record",
            f"{counts[i]} fields where the header has {n_fields}",
        )


def amounts(
    path: Path,
    values: pl.Series,
    line_nos: pl.Series,
    currency: str,
    channel: str | None,
    column: str,
    *,
    exp: int | None = None,
    allow_empty: bool = False,
) -> pl.Series:
    """Parse a String column of major-unit amounts into Int64 minor units of `currency`, strictly.
    `exp` overrides the currency's exponent (PayPal and BAI2 write minor units: exp 0). The first
    bad cell refuses the file at its line."""
    try:
        e = exponent(currency, channel) if exp is None else exp
        # Name the defect precisely: "1,234.00" is a thousands separator, not just "malformed".
        commas = values.str.contains(",", literal=True).fill_null(False).arg_true()
        if len(commas):
            row = int(commas[0])
            raise MoneyError("thousands_separator", f"row {row}: {values[row]!r} has a thousands separator")
        return parse_amount_column(values, e, currency=currency, channel=channel, allow_empty=allow_empty)
    except MoneyError as exc:
        where, _, rest = exc.detail.partition(": ")
        if where.startswith("row "):
            line = int(line_nos[int(where.split()[1])])
            raise refuse(path, line, exc.reason, f"{column}: {rest}") from None
        raise refuse(path, 0, exc.reason, f"{column}: {exc.detail}") from None


def amounts_by_currency(
    path: Path,
    values: pl.Series,
    currencies: pl.Series,
    line_nos: pl.Series,
    channel: str | None,
    column: str,
    *,
    allow_empty: bool = False,
) -> pl.Series:
    """Like `amounts`, for files whose rows carry their own currency (Stripe, Adyen)."""
    out = pl.Series(column, [None] * len(values), dtype=pl.Int64)
    for cur in currencies.unique().sort().to_list():
        idx = (currencies == cur).arg_true()
        try:
            exponent(cur, channel)
        except MoneyError as exc:
            raise refuse(path, int(line_nos[int(idx[0])]), exc.reason, exc.detail) from None
        parsed = amounts(path, values.gather(idx), line_nos.gather(idx), cur, channel, column, allow_empty=allow_empty)
        out = out.scatter(idx, parsed)
    return out


def timestamps(
    path: Path, values: pl.Series, line_nos: pl.Series, fmt: str, column: str, *, tz: str = "UTC"
) -> pl.Series:
    """Parse text timestamps written in the local time of `tz` (or carrying an offset, when `fmt`
    has %z) into UTC microseconds; the first bad cell refuses the file."""
    text = values.str.strip_chars()
    if "%z" in fmt:
        parsed = text.str.to_datetime(fmt, strict=False, time_unit="us").dt.convert_time_zone("UTC")
    else:
        parsed = text.str.to_datetime(fmt, strict=False, time_unit="us")
        parsed = parsed.dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null").dt.convert_time_zone("UTC")
    bad = (parsed.is_null() & values.is_not_null() & (values.str.strip_chars() != "")).arg_true()
    if len(bad):
        i = int(bad[0])
        raise refuse(path, int(line_nos[i]), "bad_timestamp", f"{column}: {values[i]!r} is not {fmt}")
    return parsed


def build_frame(
    *,
    path: Path,
    sha256: str,
    channel: str,
    account: str,
    business_date: date | None,
    columns: Mapping[str, pl.Series | Iterable[object]],
) -> pl.DataFrame:
    """Assemble a LINE_SCHEMA frame from per-line `columns` (line_no, line_type, channel_txn_id,
    payment_id, gross_minor, fee_minor, net_minor, currency, booked_at, value_date, raw) and the
    per-file constants; check every line's `net == gross - fee` and line type before returning."""
    data = {k: v if isinstance(v, pl.Series) else pl.Series(k, list(v)) for k, v in columns.items()}
    n = len(data["line_no"])
    if business_date is None and n:
        # Without a stated business date the file's earliest value date is its day.
        business_date = data["value_date"].min()  # type: ignore[assignment]
    assert all(len(v) == n for v in data.values()), {k: len(v) for k, v in data.items()}
    frame = pl.DataFrame(
        {
            "channel": pl.Series([channel] * n, dtype=pl.String),
            "account": pl.Series([account] * n, dtype=pl.String),
            "business_date": pl.Series([business_date] * n, dtype=pl.Date),
            "source_file": pl.Series([path.name] * n, dtype=pl.String),
            "source_sha256": pl.Series([sha256] * n, dtype=pl.String),
            **{k: v.alias(k) for k, v in data.items()},
        }
    )
    frame = frame.select([pl.col(name).cast(dtype, strict=True) for name, dtype in LINE_SCHEMA.items()])
    bad_net = (frame["gross_minor"] - frame["fee_minor"] != frame["net_minor"]).arg_true()
    if len(bad_net):
        i = int(bad_net[0])
        g, f, m = (int(frame[c][i]) for c in ("gross_minor", "fee_minor", "net_minor"))
        raise refuse(path, int(frame["line_no"][i]), "net_mismatch", f"gross {g} - fee {f} != net {m} (minor units)")
    bad_type = (~frame["line_type"].is_in([t.value for t in LineType])).arg_true()
    if len(bad_type):
        i = int(bad_type[0])
        raise refuse(path, int(frame["line_no"][i]), "bad_line_type", f"line type {frame['line_type'][i]!r}")
    return frame


def null_if_empty(values: pl.Series) -> pl.Series:
    """Empty or blank text becomes null (a missing reference is null, never the empty string)."""
    stripped = values.str.strip_chars()
    return pl.select(pl.when(stripped == "").then(None).otherwise(stripped)).to_series().alias(values.name)
