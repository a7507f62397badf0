"""The monthly statement as PDF, in English or Simplified Chinese.

Text is set in a subset of Noto Sans CJK SC shipped in ``accrual/fonts/`` (made by
``tools/subset_cjk_font.py``: Latin, CJK punctuation, full-width forms and the 3,755
common hanzi of GB2312 level 1, SIL Open Font License). A character the subset lacks
(a rare hanzi, an emoji in a workspace name) is printed as □ rather than dropped or
failing the whole statement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Literal

from fontTools.ttLib import TTFont
from fpdf import FPDF

from accrual.billing.services.accounts import BillingAccount
from accrual.billing.services.statements import BillLine, MonthlyBill
from accrual.catalog.items import item_for
from accrual.fonts import BOLD, REGULAR
from accrual.money import format_minor

Language = Literal["en", "zh"]
LANGUAGES: tuple[Language, ...] = ("en", "zh")

MISSING = "□"  # U+25A1, in the subset (GB2312 row 1)

LABELS: dict[Language, dict[str, str]] = {
    "en": {"title": "Monthly statement {month}", "account": "Account", "currency": "Currency",
           "total": "Total", "lines": "Lines", "generated": "Generated", "colon": ": ",
           "by_workspace": "Totals by workspace", "details": "Details",
           "workspace": "Workspace", "workspace_id": "Workspace ID", "site": "Site",
           "day": "Day", "item": "Item", "retention": "Retention (days)", "kind": "Kind",
           "quantity": "Quantity", "unit_price": "Unit price", "amount": "Amount",
           "charge": "charge", "adjustment": "adjustment", "no_lines": "No lines this month."},
    "zh": {"title": "{month} 月度账单", "account": "账号", "currency": "币种", "total": "合计",
           "lines": "明细条数", "generated": "生成时间", "colon": "：",
           "by_workspace": "按工作空间汇总", "details": "消费明细",
           "workspace": "工作空间", "workspace_id": "工作空间 ID", "site": "站点",
           "day": "日期", "item": "计费项", "retention": "数据保存（天）", "kind": "类型",
           "quantity": "用量", "unit_price": "单价", "amount": "金额",
           "charge": "消费", "adjustment": "调整", "no_lines": "本月无消费明细。"},
}

# The billing items' names in Chinese (English: the catalog's titles).
ITEM_NAMES_ZH = {
    "timeseries": "时间线", "logs": "日志", "trace": "应用性能 Trace", "profile": "应用性能 Profile",
    "rum_pv": "用户访问 PV", "session_replay": "会话重放", "synthetic_test": "可用性监测",
    "trigger": "任务调用", "sms": "短信", "network_host": "网络（eBPF）主机",
    "forward_external": "数据转发（外部存储）", "forward_internal": "数据转发（平台存储）",
    "sensitive_scan": "敏感数据扫描", "scheduled_report": "定时报告",
    "central_pipeline": "中心 Pipeline 处理", "datakit": "DataKit 主机（旧版）",
}


@cache
def covered() -> frozenset[int]:
    """The code points the shipped font draws (both weights hold the same set)."""
    with TTFont(str(REGULAR)) as font:
        return frozenset(font.getBestCmap())


def printable(value: object) -> str:
    """``value`` as text the font can draw: any other character becomes □."""
    drawn = covered()
    return "".join(char if ord(char) in drawn else MISSING for char in str(value))


def item_name(code: str, language: Language) -> str:
    if language == "zh":
        return ITEM_NAMES_ZH.get(code, code)
    item = item_for(code)
    return item.title if item is not None else code


def statement_pdf(bill: MonthlyBill, lines: Sequence[BillLine], account: BillingAccount,
                  workspace_names: Mapping[str, str], language: Language = "en") -> bytes:
    """A monthly statement: header, totals per workspace, then every line."""
    label = LABELS[language]
    month = bill.month.strftime("%Y-%m")
    pdf = FPDF(orientation="L", format="A4")
    pdf.add_font("Body", "", str(REGULAR))
    pdf.add_font("Body", "B", str(BOLD))
    pdf.set_title(printable(label["title"].format(month=month)))

    def cell(width: float, value: object, *, border: int = 1, align: str = "L") -> None:
        text = printable(value)
        if width and pdf.get_string_width(text) > width - 2:
            while text and pdf.get_string_width(text + "…") > width - 2:
                text = text[:-1]
            text += "…"
        pdf.cell(width, 6, text, border=border, align=align)  # type: ignore[arg-type]

    def line(value: str) -> None:
        pdf.cell(0, 6, printable(value), new_x="LMARGIN", new_y="NEXT")

    def heading(value: str, size: int) -> None:
        pdf.set_font("Body", "B", size)
        pdf.cell(0, 10, printable(value), new_x="LMARGIN", new_y="NEXT")

    def table(columns: Sequence[tuple[str, float, str]], rows: Sequence[Sequence[object]]) -> None:
        pdf.set_font("Body", "B", 8)
        for name, width, _align in columns:
            cell(width, label[name])
        pdf.ln()
        pdf.set_font("Body", "", 8)
        for row in rows:
            for (_name, width, align), value in zip(columns, row, strict=True):
                cell(width, value, align=align)
            pdf.ln()

    def name_of(workspace_id: str) -> str:
        return workspace_names.get(workspace_id, "")

    pdf.add_page()
    heading(label["title"].format(month=month), 16)
    pdf.set_font("Body", "", 10)
    total = format_minor(bill.total_minor, bill.currency)
    for key, value in (("account", f"{account.username} ({account.account_id})"),
                       ("currency", bill.currency), ("total", total),
                       ("lines", bill.lines), ("generated", bill.generated_at.isoformat())):
        line(f"{label[key]}{label['colon']}{value}")
    pdf.ln(4)

    heading(label["by_workspace"], 12)
    totals: dict[str, int] = {}
    sites: dict[str, str] = {}
    for bill_line in lines:
        totals[bill_line.workspace_id] = totals.get(bill_line.workspace_id, 0) + bill_line.amount_minor
        sites[bill_line.workspace_id] = bill_line.site
    table((("workspace", 90, "L"), ("workspace_id", 80, "L"), ("site", 24, "L"),
           ("amount", 40, "R")),
          [(name_of(ws), ws, sites[ws], format_minor(amount, bill.currency))
           for ws, amount in sorted(totals.items(), key=lambda kv: (name_of(kv[0]), kv[0]))])
    pdf.ln(4)

    heading(label["details"], 12)
    if not lines:
        pdf.set_font("Body", "", 10)
        line(label["no_lines"])
    table((("day", 22, "L"), ("workspace", 52, "L"), ("site", 14, "L"), ("item", 52, "L"),
           ("retention", 26, "R"), ("kind", 20, "L"), ("quantity", 34, "R"),
           ("unit_price", 24, "R"), ("amount", 28, "R")),
          [(bl.day.isoformat(), name_of(bl.workspace_id) or bl.workspace_id, bl.site,
            item_name(bl.item, language), bl.retention_days or "", label.get(bl.kind, bl.kind),
            bl.quantity, bl.unit_price, format_minor(bl.amount_minor, bl.currency))
           for bl in lines])
    return bytes(pdf.output())
