"""The console's public HTTP API (`/console/v1`)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from accrual.clock import site_day
from accrual.console.queries import billing_details
from accrual.console.wiring import Console
from accrual.contract.errors import Invalid, Unauthorized
from accrual.contract.messages import Envelope
from accrual.infra.http import (
    Text,
    bearer_token,
    error_response,
    error_responses,
    plain_path_params,
    same_secret,
    strict_json,
)

router = APIRouter(prefix="/console/v1", dependencies=[Depends(plain_path_params)])

MAX_BODY_BYTES = 32 * 1024 * 1024


def console_of(request: Request) -> Console:
    return request.app.state.console  # type: ignore[no-any-return]


ConsoleDep = Annotated[Console, Depends(console_of)]


def require_operator(request: Request) -> None:
    if not same_secret(bearer_token(request), request.app.state.admin_token):
        raise Unauthorized("unauthorized", "this needs the operator token")


def session_account(request: Request, console: ConsoleDep) -> str:
    account_id = console.accounts.account_for_session(bearer_token(request))
    if account_id is None:
        raise Unauthorized("unauthorized", "unknown or expired session; log in again")
    return account_id


AccountDep = Annotated[str, Depends(session_account)]


class RegistrationIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "email": "ada@example.com", "password": "correct horse battery",
        "username": "ada", "workspace_name": "Ada's team", "language": "en"}]})

    email: Text = Field(max_length=320)
    password: Text = Field(max_length=256)
    username: Text = Field(max_length=64)
    workspace_name: Text = Field(max_length=200)
    language: Text = "en"


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
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "name": "Staging", "language": "en"}]})

    name: Text = Field(max_length=200)
    language: Text = "en"


class NewWorkspaceOut(BaseModel):
    workspace_id: str
    ingest_key: str
    plan: str


class UsageRecordIn(BaseModel):
    """Documentation of one usage record; the endpoint validates records one by one."""

    id: str = Field(description="Producer id; a record counts once per (workspace_id, id)",
                    max_length=128)
    workspace_id: str
    item: str = Field(description="Billing item code, e.g. timeseries, logs, trace, rum_pv, trigger")
    time: str = Field(description="ISO 8601 with offset; at most 5 minutes ahead, at most 35 days old")
    quantity: str | int = Field(description="Whole, non-negative number in the item's counted unit "
                                            "(a decimal string or integer); for max-type items "
                                            "the cumulative count so far that day")
    retention_days: int | None = Field(None, description="Retention of the index written to; "
                                                         "default: the workspace's policy")
    attributes: dict[str, Any] | None = None


class UsageIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"records": [
        {"id": "host-1/2026-11-25T08", "workspace_id": "<workspace id>", "item": "logs",
         "time": "2026-11-25T08:00:00+08:00", "quantity": "2000000", "retention_days": 7}]}]})

    records: list[UsageRecordIn]


class RejectionOut(BaseModel):
    index: int
    code: str
    message: str


class UsageOut(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[RejectionOut]


def _date_text(value: object) -> object:
    # A JSON number would otherwise pass as a Unix timestamp at midnight (0 is 1970-01-01).
    if not isinstance(value, str):
        raise ValueError("send the date as a string, YYYY-MM-DD")
    return value


class CloseDayIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"date": "2026-11-25"}]})

    date: Annotated[date, BeforeValidator(_date_text)]


class CloseDayOut(BaseModel):
    date: date
    charges: int
    adjustments: int
    already_closed: bool
    delivered: int


@router.post("/registrations", status_code=201, response_model=RegistrationOut,
             responses=error_responses(409, 422, 503), tags=["console: accounts"])
def register(body: RegistrationIn, console: ConsoleDep) -> RegistrationOut:
    """Create a console account, its billing account and a first commercial workspace, bound
    together: all three or none. Retrying the same request after a failure is safe."""
    result = console.accounts.register(body.email, body.password, body.username,
                                       body.workspace_name, body.language)
    console.nudge_relay()
    return RegistrationOut(**result.__dict__)


@router.post("/sessions", response_model=TokenOut, responses=error_responses(401),
             tags=["console: accounts"])
def login(body: ConsoleSessionIn, console: ConsoleDep) -> TokenOut:
    return TokenOut(token=console.accounts.login(body.email, body.password))


@router.get("/workspaces", tags=["console: workspaces"], responses=error_responses(401))
def list_workspaces(console: ConsoleDep, account_id: AccountDep) -> dict[str, Any]:
    return {"workspaces": console.accounts.workspaces_of(account_id)}


@router.post("/workspaces", status_code=201, response_model=NewWorkspaceOut,
             responses=error_responses(401, 422), tags=["console: workspaces"])
def create_workspace(body: WorkspaceIn, console: ConsoleDep, account_id: AccountDep) -> NewWorkspaceOut:
    """A further workspace on the free plan; binding it to a billing account makes it commercial."""
    created = console.accounts.create_workspace(account_id, body.name, body.language)
    console.nudge_relay()
    return NewWorkspaceOut(workspace_id=created.workspace_id, ingest_key=created.ingest_key,
                           plan="free")


@router.get("/workspaces/{workspace_id}", tags=["console: workspaces"],
            responses=error_responses(401, 404))
def get_workspace(workspace_id: str, console: ConsoleDep, account_id: AccountDep) -> dict[str, Any]:
    role = console.accounts.require_member(account_id, workspace_id)
    ws = console.accounts.workspace(workspace_id) or {}
    return {"workspace_id": workspace_id, "name": ws.get("name"), "plan": ws.get("plan"),
            "status": ws.get("status"), "language": ws.get("language"), "site": ws.get("site"),
            "billing_account_id": ws.get("billing_account_id"),
            "settlement_method": ws.get("settlement_method"), "role": role}


@router.get("/workspaces/{workspace_id}/billing-details", tags=["console: billing"],
            responses=error_responses(401, 404, 422))
def list_billing_details(
    workspace_id: str, console: ConsoleDep, account_id: AccountDep,
    start: Annotated[date | None, Query(alias="from", description="First day (site-local)")] = None,
    end: Annotated[date | None, Query(alias="to", description="Last day, inclusive")] = None,
) -> dict[str, Any]:
    """The workspace's billing details (charges and adjustments) for a range of days."""
    console.accounts.require_member(account_id, workspace_id)
    today = site_day(console.clock.now(), console.config.zone)
    end = end or today
    start = start or max(end, date.min + timedelta(days=30)) - timedelta(days=30)
    if start > end:
        raise Invalid("invalid_range", "'from' must not be after 'to'")
    if (end - start).days > 366:
        raise Invalid("invalid_range", "ask for at most 366 days at a time")
    details = billing_details(console.engine, workspace_id, start, end)
    return {"workspace_id": workspace_id, "from": start.isoformat(), "to": end.isoformat(),
            "details": details}


@router.post("/usage", response_model=UsageOut, tags=["console: metering"],
             responses={**error_responses(400, 401, 413, 422)},
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": {"$ref": "#/components/schemas/UsageIn"}}}}})
async def post_usage(request: Request) -> Any:
    """Send usage records (Bearer: the workspace's ingest key, or the operator token).

    Each record is judged on its own: valid ones are stored (once per workspace and id),
    invalid ones come back in `rejected` with a stable code. When no record is stored
    or already known, the answer is 422 `all_records_rejected` with the same report."""
    console: Console = request.app.state.console
    token = bearer_token(request)
    only_workspace = None
    if not same_secret(token, request.app.state.admin_token):
        only_workspace = console.accounts.workspace_for_ingest_key(token)
        if only_workspace is None:
            raise Unauthorized("unauthorized", "unknown ingest key")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return error_response(413, "payload_too_large", f"send at most {MAX_BODY_BYTES} bytes per request")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        return error_response(413, "payload_too_large", f"send at most {MAX_BODY_BYTES} bytes per request")
    try:
        body = strict_json(raw)
    except (ValueError, RecursionError) as error:
        return error_response(400, "malformed_json", f"the request body is not valid JSON: {error}")
    records = body.get("records") if isinstance(body, dict) else None
    if not isinstance(records, list):
        return error_response(422, "invalid_request", "send an object with a 'records' array")
    if len(records) > console.config.max_batch_records:
        return error_response(413, "batch_too_large",
                              f"send at most {console.config.max_batch_records} records per request")
    result = await run_in_threadpool(console.ingestion.ingest, records, only_workspace=only_workspace)
    report = {"accepted": result.accepted, "duplicates": result.duplicates,
              "rejected": [asdict(r) for r in result.rejected]}
    if records and result.accepted == 0 and result.duplicates == 0:
        return JSONResponse({**report, "error": {
            "code": "all_records_rejected",
            "message": "no record was stored; see 'rejected' for each record's reason"}},
            status_code=422)
    return report


@router.post("/admin/close-day", response_model=CloseDayOut, tags=["console: operator"],
             dependencies=[Depends(require_operator)], responses=error_responses(401, 422))
def close_day(body: CloseDayIn, console: ConsoleDep) -> CloseDayOut:
    """Close a site-local day for every workspace: statistics → billing details → outbox,
    then deliver them to the billing center. Closing a day twice changes nothing."""
    result = console.day_close.close_day(body.date)
    delivered = console.nudge_relay()
    return CloseDayOut(date=result.day, charges=result.charges, adjustments=result.adjustments,
                       already_closed=result.already_closed, delivered=delivered)


@router.get("/admin/jobs", tags=["console: operator"], dependencies=[Depends(require_operator)],
            responses=error_responses(401))
def jobs(console: ConsoleDep) -> dict[str, Any]:
    """Background work as it stands: the outbox backlog and the relay's counters."""
    pending, oldest = console.relay.backlog()
    return {"outbox": {"pending": pending, "oldest": oldest.isoformat() if oldest else None,
                       "delivered": console.relay.stats.delivered,
                       "failed_batches": console.relay.stats.failed_batches,
                       "last_error": console.relay.stats.last_error},
            "day_close": {"last_closable_day": console.day_close.last_closable_day().isoformat()}}


class InboxIn(BaseModel):
    messages: list[Envelope]


@router.post("/internal/inbox", tags=["internal"], include_in_schema=True,
             dependencies=[Depends(require_operator)], responses=error_responses(401))
def inbox(body: InboxIn, console: ConsoleDep) -> dict[str, list[str]]:
    """Messages from the billing center (service token); applied at most once each."""
    return {"applied": console.inbox.deliver(body.messages)}


