"""The billing center's pages (server-rendered, over the same services as the API)."""

from accrual.billing.pages import (
           bills,
           forgot,
           invoices,
           profile,
           promotions,
           security,
           site,
           wallet,
           workspaces,
)
from accrual.billing.pages.access import TEMPLATES
from accrual.billing.pages.labels import LABELS
from accrual.billing.pages.site import remember_language

routers = [site.router, wallet.router, workspaces.router, bills.router, invoices.router,
           profile.router, promotions.router, security.router, forgot.router]

__all__ = ["LABELS", "TEMPLATES", "remember_language", "routers"]
