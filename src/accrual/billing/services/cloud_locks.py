"""Workspaces locked because the cloud subscription that settled them was cancelled
(reference-billing.md §5.3–5.4, decisions.md 13).

A lock is a ``cloud_locks`` row and a ``workspace.lock`` message (reason
``marketplace``) to the workspace's console under the workspace's next version in
``workspace_lock_states``: the same counter the arrears cases use, so a console
applies the two kinds of state in the order they were decided. Such a state has no
arrears case (``case_id`` NULL): an arrears case never clears what it did not set.
Re-subscribing, another cloud account or the billing center unlock at once; an unlock
mails the workspace's owner and the paying billing account (``cloud_unlocked``, through
the mail outbox, once per unlock and recipient).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from accrual.billing.adapters import tables as t
from accrual.billing.services import mail_outbox as mails
from accrual.contract.messages import WORKSPACE_LOCK, Envelope, WorkspaceLock, message_id
from accrual.infra.outbox import enqueue

log = logging.getLogger(__name__)

LOCKED, CLEAR = "locked", "clear"


def is_locked(conn: Connection, workspace_id: str) -> bool:
    """Whether a cancelled subscription holds the workspace locked now."""
    k = t.cloud_locks
    return conn.execute(select(k.c.id).where(k.c.workspace_id == workspace_id,
                                             k.c.unlocked_at.is_(None)).limit(1)).first() \
        is not None


def lock(conn: Connection, workspace_ids: Iterable[str], cloud_account_id: str,
         account_id: str | None, now: datetime) -> list[str]:
    """Lock these workspaces for the cancellation of ``cloud_account_id``; those already
    locked for it are left as they are. Returns the ones locked now."""
    k = t.cloud_locks
    fresh = []
    for workspace_id in sorted(set(workspace_ids)):
        held = conn.execute(select(k.c.id).where(
            k.c.workspace_id == workspace_id, k.c.cloud_account_id == cloud_account_id,
            k.c.unlocked_at.is_(None))).first()
        if held is not None:
            continue
        conn.execute(k.insert().values(workspace_id=workspace_id,
                                       cloud_account_id=cloud_account_id, locked_at=now))
        _tell(conn, workspace_id, LOCKED, None, now, now, account_id)
        fresh.append(workspace_id)
    return fresh


def unlock(conn: Connection, workspace_id: str, reason: str, account_id: str | None,
           now: datetime) -> bool:
    """End the workspace's cloud locks (``reason``: resubscribed | cloud_account |
    billing_center); its console is told ``clear`` unless an open arrears case still
    holds it locked, which then owns the state again. True if it was locked."""
    k = t.cloud_locks
    held = conn.execute(select(k.c.id, k.c.cloud_account_id).where(
        k.c.workspace_id == workspace_id, k.c.unlocked_at.is_(None))
        .order_by(k.c.id)).all()
    if not held or not conn.execute(update(k).where(
            k.c.id.in_([row.id for row in held]), k.c.unlocked_at.is_(None))
            .values(unlocked_at=now, unlock_reason=reason)).rowcount:
        return False
    locks, cases = t.arrears_locks, t.arrears_cases
    arrears = conn.execute(
        select(cases.c.id, cases.c.lock_at).join(locks, locks.c.case_id == cases.c.id)
        .where(locks.c.workspace_id == workspace_id, locks.c.unlocked_at.is_(None),
               cases.c.open.is_(True)).limit(1)).first()
    if arrears is not None:
        _tell(conn, workspace_id, LOCKED, arrears.id, arrears.lock_at, now, account_id,
              reason="arrears")
    else:
        _tell(conn, workspace_id, CLEAR, None, None, now, account_id)
    _mail_unlocked(conn, workspace_id, held[-1].id, held[-1].cloud_account_id, reason,
                   account_id, still_locked=arrears is not None, now=now)
    log.info("workspace %s unlocked from its cancelled cloud subscription (%s)", workspace_id,
             reason)
    return True


def _mail_unlocked(conn: Connection, workspace_id: str, lock_id: int, cloud_account_id: str,
                   route: str, account_id: str | None, *, still_locked: bool,
                   now: datetime) -> None:
    """Tell the workspace's owner and the paying billing account, in the workspace's
    language; keyed by the (newest) lock ended, so one mail per unlock and recipient."""
    w, a, c = t.workspaces, t.accounts, t.cloud_accounts
    ws = conn.execute(select(w.c.name, w.c.language, w.c.owner_email)
                      .where(w.c.workspace_id == workspace_id)).first()
    if ws is None:
        log.error("workspace %s unlocked but not known here: nobody is mailed", workspace_id)
        return
    cloud = conn.execute(select(c.c.vendor, c.c.external_id)
                         .where(c.c.id == cloud_account_id)).one()
    payer = None if account_id is None else conn.execute(
        select(a.c.username, a.c.email).where(a.c.id == account_id)).first()
    recipients = [ws.owner_email]
    if payer is not None and payer.email.casefold() != ws.owner_email.casefold():
        recipients.append(payer.email)
    values = {"workspace_name": ws.name, "vendor": cloud.vendor,
              "cloud_account": cloud.external_id, "route": route,
              "username": None if payer is None else payer.username,
              "still_locked": still_locked}
    for recipient in recipients:
        mails.queue(conn, template="cloud_unlocked", language=ws.language,
                    recipient=recipient, values=values,
                    dedup_key=f"cloud-unlock/{lock_id}/{mails.recipient_key(recipient)}",
                    now=now)


def _tell(conn: Connection, workspace_id: str, state: str, case_id: int | None,
          lock_at: datetime | None, now: datetime, account_id: str | None,
          reason: str = "marketplace") -> None:
    """Record the workspace's new state under its next version and queue the message."""
    s, w = t.lock_states, t.workspaces
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    insert = dialect_insert(s).values(workspace_id=workspace_id, version=1, state=state,
                                      case_id=case_id, lock_at=lock_at, updated_at=now)
    version = conn.execute(insert.on_conflict_do_update(
        index_elements=[s.c.workspace_id],
        set_={"version": s.c.version + 1, "state": insert.excluded.state,
              "case_id": insert.excluded.case_id, "lock_at": insert.excluded.lock_at,
              "updated_at": insert.excluded.updated_at}).returning(s.c.version)).scalar_one()
    site = conn.execute(select(w.c.site).where(w.c.workspace_id == workspace_id)).scalar()
    if site is None:
        log.error("workspace %s is bound but not known here: its console cannot be told it "
                  "is %s", workspace_id, state)
        return
    payload = WorkspaceLock(workspace_id=workspace_id, state=state,
                            reason=reason,
                            lock_at=lock_at, billing_account_id=account_id)
    enqueue(conn, t.outbox, [Envelope(
        id=message_id(WORKSPACE_LOCK, workspace_id, version), type=WORKSPACE_LOCK,
        aggregate_id=workspace_id, aggregate_version=version, occurred_at=now, site=site,
        payload=payload.model_dump(mode="json"))], now)
