"""Binding a free workspace to a billing account with a mailed code (the upgrade)."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import Engine, insert, select, update

from accrual.billing.adapters import tables as t
from accrual.billing.config import BillingConfig
from accrual.billing.emails import render
from accrual.billing.services.accounts import BillingAccounts
from accrual.clock import Clock
from accrual.contract.errors import Forbidden, Invalid, NotFound, Unavailable
from accrual.contract.messages import (
    BindingChanged,
    BindingCodeConfirmation,
    BindingCodeRequest,
    BindingCodeSent,
)
from accrual.infra.credentials import token_hash
from accrual.infra.mail import Mailer, MailError

CODE_TTL = timedelta(minutes=15)
MAX_ATTEMPTS = 5


def mask_email(email: str) -> str:
    name, _, domain = email.partition("@")
    return f"{name[:1]}***@{domain}"


class Upgrades:
    def __init__(self, engine: Engine, config: BillingConfig, clock: Clock,
                 accounts: BillingAccounts, mailer: Mailer) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.accounts = accounts
        self.mailer = mailer

    def request_code(self, request: BindingCodeRequest) -> BindingCodeSent:
        account_id = self.accounts.find_by_username(request.username)
        if account_id is None:
            raise NotFound("account_not_found", f"no billing account named {request.username}")
        now = self.clock.now()
        code = f"{secrets.randbelow(10**6):06d}"
        expires_at = now + CODE_TTL
        with self.engine.begin() as conn:
            self.accounts.remember_workspace_in(conn, request.workspace_id, request.site,
                                                request.workspace_name, request.owner_email,
                                                request.language, now)
            if self.accounts.binding_for(conn, request.workspace_id, self.accounts.today()):
                raise Invalid("already_bound", "this workspace is already bound to an account")
            email = conn.execute(select(t.accounts.c.email)
                                 .where(t.accounts.c.id == account_id)).scalar_one()
            conn.execute(insert(t.binding_codes).values(
                workspace_id=request.workspace_id, account_id=account_id,
                code_hash=token_hash(f"{request.workspace_id}:{code}"), created_at=now,
                expires_at=expires_at, attempts=0))
        try:
            self.mailer.send(render("binding_code", request.language, email,
                                    username=request.username, code=code,
                                    workspace_name=request.workspace_name, site=request.site,
                                    expires_at=expires_at.astimezone(self.config.zone)
                                    .strftime("%Y-%m-%d %H:%M %Z")))
        except MailError as error:
            raise Unavailable("mail_unavailable",
                              f"the code could not be mailed; try again ({error})") from None
        return BindingCodeSent(sent_to=mask_email(email), expires_at=expires_at)

    def confirm_code(self, confirmation: BindingCodeConfirmation) -> BindingChanged:
        account_id = self.accounts.find_by_username(confirmation.username)
        if account_id is None:
            raise NotFound("account_not_found", f"no billing account named {confirmation.username}")
        now = self.clock.now()
        c = t.binding_codes
        with self.engine.begin() as conn:
            row = conn.execute(select(c).where(
                c.c.workspace_id == confirmation.workspace_id, c.c.account_id == account_id,
                c.c.used_at.is_(None)).order_by(c.c.id.desc()).limit(1)).first()
            if row is None or row.expires_at <= now:
                raise Invalid("code_expired", "no valid code for this workspace; ask for a new one")
            if row.attempts >= MAX_ATTEMPTS:
                raise Forbidden("too_many_attempts", "too many wrong codes; ask for a new one")
            if not secrets.compare_digest(
                    row.code_hash, token_hash(f"{confirmation.workspace_id}:{confirmation.code}")):
                conn.execute(update(c).where(c.c.id == row.id).values(attempts=row.attempts + 1))
                wrong = True
            else:
                conn.execute(update(c).where(c.c.id == row.id).values(used_at=now))
                wrong = False
        if wrong:
            raise Invalid("wrong_code", "the code is not right")
        result = self.accounts.bind(confirmation.workspace_id, account_id)
        return BindingChanged(workspace_id=confirmation.workspace_id, billing_account_id=account_id,
                              settlement_method=str(result["settlement_method"]),
                              effective_from=result["effective_from"])  # type: ignore[arg-type]
