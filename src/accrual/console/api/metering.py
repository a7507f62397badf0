"""Usage ingestion and admission (`/console/v1`)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from accrual.console.api.deps import ConsoleDep, console_router
from accrual.console.wiring import Console
from accrual.contract.errors import Forbidden, Unauthorized
from accrual.infra.http import (
    bearer_token,
    error_response,
    error_responses,
    same_secret,
    strict_json,
)

router = console_router()

MAX_BODY_BYTES = 32 * 1024 * 1024


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


class AdmissionCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workspace_id: str = Field(max_length=64)
    item: str = Field(max_length=32, description="A billing item code, or 'infrastructure' / 'events'")


class AdmissionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"checks": [
        {"workspace_id": "<workspace id>", "item": "logs"},
        {"workspace_id": "<workspace id>", "item": "infrastructure"}]}]})

    checks: list[AdmissionCheck] = Field(max_length=1000)


def require_admission_caller(request: Request) -> str | None:
    """The operator token, or an ingest key (which may ask only about its own workspace)."""
    console = request.app.state.console
    token = bearer_token(request)
    if same_secret(token, request.app.state.admin_token):
        return None
    workspace_id = console.accounts.workspace_for_ingest_key(token)
    if workspace_id is None:
        raise Unauthorized("unauthorized", "send the workspace's ingest key or the operator token")
    return workspace_id  # type: ignore[no-any-return]


@router.post("/admission", tags=["console: metering"], responses=error_responses(401, 403, 422))
def admission(body: AdmissionIn, console: ConsoleDep,
              only_workspace: str | None = Depends(require_admission_caller)) -> dict[str, Any]:
    """May these workspaces ingest these items now? Each answer is allow, or refuse with a
    reason: `quota_exceeded` (free plan, until the site's midnight), `not_in_plan`, `locked`,
    `dissolved`, `unknown_workspace`. Infrastructure and events are never refused for quota."""
    checks = [(c.workspace_id, c.item) for c in body.checks]
    if only_workspace is not None and any(w != only_workspace for w, _ in checks):
        raise Forbidden("foreign_workspace", "an ingest key may ask only about its own workspace")
    return {"answers": console.admission.check(checks)}
