"""A forgotten console password: a one-time code mailed to the account's email, then a
new password with the code (the mechanism and its bounds: ``infra.password_resets``)."""

from __future__ import annotations

import logging

from sqlalchemy import Engine, select

from accrual.clock import Clock
from accrual.console.adapters import tables as t
from accrual.console.config import ConsoleConfig
from accrual.console.mail_texts import render
from accrual.console.services.accounts import Accounts, legacy_email, normal_email
from accrual.contract.errors import Invalid
from accrual.infra.credentials import password_problem
from accrual.infra.mail import Mailer, MailError
from accrual.infra.password_resets import CODE_TTL, PasswordResets

log = logging.getLogger(__name__)


class PasswordReset:
    def __init__(self, engine: Engine, config: ConsoleConfig, clock: Clock, accounts: Accounts,
                 mailer: Mailer) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.accounts = accounts
        self.mailer = mailer
        self.codes = PasswordResets(engine, t.password_resets, clock)

    def _account(self, email: object) -> tuple[str, str, str] | None:
        normal = normal_email(email)
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.accounts.c.id, t.accounts.c.email, t.accounts.c.language)
                                .where(t.accounts.c.email.in_(sorted({normal,
                                                                      legacy_email(email)})))).all()
        row = min(rows, key=lambda r: r.email != normal, default=None)
        return None if row is None else (str(row.id), str(row.email), row.language or "en")

    def request(self, email: object) -> None:
        """Mail a code when an account has this email; the same answer either way."""
        found = self._account(email)
        if found is None:
            return
        account_id, address, language = found
        code = self.codes.issue(account_id)
        if code is None:
            log.info("password reset for console account %s: hourly limit reached", account_id)
            return
        expires = (self.clock.now() + CODE_TTL).astimezone(self.config.zone)
        try:
            self.mailer.send(render("password_reset", language, address, email=address,
                                    code=code, expires_at=expires.strftime("%Y-%m-%d %H:%M %Z")))
        except MailError as error:  # not told: it would tell that the account exists
            log.error("password reset for console account %s not mailed: %s", account_id, error)

    def reset(self, email: object, code: object, new_password: object) -> None:
        """Set the new password with the mailed code; every session of the account ends."""
        problem = password_problem(new_password)
        if problem:
            raise Invalid("invalid_password", problem)
        found = self._account(email)
        if found is None or not self.codes.redeem(found[0], code):
            raise Invalid("wrong_code", "the code is wrong or no longer valid; ask for a new one")
        assert isinstance(new_password, str)
        self.accounts.replace_password(found[0], new_password)
        self.accounts.throttle.succeeded(normal_email(found[1]))
