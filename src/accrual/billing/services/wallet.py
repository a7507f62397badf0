"""Cash recharges, the inbox of console messages (billing details are settled by
:mod:`settling`), and the balance overview."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import Connection, Engine, insert, select, update

from accrual.billing.adapters import tables as t
from accrual.billing.config import BillingConfig
from accrual.billing.domain import bounds, settlement, waterfall
from accrual.billing.services import ledger, settling
from accrual.billing.services.accounts import BillingAccounts
from accrual.billing.services.arrears import Arrears
from accrual.clock import Clock
from accrual.contract.errors import Invalid, NotFound
from accrual.contract.messages import (
    BILLING_DETAIL,
    WORKSPACE_CREATED,
    WORKSPACE_DISSOLVED,
    Envelope,
    RegistrationConfirmation,
    WorkspaceCreated,
    WorkspaceDissolved,
)
from accrual.infra.db import in_transaction
from accrual.infra.jobs import Job, describe
from accrual.infra.outbox import Delivered
from accrual.money import format_minor

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
        # Messages from console sites that could not be applied (the inbox's failures).
        self.inbox_job = Job("billing inbox", clock)

    def recharge(self, account_id: str, amount: object, reference: str) -> dict[str, object]:
        """An offline transfer credited by the operator; one credit per reference."""
        currency = self.config.currency
        amount_minor = bounds.movement_minor(amount, currency)
        if not isinstance(reference, str) or not 1 <= len(reference) <= 128:
            raise Invalid("invalid_reference", "reference must be 1 to 128 characters")
        self.accounts.account(account_id)

        def work(conn: Connection) -> dict[str, object]:
            posted = ledger.post(
                conn, owner=account_id, key=f"recharge/{account_id}/{reference}",
                request_digest=ledger.digest(amount_minor), kind="recharge", reference=reference,
                now=self.clock.now(),
                compute=lambda h: settlement.recharge(amount_minor, h.balances[settlement.PREPAID]))
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
        now = self.clock.now()
        held = {waterfall.CARD: 0, "voucher": 0}
        for instrument in ledger.instruments_of(conn, [account_id])[account_id]:
            if instrument.expires_at > now:
                held[waterfall.CARD if instrument.kind == waterfall.CARD else "voucher"] += \
                    instrument.balance_minor
        return {"currency": currency,
                "cash": format_minor(balances.get(settlement.CASH, 0), currency),
                "vouchers": format_minor(held["voucher"], currency),
                "prepaid_cards": format_minor(held[waterfall.CARD], currency),
                "arrears": format_minor(settlement.arrears(balances.get(settlement.PREPAID, 0)),
                                        currency)}

    # -- the inbox: messages from console sites ------------------------------

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
        here waits for it. Recorded in the inbox job (``inbox_job``).
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
                if self.inbox_job.failing:
                    self.inbox_job.units_ok([f"message/{m.id}" for m in messages])
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
            self.inbox_job.unit_failed(unit, failed[message.id], code="waits_for_adjusted")
            return
        try:
            in_transaction(self.engine, lambda conn: self._apply_once(conn, message))
        except Exception as error:  # noqa: BLE001 (contained to this message, reported)
            failed[message.id] = describe(error)
            log.error("billing inbox: message %s (%s, aggregate %s) cannot be applied: %s",
                      message.id, message.type, message.aggregate_id, describe(error))
            self.inbox_job.unit_failed(unit, error)
            return
        applied.append(message.id)
        self.inbox_job.unit_ok(unit)

    def _settle(self, conn: Connection, messages: Sequence[Envelope]) -> None:
        moved = settling.settle(conn, messages, self.config.currency, self.clock.now())
        if moved:
            self.arrears.after_movement(conn, sorted(moved))

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
        self.accounts.remember_workspace_in(conn, event.workspace_id, event.site, event.name,
                                          event.owner_email, event.language, self.clock.now())
