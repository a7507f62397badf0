"""What an account may do in a workspace, by its role there (the rule is in
``domain/roles``); the API and the pages ask here, so both refuse the same things."""

from __future__ import annotations

from typing import NoReturn

from accrual.console.domain.roles import (
    Action,
    Permissions,
    Refusal,
    permissions_for,
    refusal_for,
)
from accrual.console.services.accounts import Accounts
from accrual.contract.errors import Conflict, Forbidden, Invalid, ServiceError

_KINDS: dict[str, type[ServiceError]] = {"forbidden": Forbidden, "conflict": Conflict,
                                         "invalid": Invalid}


def permissions(accounts: Accounts, account_id: str, workspace_id: str) -> Permissions:
    """The account's permissions in the workspace; 404 ``workspace_not_found`` when it is
    not a member (another tenant's workspace looks like one that does not exist)."""
    found = accounts.require_role(account_id, workspace_id)
    return permissions_for(found.role, found.granted, found.role_name)


def require(accounts: Accounts, account_id: str, workspace_id: str, action: Action) -> Permissions:
    """The account's permissions when they allow ``action``; refused otherwise."""
    found = permissions(accounts, account_id, workspace_id)
    if not found.allows(action):
        raise_refusal(refusal_for(action))
    return found


def raise_refusal(refusal: Refusal) -> NoReturn:
    """A refusal of the rules as the service error the API and the pages answer."""
    raise _KINDS[refusal.kind](refusal.code, refusal.message)
