"""Who is looking at a console page: the console, the signed-in account, the renderer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from accrual.console.domain.roles import Permissions, permissions_for
from accrual.console.services.accounts import Membership
from accrual.console.wiring import Console
from accrual.contract.errors import NotFound
from accrual.web.rendering import Pages, SignInRequired

SESSION_COOKIE = "accrual_console"
SIGN_IN = "/console/signin"
TEMPLATES = Path(__file__).parent / "templates"


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console  # set by the app factory
    return console


def pages_of(request: Request) -> Pages:
    pages: Pages = request.app.state.console_pages  # set by the app factory
    return pages


def session_token(request: Request) -> str:
    return request.cookies.get(SESSION_COOKIE, "")


def signed_in(request: Request, console: Annotated[Console, Depends(console_of)]) -> str:
    """The signed-in console account; otherwise off to the sign-in page and back."""
    token = session_token(request)
    account_id = console.accounts.account_for_session(token) if token else None
    if account_id is None:
        raise SignInRequired(SIGN_IN)
    return account_id


ConsoleDep = Annotated[Console, Depends(console_of)]
PagesDep = Annotated[Pages, Depends(pages_of)]
AccountDep = Annotated[str, Depends(signed_in)]


@dataclass(frozen=True)
class WorkspaceAccess:
    """A signed-in account looking at one of its workspaces, and what it may do there.

    Pages show only what the account may do; the services refuse the rest anyway."""

    account_id: str
    membership: Membership
    memberships: list[Membership]  # for the switcher
    allowed: Permissions  # what the role allows (domain/roles)

    @property
    def workspace_id(self) -> str:
        return self.membership.workspace.id

    @property
    def billing_view(self) -> bool:
        """The Billing module (owner, administrator, a role granted billing)."""
        return self.allowed.billing_view

    @property
    def alerts_manage(self) -> bool:
        """High-consumption alerts (owner, administrator)."""
        return self.allowed.alerts_manage

    @property
    def owner(self) -> bool:
        """Owner-only actions: upgrade, retention, dissolve, the billing center jump."""
        return self.allowed.owner_actions

    @property
    def members_manage(self) -> bool:
        """Add, change and remove members; custom roles."""
        return self.allowed.members_manage


def workspace_access(console: Console, account_id: str, workspace_id: str) -> WorkspaceAccess:
    """The account's access to the workspace; 404 when it is not a member (another
    tenant's workspace looks the same as one that does not exist)."""
    memberships = console.accounts.workspaces_of(account_id)
    membership = next((m for m in memberships if m.workspace.id == workspace_id), None)
    if membership is None:
        raise NotFound("workspace_not_found", f"no workspace {workspace_id} of yours")
    return WorkspaceAccess(account_id, membership, memberships, permissions_for(
        membership.role, membership.granted, membership.role_name))


def _workspace_access(workspace_id: str, account_id: AccountDep,
                      console: ConsoleDep) -> WorkspaceAccess:
    return workspace_access(console, account_id, workspace_id)


WorkspaceDep = Annotated[WorkspaceAccess, Depends(_workspace_access)]
