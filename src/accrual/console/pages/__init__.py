"""The console's pages (server-rendered, over the same services as the API)."""

from accrual.console.pages.access import TEMPLATES
from accrual.console.pages.labels import LABELS
from accrual.console.pages.site import router

__all__ = ["LABELS", "TEMPLATES", "router"]
