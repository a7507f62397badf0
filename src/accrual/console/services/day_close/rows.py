"""The rows of a close: its planned details as billing_details and daily_statistics rows
and outbox messages, and the bulk write that stores them.

The envelopes are the contract's (``BillingDetailJson``, equal byte for byte to the
contract's models); the decimal texts are written by hand for speed, pinned to
``format_decimal``/``format_minor`` by tests/unit/test_fast_paths.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Connection, bindparam, update

from accrual.console.adapters import tables as t
from accrual.console.domain.rating import PlannedDetail
from accrual.contract.messages import (
    BILLING_DETAIL,
    BillingDetailJson,
    KeyJson,
    PriceJson,
    WorkspaceJson,
)
from accrual.infra.bulk import insert_rows
from accrual.infra.outbox import enqueue_serialized
from accrual.money import MINOR_UNITS, format_decimal

_DETAIL_COLUMNS = ("id", "workspace_id", "billing_account_id", "day", "item", "retention_days",
                   "revision", "kind", "quantity", "unit_size", "unit_price", "amount_minor",
                   "currency", "price_book_version", "adjusts", "reason", "created_at")
_STAT_COLUMNS = ("workspace_id", "day", "item", "retention_days", "quantity", "amount_minor",
                 "revision", "updated_at")


def decimal_text(value: Decimal) -> str:
    """``format_decimal``, with a shortcut for the whole numbers quantities mostly are."""
    whole = int(value)
    if 0 < whole < 10**18 and whole == value:
        return str(whole)
    return format_decimal(value)


def minor_text(amount_minor: int, digits: int) -> str:
    """``format_minor`` for whole minor units, in integer arithmetic."""
    if not digits:
        return str(amount_minor)
    whole, part = divmod(abs(amount_minor), 10**digits)
    return f"{'-' if amount_minor < 0 else ''}{whole}.{part:0{digits}d}"


class CloseRows:
    """What a close writes for its planned details: billing_details and daily_statistics rows
    and outbox messages, built in one pass with what repeats (per workspace, per item and
    per price) worked out once."""

    def __init__(self, site: str, currency: str, now: datetime,
                 accounts: dict[str, str | None]) -> None:
        self.currency, self.now, self.accounts = currency, now, accounts
        self.envelopes = BillingDetailJson(site, currency, now)
        self.details: list[tuple[object, ...]] = []
        self.new_stats: list[tuple[object, ...]] = []
        self.changed_stats: list[dict[str, object]] = []
        self.messages: list[tuple[str, str, str]] = []
        self.workspaces: dict[str, WorkspaceJson] = {}
        self.keys: dict[tuple[date, str, int], KeyJson] = {}
        # per (unit size, unit price, price book version): their texts and JSON
        self.prices: dict[tuple[Decimal, Decimal, str], tuple[str, str, PriceJson]] = {}

    def add(self, planned: Iterable[PlannedDetail]) -> None:
        currency, now, accounts = self.currency, self.now, self.accounts
        digits = MINOR_UNITS[currency]
        envelopes = self.envelopes
        compose = envelopes.compose
        details, messages = self.details, self.messages
        new_stats, changed_stats = self.new_stats, self.changed_stats
        workspaces, keys, prices = self.workspaces, self.keys, self.prices
        for p in planned:
            key = p.key
            workspace_id, day, item, tier = key.workspace_id, key.day, key.item, key.retention_days
            revision = p.revision
            account = accounts.get(workspace_id)
            quantity = decimal_text(p.quantity)
            ws = workspaces.get(workspace_id)
            if ws is None:
                ws = workspaces[workspace_id] = envelopes.workspace(workspace_id, account)
            k = keys.get((day, item, tier))
            if k is None:
                k = keys[(day, item, tier)] = envelopes.key(day, item, tier)
            texts = prices.get((p.unit_size, p.unit_price, p.price_book_version))
            if texts is None:
                texts = self._price_texts(p)
            unit_size, unit_price, price_json = texts
            did, body = compose(ws, k, price_json, revision, quantity,
                                minor_text(p.amount_minor, digits), p.kind, p.adjusts, p.reason)
            details.append((did, workspace_id, account, day, item, tier, revision, p.kind,
                            quantity, unit_size, unit_price, p.amount_minor, currency,
                            p.price_book_version, p.adjusts, p.reason, now))
            messages.append((did, BILLING_DETAIL, body))
            total_quantity = (quantity if p.total_quantity is p.quantity
                              else decimal_text(p.total_quantity))
            if p.kind == "charge":
                new_stats.append((workspace_id, day, item, tier, total_quantity,
                                  p.total_amount_minor, revision, now))
            else:
                changed_stats.append({
                    "k_workspace_id": workspace_id, "k_day": day, "k_item": item,
                    "k_retention_days": tier, "v_quantity": total_quantity,
                    "v_amount_minor": p.total_amount_minor, "v_revision": revision})

    def _price_texts(self, p: PlannedDetail) -> tuple[str, str, PriceJson]:
        unit_size, unit_price = format_decimal(p.unit_size), format_decimal(p.unit_price)
        found = self.prices[(p.unit_size, p.unit_price, p.price_book_version)] = (
            unit_size, unit_price,
            self.envelopes.price(unit_size, unit_price, p.price_book_version))
        return found

    def write(self, conn: Connection) -> None:
        insert_rows(conn, t.billing_details, _DETAIL_COLUMNS, self.details)
        if self.new_stats:
            insert_rows(conn, t.daily_statistics, _STAT_COLUMNS, self.new_stats)
        if self.changed_stats:
            s = t.daily_statistics
            conn.execute(update(s).where(
                s.c.workspace_id == bindparam("k_workspace_id"), s.c.day == bindparam("k_day"),
                s.c.item == bindparam("k_item"),
                s.c.retention_days == bindparam("k_retention_days"),
            ).values(quantity=bindparam("v_quantity"), amount_minor=bindparam("v_amount_minor"),
                     revision=bindparam("v_revision"), updated_at=self.now), self.changed_stats)
        enqueue_serialized(conn, t.outbox, self.messages, self.now)
        for rows in (self.details, self.new_stats, self.changed_stats, self.messages):
            rows.clear()
