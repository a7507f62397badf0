"""The wallet: cash recharges and the balance overview."""

from __future__ import annotations

from sqlalchemy import Connection, Engine

from accrual.billing.config import BillingConfig
from accrual.billing.domain import bounds, settlement, waterfall
from accrual.billing.services import ledger
from accrual.billing.services.accounts import BillingAccounts
from accrual.billing.services.movements import Movements
from accrual.clock import Clock
from accrual.contract.errors import Invalid
from accrual.infra.db import in_transaction
from accrual.money import format_minor


class Wallet:
    def __init__(self, engine: Engine, config: BillingConfig, clock: Clock,
                 accounts: BillingAccounts, movements: Movements) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.accounts = accounts
        self.movements = movements

    def recharge(self, account_id: str, amount: object, reference: str) -> dict[str, object]:
        """An offline transfer credited by the operator; one credit per reference."""
        currency = self.config.currency
        amount_minor = bounds.movement_minor(amount, currency)
        if not isinstance(reference, str) or not 1 <= len(reference) <= 128:
            raise Invalid("invalid_reference", "reference must be 1 to 128 characters")
        self.accounts.account(account_id)

        def work(conn: Connection) -> dict[str, object]:
            # A top-up pays arrears first; the arrears rule then ends a case it settles.
            posted = self.movements.post(conn, ledger.Entry(
                account_id, f"recharge/{account_id}/{reference}", ledger.digest(amount_minor),
                "recharge", reference,
                lambda h: settlement.recharge(amount_minor, h.balances[settlement.PREPAID])),
                self.clock.now())
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
