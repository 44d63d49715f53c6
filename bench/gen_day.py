"""A big business day for the T+1 bench, generated column-wise (numpy and Polars), not per payment.

    .venv/bin/python bench/gen_day.py --payments 10000000 --out .cache/bench/gen-10000000 [--seed 7]

The simulator (`pipelines.simulate`) builds every payment as Python objects with its events and
callbacks: right for tests, but about 3.6 GB and a minute per million payments. This writes the
same on-disk layout (SPEC section 4) for what the T+1 job reads, in seconds per million rows:

    ROOT/<date>/internal/payments.csv             our records (PAYMENTS_CSV_COLUMNS)
    ROOT/<date>/channels/<channel>/<channel>_<date>.csv   one payrecon_csv file per channel
    ROOT/<date>/truth/breaks.csv                  kind,channel,payment_id,channel_txn_id
    ROOT/manifest.json                            the arguments

The channels are the bench-only rules in `bench/rules/` (`cardusd` USD, `walletcny` CNY, `bankjpy`
JPY, all `parser: payrecon_csv`); reconcile with `--rules-dir bench/rules`. Every payment is created
before the rules' carry-forward cutoff, so nothing is pending and the truth is complete for the day.
Fees on both sides are the rule's contracted fee, computed here with the same integer rounding as
the engine. Faults, one at most per payment, each a share of the payments (`--fault KIND=SHARE`):

| fault              | our record          | the channel's lines                  | truth                    |
|--------------------|---------------------|--------------------------------------|--------------------------|
| missing_at_channel | SUCCEEDED           | none                                 | MISSING_AT_CHANNEL, txn empty |
| missing_internal   | none                | one line, no merchant reference      | MISSING_INTERNAL, payment empty |
| amount_mismatch    | SUCCEEDED           | gross larger by 1 to 500 minor units | AMOUNT_MISMATCH          |
| status_mismatch    | CLOSED              | one succeeded line                   | STATUS_MISMATCH          |
| duplicate_payment  | SUCCEEDED, first id | two lines, two ids, same amount      | DUPLICATE_PAYMENT, the second id |
| fee_mismatch       | SUCCEEDED           | fee larger by 1 to 50 minor units    | FEE_MISMATCH             |

Besides faults, `--failed` of the payments are FAILED or CLOSED on our side with no line (no money
moved, no break). Same arguments, same bytes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pipelines.matching.rules import Rule, load_rules
from pipelines.money import PPM, exponent
from pipelines.records import PAYMENTS_CSV_COLUMNS, BizType, BreakKind, LineType

REPO = Path(__file__).resolve().parents[1]
BENCH_RULES = REPO / "bench" / "rules"

# (channel, share of the payments, prefix of its transaction ids)
CHANNELS: tuple[tuple[str, float, str], ...] = (
    ("cardusd", 0.5, "ch_"),
    ("walletcny", 0.3, "wx"),
    ("bankjpy", 0.2, "JB"),
)

FAULTS: dict[str, float] = {
    "missing_at_channel": 0.002,
    "missing_internal": 0.002,
    "amount_mismatch": 0.002,
    "status_mismatch": 0.002,
    "duplicate_payment": 0.001,
    "fee_mismatch": 0.002,
}
FAULT_KIND: dict[str, BreakKind] = {
    "missing_at_channel": BreakKind.MISSING_AT_CHANNEL,
    "missing_internal": BreakKind.MISSING_INTERNAL,
    "amount_mismatch": BreakKind.AMOUNT_MISMATCH,
    "status_mismatch": BreakKind.STATUS_MISMATCH,
    "duplicate_payment": BreakKind.DUPLICATE_PAYMENT,
    "fee_mismatch": BreakKind.FEE_MISMATCH,
}
FAILED_SHARE = 0.02

# biz_type mix; the sign and line type each gets on the channel's statement.
BIZ: tuple[tuple[BizType, float, int, LineType], ...] = (
    (BizType.PAY, 0.85, 1, LineType.PAYMENT),
    (BizType.TOPUP, 0.05, 1, LineType.PAYMENT),
    (BizType.REFUND, 0.05, -1, LineType.REFUND),
    (BizType.WITHDRAW, 0.05, -1, LineType.PAYOUT),
)

# Payments are created in [00:00, LAST_CREATED_S) UTC: before every bench rule's 23:50 cutoff with
# room for the update and booking delays, so none is pending at the end of the day.
LAST_CREATED_S = 23 * 3600 + 30 * 60


def expected_fee(rule: Rule, biz: np.ndarray, amount: np.ndarray) -> np.ndarray:
    """The rule's contracted fee of each record (minor units, int64): rate_ppm of the amount rounded
    half up, plus fixed, clamped to [min, max]; 0 for a biz_type without a rate. The same integer
    arithmetic as `Fees.expected_fee` and the engine's SQL (amounts here stay far below 2**63 / ppm)."""
    fee = np.zeros(len(amount), dtype=np.int64)
    for rate in rule.fees.contracted:
        mask = biz == rate.biz_type.value
        f = (amount[mask] * rate.rate_ppm * 2 + PPM) // (2 * PPM) + rate.fixed_minor
        f = np.maximum(f, rate.min_minor)
        if rate.max_minor is not None:
            f = np.minimum(f, rate.max_minor)
        fee[mask] = f
    return fee


def _major(column: str, exp: int) -> pl.Expr:
    """Signed minor units as payrecon_csv's major-unit text with exactly `exp` decimals."""
    value = pl.col(column)
    if exp == 0:
        return value.cast(pl.String)
    magnitude = value.abs()
    sign = pl.when(value < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    whole = (magnitude // 10**exp).cast(pl.String)
    frac = (magnitude % 10**exp).cast(pl.String).str.zfill(exp)
    return pl.concat_str([sign, whole, pl.lit("."), frac])


def _major_int(value: int, exp: int) -> str:
    if exp == 0:
        return str(value)
    sign = "-" if value < 0 else ""
    return f"{sign}{abs(value) // 10**exp}.{abs(value) % 10**exp:0{exp}d}"


# Payments are generated and written a chunk at a time, so memory stays about a gigabyte at any size.
CHUNK = 1_000_000


def _chunk(
    rng: np.random.Generator,
    first: int,
    n: int,
    ms_range: tuple[int, int],
    rules: dict[str, Rule],
    shares: dict[str, float],
    failed_share: float,
) -> pl.DataFrame:
    """Payments `first` .. `first + n - 1`, created in `ms_range` (ms of the day), one row each:
    their attributes, their fate (0 clean, k the k-th fault of FAULTS, -1 FAILED/CLOSED) and the
    random deltas a fault may use."""
    names = [c for c, _, _ in CHANNELS]
    channel_idx = rng.choice(len(CHANNELS), size=n, p=[w for _, w, _ in CHANNELS]).astype(np.int8)
    biz_idx = rng.choice(len(BIZ), size=n, p=[w for _, w, _, _ in BIZ]).astype(np.int8)
    biz = np.array([b.value for b, _, _, _ in BIZ])[biz_idx]
    # Amounts: log-normal around 3,000 minor units (30 dollars or yuan, 3,000 yen).
    amount = np.maximum(1, np.exp(rng.normal(8.0, 1.2, size=n))).astype(np.int64)
    fee = np.zeros(n, dtype=np.int64)
    for i, name in enumerate(names):
        mask = channel_idx == i
        fee[mask] = expected_fee(rules[name], biz[mask], amount[mask])
    # Created in time order (payment ids follow the clock).
    created_ms = np.sort(rng.integers(ms_range[0], ms_range[1], size=n))
    updated_ms = created_ms + rng.integers(0, 60_000, size=n)
    # One draw decides each payment's fate.
    fate = np.zeros(n, dtype=np.int8)
    u = rng.random(n)
    edge = 0.0
    for k, fault in enumerate(FAULTS, start=1):
        fate[(u >= edge) & (u < edge + shares[fault])] = k
        edge += shares[fault]
    fate[(u >= edge) & (u < edge + failed_share)] = -1
    closed = rng.random(n) < 0.5
    status_idx = np.where(fate == -1, np.where(closed, 2, 1), 0)
    status_idx[fate == list(FAULTS).index("status_mismatch") + 1] = 2
    return pl.DataFrame(
        {
            "i": np.arange(first, first + n, dtype=np.int64),
            "channel": pl.Series(np.array(names)[channel_idx]).cast(pl.Categorical),
            "biz_type": pl.Series(biz).cast(pl.Categorical),
            "sign": np.array([s for _, _, s, _ in BIZ], dtype=np.int64)[biz_idx],
            "line_type": pl.Series(np.array([t.value for _, _, _, t in BIZ])[biz_idx]).cast(pl.Categorical),
            "amount_minor": amount,
            "fee_minor": fee,
            "status": pl.Series(np.array(["SUCCEEDED", "FAILED", "CLOSED"])[status_idx]).cast(pl.Categorical),
            "created_ms": created_ms,
            "updated_ms": updated_ms,
            "booked_s": updated_ms // 1000 + rng.integers(1, 60, size=n),
            "fate": fate,
            "merchant": rng.integers(0, 10_000, size=n),
            "account": rng.integers(0, 10_000_000, size=n),
            "delta": rng.integers(1, 501, size=n),
            "fee_delta": rng.integers(1, 51, size=n),
            # A trace id per payment: its index times an odd constant, wrapping (unique, not sequential).
            "trace": np.arange(first, first + n, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15),
        }
    )


def generate(
    business_date: date,
    payments: int,
    out_root: Path,
    *,
    seed: int = 7,
    faults: dict[str, float] | None = None,
    failed_share: float = FAILED_SHARE,
    rules_dir: Path = BENCH_RULES,
) -> dict[str, Any]:
    """Write one business day of `payments` payments under `out_root/<date>/` (replacing it) and
    return what was written: rows per file and breaks per kind."""
    shares = {**FAULTS, **(faults or {})}
    unknown = set(shares) - set(FAULTS)
    if unknown:
        raise ValueError(f"unknown fault(s) {sorted(unknown)}; known: {sorted(FAULTS)}")
    if sum(shares.values()) + failed_share >= 1:
        raise ValueError("the fault shares and --failed must add up to less than 1")
    rules = load_rules(rules_dir)
    names = [c for c, _, _ in CHANNELS]
    missing = [c for c in names if c not in rules]
    if missing:
        raise ValueError(f"{rules_dir} has no rule file for {missing}")
    ymd = business_date.strftime("%Y%m%d")
    day_dir = out_root / business_date.isoformat()
    shutil.rmtree(day_dir, ignore_errors=True)
    fault_no = {fault: k for k, fault in enumerate(FAULTS, start=1)}
    kind_of = {fault_no[f]: FAULT_KIND[f].value for f in FAULTS}
    base = datetime.combine(business_date, datetime.min.time())
    ts = "%Y-%m-%dT%H:%M:%S%.3fZ"
    prefix = pl.col("channel").cast(pl.String).replace_strict({c: p for c, _, p in CHANNELS}, return_dtype=pl.String)
    currency = (
        pl.col("channel").cast(pl.String).replace_strict({c: rules[c].currency for c in names}, return_dtype=pl.String)
    )

    internal = day_dir / "internal" / "payments.csv"
    internal.parent.mkdir(parents=True, exist_ok=True)
    channel_paths = {c: day_dir / "channels" / c / f"{c}_{business_date.isoformat()}.csv" for c in names}
    for path in channel_paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    handles = {c: open(path, "wb") for c, path in channel_paths.items()}  # noqa: SIM115 - closed below
    written: dict[str, Any] = {"internal": 0, **dict.fromkeys(names, 0)}
    sums = {c: [0, 0, 0] for c in names}
    truth_parts: list[pl.DataFrame] = []
    chunks = max(1, -(-payments // CHUNK))
    try:
        with open(internal, "wb") as ours_fh:
            for c in range(chunks):
                first, last = c * payments // chunks, (c + 1) * payments // chunks
                # Each chunk its own slice of the day and its own stream of the seed: deterministic.
                ms = (LAST_CREATED_S * 1000 * c // chunks, LAST_CREATED_S * 1000 * (c + 1) // chunks)
                rng = np.random.default_rng([seed, c])
                frame = _chunk(rng, first, last - first, ms, rules, shares, failed_share).with_columns(
                    pl.format("P{}{}", pl.lit(ymd), pl.col("i").cast(pl.String).str.zfill(9)).alias("payment_id"),
                    pl.format("{}{}{}", prefix, pl.lit(ymd), pl.col("i").cast(pl.String).str.zfill(10)).alias(
                        "channel_txn_id"
                    ),
                )
                # --- our records ---------------------------------------------------------------
                ours = frame.filter(pl.col("fate") != fault_no["missing_internal"]).select(
                    "payment_id",
                    pl.col("biz_type").cast(pl.String),
                    # A refund names the payment it refunds (an earlier day's, outside this day's records).
                    pl.when(pl.col("biz_type") == BizType.REFUND.value)
                    .then(pl.format("P20000101{}", pl.col("i").cast(pl.String).str.zfill(9)))
                    .otherwise(None)
                    .alias("parent_payment_id"),
                    pl.format("M{}", pl.col("merchant").cast(pl.String).str.zfill(4)).alias("merchant_id"),
                    pl.format("A{}", pl.col("account").cast(pl.String).str.zfill(7)).alias("account_id"),
                    pl.col("channel").cast(pl.String),
                    "channel_txn_id",
                    "amount_minor",
                    currency.alias("currency"),
                    "fee_minor",
                    pl.col("status").cast(pl.String),
                    (pl.lit(base) + pl.duration(milliseconds=pl.col("created_ms"))).dt.strftime(ts).alias("created_at"),
                    (pl.lit(base) + pl.duration(milliseconds=pl.col("updated_ms"))).dt.strftime(ts).alias("updated_at"),
                    pl.format("tr{}", pl.col("trace").cast(pl.String)).alias("trace_id"),
                )
                assert tuple(ours.columns) == PAYMENTS_CSV_COLUMNS
                ours.write_csv(ours_fh, include_header=c == 0)
                written["internal"] += ours.height
                del ours
                # --- the channels' lines ---------------------------------------------------------
                with_line = frame.filter(
                    (pl.col("fate") >= 0) & (pl.col("fate") != fault_no["missing_at_channel"])
                ).with_columns(
                    (
                        pl.col("sign") * pl.col("amount_minor")
                        + pl.when(pl.col("fate") == fault_no["amount_mismatch"]).then(pl.col("delta")).otherwise(0)
                    ).alias("gross"),
                    (
                        pl.col("fee_minor")
                        + pl.when(pl.col("fate") == fault_no["fee_mismatch"]).then(pl.col("fee_delta")).otherwise(0)
                    ).alias("fee"),
                    pl.when(pl.col("fate") == fault_no["missing_internal"])
                    .then(None)
                    .otherwise(pl.col("payment_id"))
                    .alias("ref"),
                )
                # The second charge of a duplicated order: its own transaction id, booked a minute later.
                extra = with_line.filter(pl.col("fate") == fault_no["duplicate_payment"]).with_columns(
                    pl.format("{}{}D{}", prefix, pl.lit(ymd), pl.col("i").cast(pl.String).str.zfill(9)).alias(
                        "channel_txn_id"
                    ),
                    (pl.col("booked_s") + 60).alias("booked_s"),
                )
                lines = pl.concat([with_line, extra]).with_columns((pl.col("gross") - pl.col("fee")).alias("net"))
                del with_line
                for name in names:
                    rule = rules[name]
                    exp = exponent(rule.currency, name)
                    part = lines.filter(pl.col("channel") == name).sort("booked_s", "channel_txn_id")
                    part.select(
                        "channel_txn_id",
                        pl.col("ref").alias("payment_id"),
                        pl.col("line_type").cast(pl.String),
                        _major("gross", exp).alias("gross"),
                        _major("fee", exp).alias("fee"),
                        _major("net", exp).alias("net"),
                        pl.lit(rule.currency).alias("currency"),
                        (pl.lit(base) + pl.duration(seconds=pl.col("booked_s")))
                        .dt.strftime("%Y-%m-%dT%H:%M:%SZ")
                        .alias("booked_at"),
                        pl.lit(business_date.isoformat()).alias("value_date"),
                        pl.lit("succeeded").alias("channel_status"),
                    ).write_csv(handles[name], include_header=c == 0)
                    total = part.select(pl.col("gross").sum(), pl.col("fee").sum(), pl.col("net").sum()).row(0)
                    sums[name] = [a + int(b) for a, b in zip(sums[name], total, strict=True)]
                    written[name] += part.height
                del lines
                # --- truth -----------------------------------------------------------------------
                truth_parts.append(
                    frame.filter((pl.col("fate") > 0) & (pl.col("fate") != fault_no["duplicate_payment"])).select(
                        pl.col("fate").replace_strict(kind_of, return_dtype=pl.String).alias("kind"),
                        pl.col("channel").cast(pl.String),
                        pl.when(pl.col("fate") == fault_no["missing_internal"])
                        .then(pl.lit(""))
                        .otherwise(pl.col("payment_id"))
                        .alias("payment_id"),
                        pl.when(pl.col("fate") == fault_no["missing_at_channel"])
                        .then(pl.lit(""))
                        .otherwise(pl.col("channel_txn_id"))
                        .alias("channel_txn_id"),
                    )
                )
                truth_parts.append(
                    extra.select(
                        pl.lit(BreakKind.DUPLICATE_PAYMENT.value).alias("kind"),
                        pl.col("channel").cast(pl.String),
                        "payment_id",
                        "channel_txn_id",
                    )
                )
        for name in names:
            exp = exponent(rules[name].currency, name)
            trailer = ["#TOTAL", str(written[name]), *(_major_int(s, exp) for s in sums[name])]
            handles[name].write((",".join(trailer) + "\n").encode())
    finally:
        for fh in handles.values():
            fh.close()

    truth = pl.concat(truth_parts).sort("kind", "channel", "payment_id", "channel_txn_id")
    (day_dir / "truth").mkdir(parents=True, exist_ok=True)
    truth.write_csv(day_dir / "truth" / "breaks.csv")
    written["breaks_by_kind"] = dict(sorted(truth.group_by("kind").len().iter_rows()))
    manifest = {
        "generator": "bench/gen_day.py",
        "business_date": business_date.isoformat(),
        "payments": payments,
        "seed": seed,
        "faults": shares,
        "failed_share": failed_share,
        "rules_dir": str(rules_dir),
    }
    (out_root / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return written


def _fault(text: str) -> tuple[str, float]:
    name, _, share = text.partition("=")
    if name not in FAULTS or not share:
        raise argparse.ArgumentTypeError(f"expected KIND=SHARE with KIND one of {sorted(FAULTS)}, got {text!r}")
    return name, float(share)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--date", type=date.fromisoformat, default=date(2026, 11, 2), help="business date")
    parser.add_argument("--payments", type=int, required=True, help="payments in the day (rows of payments.csv)")
    parser.add_argument("--out", type=Path, required=True, help="ROOT: writes ROOT/<date>/")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--fault", type=_fault, action="append", default=[], help="KIND=SHARE, e.g. amount_mismatch=0.01 (repeatable)"
    )
    parser.add_argument("--failed", type=float, default=FAILED_SHARE, help="share FAILED/CLOSED with no line")
    parser.add_argument("--rules-dir", type=Path, default=BENCH_RULES)
    args = parser.parse_args()
    started = time.perf_counter()
    written = generate(
        args.date,
        args.payments,
        args.out,
        seed=args.seed,
        faults=dict(args.fault),
        failed_share=args.failed,
        rules_dir=args.rules_dir,
    )
    took = time.perf_counter() - started
    print(json.dumps({**written, "seconds": round(took, 2)}, default=str))
    print(f"reconcile: payrecon recon --date {args.date} --input {args.out} --out OUT --rules-dir {args.rules_dir}")


if __name__ == "__main__":
    main()
