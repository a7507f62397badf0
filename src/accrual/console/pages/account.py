"""The signed-in console account: its email and a new password."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request

from accrual.console.pages.access import console_of, pages_of, session_token, signed_in
from accrual.web import passwords


def _shown(request: Request, account_id: str) -> Mapping[str, Any]:
    accounts = console_of(request).accounts
    return {"email": accounts.email_of(account_id),
            "memberships": accounts.workspaces_of(account_id)}


router = passwords.router(passwords.Page(
    path="/console/account", template="console/account.html", context=_shown,
    signed_in=signed_in, session_token=session_token,
    accounts=lambda request: console_of(request).accounts, pages=pages_of))
