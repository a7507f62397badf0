"""Exports of bills and movements: CSV and XLSX (the PDF statement: ``statement_pdf``).

Amounts are written as the same decimal strings the API returns (in XLSX as
exact text cells with a numeric twin column would invite float rounding, so
they stay text), so an export matches the bill to the cent.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from openpyxl import Workbook

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


CONSUMPTION_COLUMNS = ("day", "workspace_id", "site", "item", "retention_days", "kind",
                       "quantity", "unit_price", "amount", "detail_id")
TRANSACTION_COLUMNS = ("entry_id", "at", "kind", "reference", "balance", "instrument", "amount")
