"""Cash recharges, settlement of billing details, and the balance overview."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import Connection, Engine, insert, select

from accrual.billing.adapters import tables as t
from accrual.billing.config import BillingConfig
from accrual.billing.domain import settlement
from accrual.billing.services import ledger
from accrual.billing.services.accounts import BillingAccounts
from accrual.clock import Clock
from accrual.contract.errors import Invalid, NotFound
from accrual.contract.messages import (
    BILLING_DETAIL,
    WORKSPACE_CREATED,
    BillingDetail,
    Envelope,
    RegistrationConfirmation,
    WorkspaceCreated,
)
from accrual.infra.db import in_transaction
from accrual.money import format_minor, parse_amount, to_decimal, to_minor

log = logging.getLogger(__name__)


class Wallet:
    def __init__(self, engine: Engine, config: BillingConfig, clock: Clock,
                 accounts: BillingAccounts) -> None:
        self.engine = engine
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
        applied = []
        for message in messages:
            in_transaction(self.engine, lambda conn, m=message: self._apply_once(conn, m))
            applied.append(message.id)
        return applied

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
