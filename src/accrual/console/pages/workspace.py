"""A workspace's own page (what every member sees)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from accrual.console.pages.access import PagesDep, WorkspaceDep
from accrual.web.rendering import PageRoute

router = APIRouter(prefix="/console/workspaces/{workspace_id}", route_class=PageRoute,
                   include_in_schema=False)


@router.get("/")
def workspace_home(request: Request, pages: PagesDep, access: WorkspaceDep) -> Response:
    return pages.render(request, "console/workspace.html", {"access": access})
