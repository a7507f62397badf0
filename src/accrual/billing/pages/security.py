"""Account security: a new password for the billing account."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request

from accrual.billing.pages.access import center_of, pages_of, session_token, signed_in
from accrual.web import passwords


def _shown(request: Request, account_id: str) -> Mapping[str, Any]:
    return {"account": center_of(request).accounts.account(account_id)}


router = passwords.router(passwords.Page(
    path="/billing/security", template="billing/security.html", context=_shown,
    signed_in=signed_in, session_token=session_token,
    accounts=lambda request: center_of(request).accounts, pages=pages_of))
