"""What every billing endpoint needs: the center, the operator check, account access."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request

from accrual.billing.domain.bounds import IDEMPOTENCY_KEY_PATTERN
from accrual.billing.wiring import BillingCenter
from accrual.contract.errors import Forbidden, Unauthorized
from accrual.infra.http import StrictJSONRoute, bearer_token, plain_path_params, same_secret


def billing_router() -> APIRouter:
    return APIRouter(prefix="/billing/v1", dependencies=[Depends(plain_path_params)],
                     route_class=StrictJSONRoute)


def center_of(request: Request) -> BillingCenter:
    center: BillingCenter = request.app.state.billing  # set by the app factory
    return center


CenterDep = Annotated[BillingCenter, Depends(center_of)]


def require_operator(request: Request) -> None:
    if not same_secret(bearer_token(request), request.app.state.admin_token):
        raise Unauthorized("unauthorized", "this needs the operator token")


def require_account_access(account_id: str, request: Request, center: CenterDep) -> str:
    """The account's own session, or the operator. Another account's session gets 403."""
    token = bearer_token(request)
    if same_secret(token, request.app.state.admin_token):
        return account_id
    session_account = center.accounts.account_for_session(token)
    if session_account is None:
        raise Unauthorized("unauthorized", "unknown or expired session; log in again")
    if session_account != account_id:
        raise Forbidden("forbidden", "this session belongs to another billing account")
    return account_id


AccountDep = Annotated[str, Depends(require_account_access)]


def session_account(request: Request, center: CenterDep) -> str:
    """The account of the bearer token's session (not the operator's token)."""
    account_id = center.accounts.account_for_session(bearer_token(request))
    if account_id is None:
        raise Unauthorized("unauthorized", "unknown or expired session; log in again")
    return account_id


SessionDep = Annotated[str, Depends(session_account)]


def idempotency_key_header(what: str) -> object:
    """The ``Idempotency-Key`` header, documented with its bounds; the services enforce
    exactly those (``bounds.check_idempotency_key``), answering the stable 422
    ``invalid_idempotency_key`` rather than the framework's ``invalid_request``."""
    return Header(alias="Idempotency-Key",
                  json_schema_extra={"minLength": 1, "maxLength": 255,
                                     "pattern": IDEMPOTENCY_KEY_PATTERN},
                  description="Client-generated, 1 to 255 printable ASCII characters, no spaces "
                              f"(a V4 UUID is good); a retry with the same key returns {what}",
                  examples=["3f0c9a52-6a55-4c38-9d0e-1f7f3c1e2b4d"])
