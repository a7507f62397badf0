"""Account profile, enterprise certification, and moving a workspace between accounts."""

from __future__ import annotations

import re

from sqlalchemy import Engine, select, update

from accrual.billing.adapters import tables as t
from accrual.billing.services.accounts import BillingAccounts
from accrual.clock import Clock
from accrual.contract.errors import Conflict, Forbidden, Invalid, NotFound

# A unified social credit code is 18 characters; older taxpayer ids 15 to 20.
TAXPAYER_ID = re.compile(r"[0-9A-Z]{15,20}")
PHONE = re.compile(r"\+?[0-9][0-9 -]{4,30}")
LANGUAGES = ("en", "zh")


class Profiles:
    def __init__(self, engine: Engine, clock: Clock, accounts: BillingAccounts) -> None:
        self.engine = engine
        self.clock = clock
        self.accounts = accounts

    def update(self, account_id: str, *, contact_name: str | None = None,
               phone: str | None = None, language: str | None = None) -> dict[str, object]:
        values: dict[str, object] = {}
        if contact_name is not None:
            if not 1 <= len(contact_name.strip()) <= 100:
                raise Invalid("invalid_contact_name", "contact name must be 1 to 100 characters")
            values["contact_name"] = contact_name.strip()
        if phone is not None:
            if not PHONE.fullmatch(phone.strip()):
                raise Invalid("invalid_phone", "phone must be digits, spaces or '-', with an optional '+'")
            values["phone"] = phone.strip()
        if language is not None:
            if language not in LANGUAGES:
                raise Invalid("invalid_language", "language must be 'en' or 'zh'")
            values["language"] = language
        self.accounts.account(account_id)
        if values:
            with self.engine.begin() as conn:
                conn.execute(update(t.accounts).where(t.accounts.c.id == account_id).values(**values))
        return self.accounts.account(account_id)

    def certify(self, account_id: str, enterprise_name: str, taxpayer_id: str) -> dict[str, object]:
        """Record the enterprise certification. Once certified it is fixed: a change goes
        through the operator (it decides which accounts may exchange workspaces)."""
        name = enterprise_name.strip()
        taxpayer = taxpayer_id.strip().upper()
        if not 2 <= len(name) <= 200:
            raise Invalid("invalid_enterprise_name", "the enterprise name must be 2 to 200 characters")
        if not TAXPAYER_ID.fullmatch(taxpayer):
            raise Invalid("invalid_taxpayer_id", "the taxpayer id is 15 to 20 digits or capital letters")
        current = self.accounts.account(account_id)
        if current["certification"] is not None:
            raise Conflict("already_certified", "the account is already certified")
        with self.engine.begin() as conn:
            conn.execute(update(t.accounts).where(t.accounts.c.id == account_id).values(
                enterprise_name=name, taxpayer_id=taxpayer, certified_at=self.clock.now()))
        return self.accounts.account(account_id)

    def move_workspace(self, from_account: str, workspace_id: str, to_username: str) -> dict[str, object]:
        """Change of binding: only between accounts with the same enterprise certification;
        effective from the next billing day (decisions.md 11)."""
        to_account = self.accounts.find_by_username(to_username)
        if to_account is None:
            raise NotFound("account_not_found", f"no billing account named {to_username}")
        with self.engine.connect() as conn:
            current = self.accounts.binding_for(conn, workspace_id, self.accounts.today())
            certs = {r.id: (r.enterprise_name, r.taxpayer_id, r.certified_at) for r in conn.execute(
                select(t.accounts.c.id, t.accounts.c.enterprise_name, t.accounts.c.taxpayer_id,
                       t.accounts.c.certified_at).where(t.accounts.c.id.in_((from_account, to_account))))}
        if current != from_account:
            raise NotFound("workspace_not_found", f"workspace {workspace_id} is not bound to this account")
        if to_account == from_account:
            raise Invalid("same_account", "the workspace is already bound to that account")
        mine, theirs = certs[from_account], certs[to_account]
        if mine[2] is None or theirs[2] is None or mine[:2] != theirs[:2]:
            raise Forbidden("certification_mismatch",
                            "a workspace moves only between accounts with the same enterprise "
                            "certification")
        return self.accounts.bind(workspace_id, to_account)
