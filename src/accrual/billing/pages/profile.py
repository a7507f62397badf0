"""The account's profile: username and email as registered, contact name and phone to change."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from accrual.billing.pages.access import AccountDep, CenterDep, PagesDep
from accrual.contract.errors import ServiceError
from accrual.infra.http import status_for
from accrual.web.rendering import PageRoute, field_error, redirect
from accrual.web.security import check_csrf

router = APIRouter(prefix="/billing", route_class=PageRoute, include_in_schema=False)
CSRF = [Depends(check_csrf)]
FIELDS = {"invalid_contact_name": "contact_name", "invalid_phone": "phone"}


@router.get("/profile")
def profile(request: Request, account_id: AccountDep, center: CenterDep,
            pages: PagesDep) -> Response:
    account = center.accounts.account(account_id)
    return pages.render(request, "billing/profile.html",
                        {"account": account, "contact_name": account.contact_name or "",
                         "phone": account.phone or "", "error": None,
                         "done": request.query_params.get("done")})


@router.post("/profile", dependencies=CSRF)
def save_profile(request: Request, account_id: AccountDep, center: CenterDep, pages: PagesDep,
                 contact_name: Annotated[str, Form(max_length=200)],
                 phone: Annotated[str, Form(max_length=64)]) -> Response:
    try:
        center.profiles.update(account_id, contact_name=contact_name, phone=phone)
    except ServiceError as error:
        return pages.render(request, "billing/profile.html",
                            {"account": center.accounts.account(account_id),
                             "contact_name": contact_name, "phone": phone,
                             "error": field_error(error, FIELDS), "done": None},
                            status=status_for(error))
    return redirect("/billing/profile?done=saved")


CERTIFICATION_FIELDS = {"invalid_enterprise_name": "enterprise_name",
                        "invalid_taxpayer_id": "taxpayer_id"}


@router.get("/certification")
def certification(request: Request, account_id: AccountDep, center: CenterDep,
                  pages: PagesDep) -> Response:
    """Real-name (enterprise) authentication: the business-licence name and taxpayer id
    that invoices need; fixed once given."""
    return pages.render(request, "billing/certification.html", {
        "account": center.accounts.account(account_id), "enterprise_name": "",
        "taxpayer_id": "", "error": None, "done": request.query_params.get("done")})


@router.post("/certification", dependencies=CSRF)
def certify(request: Request, account_id: AccountDep, center: CenterDep, pages: PagesDep,
            enterprise_name: Annotated[str, Form(max_length=400)] = "",
            taxpayer_id: Annotated[str, Form(max_length=64)] = "") -> Response:
    try:
        center.certifications.certify(account_id, enterprise_name, taxpayer_id)
    except ServiceError as error:
        return pages.render(request, "billing/certification.html", {
            "account": center.accounts.account(account_id), "enterprise_name": enterprise_name,
            "taxpayer_id": taxpayer_id, "error": field_error(error, CERTIFICATION_FIELDS),
            "done": None}, status=status_for(error))
    return redirect("/billing/certification?done=certified")
