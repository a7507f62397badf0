"""A forgotten Billing Center password: a one-time code mailed to the account's email,
then a new password with the code (the mechanism and its bounds:
``infra.password_resets``). The account is named by its username or its email."""

from __future__ import annotations

import logging

from sqlalchemy import Engine, or_, select

from accrual.billing.adapters import tables as t
from accrual.billing.config import BillingConfig
from accrual.billing.mail_texts import render
from accrual.billing.services.accounts import BillingAccounts, folded
from accrual.clock import Clock
from accrual.contract.errors import Invalid
from accrual.infra.credentials import password_problem
from accrual.infra.mail import Mailer, MailError
from accrual.infra.password_resets import CODE_TTL, PasswordResets

log = logging.getLogger(__name__)


class PasswordReset:
    def __init__(self, engine: Engine, config: BillingConfig, clock: Clock,
                 accounts: BillingAccounts, mailer: Mailer) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.accounts = accounts
        self.mailer = mailer
        self.codes = PasswordResets(engine, t.password_resets, clock)

    def _account(self, name: object) -> tuple[str, str, str, str] | None:
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
        return str(row.id), str(row.username), str(row.email), row.language

    def request(self, name: object) -> None:
        """Mail a code when an account has this username or email; the same answer either
        way."""
        found = self._account(name)
        if found is None:
            return
        account_id, username, address, language = found
        code = self.codes.issue(account_id)
        if code is None:
            log.info("password reset for billing account %s: hourly limit reached", account_id)
            return
        expires = (self.clock.now() + CODE_TTL).astimezone(self.config.zone)
        try:
            self.mailer.send(render("password_reset", language, address, username=username,
                                    code=code, expires_at=expires.strftime("%Y-%m-%d %H:%M %Z")))
        except MailError as error:  # not told: it would tell that the account exists
            log.error("password reset for billing account %s not mailed: %s", account_id, error)

    def reset(self, name: object, code: object, new_password: object) -> None:
        """Set the new password with the mailed code; every session of the account ends."""
        problem = password_problem(new_password)
        if problem:
            raise Invalid("invalid_password", problem)
        found = self._account(name)
        if found is None or not self.codes.redeem(found[0], code):
            raise Invalid("wrong_code", "the code is wrong or no longer valid; ask for a new one")
        assert isinstance(new_password, str)
        self.accounts.replace_password(found[0], new_password)
        self.accounts.throttle.succeeded(found[1])
