"""A forgotten Billing Center password: a code mailed to the account's email, the account
named by its username or email (the flow and its bounds: ``infra.passwords``)."""

from __future__ import annotations

from sqlalchemy import Engine, or_, select

from accrual.billing.adapters import tables as t
from accrual.billing.config import BillingConfig
from accrual.billing.mail_texts import render
from accrual.billing.services.accounts import BillingAccounts, folded
from accrual.clock import Clock
from accrual.infra.mail import Mailer
from accrual.infra.passwords import PasswordResets, ResetAccount, ResetFlow


class PasswordReset:
    def __init__(self, engine: Engine, config: BillingConfig, clock: Clock,
                 accounts: BillingAccounts, mailer: Mailer) -> None:
        self.engine = engine
        flow = ResetFlow(PasswordResets(engine, t.password_resets, clock), config.zone, mailer,
                         self._account, render, accounts.replace_password, accounts.throttle)
        self.request, self.reset = flow.request, flow.reset

    def _account(self, name: object) -> ResetAccount | None:
        key = folded(name.strip()) if isinstance(name, str) else ""
        if not key:
            return None
        a = t.accounts
        with self.engine.connect() as conn:
            rows = conn.execute(select(a.c.id, a.c.username, a.c.email, a.c.language)
                                .where(or_(a.c.username == key, a.c.email == key),
                                       a.c.status == "active")).all()
        if len(rows) != 1:  # unknown, or an email two accounts share: not by email then
            return None
        row = rows[0]
        return ResetAccount(str(row.id), str(row.email), row.language, str(row.username),
                            {"username": row.username})
