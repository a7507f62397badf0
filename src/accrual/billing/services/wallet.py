"""Cash recharges, settlement of billing details, and the balance overview."""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import Connection, Engine, bindparam, func, insert, select, update

from accrual.billing.adapters import tables as t
from accrual.billing.config import BillingConfig
from accrual.billing.domain import settlement
from accrual.billing.services import ledger
from accrual.billing.services.accounts import BillingAccounts
from accrual.billing.services.arrears import Arrears
from accrual.clock import Clock
from accrual.contract.errors import Conflict, Invalid, NotFound
from accrual.contract.messages import (
    BILLING_DETAIL,
    WORKSPACE_CREATED,
    BillingDetail,
    Envelope,
    RegistrationConfirmation,
    WorkspaceCreated,
)
from accrual.infra.bulk import among, insert_rows
from accrual.infra.db import in_transaction
from accrual.money import format_minor, parse_amount, to_decimal, to_minor

log = logging.getLogger(__name__)

# At most this many billing details are settled in one inbox transaction.
SETTLE_BATCH = 1000


class Wallet:
    def __init__(self, engine: Engine, config: BillingConfig, clock: Clock,
                 accounts: BillingAccounts, arrears: Arrears) -> None:
        self.engine = engine
        self.arrears = arrears
        self.config = config
        self.clock = clock
        self.accounts = accounts

    def recharge(self, account_id: str, amount: object, reference: str) -> dict[str, object]:
        """An offline transfer credited by the operator; one credit per reference."""
        currency = self.config.currency
        amount_minor = parse_amount(amount, currency)
        if not isinstance(reference, str) or not 1 <= len(reference) <= 128:
            raise Invalid("invalid_reference", "reference must be 1 to 128 characters")
        self.accounts.account(account_id)

        def work(conn: Connection) -> dict[str, object]:
            posted = ledger.post(
                conn, owner=account_id, key=f"recharge/{account_id}/{reference}",
                request_digest=ledger.digest(amount_minor), kind="recharge", reference=reference,
                now=self.clock.now(),
                compute=lambda b: settlement.recharge(amount_minor, b[settlement.PREPAID]))
            self.arrears.after_movement(conn, [account_id])
            return {"entry_id": posted.entry_id, "created": posted.created,
                    "amount": format_minor(amount_minor, currency), "reference": reference,
                    **self._overview(conn, account_id)}

        return in_transaction(self.engine, work)

    def overview(self, account_id: str) -> dict[str, str]:
        self.accounts.account(account_id)
        with self.engine.connect() as conn:
            return self._overview(conn, account_id)

    def _overview(self, conn: Connection, account_id: str) -> dict[str, str]:
        currency = self.config.currency
        balances = ledger.balances(conn, account_id)
        zero = format_minor(0, currency)
        return {"currency": currency,
                "cash": format_minor(balances.get(settlement.CASH, 0), currency),
                "vouchers": zero, "prepaid_cards": zero,
                "arrears": format_minor(settlement.arrears(balances.get(settlement.PREPAID, 0)),
                                        currency)}

    # -- the inbox: messages from console sites ------------------------------

    def deliver(self, messages: Sequence[Envelope]) -> list[str]:
        """Apply messages in order, each exactly once (the inbox keeps the applied ids).

        Consecutive billing details are settled together, up to ``SETTLE_BATCH`` in one
        transaction; each still gets its own inbox row, its own journal entry (idempotency
        key ``detail/<id>``) and its own charge line, settled in message order against the
        balances the ones before it left. Should such a transaction fail, its details are
        applied again one transaction each, as every other message is: a detail that cannot
        be applied then stops the delivery exactly where it stands.
        """
        applied: list[str] = []
        run: list[Envelope] = []

        def flush() -> None:
            if run:
                self._apply_details(run)
                applied.extend(m.id for m in run)
                run.clear()

        for message in messages:
            if message.type == BILLING_DETAIL:
                run.append(message)
                if len(run) >= SETTLE_BATCH:
                    flush()
                continue
            flush()
            in_transaction(self.engine, lambda conn, m=message: self._apply_once(conn, m))
            applied.append(message.id)
        flush()
        return applied

    def _apply_details(self, messages: Sequence[Envelope]) -> None:
        if len(messages) > 1:
            try:
                in_transaction(self.engine, lambda conn: self._settle_batch(conn, messages))
                return
            except Exception as error:  # noqa: BLE001 (replayed one by one below)
                log.warning("billing inbox: settling %d details together failed (%s); "
                            "applying them one by one", len(messages), error)
        for message in messages:
            in_transaction(self.engine, lambda conn, m=message: self._apply_once(conn, m))

    def _apply_once(self, conn: Connection, message: Envelope) -> None:
        if conn.execute(select(t.inbox.c.message_id)
                        .where(t.inbox.c.message_id == message.id)).first() is not None:
            return
        if message.type == BILLING_DETAIL:
            self._settle(conn, BillingDetail.model_validate(message.payload))
        elif message.type == WORKSPACE_CREATED:
            self._workspace_created(conn, WorkspaceCreated.model_validate(message.payload))
        else:
            log.info("billing inbox: ignoring message type %s", message.type)
        conn.execute(insert(t.inbox).values(message_id=message.id, type=message.type,
                                            applied_at=self.clock.now()))

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
        self.accounts.remember_workspace_in(conn, event.workspace_id, event.site, event.name,
                                          event.owner_email, event.language, self.clock.now())

    def _settle(self, conn: Connection, detail: BillingDetail) -> None:
        currency = self.config.currency
        if detail.currency != currency:
            log.error("detail %s in %s reached the %s billing center; left unrouted",
                      detail.id, detail.currency, currency)
        amount_minor = to_minor(to_decimal(detail.amount), detail.currency)
        account_id = self.accounts.binding_for(conn, detail.workspace_id, detail.day)
        if account_id is not None and detail.billing_account_id not in (None, account_id):
            # decisions.md 12: our binding table decides; the mismatch is only logged.
            log.warning("detail %s: console named account %s, binding says %s", detail.id,
                        detail.billing_account_id, account_id)
        entry_id = None
        routed = account_id is not None and detail.currency == currency
        if routed and amount_minor != 0:
            assert account_id is not None
            compute = (
                (lambda b: settlement.charge(amount_minor, b[settlement.CASH])) if amount_minor > 0
                else (lambda b: settlement.refund(-amount_minor, b[settlement.PREPAID])))
            entry_id = ledger.post(
                conn, owner=account_id, key=f"detail/{detail.id}",
                request_digest=ledger.digest(amount_minor), kind=detail.kind,
                reference=detail.id, now=self.clock.now(), compute=compute).entry_id
        elif not routed:
            log.warning("detail %s for workspace %s on %s has no binding: left unrouted",
                        detail.id, detail.workspace_id, detail.day)
        conn.execute(insert(t.charges).values(
            detail_id=detail.id, account_id=account_id if routed else None,
            console_account_id=detail.billing_account_id, workspace_id=detail.workspace_id,
            site=detail.site, day=detail.day, item=detail.item,
            retention_days=detail.retention_days, kind=detail.kind, revision=detail.revision,
            quantity=detail.quantity, unit_size=detail.unit_size, unit_price=detail.unit_price,
            amount_minor=amount_minor, currency=detail.currency,
            status="settled" if routed else "unrouted", entry_id=entry_id,
            received_at=self.clock.now()))
        if entry_id is not None:
            self.arrears.after_movement(conn, [account_id])

    # -- settling many details in one transaction --------------------------------

    def _settle_batch(self, conn: Connection, messages: Sequence[Envelope]) -> None:
        """``_apply_once`` for each billing detail, in order, with set-based reads and writes."""
        now = self.clock.now()
        done = set(conn.execute(select(t.inbox.c.message_id).where(
            among(conn, t.inbox.c.message_id, [m.id for m in messages]))).scalars())
        fresh: list[Envelope] = []
        for message in messages:
            if message.id not in done:
                done.add(message.id)
                fresh.append(message)
        if not fresh:
            return
        currency = self.config.currency
        details = [BillingDetail.model_validate(m.payload) for m in fresh]
        amounts = []
        for detail in details:
            if detail.currency != currency:
                log.error("detail %s in %s reached the %s billing center; left unrouted",
                          detail.id, detail.currency, currency)
            amounts.append(to_minor(to_decimal(detail.amount), detail.currency))
        payers = _bindings_in_force(conn, {(d.workspace_id, d.day) for d in details})
        routed_to: list[str | None] = []
        to_post: list[int] = []
        for i, detail in enumerate(details):
            account_id = payers.get((detail.workspace_id, detail.day))
            if account_id is not None and detail.billing_account_id not in (None, account_id):
                # decisions.md 12: our binding table decides; the mismatch is only logged.
                log.warning("detail %s: console named account %s, binding says %s", detail.id,
                            detail.billing_account_id, account_id)
            routed = account_id is not None and detail.currency == currency
            routed_to.append(account_id if routed else None)
            if routed and amounts[i] != 0:
                to_post.append(i)
            elif not routed:
                log.warning("detail %s for workspace %s on %s has no binding: left unrouted",
                            detail.id, detail.workspace_id, detail.day)
        entries = self._post_entries(conn, details, amounts, routed_to, to_post, now)
        insert_rows(conn, t.charges, _CHARGE_COLUMNS, (
            (d.id, routed_to[i], d.billing_account_id, d.workspace_id, d.site, d.day, d.item,
             d.retention_days, d.kind, d.revision, d.quantity, d.unit_size, d.unit_price,
             amounts[i], d.currency, "settled" if routed_to[i] is not None else "unrouted",
             entries.get(i), now)
            for i, d in enumerate(details)))
        insert_rows(conn, t.inbox, ("message_id", "type", "applied_at"),
                    ((m.id, m.type, now) for m in fresh))
        self.arrears.after_movement(conn, sorted({routed_to[i] for i in to_post}))

    def _post_entries(self, conn: Connection, details: list[BillingDetail], amounts: list[int],
                      owners: list[str | None], to_post: list[int], now: datetime
                      ) -> dict[int, int]:
        """``ledger.post`` for each detail in ``to_post``, in order: the journal entry id of
        each (an existing one when its key was posted before with the same amount)."""
        entry_of: dict[int, int] = {}
        if not to_post:
            return entry_of
        e = t.journal_entries
        keys = {i: f"detail/{details[i].id}" for i in to_post}
        digests = {i: ledger.digest(amounts[i]) for i in to_post}
        posted: dict[str, tuple[int, str]] = {
            row.idempotency_key: (row.id, row.request_digest) for row in conn.execute(
                select(e.c.id, e.c.idempotency_key, e.c.request_digest)
                .where(among(conn, e.c.idempotency_key, keys.values())))}
        # Every movement of an account is serialised by these row locks (as in ledger.post);
        # taken in id order, so two batches never wait on each other in a cycle.
        a = t.ledger_accounts
        locked = select(a.c.id, a.c.owner, a.c.kind, a.c.balance_minor).where(
            among(conn, a.c.owner, {owners[i] for i in to_post})).order_by(a.c.id)
        if conn.dialect.name == "postgresql":
            locked = locked.with_for_update()
        balances: dict[str, dict[str, int]] = {}
        account_ids: dict[tuple[str, str], int] = {}
        for row in conn.execute(locked):
            balances.setdefault(row.owner, {})[row.kind] = int(row.balance_minor)
            account_ids[(row.owner, row.kind)] = row.id
        for kind, ledger_id in conn.execute(select(a.c.kind, a.c.id).where(
                a.c.owner == ledger.SYSTEM, a.c.kind.in_(ledger.SYSTEM_KINDS))):
            account_ids[(ledger.SYSTEM, kind)] = ledger_id
        entries: list[tuple[object, ...]] = []  # (index, key, digest, kind, owner, reference)
        postings: list[tuple[int, int, int]] = []  # (entry index, ledger account id, amount)
        deltas: dict[int, int] = {}
        for i in to_post:
            key, digest = keys[i], digests[i]
            known = posted.get(key)
            if known is not None:
                if known[1] != digest:
                    raise Conflict("idempotency_conflict",
                                   f"{key!r} was already used for a different request")
                entry_of[i] = known[0]  # negative: posted earlier in this batch (see below)
                continue
            owner = owners[i]
            assert owner is not None
            amount = amounts[i]
            held = balances[owner]
            moves = (settlement.charge(amount, held[settlement.CASH]) if amount > 0
                     else settlement.refund(-amount, held[settlement.PREPAID]))
            slot = len(entries)
            posted[key] = (-1 - slot, digest)
            entry_of[i] = -1 - slot
            entries.append((details[i].kind, owner, details[i].id, key, digest))
            for kind, moved in moves.items():
                owner_of_kind = ledger.SYSTEM if kind in ledger.SYSTEM_KINDS else owner
                ledger_id = account_ids[(owner_of_kind, kind)]
                postings.append((slot, ledger_id, moved))
                if kind not in ledger.SYSTEM_KINDS:
                    # Revenue and clearing are not cached (see ledger.post).
                    held[kind] += moved
                    deltas[ledger_id] = deltas.get(ledger_id, 0) + moved
        ids = self._insert_entries(conn, entries, now)
        insert_rows(conn, t.postings, ("entry_id", "ledger_account_id", "amount_minor"),
                    ((ids[slot], ledger_id, moved) for slot, ledger_id, moved in postings))
        changed = [{"b_id": ledger_id, "b_delta": delta}
                   for ledger_id, delta in sorted(deltas.items()) if delta]
        if changed:
            conn.execute(update(a).where(a.c.id == bindparam("b_id")).values(
                balance_minor=a.c.balance_minor + bindparam("b_delta")), changed)
        return {i: ids[-1 - entry] if entry < 0 else entry for i, entry in entry_of.items()}

    @staticmethod
    def _insert_entries(conn: Connection, entries: list[tuple[object, ...]],
                        now: datetime) -> list[int]:
        """Journal entries (kind, account, reference, key, digest) → their ids, in order."""
        if not entries:
            return []
        e = t.journal_entries
        if conn.dialect.name == "postgresql":
            ids = list(conn.execute(
                select(func.nextval(func.pg_get_serial_sequence(e.name, "id")))
                .select_from(func.generate_series(1, len(entries)))).scalars())
            insert_rows(conn, e, ("id", "idempotency_key", "request_digest", "kind",
                                  "account_id", "reference", "created_at"),
                        ((entry_id, key, digest, kind, owner, reference, now)
                         for entry_id, (kind, owner, reference, key, digest)
                         in zip(ids, entries, strict=True)))
            return ids
        return [conn.execute(insert(e).values(
            idempotency_key=key, request_digest=digest, kind=kind, account_id=owner,
            reference=reference, created_at=now).returning(e.c.id)).scalar_one()
            for kind, owner, reference, key, digest in entries]


_CHARGE_COLUMNS = ("detail_id", "account_id", "console_account_id", "workspace_id", "site", "day",
                   "item", "retention_days", "kind", "revision", "quantity", "unit_size",
                   "unit_price", "amount_minor", "currency", "status", "entry_id", "received_at")


def _bindings_in_force(conn: Connection, wanted: set[tuple[str, date]]) -> dict[tuple[str, date], str]:
    """``BillingAccounts.binding_for`` for many (workspace, day) pairs in one query: the
    binding with the latest effective_from <= day, else the workspace's first binding."""
    b = t.bindings
    history: dict[str, list[tuple[date, str]]] = {}
    for workspace_id, effective_from, account_id in conn.execute(
            select(b.c.workspace_id, b.c.effective_from, b.c.account_id)
            .where(among(conn, b.c.workspace_id, {w for w, _ in wanted}))
            .order_by(b.c.workspace_id, b.c.effective_from)):
        history.setdefault(workspace_id, []).append((effective_from, str(account_id)))
    found: dict[tuple[str, date], str] = {}
    for workspace_id, day in wanted:
        rows = history.get(workspace_id)
        if not rows:
            continue
        position = bisect_right(rows, day, key=lambda r: r[0])
        found[(workspace_id, day)] = rows[position - 1][1] if position else rows[0][1]
    return found
