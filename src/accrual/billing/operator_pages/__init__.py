"""The operator's billing-center pages (`/operator/billing/...`), over the operator API's
services."""

from pathlib import Path

from accrual.billing.operator_pages import accounts, arrears, invoices, vouchers

TEMPLATES = Path(__file__).parent / "templates"
routers = [invoices.router, arrears.router, vouchers.router, accounts.router]

__all__ = ["TEMPLATES", "routers"]
