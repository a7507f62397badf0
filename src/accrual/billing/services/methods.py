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
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from accrual.billing.adapters import tables as t
from accrual.billing.config import BillingConfig
from accrual.billing.domain import settlement
from accrual.billing.services.accounts import BillingAccounts
from accrual.billing.services.arrears import Arrears
from accrual.clock import Clock, day_bounds
from accrual.contract.errors import Conflict, Invalid, NotFound
from accrual.infra.db import in_transaction

BILLING_CENTER = "billing_center"
VENDORS = settlement.CLOUD_METHODS
METHODS = (BILLING_CENTER, *VENDORS)
ACTIVE, CANCELLED = "active", "cancelled"


def is_cloud(method: str | None) -> bool:
    return method in VENDORS


class SettlementMethods:
    def __init__(self, engine: Engine, config: BillingConfig, clock: Clock,
                 accounts: BillingAccounts, arrears: Arrears) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.accounts = accounts
        self.arrears = arrears

    def available(self) -> tuple[str, ...]:
        # decisions.md 14: Azure is a method of the USD billing center only.
        return tuple(m for m in METHODS if m != "azure" or self.config.currency == "USD")

    # -- cloud accounts ----------------------------------------------------------

    def link_cloud_account(self, account_id: str, vendor: str, external_id: str) -> dict[str, Any]:
        """Record a marketplace account as one this billing account may settle through.

        Marketplace activation records it; until that flow exists the operator does. One
        cloud account belongs to one billing account; linking it again is a no-op.
        """
        if vendor not in VENDORS or vendor not in self.available():
            raise Invalid("invalid_vendor",
                          f"vendor must be one of {', '.join(v for v in self.available() if v in VENDORS)}")
        if not isinstance(external_id, str) or not 1 <= len(external_id.strip()) <= 128:
            raise Invalid("invalid_cloud_account", "the cloud account id is 1 to 128 characters")
        external_id = external_id.strip()
        self.accounts.account(account_id)
        c = t.cloud_accounts

        def work(conn: Connection) -> dict[str, Any]:
            row = conn.execute(select(c).where(c.c.vendor == vendor, c.c.external_id == external_id,
                                               c.c.status == ACTIVE)).first()
            if row is not None:
                if row.account_id != account_id:
                    raise Conflict("cloud_account_taken",
                                   "this cloud account is linked to another billing account")
                return {**_present(row), "created": False}
            link_id = "ca_" + secrets.token_hex(12)
            conn.execute(insert(c).values(id=link_id, account_id=account_id, vendor=vendor,
                                          external_id=external_id, status=ACTIVE,
                                          linked_at=self.clock.now()))
            return {**_present(conn.execute(select(c).where(c.c.id == link_id)).one()),
                    "created": True}

        return in_transaction(self.engine, work)

    def cloud_accounts(self, account_id: str) -> list[dict[str, Any]]:
        self.accounts.account(account_id)
        c = t.cloud_accounts
        with self.engine.connect() as conn:
            return [_present(r) for r in conn.execute(
                select(c).where(c.c.account_id == account_id).order_by(c.c.linked_at, c.c.id))]

    # -- changing the method -----------------------------------------------------

    def change(self, account_id: str, workspace_id: str, method: object) -> dict[str, Any]:
        """Settle ``workspace_id`` by ``method`` from the next billing day on."""
        if not isinstance(method, str) or method not in METHODS:
            raise Invalid("invalid_settlement_method",
                          f"settlement_method must be one of {', '.join(self.available())}")
        if method not in self.available():
            raise Invalid("method_not_available",
                          f"{method} settlement is not offered by the {self.config.currency} "
                          "billing center")
        self.accounts.account(account_id)

        def work(conn: Connection) -> dict[str, Any]:
            today = self.accounts.today()
            tomorrow = today + timedelta(days=1)
            current = self.accounts.binding_in_force(conn, workspace_id, today)
            if current is None or current.account_id != account_id:
                raise NotFound("workspace_not_found",
                               f"workspace {workspace_id} is not bound to this account")
            upcoming = self.accounts.binding_in_force(conn, workspace_id, tomorrow)
            assert upcoming is not None
            if upcoming.account_id != account_id:
                raise Conflict("binding_changing", "this workspace moves to another account "
                                                   "tomorrow; its new account chooses the method")
            if upcoming.settlement_method == method:
                raise Conflict("settlement_unchanged",
                               f"the workspace already settles by {method} from tomorrow")
            if is_cloud(method) and not self._linked(conn, account_id, method):
                raise Conflict("cloud_account_required",
                               f"link a {method} cloud account to this billing account first "
                               "(activate through the marketplace)")
            month_start, next_month = _month(today)
            first, _ = day_bounds(month_start, self.config.zone)
            changes = t.settlement_changes
            done = conn.execute(select(changes.c.requested_at).where(
                changes.c.workspace_id == workspace_id, changes.c.requested_at >= first)
                .limit(1)).first()
            if done is not None:
                raise Conflict("settlement_change_limit",
                               "the settlement method can change once a calendar month; "
                               f"next possible on {next_month.isoformat()}")
            now = self.clock.now()
            bound = self.accounts.bind_in(conn, workspace_id, account_id, method)
            conn.execute(insert(changes).values(
                workspace_id=workspace_id, account_id=account_id,
                from_method=upcoming.settlement_method, to_method=method,
                effective_from=tomorrow, requested_at=now))
            unlocked = False
            if is_cloud(method):
                # Nothing more is owed through the wallet for it: its lock ends now.
                unlocked = self.arrears.release_workspace(conn, workspace_id, "method_changed")
            return {**bound, "from_method": upcoming.settlement_method, "unlocked": unlocked}

        return in_transaction(self.engine, work)

    @staticmethod
    def _linked(conn: Connection, account_id: str, vendor: str) -> bool:
        c = t.cloud_accounts
        return conn.execute(select(c.c.id).where(
            c.c.account_id == account_id, c.c.vendor == vendor, c.c.status == ACTIVE)
            .limit(1)).first() is not None


def _month(day: date) -> tuple[date, date]:
    start = day.replace(day=1)
    following = (start + timedelta(days=32)).replace(day=1)
    return start, following


def _present(row: Any) -> dict[str, Any]:
    linked: datetime = row.linked_at
    return {"id": row.id, "vendor": row.vendor, "cloud_account_id": row.external_id,
            "status": row.status, "linked_at": linked.isoformat(),
            "cancelled_at": row.cancelled_at.isoformat() if row.cancelled_at else None}
