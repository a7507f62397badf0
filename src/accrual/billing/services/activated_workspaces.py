"""A new workspace made on a console through a marketplace activation that a billing
account claimed (reference-billing.md §1.6 rule 4, §6.1: "creates a new workspace
(existing console account)").

Two calls from the console, as registration makes, but nothing needs reserving: a
claimed activation may make several workspaces until it expires (its cloud account
settles many anyway), so

1. :meth:`ActivatedWorkspaces.check` only answers whether the activation may be used now
   and how the workspace will be bound; it stores nothing, so a console that fails
   afterwards leaves nothing behind here;
2. the console commits the workspace (commercial, bound as answered) with its
   ``workspace.created`` message, then :meth:`ActivatedWorkspaces.bind` binds it from its
   first day: to the billing account that claimed the activation, settling through the
   vendor by the activation's cloud account, activated from that vendor (which then
   settles only through it, ``domain.methods.allowed``). It is repeatable, and the
   message delivered later does the same when the direct call failed. The activation is
   judged as at the moment the console made the workspace, so a late delivery still
   binds it.

Why an expired activation refuses even when claimed (binding existing workspaces to a
claimed one does not expire): the activation id is all the console presents, with no
billing-account sign-in, so it opens this door only for its hour.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from accrual.billing.adapters import tables as t
from accrual.billing.config import BillingConfig
from accrual.billing.domain import methods as rules
from accrual.billing.services import activation_records
from accrual.billing.services.accounts import BillingAccounts
from accrual.clock import Clock
from accrual.contract.errors import Conflict, Forbidden
from accrual.contract.messages import (
    BINDING_CHANGED,
    ActivatedWorkspace,
    ActivationCheck,
    ActivationGrant,
    BindingChanged,
    Envelope,
    message_id,
)
from accrual.infra.db import in_transaction
from accrual.infra.outbox import enqueue

log = logging.getLogger(__name__)


class ActivatedWorkspaces:
    def __init__(self, engine: Engine, config: BillingConfig, clock: Clock,
                 accounts: BillingAccounts) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.accounts = accounts

    def check(self, request: ActivationCheck) -> ActivationGrant:
        """How a workspace made now through this activation is bound; stores nothing.
        Refused: 403 ``activation_not_yours`` (the console account's e-mail is not the
        claiming billing account's); 404 ``activation_not_found``; 409 ``activation_expired``,
        ``activation_not_claimed`` (nobody claimed it yet), ``activation_used`` (a
        registration holds it), ``subscription_ended``."""
        with self.engine.connect() as conn:
            activation = activation_records.load(conn, request.activation_id)
            cloud = _usable(conn, activation, self.clock.now())
            claimed_by = conn.execute(select(t.accounts.c.email).where(
                t.accounts.c.id == activation.account_id)).scalar()
        # The activation id alone would let anyone who saw it bill that account: only the
        # claiming account's own person (same e-mail) makes workspaces through it.
        if claimed_by is None or claimed_by.strip().lower() != request.email.strip().lower():
            raise Forbidden("activation_not_yours",
                            "this activation was claimed by a billing account with another "
                            "e-mail address: sign in to the console with that address, or "
                            "bind the workspace from the billing center")
        return ActivationGrant(billing_account_id=activation.account_id,
                               settlement_method=cloud.vendor, cloud_account_id=cloud.id,
                               expires_at=activation.expires_at)

    def bind(self, workspace: ActivatedWorkspace) -> BindingChanged:
        return in_transaction(self.engine, lambda conn: self.bind_in(conn, workspace))

    def bind_in(self, conn: Connection, workspace: ActivatedWorkspace) -> BindingChanged:
        """Bind ``workspace`` from its first day through the activation, in the caller's
        transaction; a workspace already bound is answered with its binding (a repeat).
        Should its subscription have ended since the check, the workspace still exists
        on its console: it is bound to the same account by the billing center."""
        now = self.clock.now()
        # Loaded first: on PostgreSQL the row lock orders a direct call and a delivery.
        activation = activation_records.load(conn, workspace.activation_id)
        self.accounts.remember_workspace_in(conn, workspace.workspace_id, workspace.site,
                                            workspace.workspace_name, workspace.owner_email,
                                            workspace.language, now)
        bound = self.accounts.binding_in_force(conn, workspace.workspace_id, workspace.day)
        if bound is not None:
            return BindingChanged(workspace_id=workspace.workspace_id,
                                  billing_account_id=bound.account_id,
                                  settlement_method=bound.settlement_method,
                                  effective_from=bound.effective_from)
        try:
            cloud = _usable(conn, activation, workspace.created_at)
            method, cloud_account_id = str(cloud.vendor), str(cloud.id)
        except Conflict as refusal:
            if refusal.code != "subscription_ended":
                raise
            log.warning("workspace %s: the subscription of activation %s ended since the "
                        "check; it settles by the billing center", workspace.workspace_id,
                        activation.id)
            method, cloud_account_id = rules.BILLING_CENTER, None
        account_id = str(activation.account_id)
        conn.execute(insert(t.bindings).values(
            workspace_id=workspace.workspace_id, account_id=account_id,
            settlement_method=method, cloud_account_id=cloud_account_id,
            effective_from=workspace.day, created_at=now))
        if cloud_account_id is not None:
            conn.execute(update(t.workspaces)
                         .where(t.workspaces.c.workspace_id == workspace.workspace_id)
                         .values(activated_via=method))
        change = BindingChanged(workspace_id=workspace.workspace_id,
                                billing_account_id=account_id, settlement_method=method,
                                effective_from=workspace.day)
        enqueue(conn, t.outbox, [Envelope(
            id=message_id(BINDING_CHANGED, workspace.workspace_id, workspace.day, account_id,
                          method),
            type=BINDING_CHANGED, aggregate_id=workspace.workspace_id, occurred_at=now,
            site=workspace.site, payload=change.model_dump(mode="json"))], now)
        log.info("workspace %s made through activation %s: bound to %s, settling by %s",
                 workspace.workspace_id, activation.id, account_id, method)
        return change


def _usable(conn: Connection, activation: Any, at: datetime) -> Any:
    """The activation's cloud account, once sure a new workspace made at ``at`` may be
    bound through it: the activation is claimed (completed by a billing account) and was
    not expired then, its subscription has not ended."""
    if activation.completed_at is None:
        if activation.account_id is not None:
            raise Conflict("activation_used",
                           "a registration in progress holds this marketplace activation; "
                           "finish that registration, or open the product in the "
                           "marketplace again")
        if activation.expires_at <= at:
            raise Conflict("activation_expired",
                           "this marketplace activation expired; open the product in the "
                           "marketplace again to be sent back here")
        raise Conflict("activation_not_claimed",
                       "no billing account has claimed this marketplace activation: sign in "
                       "to your billing account in the billing center and claim it "
                       f"(POST /billing/v1/marketplaces/activations/{activation.id}/claim), "
                       "then create the workspace again")
    if activation.expires_at <= at:
        raise Conflict("activation_expired",
                       "this marketplace activation expired for new workspaces; open the "
                       "product in the marketplace again, or bind an existing workspace to "
                       "the subscription from the billing center")
    return activation_records.check_free_for(conn, activation, activation.account_id, at)
