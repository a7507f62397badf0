"""Exports of bills and movements: CSV, XLSX, and the monthly statement as PDF.

Amounts are written as the same decimal strings the API returns (in XLSX as
exact text cells with a numeric twin column would invite float rounding, so
they stay text), so an export matches the bill to the cent.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from fpdf import FPDF
from openpyxl import Workbook

from accrual.billing.services.accounts import BillingAccount
from accrual.billing.services.statements import BillLine, MonthlyBill, Movement
from accrual.money import format_minor

Row = dict[str, object]


def bill_row(bill: MonthlyBill) -> Row:
    """A monthly bill as the API and the statement print it."""
    return {"month": bill.month.strftime("%Y-%m"), "account_id": bill.account_id,
            "currency": bill.currency, "total": format_minor(bill.total_minor, bill.currency),
            "lines": bill.lines, "generated_at": bill.generated_at.isoformat()}


def consumption_row(line: BillLine) -> Row:
    """A consumption detail as the API and the spreadsheets print it (CONSUMPTION_COLUMNS)."""
    return {"day": line.day.isoformat(), "workspace_id": line.workspace_id, "site": line.site,
            "item": line.item, "retention_days": line.retention_days, "kind": line.kind,
            "quantity": line.quantity, "unit_price": line.unit_price,
            "amount": format_minor(line.amount_minor, line.currency),
            "detail_id": line.detail_id, "received_at": line.received_at.isoformat()}


def transaction_row(movement: Movement) -> Row:
    """A movement as the API and the spreadsheets print it (TRANSACTION_COLUMNS)."""
    return {"entry_id": movement.entry_id, "at": movement.at.isoformat(), "kind": movement.kind,
            "reference": movement.reference, "balance": movement.balance,
            "instrument": movement.instrument,
            "amount": format_minor(movement.amount_minor, movement.currency)}

_FONT_CANDIDATES = (Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),)


def to_csv(columns: Sequence[str], rows: Sequence[Row]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    # A BOM so that spreadsheet programs read UTF-8 (Chinese workspace names).
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def to_xlsx(title: str, columns: Sequence[str], rows: Sequence[Row]) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = title[:31]
    sheet.append(list(columns))
    for row in rows:
        sheet.append(["" if row.get(c) is None else str(row.get(c)) for c in columns])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def statement_pdf(bill: MonthlyBill, lines: Sequence[BillLine],
                  account: BillingAccount) -> bytes:
    """A monthly statement: header, totals per workspace and item, then every line."""
    shown = bill_row(bill)
    pdf = FPDF(orientation="L", format="A4")
    font = next((f for f in _FONT_CANDIDATES if f.exists()), None)
    if font is not None:
        pdf.add_font("Body", "", str(font))
        family = "Body"
    else:  # core font: Latin-1 only
        family = "Helvetica"

    def text(value: object) -> str:
        s = str(value)
        return s if font is not None else s.encode("latin-1", "replace").decode("latin-1")

    pdf.add_page()
    pdf.set_font(family, size=16)
    pdf.cell(0, 10, text(f"Monthly statement {shown['month']}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(family, size=10)
    for label, value in (("Account", f"{account.username} ({account.account_id})"),
                         ("Currency", shown["currency"]), ("Total", shown["total"]),
                         ("Lines", shown["lines"]), ("Generated", shown["generated_at"])):
        pdf.cell(0, 6, text(f"{label}: {value}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    columns = (("day", 24), ("workspace_id", 70), ("site", 16), ("item", 34),
               ("retention_days", 14), ("kind", 24), ("quantity", 36), ("unit_price", 24),
               ("amount", 28))
    pdf.set_font(family, size=8)
    for name, width in columns:
        pdf.cell(width, 6, text(name), border=1)
    pdf.ln()
    for line in lines:
        row = consumption_row(line)
        for name, width in columns:
            pdf.cell(width, 6, text(row[name]), border=1)
        pdf.ln()
    return bytes(pdf.output())


CONSUMPTION_COLUMNS = ("day", "workspace_id", "site", "item", "retention_days", "kind",
                       "quantity", "unit_price", "amount", "detail_id")
TRANSACTION_COLUMNS = ("entry_id", "at", "kind", "reference", "balance", "instrument", "amount")
