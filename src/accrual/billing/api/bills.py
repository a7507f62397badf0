"""Bills and exports: daily and monthly bills, consumption details, income & expenditure."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Depends, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from accrual.billing.api.deps import (
    AccountDep,
    CenterDep,
    billing_router,
    require_operator,
)
from accrual.billing.domain.bounds import (
    DATE_WINDOW,
    MONTH_PATTERN,
    MONTH_WINDOW,
    check_day,
    check_range,
)
from accrual.billing.exports import (
    CONSUMPTION_COLUMNS,
    TRANSACTION_COLUMNS,
    bill_row,
    consumption_row,
    to_csv,
    to_xlsx,
    transaction_row,
)
from accrual.billing.services.daily_bills import DailyBill, daily_bill
from accrual.billing.services.statements import parse_month
from accrual.billing.statement_pdf import LANGUAGES, Language, statement_pdf
from accrual.infra.http import IsoDate, error_responses
from accrual.money import format_decimal, format_minor

router = billing_router()

Format = Literal["json", "csv", "xlsx"]
MEDIA = {"csv": "text/csv; charset=utf-8",
         "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
         "pdf": "application/pdf"}


DAY_DOC = f"The billing day, from {DATE_WINDOW}"
FROM_DOC = f"First day, from {DATE_WINDOW}"
TO_DOC = f"Last day, from {DATE_WINDOW}, at most 366 days after 'from'"


def _file(content: bytes, kind: str, name: str) -> Response:
    return Response(content, media_type=MEDIA[kind],
                    headers={"Content-Disposition": f'attachment; filename="{name}.{kind}"'})


def _export(kind: str, title: str, columns: tuple[str, ...], rows: list[dict[str, object]],
            name: str) -> Response:
    content = to_csv(columns, rows) if kind == "csv" else to_xlsx(title, columns, rows)
    return _file(content, kind, name)


class GenerateIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"month": "2026-10"}]})

    # The grammar is documented here and enforced by the server (422 `invalid_month`).
    month: str = Field(description=f"YYYY-MM, from {MONTH_WINDOW}",
                       json_schema_extra={"pattern": MONTH_PATTERN})


@router.get("/accounts/{account_id}/daily-bills", tags=["billing: bills"],
            responses=error_responses(401, 403, 404, 422))
def daily_bills(account_id: AccountDep, center: CenterDep,
                day: Annotated[IsoDate, Query(alias="date", description=DAY_DOC)]) -> dict[str, Any]:
    """The day's lines per workspace, item and retention tier with quantity, unit price and
    amount. A day outside 2000-01-01 to 2099-12-31 is 422 `date_out_of_range`."""
    center.accounts.account(account_id)
    check_day("date", day)
    return daily_bill_json(daily_bill(center.engine, account_id, day, center.config.currency))


def daily_bill_json(bill: DailyBill) -> dict[str, Any]:
    """A daily bill as the API shows it: quantities and money as decimal strings."""
    return {"account_id": bill.account_id, "date": bill.day.isoformat(), "currency": bill.currency,
            "lines": [{"workspace_id": line.workspace_id, "site": line.site, "item": line.item,
                       "retention_days": line.retention_days,
                       "quantity": format_decimal(line.quantity), "unit_size": line.unit_size,
                       "unit_price": line.unit_price, "details": line.details,
                       "amount": format_minor(line.amount_minor, bill.currency)}
                      for line in bill.lines],
            "total": format_minor(bill.total_minor, bill.currency)}


@router.get("/accounts/{account_id}/monthly-bills", tags=["billing: bills"],
            responses=error_responses(401, 403, 404))
def monthly_bills(account_id: AccountDep, center: CenterDep) -> dict[str, Any]:
    """The account's monthly bills, newest first (generated on the 3rd, never changed)."""
    center.accounts.account(account_id)
    return {"bills": [bill_row(bill) for bill in center.statements.bills(account_id)]}


@router.get("/accounts/{account_id}/monthly-bills/{month}", tags=["billing: bills"],
            responses={**error_responses(401, 403, 404, 422),
                       200: {"description": "JSON, or the file `format` asks for",
                             "content": {"application/json": {}, MEDIA["csv"]: {},
                                         MEDIA["xlsx"]: {"schema": {"type": "string",
                                                                    "format": "binary"}},
                                         MEDIA["pdf"]: {"schema": {"type": "string",
                                                                   "format": "binary"}}}}})
def monthly_bill(account_id: AccountDep, center: CenterDep,
                 month: Annotated[str, Path(description=f"YYYY-MM, from {MONTH_WINDOW}",
                                            json_schema_extra={"pattern": MONTH_PATTERN})],
                 format: Annotated[Literal["json", "csv", "xlsx", "pdf"], Query()] = "json",
                 language: Annotated[Language | None, Query(
                     description="The PDF statement's language, `en` or `zh` (Simplified "
                                 "Chinese); default: the account's")] = None) -> Any:
    """One monthly bill with all its lines; `format=csv|xlsx` for a spreadsheet, `pdf` for
    the statement (in `language`, by default the account's, with workspace names and
    totals per workspace). A month not written YYYY-MM is 422 `invalid_month`, one outside
    2000-01 to 2099-12 422 `date_out_of_range`; a bill not generated is 404
    `bill_not_found`."""
    account = center.accounts.account(account_id)
    bill, lines = center.statements.bill(account_id, parse_month(month))
    shown, details = bill_row(bill), [consumption_row(line) for line in lines]
    name = f"bill-{shown['month']}"
    if format == "csv":
        return _file(to_csv(CONSUMPTION_COLUMNS, details), "csv", name)
    if format == "xlsx":
        return _file(to_xlsx(name, CONSUMPTION_COLUMNS, details), "xlsx", name)
    if format == "pdf":
        shown_in = language or (account.language if account.language in LANGUAGES else "en")
        names = center.statements.workspace_names(line.workspace_id for line in lines)
        return _file(statement_pdf(bill, lines, account, names, shown_in), "pdf",
                     f"statement-{shown['month']}")
    return {**shown, "details": details}


EXPORTS: dict[int | str, dict[str, Any]] = {200: {"description": "JSON, or the file `format` asks for",
                 "content": {"application/json": {}, MEDIA["csv"]: {},
                             MEDIA["xlsx"]: {"schema": {"type": "string", "format": "binary"}}}}}


@router.get("/accounts/{account_id}/consumption", tags=["billing: bills"],
            responses={**error_responses(401, 403, 404, 422), **EXPORTS})
def consumption(account_id: AccountDep, center: CenterDep,
                start: Annotated[IsoDate, Query(alias="from", description=FROM_DOC)],
                end: Annotated[IsoDate, Query(alias="to", description=TO_DOC)],
                format: Format = "json") -> Any:
    """Consumption details per day, workspace and item, with each adjustment as its own line;
    `format=csv|xlsx` for a spreadsheet. A day outside 2000-01-01 to 2099-12-31 is 422
    `date_out_of_range`; 'from' after 'to', or more than 366 days apart, 422 `invalid_range`."""
    center.accounts.account(account_id)
    check_range(start, end)
    rows = [consumption_row(line) for line in center.statements.consumption(account_id, start, end)]
    if format != "json":
        return _export(format, "consumption", CONSUMPTION_COLUMNS, rows, f"consumption-{start}-{end}")
    return {"account_id": account_id, "from": start.isoformat(), "to": end.isoformat(),
            "details": rows}


@router.get("/accounts/{account_id}/transactions", tags=["billing: bills"],
            responses={**error_responses(401, 403, 404, 422), **EXPORTS})
def transactions(account_id: AccountDep, center: CenterDep,
                 start: Annotated[IsoDate, Query(alias="from", description=FROM_DOC)],
                 end: Annotated[IsoDate, Query(alias="to", description=TO_DOC)],
                 format: Format = "json") -> Any:
    """Income & expenditure: every movement of the account's balances (postings);
    `format=csv|xlsx` for a spreadsheet. A day outside 2000-01-01 to 2099-12-31 is 422
    `date_out_of_range`; 'from' after 'to', or more than 366 days apart, 422 `invalid_range`."""
    center.accounts.account(account_id)
    check_range(start, end)
    rows = [transaction_row(movement)
            for movement in center.statements.transactions(account_id, start, end)]
    if format != "json":
        return _export(format, "transactions", TRANSACTION_COLUMNS, rows,
                       f"transactions-{start}-{end}")
    return {"account_id": account_id, "from": start.isoformat(), "to": end.isoformat(),
            "transactions": rows}


@router.post("/admin/accounts/{account_id}/monthly-bills", tags=["billing: operator"],
             dependencies=[Depends(require_operator)], responses=error_responses(401, 404, 422))
def generate_bill(account_id: str, body: GenerateIn, center: CenterDep) -> dict[str, Any]:
    """Generate an account's bill for a month now (the scheduler does it on the 3rd);
    a bill already generated is returned unchanged. 422 `invalid_month` (not YYYY-MM),
    `date_out_of_range` (outside 2000-01 to 2099-12), `month_not_due` (before the 3rd of the
    next month)."""
    center.accounts.account(account_id)
    return bill_row(center.statements.generate(account_id, parse_month(body.month)))
