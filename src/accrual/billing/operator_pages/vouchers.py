"""Voucher codes: the operator makes a batch of single-use activation codes.

The codes are shown once, on the answer to the form, and never again (only their hashes
are kept), so this form answers with the page itself rather than a redirect.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from accrual.billing.domain.instruments import MAX_VALIDITY_DAYS
from accrual.billing.operator_pages.invoices import CenterDep, PagesDep
from accrual.contract.errors import Invalid, ServiceError
from accrual.infra.http import status_for
from accrual.money import InvalidDecimal, format_minor
from accrual.web.operator import OperatorDep
from accrual.web.rendering import PageRoute, field_error
from accrual.web.security import check_csrf

router = APIRouter(prefix="/operator/billing", route_class=PageRoute, include_in_schema=False,
                   dependencies=[OperatorDep])
FIELDS = {"invalid_voucher_kind": "kind", "invalid_amount": "amount", "invalid_count": "count",
          "invalid_validity": "validity_days", "invalid_redeem_within": "redeem_within_days"}
BLANK = {"kind": "voucher_standard", "amount": "", "count": "10", "validity_days": "90",
         "redeem_within_days": "90", "note": ""}


def _whole(value: str, code: str, what: str) -> int:
    text = value.strip()
    if not text.isdigit() or len(text) > 6:
        raise Invalid(code, f"{what} must be a whole number")
    return int(text)


def _redeem_within(value: str) -> int:
    # The service says "validity" for both windows; name the activation window's own field.
    days = _whole(value, "invalid_redeem_within", "activation window")
    if not 1 <= days <= MAX_VALIDITY_DAYS:
        raise Invalid("invalid_redeem_within",
                      f"the activation window is 1 to {MAX_VALIDITY_DAYS} days")
    return days


@router.get("/vouchers")
def vouchers(request: Request, center: CenterDep, pages: PagesDep) -> Response:
    return pages.render(request, "operator/billing/vouchers.html",
                        {"form": BLANK, "error": None, "made": None,
                         "batches": center.voucher_batches.newest()})


@router.post("/vouchers", dependencies=[Depends(check_csrf)])
def make_codes(request: Request, center: CenterDep, pages: PagesDep,
               kind: Annotated[str, Form(max_length=40)] = "",
               amount: Annotated[str, Form(max_length=40)] = "",
               count: Annotated[str, Form(max_length=40)] = "",
               validity_days: Annotated[str, Form(max_length=40)] = "",
               redeem_within_days: Annotated[str, Form(max_length=40)] = "",
               note: Annotated[str, Form(max_length=200)] = "") -> Response:
    form = {"kind": kind, "amount": amount, "count": count, "validity_days": validity_days,
            "redeem_within_days": redeem_within_days, "note": note}
    try:
        try:
            made = center.instruments.create_codes(
                kind, amount.strip(), _whole(count, "invalid_count", "count"),
                _whole(validity_days, "invalid_validity", "validity"),
                _redeem_within(redeem_within_days),
                note.strip() or None)
        except InvalidDecimal as error:
            raise Invalid("invalid_amount", f"amount {error.reason}") from None
    except ServiceError as error:
        return pages.render(request, "operator/billing/vouchers.html",
                            {"form": form, "error": field_error(error, FIELDS), "made": None,
                             "batches": center.voucher_batches.newest()},
                            status=status_for(error))
    return pages.render(request, "operator/billing/vouchers.html", {
        "form": BLANK, "error": None, "batches": center.voucher_batches.newest(),
        "made": {"codes": made.codes, "kind": made.kind, "redeem_by": made.redeem_by,
                 "amount": format_minor(made.face_minor, made.currency),
                 "currency": made.currency, "validity_days": made.validity_days}})
