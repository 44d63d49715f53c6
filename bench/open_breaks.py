"""What following open breaks across days costs a day's run, as unresolved breaks pile up.

Builds a warehouse whose break history holds DAYS business days of BREAKS breaks a day on three
channels (half of them still open, a third MISSING_AT_CHANNEL), then times, side by side in one
process, what a day's run does with it:
- `open_breaks` (every break still open, all days) and writing it as open_breaks.csv and .parquet;
- `overdue_breaks` of one channel, of each kind a late counterpart may close (the earlier
  MISSING_AT_CHANNEL breaks a late line answers, the MISSING_INTERNAL a late record of ours does),
  every open one of the channel, and only those a day's keys name, as a run asks for them (the
  earlier breaks named spread over the whole history, and all from its last days);
- `save_channel_day` of one channel's new day (a first run) and of the same day again (a rerun);
- the baseline: `breaks_of_day`, the day's own breaks, which is all a run read before breaks
  stayed open.

    .venv/bin/python bench/open_breaks.py --days 30 --breaks 110000

110,000 breaks a day is the bench's 10M-payment day (about 1.1% of payments break). Figures go to
bench/README.md by hand, section "Open breaks".
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import polars as pl

from connectors.warehouse import OUTBOX_COLUMNS, PENDING_COLUMNS, Warehouse
from pipelines.frames import BREAKS_SCHEMA
from pipelines.report.model import with_amount_at_risk

FIRST_DAY = date(2026, 10, 1)
KEYS = 20_000  # a 10M-payment day has about 20,000 breaks of each missing kind
LATE = 1_000  # of which this many answer an earlier break
CHANNELS = ["ch0", "ch1", "ch2"]
RECENT_DAYS = 5


def build(wh: Warehouse, days: int, per_day: int) -> None:
    """DAYS days of history, PER_DAY breaks a day, each reported once; every other one closed."""
    wh.execute(f"""
        INSERT INTO break_history
        SELECT DATE '{FIRST_DAY}' + (i // {per_day})::INT, 'brk_' || i::VARCHAR,
               CASE i % 3 WHEN 0 THEN 'MISSING_AT_CHANNEL' WHEN 1 THEN 'MISSING_INTERNAL' ELSE 'AMOUNT_MISMATCH' END,
               'ch' || (i % 3)::VARCHAR, 'P' || i::VARCHAR, 'T' || i::VARCHAR, 1000 + i % 7, 1000, 'CNY', i % 7,
               'bench@1', 'OPEN', DATE '{FIRST_DAY}' + (i // {per_day})::INT, 0, 'MANUAL_REVIEW', NULL
        FROM range({days * per_day}) t(i)""")
    wh.execute("""
        INSERT INTO breaks
        SELECT break_id, kind, channel, payment_id, channel_txn_id, currency, rule_id,
               CASE WHEN hash(break_id) % 2 = 0 THEN 'OPEN' ELSE 'CLOSED' END,
               business_date, business_date, business_date,
               CASE kind WHEN 'MISSING_INTERNAL' THEN 'R' || substr(break_id, 5) END
        FROM break_history""")


def save_day(wh: Warehouse, day: date, n: int) -> int:
    """Save `n` new MISSING_AT_CHANNEL breaks of ch0 for `day`, as a run persists its day."""
    breaks = pl.DataFrame(
        {
            "break_id": [f"new_{day}_{i}" for i in range(n)],
            "kind": "MISSING_AT_CHANNEL",
            "channel": "ch0",
            "payment_id": [f"N{day}_{i}" for i in range(n)],
            "channel_txn_id": None,
            "internal_amount_minor": 1000,
            "channel_amount_minor": None,
            "currency": "CNY",
            "delta_minor": None,
            "rule_id": "bench@1",
            "trace_id": None,
            "action": "REQUERY_CHANNEL",
        },
        schema_overrides={c: pl.String for c in ("channel_txn_id", "trace_id")}
        | {c: pl.Int64 for c in ("internal_amount_minor", "channel_amount_minor", "delta_minor")},
    )
    pending = pl.DataFrame(schema={c: _PENDING_TYPES.get(c, pl.String()) for c in PENDING_COLUMNS})
    outbox = pl.DataFrame(schema={c: _OUTBOX_TYPES.get(c, pl.String()) for c in OUTBOX_COLUMNS})
    wh.save_channel_day(
        day, "ch0", rule_ref="bench@1", breaks=breaks, pending=pending, outbox=outbox, quarantined=[], summary={},
        reconciled=True,
    )  # fmt: skip
    return n


_PENDING_TYPES: dict[str, pl.DataType] = {
    "amount_minor": pl.Int64(), "fee_minor": pl.Int64(), "created_at": pl.Datetime("us", "UTC"),
    "updated_at": pl.Datetime("us", "UTC"), "since_date": pl.Date(),
}  # fmt: skip
_OUTBOX_TYPES: dict[str, pl.DataType] = {
    "amount_minor": pl.Int64(), "requires_approval": pl.Boolean(), "created_at": pl.Datetime("us", "UTC"),
    "business_date": pl.Date(),
}  # fmt: skip


def best_of(n: int, fn: Callable[[], int]) -> tuple[float, int]:
    times, rows = [], 0
    for _ in range(n):
        start = time.perf_counter()
        rows = fn()
        times.append(time.perf_counter() - start)
    return min(times), rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--breaks", type=int, default=110_000, help="breaks a day")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="payrecon-open-") as tmp:
        out = Path(tmp)
        with Warehouse(out / "warehouse.duckdb") as wh:
            print(f"building {args.days} days x {args.breaks:,} breaks ...", file=sys.stderr)
            build(wh, args.days, args.breaks)
            day = FIRST_DAY + timedelta(days=args.days - 1)

            def open_breaks() -> int:
                frame = wh.open_breaks(day, CHANNELS).cast(BREAKS_SCHEMA)  # type: ignore[arg-type]
                frame.write_csv(out / "open_breaks.csv", date_format="%Y-%m-%d")
                frame.write_parquet(out / "open_breaks.parquet", compression="zstd", statistics=False)
                return frame.height

            def day_keys(prefix: str, recent: bool = False) -> pl.Series:
                # The keys of a day's breaks of the opposite kind: KEYS of them, of which LATE name
                # an earlier break of the channel (ids 3n are ch0's, 3n+1 ch1's; a late counterpart
                # is the exception, and half of these breaks are closed) and the rest the day's own.
                # The earlier breaks named are spread over every day, or with `recent` over the
                # last RECENT_DAYS only (a late line or record is usually days late, not months).
                total = args.days * args.breaks
                first = 0 if prefix == "P" else 1
                # The last day's breaks are the day's own, not earlier ones.
                since = total - (RECENT_DAYS + 1) * args.breaks if recent else 0
                until = total - args.breaks if recent else total
                since -= since % 3
                span = (until - since) // 3
                earlier = [since + first + 3 * n for n in range(0, span, max(1, span // LATE))][:LATE]
                return pl.Series([f"{prefix}{i}" for i in [*earlier, *range(total, total + KEYS - LATE)]])

            def history_rows() -> int:
                # What finalize_day did before history_summary: every row into Polars, summed there.
                rows = wh.frame("SELECT * FROM break_history WHERE business_date <= ?", [day])
                return with_amount_at_risk(rows).group_by("business_date", "channel", "currency").len().height

            rows = [
                ("breaks_of_day (the baseline)", *best_of(args.repeat, lambda: wh.breaks_of_day(day, CHANNELS).height)),
                ("history for the report, every row summed in Polars (before)", *best_of(args.repeat, history_rows)),
                (
                    "history for the report, history_summary in DuckDB",
                    *best_of(args.repeat, lambda: wh.history_summary(day).height),
                ),
                ("open_breaks, written as csv and parquet", *best_of(args.repeat, open_breaks)),
                (
                    "overdue_breaks of one channel, MISSING_AT_CHANNEL",
                    *best_of(args.repeat, lambda: wh.overdue_breaks(day, "ch0", "MISSING_AT_CHANNEL").height),
                ),
                (
                    "overdue_breaks of one channel, MISSING_INTERNAL",
                    *best_of(args.repeat, lambda: wh.overdue_breaks(day, "ch1", "MISSING_INTERNAL").height),
                ),
                (
                    f"overdue_breaks of one channel, MISSING_AT_CHANNEL, keyed by {KEYS:,} of the day's references",
                    *best_of(args.repeat, lambda: wh.overdue_breaks(day, "ch0", payment_ids=day_keys("P")).height),
                ),
                (
                    f"overdue_breaks of one channel, MISSING_AT_CHANNEL, keyed by {KEYS:,} of the day's references, "
                    f"the earlier breaks they name all from the last {RECENT_DAYS} days",
                    *best_of(
                        args.repeat,
                        lambda: wh.overdue_breaks(day, "ch0", payment_ids=day_keys("P", recent=True)).height,
                    ),
                ),
                (
                    f"overdue_breaks of one channel, MISSING_INTERNAL, keyed by {KEYS:,} of the day's channel ids "
                    "and payment ids (the lines' references)",
                    *best_of(
                        args.repeat,
                        lambda: (
                            wh.overdue_breaks(
                                day, "ch1", "MISSING_INTERNAL", channel_txn_ids=day_keys("T"), references=day_keys("R")
                            ).height
                        ),
                    ),
                ),
            ]
            # Last, as they add days: a channel's day saved after the history (each round a new
            # day, a first run), and the same day saved again (a rerun, which may close breaks).
            per_channel = args.breaks // len(CHANNELS)
            new_days = iter(range(1, args.repeat + 1))
            rows += [
                (
                    f"save_channel_day of one channel, a new day of {per_channel:,} breaks (its first run)",
                    *best_of(args.repeat, lambda: save_day(wh, day + timedelta(days=next(new_days)), per_channel)),
                ),
                (
                    "save_channel_day of the same day again (a rerun)",
                    *best_of(args.repeat, lambda: save_day(wh, day + timedelta(days=1), per_channel)),
                ),
            ]
    print(f"| history: {args.days} days x {args.breaks:,} breaks | rows | best of {args.repeat} s |")
    print("|---|---:|---:|")
    for name, seconds, n in rows:
        print(f"| {name} | {n:,} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
