"""Forgot password on the console: a code mailed to the account's email."""

from __future__ import annotations

from accrual.console.pages.access import console_of, pages_of
from accrual.web import forgotten
from accrual.web.i18n import N_

router = forgotten.router(forgotten.Side(
    prefix="/console", side_name=N_("Console"), name_label=N_("Email"),
    service=lambda request: console_of(request).password_reset, pages=pages_of))
