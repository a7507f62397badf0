"""Forgot password in the billing center: a code mailed to the account's email, the
account named by its username or email."""

from __future__ import annotations

from accrual.billing.pages.access import center_of, pages_of
from accrual.web import forgotten
from accrual.web.i18n import N_

router = forgotten.router(forgotten.Side(
    prefix="/billing", side_name=N_("Billing Center"), name_label=N_("Username or email"),
    service=lambda request: center_of(request).password_reset, pages=pages_of))
