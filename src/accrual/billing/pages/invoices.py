"""Invoice management: invoice information, mailing addresses, requesting an invoice against
monthly bills, and the requests made (over the same services as the API)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Request
from starlette.responses import Response

from accrual.billing.pages.access import AccountDep, CenterDep, PagesDep
from accrual.billing.services.invoice_records import INVOICE_TYPES, PAPER_TYPES
from accrual.contract.errors import NotFound, ServiceError
from accrual.infra.http import status_for
from accrual.money import format_minor
from accrual.web.rendering import PageRoute, field_error, redirect
from accrual.web.security import check_csrf

router = APIRouter(prefix="/billing/invoices", route_class=PageRoute, include_in_schema=False)
CSRF = [Depends(check_csrf)]
HOME = "/billing/invoices"
# Ids are 32-bit integers in the database; anything larger is simply not found.
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Short = Annotated[str, Form(max_length=600)]

PROFILE_FIELDS = ("invoice_type", "title", "taxpayer_id", "registered_address",
                  "registered_phone", "bank_name", "bank_account", "email")
ADDRESS_FIELDS = ("recipient", "phone", "address", "postcode", "email")
# The service's refusal codes → the form field they are about.
PROFILE_ERRORS = {"invalid_invoice_type": "invoice_type", "invalid_invoice_title": "title",
                  "invalid_taxpayer_id": "taxpayer_id",
                  "invalid_registered_address": "registered_address",
                  "invalid_bank_name": "bank_name", "invalid_registered_phone": "registered_phone",
                  "invalid_bank_account": "bank_account", "invalid_email": "email"}
ADDRESS_ERRORS = {"invalid_recipient": "recipient", "invalid_phone": "phone",
                  "invalid_address": "address", "invalid_postcode": "postcode",
                  "invalid_email": "email"}
REQUEST_ERRORS = {"no_bills": "months", "too_many_bills": "months", "bill_not_found": "months",
                  "nothing_to_invoice": "months", "invoice_title_mismatch": "profile_id",
                  "invoice_profile_not_found": "profile_id",
                  "invoice_address_required": "address_id",
                  "mailing_address_not_found": "address_id", "invalid_amount": "amount",
                  "amount_exceeds_invoiceable": "amount"}
DONE = ("profile_saved", "profile_deleted", "address_saved", "address_deleted", "requested")


async def _form(request: Request, names: tuple[str, ...]) -> dict[str, str]:
    form = await request.form()
    values = {}
    for name in names:
        value = form.get(name)
        values[name] = value[:600] if isinstance(value, str) else ""
    return values


# -- the overview ----------------------------------------------------------------------


@router.get("")
def overview(request: Request, account_id: AccountDep, center: CenterDep,
             pages: PagesDep) -> Response:
    account = center.accounts.account(account_id)
    found = center.invoices.invoiceable(account_id)
    done = request.query_params.get("done")
    requests = center.invoices.requests(account_id)
    return pages.render(request, "billing/invoices.html", {
        "account": account, "currency": found.currency,
        "invoiceable": format_minor(found.invoiceable_minor, found.currency),
        "profiles": center.invoice_records.profiles(account_id),
        "addresses": center.invoice_records.addresses(account_id),
        "requests": requests,
        "amounts": {r.id: format_minor(r.amount_minor, r.currency) for r in requests},
        "done": done if done in DONE else None})


@router.get("/requests/{invoice_id}")
def request_detail(request: Request, account_id: AccountDep, center: CenterDep,
                   pages: PagesDep, invoice_id: RowId) -> Response:
    account = center.accounts.account(account_id)
    invoice = center.invoices.get(account_id, invoice_id)
    return pages.render(request, "billing/invoice.html", {
        "account": account, "invoice": invoice,
        "amount": format_minor(invoice.amount_minor, invoice.currency),
        "shares": [(share.month.strftime("%Y-%m"), format_minor(share.amount_minor, invoice.currency))
                   for share in invoice.bills]})


# -- invoice information -------------------------------------------------------------------


def _profile_form(request: Request, pages: PagesDep, account: Any, values: dict[str, str],
                  action: str, error: Any = None, status: int = 200) -> Response:
    return pages.render(request, "billing/invoice_profile.html",
                        {"account": account, "values": values, "action": action,
                         "types": INVOICE_TYPES, "error": error}, status=status)


@router.get("/profiles/new")
def new_profile(request: Request, account_id: AccountDep, center: CenterDep,
                pages: PagesDep) -> Response:
    account = center.accounts.account(account_id)
    values = dict.fromkeys(PROFILE_FIELDS, "")
    if account.certification is not None:  # the title must be the certified name anyway
        values["title"] = account.certification.enterprise_name
        values["taxpayer_id"] = account.certification.taxpayer_id
    values["invoice_type"] = INVOICE_TYPES[0]
    return _profile_form(request, pages, account, values, f"{HOME}/profiles")


@router.post("/profiles", dependencies=CSRF)
async def create_profile(request: Request, account_id: AccountDep, center: CenterDep,
                         pages: PagesDep) -> Response:
    account = center.accounts.account(account_id)
    values = await _form(request, PROFILE_FIELDS)
    try:
        center.invoice_records.create_profile(account_id, dict(values))
    except ServiceError as error:
        return _profile_form(request, pages, account, values, f"{HOME}/profiles",
                             field_error(error, PROFILE_ERRORS), status_for(error))
    return redirect(f"{HOME}?done=profile_saved")


def _own_profile(center: CenterDep, account_id: str, profile_id: int) -> Any:
    for profile in center.invoice_records.profiles(account_id):
        if profile.id == profile_id:
            return profile
    raise NotFound("invoice_profile_not_found", f"no invoice information {profile_id}")


@router.get("/profiles/{profile_id}")
def edit_profile(request: Request, account_id: AccountDep, center: CenterDep, pages: PagesDep,
                 profile_id: RowId) -> Response:
    account = center.accounts.account(account_id)
    profile = _own_profile(center, account_id, profile_id)
    values = {name: getattr(profile, name) or "" for name in PROFILE_FIELDS}
    return _profile_form(request, pages, account, values, f"{HOME}/profiles/{profile_id}")


@router.post("/profiles/{profile_id}", dependencies=CSRF)
async def update_profile(request: Request, account_id: AccountDep, center: CenterDep,
                         pages: PagesDep, profile_id: RowId) -> Response:
    account = center.accounts.account(account_id)
    _own_profile(center, account_id, profile_id)
    values = await _form(request, PROFILE_FIELDS)
    try:
        center.invoice_records.update_profile(account_id, profile_id, dict(values))
    except ServiceError as error:
        return _profile_form(request, pages, account, values, f"{HOME}/profiles/{profile_id}",
                             field_error(error, PROFILE_ERRORS), status_for(error))
    return redirect(f"{HOME}?done=profile_saved")


@router.post("/profiles/{profile_id}/delete", dependencies=CSRF)
def delete_profile(account_id: AccountDep, center: CenterDep, profile_id: RowId) -> Response:
    center.invoice_records.delete_profile(account_id, profile_id)
    return redirect(f"{HOME}?done=profile_deleted")


# -- mailing addresses ---------------------------------------------------------------------


def _address_form(request: Request, pages: PagesDep, account: Any, values: dict[str, str],
                  action: str, error: Any = None, status: int = 200) -> Response:
    return pages.render(request, "billing/invoice_address.html",
                        {"account": account, "values": values, "action": action,
                         "error": error}, status=status)


def _own_address(center: CenterDep, account_id: str, address_id: int) -> Any:
    for address in center.invoice_records.addresses(account_id):
        if address.id == address_id:
            return address
    raise NotFound("mailing_address_not_found", f"no mailing address {address_id}")


@router.get("/addresses/new")
def new_address(request: Request, account_id: AccountDep, center: CenterDep,
                pages: PagesDep) -> Response:
    account = center.accounts.account(account_id)
    return _address_form(request, pages, account, dict.fromkeys(ADDRESS_FIELDS, ""),
                         f"{HOME}/addresses")


@router.post("/addresses", dependencies=CSRF)
async def create_address(request: Request, account_id: AccountDep, center: CenterDep,
                         pages: PagesDep) -> Response:
    account = center.accounts.account(account_id)
    values = await _form(request, ADDRESS_FIELDS)
    try:
        center.invoice_records.create_address(account_id, dict(values))
    except ServiceError as error:
        return _address_form(request, pages, account, values, f"{HOME}/addresses",
                             field_error(error, ADDRESS_ERRORS), status_for(error))
    return redirect(f"{HOME}?done=address_saved")


@router.get("/addresses/{address_id}")
def edit_address(request: Request, account_id: AccountDep, center: CenterDep, pages: PagesDep,
                 address_id: RowId) -> Response:
    account = center.accounts.account(account_id)
    address = _own_address(center, account_id, address_id)
    values = {name: getattr(address, name) or "" for name in ADDRESS_FIELDS}
    return _address_form(request, pages, account, values, f"{HOME}/addresses/{address_id}")


@router.post("/addresses/{address_id}", dependencies=CSRF)
async def update_address(request: Request, account_id: AccountDep, center: CenterDep,
                         pages: PagesDep, address_id: RowId) -> Response:
    account = center.accounts.account(account_id)
    _own_address(center, account_id, address_id)
    values = await _form(request, ADDRESS_FIELDS)
    try:
        center.invoice_records.update_address(account_id, address_id, dict(values))
    except ServiceError as error:
        return _address_form(request, pages, account, values, f"{HOME}/addresses/{address_id}",
                             field_error(error, ADDRESS_ERRORS), status_for(error))
    return redirect(f"{HOME}?done=address_saved")


@router.post("/addresses/{address_id}/delete", dependencies=CSRF)
def delete_address(account_id: AccountDep, center: CenterDep, address_id: RowId) -> Response:
    center.invoice_records.delete_address(account_id, address_id)
    return redirect(f"{HOME}?done=address_deleted")


# -- requesting an invoice -----------------------------------------------------------------


def _request_page(request: Request, center: CenterDep, pages: PagesDep, account_id: str,
                  months: list[str], chosen: dict[str, str], error: Any = None,
                  status: int = 200) -> Response:
    """Step 1 (no months picked): the bills with something to invoice; step 2: the
    invoice information and the address."""
    account = center.accounts.account(account_id)
    found = center.invoices.invoiceable(account_id)
    bills = [{"month": bill.month.strftime("%Y-%m"),
              "total": format_minor(bill.bill_total_minor, found.currency),
              "invoiceable": format_minor(bill.parts.invoiceable_minor, found.currency)}
             for bill in found.bills if bill.parts.invoiceable_minor > 0]
    known = {bill["month"] for bill in bills}
    picked = [month for month in months if month in known]
    return pages.render(request, "billing/invoice_request.html", {
        "account": account, "currency": found.currency, "bills": bills, "picked": picked,
        "profiles": center.invoice_records.profiles(account_id),
        "addresses": center.invoice_records.addresses(account_id),
        "paper_types": PAPER_TYPES, "chosen": chosen, "error": error,
        "certified": account.certification is not None}, status=status)


@router.get("/request")
def request_form(request: Request, account_id: AccountDep, center: CenterDep,
                 pages: PagesDep) -> Response:
    months = [m[:7] for m in request.query_params.getlist("months")[:36]]
    return _request_page(request, center, pages, account_id, months, {})


@router.post("/request", dependencies=CSRF)
async def request_invoice(request: Request, account_id: AccountDep, center: CenterDep,
                          pages: PagesDep) -> Response:
    form = await request.form()
    months = [m[:7] for m in form.getlist("months")[:36] if isinstance(m, str)]
    chosen = {name: value[:40] if isinstance(value := form.get(name), str) else ""
              for name in ("profile_id", "address_id", "amount")}
    try:
        center.invoices.request(account_id, months=months,
                                profile_id=_row_id(chosen["profile_id"], "profile_id"),
                                address_id=_row_id(chosen["address_id"], None),
                                amount=chosen["amount"].strip() or None)
    except ServiceError as error:
        return _request_page(request, center, pages, account_id, months, chosen,
                             field_error(error, REQUEST_ERRORS), status_for(error))
    return redirect(f"{HOME}?done=requested")


def _row_id(text: str, required: str | None) -> Any:
    """A picked record's id; none picked is the service's own refusal for that record."""
    if text.isascii() and text.isdigit() and 0 < len(text) <= 10 and int(text) < 2**31:
        return int(text)
    if required is None:
        return None
    raise NotFound("invoice_profile_not_found", "pick the invoice information to use")
