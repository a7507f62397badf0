"""The price book in force and the site's tenants, for the operator."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from accrual.console.operator_pages.days import ConsoleDep, PagesDep
from accrual.console.services.directory import tenants
from accrual.web import paging
from accrual.web.operator import OperatorDep
from accrual.web.rendering import PageRoute

router = APIRouter(prefix="/operator/console", route_class=PageRoute, include_in_schema=False,
                   dependencies=[OperatorDep])


@router.get("/prices")
def price_book(request: Request, console: ConsoleDep, pages: PagesDep) -> Response:
    """Every row of the price book (all versions), filtered by item, currency, site group."""
    query = request.query_params
    rows = [r for r in console.book.rows
            if all(not query.get(key) or str(getattr(r, key)) == query[key]
                   for key in ("item", "currency", "site_group"))]
    table = paging.table(rows, query, {
        "item": lambda r: (r.item, r.retention_days), "currency": lambda r: r.currency,
        "site_group": lambda r: r.site_group, "effective_from": lambda r: r.effective_from,
        "unit_price": lambda r: r.unit_price}, default_sort="item", per_page=50)
    values = {key: sorted({str(getattr(r, key)) for r in console.book.rows})
              for key in ("item", "currency", "site_group")}
    return pages.render(request, "operator/console/prices.html",
                        {"table": table, "values": values, "query": query})


@router.get("/tenants")
def tenant_list(request: Request, console: ConsoleDep, pages: PagesDep) -> Response:
    """The site's workspaces with owner, plan, state and billing account; search."""
    search = request.query_params.get("q", "")[:200]
    found, accounts = tenants(console.engine, search)
    table = paging.table(found, request.query_params, {
        "name": lambda r: r.name.lower(), "created": lambda r: r.created_at,
        "plan": lambda r: r.plan, "owner": lambda r: r.owner_email or ""},
        default_sort="created", default_descending=True)
    return pages.render(request, "operator/console/tenants.html",
                        {"table": table, "search": search, "accounts": accounts})
