"""The operator's billing-center pages (`/operator/billing/...`), over the operator API's
services."""

from pathlib import Path

from accrual.billing.operator_pages.invoices import router

TEMPLATES = Path(__file__).parent / "templates"
routers = [router]

__all__ = ["TEMPLATES", "routers"]
