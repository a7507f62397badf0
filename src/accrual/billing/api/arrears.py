"""Arrears: the countdown and locks of an account, and the operator's view (`/billing/v1`)."""

from __future__ import annotations

from typing import Any

from fastapi import Depends
from pydantic import BaseModel, ConfigDict

from accrual.billing.api.deps import (
    AccountDep,
    CenterDep,
    billing_router,
    require_operator,
)
from accrual.billing.services.arrears import AccountArrears, CaseView
from accrual.infra.http import error_responses
from accrual.money import format_minor

router = billing_router()

_CASE_EXAMPLE: dict[str, Any] = {
    "case_id": 7, "account_id": "<billing account id>", "username": "ada", "state": "countdown",
    "owed": "3.40", "currency": "CNY", "started_at": "2026-11-26T02:00:00+00:00",
    "lock_at": "2026-12-10T02:00:00+00:00", "reminded_at": None, "locked_at": None,
    "workspaces": [{"workspace_id": "<workspace id>", "name": "Ada's team", "site": "cn1",
                    "state": "countdown"}]}


class WorkspaceStateOut(BaseModel):
    workspace_id: str
    name: str | None
    site: str | None
    state: str  # countdown | locked


class CaseOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_CASE_EXAMPLE]})

    case_id: int
    account_id: str
    username: str
    state: str  # countdown | locked
    owed: str
    currency: str
    started_at: str
    lock_at: str
    reminded_at: str | None
    locked_at: str | None
    workspaces: list[WorkspaceStateOut]


class AccountArrearsOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "account_id": "<billing account id>", "state": "countdown", "case": _CASE_EXAMPLE}]})

    account_id: str
    state: str  # none | countdown | locked
    case: CaseOut | None


class MailBacklogOut(BaseModel):
    pending: int
    given_up: int
    oldest: str | None
    failing: list[dict[str, Any]]


class ArrearsOverviewOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "cases": [_CASE_EXAMPLE],
        "mails": {"pending": 0, "given_up": 0, "oldest": None, "failing": []}}]})

    cases: list[CaseOut]
    mails: MailBacklogOut


@router.get("/accounts/{account_id}/arrears", response_model=AccountArrearsOut,
            tags=["billing: wallet"], responses=error_responses(401, 403, 404))
def account_arrears(account_id: AccountDep, center: CenterDep) -> dict[str, Any]:
    """The account's arrears: `none`, or the open case: `countdown` (its workspaces lock at
    `lock_at` unless the amount owed is paid) or `locked`, with what each workspace shows.
    A top-up that covers `owed` ends it and unlocks the workspaces at once."""
    return account_arrears_json(center.arrears.of_account(account_id))


@router.get("/admin/arrears", response_model=ArrearsOverviewOut, tags=["billing: operator"],
            dependencies=[Depends(require_operator)], responses=error_responses(401))
def arrears_overview(center: CenterDep) -> dict[str, Any]:
    """Every open arrears case, soonest lock first, and the billing mail backlog (mails not
    sent yet, given up after repeated failures, and the latest errors)."""
    return {"cases": [case_json(case) for case in center.arrears.cases()],
            "mails": center.mails.backlog()}


def case_json(case: CaseView) -> dict[str, Any]:
    """A case as the API shows it: money as a decimal string, instants in ISO 8601."""
    return {"case_id": case.case_id, "account_id": case.account_id, "username": case.username,
            "state": str(case.standing), "owed": format_minor(case.owed_minor, case.currency),
            "currency": case.currency, "started_at": case.started_at.isoformat(),
            "lock_at": case.lock_at.isoformat(),
            "reminded_at": case.reminded_at.isoformat() if case.reminded_at else None,
            "locked_at": case.locked_at.isoformat() if case.locked_at else None,
            "workspaces": [{"workspace_id": w.workspace_id, "name": w.name, "site": w.site,
                            "state": str(w.state)} for w in case.workspaces]}


def account_arrears_json(arrears: AccountArrears) -> dict[str, Any]:
    return {"account_id": arrears.account_id, "state": str(arrears.standing),
            "case": case_json(arrears.case) if arrears.case is not None else None}
