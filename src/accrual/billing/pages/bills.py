"""Bill management: monthly bills, consumption details, income & expenditure, and their
downloads (the same exporters as the API's `format=`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from accrual.billing.domain.bounds import check_day, check_range
from accrual.billing.exports import (
    CONSUMPTION_COLUMNS,
    TRANSACTION_COLUMNS,
    consumption_row,
    to_csv,
    to_xlsx,
    transaction_row,
)
from accrual.billing.pages.access import AccountDep, CenterDep, PagesDep
from accrual.billing.services.statements import BillLine, MonthlyBill, month_start, parse_month
from accrual.billing.statement_pdf import statement_pdf
from accrual.billing.wiring import BillingCenter
from accrual.clock import site_day
from accrual.contract.errors import Invalid, NotFound, ServiceError
from accrual.money import format_minor
from accrual.web import paging
from accrual.web.rendering import FieldError, PageRoute, language_of

router = APIRouter(prefix="/billing/bills", route_class=PageRoute, include_in_schema=False)

MEDIA = {"csv": "text/csv; charset=utf-8",
         "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
         "pdf": "application/pdf"}
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _file(content: bytes, kind: str, name: str) -> Response:
    return Response(content, media_type=MEDIA[kind],
                    headers={"Content-Disposition": f'attachment; filename="{name}.{kind}"',
                             "cache-control": "no-store"})


def _sheet(kind: str, title: str, columns: tuple[str, ...], rows: list[dict[str, object]],
           name: str) -> Response:
    if kind not in ("csv", "xlsx"):
        raise NotFound("format_not_found", "downloads are CSV or XLSX")
    content = to_csv(columns, rows) if kind == "csv" else to_xlsx(title, columns, rows)
    return _file(content, kind, name)


@dataclass(frozen=True)
class Period:
    """A filter's from/to as typed, and the days they mean once both are valid."""

    start_text: str
    end_text: str
    start: date | None
    end: date | None
    error: FieldError | None


def _day(text: str, field: str) -> date:
    if not _DAY.fullmatch(text):
        raise Invalid("invalid_date", "write the day as YYYY-MM-DD")
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise Invalid("invalid_date", f"{text} is no day of the calendar") from None
    return check_day(field, day)


def period(center: BillingCenter, query: Mapping[str, str]) -> Period:
    """``?from=&to=`` (default: this month so far), bounded as the API bounds them."""
    today = site_day(center.clock.now(), center.config.zone)
    start_text = query.get("from", month_start(today).isoformat())[:40]
    end_text = query.get("to", today.isoformat())[:40]
    field = "from"
    try:
        start = _day(start_text, "from")
        field = "to"
        end = _day(end_text, "to")
        check_range(start, end)
    except ServiceError as error:
        return Period(start_text, end_text, None, None, FieldError(error.code, error.message, field))
    return Period(start_text, end_text, start, end, None)


def _period_or_refuse(center: BillingCenter, query: Mapping[str, str]) -> tuple[date, date]:
    found = period(center, query)
    if found.start is None or found.end is None:
        assert found.error is not None
        raise Invalid(found.error.code, found.error.message)
    return found.start, found.end


# -- monthly bills -------------------------------------------------------------------


@router.get("/monthly")
def monthly(request: Request, account_id: AccountDep, center: CenterDep,
            pages: PagesDep) -> Response:
    account = center.accounts.account(account_id)
    found = center.invoices.invoiceable(account_id)
    currency = found.currency
    # The invoiceable parts come from the ledger; lines and generation from the bill itself.
    generated = {bill.month: bill for bill in center.statements.bills(account_id)}
    rows = [{"month": bill.month.strftime("%Y-%m"),
             "total": format_minor(bill.bill_total_minor, currency),
             "cash": format_minor(bill.parts.consumption_paid_in_cash_minor, currency),
             "other": format_minor(bill.bill_total_minor
                                   - bill.parts.consumption_paid_in_cash_minor, currency),
             "invoiceable": format_minor(bill.parts.invoiceable_minor, currency),
             "lines": generated[bill.month].lines,
             "generated_at": generated[bill.month].generated_at}
            for bill in found.bills if bill.month in generated]
    return pages.render(request, "billing/bills_monthly.html",
                        {"account": account, "bills": rows, "currency": currency})


def _month(center: BillingCenter, account_id: str,
           month: str) -> tuple[MonthlyBill, list[BillLine]]:
    return center.statements.bill(account_id, parse_month(month))


MonthPath = Annotated[str, Path(max_length=7)]


@router.get("/monthly/{month}")
def monthly_detail(request: Request, account_id: AccountDep, center: CenterDep, pages: PagesDep,
                   month: MonthPath) -> Response:
    account = center.accounts.account(account_id)
    bill, lines = _month(center, account_id, month)
    rows = [consumption_row(line) for line in lines]
    table = paging.table(rows, request.query_params,
                         {"day": lambda r: r["day"], "item": lambda r: r["item"],
                          "workspace": lambda r: r["workspace_id"],
                          "amount": _amount},
                         default_sort="day")
    return pages.render(request, "billing/bills_month.html",
                        {"account": account, "month": bill.month.strftime("%Y-%m"),
                         "total": format_minor(bill.total_minor, bill.currency),
                         "currency": bill.currency, "table": table})


@router.get("/monthly/{month}/download/{kind}")
def monthly_download(request: Request, account_id: AccountDep, center: CenterDep, month: MonthPath,
                     kind: Annotated[str, Path(max_length=8)]) -> Response:
    account = center.accounts.account(account_id)
    if kind not in MEDIA:
        raise NotFound("format_not_found", "downloads are CSV, XLSX or PDF")
    bill, lines = _month(center, account_id, month)
    shown = bill.month.strftime("%Y-%m")
    if kind == "pdf":
        # The statement in the language the pages are shown in.
        names = center.statements.workspace_names(line.workspace_id for line in lines)
        return _file(statement_pdf(bill, lines, account, names,
                                   "zh" if language_of(request) == "zh" else "en"), "pdf",
                     f"statement-{shown}")
    name = f"bill-{shown}"
    return _sheet(kind, name, CONSUMPTION_COLUMNS, [consumption_row(line) for line in lines], name)


def _amount(row: Mapping[str, object]) -> Decimal:
    return Decimal(str(row["amount"]))


# -- consumption details -------------------------------------------------------------


@router.get("/consumption")
def consumption(request: Request, account_id: AccountDep, center: CenterDep,
                pages: PagesDep) -> Response:
    account = center.accounts.account(account_id)
    chosen = period(center, request.query_params)
    rows: list[dict[str, object]] = []
    if chosen.start is not None and chosen.end is not None:
        rows = [consumption_row(line)
                for line in center.statements.consumption(account_id, chosen.start, chosen.end)]
    table = paging.table(rows, request.query_params,
                         {"day": lambda r: r["day"], "item": lambda r: r["item"],
                          "workspace": lambda r: r["workspace_id"], "kind": lambda r: r["kind"],
                          "amount": _amount},
                         default_sort="day", default_descending=True)
    status = 200 if chosen.error is None else 422  # every refusal of a period is Invalid
    return pages.render(request, "billing/bills_consumption.html",
                        {"account": account, "period": chosen, "table": table,
                         "currency": center.config.currency, "error": chosen.error},
                        status=status)


@router.get("/consumption/download/{kind}")
def consumption_download(request: Request, account_id: AccountDep, center: CenterDep,
                         kind: Annotated[str, Path(max_length=8)]) -> Response:
    center.accounts.account(account_id)
    start, end = _period_or_refuse(center, request.query_params)
    rows = [consumption_row(line) for line in center.statements.consumption(account_id, start, end)]
    return _sheet(kind, "consumption", CONSUMPTION_COLUMNS, rows, f"consumption-{start}-{end}")


# -- income & expenditure ------------------------------------------------------------


@router.get("/transactions")
def transactions(request: Request, account_id: AccountDep, center: CenterDep,
                 pages: PagesDep) -> Response:
    account = center.accounts.account(account_id)
    chosen = period(center, request.query_params)
    rows: list[dict[str, object]] = []
    if chosen.start is not None and chosen.end is not None:
        rows = [{**transaction_row(movement), "moment": movement.at} for movement
                in center.statements.transactions(account_id, chosen.start, chosen.end)]
    table = paging.table(rows, request.query_params,
                         {"at": lambda r: r["at"], "kind": lambda r: r["kind"],
                          "balance": lambda r: r["balance"], "amount": _amount},
                         default_sort="at", default_descending=True)
    status = 200 if chosen.error is None else 422  # every refusal of a period is Invalid
    return pages.render(request, "billing/bills_transactions.html",
                        {"account": account, "period": chosen, "table": table,
                         "currency": center.config.currency, "error": chosen.error},
                        status=status)


@router.get("/transactions/download/{kind}")
def transactions_download(request: Request, account_id: AccountDep, center: CenterDep,
                          kind: Annotated[str, Path(max_length=8)]) -> Response:
    center.accounts.account(account_id)
    start, end = _period_or_refuse(center, request.query_params)
    rows = [transaction_row(movement)
            for movement in center.statements.transactions(account_id, start, end)]
    return _sheet(kind, "transactions", TRANSACTION_COLUMNS, rows, f"transactions-{start}-{end}")
