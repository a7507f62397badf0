"""High-consumption alerts per workspace and item (`/console/v1`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from accrual.console.api.deps import AccountDep, ConsoleDep, console_router
from accrual.console.services.alerts import AlertRule
from accrual.infra.http import Text, error_responses

router = console_router()


class AlertIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"threshold": "50.00"}]})

    threshold: Text | int = Field(description="Daily amount of the item, in the billing "
                                              "currency, above which the alert fires")


@router.get("/workspaces/{workspace_id}/alerts", tags=["console: billing"],
            responses=error_responses(401, 403, 404))
def list_alerts(workspace_id: str, console: ConsoleDep, account_id: AccountDep) -> dict[str, Any]:
    """The workspace's high-consumption alerts (owners and admins)."""
    return {"alerts": [alert_json(rule) for rule in console.alerts.list(account_id, workspace_id)]}


@router.put("/workspaces/{workspace_id}/alerts/{item}", tags=["console: billing"],
            responses=error_responses(401, 403, 404, 422))
def set_alert(workspace_id: str, item: str, body: AlertIn, console: ConsoleDep,
              account_id: AccountDep) -> dict[str, Any]:
    """Set an item's daily threshold. On each closed day the alert mails the owner and admins
    once when the item's amount first exceeds it; it re-arms after a day below the threshold
    or when the threshold changes."""
    return alert_json(console.alerts.set(account_id, workspace_id, item, body.threshold))


@router.delete("/workspaces/{workspace_id}/alerts/{item}", status_code=204,
               tags=["console: billing"], responses=error_responses(401, 403, 404))
def delete_alert(workspace_id: str, item: str, console: ConsoleDep, account_id: AccountDep) -> None:
    """Remove an item's alert (owners and admins)."""
    console.alerts.remove(account_id, workspace_id, item)


def alert_json(rule: AlertRule) -> dict[str, Any]:
    return {"workspace_id": rule.workspace_id, "item": rule.item, "threshold": str(rule.threshold),
            "armed": rule.armed,
            "last_fired_day": rule.last_fired_day.isoformat() if rule.last_fired_day else None}
