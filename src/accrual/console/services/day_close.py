"""Day close: usage → daily statistics → billing details, in one transaction with the outbox.

Closing is a comparison of what the day's usage says with what was already
billed for it, so closing the same day twice changes nothing, and late usage
for a closed day produces exactly the adjustment detail that is missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)

from accrual.catalog import ITEMS, PriceBook
from accrual.catalog.items import DailyRule
from accrual.catalog.pricebook import Price
from accrual.catalog.rules import POST_RULE_ITEMS, daily_quantity
from accrual.clock import Clock, site_day
from accrual.console.adapters import tables as t
from accrual.console.config import ConsoleConfig
from accrual.console.domain.rating import Billed, PlannedDetail, StatKey, plan_details
from accrual.contract.errors import ServiceError
from accrual.contract.messages import (
    _NAMESPACE,
    BILLING_DETAIL,
    BillingDetail,
    Envelope,
    detail_id,
)
from accrual.infra.bulk import among, insert_rows
from accrual.infra.outbox import enqueue_serialized
from accrual.money import MINOR_UNITS, format_decimal, format_minor

log = logging.getLogger(__name__)

_MAX_ITEMS = sorted(code for code, item in ITEMS.items() if item.rule is DailyRule.MAX)

_DETAIL_COLUMNS = ("id", "workspace_id", "billing_account_id", "day", "item", "retention_days",
                   "revision", "kind", "quantity", "unit_size", "unit_price", "amount_minor",
                   "currency", "price_book_version", "adjusts", "reason", "created_at")
_STAT_COLUMNS = ("workspace_id", "day", "item", "retention_days", "quantity", "amount_minor",
                 "revision", "updated_at")


# -- the hot path of a close: ids and message bodies for hundreds of thousands of details --

_NAMESPACE_BYTES = _NAMESPACE.bytes


def _uuid5_text(name: str) -> str:
    """``str(uuid.uuid5(_NAMESPACE, name))``, without building UUID objects."""
    raw = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode()).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _fast_detail_id(site: str, workspace_id: str, day: date, item: str, tier: int,
                    revision: int) -> str:
    return _uuid5_text(f"{site}/{workspace_id}/{day.isoformat()}/{item}/{tier}/{revision}")


# The contract's detail_id is the reference; the fast one is used only while they agree.
_SAMPLE_ID = ("cn1", "0f" * 16, date(2026, 11, 25), "logs", 7, 2)
_detail_id = (_fast_detail_id if _fast_detail_id(*_SAMPLE_ID) == detail_id(*_SAMPLE_ID)
              else detail_id)

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
_json_text = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]


def _json_or_null(value: str | None) -> str:
    return "null" if value is None else _json_text(value)  # type: ignore[no-any-return]


def _decimal_text(value: Decimal) -> str:
    """``format_decimal``, with a shortcut for the whole numbers quantities mostly are."""
    whole = int(value)
    if 0 < whole < 10**18 and whole == value:
        return str(whole)
    return format_decimal(value)


def _minor_text(amount_minor: int, digits: int) -> str:
    """``format_minor`` for whole minor units, in integer arithmetic."""
    if not digits:
        return str(amount_minor)
    whole, part = divmod(abs(amount_minor), 10**digits)
    return f"{'-' if amount_minor < 0 else ''}{whole}.{part:0{digits}d}"


class _Prices:
    """The price book's answers, remembered for one close (asked once per statistic)."""

    def __init__(self, book: PriceBook) -> None:
        self.book = book
        self.known: dict[tuple[str, str, str, int, date], Price] = {}

    def price(self, currency: str, site_group: str, item: str, tier: int, day: date) -> Price:
        key = (currency, site_group, item, tier, day)
        found = self.known.get(key)
        if found is None:
            found = self.known[key] = self.book.price(currency, site_group, item, tier, day)
        return found


@dataclass(frozen=True)
class CloseResult:
    day: date
    charges: int
    adjustments: int
    already_closed: bool


class DayClose:
    def __init__(self, engine: Engine, config: ConsoleConfig, clock: Clock, book: PriceBook) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.book = book

    def last_closable_day(self, now: datetime | None = None) -> date:
        """The newest day whose end plus the grace has passed."""
        now = now or self.clock.now()
        return site_day(now - self.config.day_close_grace, self.config.zone) - timedelta(days=1)

    def close_day(self, day: date, *, workspaces: Iterable[str] | None = None,
                  reason: str = "late usage") -> CloseResult:
        now = self.clock.now()
        if day >= site_day(now, self.config.zone):
            raise ServiceError("day_not_over",
                               f"{day.isoformat()} has not ended yet on site {self.config.site}", 422)
        if day < site_day(now - self.config.late_horizon, self.config.zone):
            raise ServiceError("day_beyond_horizon",
                               f"{day.isoformat()} is older than the late-data horizon", 422)
        scope = None if workspaces is None else sorted(set(workspaces))
        charges = adjustments = 0
        with self.engine.begin() as conn:
            self._lock_day(conn, day)
            already = conn.execute(select(t.closed_days.c.day)
                                   .where(t.closed_days.c.day == day)).first() is not None
            statistics, accounts = self._statistics(conn, day, scope)
            billed = self._billed(conn, day, scope)
            prices = _Prices(self.book)
            # Part by part, in workspace order (the order one plan over the whole day gives);
            # on PostgreSQL the writer stores a part while the next one is priced.
            with _Writer(conn) as writer:
                for statistics_part, billed_part in _parts(statistics, billed):
                    planned = plan_details(statistics_part, billed_part,
                                           book=prices,  # type: ignore[arg-type]
                                           currency=self.config.currency,
                                           site_group=self.config.site_group, reason=reason)
                    if not planned:
                        continue
                    part_charges = sum(1 for p in planned if p.kind == "charge")
                    charges += part_charges
                    adjustments += len(planned) - part_charges
                    rows = _Rows(self.config.site, self.config.currency, now, accounts)
                    rows.add(planned)
                    writer.put(rows)
            if not already:
                conn.execute(insert(t.closed_days).values(day=day, closed_at=now))
        log.info("closed %s on %s: %d charges, %d adjustments", day, self.config.site, charges,
                 adjustments)
        return CloseResult(day, charges, adjustments, already)

    def close_due_days(self) -> list[CloseResult]:
        """What the scheduler runs: every day up to the last closable one, then late usage."""
        now = self.clock.now()
        target = self.last_closable_day(now)
        earliest = site_day(now - self.config.late_horizon, self.config.zone) + timedelta(days=1)
        with self.engine.connect() as conn:
            last_closed = conn.execute(select(func.max(t.closed_days.c.day))).scalar()
            first_usage = conn.execute(select(func.min(t.usage_records.c.day))
                                       .where(t.usage_records.c.day >= earliest)).scalar()
        start = last_closed + timedelta(days=1) if last_closed else (first_usage or target)
        start = max(start, earliest)
        results = []
        day = start
        while day <= target:
            results.append(self.close_day(day))
            day += timedelta(days=1)
        results.extend(self.settle_late_usage())
        return results

    def settle_late_usage(self) -> list[CloseResult]:
        """Turn usage that arrived for closed days into adjustment details."""
        with self.engine.connect() as conn:
            pending = conn.execute(select(t.late_days.c.workspace_id, t.late_days.c.day)).all()
        by_day: dict[date, list[str]] = {}
        for workspace_id, day in pending:
            by_day.setdefault(day, []).append(workspace_id)
        results = []
        horizon = site_day(self.clock.now() - self.config.late_horizon, self.config.zone)
        for day, workspace_ids in sorted(by_day.items()):
            if day >= horizon:
                results.append(self.close_day(day, workspaces=workspace_ids))
            with self.engine.begin() as conn:
                conn.execute(delete(t.late_days).where(t.late_days.c.day == day,
                                                       t.late_days.c.workspace_id.in_(workspace_ids)))
        return results

    # -- steps ------------------------------------------------------------

    def _lock_day(self, conn: Connection, day: date) -> None:
        if conn.dialect.name == "postgresql":
            key = zlib.crc32(f"close-day/{self.config.site}/{day.isoformat()}".encode())
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        # SQLite: every transaction already holds the write lock (BEGIN IMMEDIATE).

    def _statistics(self, conn: Connection, day: date, scope: list[str] | None
                    ) -> tuple[dict[str, dict[StatKey, Decimal]], dict[str, str | None]]:
        """The day's statistics of commercial workspaces, by workspace, and their accounts."""
        u, w = t.usage_records, t.workspaces
        is_max = u.c.item.in_(_MAX_ITEMS)
        quantity = case((is_max, func.max(u.c.quantity)), else_=func.sum(u.c.quantity))
        query = (select(u.c.workspace_id, u.c.item, u.c.retention_days, quantity.label("q"),
                        w.c.billing_account_id, func.sum(u.c.companion).label("companion"))
                 .join(w, w.c.id == u.c.workspace_id)
                 .where(u.c.day == day, w.c.plan == "commercial",
                        # usage from before an upgrade stays free
                        or_(w.c.commercial_since.is_(None),
                            u.c.occurred_at >= w.c.commercial_since))
                 .group_by(u.c.workspace_id, u.c.item, u.c.retention_days, w.c.billing_account_id))
        if scope is not None:
            query = query.where(among(conn, u.c.workspace_id, scope))
        statistics: dict[str, dict[StatKey, Decimal]] = {}
        accounts: dict[str, str | None] = {}
        # Streamed (a server-side cursor on PostgreSQL): the rows are keyed while the
        # database is still aggregating the next ones.
        for workspace_id, item, tier, q, account, companion in conn.execute(
                query.execution_options(yield_per=_STREAM_ROWS)):
            found = statistics.get(workspace_id)
            if found is None:
                found = statistics[workspace_id] = {}
                accounts[workspace_id] = account
            quantity_ = q if type(q) is Decimal else Decimal(q)
            if item in POST_RULE_ITEMS and companion:
                quantity_ = daily_quantity(item, quantity_, companion)
            found[StatKey(workspace_id, day, item, tier)] = quantity_
        return statistics, accounts

    def _billed(self, conn: Connection, day: date, scope: list[str] | None
                ) -> dict[str, dict[StatKey, Billed]]:
        """What was billed for the day so far, by workspace."""
        s = t.daily_statistics
        query = select(s.c.workspace_id, s.c.item, s.c.retention_days, s.c.quantity,
                       s.c.amount_minor, s.c.revision).where(s.c.day == day)
        if scope is not None:
            query = query.where(among(conn, s.c.workspace_id, scope))
        billed: dict[str, dict[StatKey, Billed]] = {}
        site = self.config.site
        for workspace_id, item, tier, quantity, amount_minor, revision in conn.execute(
                query.execution_options(yield_per=_STREAM_ROWS)):
            found = billed.get(workspace_id)
            if found is None:
                found = billed[workspace_id] = {}
            found[StatKey(workspace_id, day, item, tier)] = Billed(
                Decimal(quantity), amount_minor, revision,
                _detail_id(site, workspace_id, day, item, tier, revision))
        return billed


# Statistics priced and written per part, so that on PostgreSQL one part is stored while
# the next is priced.
PART_SIZE = 20_000
_STREAM_ROWS = 10_000


def _parts(statistics: dict[str, dict[StatKey, Decimal]], billed: dict[str, dict[StatKey, Billed]]
           ) -> Iterator[tuple[dict[StatKey, Decimal], dict[StatKey, Billed]]]:
    """The statistics and billed amounts in parts of about PART_SIZE keys, whole workspaces
    in sorted order."""
    statistics_part: dict[StatKey, Decimal] = {}
    billed_part: dict[StatKey, Billed] = {}
    size = 0
    for workspace_id in sorted(statistics.keys() | billed.keys()):
        found = statistics.get(workspace_id)
        if found is not None:
            statistics_part.update(found)
            size += len(found)
        done = billed.get(workspace_id)
        if done is not None:
            billed_part.update(done)
            size += len(done)
        if size >= PART_SIZE:
            yield statistics_part, billed_part
            statistics_part, billed_part, size = {}, {}, 0
    if size:
        yield statistics_part, billed_part


class _Writer:
    """Stores the rows of a close on its connection: on PostgreSQL from a thread of its own,
    one part at a time and in order, while the caller prices the next part (the caller
    does not use the connection meanwhile); elsewhere at once."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.threaded = conn.dialect.name == "postgresql"
        self.queue: queue.Queue[_Rows | None] = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None

    def __enter__(self) -> _Writer:
        if self.threaded:
            self.thread = threading.Thread(target=self._run, name="day-close-writer",
                                           daemon=True)
            self.thread.start()
        return self

    def put(self, rows: _Rows) -> None:
        if self.error is not None:
            raise self.error
        if self.thread is None:
            rows.write(self.conn)
        else:
            self.queue.put(rows)

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join()
        if self.error is not None and value is None:
            raise self.error

    def _run(self) -> None:
        while (rows := self.queue.get()) is not None:
            if self.error is None:
                try:
                    rows.write(self.conn)
                except BaseException as error:  # handed to the caller
                    self.error = error


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
                        f',"day":"{day.isoformat()}","item":{_json_text(item)},'
                        f'"retention_days":{tier},"quantity":"')
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
