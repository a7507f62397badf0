"""The billing center's public HTTP API (`/billing/v1`), one module per concern."""

from accrual.billing.api import accounts, bills, internal, wallet
from accrual.billing.api import payments
from accrual.billing.api import invoices

routers = [accounts.router, wallet.router, bills.router, internal.router]
routers.append(payments.router)
routers.append(invoices.router)
