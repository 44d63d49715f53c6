"""The T+1 matching engine of one channel: our records against the channel's lines, in DuckDB.

Inputs are typed frames (amounts Int64 minor units): our records of the channel (INTERNAL_SCHEMA plus
`since_date`, the business date a carried-forward record first appeared, and optionally
`after_cutoff`, else computed here by `after_cutoff`) and the channel's lines (MAPPED_LINE_SCHEMA).
Everything is compiled from the channel's `Rule`:

1. Match passes in the rule's key order, each over the lines earlier passes left:
   - `channel_txn_id`: the line's id equals the one our record knows. A line claimed by two of our
     records is AMBIGUOUS (unless the strategy is many_to_one: then it is an aggregated line).
   - `payment_id`: the line's merchant reference is our payment id. A line may join an order that
     already has a line (split settlement, duplicate charge): the group decides below.
   - `amount_time`: a line with no reference and one of our records with no line and no channel id,
     same currency and signed amount, booked within `amount_time_window_s` of our creation time. Only
     a pair that is each other's only candidate matches; every other candidate is AMBIGUOUS: one
     break per line, our candidates belong to it (never a silent pick).
2. Groups: one order with its lines. One line: the pair is classified. Several: one_to_many takes
   them as a split settlement when they sum to the order, as duplicates when each carries the whole
   amount (the first by pass, booking time, file and line is the order's; each other one is a
   DUPLICATE_PAYMENT), else their sum is classified; one_to_one and many_to_one take the extras as
   duplicates. many_to_one: a line claimed by several of our records is classified against their sum.
3. Classification is `classify_pair`'s precedence compiled to SQL (`pipelines.matching.sql`). With
   `fees.basis: net` the channel's net plus our contracted fee stands for its gross and no fee is
   compared separately.
4. Leftovers: our SUCCEEDED or PROCESSING record with no line is pending when it was created after
   the rule's cutoff (or was already pending) and fewer than `window_days` have passed since it first
   appeared; else a SUCCEEDED one is MISSING_AT_CHANNEL. A SUCCEEDED line with no record is
   MISSING_INTERNAL. Records and lines that moved no money on either side are agreed (matched).

Every record and every line ends in exactly one of matched, pending, breaks (invariant 6, asserted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import duckdb
import numpy as np
import polars as pl

from pipelines.frames import as_arrow
from pipelines.matching.rules import MatchKey, Rule, Strategy
from pipelines.matching.sql import (
    PairColumns,
    break_id_expr,
    classify_expr,
    expected_fee_expr,
    is_credit_expr,
    lit,
    signed_amount_expr,
)
from pipelines.records import BreakKind, PaymentStatus

OK = lit(PaymentStatus.SUCCEEDED.value)
PROCESSING = lit(PaymentStatus.PROCESSING.value)

# The columns of the engine's break frame (before the warehouse adds status, age and action).
ENGINE_BREAK_SCHEMA: dict[str, pl.DataType] = {
    "break_id": pl.String(),
    "kind": pl.String(),
    "channel": pl.String(),
    "payment_id": pl.String(),
    "channel_txn_id": pl.String(),
    "internal_amount_minor": pl.Int64(),
    "channel_amount_minor": pl.Int64(),
    "currency": pl.String(),
    "delta_minor": pl.Int64(),
    "rule_id": pl.String(),
    "trace_id": pl.String(),
    "channel_succeeded": pl.Boolean(),
    # A MISSING_INTERNAL (or AMBIGUOUS) line's merchant reference, "" when it has none (null for
    # the other kinds): not reported (it is not part of the break's identity), but kept in the
    # warehouse so a late record of ours finds the earlier break that names it by a query.
    "reference": pl.String(),
}


@dataclass
class ChannelResult:
    """What one channel's match produced: breaks (ENGINE_BREAK_SCHEMA), our records still pending
    (input columns), and the counts of each side's rows by outcome plus carry-forward counts."""

    breaks: pl.DataFrame
    pending: pl.DataFrame
    internal: dict[str, int] = field(default_factory=dict)
    channel: dict[str, int] = field(default_factory=dict)
    carry_forward: dict[str, int] = field(default_factory=dict)


def _pair_columns(rule: Rule, *, amount: str, fee: str, net: str, status: str, currency: str) -> PairColumns:
    """The classification inputs of table `gc`, whose channel side is given by the arguments."""
    if rule.fees.basis == "net":
        channel_amount, channel_fee = f"({net}::HUGEINT + exp_fee)", "NULL"
    else:
        channel_amount, channel_fee = amount, fee
    return PairColumns(
        credit="credit",
        ours="ours",
        expected_fee="exp_fee",
        internal_currency="i_currency",
        internal_status="i_status",
        channel_amount=channel_amount,
        channel_currency=currency,
        channel_status=status,
        channel_fee=channel_fee,
    )


class _Engine:
    def __init__(self, con: duckdb.DuckDBPyConnection, rule: Rule, business_date: date) -> None:
        self.con, self.rule, self.day = con, rule, business_date

    def sql(self, query: str) -> None:
        self.con.execute(query).fetchall()

    def row(self, query: str) -> tuple[Any, ...]:
        # fetchall, not fetchone: DuckDB 2 refuses new work while a result is left unfinished.
        rows = self.con.execute(query).fetchall()
        assert len(rows) == 1, rows
        return tuple(rows[0])

    # --- staging -----------------------------------------------------------------------------
    def stage(self) -> None:
        rule = self.rule
        self.sql(f"""
            CREATE OR REPLACE TEMP TABLE mi AS
            SELECT row_number() OVER () AS irow, payment_id, biz_type, nullif(channel_txn_id, '') AS channel_txn_id,
                   amount_minor, currency, status, created_at, trace_id, since_date, after_cutoff,
                   {signed_amount_expr("biz_type", "amount_minor")} AS ours,
                   {expected_fee_expr(rule, "biz_type", "amount_minor")} AS exp_fee,
                   {is_credit_expr("biz_type")} AS credit
            FROM in_internal""")
        self.sql("""
            CREATE OR REPLACE TEMP TABLE ml AS
            SELECT row_number() OVER () AS lrow, nullif(channel_txn_id, '') AS channel_txn_id,
                   nullif(payment_id, '') AS payment_id, gross_minor, fee_minor, net_minor, currency, status,
                   booked_at, source_file, line_no
            FROM in_lines""")
        self.sql("CREATE OR REPLACE TEMP TABLE asg (lrow BIGINT, irow BIGINT, pass INTEGER)")
        self.sql("CREATE OR REPLACE TEMP TABLE amb_l (lrow BIGINT)")
        self.sql("CREATE OR REPLACE TEMP TABLE amb_i (irow BIGINT)")

    _FREE_L = """(SELECT * FROM ml l WHERE NOT EXISTS (SELECT 1 FROM asg a WHERE a.lrow = l.lrow)
                  AND NOT EXISTS (SELECT 1 FROM amb_l b WHERE b.lrow = l.lrow))"""
    _FREE_I = "(SELECT * FROM mi i WHERE NOT EXISTS (SELECT 1 FROM amb_i b WHERE b.irow = i.irow))"

    # --- passes ------------------------------------------------------------------------------
    def pass_channel_txn_id(self, k: int) -> None:
        self.sql(f"""
            CREATE OR REPLACE TEMP TABLE cand AS
            SELECT l.lrow, i.irow, count(*) OVER (PARTITION BY l.lrow) AS n_i
            FROM {self._FREE_L} l JOIN {self._FREE_I} i ON l.channel_txn_id = i.channel_txn_id""")
        if self.rule.strategy == Strategy.MANY_TO_ONE:
            self.sql(f"INSERT INTO asg SELECT lrow, irow, {k} FROM cand")
        else:
            self.sql(f"INSERT INTO asg SELECT lrow, irow, {k} FROM cand WHERE n_i = 1")
            self.sql("INSERT INTO amb_l SELECT DISTINCT lrow FROM cand WHERE n_i > 1")
            self.sql("INSERT INTO amb_i SELECT DISTINCT irow FROM cand WHERE n_i > 1")

    def pass_payment_id(self, k: int) -> None:
        # Our payment ids are unique (the loader refuses duplicates), so a line joins one order at most.
        self.sql(f"""
            INSERT INTO asg SELECT l.lrow, i.irow, {k}
            FROM {self._FREE_L} l JOIN {self._FREE_I} i ON l.payment_id = i.payment_id""")

    def pass_amount_time(self, k: int) -> None:
        window_us = self.rule.amount_time_window_s * 1_000_000
        self.sql(f"""
            CREATE OR REPLACE TEMP TABLE cand AS
            WITH c AS (
                SELECT l.lrow, i.irow
                FROM {self._FREE_L} l
                JOIN (SELECT * FROM {self._FREE_I} i2
                      WHERE i2.channel_txn_id IS NULL AND NOT EXISTS (SELECT 1 FROM asg a WHERE a.irow = i2.irow)) i
                  ON l.currency = i.currency AND l.gross_minor = i.ours
                WHERE l.payment_id IS NULL
                  AND abs(epoch_us(l.booked_at) - epoch_us(i.created_at)) <= {window_us})
            SELECT lrow, irow, count(*) OVER (PARTITION BY lrow) AS n_i, count(*) OVER (PARTITION BY irow) AS n_l
            FROM c""")
        self.sql(f"INSERT INTO asg SELECT lrow, irow, {k} FROM cand WHERE n_i = 1 AND n_l = 1")
        self.sql("INSERT INTO amb_l SELECT DISTINCT lrow FROM cand WHERE NOT (n_i = 1 AND n_l = 1)")
        self.sql("INSERT INTO amb_i SELECT DISTINCT irow FROM cand WHERE NOT (n_i = 1 AND n_l = 1)")

    # --- groups and classification -----------------------------------------------------------
    def classify_groups(self) -> None:
        rule = self.rule
        tol = rule.amount_tolerance_minor
        # Lines claimed by several of our records: aggregated lines (many_to_one only).
        self.sql("CREATE OR REPLACE TEMP TABLE agg_l AS SELECT lrow FROM asg GROUP BY lrow HAVING count(*) > 1")
        # Most orders have exactly one line: those skip the window and the aggregation (at 10M rows
        # that is most of this step's time); only orders with several lines are ranked and summed.
        self.sql("""
            CREATE OR REPLACE TEMP TABLE oa AS
            SELECT a.* FROM asg a WHERE NOT EXISTS (SELECT 1 FROM agg_l g WHERE g.lrow = a.lrow)""")
        self.sql("CREATE OR REPLACE TEMP TABLE multi AS SELECT irow FROM oa GROUP BY irow HAVING count(*) > 1")
        self.sql("""
            CREATE OR REPLACE TEMP TABLE og AS
            SELECT a.irow, l.*, 1::BIGINT AS r
            FROM oa a JOIN ml l USING (lrow)
            WHERE NOT EXISTS (SELECT 1 FROM multi m WHERE m.irow = a.irow)
            UNION ALL
            SELECT a.irow, l.*,
                   row_number() OVER (PARTITION BY a.irow
                                      ORDER BY a.pass, l.booked_at NULLS LAST, l.source_file, l.line_no) AS r
            FROM oa a JOIN multi USING (irow) JOIN ml l USING (lrow)""")
        if rule.strategy == Strategy.ONE_TO_MANY:
            mode = f"""CASE WHEN g.n = 1 THEN 'single'
                            WHEN abs(g.sum_gross - i.ours::HUGEINT) <= {tol} THEN 'split'
                            WHEN g.all_full THEN 'dup' ELSE 'sum' END"""
        else:
            mode = "CASE WHEN g.n = 1 THEN 'single' ELSE 'dup' END"
        self.sql(f"""
            CREATE OR REPLACE TEMP TABLE gc AS
            WITH g AS (
                SELECT irow, 1::BIGINT AS n, gross_minor::HUGEINT AS sum_gross, fee_minor::HUGEINT AS sum_fee,
                       net_minor::HUGEINT AS sum_net, status = {OK} AS any_ok, true AS all_full,
                       gross_minor AS p_gross, fee_minor AS p_fee, net_minor AS p_net, status AS p_status,
                       currency AS p_currency, channel_txn_id AS p_txn
                FROM og o WHERE NOT EXISTS (SELECT 1 FROM multi m WHERE m.irow = o.irow)
                UNION ALL
                SELECT o.irow, count(*), sum(o.gross_minor), sum(o.fee_minor), sum(o.net_minor),
                       bool_or(o.status = {OK}), bool_and(abs(o.gross_minor::HUGEINT - i.ours::HUGEINT) <= {tol}),
                       arg_min(o.gross_minor, o.r), arg_min(o.fee_minor, o.r), arg_min(o.net_minor, o.r),
                       arg_min(o.status, o.r), arg_min(o.currency, o.r), arg_min(o.channel_txn_id, o.r)
                FROM og o JOIN multi USING (irow) JOIN mi i USING (irow) GROUP BY o.irow)
            SELECT i.irow, i.payment_id, i.trace_id, i.biz_type, i.credit, i.ours, i.exp_fee,
                   i.currency AS i_currency, i.status AS i_status, g.*, {mode} AS mode
            FROM g JOIN mi i USING (irow)""")
        pair = _pair_columns(rule, amount="p_gross", fee="p_fee", net="p_net", status="p_status", currency="p_currency")
        whole = _pair_columns(
            rule,
            amount="sum_gross",
            fee="sum_fee",
            net="sum_net",
            status=f"(CASE WHEN any_ok THEN {OK} ELSE p_status END)",
            currency="p_currency",
        )
        k1, ia1, ca1 = classify_expr(rule, pair)
        k2, ia2, ca2 = classify_expr(rule, whole)
        self.sql(f"""
            CREATE OR REPLACE TEMP TABLE gv AS
            SELECT irow, payment_id, trace_id, p_txn, p_currency, mode,
                   CASE WHEN mode IN ('single', 'dup') THEN {k1} ELSE {k2} END AS kind,
                   CASE WHEN mode IN ('single', 'dup') THEN {ia1} ELSE {ia2} END AS internal_amount,
                   CASE WHEN mode IN ('single', 'dup') THEN {ca1} ELSE {ca2} END AS channel_amount,
                   CASE WHEN mode IN ('single', 'dup') THEN p_status = {OK} ELSE any_ok END AS channel_ok
            FROM gc""")
        # many_to_one: an aggregated line against the sum of the orders it covers.
        self.sql(f"""
            CREATE OR REPLACE TEMP TABLE ac AS
            SELECT a.lrow, min(i.payment_id) AS payment_id, min(i.trace_id) AS trace_id,
                   bool_and(i.credit) AS credit, sum(i.ours::HUGEINT) AS ours, sum(i.exp_fee) AS exp_fee,
                   CASE WHEN count(DISTINCT i.currency) = 1 THEN min(i.currency) ELSE 'MIXED' END AS i_currency,
                   CASE WHEN bool_and(i.status = {OK}) THEN {OK} ELSE min(i.status) END AS i_status,
                   min(l.gross_minor) AS gross_minor, min(l.fee_minor) AS fee_minor, min(l.net_minor) AS net_minor,
                   min(l.status) AS status, min(l.currency) AS currency, min(l.channel_txn_id) AS channel_txn_id
            FROM asg a JOIN agg_l USING (lrow) JOIN mi i USING (irow) JOIN ml l USING (lrow)
            GROUP BY a.lrow""")
        agg = _pair_columns(
            rule, amount="gross_minor", fee="fee_minor", net="net_minor", status="status", currency="currency"
        )
        k3, ia3, ca3 = classify_expr(rule, agg)
        self.sql(f"""
            CREATE OR REPLACE TEMP TABLE av AS
            SELECT lrow, payment_id, trace_id, channel_txn_id, currency, {k3} AS kind,
                   {ia3} AS internal_amount, {ca3} AS channel_amount, status = {OK} AS channel_ok
            FROM ac""")

    # --- outcomes ------------------------------------------------------------------------------
    def outcomes(self) -> None:
        cf = self.rule.carry_forward
        day = f"DATE '{self.day.isoformat()}'"
        self.sql(f"""
            CREATE OR REPLACE TEMP TABLE i_out AS
            WITH amb AS (SELECT DISTINCT irow FROM amb_i),
                 agg_bad AS (SELECT DISTINCT a.irow FROM asg a JOIN av USING (lrow) WHERE av.kind IS NOT NULL),
                 assigned AS (SELECT DISTINCT irow FROM asg)
            SELECT i.irow, i.payment_id, i.since_date,
                   CASE
                     WHEN amb.irow IS NOT NULL OR gv.kind IS NOT NULL OR agg_bad.irow IS NOT NULL THEN 'breaks'
                     WHEN assigned.irow IS NOT NULL THEN 'matched'
                     WHEN i.status IN ({OK}, {PROCESSING}) AND (i.since_date < {day} OR i.after_cutoff)
                          AND ({day} - i.since_date) < {cf.window_days} THEN 'pending'
                     WHEN i.status = {OK} THEN 'missing'
                     ELSE 'matched'
                   END AS outcome,
                   assigned.irow IS NOT NULL AS assigned
            FROM mi i
            LEFT JOIN amb ON amb.irow = i.irow
            LEFT JOIN gv ON gv.irow = i.irow
            LEFT JOIN agg_bad ON agg_bad.irow = i.irow
            LEFT JOIN assigned ON assigned.irow = i.irow""")
        # A line belongs to at most one order group (og) or one aggregate (av), never both.
        self.sql(f"""
            CREATE OR REPLACE TEMP TABLE l_out AS
            WITH amb AS (SELECT DISTINCT lrow FROM amb_l)
            SELECT l.lrow,
                   CASE
                     WHEN amb.lrow IS NOT NULL THEN 'ambiguous'
                     WHEN av.lrow IS NOT NULL THEN CASE WHEN av.kind IS NULL THEN 'matched' ELSE 'breaks' END
                     WHEN o.lrow IS NOT NULL THEN
                       CASE WHEN o.r > 1 AND gv.mode = 'dup' THEN 'duplicate'
                            WHEN gv.kind IS NOT NULL THEN 'breaks' ELSE 'matched' END
                     WHEN l.status = {OK} THEN 'missing'
                     ELSE 'matched'
                   END AS outcome
            FROM ml l
            LEFT JOIN amb ON amb.lrow = l.lrow
            LEFT JOIN av ON av.lrow = l.lrow
            LEFT JOIN og o ON o.lrow = l.lrow
            LEFT JOIN gv ON gv.irow = o.irow""")

    def breaks(self) -> pl.DataFrame:
        rule = self.rule
        ch = lit(rule.channel)
        bid = break_id_expr(ch, "kind", "payment_id", "channel_txn_id")
        query = f"""
            WITH b AS (
                SELECT kind, payment_id, p_txn AS channel_txn_id, internal_amount, channel_amount,
                       p_currency AS currency, trace_id, channel_ok, NULL AS reference
                FROM gv WHERE kind IS NOT NULL
                UNION ALL
                SELECT kind, payment_id, channel_txn_id, internal_amount, channel_amount, currency, trace_id, channel_ok,
                       NULL
                FROM av WHERE kind IS NOT NULL
                UNION ALL
                SELECT {lit(BreakKind.DUPLICATE_PAYMENT)}, gv.payment_id, og.channel_txn_id, NULL, og.gross_minor::HUGEINT,
                       og.currency, gv.trace_id, og.status = {OK}, NULL
                FROM og JOIN gv USING (irow) WHERE og.r > 1 AND gv.mode = 'dup'
                UNION ALL
                SELECT {lit(BreakKind.MISSING_AT_CHANNEL)}, i.payment_id, NULL, i.ours::HUGEINT, NULL, i.currency,
                       i.trace_id, false, NULL
                FROM i_out o JOIN mi i USING (irow) WHERE o.outcome = 'missing'
                UNION ALL
                SELECT CASE WHEN o.outcome = 'ambiguous' THEN {lit(BreakKind.AMBIGUOUS)}
                            ELSE {lit(BreakKind.MISSING_INTERNAL)} END,
                       NULL, l.channel_txn_id, NULL, l.gross_minor::HUGEINT, l.currency, NULL, l.status = {OK},
                       coalesce(l.payment_id, '')
                FROM l_out o JOIN ml l USING (lrow) WHERE o.outcome IN ('missing', 'ambiguous'))
            SELECT {bid} AS break_id, kind, {ch} AS channel, payment_id, channel_txn_id,
                   internal_amount::BIGINT AS internal_amount_minor, channel_amount::BIGINT AS channel_amount_minor,
                   currency,
                   CASE WHEN kind = {lit(BreakKind.CURRENCY_MISMATCH)} THEN NULL
                        ELSE (channel_amount - internal_amount)::BIGINT END AS delta_minor,
                   {lit(rule.ref)} AS rule_id, trace_id, channel_ok AS channel_succeeded, reference::VARCHAR AS reference
            FROM b
            QUALIFY row_number() OVER (PARTITION BY break_id ORDER BY {BREAK_PICK_SQL}) = 1
            ORDER BY break_id"""
        frame = self.con.sql(query).pl()
        return frame.cast(ENGINE_BREAK_SCHEMA)

    def counts(self) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
        day = f"DATE '{self.day.isoformat()}'"
        row = self.row(f"""
            SELECT count(*), count(*) FILTER (outcome = 'matched'), count(*) FILTER (outcome = 'pending'),
                   count(*) FILTER (outcome IN ('breaks', 'missing')),
                   count(*) FILTER (since_date < {day}),
                   count(*) FILTER (since_date < {day} AND assigned),
                   count(*) FILTER (since_date < {day} AND outcome = 'missing')
            FROM i_out""")
        internal = {"rows_in": row[0], "matched": row[1], "pending": row[2], "breaks": row[3], "rejected": 0}
        carry = {
            "pending_in": row[4],
            "matched_from_previous": row[5],
            "expired_to_breaks": row[6],
            "pending_out": row[2],
        }
        lrow = self.row("""
            SELECT count(*), count(*) FILTER (outcome = 'matched'),
                   count(*) FILTER (outcome IN ('breaks', 'missing', 'ambiguous', 'duplicate'))
            FROM l_out""")
        channel = {"rows_in": lrow[0], "matched": lrow[1], "pending": 0, "breaks": lrow[2], "rejected": 0}
        for side in (internal, channel):
            total = side["matched"] + side["pending"] + side["breaks"] + side["rejected"]
            assert side["rows_in"] == total, f"invariant 6 broken for {self.rule.channel}: {side}"
        return internal, channel, carry

    def pending(self) -> pl.DataFrame:
        return self.con.sql("""
            SELECT p.* EXCLUDE (after_cutoff) FROM in_internal p
            JOIN (SELECT payment_id FROM i_out WHERE outcome = 'pending') o USING (payment_id)
            ORDER BY payment_id""").pl()

    def cleanup(self) -> None:
        for table in (
            "mi",
            "ml",
            "asg",
            "amb_l",
            "amb_i",
            "cand",
            "agg_l",
            "og",
            "gc",
            "gv",
            "ac",
            "av",
            "i_out",
            "l_out",
        ):
            self.sql(f"DROP TABLE IF EXISTS {table}")


# Several rows of one break_id (two duplicate lines of one order with the same channel id, say)
# are reported as one: the first in this order over every column reported, so the pick never
# depends on the order rows arrived in (nor on how a channel was cut into shards). The SQL (over
# the engine's columns) and the same order over ENGINE_BREAK_SCHEMA's columns, nulls first.
BREAK_PICK_SQL = ", ".join(
    f"{c} NULLS FIRST"
    for c in (
        "kind", "channel_txn_id", "internal_amount", "channel_amount", "currency", "trace_id", "channel_ok", "reference"
    )
)  # fmt: skip
BREAK_PICK_COLUMNS = (
    "kind", "channel_txn_id", "internal_amount_minor", "channel_amount_minor", "currency", "trace_id",
    "channel_succeeded", "reference",
)  # fmt: skip

# Whether `match_channel` takes the clean one-to-one pairs out first (`_take_clean_pairs`); off, every
# row goes through the general passes. The results are the same; tests compare the two.
FAST_PATH = True
# Pairs classified per statement on the fast path (memory is bounded by one batch's columns).
PAIR_BATCH = 1_000_000
PAIR_CHUNK = 122_880  # DuckDB's row group size

PASSES = {
    MatchKey.CHANNEL_TXN_ID: _Engine.pass_channel_txn_id,
    MatchKey.PAYMENT_ID: _Engine.pass_payment_id,
    MatchKey.AMOUNT_TIME: _Engine.pass_amount_time,
}


def match_channel(
    con: duckdb.DuckDBPyConnection,
    rule: Rule,
    business_date: date,
    internal: pl.DataFrame,
    lines: pl.DataFrame,
) -> ChannelResult:
    """Match one channel's day. `internal`: our records of the channel (INTERNAL_SCHEMA columns plus
    `since_date` Date, and `after_cutoff` Boolean when the caller decides it: when absent it is
    computed from `created_at` by `after_cutoff`, for the records the fast path leaves only);
    `lines`: its statement lines (MAPPED_LINE_SCHEMA).
    `con` is a DuckDB connection used for temporary tables only. Returns breaks, pending records and
    counts; amounts throughout are Int64 minor units."""
    assert "since_date" in internal.columns
    engine = _Engine(con, rule, business_date)
    # Registered as Arrow once (`as_arrow`, no copy): a registered Polars frame is converted again
    # by every query that scans it (seven scans per channel here).
    con.register("all_internal", as_arrow(internal.with_row_index("_row")))
    con.register("all_lines", as_arrow(lines.with_row_index("_row")))
    try:
        fast, fast_previous = _take_clean_pairs(con, rule, business_date, internal, lines)
        engine.stage()
        for k, key in enumerate(rule.match_keys, start=1):
            PASSES[key](engine, k)
        engine.classify_groups()
        engine.outcomes()
        breaks = engine.breaks()
        internal_counts, channel_counts, carry = engine.counts()
        pending = engine.pending()
    finally:
        engine.cleanup()
        for name in ("in_internal", "in_lines"):
            con.unregister(name)
        con.unregister("all_internal")
        con.unregister("all_lines")
    # The clean pairs taken first are matched records and matched lines (invariant 6 still holds).
    for side in (internal_counts, channel_counts):
        side["rows_in"] += fast
        side["matched"] += fast
    carry["pending_in"] += fast_previous
    carry["matched_from_previous"] += fast_previous
    return ChannelResult(breaks, pending, internal_counts, channel_counts, carry)


def _take_clean_pairs(
    con: duckdb.DuckDBPyConnection, rule: Rule, business_date: date, internal: pl.DataFrame, lines: pl.DataFrame
) -> tuple[int, int]:
    """The fast path: take out the pairs the passes below would match and classify clean, and
    register the rest as `in_internal` and `in_lines` for them (Arrow, in input order). Returns
    how many pairs were taken and how many of their records came from an earlier day.

    A pair is taken when the rule matches on `channel_txn_id` first, the id is on exactly one of
    our records and exactly one line, no other line names our payment id as its reference (so no
    later pass could add a line to the order: no split, no duplicate), and `classify_expr` finds no
    break. Such a pair is matched by the first pass and forms a one-line group that classifies
    clean, whatever else is in the day, so taking it out first changes no other outcome. Most of a
    day's rows are such pairs, which the general passes would carry through a dozen statements.
    `all_internal` and `all_lines` are `internal` and `lines` registered with a `_row` index.

    How, at ten million rows: the join carries row numbers only, and an id on two records or two
    lines shows as a row number twice in its result; references are judged on 64-bit hashes of the
    ids (a collision only sends a pair to the general passes), "named by another line" from the few
    lines that name a payment other than their pair's and the lines left without a pair, and the
    leftovers are cut from the frames with row masks instead of anti-joins over every row."""
    if not FAST_PATH or rule.match_keys[0] != MatchKey.CHANNEL_TXN_ID:
        con.register("in_internal", as_arrow(_with_after_cutoff(rule, internal)))
        con.register("in_lines", as_arrow(lines))
        return 0, 0
    pair = _pair_columns(
        rule, amount="l.gross_minor", fee="l.fee_minor", net="l.net_minor", status="l.status", currency="l.currency"
    )
    kind, _, _ = classify_expr(rule, pair)
    day = f"DATE '{business_date.isoformat()}'"
    # Candidate pairs: one of our records and one line with the same id, each the only one with it
    # (an id on two records or two lines gives a row or line twice in the join). The join is on the
    # ids' 64-bit hashes and carries row numbers only: its hash table holds no strings. The ids
    # themselves are compared below, with the few columns the classification needs, gathered by
    # row into one table of both sides. Two ids whose hashes collide only send their rows to the
    # general passes: a pair of unequal ids is dropped there, and a row paired twice is not taken.
    joined = con.sql("""
        SELECT i._row AS i_row, l._row AS l_row FROM all_internal i
        JOIN all_lines l ON hash(i.channel_txn_id) = hash(l.channel_txn_id)
        WHERE i.channel_txn_id <> '' AND l.channel_txn_id <> ''""").pl()
    joined = joined.filter(_once(joined["i_row"], internal.height) & _once(joined["l_row"], lines.height))
    ours = internal.select(
        "since_date", "payment_id", "currency", "status", "biz_type", "amount_minor", "channel_txn_id"
    )
    theirs = lines.select("payment_id", "gross_minor", "fee_minor", "net_minor", "status", "currency", "channel_txn_id")
    classified = f"""
        WITH p AS (
            SELECT i_row, l_row, i_since_date < {day} AS previous, i_payment_id, l_payment_id, i_currency, i_status,
                   {signed_amount_expr("i_biz_type", "i_amount_minor")} AS ours,
                   {expected_fee_expr(rule, "i_biz_type", "i_amount_minor")} AS exp_fee,
                   {is_credit_expr("i_biz_type")} AS credit,
                   l_gross_minor AS gross_minor, l_fee_minor AS fee_minor, l_net_minor AS net_minor,
                   l_status AS status, l_currency AS currency
            FROM pairs
            WHERE i_channel_txn_id = l_channel_txn_id)
        SELECT l.i_row, l.l_row, l.previous, hash(l.i_payment_id) AS i_h, ({kind}) IS NULL AS clean,
               CASE WHEN l.l_payment_id <> '' AND l.l_payment_id <> l.i_payment_id
                    THEN hash(l.l_payment_id) END AS named_h
        FROM p AS l"""
    # A batch of pairs at a time: the gathered columns of all five million pairs of a large
    # channel were the match's peak memory (0.65 GB); a batch's are a fifth of that.
    for start in range(0, max(joined.height, 1), PAIR_BATCH):
        batch = joined.slice(start, PAIR_BATCH)
        pairs = pl.concat(
            [
                ours[batch["i_row"]].select(pl.all().name.prefix("i_")),
                theirs[batch["l_row"]].select(pl.all().name.prefix("l_")),
                batch,
            ],
            how="horizontal",
        )
        # One table in record batches of PAIR_CHUNK rows, which DuckDB scans on every core (two
        # tables side by side, a POSITIONAL JOIN, were scanned on one: 1.2 s to 0.7 s for the
        # five million pairs of a channel, on two cores).
        chunks = [pairs.slice(at, PAIR_CHUNK) for at in range(0, max(pairs.height, 1), PAIR_CHUNK)]
        con.register("pairs", as_arrow(pl.concat(chunks, rechunk=False)))
        del pairs, chunks
        try:
            into = "CREATE OR REPLACE TEMP TABLE fp AS" if start == 0 else "INSERT INTO fp"
            con.execute(f"{into} {classified}").fetchall()
        finally:
            con.unregister("pairs")
    del joined, ours, theirs
    paired = _mask(lines.height, con.sql("SELECT l_row FROM fp").pl()["l_row"], True)
    # The payment ids a line names other than through its own pair: lines without a pair, and
    # paired lines that name another payment than their pair's.
    unpaired = lines.filter(~paired).filter(pl.col("payment_id") != "")
    con.register("unpaired_refs", as_arrow(unpaired.select("payment_id")))
    try:
        taken = con.sql("""
            SELECT i_row, l_row, previous FROM fp
            WHERE clean AND i_h NOT IN (
                SELECT hash(payment_id) FROM unpaired_refs
                UNION ALL SELECT named_h FROM fp WHERE named_h IS NOT NULL)""").pl()
    finally:
        con.unregister("unpaired_refs")
        con.execute("DROP TABLE fp").fetchall()
    left_i = _with_after_cutoff(rule, internal.filter(~_mask(internal.height, taken["i_row"], True)))
    left_l = lines.filter(~_mask(lines.height, taken["l_row"], True))
    con.register("in_internal", as_arrow(left_i))
    con.register("in_lines", as_arrow(left_l))
    return taken.height, int(taken["previous"].sum())


def after_cutoff(rule: Rule) -> pl.Expr:
    """Whether our record was created at or after the rule's carry-forward cutoff, by the clock of
    the rule's time zone (such a record may still be pending: its line comes in tomorrow's file)."""
    cutoff = rule.carry_forward.cutoff
    local = pl.col("created_at").dt.convert_time_zone(rule.timezone)
    seconds = local.dt.hour().cast(pl.Int32) * 3600 + local.dt.minute().cast(pl.Int32) * 60 + local.dt.second()
    return (seconds >= cutoff.hour * 3600 + cutoff.minute * 60 + cutoff.second).alias("after_cutoff")


def _with_after_cutoff(rule: Rule, internal: pl.DataFrame) -> pl.DataFrame:
    return internal if "after_cutoff" in internal.columns else internal.with_columns(after_cutoff(rule))


def _once(rows: pl.Series, n: int) -> pl.Series:
    """Whether each of `rows` (row numbers below `n`) occurs once in `rows`. Counted in an array
    indexed by row number: a hash table of five million row numbers (`is_unique`) cost 0.5 GB."""
    at = rows.to_numpy()
    return pl.Series(np.bincount(at, minlength=n)[at] == 1)


def _mask(n: int, rows: pl.Series, value: bool) -> pl.Series:
    """A Boolean series of length `n`: `value` at the positions `rows`, the opposite elsewhere."""
    return pl.repeat(not value, n, dtype=pl.Boolean, eager=True).scatter(rows, value)
