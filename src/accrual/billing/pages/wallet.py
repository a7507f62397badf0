"""The account overview and the wallet: recharge through the payment gateway, prepaid
cards (buy), vouchers (activate)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from accrual.billing.pages.access import AccountDep, CenterDep, PagesDep
from accrual.billing.wiring import BillingCenter
from accrual.contract.errors import Invalid, ServiceError
from accrual.contract.messages import WalletOverview
from accrual.infra.http import status_for
from accrual.money import InvalidDecimal, format_minor
from accrual.web import paging
from accrual.web.rendering import FieldError, PageRoute, field_error, redirect
from accrual.web.security import check_csrf

router = APIRouter(prefix="/billing", route_class=PageRoute, include_in_schema=False)
CSRF = [Depends(check_csrf)]
# The services' refusals, beside the field they are about.
AMOUNT_FIELDS = {"invalid_amount": "amount", "balance_limit_exceeded": "amount",
                 "invalid_face_value": "face_value", "insufficient_balance": "face_value",
                 "invalid_code": "code", "unknown_code": "code", "code_already_used": "code",
                 "code_expired": "code", "currency_mismatch": "code"}


def _wallet(center: BillingCenter, account_id: str) -> WalletOverview:
    return center.console_visits.wallet_overview(account_id)


@router.get("/overview")
def overview(request: Request, center: CenterDep, pages: PagesDep,
             account_id: AccountDep) -> Response:
    return pages.render(request, "billing/overview.html", {
        "account": center.accounts.account(account_id), "wallet": _wallet(center, account_id),
        "online": center.payments.gateway is not None})


def _recharge_page(request: Request, center: BillingCenter, pages: PagesDep, account_id: str,
                   error: FieldError | None = None, amount: str = "",
                   status: int = 200) -> Response:
    return pages.render(request, "billing/recharge.html", {
        "account": center.accounts.account(account_id), "wallet": _wallet(center, account_id),
        "online": center.payments.gateway is not None, "error": error, "amount": amount,
        # One key per rendered form: sending it twice opens one order.
        "order_key": str(uuid.uuid4())}, status=status)


@router.get("/recharge")
def recharge_form(request: Request, center: CenterDep, pages: PagesDep,
                  account_id: AccountDep) -> Response:
    return _recharge_page(request, center, pages, account_id)


@router.post("/recharge", dependencies=CSRF)
def recharge(request: Request, center: CenterDep, pages: PagesDep, account_id: AccountDep,
             amount: Annotated[str, Form(max_length=64)] = "",
             order_key: Annotated[str, Form(max_length=255)] = "") -> Response:
    """Open an order with the gateway and send the browser to its pay page; the gateway's
    signed notify credits the cash, and the browser comes back to ``/billing/recharge/return``."""
    try:
        order, _created = center.payments.create_order(account_id, amount, order_key,
                                                        "/billing/recharge/return")
    except ServiceError as error:
        return _recharge_page(request, center, pages, account_id,
                              field_error(error, AMOUNT_FIELDS), amount, status_for(error))
    return redirect(order.redirect_url or "/billing/recharge/return")


@router.get("/recharge/return")
def recharge_return(request: Request, center: CenterDep, pages: PagesDep,
                    account_id: AccountDep) -> Response:
    """Where the gateway sends the payer back: the order as the center knows it (credited
    once the gateway's notify arrived) and the balance."""
    order_id = request.query_params.get("order_id", "")
    order = center.payments.order(account_id, order_id) if 0 < len(order_id) <= 64 else None
    return pages.render(request, "billing/recharge_return.html", {
        "account": center.accounts.account(account_id), "wallet": _wallet(center, account_id),
        "order": order, "amount": format_minor(order.amount_minor, order.currency) if order else None})


def _cards_page(request: Request, center: BillingCenter, pages: PagesDep, account_id: str,
                error: FieldError | None = None, face_value: str = "", status: int = 200) -> Response:
    table = paging.table(center.instruments.cards(account_id), request.query_params, {
        "number": lambda c: c.number, "face": lambda c: c.face_minor,
        "balance": lambda c: c.balance_minor, "status": lambda c: c.status.value,
        "purchased": lambda c: c.purchased_at, "expires": lambda c: c.expires_at},
        default_sort="purchased", default_descending=True)
    return pages.render(request, "billing/prepaid_cards.html", {
        "account": center.accounts.account(account_id), "wallet": _wallet(center, account_id),
        "table": table, "error": error, "face_value": face_value, "order_key": str(uuid.uuid4()),
        "done": request.query_params.get("done")}, status=status)


@router.get("/prepaid-cards")
def prepaid_cards(request: Request, center: CenterDep, pages: PagesDep,
                  account_id: AccountDep) -> Response:
    return _cards_page(request, center, pages, account_id)


@router.post("/prepaid-cards", dependencies=CSRF)
def buy_card(request: Request, center: CenterDep, pages: PagesDep, account_id: AccountDep,
             face_value: Annotated[str, Form(max_length=64)] = "",
             order_key: Annotated[str, Form(max_length=255)] = "") -> Response:
    """Buy a prepaid card from the cash balance (a multiple of 100, no refunds)."""
    try:
        try:
            center.instruments.buy_card(account_id, face_value, order_key)
        except InvalidDecimal as bad:  # the API answers this refusal the same way
            raise Invalid("invalid_face_value", f"face value {bad.reason}") from None
    except ServiceError as error:
        return _cards_page(request, center, pages, account_id, field_error(error, AMOUNT_FIELDS),
                           face_value, status_for(error))
    return redirect("/billing/prepaid-cards?done=bought")


def _vouchers_page(request: Request, center: BillingCenter, pages: PagesDep, account_id: str,
                   error: FieldError | None = None, code: str = "", status: int = 200) -> Response:
    table = paging.table(center.instruments.vouchers(account_id), request.query_params, {
        "number": lambda v: v.number, "face": lambda v: v.face_minor,
        "balance": lambda v: v.balance_minor, "status": lambda v: v.status.value,
        "activated": lambda v: v.activated_at, "expires": lambda v: v.expires_at},
        default_sort="activated", default_descending=True)
    return pages.render(request, "billing/vouchers.html", {
        "account": center.accounts.account(account_id), "wallet": _wallet(center, account_id),
        "table": table, "error": error, "code": code, "done": request.query_params.get("done")},
        status=status)


@router.get("/vouchers")
def vouchers(request: Request, center: CenterDep, pages: PagesDep,
             account_id: AccountDep) -> Response:
    return _vouchers_page(request, center, pages, account_id)


@router.post("/vouchers", dependencies=CSRF)
def activate_voucher(request: Request, center: CenterDep, pages: PagesDep, account_id: AccountDep,
                     code: Annotated[str, Form(max_length=128)] = "") -> Response:
    try:
        center.instruments.activate(account_id, code)
    except ServiceError as error:
        return _vouchers_page(request, center, pages, account_id,
                              field_error(error, AMOUNT_FIELDS), code, status_for(error))
    return redirect("/billing/vouchers?done=activated")
