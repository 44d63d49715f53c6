"""`alipay`: the Alipay merchant bill (业务明细), GBK text inside a zip; also the personal export.

Our own parser: no maintained library reads Alipay bills. The merchant bill, as
`alipay.data.dataservice.bill.downloadurl.query` serves it, is a zip holding
`<account>_<yyyymmdd>_业务明细.csv` (the detail) and `..._业务明细(汇总).csv` (a summary we do not
need, since the detail carries its own totals). The detail, in GBK:

    #支付宝业务明细查询
    #账号：[2088000000000001]
    #起始日期：[2026年11月02日 00:00:00]   终止日期：[2026年11月03日 00:00:00]
    #-----------------------------------------业务明细列表----------------------------------------
    支付宝交易号,商户订单号,业务类型,...,服务费（元）,分润（元）,备注          25 columns
    2026110222001...<TAB>,P000123<TAB>,交易,...                            ids end with a TAB so
                                                                         Excel keeps them as text
    #-----------------------------------------业务明细列表结束------------------------------------
    #交易合计：2笔，商家实收共20.00元，商家优惠共0.00元
    #退款合计：1笔，商家实收共-5.00元，商家优惠共0.00元
    #导出时间：[2026年11月03日 09:12:30]

Lines: 业务类型 交易 is a PAYMENT, 退款 a REFUND, 转账 a PAYOUT. gross = 商家实收（元） (signed: a
refund is negative), fee_minor = -服务费（元） (Alipay prints the fee it deducts as negative),
payment_id = 商户订单号, or for a refund 退款批次号/请求号 (our refund's own id) when present,
channel_txn_id = 支付宝交易号, booked_at = 完成时间 (Beijing time). A merchant bill lists only
completed business, so raw is the status code it implies: TRADE_SUCCESS, REFUND_SUCCESS or
TRANSFER_SUCCESS (keys of the rule's status_map).

Control totals: the `#交易合计` and `#退款合计` lines must equal the count and the sums of
商家实收 and 商家优惠 over the 交易 and 退款 rows (`control_total_mismatch`); a bill without them is
`truncated`. Fields are not quoted: a row with another field count is refused (`bad_record`).

The personal export (支付宝交易明细, GBK CSV, not zipped; the fixture in tests/connectors) is read
as a variant: a free-text preamble with `共N笔记录` and `收入/支出/不计收支：N笔 X元` totals, then
`交易时间,交易分类,...,备注`. 收入 rows are PAYMENT (+), 支出 rows PAYOUT (-), 不计收支 rows REFUND
(+) when their state is a refund and ADJUSTMENT (-) otherwise; raw is the Chinese state (交易成功,
退款成功, 交易关闭). It is a consumer's view, not a merchant settlement: no rule uses it.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
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
    null_if_empty,
    read_bytes,
    refuse,
    split_fields,
    split_lines,
    timestamps,
    unzip_member,
)
from connectors.statements.intake import sha256_bytes
from pipelines.money import format_amount, parse_amount
from pipelines.records import LineType, StatementLine

if TYPE_CHECKING:
    from pipelines.matching.rules import Rule

NAME = "alipay"
CST = timezone(timedelta(hours=8))
CURRENCY = "CNY"  # Alipay merchant bills are in yuan; cross-border settlements come in other reports.
LIST_START = "#-----------------------------------------业务明细列表----------------------------------------"
LIST_END = "#-----------------------------------------业务明细列表结束------------------------------------"
MERCHANT_HEADER = (
    "支付宝交易号", "商户订单号", "业务类型", "商品名称", "创建时间", "完成时间", "门店编号", "门店名称", "操作员",
    "终端号", "对方账户", "订单金额（元）", "商家实收（元）", "支付宝红包（元）", "集分宝（元）", "支付宝优惠（元）",
    "商家优惠（元）", "券核销金额（元）", "券名称", "商家红包消费金额（元）", "卡消费金额（元）", "退款批次号/请求号",
    "服务费（元）", "分润（元）", "备注",
)  # fmt: skip
BIZ_TYPES = {"交易": LineType.PAYMENT, "退款": LineType.REFUND, "转账": LineType.PAYOUT}
STATUS_OF = {"交易": "TRADE_SUCCESS", "退款": "REFUND_SUCCESS", "转账": "TRANSFER_SUCCESS"}
TOTAL_RE = re.compile(
    r"^#(交易|退款)合计：([0-9]+)笔，商家实收共(-?[0-9]+(?:\.[0-9]+)?)元，商家优惠共(-?[0-9]+(?:\.[0-9]+)?)元$"
)

PERSONAL_HEADER = ("交易时间", "交易分类", "交易对方", "对方账号", "商品说明", "收/支", "金额", "收/付款方式", "交易状态",
                   "交易订单号", "商家订单号", "备注")  # fmt: skip
PERSONAL_COUNT_RE = re.compile(r"^共([0-9]+)笔记录$")
PERSONAL_TOTAL_RE = re.compile(r"^(收入|支出|不计收支)：([0-9]+)笔 (-?[0-9]+(?:\.[0-9]+)?)元$")


@dataclass
class Bill:
    """One bill read but not yet checked: the detail rows (String columns), their line numbers,
    and what the file's own totals say beside what the rows add up to (minor units)."""

    variant: str
    rows: pl.DataFrame
    line_nos: pl.Series
    declared: dict[str, tuple[int, int, int]]  # kind -> (count, sum, sum2) as the file states them
    computed: dict[str, tuple[int, int, int]]  # the same from the rows
    control_line: int  # where the totals are written, for the error
    account: str


def _text_of(path: Path, data: bytes) -> str:
    if data[:4] == b"PK\x03\x04":
        _name, data = unzip_member(path, data, prefer=lambda n: "汇总" not in n)
    return decode(path, data, "gbk")


def _squash(text: str) -> str:
    # The personal export pads every field with spaces, the header too.
    return re.sub(r"[ \t]*,[ \t]*", ",", text)


def _strip(rows: pl.DataFrame) -> pl.DataFrame:
    # Ids end with a TAB and fields carry space padding; neither is part of the value.
    return rows.select(pl.all().str.strip_chars(" \t"))


def read(path: Path, *, channel: str = NAME) -> Bill:
    """Read a merchant bill (zip or bare GBK CSV) or a personal export without checking its totals;
    format defects (encoding, layout, amounts) are still refused here."""
    path = Path(path)
    text = _text_of(path, read_bytes(path))
    lines = split_lines(text)
    first = lines[0] if len(lines) else ""
    if first.startswith("#支付宝业务明细"):
        return _read_merchant(path, lines, channel)
    if first.startswith("------") or "交易时间,交易分类" in _squash(text[:4096]):
        return _read_personal(path, lines, channel)
    raise refuse(path, 1, "bad_header", f"not an Alipay bill: {first[:60]!r}")


def _read_merchant(path: Path, lines: pl.Series, channel: str) -> Bill:
    texts = lines.to_list() if len(lines) < 64 else None
    header_idx = int((~lines.str.starts_with("#")).arg_true()[0]) if (~lines.str.starts_with("#")).any() else -1
    if header_idx < 0:
        raise refuse(path, len(lines), "header_only", "no column header and no rows")
    header = tuple(h.strip() for h in lines[header_idx].split(","))
    if header != MERCHANT_HEADER:
        raise refuse(path, header_idx + 1, "bad_header", f"not the 业务明细 header: {lines[header_idx][:60]!r}")
    end_hits = (lines == LIST_END).arg_true()
    if not len(end_hits):
        reason = "header_only" if header_idx == len(lines) - 1 else "truncated"
        raise refuse(path, len(lines), reason, "no 业务明细列表结束 line: the bill is cut off")
    end_idx = int(end_hits[0])
    n = end_idx - header_idx - 1
    first_line = header_idx + 2
    rows = _strip(split_fields(lines.slice(header_idx + 1, n), len(MERCHANT_HEADER), first_line, path))
    rows.columns = list(MERCHANT_HEADER)
    line_nos = pl.int_range(first_line, first_line + n, eager=True).cast(pl.Int64)
    bad_type = (~rows["业务类型"].is_in(list(BIZ_TYPES))).arg_true()
    if len(bad_type):
        i = int(bad_type[0])
        raise refuse(path, first_line + i, "bad_line_type", f"业务类型 {rows['业务类型'][i]!r}")
    received = amounts(path, rows["商家实收（元）"], line_nos, CURRENCY, channel, "商家实收（元）")
    discount = amounts(path, rows["商家优惠（元）"], line_nos, CURRENCY, channel, "商家优惠（元）", allow_empty=True)
    computed = {}
    for kind in ("交易", "退款"):
        mask = rows["业务类型"] == kind
        computed[kind] = (
            int(mask.sum()),
            int(received.filter(mask).sum()),
            int(discount.fill_null(0).filter(mask).sum()),
        )
    declared: dict[str, tuple[int, int, int]] = {}
    tail = lines.slice(end_idx + 1).to_list()
    for offset, line in enumerate(tail):
        m = TOTAL_RE.match(line.strip())
        if m:
            try:
                declared[m.group(1)] = (
                    int(m.group(2)),
                    parse_amount(m.group(3), CURRENCY, channel=channel),
                    parse_amount(m.group(4), CURRENCY, channel=channel),
                )
            except Exception as exc:
                raise refuse(path, end_idx + 2 + offset, "malformed_amount", str(exc)) from None
    if set(declared) != {"交易", "退款"}:
        raise refuse(path, len(lines), "truncated", "the #交易合计 and #退款合计 lines are missing")
    acct = next((t for t in (texts or lines.head(8).to_list()) if t.startswith("#账号：")), "")
    return Bill(
        variant="merchant",
        rows=rows.with_columns(received.alias("gross_minor"), discount.alias("discount_minor")),
        line_nos=line_nos,
        declared=declared,
        computed=computed,
        control_line=end_idx + 2,
        account=acct.removeprefix("#账号：").strip("[]"),
    )


def _read_personal(path: Path, lines: pl.Series, channel: str) -> Bill:
    head = lines.head(64).to_list()
    try:
        header_idx = next(i for i, t in enumerate(head) if _squash(t).startswith("交易时间,交易分类"))
    except StopIteration:
        raise refuse(path, 1, "bad_header", "no 交易时间,交易分类,... header in the personal export") from None
    header = tuple(h.strip() for h in head[header_idx].split(",") if h.strip())
    if header != PERSONAL_HEADER:
        raise refuse(path, header_idx + 1, "bad_header", f"unexpected columns {header}")
    declared: dict[str, tuple[int, int, int]] = {}
    control_line = 0
    for i, t in enumerate(head[:header_idx]):
        if m := PERSONAL_COUNT_RE.match(t.strip()):
            declared["记录"] = (int(m.group(1)), 0, 0)
            control_line = i + 1
        elif m := PERSONAL_TOTAL_RE.match(t.strip()):
            declared[m.group(1)] = (int(m.group(2)), parse_amount(m.group(3), CURRENCY, channel=channel), 0)
    body = lines.slice(header_idx + 1)
    body = body.filter(body.str.strip_chars() != "")
    n = len(body)
    if n == 0:
        raise refuse(path, header_idx + 1, "header_only", "a header and no rows")
    first_line = header_idx + 2
    # Each row ends with a trailing comma: one empty field more than the header names.
    rows = _strip(split_fields(body, len(PERSONAL_HEADER) + 1, first_line, path)).drop(f"f{len(PERSONAL_HEADER)}")
    rows.columns = list(PERSONAL_HEADER)
    line_nos = pl.int_range(first_line, first_line + n, eager=True).cast(pl.Int64)
    amount = amounts(path, rows["金额"], line_nos, CURRENCY, channel, "金额")
    computed = {"记录": (n, 0, 0)}
    for kind in ("收入", "支出", "不计收支"):
        mask = rows["收/支"] == kind
        computed[kind] = (int(mask.sum()), int(amount.filter(mask).sum()), 0)
    unknown = (~rows["收/支"].is_in(["收入", "支出", "不计收支"])).arg_true()
    if len(unknown):
        i = int(unknown[0])
        raise refuse(path, first_line + i, "bad_line_type", f"收/支 {rows['收/支'][i]!r}")
    return Bill("personal", rows.with_columns(amount.alias("amount_minor")), line_nos, declared,
                {k: v for k, v in computed.items() if k in declared} or computed, control_line, "")  # fmt: skip


def parse(
    path: Path, *, channel: str, business_date: date | None = None, controls: ControlPolicy = "enforce"
) -> ParsedFile:
    """Parse an Alipay merchant bill (zip or GBK CSV) or personal export into statement lines in
    CNY fen; refuse it whole on any defect, including totals that disagree with the rows
    (`controls="report"`: list that disagreement in `ParsedFile.controls["mismatches"]` instead)."""
    path = Path(path)
    ctl = ControlCheck(path, controls)
    bill = read(path, channel=channel)
    if bill.declared != bill.computed:
        wrong = {k: (bill.declared.get(k), bill.computed.get(k)) for k in sorted(bill.declared.keys() | bill.computed.keys())
                 if bill.declared.get(k) != bill.computed.get(k)}  # fmt: skip
        ctl.disagree(bill.control_line, "control_total_mismatch", f"(file, rows) per kind: {wrong}")
    sha = sha256_bytes(path.read_bytes())
    rows, line_nos = bill.rows, bill.line_nos
    if bill.variant == "merchant":
        kind = rows["业务类型"]
        fee = -amounts(
            path, rows["服务费（元）"], line_nos, CURRENCY, channel, "服务费（元）", allow_empty=True
        ).fill_null(0)
        gross = rows["gross_minor"]
        refund_id = null_if_empty(rows["退款批次号/请求号"])
        is_refund = kind == "退款"
        payment_id = pl.select(
            pl.when(is_refund & refund_id.is_not_null()).then(refund_id).otherwise(null_if_empty(rows["商户订单号"]))
        ).to_series()
        booked = timestamps(path, rows["完成时间"], line_nos, "%Y-%m-%d %H:%M:%S", "完成时间", tz="Asia/Shanghai")
        columns = {
            "line_type": kind.replace_strict({k: v.value for k, v in BIZ_TYPES.items()}),
            "channel_txn_id": null_if_empty(rows["支付宝交易号"]),
            "payment_id": payment_id,
            "gross_minor": gross,
            "fee_minor": fee,
            "net_minor": gross - fee,
            "raw": kind.replace_strict(STATUS_OF),
        }
    else:
        direction = rows["收/支"]
        refund_state = rows["交易状态"].str.contains("退款")
        amount = rows["amount_minor"]
        gross = pl.select(
            pl.when(direction == "收入").then(amount)
            .when(direction == "支出").then(-amount)
            .when(refund_state).then(amount)
            .otherwise(-amount)
        ).to_series()  # fmt: skip
        line_type = pl.select(
            pl.when(direction == "收入").then(pl.lit("PAYMENT"))
            .when(direction == "支出").then(pl.lit("PAYOUT"))
            .when(refund_state).then(pl.lit("REFUND"))
            .otherwise(pl.lit("ADJUSTMENT"))
        ).to_series()  # fmt: skip
        booked = timestamps(path, rows["交易时间"], line_nos, "%Y-%m-%d %H:%M:%S", "交易时间", tz="Asia/Shanghai")
        columns = {
            "line_type": line_type,
            "channel_txn_id": null_if_empty(rows["交易订单号"]),
            "payment_id": null_if_empty(rows["商家订单号"]),
            "gross_minor": gross,
            "fee_minor": pl.Series([0] * len(rows), dtype=pl.Int64),
            "net_minor": gross,
            "raw": rows["交易状态"],
        }
    frame = build_frame(
        path=path,
        sha256=sha,
        channel=channel,
        account=bill.account,
        business_date=business_date,
        columns={
            "line_no": line_nos,
            **columns,
            "currency": pl.Series([CURRENCY] * len(rows), dtype=pl.String),
            "booked_at": booked,
            "value_date": booked.dt.convert_time_zone("Asia/Shanghai").dt.date(),
        },
    )
    return ParsedFile(
        path=path,
        sha256=sha,
        format=NAME,
        frame=frame,
        controls=ctl.summary({"variant": bill.variant, **{k: list(v) for k, v in bill.declared.items()}}),
    )


def render(lines: Sequence[StatementLine], *, account: str, business_date: date, exported_at: datetime) -> bytes:
    """The GBK bytes of one 业务明细 detail file for `lines` (PAYMENT, REFUND and PAYOUT only)."""
    money = lambda minor: format_amount(minor, CURRENCY)  # noqa: E731
    start = business_date.strftime("%Y年%m月%d日")
    end = (business_date + timedelta(days=1)).strftime("%Y年%m月%d日")
    out = [
        "#支付宝业务明细查询",
        f"#账号：[{account}]",
        f"#起始日期：[{start} 00:00:00]   终止日期：[{end} 00:00:00]",
        LIST_START,
        ",".join(MERCHANT_HEADER),
    ]
    kind_of = {v: k for k, v in BIZ_TYPES.items()}
    totals = {"交易": [0, 0], "退款": [0, 0]}
    for line in lines:
        kind = kind_of.get(line.line_type)
        if kind is None:
            raise ValueError(f"{line.channel_txn_id}: an Alipay 业务明细 has no {line.line_type} lines")
        if line.currency != CURRENCY:
            raise ValueError(f"{line.channel_txn_id}: an Alipay bill is in CNY, not {line.currency}")
        if line.booked_at is None:
            raise ValueError(f"{line.channel_txn_id}: an Alipay bill row needs its completion time")
        refund = line.line_type is LineType.REFUND
        when = line.booked_at.astimezone(CST).strftime("%Y-%m-%d %H:%M:%S")
        row = dict.fromkeys(MERCHANT_HEADER, "")
        for value in (line.channel_txn_id or "", line.payment_id or ""):
            assert "," not in value and "\n" not in value, f"an Alipay bill field cannot hold {value!r}"
        row.update(
            {
                "支付宝交易号": (line.channel_txn_id or "") + "\t",
                "商户订单号": ("" if refund else (line.payment_id or "")) + "\t",
                "业务类型": kind,
                "商品名称": "payrecon",
                "创建时间": when,
                "完成时间": when,
                "对方账户": "",
                "订单金额（元）": money(line.gross_minor),
                "商家实收（元）": money(line.gross_minor),
                "支付宝红包（元）": money(0),
                "集分宝（元）": money(0),
                "支付宝优惠（元）": money(0),
                "商家优惠（元）": money(0),
                "券核销金额（元）": money(0),
                "商家红包消费金额（元）": money(0),
                "卡消费金额（元）": money(0),
                "退款批次号/请求号": ((line.payment_id or "") if refund else "") + "\t",
                "服务费（元）": money(-line.fee_minor),
                "分润（元）": money(0),
            }
        )
        if kind in totals:
            totals[kind][0] += 1
            totals[kind][1] += line.gross_minor
        out.append(",".join(row[c] for c in MERCHANT_HEADER))
    out.append(LIST_END)
    for kind, (count, received) in totals.items():
        out.append(f"#{kind}合计：{count}笔，商家实收共{money(received)}元，商家优惠共{money(0)}元")
    out.append(f"#导出时间：[{exported_at.astimezone(CST).strftime('%Y年%m月%d日 %H:%M:%S')}]")
    return ("\r\n".join(out) + "\r\n").encode("gbk")


def write(lines: Sequence[StatementLine], directory: Path, *, rule: Rule, business_date: date) -> list[Path]:
    """Write `lines` as the day's merchant bill zip `<account>_<yyyymmdd>.csv.zip` holding the GBK
    `<account>_<yyyymmdd>_业务明细.csv`. The zip's timestamps are fixed, so the same lines give the
    same bytes (and sha256) on every run."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = business_date.strftime("%Y%m%d")
    exported = datetime.combine(business_date + timedelta(days=1), datetime.min.time(), CST).replace(hour=9)
    detail = render(lines, account=rule.account, business_date=business_date, exported_at=exported)
    path = directory / f"{rule.account}_{stamp}.csv.zip"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo(
            f"{rule.account}_{stamp}_业务明细.csv",
            date_time=(business_date.year, business_date.month, business_date.day, 0, 0, 0),
        )
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, detail)
    path.write_bytes(buf.getvalue())
    return [path]


def sniff(head: bytes, name: str) -> bool:
    if head[:4] == b"PK\x03\x04":
        return "业务明细".encode() in head or "业务明细".encode("gbk") in head or name.endswith(".csv.zip")
    # The personal export pads its header with spaces; its preamble names 支付宝 (Alipay) in GBK.
    return head.startswith("#支付宝业务明细".encode("gbk")) or (
        head.startswith(b"-----") and "支付宝".encode("gbk") in head
    )


FORMAT = register(StatementFormat(NAME, parse=parse, write=write, sniff=sniff, description=__doc__.splitlines()[0]))
