"""Members and custom roles: who is in the workspace and with which role; the owner and
administrators add, change and remove members and name roles; anyone else may leave."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from accrual.console.domain.roles import CUSTOM, PERMISSIONS
from accrual.console.pages.access import ConsoleDep, PagesDep, WorkspaceAccess, WorkspaceDep
from accrual.contract.errors import ServiceError
from accrual.infra.http import status_for
from accrual.web.rendering import PageRoute, field_error, redirect
from accrual.web.security import check_csrf

router = APIRouter(prefix="/console/workspaces/{workspace_id}", route_class=PageRoute,
                   include_in_schema=False)
CSRF = [Depends(check_csrf)]
# The members service's refusals, beside the field they are about (by form).
MEMBER_FIELDS = {"account_not_found": "email", "already_member": "email",
                 "member_limit": "email", "owner_not_assignable": "role",
                 "invalid_role": "role", "unknown_role": "role"}
ROLE_FIELDS = {"invalid_role_name": "name", "role_name_taken": "name", "role_limit": "name",
               "invalid_permission": "permissions"}


def _page(request: Request, console: ConsoleDep, pages: PagesDep, access: WorkspaceAccess,
          error: ServiceError | None = None, form: str = "", values: dict[str, str] | None = None
          ) -> Response:
    # Refusals of the add and create forms go beside their fields; those of a table row's
    # forms above the tables.
    fields = {"member": MEMBER_FIELDS, "role": ROLE_FIELDS}.get(form, {})
    return pages.render(request, "console/members.html", {
        "access": access,
        "members": console.members.members_of(access.account_id, access.workspace_id),
        "roles": console.members.roles_of(access.account_id, access.workspace_id),
        "permissions": PERMISSIONS, "form": form, "values": values or {},
        "error": field_error(error, fields) if error else None,
        "done": request.query_params.get("done")},
        status=status_for(error) if error else 200)


def _role(choice: str) -> tuple[str, str | None]:
    """The role select's value: a built-in role, or ``custom:<role id>``."""
    kind, _, role_id = choice.partition(":")
    return (CUSTOM, role_id or None) if kind == CUSTOM else (choice, None)


def _back(access: WorkspaceAccess, done: str) -> Response:
    return redirect(f"/console/workspaces/{access.workspace_id}/members?done={done}")


@router.get("/members")
def members(request: Request, console: ConsoleDep, pages: PagesDep,
            access: WorkspaceDep) -> Response:
    return _page(request, console, pages, access)


@router.post("/members", dependencies=CSRF)
def add_member(request: Request, console: ConsoleDep, pages: PagesDep, access: WorkspaceDep,
               email: Annotated[str, Form(max_length=320)],
               role: Annotated[str, Form(max_length=64)]) -> Response:
    try:
        added = console.members.add(access.account_id, access.workspace_id, email, *_role(role))
    except ServiceError as error:
        return _page(request, console, pages, access, error, "member",
                     {"email": email, "role": role})
    console.nudge_relay()
    return _back(access, "pending" if added.pending_role else "added")


@router.post("/members/{member_id}/role", dependencies=CSRF)
def change_member(request: Request, console: ConsoleDep, pages: PagesDep,
                  access: WorkspaceDep, member_id: str,
                  role: Annotated[str, Form(max_length=64)]) -> Response:
    try:
        changed = console.members.change(access.account_id, access.workspace_id, member_id,
                                         *_role(role))
    except ServiceError as error:
        return _page(request, console, pages, access, error, "row")
    console.nudge_relay()
    return _back(access, "pending" if changed.pending_role else "changed")


@router.post("/members/{member_id}/remove", dependencies=CSRF)
def remove_member(request: Request, console: ConsoleDep, pages: PagesDep,
                  access: WorkspaceDep, member_id: str) -> Response:
    try:
        console.members.remove(access.account_id, access.workspace_id, member_id)
    except ServiceError as error:
        return _page(request, console, pages, access, error, "row")
    console.nudge_relay()
    if member_id == access.account_id:  # left: the workspace is no longer among yours
        return redirect("/console/workspaces?done=left")
    return _back(access, "removed")


@router.post("/roles", dependencies=CSRF)
def create_role(request: Request, console: ConsoleDep, pages: PagesDep, access: WorkspaceDep,
                name: Annotated[str, Form(max_length=200)],
                permissions: Annotated[list[str] | None, Form(max_length=64)] = None
                ) -> Response:
    try:
        console.members.create_role(access.account_id, access.workspace_id, name,
                                    permissions or [])
    except ServiceError as error:
        return _page(request, console, pages, access, error, "role", {"name": name})
    return _back(access, "role_created")


@router.post("/roles/{role_id}", dependencies=CSRF)
def update_role(request: Request, console: ConsoleDep, pages: PagesDep, access: WorkspaceDep,
                role_id: str, name: Annotated[str, Form(max_length=200)],
                permissions: Annotated[list[str] | None, Form(max_length=64)] = None
                ) -> Response:
    try:
        console.members.update_role(access.account_id, access.workspace_id, role_id, name,
                                    permissions or [])
    except ServiceError as error:
        return _page(request, console, pages, access, error, "row")
    return _back(access, "role_saved")


@router.post("/roles/{role_id}/delete", dependencies=CSRF)
def delete_role(request: Request, console: ConsoleDep, pages: PagesDep, access: WorkspaceDep,
                role_id: str) -> Response:
    try:
        console.members.delete_role(access.account_id, access.workspace_id, role_id)
    except ServiceError as error:
        return _page(request, console, pages, access, error, "row")
    return _back(access, "role_deleted")
