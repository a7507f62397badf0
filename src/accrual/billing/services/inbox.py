"""The billing center's inbox: messages from console sites, each applied once.

Billing details are settled through :class:`Movements` (``settling``, many in one
transaction; the arrears rule follows every settlement); workspace events keep the
center's view of the workspaces current.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import Connection, Engine, insert, select, update

from accrual.billing.adapters import tables as t
from accrual.billing.config import BillingConfig
from accrual.billing.services.accounts import BillingAccounts
from accrual.billing.services.activated_workspaces import ActivatedWorkspaces
from accrual.billing.services.arrears import Arrears
from accrual.billing.services.movements import Movements
from accrual.billing.services.promotions import Promotions
from accrual.clock import Clock
from accrual.contract.errors import NotFound, ServiceError
from accrual.contract.messages import (
    BILLING_DETAIL,
    PROMOTION_REQUESTED,
    PROMOTION_WITHDRAWN,
    WORKSPACE_CREATED,
    WORKSPACE_DISSOLVED,
    ActivatedWorkspace,
    Envelope,
    PromotionRequested,
    PromotionWithdrawn,
    RegistrationConfirmation,
    WorkspaceCreated,
    WorkspaceDissolved,
)
from accrual.infra.db import in_transaction
from accrual.infra.jobs import Job, describe
from accrual.infra.outbox import Delivered

log = logging.getLogger(__name__)

# At most this many billing details are settled in one inbox transaction.
SETTLE_BATCH = 1000


class BillingInbox:
    def __init__(self, engine: Engine, config: BillingConfig, clock: Clock,
                 accounts: BillingAccounts, arrears: Arrears, movements: Movements,
                 activated_workspaces: ActivatedWorkspaces | None = None,
                 promotions: Promotions | None = None) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.accounts = accounts
        self.activated_workspaces = activated_workspaces or ActivatedWorkspaces(
            engine, config, clock, accounts)
        self.arrears = arrears
        self.movements = movements
        self.promotions = promotions or Promotions(engine, clock, accounts)
        # Messages from console sites that could not be applied (the inbox's failures).
        self.job = Job("billing inbox", clock)

    def deliver(self, messages: Sequence[Envelope]) -> Delivered:
        """Apply messages in order, each exactly once (the inbox keeps the applied ids).

        Consecutive billing details are settled together, up to ``SETTLE_BATCH`` in one
        transaction; each still gets its own inbox row, its own journal entry (idempotency
        key ``detail/<id>``) and its own charge line, settled in message order against the
        balances the ones before it left. Should such a transaction fail, its details are
        applied again one transaction each, as every other message is.

        A message that cannot be applied fails alone: the others of the delivery are
        applied, and it is answered as not applied (in ``failed``, with why), so that the
        sender backs it off and tries it again; an adjustment of a detail that failed
        here waits for it. Recorded in the inbox job (``job``).
        """
        applied: list[str] = []
        failed: dict[str, str] = {}
        run: list[Envelope] = []

        def flush() -> None:
            if run:
                self._apply_details(run, applied, failed)
                run.clear()

        for message in messages:
            if message.type == BILLING_DETAIL:
                run.append(message)
                if len(run) >= SETTLE_BATCH:
                    flush()
                continue
            flush()
            self._apply_alone(message, applied, failed)
        flush()
        return Delivered(applied, failed)

    def _apply_details(self, messages: Sequence[Envelope], applied: list[str],
                       failed: dict[str, str]) -> None:
        if len(messages) > 1 and not (failed and any(
                m.payload.get("adjusts") in failed for m in messages)):
            try:
                in_transaction(self.engine, lambda conn: self._settle(conn, messages))
            except Exception as error:  # noqa: BLE001 (replayed one by one below)
                log.warning("billing inbox: settling %d details together failed (%s); "
                            "applying them one by one", len(messages), error)
            else:
                applied.extend(m.id for m in messages)
                if self.job.failing:
                    self.job.units_ok([f"message/{m.id}" for m in messages])
                return
        for message in messages:
            self._apply_alone(message, applied, failed)

    def _apply_alone(self, message: Envelope, applied: list[str],
                     failed: dict[str, str]) -> None:
        """One message in a transaction of its own; a failure is recorded, not raised."""
        unit = f"message/{message.id}"
        adjusts = message.payload.get("adjusts") if message.type == BILLING_DETAIL else None
        if adjusts is not None and adjusts in failed:
            failed[message.id] = f"waits for the detail it adjusts ({adjusts}), which failed"
            self.job.unit_failed(unit, failed[message.id], code="waits_for_adjusted")
            return
        try:
            in_transaction(self.engine, lambda conn: self._apply_once(conn, message))
        except Exception as error:  # noqa: BLE001 (contained to this message, reported)
            failed[message.id] = describe(error)
            log.error("billing inbox: message %s (%s, aggregate %s) cannot be applied: %s",
                      message.id, message.type, message.aggregate_id, describe(error))
            self.job.unit_failed(unit, error)
            return
        applied.append(message.id)
        self.job.unit_ok(unit)

    def _settle(self, conn: Connection, messages: Sequence[Envelope]) -> None:
        self.movements.settle(conn, messages, self.config.currency, self.clock.now())

    def _apply_once(self, conn: Connection, message: Envelope) -> None:
        if message.type == BILLING_DETAIL:
            self._settle(conn, [message])  # keeps its own inbox row
            return
        if conn.execute(select(t.inbox.c.message_id)
                        .where(t.inbox.c.message_id == message.id)).first() is not None:
            return
        if message.type == WORKSPACE_CREATED:
            self._workspace_created(conn, WorkspaceCreated.model_validate(message.payload))
        elif message.type == WORKSPACE_DISSOLVED:
            self._workspace_dissolved(conn, WorkspaceDissolved.model_validate(message.payload))
        elif message.type == PROMOTION_REQUESTED:
            self.promotions.receive_in(conn, PromotionRequested.model_validate(message.payload))
        elif message.type == PROMOTION_WITHDRAWN:
            Promotions.withdraw_in(conn, PromotionWithdrawn.model_validate(message.payload))
        else:
            log.info("billing inbox: ignoring message type %s", message.type)
        conn.execute(insert(t.inbox).values(message_id=message.id, type=message.type,
                                            applied_at=self.clock.now()))

    def _workspace_dissolved(self, conn: Connection, event: WorkspaceDissolved) -> None:
        w = t.workspaces
        conn.execute(update(w).where(w.c.workspace_id == event.workspace_id,
                                     w.c.dissolved_at.is_(None))
                     .values(dissolved_at=event.dissolved_at))
        # Its arrears case stops counting it; what the account owes stays owed.
        self.arrears.release_workspace(conn, event.workspace_id, "dissolved")

    def _workspace_created(self, conn: Connection, event: WorkspaceCreated) -> None:
        if event.registration_key and event.day:
            try:
                # Confirming is idempotent: the direct call may have done it already.
                self.accounts.confirm_in(conn, event.registration_key, RegistrationConfirmation(
                    workspace_id=event.workspace_id, site=event.site, workspace_name=event.name,
                    owner_email=event.owner_email, language=event.language, day=event.day))
            except NotFound:
                log.error("workspace %s: its registration expired before it was confirmed",
                          event.workspace_id)
        if event.activation_id and event.day:
            try:
                # Idempotent too: the direct call may have bound it already.
                self.activated_workspaces.bind_in(conn, ActivatedWorkspace(
                    activation_id=event.activation_id, workspace_id=event.workspace_id,
                    site=event.site, workspace_name=event.name, owner_email=event.owner_email,
                    language=event.language, day=event.day, created_at=event.created_at))
            except ServiceError as refusal:
                # Its console checked the activation first: this is not a passing fault,
                # and retrying the message would not change it.
                log.error("workspace %s made through activation %s cannot be bound: %s (%s)",
                          event.workspace_id, event.activation_id, refusal.code,
                          refusal.message)
        self.accounts.remember_workspace_in(conn, event.workspace_id, event.site, event.name,
                                          event.owner_email, event.language, self.clock.now())
