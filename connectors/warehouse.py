"""The warehouse: a DuckDB file for state, Parquet partitions for bulk rows.

One warehouse per output folder (`OUT/warehouse.duckdb` by default), so separate runs never share
state. It holds:

- Parquet, partitioned by business date and channel (beside the file, in `<stem>_parquet/`):
  `lines/` the staged statement lines, `internal/` our records as reconciled; each partition is
  overwritten by a rerun of its day and channel.
- DuckDB tables (schema in `DDL`): `file_log` (every statement file taken in, by sha256: the same
  bytes for another day are a duplicate file), `quarantine_log`, `pending` (the carry-forward set as
  of each business date), `breaks` (one row per break id: its state), `break_history` (each day's
  breaks as reported), `break_status_log` (each status change someone made: `move_break`),
  `break_resolutions` (earlier days' MISSING_AT_CHANNEL or MISSING_INTERNAL breaks a day's late
  line or late record of ours matched),
  `outbox` (repair tasks until the compensation queue takes them), `run_log` (each channel's counts
  per day).

Every write is keyed by (business date, channel) and replaces what an earlier run of the same day
wrote, inside one transaction: a rerun gives the same rows, never duplicates (invariant 7). Break
state changes are compare-and-set: `UPDATE ... WHERE status = <expected>`.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from pipelines import failpoints
from pipelines.frames import as_arrow

# Another process (a parallel Airflow task) may hold the file's write lock; wait this long for it.
LOCK_WAIT_S_MAX = 120.0
LOCK_RETRY_S = 0.25

DDL = """
CREATE TABLE IF NOT EXISTS file_log (
    sha256 VARCHAR PRIMARY KEY, business_date DATE NOT NULL, channel VARCHAR NOT NULL,
    source_file VARCHAR NOT NULL, rows BIGINT NOT NULL, format VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS quarantine_log (
    business_date DATE NOT NULL, channel VARCHAR NOT NULL, source_file VARCHAR NOT NULL, sha256 VARCHAR,
    reason VARCHAR NOT NULL, line BIGINT NOT NULL, detail VARCHAR NOT NULL,
    PRIMARY KEY (business_date, channel, source_file));
CREATE TABLE IF NOT EXISTS pending (
    as_of_date DATE NOT NULL, channel VARCHAR NOT NULL, payment_id VARCHAR NOT NULL, biz_type VARCHAR NOT NULL,
    parent_payment_id VARCHAR, merchant_id VARCHAR, account_id VARCHAR, channel_txn_id VARCHAR,
    amount_minor BIGINT NOT NULL, currency VARCHAR NOT NULL, fee_minor BIGINT, status VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL, trace_id VARCHAR, since_date DATE NOT NULL,
    PRIMARY KEY (as_of_date, channel, payment_id));
CREATE TABLE IF NOT EXISTS breaks (
    break_id VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, channel VARCHAR NOT NULL, payment_id VARCHAR,
    channel_txn_id VARCHAR, currency VARCHAR NOT NULL, rule_id VARCHAR NOT NULL, status VARCHAR NOT NULL,
    first_seen_date DATE NOT NULL, last_seen_date DATE NOT NULL, status_date DATE NOT NULL, reference VARCHAR);
-- A warehouse of the ninth session or before did not keep a MISSING_INTERNAL line's reference
-- (null: unknown, so a late record's query still reads such a break as a candidate).
ALTER TABLE breaks ADD COLUMN IF NOT EXISTS reference VARCHAR;
CREATE TABLE IF NOT EXISTS break_history (
    business_date DATE NOT NULL, break_id VARCHAR NOT NULL, kind VARCHAR NOT NULL, channel VARCHAR NOT NULL,
    payment_id VARCHAR, channel_txn_id VARCHAR, internal_amount_minor BIGINT, channel_amount_minor BIGINT,
    currency VARCHAR NOT NULL, delta_minor BIGINT, rule_id VARCHAR NOT NULL, status VARCHAR NOT NULL,
    first_seen_date DATE NOT NULL, age_days BIGINT NOT NULL, action VARCHAR NOT NULL, trace_id VARCHAR,
    PRIMARY KEY (business_date, break_id));
CREATE TABLE IF NOT EXISTS outbox (
    task_id VARCHAR PRIMARY KEY, break_id VARCHAR NOT NULL, action VARCHAR NOT NULL, payment_id VARCHAR,
    amount_minor BIGINT NOT NULL, currency VARCHAR NOT NULL, reason VARCHAR NOT NULL,
    requires_approval BOOLEAN NOT NULL, created_at TIMESTAMPTZ NOT NULL, trace_id VARCHAR,
    business_date DATE NOT NULL, channel VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS break_status_log (
    break_id VARCHAR NOT NULL, seq BIGINT NOT NULL, from_status VARCHAR NOT NULL, to_status VARCHAR NOT NULL,
    status_date DATE NOT NULL, reason VARCHAR NOT NULL, actor VARCHAR NOT NULL, PRIMARY KEY (break_id, seq));
CREATE TABLE IF NOT EXISTS break_resolutions (
    business_date DATE NOT NULL, channel VARCHAR NOT NULL, break_id VARCHAR NOT NULL, from_status VARCHAR NOT NULL,
    from_status_date DATE NOT NULL, channel_txn_id VARCHAR NOT NULL, payment_id VARCHAR,
    PRIMARY KEY (business_date, break_id));
-- A warehouse of the ninth session knew only late lines: their payment id is the break's.
ALTER TABLE break_resolutions ADD COLUMN IF NOT EXISTS payment_id VARCHAR;
UPDATE break_resolutions SET payment_id = b.payment_id FROM breaks b
WHERE break_resolutions.payment_id IS NULL AND b.break_id = break_resolutions.break_id;
CREATE TABLE IF NOT EXISTS run_log (
    business_date DATE NOT NULL, channel VARCHAR NOT NULL, rule_ref VARCHAR NOT NULL, summary VARCHAR NOT NULL,
    PRIMARY KEY (business_date, channel));
"""

# A break's first_seen_date is the earliest day a run reported it: save_channel_day only ever
# lowers it, before it writes the day's reports (a rerun that no longer finds the break keeps it).
# So no report of a break is dated before its first_seen_date (a property test holds it), and the
# queries that look for breaks' latest reports read the history only from the earliest
# first_seen_date of their breaks on: DuckDB skips the older row groups by their dates.
#
# The breaks `overdue_breaks` may return (parameters: channel, kind, the day four times, channel);
# one reported before the day has first_seen_date before it.
_OVERDUE_CANDIDATES = """
    SELECT s.break_id, s.first_seen_date FROM breaks s
    WHERE s.channel = ? AND s.kind = ? AND s.first_seen_date < ?
      AND ((s.status IN ('OPEN', 'REPAIRING') AND s.status_date <= ?)
           OR (s.status = 'CLOSED' AND s.status_date = ? AND s.break_id IN (
               SELECT break_id FROM break_resolutions WHERE business_date = ? AND channel = ?)))"""

PENDING_COLUMNS: tuple[str, ...] = (
    "payment_id", "biz_type", "parent_payment_id", "merchant_id", "account_id", "channel", "channel_txn_id",
    "amount_minor", "currency", "fee_minor", "status", "created_at", "updated_at", "trace_id", "since_date",
)  # fmt: skip

HISTORY_COLUMNS: tuple[str, ...] = (
    "break_id", "kind", "channel", "business_date", "payment_id", "channel_txn_id", "internal_amount_minor",
    "channel_amount_minor", "currency", "delta_minor", "rule_id", "status", "first_seen_date", "age_days",
    "action", "trace_id",
)  # fmt: skip

# The statuses a person (or the repair loop) moves a break between; PROVISIONAL is the stream's.
MOVABLE_STATUSES: tuple[str, ...] = ("OPEN", "REPAIRING", "CLOSED", "WRITTEN_OFF")

OUTBOX_COLUMNS: tuple[str, ...] = (
    "task_id", "break_id", "action", "payment_id", "amount_minor", "currency", "reason", "requires_approval",
    "created_at", "trace_id", "business_date", "channel",
)  # fmt: skip


def _connect(path: Path) -> duckdb.DuckDBPyConnection:
    """Open the file, waiting up to LOCK_WAIT_S_MAX while another process holds its lock."""
    deadline = time.monotonic() + LOCK_WAIT_S_MAX
    while True:
        try:
            con = duckdb.connect(str(path))
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(LOCK_RETRY_S)
    # Dates and timestamps are UTC throughout; the session zone must not shift TIMESTAMPTZ values.
    con.execute("SET TimeZone = 'UTC'").fetchall()
    return con


# Staged columns that hold a closed vocabulary or one value per file (`_write_part`).
_DICTIONARY_COLUMNS = (
    "channel",
    "currency",
    "status",
    "biz_type",
    "line_type",
    "account",
    "source_file",
    "source_sha256",
)


class Warehouse:
    """The warehouse at `path` (a DuckDB file; created with its tables when missing)."""

    def __init__(self, path: Path | str, *, background_writes: bool = False) -> None:
        """`background_writes`: `write_partition` returns at once and writes on a thread, so a
        caller that still holds the frame (`run_day`) goes on while the Parquet is written;
        `wait_for_writes` (and `close`) wait for them and raise the first failure."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.parquet_root = self.path.parent / f"{self.path.stem}_parquet"
        self.con = _connect(self.path)
        self.con.execute(DDL).fetchall()
        self._writer = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="payrecon-parquet") if background_writes else None
        )
        self._writes: list[Future[Path]] = []

    def wait_for_writes(self) -> None:
        """Wait for every background partition write; raise the first that failed."""
        writes, self._writes = self._writes, []
        for future in writes:
            future.result()

    def close(self, *, raise_write_errors: bool = True) -> None:
        try:
            if self._writer is not None:
                self._writer.shutdown(wait=True)
            if raise_write_errors:
                self.wait_for_writes()
        finally:
            self._writes = []
            self.con.close()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        # A run that is already failing reports its own error, not a staging write's.
        self.close(raise_write_errors=exc_type is None)

    # --- small helpers -------------------------------------------------------------------------
    def execute(self, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run one statement and fetch all its rows (DuckDB 2 refuses work on an unfinished result)."""
        return self.con.execute(query, params or []).fetchall()

    def frame(self, query: str, params: list[Any] | None = None) -> pl.DataFrame:
        return self.con.sql(query, params=params or []).pl()

    # --- Parquet partitions --------------------------------------------------------------------
    def partition(self, table: str, business_date: date, channel: str) -> Path:
        return self.parquet_root / table / f"business_date={business_date.isoformat()}" / f"channel={channel}"

    def write_partition(self, table: str, business_date: date, channel: str, frame: pl.DataFrame) -> Path:
        """Overwrite one (table, day, channel) partition with `frame`; returns the file written.
        Written to a temporary name and renamed, so a reader never sees half a file. With
        background writes the file is written on the writer thread (`wait_for_writes`)."""
        if self._writer is not None:
            self._writes.append(self._writer.submit(self._write_partition, table, business_date, channel, frame))
            return self.partition(table, business_date, channel) / "part-0.parquet"
        return self._write_partition(table, business_date, channel, frame)

    def _write_partition(self, table: str, business_date: date, channel: str, frame: pl.DataFrame) -> Path:
        directory = self.partition(table, business_date, channel)
        target = directory / "part-0.parquet"
        self._write_part(directory, 0, frame).replace(target)
        self._drop_parts(directory, keep=1)
        return target

    @staticmethod
    def _write_part(directory: Path, index: int, frame: pl.DataFrame) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".part-{index}.parquet.tmp"
        # Vocabulary and per-file columns go to the writer as Categorical: Parquet stores them
        # dictionary-encoded either way, and from a String column Polars first measures each
        # one's cardinality and builds the dictionary by hashing every value (a 64-character
        # file hash on each of five million lines): 2.1 s of CPU to write that many lines, 1.3 s
        # this way, the cast included. The file is the same to DuckDB (VARCHAR); Polars reads
        # the columns back as Categorical, so `read_partition` casts them back.
        dictionary = [c for c in _DICTIONARY_COLUMNS if frame.schema.get(c) == pl.String]
        if dictionary:
            frame = frame.with_columns(pl.col(dictionary).cast(pl.Categorical))
        frame.write_parquet(tmp, compression="lz4", statistics=False)
        return tmp

    @staticmethod
    def _drop_parts(directory: Path, keep: int) -> None:
        """Remove the part files numbered `keep` and up (left by an earlier run written in more parts)."""
        for path in directory.glob("part-*.parquet"):
            if int(path.name[len("part-") : -len(".parquet")]) >= keep:
                path.unlink()

    def write_partition_part(
        self, table: str, business_date: date, channel: str, index: int, frame: pl.DataFrame
    ) -> None:
        """Write part `index` of a partition written in several parts (an extract read a block at a
        time); the parts replace the partition only at `commit_partition_parts`."""
        directory = self.partition(table, business_date, channel)
        if self._writer is not None:
            self._writes.append(self._writer.submit(self._write_part, directory, index, frame))
        else:
            self._write_part(directory, index, frame)

    def commit_partition_parts(self, table: str, business_date: date, channel: str, count: int) -> None:
        """Put parts 0..`count`-1 of `write_partition_part` in place of the partition's files."""
        self.wait_for_writes()
        directory = self.partition(table, business_date, channel)
        directory.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            (directory / f".part-{index}.parquet.tmp").replace(directory / f"part-{index}.parquet")
        self._drop_parts(directory, keep=count)

    def discard_partition_parts(self, table: str, business_date: date, channel: str) -> None:
        """Forget the uncommitted parts of a partition (the extract they came from was refused)."""
        self.wait_for_writes()
        for tmp in self.partition(table, business_date, channel).glob(".part-*.parquet.tmp"):
            tmp.unlink()

    def partition_files(self, table: str, business_date: date, channel: str) -> list[Path]:
        """The partition's Parquet files in part order (empty when it was never written)."""
        self.wait_for_writes()
        files = self.partition(table, business_date, channel).glob("part-*.parquet")
        return sorted(files, key=lambda p: int(p.name[len("part-") : -len(".parquet")]))

    def read_partition(self, table: str, business_date: date, channel: str) -> pl.DataFrame | None:
        """The partition as one frame (each column one chunk), or None when it was never written."""
        files = self.partition_files(table, business_date, channel)
        if not files:
            return None
        if len(files) == 1:
            frame = pl.read_parquet(files[0])
        else:
            frame = pl.concat([pl.read_parquet(f) for f in files], rechunk=True)
        return frame.with_columns(pl.col(pl.Categorical).cast(pl.String))  # as staged (`_write_part`)

    # --- file intake -----------------------------------------------------------------------------
    def release_files(self, business_date: date, channel: str) -> None:
        """Forget the files a previous run of this day and channel took in (a rerun takes them again)."""
        self.execute("DELETE FROM file_log WHERE business_date = ? AND channel = ?", [business_date, channel])

    def claim_file(
        self, sha256: str, *, business_date: date, channel: str, source_file: str, rows: int, format: str
    ) -> str | None:
        """Record a file as taken in; when the same bytes were taken before under another day,
        channel or name, return where (and record nothing): the file is a duplicate."""
        prior = self.execute("SELECT business_date, channel, source_file FROM file_log WHERE sha256 = ?", [sha256])
        if prior:
            d, ch, name = prior[0]
            if (d, ch, name) != (business_date, channel, source_file):
                return f"{d.isoformat()}/{ch}/{name}"
            return None
        self.execute(
            "INSERT INTO file_log VALUES (?, ?, ?, ?, ?, ?)",
            [sha256, business_date, channel, source_file, rows, format],
        )
        return None

    # --- carry-forward -------------------------------------------------------------------------------
    def pending_before(self, business_date: date, channel: str) -> pl.DataFrame:
        """The pending set the latest earlier run of `channel` left (PENDING_COLUMNS), empty if none."""
        query = f"""
            SELECT {", ".join(PENDING_COLUMNS)} FROM pending
            WHERE channel = ? AND as_of_date = (SELECT max(as_of_date) FROM pending WHERE channel = ? AND as_of_date < ?)
            ORDER BY payment_id"""
        return self.frame(query, [channel, channel, business_date])

    def any_overdue(self, business_date: date, channel: str, kind: str) -> bool:
        """Whether `overdue_breaks` may return anything (a cheap look before reading the day's keys)."""
        d = business_date
        query = f"SELECT EXISTS ({_OVERDUE_CANDIDATES})"
        return bool(self.execute(query, [channel, kind, d, d, d, d, channel])[0][0])

    def overdue_breaks(
        self,
        business_date: date,
        channel: str,
        kind: str = "MISSING_AT_CHANNEL",
        *,
        payment_ids: pl.Series | None = None,
        channel_txn_ids: pl.Series | None = None,
        references: pl.Series | None = None,
    ) -> pl.DataFrame:
        """The `kind` breaks (MISSING_AT_CHANNEL or MISSING_INTERNAL) of `channel` reported before
        `business_date` and open on it: OPEN or REPAIRING since that day or before, or closed on it
        by a late counterpart of this day in an earlier run of it (which `save_channel_day` undoes
        first). A break whose status someone changed after the day is left alone. Columns:
        break_id, payment_id, channel_txn_id, internal_amount_minor, channel_amount_minor,
        currency, first_seen_date as last reported before the day.

        `payment_ids`, `channel_txn_ids`, `references` (a MISSING_INTERNAL line's reference):
        when any is given, only the breaks one of them names (the day's candidates), chosen in
        the query: with months of breaks nobody resolved, returning every open one of the channel
        cost seconds, and a day pairs only a few. A break whose reference an older warehouse did
        not keep (null) stays a candidate when `references` are given."""
        keys: list[tuple[str, pl.Series]] = []
        if payment_ids is not None:
            keys.append(("payment_id", payment_ids))
        if channel_txn_ids is not None:
            keys.append(("channel_txn_id", channel_txn_ids))
        if references is not None:
            keys.append(("reference", references))
        names = [f"overdue_keys_{n}" for n in range(len(keys))]
        named = [f"s.{column} IN (SELECT k FROM {name})" for (column, _), name in zip(keys, names, strict=True)]
        if references is not None:
            named.append("s.reference IS NULL")
        keyed = f" AND ({' OR '.join(named)})" if named else ""
        # The candidates from `breaks` first, then each one's latest report before the day in one
        # scan of the history: arg_max over a struct of the columns (a struct is never null, so
        # a null payment id of the latest report stays null; arg_max skips null arguments). A
        # break has one report a day, so the latest is one row. Two scans (the latest date, then
        # a join on (id, date), as open_breaks does for its millions of rows) took 0.95 s against
        # 0.70 s for four months of 110,000 breaks a day and a day's keys. It starts at the oldest
        # candidate's first_seen_date (above _OVERDUE_CANDIDATES): a day whose keys name recent
        # breaks reads only recent history however long the warehouse has run (0.43 s to 0.04 s
        # at four months).
        query = f"""
            WITH candidates AS ({_OVERDUE_CANDIDATES}{keyed}),
            latest AS (
                SELECT arg_max({{'break_id': break_id, 'payment_id': payment_id, 'channel_txn_id': channel_txn_id,
                                 'internal_amount_minor': internal_amount_minor,
                                 'channel_amount_minor': channel_amount_minor, 'currency': currency,
                                 'first_seen_date': first_seen_date}}, business_date) AS report
                FROM break_history
                WHERE business_date < ? AND business_date >= (SELECT min(first_seen_date) FROM candidates)
                  AND break_id IN (SELECT break_id FROM candidates) GROUP BY break_id)
            SELECT unnest(report) FROM latest ORDER BY report.break_id"""
        d = business_date
        for (_, values), name in zip(keys, names, strict=True):
            self.con.register(name, as_arrow(pl.DataFrame({"k": values.cast(pl.String).drop_nulls().unique()})))
        try:
            return self.frame(query, [channel, kind, d, d, d, d, channel, d])
        finally:
            for name in names:
                self.con.unregister(name)

    # --- the day's results of one channel ------------------------------------------------------------
    def save_channel_day(
        self,
        business_date: date,
        channel: str,
        *,
        rule_ref: str,
        breaks: pl.DataFrame,
        pending: pl.DataFrame,
        outbox: pl.DataFrame,
        quarantined: list[dict[str, Any]],
        summary: dict[str, Any],
        reconciled: bool,
        matched_late: pl.DataFrame | None = None,
    ) -> None:
        """Persist one channel's day atomically (its breaks as reported: `breaks_of_day`).

        `matched_late`: earlier days' MISSING_AT_CHANNEL breaks a line of this day matched, and
        MISSING_INTERNAL breaks a record of ours of this day matched (break_id, and the pair that
        matched: payment_id of our record, channel_txn_id of the line): each is closed as of this
        day (compare-and-set from OPEN or REPAIRING) and kept in break_resolutions; a rerun first
        undoes what the day's earlier run closed this way, so a rerun whose counterpart is gone
        leaves the break open again.

        `breaks`: the engine's breaks with `action` (break_id unique). `pending`: PENDING_COLUMNS.
        `outbox`: OUTBOX_COLUMNS (inserted once per task_id, never replaced). `reconciled` False
        when the channel's files were refused: then no break is closed for not being seen.
        Break state: a new break opens (first seen today); a break seen again keeps its first-seen
        date, and reopens when it was closed on or before today. A run judges only its own day's
        records, so it closes only what its day reported before: an OPEN or REPAIRING break this
        channel reported for this date, not seen in this rerun and reported for no other date, is
        closed (compare-and-set; one whose status someone changed after this date is left
        alone). Breaks of earlier days stay open, and age, until a rerun of their day no longer
        finds them, a late counterpart answers them (`matched_late`) or their status is moved (repair,
        write-off).
        """
        con = self.con
        con.execute("BEGIN TRANSACTION").fetchall()
        try:
            # As Arrow, once each: a registered Polars frame is converted again by every query.
            if "reference" not in breaks.columns:
                breaks = breaks.with_columns(pl.lit(None, dtype=pl.String).alias("reference"))
            con.register("day_breaks", as_arrow(breaks))
            con.register("day_pending", as_arrow(pending))
            con.register("day_outbox", as_arrow(outbox))
            d = business_date
            self.execute(
                """UPDATE breaks SET status = r.from_status, status_date = r.from_status_date
                   FROM break_resolutions r
                   WHERE r.business_date = ? AND r.channel = ? AND breaks.break_id = r.break_id
                     AND breaks.status = 'CLOSED' AND breaks.status_date = ?""",
                [d, channel, d],
            )
            self.execute("DELETE FROM break_resolutions WHERE business_date = ? AND channel = ?", [d, channel])
            if matched_late is not None and matched_late.height:
                late = matched_late.select("break_id", "channel_txn_id", "payment_id")
                con.register("day_matched_late", as_arrow(late))
                try:
                    self.execute(
                        """INSERT INTO break_resolutions BY NAME
                           SELECT ? AS business_date, ? AS channel, m.break_id, s.status AS from_status,
                                  s.status_date AS from_status_date, m.channel_txn_id, m.payment_id
                           FROM day_matched_late m JOIN breaks s USING (break_id)
                           WHERE s.status IN ('OPEN', 'REPAIRING') AND s.status_date <= ? AND s.channel = ?""",
                        [d, channel, d, channel],
                    )
                finally:
                    con.unregister("day_matched_late")
                self.execute(
                    """UPDATE breaks SET status = 'CLOSED', status_date = ?
                       WHERE status IN ('OPEN', 'REPAIRING') AND break_id IN (
                           SELECT break_id FROM break_resolutions WHERE business_date = ? AND channel = ?)""",
                    [d, d, channel],
                )
            self.execute("DELETE FROM pending WHERE as_of_date = ? AND channel = ?", [d, channel])
            self.execute(
                f"INSERT INTO pending SELECT ?, ?, {', '.join(c for c in PENDING_COLUMNS if c != 'channel')}"
                " FROM day_pending",
                [d, channel],
            )
            self.execute(
                """INSERT INTO breaks (break_id, kind, channel, payment_id, channel_txn_id, currency, rule_id, status,
                                      first_seen_date, last_seen_date, status_date, reference)
                   SELECT break_id, kind, channel, payment_id, channel_txn_id, currency, rule_id, 'OPEN', ?, ?, ?, reference
                   FROM day_breaks ON CONFLICT (break_id) DO NOTHING""",
                [d, d, d],
            )
            # A break reported again keeps the reference it was first given; one an older
            # warehouse kept without it learns it now.
            self.execute(
                """UPDATE breaks SET reference = b.reference FROM day_breaks b
                   WHERE breaks.break_id = b.break_id AND breaks.reference IS NULL AND b.reference IS NOT NULL"""
            )
            self.execute(
                """UPDATE breaks SET first_seen_date = least(first_seen_date, ?), last_seen_date = greatest(last_seen_date, ?)
                   WHERE break_id IN (SELECT break_id FROM day_breaks)""",
                [d, d],
            )
            self.execute(
                """UPDATE breaks SET status = 'OPEN', status_date = ?
                   WHERE break_id IN (SELECT break_id FROM day_breaks) AND status = 'CLOSED' AND status_date <= ?""",
                [d, d],
            )
            # Only a rerun can close a break for not being seen: a first run of the day has reported
            # nothing for it yet, and skips this (0.97 s to 0.28 s at four months of 110,000
            # breaks a day). A rerun reads the other days' reports from the earliest first_seen_date
            # of the breaks the day reported before (above _OVERDUE_CANDIDATES), not the whole
            # history (0.79 s to 0.35 s).
            if (
                reconciled
                and self.execute(
                    "SELECT EXISTS (SELECT 1 FROM break_history WHERE business_date = ? AND channel = ?)", [d, channel]
                )[0][0]
            ):
                self.execute(
                    """WITH reported AS (SELECT break_id FROM break_history WHERE business_date = ? AND channel = ?)
                       UPDATE breaks SET status = 'CLOSED', status_date = ?
                       WHERE channel = ? AND status IN ('OPEN', 'REPAIRING') AND status_date <= ?
                         AND break_id IN (SELECT break_id FROM reported)
                         AND break_id NOT IN (SELECT break_id FROM day_breaks)
                         AND break_id NOT IN (
                             SELECT break_id FROM break_history WHERE business_date <> ? AND channel = ?
                               AND business_date >= (
                                   SELECT min(first_seen_date) FROM breaks
                                   WHERE break_id IN (SELECT break_id FROM reported)))""",
                    [d, channel, d, channel, d, d, channel],
                )
            self.execute("DELETE FROM break_history WHERE business_date = ? AND channel = ?", [d, channel])
            # The status reported is the break's status on this day: a move dated later (by hand,
            # logged) reports what it moved from; a close dated later (a rerun of another day) OPEN.
            self.execute(
                """INSERT INTO break_history
                   SELECT ?, b.break_id, b.kind, b.channel, b.payment_id, b.channel_txn_id, b.internal_amount_minor,
                          b.channel_amount_minor, b.currency, b.delta_minor, b.rule_id,
                          CASE WHEN s.status_date <= ? THEN s.status
                               ELSE coalesce(m.before, CASE WHEN s.status = 'CLOSED' THEN 'OPEN' ELSE s.status END)
                          END,
                          s.first_seen_date, date_diff('day', s.first_seen_date, ?::DATE), b.action, b.trace_id
                   FROM day_breaks b JOIN breaks s USING (break_id)
                   LEFT JOIN (SELECT break_id, arg_min(from_status, seq) AS before FROM break_status_log
                              WHERE status_date > ? GROUP BY break_id) m USING (break_id)""",
                [d, d, d, d],
            )
            self.execute(
                f"INSERT INTO outbox SELECT {', '.join(OUTBOX_COLUMNS)} FROM day_outbox ON CONFLICT (task_id) DO NOTHING"
            )
            self.execute("DELETE FROM quarantine_log WHERE business_date = ? AND channel = ?", [d, channel])
            for q in quarantined:
                self.execute(
                    "INSERT INTO quarantine_log VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [d, channel, q["file"], q.get("sha256"), q["reason"], q.get("line", 0), q["detail"]],
                )
            self.execute(
                "INSERT OR REPLACE INTO run_log VALUES (?, ?, ?, ?)",
                [d, channel, rule_ref, json.dumps(summary)],
            )
            failpoints.reached(f"persist:{channel}:before_commit")
            con.execute("COMMIT").fetchall()
            failpoints.reached(f"persist:{channel}:committed")
        except BaseException:
            con.execute("ROLLBACK").fetchall()
            raise
        finally:
            for name in ("day_breaks", "day_pending", "day_outbox"):
                con.unregister(name)

    def breaks_of_day(self, business_date: date, channels: list[str]) -> pl.DataFrame:
        """The breaks reported for `business_date` on `channels` (HISTORY_COLUMNS), sorted by
        channel, kind, payment_id, channel_txn_id, break_id."""
        query = f"""
            SELECT {", ".join(HISTORY_COLUMNS)} FROM break_history
            WHERE business_date = ? AND list_contains(?, channel)
            ORDER BY channel, kind, payment_id NULLS FIRST, channel_txn_id NULLS FIRST, break_id"""
        return self.frame(query, [business_date, channels])

    def open_breaks(self, business_date: date, channels: list[str]) -> pl.DataFrame:
        """The breaks of `channels` still open on `business_date` (HISTORY_COLUMNS): every break
        reported on that day or before and not closed, written off or resolved on or before it,
        as its latest report up to that day says, `age_days` counted to `business_date`. A later
        day's events do not change it, so a rerun of the day reports the same rows. Sorted like
        `breaks_of_day`."""
        columns = ", ".join(
            "date_diff('day', h.first_seen_date, ?::DATE) AS age_days" if c == "age_days" else f"h.{c}"
            for c in HISTORY_COLUMNS
        )
        # The open ones first, then each one's latest report by a join on (id, date): a window
        # over every history row took 1.9 s against 1.3 s for a month of 110,000 breaks a day.
        query = f"""
            WITH open_ids AS (
                SELECT break_id FROM breaks
                WHERE list_contains(?, channel) AND (status IN ('OPEN', 'REPAIRING') OR status_date > ?)),
            latest AS (
                SELECT break_id, max(business_date) AS business_date FROM break_history
                WHERE business_date <= ? AND break_id IN (SELECT break_id FROM open_ids) GROUP BY break_id)
            SELECT {columns} FROM break_history h JOIN latest USING (break_id, business_date)
            ORDER BY h.channel, h.kind, h.payment_id NULLS FIRST, h.channel_txn_id NULLS FIRST, h.break_id"""
        d = business_date
        return self.frame(query, [channels, d, d, d])

    def closed_breaks(self, business_date: date, channels: list[str]) -> pl.DataFrame:
        """The breaks of `channels` closed on `business_date` (as `closed_on` counts them), each as
        its latest report up to that day says (HISTORY_COLUMNS; status CLOSED, `age_days` its age
        when it closed), with how it closed:
        - `closed_by` "late_line" or "late_record" (a counterpart of that day answered it;
          `closed_with` the line's channel id or our record's payment id: break_resolutions);
        - "moved" (someone closed it as of that day: break_status_log; `closed_with` who);
        - "no_longer_reported" (a rerun of its day no longer found it: the input was corrected;
          when no day reports it any more, its amounts are unknown and `business_date` is the
          last day that did). Sorted like `breaks_of_day`."""
        columns = ", ".join(
            {
                "business_date": "coalesce(h.business_date, b.last_seen_date) AS business_date",
                "status": "'CLOSED' AS status",
                "age_days": "date_diff('day', b.first_seen_date, ?::DATE) AS age_days",
                "first_seen_date": "b.first_seen_date",
                "rule_id": "b.rule_id",
                "action": "coalesce(h.action, 'MANUAL_REVIEW') AS action",
            }.get(
                c,
                f"b.{c}"
                if c in ("break_id", "kind", "channel", "payment_id", "channel_txn_id", "currency")
                else f"h.{c}",
            )
            for c in HISTORY_COLUMNS
        )
        # The history from the earliest first_seen_date of the day's closed breaks on (above
        # _OVERDUE_CANDIDATES): mostly recent ones (0.32 s to 0.09 s at four months of 110,000
        # breaks a day, for the day's 54,702 closed ones).
        query = f"""
            WITH closed AS (
                SELECT * FROM breaks WHERE list_contains(?, channel) AND status = 'CLOSED' AND status_date = ?),
            latest AS (
                SELECT break_id, max(business_date) AS business_date FROM break_history
                WHERE business_date <= ? AND business_date >= (SELECT min(first_seen_date) FROM closed)
                  AND break_id IN (SELECT break_id FROM closed) GROUP BY break_id),
            moved AS (
                SELECT break_id, arg_max(actor, seq) AS actor FROM break_status_log
                WHERE to_status = 'CLOSED' AND status_date = ? GROUP BY break_id)
            SELECT {columns},
                   CASE WHEN r.break_id IS NOT NULL THEN
                            CASE WHEN b.kind = 'MISSING_AT_CHANNEL' THEN 'late_line' ELSE 'late_record' END
                        WHEN m.break_id IS NOT NULL THEN 'moved'
                        ELSE 'no_longer_reported' END AS closed_by,
                   CASE WHEN r.break_id IS NOT NULL THEN
                            CASE WHEN b.kind = 'MISSING_AT_CHANNEL' THEN r.channel_txn_id ELSE r.payment_id END
                        WHEN m.break_id IS NOT NULL THEN m.actor END AS closed_with
            FROM closed b
            LEFT JOIN latest l USING (break_id)
            LEFT JOIN break_history h ON h.break_id = b.break_id AND h.business_date = l.business_date
            LEFT JOIN break_resolutions r ON r.break_id = b.break_id AND r.business_date = ?
            LEFT JOIN moved m ON m.break_id = b.break_id
            ORDER BY b.channel, b.kind, b.payment_id NULLS FIRST, b.channel_txn_id NULLS FIRST, b.break_id"""
        d = business_date
        return self.frame(query, [channels, d, d, d, d, d])

    def move_break(
        self, break_id: str, *, expected: str, to: str, on: date, reason: str, actor: str
    ) -> tuple[str, str]:
        """Move a break from status `expected` to `to` as of business date `on` (compare-and-set),
        logging who did it and why; returns (outcome, the status now): "moved"; "already" when
        this very change was made before (a retry changes nothing); "conflict" when the break's
        status is not `expected` (someone or a run moved it first: nothing changes). Raises
        KeyError for an unknown break, ValueError for a status outside MOVABLE_STATUSES, an empty
        reason, or a date before the break's first report or its last change."""
        row = self.move_breaks([break_id], expected=expected, to=to, on=on, reason=reason, actor=actor).row(
            0, named=True
        )
        if row["outcome"] == "unknown":
            raise KeyError(f"no break {break_id} in {self.path}")
        if row["outcome"] == "refused":
            raise ValueError(row["detail"])
        return row["outcome"], row["status"]

    def move_breaks(
        self, break_ids: list[str], *, expected: str, to: str, on: date, reason: str, actor: str
    ) -> pl.DataFrame:
        """`move_break` for many breaks in one transaction (a write-off of thousands at once):
        one row per distinct id, in order, with `outcome` (moved, already, conflict, unknown, or
        refused: `on` is before the break's first report or its last change, `detail` says which)
        and `status` (the break's status now). Raises ValueError as `move_break` does for the
        statuses, the reason and who."""
        bad = sorted({expected, to} - set(MOVABLE_STATUSES))
        if bad or expected == to:
            raise ValueError(
                f"a move goes between two different statuses of {', '.join(MOVABLE_STATUSES)}, not {bad or to}"
            )
        if not reason.strip() or not actor.strip():
            raise ValueError("a move needs a reason and who made it")
        ids = pl.DataFrame({"break_id": list(dict.fromkeys(break_ids))}, schema={"break_id": pl.String})
        con = self.con
        con.execute("BEGIN TRANSACTION").fetchall()
        con.register("move_ids", as_arrow(ids.with_row_index("ord")))
        try:
            # Each break's state and its last move, read inside the transaction that changes them.
            state = self.frame(
                """SELECT i.ord, i.break_id, b.status, b.status_date, b.first_seen_date,
                          l.from_status AS l_from, l.to_status AS l_to, l.status_date AS l_date, l.reason AS l_reason
                   FROM move_ids i LEFT JOIN breaks b USING (break_id)
                   LEFT JOIN (SELECT * FROM break_status_log WHERE break_id IN (SELECT break_id FROM move_ids)
                              QUALIFY row_number() OVER (PARTITION BY break_id ORDER BY seq DESC) = 1) l
                     USING (break_id)
                   ORDER BY i.ord""",
                [],
            )
            already = (
                (pl.col("status") == to)
                & (pl.col("l_from") == expected)
                & (pl.col("l_to") == to)
                & (pl.col("l_date") == on)
                & (pl.col("l_reason") == reason)
            )
            early = (pl.col("first_seen_date") > on) | (pl.col("status_date") > on)
            decided = state.with_columns(
                pl.when(pl.col("status").is_null())
                .then(pl.lit("unknown"))
                .when(already.fill_null(False))
                .then(pl.lit("already"))
                .when(pl.col("status") != expected)
                .then(pl.lit("conflict"))
                .when(early)
                .then(pl.lit("refused"))
                .otherwise(pl.lit("moved"))
                .alias("outcome")
            ).with_columns(
                pl.when(pl.col("outcome") == "refused")
                .then(
                    pl.format(
                        "{} is before the break was first reported ({}) or last changed ({})",
                        pl.lit(on.isoformat()),
                        pl.col("first_seen_date").dt.to_string("%Y-%m-%d"),
                        pl.col("status_date").dt.to_string("%Y-%m-%d"),
                    )
                )
                .alias("detail"),
                pl.when(pl.col("outcome") == "moved").then(pl.lit(to)).otherwise(pl.col("status")).alias("status"),
            )
            moving = decided.filter(pl.col("outcome") == "moved").select("break_id")
            if moving.height:
                con.register("move_now", as_arrow(moving))
                try:
                    moved = self.execute(
                        """UPDATE breaks SET status = ?, status_date = ?
                           WHERE break_id IN (SELECT break_id FROM move_now) AND status = ?""",
                        [to, on, expected],
                    )
                    assert moved[0][0] == moving.height, (moved, moving.height)
                    self.execute(
                        """INSERT INTO break_status_log
                           SELECT m.break_id, coalesce(s.seq, 0) + 1, ?, ?, ?, ?, ?
                           FROM move_now m LEFT JOIN (SELECT break_id, max(seq) AS seq FROM break_status_log
                                                      GROUP BY break_id) s USING (break_id)""",
                        [expected, to, on, reason, actor],
                    )
                finally:
                    con.unregister("move_now")
            con.execute("COMMIT").fetchall()
        except BaseException:
            con.execute("ROLLBACK").fetchall()
            raise
        finally:
            con.unregister("move_ids")
        return decided.select("break_id", "outcome", "status", "detail")

    def break_record(self, break_id: str) -> dict[str, pl.DataFrame]:
        """What the warehouse knows of one break: its `state` (one row or none), its `reports`
        (break_history, by day), its `moves` (break_status_log, in order) and its `resolutions`
        (the day and the pair that matched it late: break_resolutions)."""
        return {
            "state": self.frame("SELECT * FROM breaks WHERE break_id = ?", [break_id]),
            "reports": self.frame(
                f"SELECT {', '.join(HISTORY_COLUMNS)} FROM break_history WHERE break_id = ? ORDER BY business_date",
                [break_id],
            ),
            "moves": self.frame("SELECT * FROM break_status_log WHERE break_id = ? ORDER BY seq", [break_id]),
            "resolutions": self.frame(
                "SELECT * FROM break_resolutions WHERE break_id = ? ORDER BY business_date", [break_id]
            ),
        }

    def history_summary(self, business_date: date) -> pl.DataFrame:
        """The breaks reported per day up to `business_date`, per channel and currency: count and
        amount at risk (|delta| when both sides are known, else |the known side|), summed here,
        not in Python: a month of a large day's history is millions of rows. Columns as the
        report's HISTORY_SCHEMA (amount_at_risk_minor Int128, exact)."""
        frame = self.frame(
            """SELECT business_date, channel, currency, count(*) AS breaks,
                      sum(coalesce(abs(delta_minor), abs(channel_amount_minor), abs(internal_amount_minor), 0)::HUGEINT)
                          AS amount_at_risk_minor
               FROM break_history WHERE business_date <= ?
               GROUP BY business_date, channel, currency ORDER BY business_date, channel, currency""",
            [business_date],
        )
        return frame.with_columns(pl.col("breaks").cast(pl.Int64), pl.col("amount_at_risk_minor").cast(pl.Int128))

    def closed_on(self, business_date: date, channel: str) -> int:
        rows = self.execute(
            "SELECT count(*) FROM breaks WHERE channel = ? AND status = 'CLOSED' AND status_date = ?",
            [channel, business_date],
        )
        return int(rows[0][0])

    def run_summary(self, business_date: date, channel: str) -> dict[str, Any] | None:
        rows = self.execute(
            "SELECT summary FROM run_log WHERE business_date = ? AND channel = ?", [business_date, channel]
        )
        return json.loads(rows[0][0]) if rows else None

    def count(self, table: str) -> int:
        assert table.isidentifier(), table
        return int(self.execute(f"SELECT count(*) FROM {table}")[0][0])
