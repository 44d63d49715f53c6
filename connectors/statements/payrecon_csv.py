"""`payrecon_csv`: payrecon's own documented settlement CSV, for channels without a native format.

Layout (UTF-8, comma separated, header row, amounts in major units with exactly the currency's
digits, timestamps ISO 8601 UTC):

    channel_txn_id,payment_id,line_type,gross,fee,net,currency,booked_at,value_date,channel_status
    ...one row per line...
    #TOTAL,<rows>,<sum gross>,<sum fee>,<sum net>

The `#TOTAL` trailer is the file's control total: the row count and the three sums must equal the
detail rows, or the whole file is refused (`control_total_mismatch`). It is read with Polars
(every column as text, amounts parsed strictly), so a ten-million-line file never goes through
Python row by row.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from connectors.statements import (
    LINE_SCHEMA,
    ParsedFile,
    StatementError,
    StatementFormat,
    changed_since,
    file_sha256,
    register,
)
from connectors.statements._common import ControlCheck, ControlPolicy
from pipelines.money import MoneyError, exponent, format_amount, parse_amount
from pipelines.money_frame import parse_amount_column
from pipelines.records import LineType, StatementLine

if TYPE_CHECKING:
    from pipelines.matching.rules import Rule

NAME = "payrecon_csv"
HEADER = ("channel_txn_id", "payment_id", "line_type", "gross", "fee", "net", "currency", "booked_at",
          "value_date", "channel_status")  # fmt: skip
TRAILER = "#TOTAL"
_HASHER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="payrecon-sha256")
_CONSTANT_COLUMNS = ("channel", "account", "business_date", "source_file", "source_sha256", "line_no")


def _text(path: Path, data: bytes, start: int, end: int) -> str:
    """`data[start:end]` decoded as UTF-8, or StatementError naming the line of the first bad byte."""
    try:
        return data[start:end].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = start + exc.start
        raise StatementError(path, data[:at].count(b"\n") + 1, "encoding", f"not UTF-8 at byte {at}") from None


def _sha256_and_lines(body: bytes, rest: bytes) -> tuple[str, int]:
    """The SHA-256 of `body` then `rest`, and the number of lines in `body` (both one pass over
    memory already in cache on the hashing thread, off the parse's path: 0.2 s at five million
    lines for the count)."""
    digest = hashlib.sha256()
    digest.update(body)
    digest.update(rest)
    return digest.hexdigest(), body.count(b"\n") + 1


def _canonical_pattern(exp: int) -> str:
    """The form `write` gives an amount: an optional minus, 1 to 18 - exp digits, exactly `exp`
    decimals (at most 18 digits, so dropping the point cannot overflow Int64)."""
    return rf"^-?[0-9]{{1,{18 - exp}}}$" if exp == 0 else rf"^-?[0-9]{{1,{18 - exp}}}\.[0-9]{{{exp}}}$"


def _canonical_amounts(frame: pl.DataFrame, columns: Sequence[str], exp: int) -> dict[str, pl.Series]:
    """Int64 minor units of each of `columns` whose every cell has the canonical form (then
    dropping the point is the exact conversion). Columns with any other cell are left out; the
    general strict parser then reads them and names the first bad cell. The columns are checked
    and converted in one parallel select each, not one pass per column."""
    pattern = _canonical_pattern(exp)
    ok = frame.select(
        (pl.col(c).is_not_null().all() & pl.col(c).str.contains(pattern).all()).alias(c) for c in columns
    ).row(0, named=True)
    fast = [c for c in columns if ok[c]]
    if not fast:
        return {}
    digits = (pl.col(c) if exp == 0 else pl.col(c).str.replace(".", "", literal=True) for c in fast)
    return dict(frame.select(d.cast(pl.Int64) for d in digits).to_dict())


# `write` gives booked_at in this exact form; it is parsed without inference (about 6x faster at
# millions of lines), and any other ISO 8601 form goes through the inferring parser.
_BOOKED_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def _booked_at(values: pl.Series) -> pl.Series:
    fast = values.str.to_datetime(_BOOKED_FORMAT, time_zone="UTC", time_unit="us", strict=False, cache=False)
    if fast.null_count() == values.null_count():
        return fast
    return values.str.to_datetime(time_zone="UTC", time_unit="us", strict=True)


def _first_not_iso(values: pl.Series) -> int | None:
    """The row of the first value that is no ISO 8601 timestamp at all, when the inferring parser
    refused the column (only the values not in `write`'s form are looked at, one by one)."""
    fast = values.str.to_datetime(_BOOKED_FORMAT, time_zone="UTC", strict=False, cache=False)
    for row in (fast.is_null() & values.is_not_null()).arg_true().to_list():
        try:
            datetime.fromisoformat(values[row])
        except ValueError:
            return int(row)
    return None


@dataclass
class _Read:
    """A payrecon_csv file read: its detail rows (every column String), the trailer's text, the
    file's SHA-256, and the trailer's line number (counted only when a message needs it)."""

    frame: pl.DataFrame
    trailer: str
    sha256: str
    trailer_line: Callable[[], int]


_STRINGS = {name: pl.String() for name in HEADER}
# How far from each end of the file the header and the trailer are looked for by `_read_mapped`.
_EDGE_BYTES = 1 << 16


def _lines_before(path: Path, offset: int) -> int:
    """How many newlines the file has before byte `offset` (read in blocks)."""
    count = 0
    with path.open("rb") as fh:
        while offset > 0:
            block = fh.read(min(offset, 1 << 24))
            if not block:
                break
            count += block.count(b"\n")
            offset -= len(block)
    return count


def _changed_error(path: Path) -> StatementError:
    return StatementError(path, 0, "file_changed", "the file changed while it was read; read it again once written")


def _edges(path: Path, size: int) -> tuple[bytes, str, int] | None:
    """The file's first `_EDGE_BYTES`, its trailer line and the trailer's byte offset, when the
    file starts with the header and ends with a `#TOTAL` line of five values; else None."""
    with path.open("rb") as fh:
        head = fh.read(_EDGE_BYTES)
        fh.seek(max(0, size - _EDGE_BYTES))
        tail_at = fh.tell()
        tail = fh.read()
    first_end = head.find(b"\n")
    if head.startswith(b"\xef\xbb\xbf") or first_end < 0 or head[:first_end] != ",".join(HEADER).encode():
        return None
    end = len(tail.rstrip(b"\n"))
    cut = tail.rfind(b"\n", 0, end)
    if cut < 0 or tail_at + cut < first_end:  # the trailer's line is not in view, or is the header
        return None
    try:
        trailer = tail[cut + 1 : end].decode("utf-8")
    except UnicodeDecodeError:
        return None
    parts = trailer.split(",")
    if len(parts) != 5 or parts[0] != TRAILER:
        return None
    return head, trailer, tail_at + cut + 1


def _hashed_read(
    path: Path, before: os.stat_result, read: Callable[[], pl.DataFrame]
) -> tuple[pl.DataFrame, Future[str]] | None:
    """`read()` of the file by its path while a thread hashes the file: (the frame, the hash to
    come), or None when Polars refuses the bytes (the in-memory read then names the defect)."""
    digest = _HASHER.submit(file_sha256, path)
    try:
        return read(), digest
    except pl.exceptions.PolarsError:
        digest.result()
        return None
    except OSError:
        # Polars reads the size it found when it opened the file: cut short meanwhile, the read
        # fails ("failed to fill whole buffer"). That is a file still being written, not a defect.
        digest.result()
        if changed_since(path, before):
            raise _changed_error(path) from None
        raise


def _read_mapped(path: Path) -> _Read | None:
    """The usual case, read without holding the file in memory: Polars reads the file from disk
    by its path, trailer included, and the last row it gives must be that trailer
    exactly; the hash is taken on a thread from the file itself. Saves reading the file into
    Python and copying its body out (0.3 to 0.9 s and 0.5 GB at five million lines).
    None when the file is anything else (empty, a byte order mark, another header, no trailer
    last, bytes Polars refuses): `_read_in_memory` then reads it and names the defect.
    StatementError when the file changed while it was read (the hash would not be of the rows)."""
    before = path.stat()
    edges = _edges(path, before.st_size)
    if edges is None:
        return None
    _, trailer, trailer_at = edges
    parts = trailer.split(",")
    read = _hashed_read(path, before, lambda: pl.read_csv(path, schema=_STRINGS, has_header=True))
    if read is None:
        return None
    frame, digest = read
    # Polars reads the trailer as a short row: its five values, then nulls (an empty value as null).
    expected = (*(part or None for part in parts), *(None,) * (len(HEADER) - len(parts)))
    if frame.height == 0 or frame.row(frame.height - 1) != expected:
        digest.result()
        return None
    sha = digest.result()
    if changed_since(path, before):
        raise _changed_error(path)
    return _Read(frame.slice(0, frame.height - 1), trailer, sha, lambda: _lines_before(path, trailer_at) + 1)


def _read_in_memory(path: Path) -> _Read:
    """Read the file whole into memory and split off its trailer; StatementError names the first
    defect of the file's shape (empty, byte order mark, not UTF-8, no trailer, header, CSV)."""
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        raise StatementError(path, 1, "bom", "the file starts with a UTF-8 byte order mark; payrecon_csv has none")
    if not data or data.isspace():  # not `data.strip()`: that copies the whole file
        raise StatementError(path, 0, "empty_file", "the file is empty")
    # The body and the trailer are split on the bytes (a newline is one byte in UTF-8), so a large
    # file is never copied as text: the body goes to Polars as bytes, and Polars refuses invalid
    # UTF-8 in it (then the body is decoded once to name the line).
    end = len(data)
    while end and data[end - 1] == 0x0A:
        end -= 1
    cut = data.rfind(b"\n", 0, end)
    last = _text(path, data, cut + 1, end)
    if not last.startswith(TRAILER + ","):
        raise StatementError(path, data.count(b"\n") + 1, "truncated", f"the last line is not the {TRAILER} trailer")
    # The file is held once: as its body and the rest, not beside a copy of its body.
    body, rest = (data[:cut], data[cut:]) if cut >= 0 else (b"", data)
    del data
    # The file's hash (half a second per 500 MB) is taken on a thread while Polars parses: hashlib
    # releases the GIL on large inputs. The thread counts the body's lines too.
    digest = _HASHER.submit(_sha256_and_lines, body, rest)
    first_end = body.find(b"\n")
    first_line = _text(path, body, 0, len(body) if first_end < 0 else first_end)
    if tuple(first_line.split(",")) != HEADER:
        raise StatementError(path, 1, "bad_header", f"expected header {','.join(HEADER)}")
    try:
        frame = (
            pl.read_csv(body, schema=_STRINGS, has_header=True)
            if first_end >= 0  # anything after the header
            else pl.DataFrame(schema=_STRINGS)
        )
    except pl.exceptions.ComputeError as exc:
        if "utf-8" in str(exc):
            _text(path, body, 0, len(body))  # raises with the line of the first bad byte
        raise StatementError(path, 0, "malformed_csv", str(exc).splitlines()[0]) from None
    del body  # parsed; the hashing thread holds it until it is done
    sha, body_lines = digest.result()  # the bytes parsed, as file_sha256 would hash them
    return _Read(frame, last, sha, lambda: body_lines + 1)


@dataclass
class _Typed:
    """A file's detail rows with amounts in Int64 minor units (`gross`, `fee`, `net`), the other
    columns as read (`booked_at` and `value_date` converted when `_typed_by_path` read them, else
    still text), `raw` the channel status (empty when absent), plus what `_Read` carries."""

    frame: pl.DataFrame
    trailer: str
    sha256: str
    trailer_line: Callable[[], int]
    currency: str | None


def _scan_typed(path: Path, exp: int) -> pl.DataFrame:
    """Every row of the file (the trailer last) converted as Polars' streaming engine reads it,
    so the file's text is never held whole: amounts of the canonical form (`_canonical_pattern`)
    to Int64 minor units, `booked_at` in the form `write` gives, `value_date`; anything else
    becomes null, and `ok` says whether every cell of the row converted."""
    pattern = _canonical_pattern(exp)

    def amount(column: str) -> pl.Expr:
        text = pl.col(column)
        digits = text if exp == 0 else text.str.replace(".", "", literal=True)
        return pl.when(text.str.contains(pattern)).then(digits.cast(pl.Int64, strict=False))

    booked = pl.col("booked_at").str.to_datetime(
        _BOOKED_FORMAT, time_zone="UTC", time_unit="us", strict=False, cache=False
    )
    value_date = pl.col("value_date").str.to_date("%Y-%m-%d", strict=False)
    ok = pl.all_horizontal(
        *(amount(c).is_not_null() for c in ("gross", "fee", "net")),
        pl.col("booked_at").is_null() | booked.is_not_null(),
        pl.col("value_date").is_null() | value_date.is_not_null(),
    )
    return (
        pl.scan_csv(path, schema=_STRINGS, has_header=True)
        .select(
            "line_type",
            "channel_txn_id",
            "payment_id",
            *(amount(c).alias(c) for c in ("gross", "fee", "net")),
            "currency",
            booked.alias("booked_at"),
            value_date.alias("value_date"),
            pl.col("channel_status").fill_null("").alias("raw"),
            ok.alias("ok"),
        )
        .collect(engine="streaming")
    )


def _typed_by_path(path: Path, channel: str) -> _Typed | None:
    """The usual file (the header, rows in one currency written as `write` writes them, the
    trailer last), converted while Polars streams it from disk: at five million lines a third of a
    gigabyte less at peak than reading the text whole first, then converting, in the same time. The hash is
    taken on a thread from the file itself. None when anything is unusual: the reads of the
    text (`_read_mapped`, `_read_in_memory`) then give the same frame or name the defect.
    StatementError when the file changed while it was read."""
    before = path.stat()
    edges = _edges(path, before.st_size)
    if edges is None:
        return None
    head, trailer, trailer_at = edges
    first = (head.split(b"\n", 2)[1] if head.count(b"\n") >= 2 else b"").decode("utf-8", "replace")
    fields = first.split(",")
    if len(fields) != len(HEADER) or '"' in first:
        return None
    currency = fields[HEADER.index("currency")]
    try:
        exp = exponent(currency, channel)
    except MoneyError:
        return None
    read = _hashed_read(path, before, lambda: _scan_typed(path, exp))
    if read is None:
        return None
    frame, digest = read
    parts = trailer.split(",")
    n = frame.height - 1
    last = frame.row(n, named=True) if n >= 0 else {}
    # Polars reads the trailer as a short row: its values where the first columns are, then nulls.
    looks_like_trailer = (
        (last.get("channel_txn_id"), last.get("payment_id"), last.get("line_type"))
        == tuple(part or None for part in parts[:3])
        and all(last.get(c) is None for c in ("net", "currency", "booked_at", "value_date"))
        and last.get("raw") == ""
    )
    body = frame.slice(0, max(n, 0))
    del frame
    if not (
        looks_like_trailer
        and bool(body["ok"].all())
        and body["currency"].null_count() == 0
        and body["currency"].n_unique() == 1
    ):
        digest.result()
        return None
    # One chunk per column, as the other reads give (the match gathers rows by position), made a
    # column at a time so the file is never held twice.
    columns = body.drop("ok").get_columns()
    del body
    for i, column in enumerate(columns):
        columns[i] = column.rechunk()
    sha = digest.result()
    if changed_since(path, before):
        raise _changed_error(path)
    return _Typed(pl.DataFrame(columns), trailer, sha, lambda: _lines_before(path, trailer_at) + 1, currency)


def _typed(path: Path, read: _Read, channel: str) -> _Typed:
    """The amounts of a file read as text converted strictly; the first bad cell refuses the file
    with its line."""
    frame = read.frame
    missing = frame["currency"].is_null()
    if missing.any():
        raise StatementError(path, int(missing.arg_true()[0]) + 2, "missing_field", "currency is empty")
    currencies = frame["currency"].unique().to_list()
    if len(currencies) > 1:
        raise StatementError(path, 0, "mixed_currency", f"one file holds one currency, found {sorted(currencies)}")
    currency = currencies[0] if currencies else None

    if currency is not None:
        try:
            exp = exponent(currency, channel)
        except MoneyError as exc:
            raise StatementError(path, 2, exc.reason, exc.detail) from None
        parsed = _canonical_amounts(frame, ("gross", "fee", "net"), exp)
        for column in ("gross", "fee", "net"):
            if column in parsed:
                continue
            try:
                parsed[column] = parse_amount_column(frame[column], exp, currency=currency, channel=channel)
            except MoneyError as exc:
                row = int(exc.detail.split()[1].rstrip(":"))
                raise StatementError(path, row + 2, exc.reason, f"column {column}: {exc.detail}") from None
        amounts = [parsed[c].alias(c) for c in ("gross", "fee", "net")]
    else:
        amounts = [pl.Series(c, [], dtype=pl.Int64) for c in ("gross", "fee", "net")]
    typed = frame.with_columns(*amounts, pl.col("channel_status").fill_null("").alias("raw")).drop("channel_status")
    return _Typed(typed, read.trailer, read.sha256, read.trailer_line, currency)


def parse(
    path: Path, *, channel: str, business_date: date | None = None, controls: ControlPolicy = "enforce"
) -> ParsedFile:
    """Parse one payrecon_csv file into statement lines; refuse it whole on any defect
    (`controls="report"`: a trailer that disagrees with the rows is listed in
    `ParsedFile.controls["mismatches"]` instead)."""
    path = Path(path)
    check = ControlCheck(path, controls)
    typed = _typed_by_path(path, channel) or _typed(path, _read_mapped(path) or _read_in_memory(path), channel)
    frame, last, sha, currency = typed.frame, typed.trailer, typed.sha256, typed.currency
    gross, fee, net = frame["gross"], frame["fee"], frame["net"]

    bad_types = ~frame["line_type"].is_in([t.value for t in LineType])
    if bad_types.any():
        row = int(bad_types.arg_true()[0])
        raise StatementError(path, row + 2, "bad_line_type", f"unknown line_type {frame['line_type'][row]!r}")
    bad_net = (gross - fee) != net
    if bad_net.any():
        row = int(bad_net.arg_true()[0])
        raise StatementError(path, row + 2, "net_mismatch", "gross - fee != net on this line")

    # Control totals: the trailer must agree with the rows.
    parts = last.split(",")
    if len(parts) != 5:
        raise StatementError(
            path, typed.trailer_line(), "bad_trailer", f"{TRAILER} needs 4 values, found {len(parts) - 1}"
        )
    ctl_currency = currency or "XXX"
    try:
        ctl_rows = int(parts[1])
        ctl = [parse_amount(p, ctl_currency, channel=channel) if currency else int(p) for p in parts[2:]]
    except (ValueError, MoneyError) as exc:
        raise StatementError(path, typed.trailer_line(), "bad_trailer", str(exc)) from None
    sums = [int(gross.sum()), int(fee.sum()), int(net.sum())]
    if ctl_rows != frame.height or ctl != sums:
        check.disagree(
            typed.trailer_line(),
            "control_total_mismatch",
            f"trailer says {ctl_rows} rows, sums {ctl}; the file has {frame.height} rows, sums {sums}",
        )

    n = frame.height
    booked, value_date = frame["booked_at"], frame["value_date"]
    try:
        if booked.dtype == pl.String:
            booked = _booked_at(booked)
    except pl.exceptions.PolarsError as exc:
        at = _first_not_iso(booked)
        line, detail = (0, str(exc).splitlines()[0]) if at is None else (at + 2, f"booked_at {booked[at]!r}")
        raise StatementError(path, line, "bad_timestamp", detail) from None
    if value_date.dtype == pl.String:
        dates = value_date.str.to_date("%Y-%m-%d", strict=False)
        bad = dates.is_null() & value_date.is_not_null()
        if bad.any():
            at = int(bad.arg_true()[0])
            raise StatementError(path, at + 2, "bad_timestamp", f"value_date {value_date[at]!r} is not YYYY-MM-DD")
        value_date = dates
    bd = business_date or (value_date.min() if n else None)
    # The per-file constants as broadcast literals: a Python list of n copies costs seconds at 10M.
    out = frame.with_columns(
        pl.lit(channel, dtype=pl.String).alias("channel"),
        pl.lit("", dtype=pl.String).alias("account"),
        pl.lit(bd, dtype=pl.Date).alias("business_date"),
        pl.lit(path.name, dtype=pl.String).alias("source_file"),
        pl.lit(sha, dtype=pl.String).alias("source_sha256"),
        pl.int_range(2, n + 2, dtype=pl.Int64).alias("line_no"),
        booked.alias("booked_at"),
        value_date.alias("value_date"),
        gross.alias("gross_minor"),
        fee.alias("fee_minor"),
        net.alias("net_minor"),
    ).select(pl.col(c).cast(LINE_SCHEMA[c]) for c in LINE_SCHEMA)
    del frame, typed
    assert out.schema == pl.Schema(LINE_SCHEMA), out.schema
    return ParsedFile(
        path=path,
        sha256=sha,
        format=NAME,
        frame=out,
        controls=check.summary({"rows": ctl_rows, "gross": ctl[0], "fee": ctl[1], "net": ctl[2]}),
    )


def write(lines: Sequence[StatementLine], directory: Path, *, rule: Rule, business_date: date) -> list[Path]:
    """Write `lines` as one payrecon_csv file `<channel>_<date>.csv` with its #TOTAL trailer.
    `raw` of each line carries the channel's own status code."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{rule.channel}_{business_date.isoformat()}.csv"
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER)
    sums = [0, 0, 0]
    for line in lines:
        cur, ch = line.currency, rule.channel
        w.writerow((
            line.channel_txn_id or "", line.payment_id or "", line.line_type.value,
            format_amount(line.gross_minor, cur, channel=ch), format_amount(line.fee_minor, cur, channel=ch),
            format_amount(line.net_minor, cur, channel=ch), cur,
            line.booked_at.isoformat().replace("+00:00", "Z") if line.booked_at else "",
            line.value_date.isoformat() if line.value_date else "", line.raw,
        ))  # fmt: skip
        sums[0] += line.gross_minor
        sums[1] += line.fee_minor
        sums[2] += line.net_minor
    cur = rule.currency
    buf.write(",".join([TRAILER, str(len(lines)), *(format_amount(s, cur, channel=rule.channel) for s in sums)]) + "\n")
    path.write_text(buf.getvalue(), encoding="utf-8")
    return [path]


def sniff(head: bytes, name: str) -> bool:
    return head.startswith(",".join(HEADER).encode())


FORMAT = register(StatementFormat(NAME, parse=parse, write=write, sniff=sniff, description=__doc__.splitlines()[0]))
