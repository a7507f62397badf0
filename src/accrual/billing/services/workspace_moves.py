"""Moving a workspace from one billing account to another of the same enterprise."""

from __future__ import annotations

from sqlalchemy import Engine, select

from accrual.billing.adapters import tables as t
from accrual.billing.services.accounts import BillingAccounts, Bound
from accrual.contract.errors import Forbidden, Invalid, NotFound


class WorkspaceMoves:
    def __init__(self, engine: Engine, accounts: BillingAccounts) -> None:
        self.engine = engine
        self.accounts = accounts

    def move(self, from_account: str, workspace_id: str, to_username: str) -> Bound:
        """Change of binding: only between accounts with the same enterprise certification;
        effective from the next billing day (decisions.md 11)."""
        to_account = self.accounts.find_by_username(to_username)
        if to_account is None:
            raise NotFound("account_not_found", f"no billing account named {to_username}")
        with self.engine.connect() as conn:
            current = self.accounts.binding_for(conn, workspace_id, self.accounts.today())
            certs = {r.id: (r.enterprise_name, r.taxpayer_id, r.certified_at) for r in conn.execute(
                select(t.accounts.c.id, t.accounts.c.enterprise_name, t.accounts.c.taxpayer_id,
                       t.accounts.c.certified_at).where(t.accounts.c.id.in_((from_account, to_account))))}
        if current != from_account:
            raise NotFound("workspace_not_found", f"workspace {workspace_id} is not bound to this account")
        if to_account == from_account:
            raise Invalid("same_account", "the workspace is already bound to that account")
        mine, theirs = certs[from_account], certs[to_account]
        if mine[2] is None or theirs[2] is None or mine[:2] != theirs[:2]:
            raise Forbidden("certification_mismatch",
                            "a workspace moves only between accounts with the same enterprise "
                            "certification")
        return self.accounts.bind(workspace_id, to_account)
