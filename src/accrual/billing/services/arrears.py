"""Arrears and locks (reference-billing.md §5, decisions.md 17–19).

INTERFACE STUB: being implemented; the wallet already calls ``after_movement``.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, Engine

from accrual.billing.config import BillingConfig
from accrual.billing.services.accounts import BillingAccounts
from accrual.clock import Clock


class Arrears:
    def __init__(self, engine: Engine, config: BillingConfig, clock: Clock,
                 accounts: BillingAccounts) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.accounts = accounts

    def after_movement(self, conn: Connection, account_ids: Iterable[str]) -> None:
        """Called inside every transaction that may have changed the prepaid balance of
        these billing accounts (settlement of details, recharges, gateway credits), after
        the postings: opens a case when an account is newly negative, ends the open case
        (and unlocks at once) when it is no longer negative."""

    def tick(self) -> dict[str, int]:
        """Reminders and locks that fell due by the clock's now."""
        return {}
