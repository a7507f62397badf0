"""The console's public HTTP API (`/console/v1`), one module per concern."""

from accrual.console.api import accounts, alerts, members, metering, operator, plans, views

routers = [accounts.router, metering.router, views.router, plans.router, alerts.router,
           members.router, operator.router]
