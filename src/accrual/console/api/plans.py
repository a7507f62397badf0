"""Plans: retention policies, free-plan quotas, the upgrade (`/console/v1`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from accrual.console.api.deps import AccountDep, ConsoleDep, console_router
from accrual.console.domain.roles import Action
from accrual.console.services.permissions import require
from accrual.infra.http import error_responses
from accrual.money import format_decimal

router = console_router()


class RetentionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True,
                              json_schema_extra={"examples": [{"retention_days": 30}]})

    retention_days: int


class UpgradeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"username": "ada"}]})

    username: str = Field(max_length=64, description="The billing account to bind to")


class UpgradeConfirmIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "username": "ada", "code": "123456"}]})

    username: str = Field(max_length=64)
    code: str = Field(max_length=16)


@router.get("/workspaces/{workspace_id}/retention", tags=["console: plans"],
            responses=error_responses(401, 404))
def get_retention(workspace_id: str, console: ConsoleDep, account_id: AccountDep) -> dict[str, Any]:
    """Retention per data type: what is in force, the options, and a change waiting for tomorrow."""
    console.accounts.require_member(account_id, workspace_id)
    return {"workspace_id": workspace_id,
            "policies": [{"data_type": p.data_type.value, "retention_days": p.retention_days,
                          "options": list(p.options),
                          "pending": None if p.pending is None else {
                              "retention_days": p.pending.retention_days,
                              "effective_from": p.pending.effective_from.isoformat()}}
                         for p in console.retention.policies(workspace_id)]}


@router.put("/workspaces/{workspace_id}/retention/{data_type}", tags=["console: plans"],
            responses=error_responses(401, 403, 404, 422))
def change_retention(workspace_id: str, data_type: str, body: RetentionIn, console: ConsoleDep,
                     account_id: AccountDep) -> dict[str, Any]:
    """Change a data type's retention (owner of a commercial workspace). The first change of
    a day applies at once; later ones apply from the next midnight with the last value.
    Data keeps the tier it was written under."""
    change = console.retention.change(workspace_id, account_id, data_type, body.retention_days)
    return {"data_type": change.data_type.value, "retention_days": change.retention_days,
            "effective_from": change.plan.effective_from.isoformat(),
            "applies": change.plan.applies}


@router.get("/workspaces/{workspace_id}/quota", tags=["console: plans"],
            responses=error_responses(401, 403, 404))
def quota(workspace_id: str, console: ConsoleDep, account_id: AccountDep) -> dict[str, Any]:
    """Today's use against the free plan's daily quotas (the Plans & Billing module: owners,
    admins and a custom role granted `billing`; others 403 `billing_permission_required`)."""
    require(console.accounts, account_id, workspace_id, Action.VIEW_BILLING)
    usage = console.admission.quota_usage(workspace_id)
    return {"workspace_id": usage.workspace_id, "plan": usage.plan, "day": usage.day.isoformat(),
            "resets_at": usage.resets_at.isoformat(),
            "items": [{"item": i.item, "used": format_decimal(i.used), "quota": i.quota,
                       "exceeded": i.exceeded} for i in usage.items]}


@router.post("/workspaces/{workspace_id}/upgrade", tags=["console: plans"],
             responses=error_responses(401, 403, 404, 409, 422, 503))
def request_upgrade(workspace_id: str, body: UpgradeIn, console: ConsoleDep,
                    account_id: AccountDep) -> dict[str, Any]:
    """Start the upgrade of a free workspace (owner only): a code is mailed to the owner of
    the named billing account."""
    sent = console.plan_upgrades.request(account_id, workspace_id, body.username)
    return {"sent_to": sent.sent_to, "expires_at": sent.expires_at.isoformat()}


@router.post("/workspaces/{workspace_id}/upgrade/confirm", tags=["console: plans"],
             responses=error_responses(401, 403, 404, 409, 422, 503))
def confirm_upgrade(workspace_id: str, body: UpgradeConfirmIn, console: ConsoleDep,
                    account_id: AccountDep) -> dict[str, Any]:
    """Finish the upgrade with the mailed code: the workspace is commercial at once, bound to
    the account, and cannot go back to free."""
    upgraded = console.plan_upgrades.confirm(account_id, workspace_id, body.username, body.code)
    return {"workspace_id": upgraded.workspace_id, "plan": "commercial",
            "billing_account_id": upgraded.billing_account_id,
            "settlement_method": upgraded.settlement_method,
            "commercial_since": upgraded.commercial_since.isoformat()}
