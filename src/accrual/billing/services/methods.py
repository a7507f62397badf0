"""Settlement methods: how a workspace's bills are paid (reference-billing.md §4.1, §6).

``billing_center``: the account's wallet (vouchers, cards, cash, then arrears).
A cloud marketplace (``aws``, ``aliyun``, ``huawei``, ``azure``): vouchers and
cards first, the rest through the linked cloud account (what the vendor is to
be billed collects on the center's ``cloud_receivable`` account). A change
takes effect at the start of the next billing day and is allowed once per
calendar month in the center's zone (decisions.md 11); it unlocks a workspace
locked for arrears at once (decisions.md 18).

A workspace locked because its Huawei subscription ended already settles by the
billing center from the next day (the cloud link removed, reference-billing.md §5.4):
choosing the billing center for it confirms that and unlocks it at once, with no new
binding and without using the month's change (:meth:`SettlementMethods.change_in`).
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
from accrual.billing.domain.subscriptions import ended
from accrual.billing.services import cloud_locks
from accrual.billing.services.accounts import BillingAccounts, Binding, Bound
from accrual.billing.services.arrears import Arrears
from accrual.clock import Clock, day_bounds
from accrual.contract.errors import Conflict, NotFound
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
    status: str  # see domain.subscriptions.CloudStatus
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
            if row is not None and row.account_id is None:
                # Resolved from the marketplace and not taken yet: the operator links it.
                conn.execute(update(c).where(c.c.id == row.id)
                             .values(account_id=account_id, linked_at=self.clock.now()))
                return _cloud_account(conn.execute(select(c).where(c.c.id == row.id)).one()), True
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

    def change(self, account_id: str, workspace_id: str, method: object,
               cloud_account_id: str | None = None) -> MethodChange:
        """Settle ``workspace_id`` by ``method`` from the next billing day on; for a
        marketplace, through ``cloud_account_id`` (one of the account's active cloud
        accounts of that vendor; by default the only one)."""
        chosen = rules.check_method(method, self.config.currency)
        self.accounts.account(account_id)
        return in_transaction(self.engine, lambda conn: self.change_in(
            conn, account_id, workspace_id, chosen, cloud_account_id, reason="method_changed"))

    def change_in(self, conn: Connection, account_id: str, workspace_id: str, chosen: str,
                  cloud_account_id: str | None, *, reason: str) -> MethodChange:
        """:meth:`change` in the caller's transaction, ``chosen`` checked already.

        A workspace locked because its subscription was cancelled is unlocked at once by
        any change that gives it a live way to pay (``reason`` says which route: a new
        activation, another cloud account, the billing center); the once-a-month limit
        never keeps it locked."""
        today = self.accounts.today()
        tomorrow = rules.effective_from(today)
        current = self.accounts.binding_in_force(conn, workspace_id, today)
        upcoming = self.accounts.binding_in_force(conn, workspace_id, tomorrow)
        month_start, _ = rules.month_of(today)
        first, _ = day_bounds(month_start, self.config.zone)
        changes = t.settlement_changes
        picked = None
        if rules.is_cloud(chosen):
            candidates = self._active_ids(conn, account_id, chosen)
            if candidates or cloud_account_id is not None:
                picked = rules.pick_cloud_account(chosen, candidates, cloud_account_id)
        locked = cloud_locks.is_locked(conn, workspace_id)
        if locked and chosen == BILLING_CENTER and upcoming is not None \
                and upcoming.settlement_method == BILLING_CENTER:
            return self._confirm_billing_center(conn, account_id, workspace_id, current,
                                                upcoming)
        rules.check_change(
            account_id=account_id, workspace_id=workspace_id, method=chosen, today=today,
            current=None if current is None else _rule_binding(current),
            # A workspace bound today is bound tomorrow (a binding only ever moves).
            upcoming=_rule_binding(upcoming) if upcoming is not None
            else rules.Binding("", ""),
            cloud_account_linked=picked is not None, cloud_account_id=picked,
            changed_this_month=conn.execute(select(changes.c.requested_at).where(
                changes.c.workspace_id == workspace_id, changes.c.requested_at >= first)
                .limit(1)).first() is not None,
            currency=self.config.currency, activated_via=self._activated_via(conn, workspace_id),
            released=locked or self._released(conn, upcoming), locked_by_cloud=locked)
        assert upcoming is not None  # checked above: bound today, so bound tomorrow
        now = self.clock.now()
        bound = self.accounts.bind_in(conn, workspace_id, account_id, chosen, picked)
        conn.execute(insert(changes).values(
            workspace_id=workspace_id, account_id=account_id,
            from_method=upcoming.settlement_method, to_method=chosen,
            effective_from=tomorrow, requested_at=now))
        unlocked = False
        if rules.is_cloud(chosen):
            # Nothing more is owed through the wallet for it: its lock ends now.
            unlocked = self.arrears.release_workspace(conn, workspace_id, "method_changed")
        if locked:
            route = reason if reason != "method_changed" else \
                ("billing_center" if chosen == BILLING_CENTER else "cloud_account")
            unlocked = cloud_locks.unlock(conn, workspace_id, route, account_id, now) \
                or unlocked
        return MethodChange(bound, upcoming.settlement_method, unlocked)

    def _confirm_billing_center(self, conn: Connection, account_id: str, workspace_id: str,
                                current: Binding | None, upcoming: Binding) -> MethodChange:
        """A locked workspace whose ended subscription moved it to the billing center
        already (Huawei): the owner's choice of the billing center is what unlocks it.
        The same refusals as a change (not this account's, moving to another account);
        nothing else is written."""
        if current is None or current.account_id != account_id:
            raise NotFound("workspace_not_found",
                           f"workspace {workspace_id} is not bound to this account")
        if upcoming.account_id != account_id:
            raise Conflict("binding_changing", "this workspace moves to another account "
                                               "tomorrow; its new account chooses the method")
        rules.check_channel(BILLING_CENTER, self.config.currency,
                            self._activated_via(conn, workspace_id), released=True)
        unlocked = cloud_locks.unlock(conn, workspace_id, "billing_center", account_id,
                                      self.clock.now())
        bound = Bound(workspace_id, account_id, BILLING_CENTER, upcoming.effective_from,
                      changed=False)
        return MethodChange(bound, BILLING_CENTER, unlocked)

    @staticmethod
    def _active_ids(conn: Connection, account_id: str, vendor: str) -> list[str]:
        c = t.cloud_accounts
        return list(conn.execute(select(c.c.id).where(
            c.c.account_id == account_id, c.c.vendor == vendor, c.c.status == ACTIVE)
            .order_by(c.c.linked_at, c.c.id)).scalars())

    @staticmethod
    def _activated_via(conn: Connection, workspace_id: str) -> str | None:
        return conn.execute(select(t.workspaces.c.activated_via).where(
            t.workspaces.c.workspace_id == workspace_id)).scalar()

    @staticmethod
    def _released(conn: Connection, binding: Binding | None) -> bool:
        """Whether the subscription the workspace settles through has ended (rule 7's
        exception): its cloud account is cancelled or never started."""
        if binding is None or binding.cloud_account_id is None:
            return False
        status = conn.execute(select(t.cloud_accounts.c.status).where(
            t.cloud_accounts.c.id == binding.cloud_account_id)).scalar()
        return status is not None and ended(status)


def _rule_binding(binding: Binding) -> rules.Binding:
    return rules.Binding(binding.account_id, binding.settlement_method,
                         binding.cloud_account_id)


def _cloud_account(row: Any) -> CloudAccount:
    return CloudAccount(id=row.id, vendor=row.vendor, external_id=row.external_id,
                        status=row.status, linked_at=row.linked_at,
                        cancelled_at=row.cancelled_at)
