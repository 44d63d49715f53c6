"""Load one business day's inputs into explicitly typed frames.

- `read_internal`: `internal/payments.csv` (SPEC section 4 columns) to INTERNAL_SCHEMA. Every column is
  read as text and converted strictly: amounts are integer minor units (never inferred, never a
  float), enums are closed, timestamps are ISO 8601 UTC. A bad row refuses the whole file with an
  `InputFileError` naming the file, the line and the reason.
- `parse_channel_file`: one channel file through the rule's parser (`connectors.statements`), with
  the channel status code in `raw` mapped through the rule's `status_map` into a `status` column. An
  unknown status code refuses the file (it is never guessed).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import polars as pl

from connectors.statements import LINE_SCHEMA, ParsedFile, StatementError, changed_since, get_format
from pipelines.frames import INTERNAL_SCHEMA
from pipelines.matching.rules import Rule
from pipelines.money import AMOUNT_MINOR_MAX, CURRENCY_EXPONENTS
from pipelines.records import PAYMENTS_CSV_COLUMNS, BizType, PaymentStatus

# A statement frame after status mapping: LINE_SCHEMA plus the normalised status.
MAPPED_LINE_SCHEMA: dict[str, pl.DataType] = {**LINE_SCHEMA, "status": pl.String()}

# Hidden files and our own quarantine notes are never channel files.
_IGNORED_SUFFIXES = (".reason.json", ".part", ".tmp")


class InputFileError(StatementError):
    """Our own internal extract is unreadable; the day cannot be reconciled until it is fixed."""


def _first_bad(ok: pl.Series) -> int | None:
    """The index of the first row where `ok` is not true (a null counts as not ok), or None."""
    bad = (~ok.fill_null(False)).arg_true()
    return int(bad[0]) if len(bad) else None


# Our extract writes ISO 8601 UTC with a `Z` and milliseconds. With exactly three digits of
# fraction (`%3f`) Polars parses that form in its own fixed-width parser, 6x faster than through
# chrono, which `%.f` (any number of digits) needs: about 3 s of CPU for the two timestamp columns
# at 10M rows. A column that is not all in that form goes through `%.f`, then the inferring
# parser, which accept every ISO 8601 form; the fixed-width parser reads no value differently.
_TS_FAST = "%Y-%m-%dT%H:%M:%S.%3fZ"
_TS_FORMAT = "%Y-%m-%dT%H:%M:%S%.fZ"
_REQUIRED = ("payment_id", "biz_type", "channel", "amount_minor", "currency", "status", "created_at")
_AMOUNT_RE = r"^[0-9]{1,19}$"


def _timestamp_expr(column: str, *, strip: bool = False, infer: bool = False, fmt: str = _TS_FORMAT) -> pl.Expr:
    # Unstripped first: stripping copies every timestamp string (0.4 GB a column at 10M rows).
    text = pl.col(column).str.strip_chars() if strip else pl.col(column)
    # No cache: nearly every timestamp of an extract is distinct, so caching them is pure cost.
    return text.str.to_datetime(
        None if infer else fmt, time_zone="UTC", time_unit="us", strict=False, cache=False
    ).alias(column)


def _timestamp(text: pl.DataFrame, column: str) -> pl.Series:
    """`column` of `text` as UTC timestamps (null where unreadable): in our usual form as written,
    else with surrounding blanks stripped, else any ISO 8601 the inferring parser reads."""
    stamp = text.select(_timestamp_expr(column, fmt=_TS_FAST)).to_series()
    if stamp.null_count() > 0:
        stamp = text.select(_timestamp_expr(column)).to_series()
    if stamp.null_count() > 0:
        stamp = text.select(_timestamp_expr(column, strip=True)).to_series()
    if stamp.null_count() > 0:
        stamp = text.select(_timestamp_expr(column, strip=True, infer=True)).to_series()
    return stamp


def _check_header(path: Path) -> None:
    try:
        with open(path, encoding="utf-8") as fh:
            header = fh.readline().rstrip("\r\n")
    except FileNotFoundError:
        raise InputFileError(path, 0, "missing_file", "the internal extract is missing") from None
    except UnicodeDecodeError:
        raise InputFileError(path, 1, "encoding", "the header is not UTF-8") from None
    if header.lstrip("\ufeff") != header:
        raise InputFileError(path, 1, "bom", "the file starts with a byte order mark")
    if tuple(header.split(",")) != PAYMENTS_CSV_COLUMNS:
        raise InputFileError(path, 1, "bad_header", f"expected header {','.join(PAYMENTS_CSV_COLUMNS)}")


_TEXT_SCHEMA = {name: pl.String() for name in PAYMENTS_CSV_COLUMNS}


def read_internal(path: Path) -> pl.DataFrame:
    """Read `internal/payments.csv` into a frame of INTERNAL_SCHEMA (amounts Int64 minor units).

    Raises InputFileError (file, 1-based line, reason) on a wrong header, an empty required cell,
    an amount that is not a non-negative integer of minor units, an unknown biz_type, status or
    currency, a bad timestamp, or a payment_id listed twice. Every check is one vectorised
    expression, evaluated together; only a failing check looks for its first bad row.
    """
    path = Path(path)
    _check_header(path)
    before = path.stat()
    try:
        text = pl.read_csv(path, schema=_TEXT_SCHEMA, has_header=True)
    except pl.exceptions.PolarsError as exc:  # ComputeError; SchemaError for a row cut short
        raise InputFileError(path, 0, "malformed_csv", str(exc).splitlines()[0]) from None
    except OSError:
        # Cut short while Polars read it ("failed to fill whole buffer"): still being written.
        if changed_since(path, before):
            raise InputFileError(
                path, 0, "file_changed", "the extract changed while it was read; read it again once written"
            ) from None
        raise
    held = [text]
    del text  # `_typed_internal` holds the only reference, and lets go of columns as they convert
    return _typed_internal(held, path, first_line=2)


def read_internal_blocks(path: Path, block_bytes: int) -> Iterator[tuple[int, pl.DataFrame]]:
    """`read_internal` a block of about `block_bytes` of the file at a time (whole lines), for an
    extract too large to hold as text at once; yields (the block's first line number, its frame).

    Each block gets every check of `read_internal`, with the file's own line numbers. A payment_id
    listed twice in different blocks is found after the last block (from the ids' 64-bit hashes,
    then exactly), so a caller must treat nothing as loaded until the iterator is exhausted.
    """
    path = Path(path)
    _check_header(path)
    hashes: list[pl.Series] = []
    with open(path, "rb") as fh:
        fh.readline()
        line = 2
        while block := fh.read(block_bytes):
            if not block.endswith(b"\n"):
                block += fh.readline()
            lines = block.count(b"\n")
            try:
                text = pl.read_csv(block, schema=_TEXT_SCHEMA, has_header=False)
            except pl.exceptions.PolarsError as exc:
                raise InputFileError(path, line, "malformed_csv", str(exc).splitlines()[0]) from None
            del block  # the frame holds its own copy of the text
            held = [text]
            del text  # as in read_internal
            frame = _typed_internal(held, path, first_line=line)
            hashes.append(frame["payment_id"].hash())
            yield line, frame
            del frame
            line += lines
    if not hashes:
        return  # the header alone: no payment that day
    every = pl.concat(hashes)
    del hashes
    if every.n_unique() != every.len():
        _raise_duplicate(path, every.filter(every.is_duplicated()).unique())


def _raise_duplicate(path: Path, hashes: pl.Series) -> None:
    """Name the first line whose payment_id is listed twice, among the ids with these hashes; a
    hash collision between different ids is not a duplicate."""
    rows = (
        pl.scan_csv(path, schema=_TEXT_SCHEMA, has_header=True)
        .select(pl.int_range(pl.len(), dtype=pl.Int64).alias("row"), "payment_id")
        .filter(pl.col("payment_id").hash().is_in(hashes.implode()))
        .filter(pl.col("payment_id").is_duplicated())
        .sort("row")
        .collect()
    )
    if rows.height:
        raise InputFileError(
            path, int(rows["row"][0]) + 2, "duplicate_key", f"payment_id {rows['payment_id'][0]!r} is listed twice"
        )


def _cell_checks(
    text: pl.DataFrame, amount: pl.Expr, fee: pl.Expr
) -> tuple[list[tuple[str, pl.Expr, str, str]], pl.DataFrame]:
    """The loader's cell checks of `text` (amounts read through `amount` and `fee`), as (check
    name, ok expression, reason, message for the bad cell) in the order they are reported, and
    whether each holds on every row (a one-row frame of Booleans by check name)."""
    checks: list[tuple[str, pl.Expr, str, str]] = [
        *(
            (f"present_{c}", pl.col(c).is_not_null() & (pl.col(c) != ""), "empty_cell", f"{c} is empty")
            for c in _REQUIRED
            if c in text.columns  # a timestamp that converted whole is present
        ),
        ("unique", ~pl.col("payment_id").is_duplicated(), "duplicate_key", "payment_id {} is listed twice"),
        ("biz_type", pl.col("biz_type").is_in([b.value for b in BizType]), "bad_biz_type", "biz_type {} is unknown"),
        ("status", pl.col("status").is_in([s.value for s in PaymentStatus]), "bad_status", "status {} is unknown"),
        ("currency", pl.col("currency").is_in(sorted(CURRENCY_EXPONENTS)), "bad_currency", "currency {} is unknown"),
        ("amount", amount.str.contains(_AMOUNT_RE), "bad_amount", "amount_minor {} is not integer minor units"),
        (
            "fee",
            fee.is_null() | (fee == "") | fee.str.contains(_AMOUNT_RE),
            "bad_amount",
            "fee_minor {} is not integer minor units",
        ),
    ]
    # Uniqueness is judged first by counting the distinct 64-bit hashes of the ids (0.3 s at 10M
    # rows; marking each duplicated string took 3.2 s, each duplicated hash 1.3 s); only when a
    # hash repeats are the ids checked exactly, so a collision never refuses a file.
    fast = {"unique": pl.col("payment_id").hash().n_unique() == pl.len()}
    ok = text.select(fast.get(name, expr).fill_null(False).all().alias(name) for name, expr, _, _ in checks)
    return checks, ok


def _typed_internal(held: list[pl.DataFrame], path: Path, *, first_line: int) -> pl.DataFrame:
    """The checks and conversions of `read_internal` over the text frame in `held` (every column
    String; its first row is line `first_line` of `path`). `held` is emptied: with no reference
    left in the caller, each timestamp column's text is freed once it converts (0.4 GB a column
    at 10M rows; passing the frame itself kept it all, and the 10M day's peak rose 0.4 GB)."""
    text = held.pop()
    text = text.with_columns(pl.col("updated_at").fill_null(pl.col("created_at")))
    # Timestamps first, and a column's text let go of as soon as it converts whole (0.4 GB a
    # column at 10M rows, which otherwise stayed beside every check below). One that does not
    # convert keeps its text: the checks below still come first, then its bad cell is named.
    stamps: list[pl.Series] = []
    for column in ("created_at", "updated_at"):
        stamp = _timestamp(text, column)
        if stamp.null_count() == 0:
            stamps.append(stamp)
            text = text.drop(column)
    # Amounts are stripped of surrounding blanks only when a cell has any: stripping copies the
    # column (0.16 GB at 10M rows, twice: checks and conversion). Whether any has is asked only
    # when the amounts fail as written (0.2 s at 10M rows saved on every usual extract).
    amount, fee = pl.col("amount_minor"), pl.col("fee_minor")
    checks, ok = _cell_checks(text, amount, fee)
    if not (ok["amount"][0] and ok["fee"][0]):
        padded = text.select(pl.col(c).str.contains(r"^\s|\s$").any() for c in ("amount_minor", "fee_minor")).row(0)
        amount, fee = (
            pl.col(c).str.strip_chars() if p else pl.col(c)
            for c, p in zip(("amount_minor", "fee_minor"), padded, strict=True)
        )
        if any(padded):
            checks, ok = _cell_checks(text, amount, fee)
    cells = {"unique": "payment_id", "biz_type": "biz_type", "status": "status", "currency": "currency",
             "amount": "amount_minor", "fee": "fee_minor"}  # fmt: skip
    for name, expr, reason, message in checks:
        if not ok[name][0]:
            row = _first_bad(text.select(expr.alias("ok"))["ok"])
            if row is None and name == "unique":
                continue  # a hash collision, not a duplicate
            assert row is not None
            cell = text[cells.get(name, "payment_id")][row]
            raise InputFileError(path, row + first_line, reason, message.format(repr(cell)))
    converted = text.with_columns(
        amount.cast(pl.UInt64, strict=False).alias("amount_minor"),
        fee.replace("", None).cast(pl.UInt64, strict=False).alias("fee_minor"),
        *stamps,
    )
    for column in ("amount_minor", "fee_minor"):
        row = _first_bad(~(converted[column] > AMOUNT_MINOR_MAX).fill_null(False))
        if row is not None:
            raise InputFileError(
                path, row + first_line, "overflow", f"{column} {text[column][row]!r} does not fit 64 bits"
            )
    for column in ("created_at", "updated_at"):
        if column not in text.columns:
            continue
        row = _first_bad(_timestamp(text, column).is_not_null())
        if row is not None:
            raise InputFileError(
                path, row + first_line, "bad_timestamp", f"{column} {text[column][row]!r} is not ISO 8601 UTC"
            )
    return converted.select(pl.col(name).cast(dtype) for name, dtype in INTERNAL_SCHEMA.items())


def empty_internal() -> pl.DataFrame:
    return pl.DataFrame(schema=INTERNAL_SCHEMA)


def channel_files(directory: Path) -> list[Path]:
    """The channel's files of the day, sorted by name; hidden files and quarantine notes are skipped."""
    if not directory.is_dir():
        return []
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and not p.name.startswith(".") and not p.name.endswith(_IGNORED_SUFFIXES)
    )


def map_status(parsed: ParsedFile, rule: Rule) -> pl.DataFrame:
    """The parsed lines with `status` (a PaymentStatus value) from the channel code in `raw`.

    An unknown code raises StatementError on the first line carrying it.
    """
    frame = parsed.frame
    known = frame["raw"].is_in(list(rule.status_map))
    row = _first_bad(known)
    if row is not None:
        line_no = int(frame["line_no"][row])
        raise StatementError(
            parsed.path,
            line_no,
            "unknown_channel_status",
            f"status code {frame['raw'][row]!r} is not in the status_map of rule {rule.ref}",
        )
    mapping = {code: status.value for code, status in rule.status_map.items()}
    mapped = frame.with_columns(pl.col("raw").replace_strict(mapping, return_dtype=pl.String).alias("status"))
    # One chunk per column, as the match exports the lines to DuckDB as Arrow with a one-chunk row
    # index beside them: columns chunked unlike each other would be copied whole there instead.
    return mapped.rechunk()


def parse_channel_file(path: Path, rule: Rule, business_date: date) -> tuple[ParsedFile, pl.DataFrame]:
    """Parse one file with the rule's parser and map its statuses; StatementError refuses it whole."""
    fmt = get_format(rule.parser)
    parsed = fmt.parse(path, channel=rule.channel, business_date=business_date)
    if parsed.frame.schema != pl.Schema(LINE_SCHEMA):
        raise StatementError(path, 0, "parser_schema", f"parser {rule.parser} returned {parsed.frame.schema}")
    return parsed, map_status(parsed, rule)


def empty_lines() -> pl.DataFrame:
    return pl.DataFrame(schema=MAPPED_LINE_SCHEMA)
