"""A forgotten console password: a code mailed to the account's email (the flow and its
bounds: ``infra.passwords``)."""

from __future__ import annotations

from sqlalchemy import Engine, select

from accrual.clock import Clock
from accrual.console.adapters import tables as t
from accrual.console.config import ConsoleConfig
from accrual.console.mail_texts import render
from accrual.console.services.accounts import Accounts, legacy_email, normal_email
from accrual.infra.mail import Mailer
from accrual.infra.passwords import PasswordResets, ResetAccount, ResetFlow


class PasswordReset:
    def __init__(self, engine: Engine, config: ConsoleConfig, clock: Clock, accounts: Accounts,
                 mailer: Mailer) -> None:
        self.engine = engine
        flow = ResetFlow(PasswordResets(engine, t.password_resets, clock), config.zone, mailer,
                         self._account, render, accounts.replace_password, accounts.throttle)
        self.request, self.reset = flow.request, flow.reset

    def _account(self, email: object) -> ResetAccount | None:
        normal = normal_email(email)
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.accounts.c.id, t.accounts.c.email, t.accounts.c.language)
                                .where(t.accounts.c.email.in_(sorted({normal,
                                                                      legacy_email(email)})))).all()
        row = min(rows, key=lambda r: r.email != normal, default=None)
        if row is None:
            return None
        return ResetAccount(str(row.id), str(row.email), row.language or "en",
                            normal_email(row.email), {"email": row.email})
