"""The wallet: cash recharges and the balance overview."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Engine

from accrual.billing.config import BillingConfig
from accrual.billing.domain import bounds, settlement, waterfall
from accrual.billing.domain.arrears import owed_minor
from accrual.billing.services import ledger
from accrual.billing.services.accounts import BillingAccounts
from accrual.billing.services.movements import Movements
from accrual.clock import Clock
from accrual.contract.errors import Invalid
from accrual.infra.db import in_transaction


@dataclass(frozen=True)
class Overview:
    """What an account holds and owes, in minor units of ``currency``."""

    currency: str
    cash_minor: int
    vouchers_minor: int  # vouchers not expired
    prepaid_cards_minor: int  # prepaid cards not expired
    arrears_minor: int  # what the negative prepaid balance owes


@dataclass(frozen=True)
class Recharged:
    entry_id: int
    created: bool  # False: the reference was credited before (a replay)
    amount_minor: int
    reference: str
    balances: Overview  # as they are now


class Wallet:
    def __init__(self, engine: Engine, config: BillingConfig, clock: Clock,
                 accounts: BillingAccounts, movements: Movements) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.accounts = accounts
        self.movements = movements

    def recharge(self, account_id: str, amount: object, reference: str) -> Recharged:
        """An offline transfer credited by the operator; one credit per reference (a
        replay answers the first credit's entry, with the balances as they are now)."""
        currency = self.config.currency
        amount_minor = bounds.movement_minor(amount, currency)
        if not isinstance(reference, str) or not 1 <= len(reference) <= 128:
            raise Invalid("invalid_reference", "reference must be 1 to 128 characters")
        self.accounts.account(account_id)

        def work(conn: Connection) -> Recharged:
            # A top-up pays arrears first; the arrears rule then ends a case it settles.
            posted = self.movements.post(conn, ledger.Entry(
                account_id, f"recharge/{account_id}/{reference}", ledger.digest(amount_minor),
                "recharge", reference,
                lambda h: settlement.recharge(amount_minor, h.balances[settlement.PREPAID])),
                self.clock.now())
            return Recharged(posted.entry_id, posted.created, amount_minor, reference,
                             self._overview(conn, account_id))

        return in_transaction(self.engine, work)

    def overview(self, account_id: str) -> Overview:
        self.accounts.account(account_id)
        with self.engine.connect() as conn:
            return self._overview(conn, account_id)

    def _overview(self, conn: Connection, account_id: str) -> Overview:
        balances = ledger.balances(conn, account_id)
        now = self.clock.now()
        cards = vouchers = 0
        for instrument in ledger.instruments_of(conn, [account_id])[account_id]:
            if instrument.expires_at <= now:
                continue  # expired, waiting for its write-off: holds nothing
            if instrument.kind == waterfall.CARD:
                cards += instrument.balance_minor
            else:
                vouchers += instrument.balance_minor
        return Overview(self.config.currency, balances.get(settlement.CASH, 0), vouchers, cards,
                        owed_minor(balances.get(settlement.PREPAID, 0)))
