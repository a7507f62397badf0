"""A billing account's own details: contact name, phone and the language of its mails."""

from __future__ import annotations

import re

from sqlalchemy import Engine, update

from accrual.billing.adapters import tables as t
from accrual.billing.services.accounts import BillingAccount, BillingAccounts
from accrual.contract.errors import Invalid

PHONE = re.compile(r"\+?[0-9][0-9 -]{4,30}")
LANGUAGES = ("en", "zh")


class AccountProfiles:
    def __init__(self, engine: Engine, accounts: BillingAccounts) -> None:
        self.engine = engine
        self.accounts = accounts

    def update(self, account_id: str, *, contact_name: str | None = None,
               phone: str | None = None, language: str | None = None) -> BillingAccount:
        """Change the given details (None leaves one as it is); the account as it now is."""
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
