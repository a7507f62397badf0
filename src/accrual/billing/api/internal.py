"""Calls from console sites (service token): inbox, registrations, binding codes, new
workspaces through a marketplace activation."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path
from pydantic import BaseModel, ConfigDict

from accrual.billing.api.deps import CenterDep, billing_router, require_operator
from accrual.contract.messages import (
    ActivatedWorkspace,
    ActivationCheck,
    ActivationGrant,
    BindingChanged,
    BindingCodeConfirmation,
    BindingCodeRequest,
    BindingCodeSent,
    Envelope,
    RegistrationConfirmation,
    RegistrationRequest,
    RegistrationResult,
    SignInTicket,
    SignInTicketRequest,
    WalletOverview,
)
from accrual.infra.http import error_responses

router = billing_router()

# A registration key in a path, bounded as the body's (NUL is refused for every path
# parameter by the router's plain_path_params).
KeyPath = Annotated[str, Path(min_length=1, max_length=128)]
AccountPath = Annotated[str, Path(min_length=1, max_length=32)]


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


ACTIVATION_ID = "act_9b1f0c2d3e4a5b6c7d8e9f0a1b2c3d4e"


class ActivationCheckIn(ActivationCheck):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "activation_id": ACTIVATION_ID, "email": "ada@example.com"}]})


class ActivationGrantOut(ActivationGrant):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "billing_account_id": "<billing account id>", "settlement_method": "aws",
        "cloud_account_id": "ca_5f0c2b7d9e1a3c4b5d6e7f80",
        "expires_at": "2026-11-26T03:00:00+00:00"}]})


class ActivatedWorkspaceIn(ActivatedWorkspace):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "activation_id": ACTIVATION_ID, "workspace_id": "<workspace id>",
        "site": "cn1", "workspace_name": "Staging", "owner_email": "ada@example.com",
        "language": "en", "day": "2026-11-26",
        "created_at": "2026-11-26T02:10:00+00:00"}]})


@router.post("/internal/activated-workspaces/check", response_model=ActivationGrantOut,
             tags=["internal"], dependencies=[Depends(require_operator)],
             responses=error_responses(401, 403, 404, 409, 422))
def internal_check_activation(body: ActivationCheckIn, center: CenterDep) -> ActivationGrant:
    """Whether a console may make a new workspace through this marketplace activation,
    and how it will be bound (the billing account that claimed it, the vendor, the cloud
    account); stores nothing. A claimed activation makes any number of workspaces until
    it expires, for the console account with the claiming billing account's e-mail (403
    `activation_not_yours` otherwise). Refused: 404 `activation_not_found`; 409
    `activation_expired`,
    `activation_not_claimed` (no billing account claimed it: sign in to one and claim
    it), `activation_used` (a registration holds it), `subscription_ended`."""
    return center.activated_workspaces.check(body)


@router.post("/internal/activated-workspaces", response_model=BindingChanged,
             tags=["internal"], dependencies=[Depends(require_operator)],
             responses=error_responses(401, 404, 409, 422))
def internal_bind_activated(body: ActivatedWorkspaceIn, center: CenterDep) -> BindingChanged:
    """Bind a workspace its console made after the check, from its first day: to the
    billing account that claimed the activation, settling through the vendor by the
    activation's cloud account, settling only through that vendor. Judged as at
    `created_at`; repeatable (a bound workspace is answered with its binding). Should
    the subscription have ended meanwhile it settles by the billing center. Refused as
    the check is."""
    return center.activated_workspaces.bind(body)


@router.get("/internal/accounts/{account_id}/wallet", response_model=WalletOverview,
            tags=["internal"], dependencies=[Depends(require_operator)],
            responses=error_responses(401, 404, 422))
def internal_wallet(account_id: AccountPath, center: CenterDep) -> WalletOverview:
    """What the account holds and owes, for a console's settlement account overview;
    404 `account_not_found`."""
    return center.console_visits.wallet_overview(account_id)


@router.post("/internal/sign-in-tickets", response_model=SignInTicket, tags=["internal"],
             dependencies=[Depends(require_operator)], responses=error_responses(401, 403, 404, 422))
def internal_sign_in_ticket(body: SignInTicketRequest, center: CenterDep) -> SignInTicket:
    """A one-time ticket (two minutes) that signs a workspace's owner in to the billing
    center as the account the workspace is bound to: the browser opens `path`. 403
    `workspace_not_bound` when the workspace is paid for by another account."""
    return center.console_visits.issue(body)
