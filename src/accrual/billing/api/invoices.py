"""Invoice management (`/billing/v1`): invoice information, mailing addresses, the invoiceable
amount, invoice requests, and the operator's decision on them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from accrual.billing.api.deps import (
    AccountDep,
    CenterDep,
    billing_router,
    require_operator,
)
from accrual.billing.domain.bounds import MONTH_PATTERN, MONTH_WINDOW
from accrual.billing.services.invoice_records import InvoiceProfile, MailingAddress
from accrual.billing.services.invoices import InvoiceRequest
from accrual.infra.http import Name, Text, Whole, error_responses
from accrual.money import format_minor

router = billing_router()

# Ids are 32-bit integers in the database; anything larger is simply not found.
RowId = Annotated[Whole, Path(ge=1, le=2**31 - 1)]

PROFILE_EXAMPLE: dict[str, Any] = {
    "invoice_type": "vat_special", "title": "Analytical Engines Ltd",
    "taxpayer_id": "91310000MA1FL0XX1X", "registered_address": "1 Century Avenue, Shanghai",
    "registered_phone": "+86 21 5000 0000", "bank_name": "Bank of Shanghai, Pudong branch",
    "bank_account": "3100 2000 1234 5678", "email": None}
ADDRESS_EXAMPLE: dict[str, Any] = {"recipient": "Ada Lovelace", "phone": "+86 138 0000 0000",
                   "address": "Room 801, 1 Century Avenue, Pudong, Shanghai",
                   "postcode": "200120", "email": "ada@example.com"}
INVOICE_EXAMPLE: dict[str, Any] = {
    "id": 7, "account_id": "<billing account id>", "status": "requested",
    "invoice_type": "vat_special", "amount": "1250.00", "currency": "CNY",
    "bills": [{"month": "2026-09", "amount": "400.00"}, {"month": "2026-10", "amount": "850.00"}],
    "profile_id": 3, "profile": dict(PROFILE_EXAMPLE),
    "address_id": 2, "address": ADDRESS_EXAMPLE, "invoice_number": None, "reject_reason": None,
    "requested_at": "2026-11-05T02:00:00+00:00", "issued_at": None, "rejected_at": None}


# -- invoice information ---------------------------------------------------------


class InvoiceProfileIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [PROFILE_EXAMPLE]})

    invoice_type: Text = Field(description="vat_ordinary | vat_special | electronic_ordinary")
    title: Name = Field(max_length=200, description="The certified enterprise name")
    taxpayer_id: Text = Field(max_length=32, description="The certified taxpayer id")
    registered_address: Text | None = Field(None, max_length=300,
                                            description="Required for vat_special")
    registered_phone: Text | None = Field(None, max_length=32,
                                          description="Required for vat_special")
    bank_name: Name | None = Field(None, max_length=200, description="Required for vat_special")
    bank_account: Text | None = Field(None, max_length=64,
                                      description="Basic account number; required for vat_special")
    email: Text | None = Field(None, max_length=320,
                               description="Where an electronic invoice is sent; required for "
                                           "electronic_ordinary")


class InvoiceProfileOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": 3, **PROFILE_EXAMPLE, "matches_certification": True,
        "created_at": "2026-11-04T02:00:00+00:00", "updated_at": "2026-11-04T02:00:00+00:00"}]})

    id: int
    invoice_type: str
    title: str
    taxpayer_id: str
    registered_address: str | None
    registered_phone: str | None
    bank_name: str | None
    bank_account: str | None
    email: str | None
    matches_certification: bool = Field(
        description="Title and taxpayer id equal the account's enterprise certification "
                    "(a request needs it)")
    created_at: str
    updated_at: str


class InvoiceProfilesOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"profiles": [{
        "id": 3, **PROFILE_EXAMPLE, "matches_certification": True,
        "created_at": "2026-11-04T02:00:00+00:00", "updated_at": "2026-11-04T02:00:00+00:00"}]}]})

    profiles: list[InvoiceProfileOut]


@router.get("/accounts/{account_id}/invoice-profiles", response_model=InvoiceProfilesOut,
            tags=["billing: invoices"], responses=error_responses(401, 403, 404))
def list_profiles(account_id: AccountDep, center: CenterDep) -> dict[str, Any]:
    """The account's invoice information records, oldest first."""
    return {"profiles": [_profile(found) for found in center.invoice_records.profiles(account_id)]}


@router.post("/accounts/{account_id}/invoice-profiles", response_model=InvoiceProfileOut,
             status_code=201, tags=["billing: invoices"], responses=error_responses(401, 403, 404, 422))
def create_profile(account_id: AccountDep, body: InvoiceProfileIn,
                   center: CenterDep) -> dict[str, object]:
    """Add invoice information: the type, the title (enterprise name) and taxpayer id, plus the
    registered address, phone, bank and account for VAT special invoices, or an email for
    electronic ones. A request later needs the title and taxpayer id of the certification."""
    return _profile(center.invoice_records.create_profile(account_id, body.model_dump()))


@router.put("/accounts/{account_id}/invoice-profiles/{profile_id}",
            response_model=InvoiceProfileOut, tags=["billing: invoices"],
            responses=error_responses(401, 403, 404, 422))
def update_profile(account_id: AccountDep, profile_id: RowId, body: InvoiceProfileIn,
                   center: CenterDep) -> dict[str, object]:
    """Replace invoice information. Requests already made keep what they were made with."""
    return _profile(center.invoice_records.update_profile(account_id, profile_id,
                                                          body.model_dump()))


@router.delete("/accounts/{account_id}/invoice-profiles/{profile_id}", status_code=204,
               tags=["billing: invoices"], responses=error_responses(401, 403, 404, 422))
def delete_profile(account_id: AccountDep, profile_id: RowId, center: CenterDep) -> None:
    """Delete invoice information. Requests already made keep what they were made with."""
    center.invoice_records.delete_profile(account_id, profile_id)


# -- mailing addresses -----------------------------------------------------------


class MailingAddressIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [ADDRESS_EXAMPLE]})

    recipient: Name = Field(max_length=100)
    phone: Text = Field(max_length=32)
    address: Text = Field(max_length=500, description="The detailed postal address")
    postcode: Text | None = Field(None, max_length=16)
    email: Text | None = Field(None, max_length=320)


class MailingAddressOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": 2, **ADDRESS_EXAMPLE, "created_at": "2026-11-04T02:00:00+00:00",
        "updated_at": "2026-11-04T02:00:00+00:00"}]})

    id: int
    recipient: str
    phone: str
    address: str
    postcode: str | None
    email: str | None
    created_at: str
    updated_at: str


class MailingAddressesOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"addresses": [{
        "id": 2, **ADDRESS_EXAMPLE, "created_at": "2026-11-04T02:00:00+00:00",
        "updated_at": "2026-11-04T02:00:00+00:00"}]}]})

    addresses: list[MailingAddressOut]


@router.get("/accounts/{account_id}/mailing-addresses", response_model=MailingAddressesOut,
            tags=["billing: invoices"], responses=error_responses(401, 403, 404))
def list_addresses(account_id: AccountDep, center: CenterDep) -> dict[str, Any]:
    """The account's mailing addresses for paper invoices, oldest first."""
    return {"addresses": [_address(found)
                          for found in center.invoice_records.addresses(account_id)]}


@router.post("/accounts/{account_id}/mailing-addresses", response_model=MailingAddressOut,
             status_code=201, tags=["billing: invoices"], responses=error_responses(401, 403, 404, 422))
def create_address(account_id: AccountDep, body: MailingAddressIn,
                   center: CenterDep) -> dict[str, object]:
    """Add a mailing address (recipient, phone, address, postcode) for paper invoices."""
    return _address(center.invoice_records.create_address(account_id, body.model_dump()))


@router.put("/accounts/{account_id}/mailing-addresses/{address_id}",
            response_model=MailingAddressOut, tags=["billing: invoices"],
            responses=error_responses(401, 403, 404, 422))
def update_address(account_id: AccountDep, address_id: RowId, body: MailingAddressIn,
                   center: CenterDep) -> dict[str, object]:
    """Replace a mailing address. Requests already made keep the address they were made with."""
    return _address(center.invoice_records.update_address(account_id, address_id,
                                                          body.model_dump()))


@router.delete("/accounts/{account_id}/mailing-addresses/{address_id}", status_code=204,
               tags=["billing: invoices"], responses=error_responses(401, 403, 404, 422))
def delete_address(account_id: AccountDep, address_id: RowId, center: CenterDep) -> None:
    """Delete a mailing address. Requests already made keep the address they were made with."""
    center.invoice_records.delete_address(account_id, address_id)


# -- the invoiceable amount --------------------------------------------------------


class InvoiceableBillOut(BaseModel):
    month: str
    bill_total: str
    consumption_paid_in_cash: str = Field(description="The bill's lines paid from cash")
    card_purchases_paid_in_cash: str = Field(
        description="Prepaid cards bought with cash in the bill's month")
    requested: str = Field(description="Taken by requests not rejected")
    invoiceable: str


class InvoiceableOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "account_id": "<billing account id>", "currency": "CNY", "invoiceable": "1.10",
        "bills": [{"month": "2026-10", "bill_total": "3.85", "consumption_paid_in_cash": "1.87",
                   "card_purchases_paid_in_cash": "0.00", "requested": "0.77",
                   "invoiceable": "1.10"},
                  {"month": "2026-09", "bill_total": "1.23", "consumption_paid_in_cash": "1.23",
                   "card_purchases_paid_in_cash": "0.00", "requested": "1.23",
                   "invoiceable": "0.00"}]}]})

    account_id: str
    currency: str
    invoiceable: str = Field(description="The sum over all monthly bills")
    bills: list[InvoiceableBillOut]


@router.get("/accounts/{account_id}/invoiceable", response_model=InvoiceableOut, tags=["billing: invoices"],
            responses=error_responses(401, 403, 404))
def invoiceable(account_id: AccountDep, center: CenterDep) -> dict[str, object]:
    """What may still be invoiced, per monthly bill: consumption paid from cash plus prepaid
    cards bought with cash in the month, less what requests not rejected took. Consumption
    paid with vouchers or prepaid cards, or left in arrears, is never invoiceable."""
    found = center.invoices.invoiceable(account_id)
    currency = found.currency
    return {"account_id": found.account_id, "currency": currency,
            "invoiceable": format_minor(found.invoiceable_minor, currency),
            "bills": [{"month": bill.month.strftime("%Y-%m"),
                       "bill_total": format_minor(bill.bill_total_minor, currency),
                       "consumption_paid_in_cash": format_minor(
                           bill.parts.consumption_paid_in_cash_minor, currency),
                       "card_purchases_paid_in_cash": format_minor(
                           bill.parts.card_purchases_paid_in_cash_minor, currency),
                       "requested": format_minor(bill.parts.requested_minor, currency),
                       "invoiceable": format_minor(bill.parts.invoiceable_minor, currency)}
                      for bill in found.bills]}


# -- requests ------------------------------------------------------------------------


class InvoiceRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [
        {"months": ["2026-09", "2026-10"], "profile_id": 3, "address_id": 2, "amount": "1250.00"},
        {"months": ["2026-10"], "profile_id": 4}]})

    months: list[Annotated[Text, Field(json_schema_extra={"pattern": MONTH_PATTERN})]] = Field(
        min_length=1, max_length=36,
        description=f"Generated monthly bills, YYYY-MM from {MONTH_WINDOW}")
    profile_id: int = Field(ge=1, le=2**31 - 1, description="The invoice information to use")
    address_id: int | None = Field(None, ge=1, le=2**31 - 1,
                                   description="Mailing address; required for paper invoices "
                                               "(VAT ordinary and special), ignored otherwise")
    amount: str | int | None = Field(
        None, description="Decimal string > 0, at most 2 decimal places; default: everything "
                          "the bills leave invoiceable. Taken from the oldest bill first")


class InvoiceBillOut(BaseModel):
    month: str
    amount: str


class InvoiceOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [INVOICE_EXAMPLE]})

    id: int
    account_id: str
    status: str = Field(description="requested | issued | rejected")
    invoice_type: str
    amount: str
    currency: str
    bills: list[InvoiceBillOut] = Field(description="What the request takes from each bill")
    profile_id: int
    profile: dict[str, Any] = Field(description="The invoice information as requested")
    address_id: int | None
    address: dict[str, Any] | None = Field(description="The mailing address as requested")
    invoice_number: str | None
    reject_reason: str | None
    requested_at: str
    issued_at: str | None
    rejected_at: str | None


class InvoicesOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"invoices": [INVOICE_EXAMPLE]}]})

    invoices: list[InvoiceOut]


@router.post("/accounts/{account_id}/invoices", response_model=InvoiceOut, status_code=201,
             tags=["billing: invoices"], responses=error_responses(401, 403, 404, 422))
def request_invoice(account_id: AccountDep, body: InvoiceRequestIn,
                    center: CenterDep) -> dict[str, object]:
    """Request an invoice against generated monthly bills. Refused with 403
    `invoice_needs_certification` or `account_in_arrears`; 422 `invoice_title_mismatch`,
    `invoice_address_required`, `amount_exceeds_invoiceable`, `nothing_to_invoice`,
    `invalid_amount`, `invalid_month` (not written YYYY-MM), `date_out_of_range` (a month
    outside 2000-01 to 2099-12); 404 `bill_not_found`, `invoice_profile_not_found`,
    `mailing_address_not_found`."""
    return _invoice(center.invoices.request(account_id, months=body.months,
                                            profile_id=body.profile_id,
                                            address_id=body.address_id, amount=body.amount))


@router.get("/accounts/{account_id}/invoices", response_model=InvoicesOut, tags=["billing: invoices"],
            responses=error_responses(401, 403, 404))
def list_invoices(account_id: AccountDep, center: CenterDep) -> dict[str, Any]:
    """Requested invoices with their status, newest first."""
    return {"invoices": [_invoice(found) for found in center.invoices.requests(account_id)]}


@router.get("/accounts/{account_id}/invoices/{invoice_id}", response_model=InvoiceOut,
            tags=["billing: invoices"], responses=error_responses(401, 403, 404, 422))
def get_invoice(account_id: AccountDep, invoice_id: RowId, center: CenterDep) -> dict[str, object]:
    """One invoice request with its status and the bills it covers."""
    return _invoice(center.invoices.get(account_id, invoice_id))


# -- the operator's decision ----------------------------------------------------------


class IssueIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "invoice_number": "31002600000012345678"}]})

    invoice_number: Text = Field(max_length=64)


class RejectIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "reason": "The bank account number does not match the tax registration"}]})

    reason: Text = Field(max_length=500)


@router.get("/admin/invoices", response_model=InvoicesOut, tags=["billing: operator"],
            dependencies=[Depends(require_operator)], responses=error_responses(401, 422))
def admin_list_invoices(center: CenterDep, status: Annotated[
        Literal["requested", "issued", "rejected"], Query()] = "requested") -> dict[str, Any]:
    """Invoice requests of every account in one status (default: waiting), oldest first,
    at most 1,000."""
    return {"invoices": [_invoice(found) for found in center.invoices.pending(status)]}


@router.post("/admin/invoices/{invoice_id}/issue", response_model=InvoiceOut,
             tags=["billing: operator"], dependencies=[Depends(require_operator)],
             responses=error_responses(401, 404, 409, 422))
def issue_invoice(invoice_id: RowId, body: IssueIn, center: CenterDep) -> dict[str, object]:
    """Mark a request issued with the invoice's number (unique). Repeating it with the same
    number changes nothing; a request already decided otherwise is 409
    `invoice_already_decided`."""
    return _invoice(center.invoices.issue(invoice_id, body.invoice_number))


@router.post("/admin/invoices/{invoice_id}/reject", response_model=InvoiceOut,
             tags=["billing: operator"], dependencies=[Depends(require_operator)],
             responses=error_responses(401, 404, 409, 422))
def reject_invoice(invoice_id: RowId, body: RejectIn, center: CenterDep) -> dict[str, object]:
    """Reject a request with a reason: what it took from its bills becomes invoiceable again.
    A request already issued is 409 `invoice_already_decided`."""
    return _invoice(center.invoices.reject(invoice_id, body.reason))


def _profile(profile: InvoiceProfile) -> dict[str, object]:
    return {"id": profile.id, "invoice_type": profile.invoice_type, "title": profile.title,
            "taxpayer_id": profile.taxpayer_id, "registered_address": profile.registered_address,
            "registered_phone": profile.registered_phone, "bank_name": profile.bank_name,
            "bank_account": profile.bank_account, "email": profile.email,
            "matches_certification": profile.matches_certification,
            "created_at": profile.created_at.isoformat(),
            "updated_at": profile.updated_at.isoformat()}


def _address(address: MailingAddress) -> dict[str, object]:
    return {"id": address.id, "recipient": address.recipient, "phone": address.phone,
            "address": address.address, "postcode": address.postcode, "email": address.email,
            "created_at": address.created_at.isoformat(),
            "updated_at": address.updated_at.isoformat()}


def _invoice(request: InvoiceRequest) -> dict[str, object]:
    currency = request.currency

    def stamp(value: datetime | None) -> str | None:
        return None if value is None else value.isoformat()

    return {"id": request.id, "account_id": request.account_id, "status": request.status.value,
            "invoice_type": request.invoice_type,
            "amount": format_minor(request.amount_minor, currency), "currency": currency,
            "bills": [{"month": share.month.strftime("%Y-%m"),
                       "amount": format_minor(share.amount_minor, currency)}
                      for share in request.bills],
            "profile_id": request.profile_id, "profile": dict(request.profile),
            "address_id": request.address_id,
            "address": None if request.address is None else dict(request.address),
            "invoice_number": request.invoice_number, "reject_reason": request.reject_reason,
            "requested_at": stamp(request.requested_at), "issued_at": stamp(request.issued_at),
            "rejected_at": stamp(request.rejected_at)}
