"""Billing accounts: sessions, the account, and the operator's bindings (`/billing/v1`)."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from accrual.billing.api.deps import (
    AccountDep,
    CenterDep,
    SessionDep,
    billing_router,
    require_operator,
)
from accrual.billing.domain.bounds import USERNAME_PATTERN
from accrual.billing.services.accounts import BillingAccount, Bound, PaidWorkspace
from accrual.contract.errors import NotFound
from accrual.infra.http import (
    Text,
    bearer_token,
    client_address,
    error_responses,
    too_many_attempts_response,
)

router = billing_router()


class BillingSessionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "username": "ada", "password": "correct horse battery"}]})

    # No pattern here: a login is compared NFKC + case-folded, so a full-width or
    # capitalised spelling of an existing username logs in; anything else is 401.
    username: Text = Field(max_length=64, description="The username, compared NFKC + case-folded")
    password: Text = Field(max_length=256)


class BillingSessionOut(BaseModel):
    token: str
    account_id: str


class BindingIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "account_id": "<billing account id>", "settlement_method": "billing_center"}]})

    account_id: Text | None = Field(None, description="The billing account to bind to")
    username: Text | None = Field(None, max_length=64, pattern=USERNAME_PATTERN,
                                  description="…or that account's username")
    settlement_method: Text = "billing_center"


class PasswordChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "current_password": "correct horse battery",
        "new_password": "a longer passphrase now"}]})

    current_password: Text = Field(max_length=256)
    new_password: Text = Field(max_length=256)


class PasswordChangedOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"sessions_ended": 2}]})

    sessions_ended: int = Field(description="The account's other sessions, ended now")


class ResetRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"username": "ada"}]})

    username: Text = Field(max_length=320, description="The account's username, or its email")


class ResetRequestedOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "message": "if an account matches, a code was mailed to its address"}]})

    message: str


class ResetIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "username": "ada", "code": "7KQ2M-XH9PD", "new_password": "a longer passphrase now"}]})

    username: Text = Field(max_length=320)
    code: Text = Field(max_length=64, description="The mailed code (dashes and spaces ignored)")
    new_password: Text = Field(max_length=256)


@router.post("/sessions", response_model=BillingSessionOut,
             responses={**error_responses(401), **too_many_attempts_response()},
             tags=["billing: accounts"])
def login(body: BillingSessionIn, center: CenterDep, request: Request) -> BillingSessionOut:
    """Log a billing account in (by username); the token goes in `Authorization: Bearer`.

    Wrong credentials are 401 `invalid_credentials`. After too many failures for the
    username or from the client's address within a window (`ACCRUAL_SIGN_IN_*`), attempts
    are 429 `too_many_attempts` with `Retry-After` (seconds), the password unchecked,
    until the lockout ends; a successful sign-in clears the username's count."""
    token, account_id = center.accounts.login(body.username, body.password,
                                              client_address(request))
    return BillingSessionOut(token=token, account_id=account_id)


@router.delete("/sessions/current", status_code=204, responses=error_responses(401),
               tags=["billing: accounts"])
def logout(request: Request, center: CenterDep, _account_id: SessionDep) -> Response:
    """Sign out: the bearer token's session ends, and the token is refused (401) from now on."""
    center.accounts.logout(bearer_token(request))
    return Response(status_code=204)

@router.put("/account/password", response_model=PasswordChangedOut,
            responses={**error_responses(401, 422), **too_many_attempts_response()},
            tags=["billing: accounts"])
def change_password(body: PasswordChangeIn, request: Request, center: CenterDep,
                    account_id: SessionDep) -> PasswordChangedOut:
    """Change the session's account password, giving the current one. Every other session
    of the account ends; this one stays. Errors: 422 `wrong_password` (it counts as a
    failed sign-in, so repeated guesses end in 429 `too_many_attempts`), `invalid_password`
    (8 to 256 characters), `password_unchanged`."""
    ended = center.accounts.change_password(account_id, body.current_password, body.new_password,
                                   keep_token=bearer_token(request))
    return PasswordChangedOut(sessions_ended=ended)


@router.get("/accounts/{account_id}", tags=["billing: accounts"],
            responses=error_responses(401, 403, 404))
def get_account(account_id: AccountDep, center: CenterDep) -> dict[str, Any]:
    """The account: profile, certification and the workspaces it pays for today."""
    return {**account_json(center.accounts.account(account_id)),
            "workspaces": [paid_workspace_json(workspace)
                           for workspace in center.accounts.workspaces_of(account_id)]}


@router.put("/admin/workspaces/{workspace_id}/binding", tags=["billing: operator"],
            dependencies=[Depends(require_operator)], responses=error_responses(401, 404, 422))
def bind(workspace_id: str, body: BindingIn, center: CenterDep) -> dict[str, Any]:
    """Bind a workspace to a billing account. A first binding applies today (and makes a free
    workspace commercial); a change applies from the next billing day."""
    account_id = body.account_id
    if account_id is None and body.username:
        account_id = center.accounts.find_by_username(body.username)
    if account_id is None:
        raise NotFound("account_not_found", "name an existing account by account_id or username")
    bound = center.accounts.bind(workspace_id, account_id, body.settlement_method)
    center.nudge_relay()
    return bound_json(bound)


class ProfileIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "contact_name": "Ada Lovelace", "phone": "+86 138 0000 0000", "language": "zh"}]})

    contact_name: Text | None = Field(None, max_length=100)
    phone: Text | None = Field(None, max_length=32)
    language: Text | None = None


class CertificationIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "enterprise_name": "Analytical Engines Ltd", "taxpayer_id": "91310000MA1FL0XX1X"}]})

    enterprise_name: Text = Field(max_length=200)
    taxpayer_id: Text = Field(max_length=32)


class MoveIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"to_username": "ada-group"}]})

    to_username: Text = Field(max_length=64, pattern=USERNAME_PATTERN)


class WorkspaceRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workspace_id: Text = Field(max_length=64)


class WorkspaceConfirmIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workspace_id: Text = Field(max_length=64)
    code: Text = Field(max_length=16)


@router.patch("/accounts/{account_id}/profile", tags=["billing: accounts"],
              responses=error_responses(401, 403, 404, 422))
def update_profile(account_id: AccountDep, body: ProfileIn, center: CenterDep) -> dict[str, Any]:
    """Contact name, phone and language of the account's mails. The username never changes."""
    return account_json(center.profiles.update(
        account_id, contact_name=body.contact_name, phone=body.phone, language=body.language))


@router.put("/accounts/{account_id}/certification", tags=["billing: accounts"],
            responses=error_responses(401, 403, 404, 409, 422))
def certify(account_id: AccountDep, body: CertificationIn, center: CenterDep) -> dict[str, Any]:
    """Enterprise certification (business-licence name and taxpayer id): needed for invoices
    and for moving workspaces between accounts. Set once."""
    return account_json(center.certifications.certify(account_id, body.enterprise_name,
                                                      body.taxpayer_id))


@router.post("/accounts/{account_id}/workspaces/{workspace_id}/move", tags=["billing: accounts"],
             responses=error_responses(401, 403, 404, 422))
def move_workspace(account_id: AccountDep, workspace_id: str, body: MoveIn,
                   center: CenterDep) -> dict[str, Any]:
    """Change of binding: hand a workspace to another account with the same enterprise
    certification, from the next billing day."""
    bound = center.workspace_moves.move(account_id, workspace_id, body.to_username)
    center.nudge_relay()
    return bound_json(bound)


def account_json(account: BillingAccount) -> dict[str, Any]:
    """An account as the API answers it (its workspaces apart)."""
    certification = account.certification
    return {"account_id": account.account_id, "username": account.username,
            "email": account.email, "currency": account.currency, "language": account.language,
            "contact_name": account.contact_name, "phone": account.phone,
            "certification": None if certification is None else {
                "enterprise_name": certification.enterprise_name,
                "taxpayer_id": certification.taxpayer_id,
                "certified_at": certification.certified_at.isoformat()},
            "created_at": account.created_at.isoformat()}


def paid_workspace_json(workspace: PaidWorkspace) -> dict[str, Any]:
    return {"workspace_id": workspace.workspace_id, "site": workspace.site,
            "name": workspace.name, "settlement_method": workspace.settlement_method,
            "bound_since": workspace.bound_since.isoformat()}


def bound_json(bound: Bound) -> dict[str, Any]:
    """A binding as the API answers it (also the core of a settlement-method change)."""
    return {"workspace_id": bound.workspace_id, "account_id": bound.account_id,
            "settlement_method": bound.settlement_method,
            "effective_from": bound.effective_from.isoformat(), "changed": bound.changed}


@router.post("/accounts/{account_id}/workspace-bindings", tags=["billing: accounts"],
             responses=error_responses(401, 403, 404, 422, 503))
def request_workspace(account_id: AccountDep, body: WorkspaceRequestIn,
                      center: CenterDep) -> dict[str, Any]:
    """Bind Workspace: ask to pay for a workspace; its owner is mailed a code."""
    sent = center.binding_codes.request_for_account(account_id, body.workspace_id)
    return {"sent_to": sent.sent_to, "expires_at": sent.expires_at.isoformat()}


@router.post("/accounts/{account_id}/workspace-bindings/confirm", tags=["billing: accounts"],
             responses=error_responses(401, 403, 404, 422))
def confirm_workspace(account_id: AccountDep, body: WorkspaceConfirmIn,
                      center: CenterDep) -> dict[str, Any]:
    """Finish Bind Workspace with the owner's code: the workspace is bound (and commercial)
    at once."""
    change = center.binding_codes.confirm_for_account(account_id, body.workspace_id, body.code)
    center.nudge_relay()
    return change.model_dump(mode="json")


@router.post("/password-resets", status_code=202, response_model=ResetRequestedOut,
             tags=["billing: accounts"], responses=error_responses(422))
def request_password_reset(body: ResetRequestIn, center: CenterDep) -> ResetRequestedOut:
    """Forgot the password: a one-time code (30 minutes, 5 tries, at most 3 an hour) is
    mailed to the account's address. The answer is the same whether an account matches or
    not, so that it tells nobody which accounts exist."""
    center.password_reset.request(body.username)
    return ResetRequestedOut(message="if an account matches, a code was mailed to its address")


@router.post("/password-resets/confirm", status_code=204, tags=["billing: accounts"],
             responses=error_responses(422))
def reset_password(body: ResetIn, center: CenterDep) -> Response:
    """Set a new password with the mailed code; every session of the account ends and its
    sign-in lockout is lifted. Errors: 422 `wrong_code` (wrong, used, expired or out of
    tries; also for an unknown account), `invalid_password` (8 to 256 characters)."""
    center.password_reset.reset(body.username, body.code, body.new_password)
    return Response(status_code=204)
