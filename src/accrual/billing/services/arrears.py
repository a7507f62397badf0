"""Arrears and locks (reference-billing.md §5, decisions.md 17–19).

An account is in arrears while its prepaid balance is below zero. The first
movement that leaves it there opens a *case*: a 14-day countdown (every
workspace the account pays for shows it), a reminder two days before its end,
then the lock of those workspaces: their consoles refuse new data. The movement
that brings the balance back to zero or above ends the case and unlocks them
at once, in the same transaction.

A workspace that is leaving the account (another account, or a cloud
marketplace's settlement, in force from the next billing day, decisions.md 11)
is released at once: by the change's own transaction (``release_workspace``) or
by the next tick. One that joins an account whose case is past its lock date is
locked from the day it joins.

Consoles learn a workspace's state (``countdown`` | ``locked`` | ``clear``) from
``workspace.lock`` messages in the billing outbox, each with the next version
of that workspace (``workspace_lock_states``), so a console never lets an older
state override a newer one. People learn it by mail (the billing mail outbox):
the account's address and each affected workspace owner's, once per case,
event and address.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, Integer, and_, false, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from accrual.billing.adapters import tables as t
from accrual.billing.config import BillingConfig
from accrual.billing.domain import settlement
from accrual.billing.services import mail_outbox as mails
from accrual.billing.services.accounts import BillingAccounts
from accrual.clock import Clock
from accrual.contract.messages import (
    WORKSPACE_LOCK,
    Envelope,
    WorkspaceLock,
    message_id,
)
from accrual.infra.bulk import among
from accrual.infra.db import in_transaction
from accrual.infra.jobs import Job, backoff
from accrual.infra.outbox import enqueue
from accrual.money import format_minor

log = logging.getLogger(__name__)

COUNTDOWN = timedelta(days=14)
REMIND_BEFORE = timedelta(days=2)
# An account whose case cannot be advanced is tried again after about 1, 2, 4 …
# minutes, at most an hour apart.
RETRY_BASE = timedelta(minutes=1)
RETRY_CAP = timedelta(hours=1)

COUNTDOWN_STATE, LOCKED, CLEAR = "countdown", "locked", "clear"
# The settlement method that pays from the account's own funds (and can leave it owing);
# a workspace settled through a cloud marketplace is not locked for the account's arrears.
BILLING_CENTER = "billing_center"


def open_case(conn: Connection, account_id: str) -> Any:
    """The account's open arrears case (a row), or None."""
    c = t.arrears_cases
    return conn.execute(select(c).where(c.c.account_id == account_id,
                                        c.c.open.is_(True))).first()


def local_time(instant: datetime, zone: ZoneInfo) -> str:
    """An instant as mails show it: the center's local time with its zone."""
    return instant.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def owed_minor(conn: Connection, account_id: str) -> int:
    """What the account owes now (0 when not in arrears); a plain read."""
    a = t.ledger_accounts
    balance = conn.execute(select(a.c.balance_minor).where(
        a.c.owner == account_id, a.c.kind == settlement.PREPAID)).scalar()
    return settlement.arrears(int(balance or 0))


class Arrears:
    def __init__(self, engine: Engine, config: BillingConfig, clock: Clock,
                 accounts: BillingAccounts, *, countdown: timedelta = COUNTDOWN,
                 remind_before: timedelta = REMIND_BEFORE) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.accounts = accounts
        self.countdown = countdown
        self.remind_before = remind_before
        self.job = Job("arrears tick", clock)

    # -- after every movement (in the caller's transaction) ---------------------

    def after_movement(self, conn: Connection, account_ids: Iterable[str | None]) -> None:
        """Called inside every transaction that may have changed the prepaid balance of
        these billing accounts (settlement of details, recharges, gateway credits), after
        the postings: opens a case when an account is newly negative, ends the open case
        (and unlocks at once) when it is no longer negative.

        The callers hold the accounts' row locks, so the balances read here stay put; one
        query answers for all the accounts, and nothing more runs unless one of them
        changes sides (this is on the path that settles a thousand details at a time).
        """
        wanted = {a for a in account_ids if a is not None}
        if not wanted:
            return
        a, c = t.ledger_accounts, t.arrears_cases
        rows = conn.execute(
            select(a.c.owner, a.c.balance_minor, c.c.id)
            .select_from(a.outerjoin(c, and_(c.c.account_id == a.c.owner, c.c.open.is_(True))))
            .where(a.c.kind == settlement.PREPAID, among(conn, a.c.owner, wanted))).all()
        changing = sorted((owner, int(balance), case_id) for owner, balance, case_id in rows
                          if (balance < 0) != (case_id is not None))
        if not changing:
            return
        now = self.clock.now()
        opening = {owner: -balance for owner, balance, case_id in changing if case_id is None}
        if opening:
            self._open(conn, opening, now)
        for _owner, _balance, case_id in changing:
            if case_id is not None:
                self._end(conn, case_id, now)

    def _open(self, conn: Connection, owed: dict[str, int], now: datetime) -> None:
        """Open a case for each of these accounts (account → amount owed), together: a
        day's settlement may put thousands of accounts in arrears at once. Every
        workspace they pay for is told ``countdown``; the countdown mails are queued."""
        c, s = t.arrears_cases, t.lock_states
        # RETURNING makes the driver send the rows in a few multi-row statements.
        conn.execute(c.insert().returning(c.c.id), [
            {"account_id": account_id, "started_at": now, "lock_at": now + self.countdown,
             "open": True} for account_id in sorted(owed)]).all()
        cases = conn.execute(select(c).where(among(conn, c.c.account_id, owed),
                                             c.c.open.is_(True)).order_by(c.c.id)).all()
        bound = self._bound_today(conn, owed)
        everyone = [w for workspaces in bound.values() for w in workspaces]
        if everyone and conn.dialect.name == "postgresql":
            # As _sync: whoever changes a workspace's state holds its row.
            conn.execute(select(s.c.workspace_id).where(among(conn, s.c.workspace_id, everyone))
                         .order_by(s.c.workspace_id).with_for_update()).all()
        self._tell_many(conn, [(case, dict.fromkeys(bound.get(case.account_id, []),
                                                    COUNTDOWN_STATE)) for case in cases], now)
        self._mail_many(conn, [(case, "countdown", bound.get(case.account_id, []),
                                owed[case.account_id]) for case in cases], now)

    def _end(self, conn: Connection, case_id: int, now: datetime) -> None:
        c, locks, s = t.arrears_cases, t.arrears_locks, t.lock_states
        # Conditional: a tick holding the case finishes first, and what it locked is
        # then unlocked here.
        if not conn.execute(update(c).where(c.c.id == case_id, c.c.open.is_(True)).values(
                open=None, ended_at=now, end_reason="settled")).rowcount:
            return
        case = conn.execute(select(c).where(c.c.id == case_id)).one()
        locked = sorted(conn.execute(select(locks.c.workspace_id).where(
            locks.c.case_id == case_id, locks.c.unlocked_at.is_(None))).scalars())
        told = sorted(conn.execute(select(s.c.workspace_id).where(
            s.c.case_id == case_id, s.c.state != CLEAR)).scalars())
        self._sync(conn, case, now)
        if locked:
            self._mail(conn, case, "unlocked", locked, 0, now)
        else:
            self._mail(conn, case, "settled", told, 0, now)

    # -- the clock: reminders, locks, and workspaces that changed accounts -------

    def tick(self) -> dict[str, int]:
        """Reminders and locks that fell due by the clock's now, and the workspaces whose
        binding moved them into or out of an open case. Idempotent; concurrent ticks (and
        movements) serialise on each case's row. Returns what it did."""
        now = self.clock.now()
        c, s = t.arrears_cases, t.lock_states
        done = {"reminded": 0, "locked": 0, "workspaces_changed": 0}
        with self.engine.connect() as conn:
            cases = conn.execute(select(c).where(c.c.open.is_(True)).order_by(c.c.id)).all()
            if not cases:
                return done
            bound = self._bound_today(conn, {case.account_id for case in cases})
            told: dict[str, tuple[int, str]] = {
                r.workspace_id: (r.case_id, r.state) for r in conn.execute(
                    select(s.c.workspace_id, s.c.case_id, s.c.state).where(or_(
                        among(conn, s.c.case_id, [case.id for case in cases], Integer()),
                        among(conn, s.c.workspace_id, [w for ws in bound.values() for w in ws]))))}
        for case in cases:
            due = case.locked_at is None and (now >= case.lock_at or (
                case.reminded_at is None and now >= case.lock_at - self.remind_before))
            state = LOCKED if case.locked_at is not None else COUNTDOWN_STATE
            desired = set(bound.get(case.account_id, ()))
            drifted = any(told.get(w) != (case.id, state) for w in desired) or any(
                case_id == case.id and st != CLEAR and w not in desired
                for w, (case_id, st) in told.items())
            unit = f"account/{case.account_id}"
            if (due or drifted) and self.job.due(unit, now):
                # One account that fails never stops the others' countdowns and locks:
                # it is recorded and tried again with backoff.
                try:
                    result = in_transaction(self.engine,
                                            lambda conn, i=case.id: self._advance(conn, i, now))
                except Exception as error:  # noqa: BLE001 (contained to this account)
                    done["failed"] = done.get("failed", 0) + 1  # only when some did
                    previous = self.job.failure(unit)
                    attempts = (previous.attempts if previous else 0) + 1
                    self.job.unit_failed(unit, error, attempts=attempts,
                                         next_attempt_at=now + backoff(attempts, RETRY_BASE,
                                                                       RETRY_CAP))
                    continue
                self.job.unit_ok(unit)
                for key, value in result.items():
                    done[key] += value
        return done

    def _advance(self, conn: Connection, case_id: int, now: datetime) -> dict[str, int]:
        c = t.arrears_cases
        query = select(c).where(c.c.id == case_id, c.c.open.is_(True))
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        case = conn.execute(query).first()
        if case is None:  # ended meanwhile
            return {}
        locking = case.locked_at is None and now >= case.lock_at
        # A tick that comes only after the lock date locks without reminding.
        reminding = (not locking and case.locked_at is None and case.reminded_at is None
                     and now >= case.lock_at - self.remind_before)
        if locking or reminding:
            conn.execute(update(c).where(c.c.id == case_id).values(
                **({"locked_at": now} if locking else {"reminded_at": now})))
            case = conn.execute(select(c).where(c.c.id == case_id)).one()
        bound, changes = self._sync(conn, case, now)
        owed = owed_minor(conn, case.account_id)
        if reminding:
            self._mail(conn, case, "reminder", bound, owed, now)
        newly_locked = sorted(w for w, state in changes.items() if state == LOCKED)
        if newly_locked:
            self._mail(conn, case, "locked", newly_locked, owed, now)
        return {"reminded": int(reminding), "locked": int(locking),
                "workspaces_changed": len(changes)}

    # -- workspaces: what they should show, and telling their consoles -----------

    def _sync(self, conn: Connection, case: Any, now: datetime
              ) -> tuple[list[str], dict[str, str]]:
        """Bring the workspaces of ``case`` to the state it gives them: while it is open,
        every workspace bound to its account today shows ``countdown`` (``locked`` once
        the case locked); the others it told something are told ``clear``. Records the
        locks and releases, tells the consoles what changed. Returns the workspaces bound
        and the changes (workspace → new state)."""
        s, locks = t.lock_states, t.arrears_locks
        bound = self._bound_today(conn, [case.account_id]).get(case.account_id, []) \
            if case.open else []
        state = LOCKED if case.locked_at is not None else COUNTDOWN_STATE
        query = select(s).where(or_(among(conn, s.c.workspace_id, bound) if bound else false(),
                                    s.c.case_id == case.id)).order_by(s.c.workspace_id)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        current = {r.workspace_id: r for r in conn.execute(query)}
        changes: dict[str, str] = {}
        for workspace_id in bound:
            row = current.get(workspace_id)
            if row is None or row.case_id != case.id or row.state != state:
                changes[workspace_id] = state
        for workspace_id, row in current.items():
            if workspace_id not in bound and row.case_id == case.id and row.state != CLEAR:
                changes[workspace_id] = CLEAR
        if case.locked_at is not None:
            held = dict(conn.execute(select(locks.c.workspace_id, locks.c.unlocked_at)
                                     .where(locks.c.case_id == case.id)).all())
            fresh = [w for w in bound if w not in held]
            if fresh:
                conn.execute(locks.insert(), [{"case_id": case.id, "workspace_id": w,
                                               "locked_at": now} for w in fresh])
            # A workspace that left and came back within the case is locked again.
            back = [w for w in bound if w in held and held[w] is not None]
            released = [w for w, unlocked_at in held.items()
                        if unlocked_at is None and w not in bound]
            for ids, values in ((back, {"locked_at": now, "unlocked_at": None}),
                                (released, {"unlocked_at": now})):
                if ids:
                    conn.execute(update(locks).where(locks.c.case_id == case.id,
                                                     among(conn, locks.c.workspace_id, ids))
                                 .values(**values))
        if changes:
            self._tell(conn, case, changes, now)
        return bound, changes

    def _tell(self, conn: Connection, case: Any, changes: dict[str, str],
              now: datetime) -> None:
        self._tell_many(conn, [(case, changes)], now)

    def _tell_many(self, conn: Connection, told: list[tuple[Any, dict[str, str]]],
                   now: datetime) -> None:
        """Record each workspace's new state under its next version and queue the
        ``workspace.lock`` message to its console; (case, {workspace: state}) pairs."""
        s, w = t.lock_states, t.workspaces
        rows = [{"workspace_id": workspace_id, "version": 1, "state": state,
                 "case_id": case.id, "lock_at": None if state == CLEAR else case.lock_at,
                 "updated_at": now, "account": case.account_id}
                for case, changes in told for workspace_id, state in sorted(changes.items())]
        if not rows:
            return
        sites = dict(conn.execute(select(w.c.workspace_id, w.c.site).where(
            among(conn, w.c.workspace_id, {r["workspace_id"] for r in rows}))).all())
        dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        insert = dialect_insert(s)
        # executemany (compiled once, batched by the driver), each row's new version back.
        versions = dict(conn.execute(insert.on_conflict_do_update(
            index_elements=[s.c.workspace_id],
            set_={"version": s.c.version + 1, "state": insert.excluded.state,
                  "case_id": insert.excluded.case_id, "lock_at": insert.excluded.lock_at,
                  "updated_at": insert.excluded.updated_at})
            .returning(s.c.workspace_id, s.c.version, sort_by_parameter_order=True),
            [{k: v for k, v in r.items() if k != "account"} for r in rows]).all())
        envelopes = []
        for row in rows:
            workspace_id, state = row["workspace_id"], row["state"]
            site = sites.get(workspace_id)
            if site is None:
                log.error("workspace %s is bound but not known here: its console cannot be "
                          "told it is %s", workspace_id, state)
                continue
            version = versions[workspace_id]
            lock = WorkspaceLock(workspace_id=workspace_id, state=state,
                                 lock_at=row["lock_at"], billing_account_id=row["account"])
            envelopes.append(Envelope(
                id=message_id(WORKSPACE_LOCK, workspace_id, version), type=WORKSPACE_LOCK,
                aggregate_id=workspace_id, aggregate_version=version, occurred_at=now,
                site=site, payload=lock.model_dump(mode="json")))
        enqueue(conn, t.outbox, envelopes, now)

    def _bound_today(self, conn: Connection, account_ids: Iterable[str]) -> dict[str, list[str]]:
        """The workspaces each account pays for from its own funds, today and onwards: the
        binding in force today (``BillingAccounts.binding_for``) and the newest one (a
        change takes effect tomorrow) both name the account and the billing center, not
        a cloud marketplace. So a workspace that is leaving (another account, another
        method) is released at once (decisions.md 18), one that is joining is locked from
        the day it joins; a dissolved one is no longer counted. One query for every
        workspace ever bound to these accounts; sorted."""
        account_ids = set(account_ids)
        if not account_ids:
            return {}
        b, w = t.bindings, t.workspaces
        ever = select(b.c.workspace_id).where(among(conn, b.c.account_id, account_ids))
        dissolved = select(w.c.workspace_id).where(w.c.dissolved_at.is_not(None))
        today = self.accounts.today()
        in_force: dict[str, tuple[str, str]] = {}
        newest: dict[str, tuple[str, str]] = {}
        for workspace_id, effective_from, account_id, method in conn.execute(
                select(b.c.workspace_id, b.c.effective_from, b.c.account_id,
                       b.c.settlement_method)
                .where(b.c.workspace_id.in_(ever), b.c.workspace_id.not_in(dissolved))
                .order_by(b.c.workspace_id, b.c.effective_from)):
            payer = (str(account_id), method)
            # The latest binding in force today, else the first one (see binding_for).
            if effective_from <= today or workspace_id not in in_force:
                in_force[workspace_id] = payer
            newest[workspace_id] = payer
        found: dict[str, list[str]] = {}
        for workspace_id, (account_id, method) in sorted(in_force.items()):
            if account_id in account_ids and method == BILLING_CENTER \
                    and newest[workspace_id] == (account_id, method):
                found.setdefault(account_id, []).append(workspace_id)
        return found

    def release_workspace(self, conn: Connection, workspace_id: str, reason: str) -> bool:
        """In the caller's transaction, after it changed the workspace's binding or
        settlement method so that the account in arrears no longer pays for it: the open
        case that told it something tells it ``clear`` now (and a lock ends) instead of at
        the next tick. True if the workspace was locked."""
        s, locks, c = t.lock_states, t.arrears_locks, t.arrears_cases
        was = conn.execute(select(s.c.case_id, s.c.state)
                           .where(s.c.workspace_id == workspace_id)).first()
        case_ids = set(conn.execute(select(locks.c.case_id).where(
            locks.c.workspace_id == workspace_id, locks.c.unlocked_at.is_(None))).scalars())
        if was is not None and was.state != CLEAR:
            case_ids.add(was.case_id)
        released = False
        now = self.clock.now()
        for case_id in sorted(case_ids):
            query = select(c).where(c.c.id == case_id, c.c.open.is_(True))
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()
            case = conn.execute(query).first()
            if case is None:
                continue
            _, changes = self._sync(conn, case, now)
            released |= changes.get(workspace_id) == CLEAR
        unlocked = released and was is not None and was.state == LOCKED
        if released:
            log.info("workspace %s released from arrears case(s) %s (%s)", workspace_id,
                     sorted(case_ids), reason)
        return unlocked

    # -- mail -----------------------------------------------------------------

    def _mail(self, conn: Connection, case: Any, event: str, workspace_ids: list[str],
              owed: int, now: datetime) -> None:
        self._mail_many(conn, [(case, event, workspace_ids, owed)], now)

    def _mail_many(self, conn: Connection, events: list[tuple[Any, str, list[str], int]],
                   now: datetime) -> None:
        """Queue the ``event`` mail of each case to its account and to the owners of these
        workspaces, once per address: the account's in its language listing them all,
        each other owner in their workspace's language listing theirs."""
        if not events:
            return
        a, w = t.accounts, t.workspaces
        holders = {r.id: r for r in conn.execute(
            select(a.c.id, a.c.username, a.c.email, a.c.language)
            .where(among(conn, a.c.id, {case.account_id for case, *_ in events})))}
        ids = {x for _, _, workspace_ids, _ in events for x in workspace_ids}
        known = {r.workspace_id: r for r in conn.execute(
            select(w.c.workspace_id, w.c.name, w.c.owner_email, w.c.language)
            .where(among(conn, w.c.workspace_id, ids)))} if ids else {}
        queued: list[dict[str, object]] = []
        for case, event, workspace_ids, owed in events:
            account = holders[case.account_id]
            rows = sorted((known[x] for x in workspace_ids if x in known),
                          key=lambda r: (r.name, r.workspace_id))
            recipients: dict[str, tuple[str, str, list[str]]] = {
                account.email.lower(): (account.email, account.language, [r.name for r in rows])}
            for row in rows:
                address = row.owner_email.lower()
                if address not in recipients:
                    recipients[address] = (row.owner_email, row.language, [])
                if address != account.email.lower():
                    recipients[address][2].append(row.name)
            values = {"username": account.username, "currency": self.config.currency,
                      "amount": format_minor(owed, self.config.currency),
                      "lock_at": local_time(case.lock_at, self.config.zone)}
            for address, (recipient, language, names) in recipients.items():
                queued.append({
                    "template": event, "language": language, "recipient": recipient,
                    "values": {**values, "workspaces": names},
                    "dedup_key": f"arrears/{case.id}/{event}/{mails.recipient_key(address)}"})
        mails.queue_many(conn, queued, now)

    # -- views ----------------------------------------------------------------

    def cases(self, *, account_id: str | None = None) -> list[dict[str, object]]:
        """Open cases (of one account, or all) with what each workspace was told."""
        c, s, w, a = t.arrears_cases, t.lock_states, t.workspaces, t.accounts
        with self.engine.connect() as conn:
            query = (select(c, a.c.username).join(a, a.c.id == c.c.account_id)
                     .where(c.c.open.is_(True)).order_by(c.c.lock_at, c.c.id))
            if account_id is not None:
                query = query.where(c.c.account_id == account_id)
            cases = conn.execute(query).all()
            told: dict[int, list[dict[str, object]]] = {}
            if cases:
                for row in conn.execute(
                        select(s.c.case_id, s.c.workspace_id, s.c.state, w.c.name, w.c.site)
                        .outerjoin(w, w.c.workspace_id == s.c.workspace_id)
                        .where(among(conn, s.c.case_id, [k.id for k in cases], Integer()),
                               s.c.state != CLEAR)
                        .order_by(s.c.workspace_id)):
                    told.setdefault(row.case_id, []).append(
                        {"workspace_id": row.workspace_id, "name": row.name, "site": row.site,
                         "state": row.state})
            owed = {k.account_id: owed_minor(conn, k.account_id) for k in cases}
        return [{"case_id": k.id, "account_id": k.account_id, "username": k.username,
                 "state": LOCKED if k.locked_at else COUNTDOWN_STATE,
                 "owed": format_minor(owed[k.account_id], self.config.currency),
                 "currency": self.config.currency, "started_at": k.started_at.isoformat(),
                 "lock_at": k.lock_at.isoformat(),
                 "reminded_at": k.reminded_at.isoformat() if k.reminded_at else None,
                 "locked_at": k.locked_at.isoformat() if k.locked_at else None,
                 "workspaces": told.get(k.id, [])} for k in cases]

    def of_account(self, account_id: str) -> dict[str, object]:
        """The account's arrears as its holder sees them: none, or the open case."""
        self.accounts.account(account_id)
        found = self.cases(account_id=account_id)
        if not found:
            return {"account_id": account_id, "state": "none", "case": None}
        return {"account_id": account_id, "state": found[0]["state"], "case": found[0]}
