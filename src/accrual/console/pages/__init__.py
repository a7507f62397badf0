"""The console's pages (server-rendered, over the same services as the API)."""

from accrual.console.pages import (
    account,
    alerts,
    billing,
    forgot,
    lifecycle,
    members,
    registration,
    site,
    upgrade,
    workspace,
)
from accrual.console.pages.access import TEMPLATES
from accrual.console.pages.labels import LABELS
from accrual.console.pages.site import remember_language

# Order matters only where paths overlap: none do.
routers = [site.router, registration.router, workspace.router, lifecycle.router, billing.router,
           alerts.router, upgrade.router, members.router, account.router, forgot.router]

__all__ = ["LABELS", "TEMPLATES", "remember_language", "routers"]
