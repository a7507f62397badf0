"""Calls from console sites (service token): inbox, registrations, binding codes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path
from pydantic import BaseModel

from accrual.billing.api.deps import CenterDep, billing_router, require_operator
from accrual.contract.messages import (
    BindingChanged,
    BindingCodeConfirmation,
    BindingCodeRequest,
    BindingCodeSent,
    Envelope,
    RegistrationConfirmation,
    RegistrationRequest,
    RegistrationResult,
)
from accrual.infra.http import error_responses

router = billing_router()

# A registration key in a path, bounded as the body's (NUL is refused for every path
# parameter by the router's plain_path_params).
KeyPath = Annotated[str, Path(min_length=1, max_length=128)]


class InboxIn(BaseModel):
    messages: list[Envelope]


@router.post("/internal/inbox", tags=["internal"], dependencies=[Depends(require_operator)],
             responses=error_responses(401, 409, 422))
def inbox(body: InboxIn, center: CenterDep) -> dict[str, list[str]]:
    """Messages from console sites (service token); each applied at most once. A billing
    detail that cannot be settled fails loudly: 409 `idempotency_conflict` (its id came
    before with another amount), 422 `balance_limit_exceeded` (it would take the account's
    arrears past 1000000000000000.00) or `amount_limit_exceeded` (one detail past that)."""
    return {"applied": center.inbox.deliver(body.messages)}


@router.post("/internal/registrations", response_model=RegistrationResult, tags=["internal"],
             dependencies=[Depends(require_operator)], responses=error_responses(401, 404, 409))
def internal_register(body: RegistrationRequest, center: CenterDep) -> RegistrationResult:
    """Create (or find again, by registration key) the pending account of a registration.
    With `activation_id`, reserve that marketplace activation for it (its confirmation
    binds the first workspace through it): 404 `activation_not_found`, 409
    `activation_expired`, `activation_used`, `cloud_account_taken`, `subscription_ended`,
    and nothing is created."""
    return center.accounts.register(body)


@router.post("/internal/registrations/{key}/confirm", tags=["internal"],
             dependencies=[Depends(require_operator)], responses=error_responses(401, 404, 422))
def internal_confirm(key: KeyPath, body: RegistrationConfirmation, center: CenterDep) -> dict[str, str]:
    """Activate a registration's account and bind its first workspace; repeatable."""
    return {"billing_account_id": center.accounts.confirm(key, body)}


@router.delete("/internal/registrations/{key}", status_code=204, tags=["internal"],
               dependencies=[Depends(require_operator)], responses=error_responses(401, 422))
def internal_cancel(key: KeyPath, center: CenterDep) -> None:
    """Drop a registration's account while it is still pending (the console failed)."""
    center.accounts.cancel(key)


@router.post("/internal/binding-codes", response_model=BindingCodeSent, tags=["internal"],
             dependencies=[Depends(require_operator)], responses=error_responses(401, 404, 422, 503))
def internal_binding_code(body: BindingCodeRequest, center: CenterDep) -> BindingCodeSent:
    """Mail a code to the account's owner for binding a workspace to it (upgrade)."""
    return center.binding_codes.request_code(body)


@router.post("/internal/binding-codes/confirm", response_model=BindingChanged, tags=["internal"],
             dependencies=[Depends(require_operator)], responses=error_responses(401, 403, 404, 422))
def internal_binding_confirm(body: BindingCodeConfirmation, center: CenterDep) -> BindingChanged:
    """Check the code and bind the workspace (at once: it was free until now)."""
    return center.binding_codes.confirm_code(body)
