"""Settlement methods: how a workspace's bills are paid (reference-billing.md §4.1, §6).

``billing_center``: the account's wallet (vouchers, cards, cash, then arrears).
A cloud marketplace (``aws``, ``aliyun``, ``huawei``, ``azure``): vouchers and
cards first, the rest through the linked cloud account (what the vendor is to
be billed collects on the center's ``cloud_receivable`` account). A change
takes effect at the start of the next billing day and is allowed once per
calendar month in the center's zone (decisions.md 11); it unlocks a workspace
locked for arrears at once (decisions.md 18).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from accrual.billing.adapters import tables as t
from accrual.billing.config import BillingConfig
from accrual.billing.domain import methods as rules
from accrual.billing.services.accounts import BillingAccounts, Bound
from accrual.billing.services.arrears import Arrears
from accrual.clock import Clock, day_bounds
from accrual.contract.errors import Conflict
from accrual.infra.db import in_transaction

BILLING_CENTER = rules.BILLING_CENTER
VENDORS = rules.VENDORS
METHODS = rules.METHODS
ACTIVE, CANCELLED = "active", "cancelled"
is_cloud = rules.is_cloud


@dataclass(frozen=True)
class CloudAccount:
    """A marketplace account a billing account may settle workspaces through."""

    id: str
    vendor: str
    external_id: str
    status: str  # ACTIVE or CANCELLED
    linked_at: datetime
    cancelled_at: datetime | None


@dataclass(frozen=True)
class MethodChange:
    bound: Bound  # the binding from tomorrow
    from_method: str
    unlocked: bool  # a workspace locked for arrears that the change unlocked at once


class SettlementMethods:
    def __init__(self, engine: Engine, config: BillingConfig, clock: Clock,
                 accounts: BillingAccounts, arrears: Arrears) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.accounts = accounts
        self.arrears = arrears

    def available(self) -> tuple[str, ...]:
        return rules.available(self.config.currency)

    # -- cloud accounts ----------------------------------------------------------

    def link_cloud_account(self, account_id: str, vendor: str,
                           external_id: str) -> tuple[CloudAccount, bool]:
        """Record a marketplace account as one this billing account may settle through;
        (the link, whether it is new).

        Marketplace activation records it; until that flow exists the operator does. One
        cloud account belongs to one billing account; linking it again is a no-op.
        """
        rules.check_vendor(vendor, self.config.currency)
        external_id = rules.check_cloud_account_id(external_id)
        self.accounts.account(account_id)
        c = t.cloud_accounts

        def work(conn: Connection) -> tuple[CloudAccount, bool]:
            row = conn.execute(select(c).where(c.c.vendor == vendor, c.c.external_id == external_id,
                                               c.c.status == ACTIVE)).first()
            if row is not None:
                if row.account_id != account_id:
                    raise Conflict("cloud_account_taken",
                                   "this cloud account is linked to another billing account")
                return _cloud_account(row), False
            link_id = "ca_" + secrets.token_hex(12)
            conn.execute(insert(c).values(id=link_id, account_id=account_id, vendor=vendor,
                                          external_id=external_id, status=ACTIVE,
                                          linked_at=self.clock.now()))
            return _cloud_account(conn.execute(select(c).where(c.c.id == link_id)).one()), True

        return in_transaction(self.engine, work)

    def cloud_accounts(self, account_id: str) -> list[CloudAccount]:
        self.accounts.account(account_id)
        c = t.cloud_accounts
        with self.engine.connect() as conn:
            return [_cloud_account(r) for r in conn.execute(
                select(c).where(c.c.account_id == account_id).order_by(c.c.linked_at, c.c.id))]

    # -- changing the method -----------------------------------------------------

    def change(self, account_id: str, workspace_id: str, method: object) -> MethodChange:
        """Settle ``workspace_id`` by ``method`` from the next billing day on."""
        chosen = rules.check_method(method, self.config.currency)
        self.accounts.account(account_id)

        def work(conn: Connection) -> MethodChange:
            today = self.accounts.today()
            tomorrow = rules.effective_from(today)
            current = self.accounts.binding_in_force(conn, workspace_id, today)
            upcoming = self.accounts.binding_in_force(conn, workspace_id, tomorrow)
            linked = self._linked(conn, account_id, chosen) if rules.is_cloud(chosen) else None
            month_start, _ = rules.month_of(today)
            first, _ = day_bounds(month_start, self.config.zone)
            changes = t.settlement_changes
            rules.check_change(
                account_id=account_id, workspace_id=workspace_id, method=chosen, today=today,
                current=None if current is None else rules.Binding(
                    current.account_id, current.settlement_method),
                # A workspace bound today is bound tomorrow (a binding only ever moves).
                upcoming=rules.Binding(upcoming.account_id, upcoming.settlement_method)
                if upcoming is not None else rules.Binding("", ""),
                cloud_account_linked=linked is not None,
                changed_this_month=conn.execute(select(changes.c.requested_at).where(
                    changes.c.workspace_id == workspace_id, changes.c.requested_at >= first)
                    .limit(1)).first() is not None)
            assert upcoming is not None  # checked above: bound today, so bound tomorrow
            now = self.clock.now()
            bound = self.accounts.bind_in(conn, workspace_id, account_id, chosen)
            if linked is not None:
                # What vouchers and cards leave is billed to this cloud account (settling).
                b = t.bindings
                conn.execute(update(b).where(b.c.workspace_id == workspace_id,
                                             b.c.effective_from == bound.effective_from)
                             .values(cloud_account_id=linked))
            conn.execute(insert(changes).values(
                workspace_id=workspace_id, account_id=account_id,
                from_method=upcoming.settlement_method, to_method=chosen,
                effective_from=tomorrow, requested_at=now))
            unlocked = False
            if rules.is_cloud(chosen):
                # Nothing more is owed through the wallet for it: its lock ends now.
                unlocked = self.arrears.release_workspace(conn, workspace_id, "method_changed")
            return MethodChange(bound, upcoming.settlement_method, unlocked)

        return in_transaction(self.engine, work)

    @staticmethod
    def _linked(conn: Connection, account_id: str, vendor: str) -> str | None:
        """The account's active cloud account of ``vendor`` linked first, if any."""
        c = t.cloud_accounts
        return conn.execute(select(c.c.id).where(
            c.c.account_id == account_id, c.c.vendor == vendor, c.c.status == ACTIVE)
            .order_by(c.c.linked_at, c.c.id).limit(1)).scalar()


def _cloud_account(row: Any) -> CloudAccount:
    return CloudAccount(id=row.id, vendor=row.vendor, external_id=row.external_id,
                        status=row.status, linked_at=row.linked_at,
                        cancelled_at=row.cancelled_at)
