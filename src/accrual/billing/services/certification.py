"""Enterprise certification of a billing account: the enterprise name and taxpayer id that
invoices are titled with and that decide which accounts may exchange workspaces."""

from __future__ import annotations

import re

from sqlalchemy import Engine, update

from accrual.billing.adapters import tables as t
from accrual.billing.services.accounts import BillingAccount, BillingAccounts
from accrual.clock import Clock
from accrual.contract.errors import Conflict, Invalid

# A unified social credit code is 18 characters; older taxpayer ids 15 to 20.
TAXPAYER_ID = re.compile(r"[0-9A-Z]{15,20}")


class Certifications:
    def __init__(self, engine: Engine, clock: Clock, accounts: BillingAccounts) -> None:
        self.engine = engine
        self.clock = clock
        self.accounts = accounts

    def certify(self, account_id: str, enterprise_name: str, taxpayer_id: str) -> BillingAccount:
        """Record the enterprise certification. Once certified it is fixed: a change goes
        through the operator (it decides which accounts may exchange workspaces). The account
        as it now is."""
        name = enterprise_name.strip()
        taxpayer = taxpayer_id.strip().upper()
        if not 2 <= len(name) <= 200:
            raise Invalid("invalid_enterprise_name", "the enterprise name must be 2 to 200 characters")
        if not TAXPAYER_ID.fullmatch(taxpayer):
            raise Invalid("invalid_taxpayer_id", "the taxpayer id is 15 to 20 digits or capital letters")
        current = self.accounts.account(account_id)
        if current.certification is not None:
            raise Conflict("already_certified", "the account is already certified")
        with self.engine.begin() as conn:
            conn.execute(update(t.accounts).where(t.accounts.c.id == account_id).values(
                enterprise_name=name, taxpayer_id=taxpayer, certified_at=self.clock.now()))
        return self.accounts.account(account_id)
