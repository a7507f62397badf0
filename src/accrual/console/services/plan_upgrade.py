"""Upgrading a free workspace to the commercial plan by binding a billing account.

Owner only, with a code mailed to the billing account's owner; it takes effect
at once and cannot be undone (reference-billing.md §7.3).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Row, select

from accrual.clock import Clock
from accrual.console.adapters import tables as t
from accrual.console.config import ConsoleConfig
from accrual.console.domain.roles import Action, permissions_for
from accrual.console.services.inbox import apply_binding
from accrual.contract.errors import Conflict, Forbidden, Invalid, NotFound, Unavailable
from accrual.contract.messages import BindingCodeConfirmation, BindingCodeRequest, BindingCodeSent
from accrual.contract.ports import BillingCenterPort, PeerRefused, PeerUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Upgraded:
    """A workspace now on the commercial plan, bound to a billing account."""

    workspace_id: str
    billing_account_id: str
    settlement_method: str
    commercial_since: datetime


class PlanUpgrades:
    def __init__(self, engine: Engine, config: ConsoleConfig, clock: Clock,
                 billing: BillingCenterPort) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.billing = billing

    def _owned_free_workspace(self, account_id: str, workspace_id: str) -> Row[*tuple[Any, ...]]:
        w, m, a = t.workspaces, t.members, t.accounts
        with self.engine.connect() as conn:
            row = conn.execute(
                select(w.c.id, w.c.name, w.c.plan, w.c.status, w.c.language, m.c.role, a.c.email)
                .join(m, m.c.workspace_id == w.c.id).join(a, a.c.id == w.c.owner_account_id)
                .where(w.c.id == workspace_id, m.c.account_id == account_id)).first()
        if row is None:
            raise NotFound("workspace_not_found", f"no workspace {workspace_id} among yours")
        if not permissions_for(row.role).allows(Action.OWNER_ACTIONS):
            raise Forbidden("owner_only", "only the workspace owner may upgrade it")
        if row.plan != "free":
            raise Conflict("already_commercial", "the workspace is already commercial")
        if row.status != "active":
            raise Forbidden("workspace_not_active", f"the workspace is {row.status}")
        return row

    def request(self, account_id: str, workspace_id: str, username: str) -> BindingCodeSent:
        """Mail a binding code to the owner of billing account ``username``."""
        ws = self._owned_free_workspace(account_id, workspace_id)
        try:
            sent = self.billing.request_binding_code(BindingCodeRequest(
                workspace_id=workspace_id, site=self.config.site, workspace_name=ws.name,
                owner_email=ws.email, language=ws.language, username=username))
        except PeerRefused as refusal:
            kind = NotFound if refusal.code == "account_not_found" else Invalid
            raise kind(refusal.code, refusal.message) from None
        except PeerUnavailable:
            raise Unavailable("billing_unavailable", "the billing center cannot be reached; "
                              "try again") from None
        return sent

    def confirm(self, account_id: str, workspace_id: str, username: str, code: str) -> Upgraded:
        self._owned_free_workspace(account_id, workspace_id)
        try:
            change = self.billing.confirm_binding_code(BindingCodeConfirmation(
                workspace_id=workspace_id, username=username, code=code))
        except PeerRefused as refusal:
            kind = {"account_not_found": NotFound, "too_many_attempts": Forbidden}.get(
                refusal.code, Invalid)
            raise kind(refusal.code, refusal.message) from None
        except PeerUnavailable:
            raise Unavailable("billing_unavailable", "the billing center cannot be reached; "
                              "try again") from None
        now = self.clock.now()
        with self.engine.begin() as conn:
            apply_binding(conn, change, now)
        log.info("workspace %s upgraded: bound to %s", workspace_id, change.billing_account_id)
        return Upgraded(workspace_id, change.billing_account_id, change.settlement_method, now)
