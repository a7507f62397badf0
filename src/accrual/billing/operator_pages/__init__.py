"""The operator's billing-center pages (`/operator/billing/...`), over the operator API's
services."""

from pathlib import Path

from accrual.billing.operator_pages import arrears, invoices

TEMPLATES = Path(__file__).parent / "templates"
routers = [invoices.router, arrears.router]

__all__ = ["TEMPLATES", "routers"]
