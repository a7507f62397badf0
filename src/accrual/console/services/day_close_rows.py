"""The rows of a close: its planned details as billing_details and daily_statistics rows
and outbox messages, and the bulk write that stores them.

Billing-detail envelopes are written as JSON text by hand while the contract allows it
(``_DIRECT_JSON``); tests/unit/test_fast_paths.py pins them to the pydantic path.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Connection, bindparam, update

from accrual.console.adapters import tables as t
from accrual.console.domain.rating import PlannedDetail
from accrual.console.services.day_close_texts import (
    _decimal_text,
    _detail_id,
    _fast_detail_id,
    _json_or_null,
    _json_text,
    _minor_text,
    _uuid5_text,
)
from accrual.contract.messages import BILLING_DETAIL, BillingDetail, Envelope
from accrual.infra.bulk import insert_rows
from accrual.infra.outbox import enqueue_serialized
from accrual.money import MINOR_UNITS, format_decimal, format_minor

_DETAIL_COLUMNS = ("id", "workspace_id", "billing_account_id", "day", "item", "retention_days",
                   "revision", "kind", "quantity", "unit_size", "unit_price", "amount_minor",
                   "currency", "price_book_version", "adjusts", "reason", "created_at")
_STAT_COLUMNS = ("workspace_id", "day", "item", "retention_days", "quantity", "amount_minor",
                 "revision", "updated_at")

# Billing-detail envelopes are written as JSON directly while the contract has exactly
# these fields (in this order); any change to it falls back to building them with pydantic.
_DETAIL_FIELDS = ("id", "site", "workspace_id", "billing_account_id", "day", "item",
                  "retention_days", "quantity", "unit_size", "unit_price", "amount", "currency",
                  "price_book_version", "kind", "revision", "adjusts", "reason", "created_at")
_ENVELOPE_FIELDS = ("id", "type", "schema_version", "aggregate_id", "aggregate_version", "site",
                    "occurred_at", "payload")
_DIRECT_JSON = (tuple(BillingDetail.model_fields) == _DETAIL_FIELDS
                and tuple(Envelope.model_fields) == _ENVELOPE_FIELDS
                and Envelope.model_fields["aggregate_version"].default == 0
                and Envelope.model_fields["site"].default is None)


class _Rows:
    """What a close writes for its planned details: billing_details and daily_statistics rows
    and outbox messages, built in one pass with what repeats (per workspace, per item and
    price) worked out once."""

    def __init__(self, site: str, currency: str, now: datetime,
                 accounts: dict[str, str | None]) -> None:
        self.site, self.currency, self.now, self.accounts = site, currency, now, accounts
        self.details: list[tuple[object, ...]] = []
        self.new_stats: list[tuple[object, ...]] = []
        self.changed_stats: list[dict[str, object]] = []
        self.messages: list[tuple[str, str, str]] = []
        self.texts: dict[Decimal, str] = {}  # unit sizes and prices → their decimal text
        if _DIRECT_JSON:
            occurred = json.dumps(Envelope(id="-", type=BILLING_DETAIL, aggregate_id="-",
                                           occurred_at=now, payload={}).model_dump(
                                               mode="json")["occurred_at"])
            version = Envelope.model_fields["schema_version"].default
            self.head = (f'","type":"{BILLING_DETAIL}","schema_version":{version},'
                         f'"aggregate_id":')
            self.middle = (f',"aggregate_version":0,"site":null,"occurred_at":{occurred},'
                           f'"payload":{{"id":"')
            self.site_part = f'","site":{_json_text(site)},"workspace_id":'
            self.currency_part = f'","currency":{_json_text(currency)},"price_book_version":'
            self.tail = f',"created_at":{occurred}}}}}'
        # per workspace: (its id as JSON, its id prefix, ',"billing_account_id":…')
        self.workspaces: dict[str, tuple[str, str, str]] = {}
        # per (day, item, tier): (its id suffix, ',"day":…,"item":…,"retention_days":…')
        self.keys: dict[tuple[date, str, int], tuple[str, str]] = {}
        # per (unit size, unit price, price book version): the texts and JSON around them
        self.prices: dict[tuple[Decimal, Decimal, str], tuple[str, str, str, str]] = {}

    def add(self, planned: Iterable[PlannedDetail]) -> None:
        site, currency, now, accounts = self.site, self.currency, self.now, self.accounts
        digits = MINOR_UNITS[self.currency]
        direct = _DIRECT_JSON and _detail_id is _fast_detail_id
        details, messages = self.details, self.messages
        new_stats, changed_stats = self.new_stats, self.changed_stats
        workspaces, keys, prices = self.workspaces, self.keys, self.prices
        for p in planned:
            key = p.key
            workspace_id, day, item, tier = key.workspace_id, key.day, key.item, key.retention_days
            revision = p.revision
            account = accounts.get(workspace_id)
            quantity = _decimal_text(p.quantity)
            found = prices.get((p.unit_size, p.unit_price, p.price_book_version))
            if found is None:
                found = self._price_texts(p)
            unit_size, unit_price, price_json, version_json = found
            if direct:
                ws = workspaces.get(workspace_id)
                if ws is None:
                    ws = workspaces[workspace_id] = (
                        _json_text(workspace_id), f"{site}/{workspace_id}/",
                        f',"billing_account_id":{_json_or_null(account)}')
                k = keys.get((day, item, tier))
                if k is None:
                    k = keys[(day, item, tier)] = (
                        f"{day.isoformat()}/{item}/{tier}/",
                        (f',"day":"{day.isoformat()}","item":{_json_text(item)},'
                         f'"retention_days":{tier},"quantity":"'))
                did = _uuid5_text(f"{ws[1]}{k[0]}{revision}")
                adjusts, reason = p.adjusts, p.reason
                body = (f'{{"id":"{did}{self.head}{ws[0]}{self.middle}{did}{self.site_part}'
                        f'{ws[0]}{ws[2]}{k[1]}{quantity}{price_json}'
                        f'{_minor_text(p.amount_minor, digits)}{self.currency_part}'
                        f'{version_json}"{p.kind}","revision":{revision},"adjusts":'
                        f'{"null" if adjusts is None else _json_text(adjusts)},"reason":'
                        f'{"null" if reason is None else _json_text(reason)}{self.tail}')
            else:
                did = _detail_id(site, workspace_id, day, item, tier, revision)
                detail = BillingDetail(
                    id=did, site=site, workspace_id=workspace_id, billing_account_id=account,
                    day=day, item=item, retention_days=tier, quantity=quantity,
                    unit_size=unit_size, unit_price=unit_price,
                    amount=format_minor(p.amount_minor, currency), currency=currency,
                    price_book_version=p.price_book_version, kind=p.kind,  # type: ignore[arg-type]
                    revision=revision, adjusts=p.adjusts, reason=p.reason, created_at=now)
                body = Envelope(id=did, type=BILLING_DETAIL, aggregate_id=workspace_id,
                                occurred_at=now,
                                payload=detail.model_dump(mode="json")).model_dump_json()
            details.append((did, workspace_id, account, day, item, tier, revision, p.kind,
                            quantity, unit_size, unit_price, p.amount_minor, currency,
                            p.price_book_version, p.adjusts, p.reason, now))
            messages.append((did, BILLING_DETAIL, body))
            total_quantity = (quantity if p.total_quantity is p.quantity
                              else _decimal_text(p.total_quantity))
            if p.kind == "charge":
                new_stats.append((workspace_id, day, item, tier, total_quantity,
                                  p.total_amount_minor, revision, now))
            else:
                changed_stats.append({
                    "k_workspace_id": workspace_id, "k_day": day, "k_item": item,
                    "k_retention_days": tier, "v_quantity": total_quantity,
                    "v_amount_minor": p.total_amount_minor, "v_revision": revision})

    def _price_texts(self, p: PlannedDetail) -> tuple[str, str, str, str]:
        unit_size, unit_price = format_decimal(p.unit_size), format_decimal(p.unit_price)
        found = self.prices[(p.unit_size, p.unit_price, p.price_book_version)] = (
            unit_size, unit_price,
            f'","unit_size":"{unit_size}","unit_price":"{unit_price}","amount":"',
            f'{_json_text(p.price_book_version)},"kind":')
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
