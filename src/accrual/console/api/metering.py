"""Usage ingestion and admission (`/console/v1`)."""

from __future__ import annotations

from dataclasses import asdict
from decimal import Decimal
from typing import Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from accrual.catalog import ITEMS
from accrual.catalog.items import NO_TIER
from accrual.catalog.rules import MAX_ATTRIBUTE_VALUE
from accrual.console.api.deps import ConsoleDep, console_router
from accrual.console.config import ConsoleConfig
from accrual.console.domain.usage import MAX_ATTRIBUTES_BYTES, MAX_QUANTITY, MAX_RECORD_ID
from accrual.console.services.admission import AdmissionAnswer
from accrual.console.wiring import Console
from accrual.contract.errors import Forbidden, Unauthorized
from accrual.infra.http import (
    bearer_token,
    error_response,
    error_responses,
    same_secret,
    strict_json,
)
from accrual.money import format_decimal

router = console_router()

MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_BATCH_RECORDS = ConsoleConfig.max_batch_records


_WHOLE = {"anyOf": [
    {"type": "integer", "minimum": 0, "maximum": MAX_ATTRIBUTE_VALUE},
    {"type": "string", "pattern": "^[0-9]{1,16}$",
     "description": f"ASCII digits, at most {MAX_ATTRIBUTE_VALUE}"}]}


def _whole(description: str) -> dict[str, Any]:
    return {**_WHOLE, "description": description}


# What the counting rules read, per item (catalog/rules.py); other attributes are kept
# with the record and count towards its digest, but are not interpreted.
ATTRIBUTES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": (
        f"At most {MAX_ATTRIBUTES_BYTES} bytes as JSON. Whole-number attributes are an "
        f"integer or a string of ASCII digits, from 0 to {MAX_ATTRIBUTE_VALUE}. What the "
        "counting rules read, per item:\n\n"
        "| item | attribute | effect |\n|---|---|---|\n"
        "| logs | size_bytes, storage (es / sls) | each of the quantity records counts "
        "floor(size / limit), at least 1 (limit 10 KB on es, the default; 2 KB on sls) |\n"
        "| profile | size_bytes | each profile counts floor(size / 300 KB), at least 1 |\n"
        "| session_replay | duration_seconds | each session counts floor(duration / 4 h), "
        "at least 1 |\n"
        "| trigger | kind, window_minutes | each run counts its kind's weight (intelligent_rum "
        "100; intelligent_host / _log / _apm 10; mutation, interval, outlier, log 5; others 1) "
        "plus ceil((window − 15) / 15) for a window over 15 minutes |\n"
        "| trace | spans | the day bills max(Σ spans / 10, Σ traces) |\n"
        "| rum_pv | resource, long_task, error, action | the day bills "
        "max(Σ side events / 100, Σ page views) |\n"
        "| synthetic_test | node | \"self_built\": the tests ran on the customer's own nodes "
        "and count as logs |\n\n"
        "A record whose counted units exceed the day's limit for its item is refused with "
        "daily_limit_exceeded."),
    "properties": {
        "size_bytes": _whole("logs, profile: size of each record or analysis file, in bytes"),
        "storage": {"type": "string", "enum": ["es", "sls"],
                    "description": "logs: the log store (default es)"},
        "duration_seconds": _whole("session_replay: length of each session, in seconds"),
        "kind": {"type": "string", "minLength": 1, "maxLength": 64,
                 "description": "trigger: the detection kind (mutation, interval, outlier, log, "
                                "intelligent_host, intelligent_log, intelligent_apm, "
                                "intelligent_rum, query, generate_metrics, func; others weigh 1)"},
        "window_minutes": _whole("trigger: the detection window, in minutes"),
        "spans": _whole("trace: spans reported with these traces"),
        "resource": _whole("rum_pv: resource events reported with these page views"),
        "long_task": _whole("rum_pv: long-task events reported with these page views"),
        "error": _whole("rum_pv: error events reported with these page views"),
        "action": _whole("rum_pv: action events reported with these page views"),
        "node": {"type": "string",
                 "description": "synthetic_test: \"self_built\" for the customer's own nodes"},
    },
    "additionalProperties": True,
    "examples": [{"size_bytes": 25600, "storage": "es"}, {"spans": 1200},
                 {"kind": "intelligent_log", "window_minutes": 30},
                 {"resource": 40, "long_task": 2, "error": 1, "action": 12}],
}

_TIERS = sorted({NO_TIER, *(tier for item in ITEMS.values() for tier in item.tiers)})

RECORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "UsageRecordIn",
    "required": ["id", "workspace_id", "item", "time", "quantity"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": MAX_RECORD_ID,
               "pattern": "^[^\\x00]+$",
               "description": "Producer id; a record counts once per (workspace_id, id). "
                              "Sent again with another payload it is a conflict"},
        "workspace_id": {"type": "string", "minLength": 1, "maxLength": 32,
                         "description": "With an ingest key: that key's workspace"},
        "item": {"type": "string", "enum": sorted(c for c, i in ITEMS.items() if not i.legacy),
                 "description": "Billing item code (GET /catalog/v1/items); sms only on cn "
                                "sites in CNY"},
        "time": {"type": "string", "format": "date-time", "maxLength": 40,
                 "description": "ISO 8601 with a UTC offset; at most 5 minutes ahead of the "
                                "server, at most 35 days old. The site's day it falls on is "
                                "the billing day"},
        "quantity": {"anyOf": [
            {"type": "integer", "minimum": 0, "maximum": MAX_QUANTITY},
            {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$",
             "minLength": 1, "maxLength": 40,
             "description": "ASCII digits, optionally a fraction of zeros (\"2000000\", "
                            "\"7.0\"; no exponent), of a whole number from 0 to "
                            f"{MAX_QUANTITY}"}],
            "description": f"Whole number from 0 to {MAX_QUANTITY} in the item's counted "
                           "unit (a decimal string or an integer); for max-type items "
                           "(timeseries, session_replay, network_host, forward_internal) the "
                           "cumulative count so far that day. The counting rules may multiply "
                           "it (see attributes)"},
        "retention_days": {"anyOf": [{"type": "integer", "enum": _TIERS}, {"type": "null"}],
                           "description": "Retention tier of the index written to; one the "
                                          "item offers (0 or absent for items without "
                                          "tiers). Absent: the workspace's policy (7 days "
                                          "on the free plan)"},
        "attributes": {"anyOf": [ATTRIBUTES_SCHEMA, {"type": "null"}]},
    },
}

USAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "UsageIn",
    "required": ["records"],
    "additionalProperties": False,
    "properties": {"records": {"type": "array", "maxItems": MAX_BATCH_RECORDS,
                               "items": RECORD_SCHEMA,
                               "description": f"At most {MAX_BATCH_RECORDS} records (and "
                                              f"{MAX_BODY_BYTES} bytes) per request"}},
    "examples": [{"records": [
        {"id": "host-1/2026-11-25T08", "workspace_id": "<workspace id>", "item": "logs",
         "time": "2026-11-25T08:00:00+08:00", "quantity": "2000000", "retention_days": 7},
        {"id": "apm-1/2026-11-25T08", "workspace_id": "<workspace id>", "item": "trace",
         "time": "2026-11-25T08:00:00+08:00", "quantity": 5000, "attributes": {"spans": 80000}}]}],
}


def _media_type_refusal(content_type: str | None) -> str | None:
    """Why a Content-Type is not JSON in UTF-8, or None when it is."""
    media, *params = (content_type or "").split(";")
    if media.strip().lower() != "application/json":
        return f"send the body as application/json, not {media.strip() or 'no content type'}"
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() != "charset" or value.strip().strip('"').lower() != "utf-8":
            return "application/json takes no parameter but charset=utf-8"
    return None


class RejectionOut(BaseModel):
    index: int
    code: str
    message: str


class UsageOut(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[RejectionOut]


@router.post("/usage", response_model=UsageOut, tags=["console: metering"],
             responses={**error_responses(400, 401, 413, 415, 422)},
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": USAGE_SCHEMA}}}})
async def post_usage(request: Request) -> Any:
    """Send usage records (Bearer: the workspace's ingest key, or the operator token).

    Each record is judged on its own: valid ones are stored (once per workspace and id),
    invalid ones come back in `rejected` with a stable code (`invalid_record`, `invalid_id`,
    `unknown_workspace`, `workspace_locked`, `workspace_dissolved`, `unknown_item`,
    `item_not_available`, `invalid_time`, `time_in_future`, `too_late`, `invalid_quantity`,
    `invalid_attributes`, `invalid_retention`, `conflict`, `daily_limit_exceeded`,
    `quota_exceeded`, `not_in_plan`). When no record is stored or already known, the
    answer is 422 `all_records_rejected` with the same report. The body is JSON in UTF-8
    (`Content-Type: application/json`, charset utf-8 or none): anything else is 415."""
    console: Console = request.app.state.console
    token = bearer_token(request)
    only_workspace = None
    if not same_secret(token, request.app.state.admin_token):
        only_workspace = console.accounts.workspace_for_ingest_key(token)
        if only_workspace is None:
            raise Unauthorized("unauthorized", "unknown ingest key")
    refusal = _media_type_refusal(request.headers.get("content-type"))
    if refusal is not None:
        return error_response(415, "unsupported_media_type", refusal)
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
    workspace_id: str | None = console.accounts.workspace_for_ingest_key(token)
    if workspace_id is None:
        raise Unauthorized("unauthorized", "send the workspace's ingest key or the operator token")
    return workspace_id


@router.post("/admission", tags=["console: metering"], responses=error_responses(401, 403, 422))
def admission(body: AdmissionIn, console: ConsoleDep,
              only_workspace: str | None = Depends(require_admission_caller)) -> dict[str, Any]:
    """May these workspaces ingest these items now? Each answer is allow, or refuse with a
    reason: `quota_exceeded` (free plan, until the site's midnight), `not_in_plan`, `locked`,
    `dissolved`, `unknown_workspace`. Infrastructure and events are never refused for quota."""
    checks = [(c.workspace_id, c.item) for c in body.checks]
    if only_workspace is not None and any(w != only_workspace for w, _ in checks):
        raise Forbidden("foreign_workspace", "an ingest key may ask only about its own workspace")
    return {"answers": [admission_json(answer) for answer in console.admission.check(checks)]}


def admission_json(answer: AdmissionAnswer) -> dict[str, Any]:
    """An admission answer as the API gives it: used, quota and reset only under a quota."""
    found: dict[str, Any] = {"workspace_id": answer.workspace_id, "item": answer.item,
                             "allowed": answer.allowed, "reason": answer.reason}
    if answer.quota is not None:
        found.update(used=format_decimal(answer.used or Decimal(0)), quota=answer.quota,
                     resets_at=answer.resets_at.isoformat() if answer.resets_at else None)
    return found
