"""`wechatpay`: the WeChat Pay merchant trade bill (交易账单), ALL, SUCCESS and REFUND layouts.

Our own parser: no maintained Python library reads these bills, and the format is simple enough
that a library would only hide the checks that matter. Layout (UTF-8, optionally gzipped as the
v3 API serves it):

    交易时间,公众账号ID,商户号,...,费率备注               column header (27 columns in ALL,
                                                        20 in SUCCESS, 29 in REFUND)
    `2021-01-28 17:07:11,`wx81...,`1601959334,...       one row per trade or refund; every field
                                                        starts with a backtick so that Excel keeps
                                                        long ids as text
    总交易单数,应结订单总金额,退款总金额,...               summary header
    `3,`0.03,`0.00,`0.00,`0.00000,`0.03,`0.00           summary values: the file's control totals

Columns are located by their header names, so the three layouts share one reader. Lines:
- `交易状态` SUCCESS (and the other trade states) is a PAYMENT: gross = +应结订单金额,
  payment_id = 商户订单号, channel_txn_id = 微信订单号.
- `交易状态` REFUND is a REFUND: gross = -退款金额, payment_id = 商户退款单号 (our refund's id),
  channel_txn_id = 微信退款单号.
- fee_minor = 手续费 (negative on a refund row when WeChat returns the fee).
- raw = the 交易状态 code (SUCCESS, REFUND, ...), a key of the rule's status_map.

Five-decimal fees: 手续费 is printed with five decimals ("0.00600") although WeChat settles whole
fen. A fee whose digits beyond the currency's exponent are all zero is exact and accepted; one
with non-zero sub-fen digits cannot be booked in minor units and refuses the whole file
(`inexact_fee`) instead of being rounded. The summary's 手续费总金额 is held to the same rule.

Payouts (企业付款, 提现) are not trades: WeChat lists them in the fund-flow bill (资金账单), whose
layout this module reads too (`记账时间,微信支付业务单号,资金流水单号,业务名称,业务类型,收支类型,
收支金额（元）,账户结余（元）,资金变更提交申请人,备注,业务凭证号`, summary `资金流水总笔数,收入笔数,
收入金额,支出笔数,支出金额`). Its rows: 业务类型 交易 PAYMENT, 退款 REFUND, 手续费 FEE, 企业付款/
提现/转账 PAYOUT, others ADJUSTMENT; signed by 收支类型 (收入 +, 支出 -); payment_id = 业务凭证号,
channel_txn_id = 微信支付业务单号, raw SUCCESS. A real fund-flow bill repeats every trade, so a
channel folder holds either the trade bill alone or, as our writer does, the trade bill plus a
fund-flow bill holding only the movements the trade bill lacks.

Control totals: the row count and every summary sum must equal the rows (`control_total_mismatch`).
Each row is split natively by Polars (no Python loop per row) and must have the header's field
count; timestamps are Beijing time (UTC+8) and are converted to UTC.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from datetime import date, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from connectors.statements import ParsedFile, StatementFormat, register
from connectors.statements._common import (
    ControlCheck,
    ControlPolicy,
    amounts,
    build_frame,
    decode,
    gunzip,
    null_if_empty,
    read_bytes,
    refuse,
    split_fields,
    split_lines,
    timestamps,
    whole_number,
)
from connectors.statements.intake import sha256_bytes
from pipelines.money import exponent, format_amount
from pipelines.records import LineType, StatementLine

if TYPE_CHECKING:
    from pipelines.matching.rules import Rule

NAME = "wechatpay"
CST = timezone(timedelta(hours=8))
SUMMARY_HEADER = ("总交易单数", "应结订单总金额", "退款总金额", "充值券退款总金额", "手续费总金额", "订单总金额", "申请退款总金额")  # fmt: skip
# The summary column each detail column is totalled in.
SUMMED = {
    "应结订单金额": "应结订单总金额",
    "退款金额": "退款总金额",
    "充值券退款金额": "充值券退款总金额",
    "手续费": "手续费总金额",
    "订单金额": "订单总金额",
    "申请退款金额": "申请退款总金额",
}
ALL_HEADER = (
    "交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号", "用户标识", "交易类型",
    "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额", "微信退款单号", "商户退款单号", "退款金额",
    "充值券退款金额", "退款类型", "退款状态", "商品名称", "商户数据包", "手续费", "费率", "订单金额", "申请退款金额",
    "费率备注",
)  # fmt: skip
SUCCESS_HEADER = (
    "交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号", "用户标识", "交易类型",
    "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额", "商品名称", "商户数据包", "手续费", "费率",
    "订单金额", "费率备注",
)  # fmt: skip
REFUND_HEADER = (
    "交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号", "用户标识", "交易类型",
    "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额", "退款申请时间", "退款成功时间", "微信退款单号",
    "商户退款单号", "退款金额", "充值券退款金额", "退款类型", "退款状态", "商品名称", "商户数据包", "手续费", "费率",
    "订单金额", "申请退款金额", "费率备注",
)  # fmt: skip
LAYOUTS = {ALL_HEADER: "ALL", SUCCESS_HEADER: "SUCCESS", REFUND_HEADER: "REFUND"}
FUNDFLOW_HEADER = ("记账时间", "微信支付业务单号", "资金流水单号", "业务名称", "业务类型", "收支类型", "收支金额（元）",
                   "账户结余（元）", "资金变更提交申请人", "备注", "业务凭证号")  # fmt: skip
FUNDFLOW_SUMMARY = ("资金流水总笔数", "收入笔数", "收入金额", "支出笔数", "支出金额")
FUNDFLOW_TYPES = {"交易": LineType.PAYMENT, "退款": LineType.REFUND, "手续费": LineType.FEE, "企业付款": LineType.PAYOUT,
                  "提现": LineType.PAYOUT, "转账": LineType.PAYOUT}  # fmt: skip
FEE_DECIMALS = 5


def _fee_to_currency(path: Path, values: pl.Series, line_nos: pl.Series, exp: int, column: str) -> pl.Series:
    """Drop the zero sub-minor digits of a 5-decimal fee ("0.06000" -> "0.06"); refuse a fee whose
    sub-minor digits are not zero (`inexact_fee`), never rounding it."""
    extra = FEE_DECIMALS - exp
    pattern = rf"^([+-]?[0-9]+)\.([0-9]{{{exp}}})([0-9]{{{extra}}})$"
    has5 = values.str.contains(pattern)
    tail = values.str.extract(pattern, 3)
    inexact = (has5 & (tail.str.strip_chars("0") != "")).fill_null(False).arg_true()
    if len(inexact):
        i = int(inexact[0])
        raise refuse(
            path,
            int(line_nos[i]),
            "inexact_fee",
            f"{column} {values[i]!r} has sub-fen digits; it is refused, not rounded",
        )
    head = values.str.extract(pattern, 1) + ("." + values.str.extract(pattern, 2) if exp else "")
    return pl.select(pl.when(has5.fill_null(False)).then(head).otherwise(values)).to_series().alias(values.name)


def parse(
    path: Path, *, channel: str, business_date: date | None = None, controls: ControlPolicy = "enforce"
) -> ParsedFile:
    """Parse one WeChat Pay trade bill (`.csv` or `.csv.gz`) into statement lines; refuse it whole
    on any defect. Amounts become Int64 minor units of the bill's currency (CNY: fen).
    `controls="report"`: a summary line that disagrees with the rows is listed in
    `ParsedFile.controls["mismatches"]` instead of refusing the bill."""
    path = Path(path)
    check = ControlCheck(path, controls)
    data = read_bytes(path)
    sha = sha256_bytes(data)
    if data[:2] == b"\x1f\x8b":
        data = gunzip(path, data)
    text = decode(path, data, "utf-8")
    lines = split_lines(text)
    header = tuple(lines[0].split(","))
    if header == FUNDFLOW_HEADER:
        return _parse_fundflow(path, sha, lines, channel=channel, business_date=business_date, check=check)
    layout = LAYOUTS.get(header)
    if layout is None:
        raise refuse(path, 1, "bad_header", f"not a WeChat Pay ALL/SUCCESS/REFUND header: {lines[0][:80]!r}")
    if len(lines) == 1:
        raise refuse(path, 1, "header_only", "a header and no summary: the bill is cut off")
    # The summary header is the second-to-last line; anything else there means the end is missing.
    if len(lines) < 3 or lines[-2] != ",".join(SUMMARY_HEADER):
        raise refuse(path, len(lines), "truncated", "the last two lines are not the 总交易单数 summary")
    n = len(lines) - 3
    line_nos = pl.int_range(2, n + 2, eager=True).cast(pl.Int64)
    body = split_fields(lines.slice(1, n), len(header), 2, path)
    body.columns = list(header)
    no_tick = [c for c in header if (~body[c].str.starts_with("`")).any()]
    if no_tick:
        i = int((~body[no_tick[0]].str.starts_with("`")).arg_true()[0])
        raise refuse(path, i + 2, "bad_record", f"{no_tick[0]} does not start with a backtick")
    body = body.select(pl.all().str.strip_prefix("`").str.strip_chars())

    currencies = body["货币种类"].unique().to_list()
    if len(currencies) > 1:
        raise refuse(path, 0, "mixed_currency", f"one bill holds one currency, found {sorted(currencies)}")
    currency = currencies[0] if currencies else "CNY"
    exp = exponent(currency, channel)

    parsed: dict[str, pl.Series] = {}
    for col in SUMMED:
        if col not in header:
            continue
        values = _fee_to_currency(path, body[col], line_nos, exp, col) if col == "手续费" else body[col]
        parsed[col] = amounts(path, values, line_nos, currency, channel, col, allow_empty=True).fill_null(0)

    # Control totals: the summary line must equal the rows, count and every sum.
    summary_line = len(lines)
    summary = split_fields(lines.slice(len(lines) - 1, 1), len(SUMMARY_HEADER), summary_line, path)
    cells = [summary[c][0] for c in summary.columns]
    if any(not c.startswith("`") for c in cells):
        raise refuse(path, summary_line, "bad_record", "summary values must start with a backtick")
    cells = [c[1:] for c in cells]
    count = whole_number(cells[0])
    if count is None:
        raise refuse(path, summary_line, "bad_record", f"总交易单数 {cells[0]!r} is not a count")
    got = {"总交易单数": count}
    sums = {"总交易单数": n}
    ctl_series = pl.Series("summary", cells[1:], dtype=pl.String)
    ctl_lines = pl.Series([summary_line] * len(ctl_series), dtype=pl.Int64)
    ctl_series = _fee_to_currency(path, ctl_series, ctl_lines, exp, "summary")
    ctl_values = amounts(path, ctl_series, ctl_lines, currency, channel, "summary")
    for name, value in zip(SUMMARY_HEADER[1:], ctl_values.to_list(), strict=True):
        got[name] = value
        detail_col = next((d for d, s in SUMMED.items() if s == name), None)
        sums[name] = int(parsed[detail_col].sum()) if detail_col in parsed else value
    if got != sums:
        wrong = {k: (got[k], sums[k]) for k in got if got[k] != sums[k]}
        check.disagree(summary_line, "control_total_mismatch", f"summary (file, rows) differs: {wrong} (minor units)")

    status = body["交易状态"]
    is_refund = status == "REFUND"
    zero = pl.Series([0] * n, dtype=pl.Int64)
    refund_amount = parsed.get("退款金额", zero)
    gross = pl.select(pl.when(is_refund).then(-refund_amount).otherwise(parsed["应结订单金额"])).to_series()
    fee = parsed["手续费"]
    has_refund_ids = "商户退款单号" in header
    payment_id = null_if_empty(body["商户订单号"])
    txn_id = null_if_empty(body["微信订单号"])
    if has_refund_ids:
        payment_id = pl.select(
            pl.when(is_refund).then(null_if_empty(body["商户退款单号"])).otherwise(payment_id)
        ).to_series()
        txn_id = pl.select(pl.when(is_refund).then(null_if_empty(body["微信退款单号"])).otherwise(txn_id)).to_series()
    booked = timestamps(path, body["交易时间"], line_nos, "%Y-%m-%d %H:%M:%S", "交易时间", tz="Asia/Shanghai")
    frame = build_frame(
        path=path,
        sha256=sha,
        channel=channel,
        account=body["商户号"][0] if n else "",
        business_date=business_date,
        columns={
            "line_no": line_nos,
            "line_type": pl.select(
                pl.when(is_refund).then(pl.lit(LineType.REFUND.value)).otherwise(pl.lit(LineType.PAYMENT.value))
            ).to_series(),
            "channel_txn_id": txn_id,
            "payment_id": payment_id,
            "gross_minor": gross,
            "fee_minor": fee,
            "net_minor": gross - fee,
            "currency": body["货币种类"],
            "booked_at": booked,
            "value_date": booked.dt.convert_time_zone("Asia/Shanghai").dt.date(),
            "raw": status,
        },
    )
    return ParsedFile(
        path=path, sha256=sha, format=NAME, frame=frame, controls=check.summary({"layout": layout, **got})
    )


def _backtick_body(
    path: Path, lines: pl.Series, header: tuple[str, ...], summary_header: tuple[str, ...]
) -> tuple[pl.DataFrame, list[str]]:
    """The detail rows (backticks stripped) and the summary values of a backtick bill."""
    if len(lines) == 1:
        raise refuse(path, 1, "header_only", "a header and no summary: the bill is cut off")
    if len(lines) < 3 or lines[-2] != ",".join(summary_header):
        raise refuse(path, len(lines), "truncated", f"the last two lines are not the {summary_header[0]} summary")
    n = len(lines) - 3
    body = split_fields(lines.slice(1, n), len(header), 2, path)
    body.columns = list(header)
    for c in header:
        no_tick = (~body[c].str.starts_with("`")).arg_true()
        if len(no_tick):
            raise refuse(path, int(no_tick[0]) + 2, "bad_record", f"{c} does not start with a backtick")
    summary = split_fields(lines.slice(len(lines) - 1, 1), len(summary_header), len(lines), path).row(0)
    if any(not str(c).startswith("`") for c in summary):
        raise refuse(path, len(lines), "bad_record", "summary values must start with a backtick")
    return body.select(pl.all().str.strip_prefix("`").str.strip_chars()), [str(c)[1:] for c in summary]


def _parse_fundflow(
    path: Path, sha: str, lines: pl.Series, *, channel: str, business_date: date | None, check: ControlCheck
) -> ParsedFile:
    body, cells = _backtick_body(path, lines, FUNDFLOW_HEADER, FUNDFLOW_SUMMARY)
    n = body.height
    line_nos = pl.int_range(2, n + 2, eager=True).cast(pl.Int64)
    amount = amounts(path, body["收支金额（元）"], line_nos, "CNY", channel, "收支金额（元）")
    direction = body["收支类型"]
    bad = (~direction.is_in(["收入", "支出"])).arg_true()
    if len(bad):
        raise refuse(path, int(bad[0]) + 2, "bad_line_type", f"收支类型 {direction[int(bad[0])]!r}")
    income = direction == "收入"
    summary_line = len(lines)
    if any(whole_number(c) is None for c in (cells[0], cells[1], cells[3])):
        raise refuse(path, summary_line, "bad_record", f"counts {cells[0]!r}, {cells[1]!r}, {cells[3]!r}")
    ctl = amounts(path, pl.Series([cells[2], cells[4]]), pl.Series([summary_line] * 2), "CNY", channel, "summary")
    declared = (int(cells[0]), int(cells[1]), int(ctl[0]), int(cells[3]), int(ctl[1]))
    actual = (
        n,
        int(income.sum()),
        int(amount.filter(income).sum()),
        int((~income).sum()),
        int(amount.filter(~income).sum()),
    )
    if declared != actual:
        check.disagree(summary_line, "control_total_mismatch", f"summary {declared}, rows {actual} (counts, fen)")
    signed = pl.select(pl.when(income).then(amount).otherwise(-amount)).to_series()
    booked = timestamps(path, body["记账时间"], line_nos, "%Y-%m-%d %H:%M:%S", "记账时间", tz="Asia/Shanghai")
    rows = pl.DataFrame(
        {
            "line_no": line_nos,
            "kind": body["业务类型"],
            "txn": null_if_empty(body["微信支付业务单号"]),
            "payment_id": null_if_empty(body["业务凭证号"]),
            "signed": signed,
            "booked_at": booked,
        }
    )
    # A fee row under the same business number as a movement is that movement's fee (WeChat books
    # them as two flows); a fee row of its own stays a FEE line.
    movement_txns = rows.filter(pl.col("kind") != "手续费")["txn"].drop_nulls()
    folded = (pl.col("kind") == "手续费") & pl.col("txn").is_in(movement_txns.implode())
    fees = rows.filter(folded).group_by("txn").agg((-pl.col("signed")).sum().alias("fee_minor"))
    lines_ = (
        rows.filter(~folded)
        .join(fees, on="txn", how="left", nulls_equal=False)
        .with_columns(pl.col("fee_minor").fill_null(0))
        .sort("line_no")
    )
    frame = build_frame(
        path=path,
        sha256=sha,
        channel=channel,
        account="",
        business_date=business_date,
        columns={
            "line_no": lines_["line_no"],
            "line_type": lines_["kind"].replace_strict(
                {k: v.value for k, v in FUNDFLOW_TYPES.items()}, default=LineType.ADJUSTMENT.value
            ),
            "channel_txn_id": lines_["txn"],
            "payment_id": lines_["payment_id"],
            "gross_minor": lines_["signed"],
            "fee_minor": lines_["fee_minor"],
            "net_minor": lines_["signed"] - lines_["fee_minor"],
            "currency": pl.Series(["CNY"] * lines_.height, dtype=pl.String),
            "booked_at": lines_["booked_at"],
            "value_date": lines_["booked_at"].dt.convert_time_zone("Asia/Shanghai").dt.date(),
            "raw": pl.Series(["SUCCESS"] * lines_.height, dtype=pl.String),
        },
    )
    # `flows`, not `rows`: the bill counts fund flows, and a fee flow folds into its movement's line,
    # so the count (checked above) is not the number of statement lines the gate would compare it to.
    return ParsedFile(
        path=path, sha256=sha, format=NAME, frame=frame, controls=check.summary({"layout": "FUNDFLOW", "flows": n})
    )


def _write_fundflow(lines: Sequence[StatementLine], path: Path) -> None:
    """The fund-flow bill of the day's payouts (gzip, mtime 0 for reproducible bytes)."""
    out = [",".join(FUNDFLOW_HEADER)]
    income = expense = n_in = n_out = 0
    for line in lines:
        if line.booked_at is None:
            raise ValueError(f"{line.channel_txn_id}: a fund-flow row needs its booking time")
        if line.fee_minor and not line.channel_txn_id:
            raise ValueError("a fund-flow fee is tied to its movement by the business number; this line has none")
        when = line.booked_at.astimezone(CST).strftime("%Y-%m-%d %H:%M:%S")
        kind = {
            LineType.PAYOUT: "企业付款",
            LineType.FEE: "手续费",
            LineType.PAYMENT: "交易",
            LineType.REFUND: "退款",
        }.get(line.line_type, "调账")
        # The movement books its gross; the fee is a second flow under the same business number.
        flows = [(kind, line.gross_minor)]
        if line.fee_minor:
            flows.append(("手续费", -line.fee_minor))
        for flow_kind, signed in flows:
            amount = abs(signed)
            if signed >= 0:
                income, n_in = income + amount, n_in + 1
            else:
                expense, n_out = expense + amount, n_out + 1
            row = (when, line.channel_txn_id or "", "", flow_kind, flow_kind, "收入" if signed >= 0 else "支出",
                   format_amount(amount, "CNY"), "", "payrecon", "", line.payment_id or "")  # fmt: skip
            out.append(",".join(_cell(v) for v in row))
    out.append(",".join(FUNDFLOW_SUMMARY))
    out.append(
        ",".join(
            _cell(v)
            for v in (
                str(n_in + n_out),
                str(n_in),
                format_amount(income, "CNY"),
                str(n_out),
                format_amount(expense, "CNY"),
            )
        )
    )
    path.write_bytes(gzip.compress(("\n".join(out) + "\n").encode("utf-8"), mtime=0))


def _cell(value: str) -> str:
    assert "," not in value and "\n" not in value, f"a WeChat bill field cannot hold {value!r}"
    return "`" + value


def write(lines: Sequence[StatementLine], directory: Path, *, rule: Rule, business_date: date) -> list[Path]:
    """Write `lines` as the ALL-layout trade bill `<channel>_<date>_ALL.csv.gz` (gzip, as the v3 API
    serves it) with its summary: PAYMENT lines become trade rows, REFUND lines refund rows. Other
    lines (payouts) go to the fund-flow bill `<channel>_<date>_FUNDFLOW.csv.gz`, written only when
    there are any. Fees with WeChat's five decimals; timestamps in Beijing time."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{rule.channel}_{business_date.isoformat()}_ALL.csv.gz"
    cur, ch = rule.currency, rule.channel
    exp = exponent(cur, ch)

    def money(minor: int) -> str:
        return format_amount(minor, cur, channel=ch)

    def fee_text(minor: int) -> str:
        return money(minor) + "0" * (FEE_DECIMALS - exp) if exp else money(minor) + "." + "0" * FEE_DECIMALS

    out = [",".join(ALL_HEADER)]
    totals = dict.fromkeys(SUMMED, 0)
    trades = [ln for ln in lines if ln.line_type in (LineType.PAYMENT, LineType.REFUND)]
    others = [ln for ln in lines if ln.line_type not in (LineType.PAYMENT, LineType.REFUND)]
    for line in trades:
        if line.currency != cur:
            raise ValueError(f"{line.channel_txn_id}: a {cur} bill cannot hold {line.currency}")
        if line.booked_at is None:
            raise ValueError(f"{line.channel_txn_id}: a WeChat bill row needs its trade time")
        refund = line.line_type is LineType.REFUND
        settle = 0 if refund else line.gross_minor
        refund_amt = -line.gross_minor if refund else 0
        row = dict.fromkeys(ALL_HEADER, "")
        row.update(
            {
                "交易时间": line.booked_at.astimezone(CST).strftime("%Y-%m-%d %H:%M:%S"),
                "公众账号ID": "wx0000000000000000",
                "商户号": rule.account,
                "特约商户号": "0",
                "微信订单号": "" if refund else (line.channel_txn_id or ""),
                "商户订单号": "" if refund else (line.payment_id or ""),
                "用户标识": "",
                "交易类型": "NATIVE",
                # A refund row's state is REFUND whatever code the caller carries; a trade row keeps
                # the caller's trade state (SUCCESS unless told otherwise).
                "交易状态": "REFUND" if refund else (line.raw if line.raw not in ("", "REFUND") else "SUCCESS"),
                "付款银行": "OTHERS",
                "货币种类": cur,
                "应结订单金额": money(settle),
                "代金券金额": money(0),
                "微信退款单号": (line.channel_txn_id or "") if refund else "0",
                "商户退款单号": (line.payment_id or "") if refund else "0",
                "退款金额": money(refund_amt),
                "充值券退款金额": money(0),
                "退款类型": "ORIGINAL" if refund else "",
                "退款状态": "SUCCESS" if refund else "",
                "手续费": fee_text(line.fee_minor),
                "费率": "0.60%",
                "订单金额": money(settle),
                "申请退款金额": money(refund_amt),
            }
        )
        totals["应结订单金额"] += settle
        totals["退款金额"] += refund_amt
        totals["手续费"] += line.fee_minor
        totals["订单金额"] += settle
        totals["申请退款金额"] += refund_amt
        out.append(",".join(_cell(row[c]) for c in ALL_HEADER))
    out.append(",".join(SUMMARY_HEADER))
    summary = [str(len(trades)), money(totals["应结订单金额"]), money(totals["退款金额"]), money(0),
               fee_text(totals["手续费"]), money(totals["订单金额"]), money(totals["申请退款金额"])]  # fmt: skip
    out.append(",".join(_cell(v) for v in summary))
    # mtime=0: the same lines give the same bytes, so a re-run writes an identical file (same sha256).
    path.write_bytes(gzip.compress(("\n".join(out) + "\n").encode("utf-8"), mtime=0))
    if not others:
        return [path]
    flow = directory / f"{rule.channel}_{business_date.isoformat()}_FUNDFLOW.csv.gz"
    _write_fundflow(others, flow)
    return [path, flow]


def sniff(head: bytes, name: str) -> bool:
    if head[:2] == b"\x1f\x8b":
        return "wechat" in name.lower() or name.endswith(("_ALL.csv.gz", "_FUNDFLOW.csv.gz"))
    return head.lstrip(b"\xef\xbb\xbf").startswith(
        ("交易时间,公众账号ID".encode(), "记账时间,微信支付业务单号".encode())
    )


FORMAT = register(StatementFormat(NAME, parse=parse, write=write, sniff=sniff, description=__doc__.splitlines()[0]))
