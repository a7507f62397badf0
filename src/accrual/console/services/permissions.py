"""What an account may do in a workspace, by its role there (the rule is in
``domain/roles``); the API and the pages ask here, so both refuse the same things."""

from __future__ import annotations

from accrual.console.domain.roles import Action, Permissions, permissions_for, refusal_for
from accrual.console.services.accounts import Accounts
from accrual.contract.errors import Conflict, Forbidden, Invalid, ServiceError

_KINDS: dict[str, type[ServiceError]] = {"forbidden": Forbidden, "conflict": Conflict,
                                         "invalid": Invalid}


def permissions(accounts: Accounts, account_id: str, workspace_id: str) -> Permissions:
    """The account's permissions in the workspace; 404 ``workspace_not_found`` when it is
    not a member (another tenant's workspace looks like one that does not exist)."""
    return permissions_for(accounts.require_member(account_id, workspace_id))


def require(accounts: Accounts, account_id: str, workspace_id: str, action: Action) -> Permissions:
    """The account's permissions when they allow ``action``; refused otherwise."""
    found = permissions(accounts, account_id, workspace_id)
    if not found.allows(action):
        refusal = refusal_for(action)
        raise _KINDS[refusal.kind](refusal.code, refusal.message)
    return found
