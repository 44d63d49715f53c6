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
import io
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from connectors.statements import (
    LINE_SCHEMA,
    ParsedFile,
    StatementError,
    StatementFormat,
    file_sha256,
    register,
)
from pipelines.money import MoneyError, exponent, format_amount, parse_amount
from pipelines.money_frame import parse_amount_column
from pipelines.records import LineType, StatementLine

if TYPE_CHECKING:
    from pipelines.matching.rules import Rule

NAME = "payrecon_csv"
HEADER = ("channel_txn_id", "payment_id", "line_type", "gross", "fee", "net", "currency", "booked_at",
          "value_date", "channel_status")  # fmt: skip
TRAILER = "#TOTAL"


def parse(path: Path, *, channel: str, business_date: date | None = None) -> ParsedFile:
    """Parse one payrecon_csv file into statement lines; refuse it whole on any defect."""
    path = Path(path)
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        raise StatementError(path, 1, "bom", "the file starts with a UTF-8 byte order mark; payrecon_csv has none")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise StatementError(path, line, "encoding", f"not UTF-8 at byte {exc.start}") from None
    if not text.strip():
        raise StatementError(path, 0, "empty_file", "the file is empty")
    body, _, last = text.rstrip("\n").rpartition("\n")
    if not last.startswith(TRAILER + ","):
        raise StatementError(path, text.count("\n") + 1, "truncated", f"the last line is not the {TRAILER} trailer")
    first_line = body.split("\n", 1)[0]
    if tuple(first_line.split(",")) != HEADER:
        raise StatementError(path, 1, "bad_header", f"expected header {','.join(HEADER)}")
    n_lines = body.count("\n") + 1
    trailer_line_no = n_lines + 1
    frame = (
        pl.read_csv(io.StringIO(body), schema={name: pl.String() for name in HEADER}, has_header=True)
        if n_lines > 1
        else pl.DataFrame(schema={name: pl.String() for name in HEADER})
    )

    currencies = frame["currency"].unique().to_list()
    if len(currencies) > 1:
        raise StatementError(path, 0, "mixed_currency", f"one file holds one currency, found {sorted(currencies)}")
    currency = currencies[0] if currencies else None

    def amounts(column: str) -> pl.Series:
        assert currency is not None
        try:
            return parse_amount_column(frame[column], exponent(currency, channel), currency=currency, channel=channel)
        except MoneyError as exc:
            row = int(exc.detail.split()[1].rstrip(":"))
            raise StatementError(path, row + 2, exc.reason, f"column {column}: {exc.detail}") from None

    if currency is not None:
        try:
            exponent(currency, channel)
        except MoneyError as exc:
            raise StatementError(path, 2, exc.reason, exc.detail) from None
        gross, fee, net = amounts("gross"), amounts("fee"), amounts("net")
    else:
        gross = fee = net = pl.Series([], dtype=pl.Int64)

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
        raise StatementError(path, trailer_line_no, "bad_trailer", f"{TRAILER} needs 4 values, found {len(parts) - 1}")
    ctl_currency = currency or "XXX"
    try:
        ctl_rows = int(parts[1])
        ctl = [parse_amount(p, ctl_currency, channel=channel) if currency else int(p) for p in parts[2:]]
    except (ValueError, MoneyError) as exc:
        raise StatementError(path, trailer_line_no, "bad_trailer", str(exc)) from None
    sums = [int(gross.sum()), int(fee.sum()), int(net.sum())]
    if ctl_rows != frame.height or ctl != sums:
        raise StatementError(
            path,
            trailer_line_no,
            "control_total_mismatch",
            f"trailer says {ctl_rows} rows, sums {ctl}; the file has {frame.height} rows, sums {sums}",
        )

    sha = file_sha256(path)
    n = frame.height
    try:
        booked = frame["booked_at"].str.to_datetime(time_zone="UTC", time_unit="us", strict=True)
        value_date = frame["value_date"].str.to_date("%Y-%m-%d", strict=True)
    except pl.exceptions.InvalidOperationError as exc:
        raise StatementError(path, 0, "bad_timestamp", str(exc).splitlines()[0]) from None
    bd = business_date or (value_date.min() if n else None)
    out = pl.DataFrame(
        {
            "channel": pl.Series([channel] * n, dtype=pl.String),
            "account": pl.Series([""] * n, dtype=pl.String),
            "business_date": pl.Series([bd] * n, dtype=pl.Date),
            "source_file": pl.Series([path.name] * n, dtype=pl.String),
            "source_sha256": pl.Series([sha] * n, dtype=pl.String),
            "line_no": pl.int_range(2, n + 2, eager=True).cast(pl.Int64),
            "line_type": frame["line_type"],
            "channel_txn_id": frame["channel_txn_id"],
            "payment_id": frame["payment_id"],
            "gross_minor": gross,
            "fee_minor": fee,
            "net_minor": net,
            "currency": frame["currency"],
            "booked_at": booked,
            "value_date": value_date,
            "raw": frame["channel_status"].fill_null(""),
        },
        schema=LINE_SCHEMA,
    )
    return ParsedFile(
        path=path,
        sha256=sha,
        format=NAME,
        frame=out,
        controls={"rows": ctl_rows, "gross": ctl[0], "fee": ctl[1], "net": ctl[2], "ok": True},
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
