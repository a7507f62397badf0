"""The billing center's public HTTP API (`/billing/v1`), one module per concern."""

from accrual.billing.api import (
    accounts,
    arrears,
    bills,
    instruments,
    internal,
    invoices,
    jobs,
    methods,
    payments,
    wallet,
)

routers = [accounts.router, wallet.router, bills.router, internal.router]
routers.append(payments.router)
routers.append(invoices.router)
routers.append(instruments.router)
routers.append(arrears.router)
routers.append(methods.router)
routers.append(jobs.router)
