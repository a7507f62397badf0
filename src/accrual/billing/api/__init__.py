"""The billing center's public HTTP API (`/billing/v1`), one module per concern."""

from fastapi.routing import APIRoute

from accrual.billing.api import (
    accounts,
    arrears,
    bills,
    instruments,
    internal,
    invoices,
    jobs,
    marketplace_aliyun,
    marketplace_azure,
    marketplace_huawei,
    marketplace_reporter,
    marketplaces,
    methods,
    payments,
    promotions,
    wallet,
)
from accrual.infra.http import error_responses

routers = [accounts.router, wallet.router, bills.router, internal.router]
routers.append(payments.router)
routers.append(invoices.router)
routers.append(instruments.router)
routers.append(arrears.router)
routers.append(methods.router)
routers.append(jobs.router)
routers.append(promotions.router)
routers.append(marketplace_reporter.router)
routers.append(marketplaces.router)
routers.append(marketplace_azure.router)
routers.append(marketplace_huawei.router)
routers.append(marketplace_aliyun.router)


def _document_malformed_bodies() -> None:
    """Every route that reads a JSON body answers 400 `malformed_json` to one that is not."""
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute) and route.body_field is not None:
                route.responses.setdefault(400, error_responses(400)[400])


_document_malformed_bodies()
