"""Benchmark of the T+1 batch path against two baselines, side by side in one run.

    .venv/bin/python bench/batch.py --payments 1000000 --payments 10000000 [--readme]

For each size, a business day is generated once into the git-ignored `.cache/bench/` by
`bench/gen_day.py` (column-wise, seconds per million payments; three channels in USD, CNY and JPY
whose rules, `bench/rules/`, name the columnar `payrecon_csv` parser; about 1% of payments with a
fault), and then the variants run on the same files, each in its own subprocess so that its wall
time and peak RSS (`os.wait4` of that child) are its own:

- `recon`: payrecon's real path, `run_day` as `payrecon recon --rules-dir bench/rules` runs it:
  strict typed loading, the quality gate (engine `auto`), the rule-compiled DuckDB matching with
  carry-forward, warehouse persistence (Parquet partitions, breaks, outbox), breaks.csv/parquet,
  summary.json and the finance reports. Data Docs (GX's HTML rendering of the gate's results) are
  left out, as a scheduled run would render them after the breaks are out.
- `duckdb`: a bare DuckDB full outer join of the same CSV files on (channel, payment_id) plus a
  one-CASE classification, breaks written to CSV: the floor for "files to breaks" in DuckDB.
- `pandas`: the obvious pandas version: read_csv, outer merge, np.select, to_csv.
- `read`: Polars' CSV reader reads the same files, every column as text, and nothing else is
  done: no check, no join, nothing written. Not a way to reconcile: the floor under every variant
  here (Polars reads these files faster than DuckDB's and pandas' readers), which shows how much
  of a target's time the reading alone takes.

`--native` also times recon on a simulated day in the channels' native formats (zip/GBK, gzip,
camt.053 XML), with parsing reported apart from matching.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "bench"
DAY = date(2026, 11, 2)
SEED = 7


# --- data ------------------------------------------------------------------------------------------
BENCH_RULES = REPO / "bench" / "rules"


def dataset(payments: int, *, native: bool) -> tuple[Path, Path | None]:
    """The day's root (generated once) and the rules folder it goes with (None: the shipped rules)."""
    if native:
        root = CACHE / f"native-{payments}"
        if not (root / DAY.isoformat() / "internal" / "payments.csv").exists():
            shutil.rmtree(root, ignore_errors=True)
            code = (
                "from datetime import date; from pathlib import Path; "
                "from pipelines.simulate.generator import simulate; "
                f"simulate(start=date.fromisoformat({DAY.isoformat()!r}), days=1, payments={payments}, "
                f"seed={SEED}, out_root=Path({str(root)!r}))"
            )
            print(f"simulating native-{payments} ...", flush=True)
            subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
        return root, None
    root = CACHE / f"gen-{payments}"
    manifest = root / "manifest.json"
    made = json.loads(manifest.read_text()) if manifest.exists() else {}
    if (made.get("payments"), made.get("seed"), made.get("business_date")) != (payments, SEED, DAY.isoformat()):
        print(f"generating gen-{payments} ...", flush=True)
        subprocess.run(
            [sys.executable, str(REPO / "bench" / "gen_day.py"), "--payments", str(payments), "--seed", str(SEED),
             "--date", DAY.isoformat(), "--out", str(root)],
            check=True,
            cwd=REPO,
        )  # fmt: skip
    return root, BENCH_RULES


# --- variants (each runs in a child process) ---------------------------------------------------------
def _attribute(costs: dict[str, float]) -> None:
    """Wrap the stages of the day job so the child reports where its time went (seconds): the
    collaborators' gate and reports apart from parsing, matching and persisting."""
    from connectors.warehouse import Warehouse
    from pipelines.batch import day, gates, shards

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                costs[name] = round(costs.get(name, 0.0) + time.perf_counter() - started, 2)

        return wrapper

    stages = {
        "load internal": (day, "read_internal"),
        "parse files": (day, "parse_channel_file"),
        "match": (day, "match_channel"),
        "match ": (shards, "match_channel"),  # a channel matched in shards, per shard
        "cut shards": (shards, "_cut"),
        "quality gate": (gates, "check_statement"),
        "quality gate ": (gates, "check_internal"),
        "quality gate  ": (gates, "check_outputs"),
        "reports": (gates, "reports"),
    }
    for name, (module, attr) in stages.items():
        setattr(module, attr, timed(name.strip(), getattr(module, attr)))
    # Under run_day the Parquet staging is written on a thread beside the next step: this is
    # that thread's time, which overlaps the other stages' rather than adding to them.
    Warehouse._write_partition = timed("stage parquet (thread)", Warehouse._write_partition)  # type: ignore[method-assign]
    Warehouse.save_channel_day = timed("persist", Warehouse.save_channel_day)  # type: ignore[method-assign]


def variant_recon(root: Path, out: Path, rules: Path | None, quality_engine: str = "auto") -> dict[str, Any]:
    from pipelines.batch.day import run_day

    costs: dict[str, float] = {}
    _attribute(costs)
    marks: list[tuple[str, float]] = []
    started = time.perf_counter()
    run_day(
        DAY,
        root,
        out,
        rules_dir=rules,
        data_docs=False,
        quality_engine=quality_engine,
        progress=lambda step: marks.append((step, time.perf_counter())),
    )
    ended = time.perf_counter()
    steps: dict[str, float] = {}
    points = [*marks, ("end", ended)]
    for (name, at), (_, nxt) in itertools.pairwise(points):
        steps[name] = round(nxt - at, 2)
    steps["startup"] = round(marks[0][1] - started, 2) if marks else 0.0
    return {"steps": steps, "costs": dict(sorted(costs.items(), key=lambda kv: -kv[1]))}


def _status_codes(rules: Path | None) -> dict[str, str]:
    """Channel status code -> PaymentStatus value, from the rule files the day was made with."""
    from pipelines.matching.rules import load_rules

    codes: dict[str, str] = {}
    for rule in (load_rules(rules) if rules else load_rules()).values():
        codes.update({code: status.value for code, status in rule.status_map.items()})
    return codes


def _status_case(column: str, rules: Path | None) -> str:
    codes: dict[str, str] = {}
    for code, status in _status_codes(rules).items():
        codes[code] = status
    arms = " ".join(f"WHEN '{code}' THEN '{status}'" for code, status in sorted(codes.items()))
    return f"CASE {column} {arms} END"


def variant_duckdb(root: Path, out: Path, rules: Path | None) -> dict[str, Any]:
    import duckdb

    day = root / DAY.isoformat()
    files = sorted(str(p) for p in (day / "channels").glob("*/*"))
    con = duckdb.connect()
    out.mkdir(parents=True, exist_ok=True)
    con.execute(f"""
        CREATE TABLE i AS SELECT * FROM read_csv('{day}/internal/payments.csv', header = true, columns = {{
            'payment_id': 'VARCHAR', 'biz_type': 'VARCHAR', 'parent_payment_id': 'VARCHAR', 'merchant_id': 'VARCHAR',
            'account_id': 'VARCHAR', 'channel': 'VARCHAR', 'channel_txn_id': 'VARCHAR', 'amount_minor': 'BIGINT',
            'currency': 'VARCHAR', 'fee_minor': 'BIGINT', 'status': 'VARCHAR', 'created_at': 'TIMESTAMPTZ',
            'updated_at': 'TIMESTAMPTZ', 'trace_id': 'VARCHAR'}})""").fetchall()
    con.execute(f"""
        CREATE TABLE l AS
        SELECT regexp_extract(filename, '/channels/([a-z0-9_]+)/', 1) AS channel, channel_txn_id, payment_id,
               line_type, currency, channel_status,
               (gross * CASE currency WHEN 'JPY' THEN 1 ELSE 100 END)::BIGINT AS gross_minor,
               (fee * CASE currency WHEN 'JPY' THEN 1 ELSE 100 END)::BIGINT AS fee_minor
        FROM read_csv({files!r}, header = true, comment = '#', filename = true, columns = {{
            'channel_txn_id': 'VARCHAR', 'payment_id': 'VARCHAR', 'line_type': 'VARCHAR', 'gross': 'DECIMAL(18,2)',
            'fee': 'DECIMAL(18,2)', 'net': 'DECIMAL(18,2)', 'currency': 'VARCHAR', 'booked_at': 'VARCHAR',
            'value_date': 'VARCHAR', 'channel_status': 'VARCHAR'}})""").fetchall()
    status = _status_case("l.channel_status", rules)
    con.execute(f"""
        COPY (
          WITH j AS (
            SELECT coalesce(i.channel, l.channel) AS channel, i.payment_id AS ours, l.payment_id AS theirs,
                   l.channel_txn_id, i.status, {status} AS c_status, i.currency AS i_cur, l.currency AS c_cur,
                   CASE WHEN i.biz_type IN ('PAY', 'TOPUP') THEN i.amount_minor ELSE -i.amount_minor END AS amount,
                   l.gross_minor, i.fee_minor AS i_fee, l.fee_minor AS c_fee, i.biz_type IN ('PAY', 'TOPUP') AS credit
            FROM i FULL OUTER JOIN l ON i.payment_id = l.payment_id AND i.channel = l.channel)
          SELECT * FROM (
            SELECT channel, ours, channel_txn_id, amount, gross_minor,
              CASE WHEN ours IS NULL THEN CASE WHEN c_status = 'SUCCEEDED' THEN 'MISSING_INTERNAL' END
                   WHEN theirs IS NULL THEN CASE WHEN status = 'SUCCEEDED' THEN 'MISSING_AT_CHANNEL' END
                   WHEN i_cur <> c_cur THEN 'CURRENCY_MISMATCH'
                   WHEN (status = 'SUCCEEDED') <> (c_status = 'SUCCEEDED') THEN 'STATUS_MISMATCH'
                   WHEN gross_minor <> amount THEN
                     CASE WHEN credit AND gross_minor < amount THEN 'PARTIAL_PAYMENT' ELSE 'AMOUNT_MISMATCH' END
                   WHEN c_fee <> i_fee THEN 'FEE_MISMATCH' END AS kind
            FROM j) WHERE kind IS NOT NULL ORDER BY channel, kind, ours, channel_txn_id
        ) TO '{out}/breaks.csv' (HEADER)""").fetchall()
    rows = con.execute("SELECT (SELECT count(*) FROM i), (SELECT count(*) FROM l)").fetchall()[0]
    return {"internal_rows": rows[0], "lines": rows[1]}


def variant_pandas(root: Path, out: Path, rules: Path | None) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    day = root / DAY.isoformat()
    ours = pd.read_csv(day / "internal" / "payments.csv", dtype={"channel_txn_id": str, "parent_payment_id": str})
    parts = []
    for path in sorted((day / "channels").glob("*/*")):
        frame = pd.read_csv(path, comment="#", dtype={"channel_txn_id": str, "payment_id": str})
        frame["channel"] = path.parent.name
        parts.append(frame)
    lines = pd.concat(parts, ignore_index=True)
    # The obvious way: floats times the exponent, rounded back to integers.
    scale = np.where(lines["currency"] == "JPY", 1, 100)
    lines["gross_minor"] = (lines["gross"] * scale).round().astype("int64")
    lines["fee_minor"] = (lines["fee"] * scale).round().astype("int64")
    lines["c_status"] = lines["channel_status"].map(_status_codes(rules))
    m = ours.merge(lines, on=["channel", "payment_id"], how="outer", suffixes=("", "_c"), indicator=True)
    credit = m["biz_type"].isin(["PAY", "TOPUP"])
    amount = np.where(credit, m["amount_minor"], -m["amount_minor"])
    ok_i, ok_c = m["status"] == "SUCCEEDED", m["c_status"] == "SUCCEEDED"
    kind = np.select(
        [
            (m["_merge"] == "right_only") & ok_c,
            (m["_merge"] == "left_only") & ok_i,
            (m["_merge"] == "both") & (m["currency"] != m["currency_c"]),
            (m["_merge"] == "both") & (ok_i != ok_c),
            (m["_merge"] == "both") & (m["gross_minor"] != amount) & credit & (m["gross_minor"] < amount),
            (m["_merge"] == "both") & (m["gross_minor"] != amount),
            (m["_merge"] == "both") & (m["fee_minor_c"] != m["fee_minor"]),
        ],
        [
            "MISSING_INTERNAL",
            "MISSING_AT_CHANNEL",
            "CURRENCY_MISMATCH",
            "STATUS_MISMATCH",
            "PARTIAL_PAYMENT",
            "AMOUNT_MISMATCH",
            "FEE_MISMATCH",
        ],
        default="",
    )
    m["kind"] = kind
    out.mkdir(parents=True, exist_ok=True)
    m["channel_txn_id"] = m["channel_txn_id_c"]  # the line's transaction id, as in the other variants
    breaks = m.loc[m["kind"] != "", ["channel", "kind", "payment_id", "channel_txn_id", "amount_minor", "gross_minor"]]
    breaks.sort_values(["channel", "kind", "payment_id"]).to_csv(out / "breaks.csv", index=False)
    return {"internal_rows": len(ours), "lines": len(lines)}


def variant_read(root: Path, out: Path, rules: Path | None) -> dict[str, Any]:
    import polars as pl

    day = root / DAY.isoformat()
    ours = pl.read_csv(day / "internal" / "payments.csv", infer_schema=False)
    lines = [
        pl.read_csv(path, comment_prefix="#", infer_schema=False) for path in sorted((day / "channels").glob("*/*"))
    ]
    return {"internal_rows": ours.height, "lines": sum(frame.height for frame in lines)}


def variant_recon_duckdb_gate(root: Path, out: Path, rules: Path | None) -> dict[str, Any]:
    """The same path with the quality gate forced to its DuckDB engine (what `auto` picks from 1M
    rows per table, i.e. for every file at 10M payments a day)."""
    return variant_recon(root, out, rules, quality_engine="duckdb")


def variant_recon_gx_gate(root: Path, out: Path, rules: Path | None) -> dict[str, Any]:
    """The same path with the quality gate forced to Great Expectations on every table."""
    return variant_recon(root, out, rules, quality_engine="gx")


VARIANTS = {
    "recon": variant_recon,
    "recon-gate-duckdb": variant_recon_duckdb_gate,
    "recon-gate-gx": variant_recon_gx_gate,
    "duckdb": variant_duckdb,
    "pandas": variant_pandas,
    "read": variant_read,
}


# --- the parent: run, measure, report --------------------------------------------------------------
# Each variant runs in the environment this bench was started in. Importing Polars sets
# _RJEM_MALLOC_CONF in os.environ (its allocator's decay settings), and a child that inherits
# the variable peaked at 4.2-4.3 GB where the same run from a shell, without it, peaked at 3.6 GB
# (measured on the 10M day): the rounds after a parent that had imported Polars measured a
# process no user runs. So the parent reads CSV with the csv module, and passes this copy.
_CHILD_ENV = dict(os.environ)


def measure(variant: str, root: Path, out: Path, rules: Path | None) -> dict[str, Any]:
    """Run one variant in a child process; its wall time (s), peak RSS (MiB) and its own report."""
    shutil.rmtree(out, ignore_errors=True)
    args = [sys.executable, __file__, "--child", variant, "--root", str(root), "--out", str(out)]
    if rules is not None:
        args += ["--rules", str(rules)]
    started = time.perf_counter()
    proc = subprocess.Popen(args, cwd=REPO, env=_CHILD_ENV, stdout=subprocess.PIPE, text=True)
    stdout = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"variant {variant} failed with exit code {proc.returncode}")
    report = json.loads(stdout.strip().splitlines()[-1])
    return {
        "variant": variant,
        "wall_s": round(wall, 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024),
        **report,
        **against_truth(variant, root, out),
    }


# Where each variant writes its breaks, and the column it gives a truth key another name in.
_BREAK_FILES: dict[str, tuple[str, dict[str, str]]] = {
    "recon": (f"{DAY.isoformat()}/breaks.csv", {}),
    "duckdb": ("breaks.csv", {"payment_id": "ours"}),
    "pandas": ("breaks.csv", {}),
}
TRUTH_KEY = ["kind", "channel", "payment_id", "channel_txn_id"]


def against_truth(variant: str, root: Path, out: Path) -> dict[str, Any]:
    """How the variant's breaks compare with the generated truth on (kind, channel, payment_id,
    channel_txn_id): breaks found, missed and false. Checked after the timed run, outside it, with
    the csv module: the parent must not import Polars (see `_CHILD_ENV`)."""
    truth_csv = root / DAY.isoformat() / "truth" / "breaks.csv"
    name, columns = _BREAK_FILES.get(variant, _BREAK_FILES["recon"])
    if not truth_csv.exists() or not (out / name).exists():
        return {}

    def keys(path: Path, column: dict[str, str]) -> list[tuple[str, ...]]:
        with open(path, newline="", encoding="utf-8") as fh:
            return [tuple(row[column.get(k, k)] or "" for k in TRUTH_KEY) for row in csv.DictReader(fh)]

    truth, found = keys(truth_csv, {}), keys(out / name, columns)
    truth_set, found_set = set(truth), set(found)
    return {
        "breaks": len(found),
        "missed": sum(1 for k in truth if k not in found_set),
        "false": sum(1 for k in found if k not in truth_set),
    }


DEFAULT_VARIANTS = ("recon", "duckdb", "pandas", "read")
# pandas' peak RSS per million payments a side, measured (1,349 MiB at 1M, 10,922 MiB at 10M):
# every string cell is a Python object, and the merge copies both sides.
PANDAS_MIB_PER_MILLION = 1_400


def _available_mib() -> int:
    """MemAvailable of /proc/meminfo in MiB (what can be had without swapping anything out)."""
    with open("/proc/meminfo", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    return 0


def run_size(
    payments: int, *, native: bool, variants: list[str] | None = None, repeat: int = 1
) -> list[dict[str, Any]]:
    root, rules = dataset(payments, native=native)
    work = CACHE / "runs" / f"{'native' if native else 'gen'}-{payments}"
    variants = ["recon"] if native else (variants or list(DEFAULT_VARIANTS))
    need_mib = PANDAS_MIB_PER_MILLION * payments // 1_000_000
    if "pandas" in variants and need_mib > 0.9 * _available_mib():
        # Run out of memory, it would take the machine's other work down with it.
        print(
            f"pandas skipped at {payments:,} payments: it needs about {need_mib:,} MiB, "
            f"{_available_mib():,} MiB are available",
            flush=True,
        )
        variants = [v for v in variants if v != "pandas"]
    # Rounds interleave the variants (recon, duckdb, pandas, recon, duckdb, ...) so that a burst of
    # other work on the shared machine falls on every variant alike; each variant keeps its
    # fastest round (the least disturbed), and `rounds_s` lists them all.
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for _ in range(max(1, repeat)):
        for v in variants:
            runs[v].append(measure(v, root, work / v, rules))
    results = []
    for v in variants:
        best = min(runs[v], key=lambda r: r["wall_s"])
        best["rounds_s"] = [r["wall_s"] for r in runs[v]]
        # The peak varies from run to run (3,582 to 3,930 MiB at 10M payments, the cause not yet
        # known), so every round's is kept beside the fastest round's.
        best["rounds_rss_mib"] = [r["peak_rss_mib"] for r in runs[v]]
        results.append(best)
    for r in results:
        # The 5-minute load average at the end of the size's runs: how busy the machine was meanwhile.
        r["load_avg_5m"] = round(os.getloadavg()[1], 1)
        r["payments"] = payments
        r["files"] = "native" if native else "payrecon_csv"
    return results


def _truth_cell(r: dict[str, Any]) -> str:
    if "breaks" not in r:
        return "-"
    if r["missed"] == r["false"] == 0:
        return f"equal ({r['breaks']:,})"
    return f"{r['breaks']:,}: {r['missed']:,} missed, {r['false']:,} false"


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| payments/day | files | variant | wall s | peak RSS MiB | vs bare DuckDB | pandas / this | breaks vs truth |",
        "|---:|---|---|---:|---:|---:|---:|---|",
    ]
    for r in results:
        same = [x for x in results if x["payments"] == r["payments"] and x["files"] == r["files"]]
        duck = next((x for x in same if x["variant"] == "duckdb"), None)
        pandas = next((x for x in same if x["variant"] == "pandas"), None)
        vs_duck = f"{r['wall_s'] / duck['wall_s']:.2f}x" if duck else "-"
        vs_pandas = f"{pandas['wall_s'] / r['wall_s']:.1f}x" if pandas else "-"
        lines.append(
            f"| {r['payments']:,} | {r['files']} | {r['variant']} | {r['wall_s']:.2f} | {r['peak_rss_mib']:,} "
            f"| {vs_duck} | {vs_pandas} | {_truth_cell(r)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, action="append", help="payments per day (repeatable)")
    parser.add_argument("--native", action="store_true", help="also time recon on the native formats")
    parser.add_argument("--readme", action="store_true", help="write the figures into bench/README.md")
    parser.add_argument(
        "--readme-from-last", action="store_true", help="write the last run's figures (.cache/bench/last.json) only"
    )
    parser.add_argument(
        "--variant", action="append", choices=sorted(VARIANTS), help=f"variants to run (default {DEFAULT_VARIANTS})"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="interleaved rounds per size; each variant keeps its fastest"
    )
    parser.add_argument("--child", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--rules", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        report = VARIANTS[args.child](args.root, args.out, args.rules)
        print(json.dumps(report))
        return
    sizes = args.payments or [1_000_000]
    if args.readme_from_last:
        last = json.loads((CACHE / "last.json").read_text())
        write_readme(last, sorted({r["payments"] for r in last}), any(r["files"] == "native" for r in last))
        return
    results: list[dict[str, Any]] = []
    for payments in sizes:
        results += run_size(payments, native=False, variants=args.variant, repeat=args.repeat)
        if args.native:
            results += run_size(payments, native=True)
    print(table(results))
    for r in results:
        if "steps" in r:
            print(f"recon steps ({r['payments']:,}, {r['files']}): {r['steps']}")
            print(f"recon costs ({r['payments']:,}, {r['files']}): {r['costs']}")
    (CACHE / "last.json").parent.mkdir(parents=True, exist_ok=True)
    (CACHE / "last.json").write_text(json.dumps(results, indent=2) + "\n")
    if args.readme:
        write_readme(results, sizes, args.native, args.repeat)


def write_readme(results: list[dict[str, Any]], sizes: list[int], native: bool, repeat: int = 1) -> None:
    command = "    .venv/bin/python bench/batch.py " + " ".join(f"--payments {n}" for n in sizes)
    command += " --native" if native else ""
    command += f" --repeat {repeat}" if repeat > 1 else ""
    steps = "\n".join(
        f"- recon at {r['payments']:,} ({r['files']}), seconds per step: {r['steps']}; by stage: {r['costs']}"
        for r in results
        if "steps" in r
    )
    rounds = "\n".join(
        f"- rounds at {r['payments']:,} ({r['files']}), {r['variant']}: {r.get('rounds_s', [r['wall_s']])} s, "
        f"peak RSS {r.get('rounds_rss_mib', [r['peak_rss_mib']])} MiB"
        for r in results
    )
    section = f"""## T+1 batch (bench/batch.py)

{command} --readme

Machine: {os.cpu_count()} cores, 5-minute load average {max(r.get("load_avg_5m", 0) for r in results)} at the
end of the runs (other work shared the machine, so absolute seconds are noisy; the ratios come from
the same run). Each variant runs in its own process on the same files of one business day from
`bench/gen_day.py` (three payrecon_csv channels, USD/CNY/JPY, about 1% of payments with a fault);
wall time and peak RSS are that process's. With `--repeat N` the variants run in N interleaved
rounds and each keeps its fastest; every round's wall time and peak RSS are listed below the
table. After each
run, outside its time, its breaks are compared with the day's `truth/breaks.csv` on (kind, channel,
payment_id, channel_txn_id): the baselines look for no DUPLICATE_PAYMENT (their join pairs both
lines of a doubled charge with the one payment), which is what they miss. `read` is not a
reconciliation: Polars reads the same files, every column as text, and does nothing else; it is
the floor under every variant (its "pandas / this" is the most any reader of these files on
this machine could gain over pandas).

{table(results)}

{rounds}

{steps}
"""
    readme = REPO / "bench" / "README.md"
    text = readme.read_text(encoding="utf-8") if readme.exists() else "# Benchmarks\n\n"
    start = text.find("## T+1 batch (bench/batch.py)")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + ("\n" + text[end + 1 :] if end >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    readme.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
