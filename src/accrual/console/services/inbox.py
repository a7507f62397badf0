"""Messages from the billing center, each applied at most once."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, Engine, case, insert, or_, select, update

from accrual.clock import Clock
from accrual.console.adapters import tables as t
from accrual.contract.messages import (
    BINDING_CHANGED,
    PROMOTION_DECIDED,
    WORKSPACE_LOCK,
    BindingChanged,
    Envelope,
    PromotionDecided,
    WorkspaceLock,
)
from accrual.infra.jobs import Job, describe
from accrual.infra.outbox import Delivered

log = logging.getLogger(__name__)


def apply_binding(conn: Connection, change: BindingChanged, now: datetime) -> None:
    """Take the billing center's binding as this console's own; repeatable."""
    w = t.workspaces
    values: dict[str, object] = {"billing_account_id": change.billing_account_id,
                                 "settlement_method": change.settlement_method, "plan": change.plan}
    plan = conn.execute(select(w.c.plan).where(w.c.id == change.workspace_id)).scalar()
    if plan == "free" and change.plan == "commercial":
        # An upgrade takes effect at once: usage from now on is billed.
        values["commercial_since"] = now
    conn.execute(update(w).where(w.c.id == change.workspace_id).values(**values))


def apply_lock(conn: Connection, lock: WorkspaceLock, version: int) -> bool:
    """Take the billing center's arrears state of a workspace, unless a newer one was
    applied already (messages may arrive out of order); True if applied.

    ``locked`` locks the workspace (admission and ingestion refuse its data); ``clear``
    makes it active again; ``countdown`` only shows the lock date. A dissolved workspace
    stays dissolved."""
    w = t.workspaces
    status = "locked" if lock.state == "locked" else "active"
    applied = conn.execute(update(w).where(
        w.c.id == lock.workspace_id,
        # One conditional statement: two deliveries racing cannot apply an older state last.
        or_(w.c.lock_version.is_(None), w.c.lock_version < version)).values(
        lock_version=version,
        lock_state=None if lock.state == "clear" else lock.state,
        lock_at=None if lock.state == "clear" else lock.lock_at,
        status=case((w.c.status == "dissolved", w.c.status), else_=status)))
    if not applied.rowcount:
        log.info("console inbox: %s state of workspace %s (version %d) is not newer than the "
                 "one applied, or the workspace is unknown; ignored", lock.state,
                 lock.workspace_id, version)
    return bool(applied.rowcount)


def apply_promotion(conn: Connection, decision: PromotionDecided) -> bool:
    """The paying account's answer to a raise to administrator: approved, the member is an
    administrator from now on; either way the request is done. An answer to a request
    that no longer stands (withdrawn, the member gone) changes nothing; True if applied."""
    m = t.members
    values: dict[str, object] = {"pending_role": None, "pending_request_id": None,
                                 "pending_since": None}
    if decision.approved:
        values |= {"role": m.c.pending_role, "custom_role_id": None}
    applied = conn.execute(update(m).where(
        m.c.workspace_id == decision.workspace_id, m.c.pending_request_id == decision.request_id,
        m.c.role != "owner").values(**values))
    if not applied.rowcount:
        log.info("console inbox: promotion request %s of workspace %s no longer stands; "
                 "its answer is ignored", decision.request_id, decision.workspace_id)
    return bool(applied.rowcount)


class ConsoleInbox:
    def __init__(self, engine: Engine, clock: Clock, name: str = "console inbox") -> None:
        self.engine = engine
        self.clock = clock
        self.job = Job(name, clock)

    def deliver(self, messages: Sequence[Envelope]) -> Delivered:
        """Apply messages in order, each at most once, one transaction each.

        A message that cannot be applied fails alone: it is answered as not applied
        (in ``failed``, with why) and the sender backs it off; the later messages of the
        same workspace in this delivery wait behind it (binding changes carry no
        version, so their order matters), every other message is applied."""
        applied: list[str] = []
        failed: dict[str, str] = {}
        blocked: dict[str, str] = {}  # aggregate → the message it waits behind
        for message in messages:
            unit = f"message/{message.id}"
            if message.aggregate_id in blocked:
                failed[message.id] = f"waits behind message {blocked[message.aggregate_id]}"
                self.job.unit_failed(unit, failed[message.id], code="waits_behind_failed")
                continue
            try:
                with self.engine.begin() as conn:
                    seen = conn.execute(select(t.inbox.c.message_id)
                                        .where(t.inbox.c.message_id == message.id)).first()
                    if seen is None:
                        self._apply(conn, message)
                        conn.execute(insert(t.inbox).values(
                            message_id=message.id, type=message.type,
                            applied_at=self.clock.now()))
            except Exception as error:  # noqa: BLE001 (contained to this message, reported)
                failed[message.id] = describe(error)
                blocked[message.aggregate_id] = message.id
                log.error("console inbox: message %s (%s, workspace %s) cannot be applied: %s",
                          message.id, message.type, message.aggregate_id, describe(error))
                self.job.unit_failed(unit, error)
                continue
            applied.append(message.id)
            self.job.unit_ok(unit)
        return Delivered(applied, failed)

    def _apply(self, conn: Connection, message: Envelope) -> None:
        if message.type == BINDING_CHANGED:
            apply_binding(conn, BindingChanged.model_validate(message.payload), self.clock.now())
        elif message.type == PROMOTION_DECIDED:
            apply_promotion(conn, PromotionDecided.model_validate(message.payload))
        elif message.type == WORKSPACE_LOCK:
            apply_lock(conn, WorkspaceLock.model_validate(message.payload),
                       message.aggregate_version)
        else:
            # Unknown types are acknowledged, not retried forever: a newer
            # billing center may announce things this console does not use.
            log.info("console inbox: ignoring message type %s", message.type)
