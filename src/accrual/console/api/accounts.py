"""Console accounts, sessions and workspaces (`/console/v1`)."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from pydantic import BaseModel, ConfigDict, Field

from accrual.console.api.deps import AccountDep, ConsoleDep, console_router
from accrual.console.services.dissolve import Dissolution, Dissolved
from accrual.infra.http import (
    Name,
    Text,
    bearer_token,
    client_address,
    error_responses,
    too_many_attempts_response,
)

router = console_router()


class RegistrationIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "email": "ada@example.com", "password": "correct horse battery",
        "username": "ada", "workspace_name": "Ada's team", "language": "en"},
        {"email": "ada@example.com", "password": "correct horse battery",
         "username": "ada", "workspace_name": "Ada's team", "language": "en",
         "activation_id": "act_9b1f0c2d3e4a5b6c7d8e9f0a1b2c3d4e"}]})

    email: Text = Field(max_length=320)
    password: Text = Field(max_length=256)
    username: Text = Field(max_length=64)
    workspace_name: Name = Field(max_length=200)
    language: Text = "en"
    activation_id: Text | None = Field(
        default=None, max_length=40,
        description="A cloud marketplace's activation (the billing center's `act_…` id): "
                    "the first workspace settles through that subscription")


class RegistrationOut(BaseModel):
    console_account_id: str
    billing_account_id: str
    workspace_id: str
    ingest_key: str


class ConsoleSessionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "email": "ada@example.com", "password": "correct horse battery"}]})

    email: Text = Field(max_length=320)
    password: Text = Field(max_length=256)


class TokenOut(BaseModel):
    token: str


class WorkspaceIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "Staging", "language": "en"},
        {"name": "Staging", "language": "en",
         "activation_id": "act_9b1f0c2d3e4a5b6c7d8e9f0a1b2c3d4e"}]})

    name: Name = Field(max_length=200)
    language: Text = "en"
    activation_id: Text | None = Field(
        default=None, max_length=40,
        description="A cloud marketplace's activation (the billing center's `act_…` id) "
                    "that a billing account claimed: the workspace is commercial, bound to "
                    "that account and settles through that subscription")


class NewWorkspaceOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"workspace_id": "<workspace id>", "ingest_key": "ik_…", "plan": "free",
         "billing_account_id": None, "settlement_method": None},
        {"workspace_id": "<workspace id>", "ingest_key": "ik_…", "plan": "commercial",
         "billing_account_id": "<billing account id>", "settlement_method": "aws"}]})

    workspace_id: str
    ingest_key: str
    plan: str
    billing_account_id: str | None = None
    settlement_method: str | None = None


class DissolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "workspace_name": "Ada's team"}]})

    workspace_name: Text = Field(max_length=200, description="The workspace's name, typed again "
                                                             "to confirm: this cannot be undone")


class DissolveOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "workspace_id": "<workspace id>", "status": "dissolved",
        "dissolved_at": "2026-12-10T02:30:00+00:00",
        "deleted": {"usage_records": 1240, "daily_statistics": 96, "late_days": 0,
                    "alert_rules": 1}}]})

    workspace_id: str
    status: str
    dissolved_at: str
    deleted: dict[str, int] = Field(description="Rows deleted per kind of stored data")


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
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"email": "ada@example.com"}]})

    email: Text = Field(max_length=320, description="The console account's email")


class ResetRequestedOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "message": "if an account matches, a code was mailed to its address"}]})

    message: str


class ResetIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "email": "ada@example.com", "code": "7KQ2M-XH9PD", "new_password": "a longer passphrase now"}]})

    email: Text = Field(max_length=320)
    code: Text = Field(max_length=64, description="The mailed code (dashes and spaces ignored)")
    new_password: Text = Field(max_length=256)


@router.post("/registrations", status_code=201, response_model=RegistrationOut,
             responses=error_responses(404, 409, 422, 503), tags=["console: accounts"])
def register(body: RegistrationIn, console: ConsoleDep) -> RegistrationOut:
    """Create a console account, its billing account and a first commercial workspace, bound
    together: all three or none. Retrying the same request after a failure is safe.

    With `activation_id` (a buyer sent by a cloud marketplace) the workspace settles
    through that subscription and only through that vendor. Refused before anything is
    created: 404 `activation_not_found`, 409 `activation_expired`, `activation_used`,
    `cloud_account_taken` (the subscription belongs to another billing account: sign in
    to it and claim the activation there)."""
    result = console.accounts.register(body.email, body.password, body.username,
                                       body.workspace_name, body.language, body.activation_id)
    console.nudge_relay()
    return RegistrationOut(**result.__dict__)


@router.post("/sessions", response_model=TokenOut,
             responses={**error_responses(401), **too_many_attempts_response()},
             tags=["console: accounts"])
def login(body: ConsoleSessionIn, console: ConsoleDep, request: Request) -> TokenOut:
    """Log a console account in (by email); the token goes in `Authorization: Bearer`.

    Wrong credentials are 401 `invalid_credentials`. After too many failures for the
    e-mail or from the client's address within a window (`ACCRUAL_SIGN_IN_*`), attempts
    are 429 `too_many_attempts` with `Retry-After` (seconds), the password unchecked,
    until the lockout ends; a successful sign-in clears the e-mail's count."""
    return TokenOut(token=console.accounts.login(body.email, body.password,
                                                 client_address(request)))


@router.delete("/sessions/current", status_code=204, responses=error_responses(401),
               tags=["console: accounts"])
def logout(request: Request, console: ConsoleDep, _account_id: AccountDep) -> Response:
    """Sign out: the bearer token's session ends, and the token is refused (401) from now on."""
    console.accounts.logout(bearer_token(request))
    return Response(status_code=204)

@router.put("/account/password", response_model=PasswordChangedOut,
            responses={**error_responses(401, 422), **too_many_attempts_response()},
            tags=["console: accounts"])
def change_password(body: PasswordChangeIn, request: Request, console: ConsoleDep,
                    account_id: AccountDep) -> PasswordChangedOut:
    """Change the session's account password, giving the current one. Every other session
    of the account ends; this one stays. Errors: 422 `wrong_password` (it counts as a
    failed sign-in, so repeated guesses end in 429 `too_many_attempts`), `invalid_password`
    (8 to 256 characters), `password_unchanged`."""
    ended = console.accounts.change_password(account_id, body.current_password, body.new_password,
                                   keep_token=bearer_token(request))
    return PasswordChangedOut(sessions_ended=ended)


@router.get("/workspaces", tags=["console: workspaces"], responses=error_responses(401))
def list_workspaces(console: ConsoleDep, account_id: AccountDep) -> dict[str, Any]:
    """The workspaces the session's account belongs to, with its role in each."""
    return {"workspaces": [
        {"workspace_id": m.workspace.id, "name": m.workspace.name, "plan": m.workspace.plan,
         "status": m.workspace.status, "language": m.workspace.language,
         "billing_account_id": m.workspace.billing_account_id,
         "settlement_method": m.workspace.settlement_method, "role": m.role,
         "created_at": m.workspace.created_at.isoformat()}
        for m in console.accounts.workspaces_of(account_id)]}


@router.post("/workspaces", status_code=201, response_model=NewWorkspaceOut,
             responses=error_responses(401, 403, 404, 409, 422, 503),
             tags=["console: workspaces"])
def create_workspace(body: WorkspaceIn, console: ConsoleDep, account_id: AccountDep) -> NewWorkspaceOut:
    """A further workspace on the free plan; binding it to a billing account makes it commercial.

    With `activation_id` (a buyer sent by a cloud marketplace, whose activation a billing
    account claimed in the billing center) the workspace is made commercial, bound to
    that billing account from its first day and settling through that vendor's
    subscription, and only through that vendor; all or nothing. A claimed activation
    makes any number of workspaces until it expires (an hour after the marketplace sent
    the buyer), for a console account with the e-mail of the billing account that claimed
    it. Refused before anything is created: 403 `activation_not_yours` (another e-mail);
    404 `activation_not_found`; 409
    `activation_not_claimed` (sign in to a billing account and claim the activation
    first), `activation_expired`, `activation_used` (a registration holds it),
    `subscription_ended`; 422 `invalid_activation`; 503 `billing_unavailable` (the billing
    center cannot be reached: nothing was created, retry the same request)."""
    created = console.accounts.create_workspace(account_id, body.name, body.language,
                                                body.activation_id)
    console.nudge_relay()
    return NewWorkspaceOut(**created.__dict__)


@router.get("/workspaces/{workspace_id}", tags=["console: workspaces"],
            responses=error_responses(401, 404))
def get_workspace(workspace_id: str, console: ConsoleDep, account_id: AccountDep) -> dict[str, Any]:
    """One of your workspaces: plan, status, binding and your role (404 for any other)."""
    role = console.accounts.require_member(account_id, workspace_id)
    ws = console.accounts.workspace(workspace_id)
    if ws is None:  # a member of a workspace not (yet) on this site: as before, all null
        return {"workspace_id": workspace_id, "name": None, "plan": None, "status": None,
                "language": None, "site": None, "billing_account_id": None,
                "settlement_method": None, "role": role, "arrears": None, "dissolved_at": None}
    return {"workspace_id": workspace_id, "name": ws.name, "plan": ws.plan,
            "status": ws.status, "language": ws.language, "site": ws.site,
            "billing_account_id": ws.billing_account_id,
            "settlement_method": ws.settlement_method, "role": role,
            # The arrears countdown (state "countdown" until lock_at) or the lock; null when
            # the account is not in arrears.
            "arrears": {"state": ws.lock_state,
                        "lock_at": ws.lock_at.isoformat() if ws.lock_at else None}
            if ws.lock_state else None,
            "dissolved_at": ws.dissolved_at.isoformat() if ws.dissolved_at else None}


@router.post("/workspaces/{workspace_id}/dissolve", response_model=DissolveOut,
             tags=["console: workspaces"], responses=error_responses(401, 403, 404, 409, 422))
def dissolve(workspace_id: str, body: DissolveIn, console: ConsoleDep,
             account_id: AccountDep) -> dict[str, Any]:
    """Dissolve a workspace (owner only), allowed during its billing account's arrears
    countdown or while it is locked: its stored usage and statistics are deleted and it
    never takes data again. **This cannot be undone.** Billing details already produced
    stay on the account's bills. Errors: 403 `owner_only`; 409 `dissolve_not_allowed`
    (not in arrears) or `workspace_dissolved`; 422 `confirmation_mismatch` (the name typed
    is not the workspace's)."""
    return dissolved_json(Dissolution(console.engine, console.clock, console.day_close).dissolve(
        account_id, workspace_id, body.workspace_name))


def dissolved_json(dissolved: Dissolved) -> dict[str, Any]:
    return {"workspace_id": dissolved.workspace_id, "status": "dissolved",
            "dissolved_at": dissolved.dissolved_at.isoformat(), "deleted": dissolved.deleted}


@router.post("/password-resets", status_code=202, response_model=ResetRequestedOut,
             tags=["console: accounts"], responses=error_responses(422))
def request_password_reset(body: ResetRequestIn, console: ConsoleDep) -> ResetRequestedOut:
    """Forgot the password: a one-time code (30 minutes, 5 tries, at most 3 an hour) is
    mailed to the account's address. The answer is the same whether an account matches or
    not, so that it tells nobody which accounts exist."""
    console.password_reset.request(body.email)
    return ResetRequestedOut(message="if an account matches, a code was mailed to its address")


@router.post("/password-resets/confirm", status_code=204, tags=["console: accounts"],
             responses=error_responses(422))
def reset_password(body: ResetIn, console: ConsoleDep) -> Response:
    """Set a new password with the mailed code; every session of the account ends and its
    sign-in lockout is lifted. Errors: 422 `wrong_code` (wrong, used, expired or out of
    tries; also for an unknown account), `invalid_password` (8 to 256 characters)."""
    console.password_reset.reset(body.email, body.code, body.new_password)
    return Response(status_code=204)
