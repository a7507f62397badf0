"""Binding a free workspace to a billing account with a mailed code (the upgrade).

Two doors, one mechanism: from the console, the workspace owner names a billing
account and its owner receives the code; from the billing center, an account
asks for a workspace and the workspace's owner receives the code.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import Engine, insert, select, update

from accrual.billing.adapters import tables as t
from accrual.billing.config import BillingConfig
from accrual.billing.mail_texts import render
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


class BindingCodes:
    def __init__(self, engine: Engine, config: BillingConfig, clock: Clock,
                 accounts: BillingAccounts, mailer: Mailer) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.accounts = accounts
        self.mailer = mailer

    # -- from the console: the account's owner gets the code -------------------

    def request_code(self, request: BindingCodeRequest) -> BindingCodeSent:
        account_id = self.accounts.find_by_username(request.username)
        if account_id is None:
            raise NotFound("account_not_found", f"no billing account named {request.username}")
        with self.engine.begin() as conn:
            self.accounts.remember_workspace_in(conn, request.workspace_id, request.site,
                                                request.workspace_name, request.owner_email,
                                                request.language, self.clock.now())
            email = conn.execute(select(t.accounts.c.email)
                                 .where(t.accounts.c.id == account_id)).scalar_one()
        return self._issue(request.workspace_id, account_id, email, request.language,
                           username=request.username, workspace_name=request.workspace_name,
                           site=request.site)

    def confirm_code(self, confirmation: BindingCodeConfirmation) -> BindingChanged:
        account_id = self.accounts.find_by_username(confirmation.username)
        if account_id is None:
            raise NotFound("account_not_found", f"no billing account named {confirmation.username}")
        return self._redeem(confirmation.workspace_id, account_id, confirmation.code)

    # -- from the billing center: the workspace's owner gets the code ----------

    def request_for_account(self, account_id: str, workspace_id: str) -> BindingCodeSent:
        account = self.accounts.account(account_id)
        with self.engine.connect() as conn:
            ws = conn.execute(select(t.workspaces).where(
                t.workspaces.c.workspace_id == workspace_id)).first()
            payer = None if ws is None else \
                self.accounts.binding_for(conn, workspace_id, self.accounts.today())
        # Another account's workspace is answered like an unknown one, as every other
        # cross-tenant probe is: whether it exists and is bound is not this account's to learn.
        if ws is None or payer not in (None, account_id):
            raise NotFound("workspace_not_found", f"workspace {workspace_id} is not known here")
        return self._issue(workspace_id, account_id, ws.owner_email, ws.language,
                           username=account.username, workspace_name=ws.name, site=ws.site,
                           template="binding_code_owner")

    def confirm_for_account(self, account_id: str, workspace_id: str, code: str) -> BindingChanged:
        self.accounts.account(account_id)
        return self._redeem(workspace_id, account_id, code)

    # -- the mechanism -----------------------------------------------------------

    def _issue(self, workspace_id: str, account_id: str, to: str, language: str, *,
               username: str, workspace_name: str, site: str,
               template: str = "binding_code") -> BindingCodeSent:
        """``template``: ``binding_code`` to the account's owner (asked from a console),
        ``binding_code_owner`` to the workspace's owner (asked from the billing center)."""
        now = self.clock.now()
        code = f"{secrets.randbelow(10**6):06d}"
        expires_at = now + CODE_TTL
        with self.engine.begin() as conn:
            if self.accounts.binding_for(conn, workspace_id, self.accounts.today()):
                raise Invalid("already_bound", "this workspace is already bound to an account")
            conn.execute(insert(t.binding_codes).values(
                workspace_id=workspace_id, account_id=account_id,
                code_hash=token_hash(f"{workspace_id}:{code}"), created_at=now,
                expires_at=expires_at, attempts=0))
        try:
            self.mailer.send(render(template, language, to, username=username, code=code,
                                    workspace_name=workspace_name, site=site,
                                    expires_at=self._local(expires_at)))
        except MailError as error:
            raise Unavailable("mail_unavailable",
                              f"the code could not be mailed; try again ({error})") from None
        return BindingCodeSent(sent_to=mask_email(to), expires_at=expires_at)

    def _local(self, instant: datetime) -> str:
        return instant.astimezone(self.config.zone).strftime("%Y-%m-%d %H:%M %Z")

    def _redeem(self, workspace_id: str, account_id: str, code: str) -> BindingChanged:
        """The code checked, used and the workspace bound in one transaction. A workspace
        bound meanwhile (another account's code, the operator) is refused, not taken over:
        moving a bound workspace is a change of binding, which needs the same enterprise
        certification."""
        now = self.clock.now()
        c = t.binding_codes
        with self.engine.begin() as conn:
            lock = select(t.workspaces.c.workspace_id).where(
                t.workspaces.c.workspace_id == workspace_id)
            if conn.dialect.name == "postgresql":
                # Two redemptions for one workspace queue here; the later sees it bound.
                conn.execute(lock.with_for_update())
            row = conn.execute(select(c).where(
                c.c.workspace_id == workspace_id, c.c.account_id == account_id,
                c.c.used_at.is_(None)).order_by(c.c.id.desc()).limit(1)).first()
            if row is None or row.expires_at <= now:
                raise Invalid("code_expired", "no valid code for this workspace; ask for a new one")
            if row.attempts >= MAX_ATTEMPTS:
                raise Forbidden("too_many_attempts", "too many wrong codes; ask for a new one")
            right = secrets.compare_digest(row.code_hash, token_hash(f"{workspace_id}:{code}"))
            if not right:
                conn.execute(update(c).where(c.c.id == row.id).values(attempts=row.attempts + 1))
            else:
                payer = self.accounts.binding_for(conn, workspace_id, self.accounts.today())
                if payer not in (None, account_id):
                    raise Invalid("already_bound",
                                  "this workspace was bound to another account meanwhile")
                conn.execute(update(c).where(c.c.id == row.id).values(used_at=now))
                bound = self.accounts.bind_in(conn, workspace_id, account_id, "billing_center")
        if not right:
            raise Invalid("wrong_code", "the code is not right")
        return BindingChanged(workspace_id=workspace_id, billing_account_id=account_id,
                              settlement_method=bound.settlement_method,
                              effective_from=bound.effective_from)
