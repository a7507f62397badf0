"""Monthly bills, consumption details and the income & expenditure of an account.

A month's bill is generated on the 3rd of the next month (billing-center zone)
from every line of the account not yet on a bill whose day is in that month or
before; it is never changed afterwards, so a line that arrives later lands on
the next bill generated (decisions.md 3).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, insert, select, update

from accrual.billing.adapters import tables as t
from accrual.billing.config import BillingConfig
from accrual.billing.domain import bounds
from accrual.billing.services import arrears, ledger, mail_outbox
from accrual.clock import Clock, day_bounds, site_day
from accrual.contract.errors import Invalid, NotFound
from accrual.infra.db import exact_sum, in_transaction
from accrual.money import format_minor

GENERATION_DAY = 3


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(month: date) -> date:
    return (month.replace(day=28) + timedelta(days=4)).replace(day=1)


def parse_month(text: object) -> date:
    """A month the API names: ``YYYY-MM`` within the billing window (``bounds``)."""
    return bounds.parse_month(text)


@dataclass(frozen=True)
class MonthlyBill:
    month: date  # the month's first day
    account_id: str
    currency: str
    total_minor: int
    lines: int
    generated_at: datetime


@dataclass(frozen=True)
class BillLine:
    """One settled line (consumption detail) of an account."""

    day: date
    workspace_id: str
    site: str
    item: str
    retention_days: int
    kind: str  # charge | adjustment
    # Decimal text exactly as the console rated it: shown, never computed with here.
    quantity: str
    unit_price: str
    amount_minor: int
    currency: str
    detail_id: str
    received_at: datetime


@dataclass(frozen=True)
class Movement:
    """One posting on a balance of the account (income & expenditure)."""

    entry_id: int
    at: datetime
    kind: str  # the journal entry's kind
    reference: str | None
    balance: str  # the ledger account's kind: cash, prepaid, a card or voucher kind
    instrument: str | None  # the card or voucher, for their balances
    amount_minor: int  # signed: what came in (+) or went out (-)
    currency: str


class Statements:
    def __init__(self, engine: Engine, config: BillingConfig, clock: Clock) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock

    def due_month(self) -> date | None:
        """The month whose bill is due now: last month, from the 3rd on."""
        today = site_day(self.clock.now(), self.config.zone)
        if today.day < GENERATION_DAY:
            return None
        return month_start(month_start(today) - timedelta(days=1))

    def generate(self, account_id: str, month: date) -> MonthlyBill:
        """Generate (or return the already generated) bill of ``month``."""
        month = month_start(month)
        today = site_day(self.clock.now(), self.config.zone)
        if today < next_month(month).replace(day=GENERATION_DAY):
            raise Invalid("month_not_due",
                          f"the bill of {month:%Y-%m} is generated on the {GENERATION_DAY}rd "
                          "of the next month")
        return in_transaction(self.engine, lambda conn: self._generate(conn, account_id, month))

    def _generate(self, conn: Connection, account_id: str, month: date) -> MonthlyBill:
        b, c = t.monthly_bills, t.charges
        existing = conn.execute(select(b).where(b.c.account_id == account_id,
                                                b.c.month == month)).first()
        if existing is not None:
            return self._present(existing)
        if conn.dialect.name == "postgresql":
            # Serialise with deliveries settling lines onto this account.
            ledger.balances(conn, account_id, lock=True)
        end = next_month(month)
        unbilled = and_(c.c.account_id == account_id, c.c.bill_id.is_(None), c.c.day < end)
        total, lines = conn.execute(select(func.coalesce(exact_sum(c.c.amount_minor), 0),
                                           func.count()).where(unbilled)).one()
        bill_id = conn.execute(insert(b).values(
            account_id=account_id, month=month, currency=self.config.currency,
            total_minor=int(total), lines=int(lines), generated_at=self.clock.now())
            .returning(b.c.id)).scalar_one()
        conn.execute(update(c).where(unbilled).values(bill_id=bill_id))
        bill = conn.execute(select(b).where(b.c.id == bill_id)).one()
        # reference-billing.md §3.6: a mail when a bill is generated, with the countdown if
        # the account is in arrears. Not for an empty bill (e.g. of a month before the
        # account existed): arrears have mails of their own.
        if bill.lines:
            case = arrears.open_case(conn, account_id)
            account = conn.execute(select(t.accounts.c.username, t.accounts.c.email,
                                          t.accounts.c.language)
                                   .where(t.accounts.c.id == account_id)).one()
            currency = self.config.currency
            mail_outbox.queue(conn, template="bill_generated", language=account.language,
                        recipient=account.email, dedup_key=f"bill/{bill_id}", now=self.clock.now(),
                        values={"username": account.username, "month": f"{month:%Y-%m}",
                                "total": format_minor(bill.total_minor, currency),
                                "currency": currency, "lines": bill.lines,
                                "in_arrears": case is not None,
                                "locked": case is not None and case.locked_at is not None,
                                "amount": format_minor(arrears.owed_minor(conn, account_id),
                                                       currency),
                                "lock_at": arrears.local_time(case.lock_at, self.config.zone)
                                if case is not None else None})
        return self._present(bill)

    def generate_due(self) -> int:
        """Generate last month's bill for every active account that has none and existed
        in that month (scheduler)."""
        month = self.due_month()
        if month is None:
            return 0
        after_month, _ = day_bounds(next_month(month), self.config.zone)
        with self.engine.connect() as conn:
            accounts = conn.execute(
                select(t.accounts.c.id).where(
                    t.accounts.c.status == "active", t.accounts.c.created_at < after_month,
                    ~select(t.monthly_bills.c.id).where(
                        t.monthly_bills.c.account_id == t.accounts.c.id,
                        t.monthly_bills.c.month == month).exists())).scalars().all()
        for account_id in accounts:
            in_transaction(self.engine, partial(self._generate, account_id=account_id, month=month))
        return len(accounts)

    def bills(self, account_id: str) -> list[MonthlyBill]:
        b = t.monthly_bills
        with self.engine.connect() as conn:
            rows = conn.execute(select(b).where(b.c.account_id == account_id)
                                .order_by(b.c.month.desc())).all()
        return [self._present(r) for r in rows]

    def bill(self, account_id: str, month: date) -> tuple[MonthlyBill, list[BillLine]]:
        """A generated bill and its lines, by day, workspace, item and tier."""
        b, c = t.monthly_bills, t.charges
        with self.engine.connect() as conn:
            row = conn.execute(select(b).where(b.c.account_id == account_id,
                                               b.c.month == month_start(month))).first()
            if row is None:
                raise NotFound("bill_not_found", f"no bill for {month:%Y-%m} (generated on the 3rd)")
            lines = conn.execute(select(c).where(c.c.bill_id == row.id).order_by(
                c.c.day, c.c.workspace_id, c.c.item, c.c.retention_days, c.c.revision)).all()
        return self._present(row), [self._line(r) for r in lines]

    def workspace_names(self, workspace_ids: Iterable[str]) -> dict[str, str]:
        """The names the billing center knows for these workspaces (a statement's)."""
        w = t.workspaces
        with self.engine.connect() as conn:
            return {row.workspace_id: row.name for row in conn.execute(
                select(w.c.workspace_id, w.c.name).where(
                    w.c.workspace_id.in_(sorted(set(workspace_ids)))))}

    def consumption(self, account_id: str, start: date, end: date) -> list[BillLine]:
        """Every settled line of the account per day, workspace and item (consumption details)."""
        c = t.charges
        with self.engine.connect() as conn:
            rows = conn.execute(select(c).where(c.c.account_id == account_id, c.c.day >= start,
                                                c.c.day <= end)
                                .order_by(c.c.day, c.c.workspace_id, c.c.item,
                                          c.c.retention_days, c.c.revision)).all()
        return [self._line(r) for r in rows]

    def transactions(self, account_id: str, start: date, end: date) -> list[Movement]:
        """Income & expenditure: every movement of the account's balances (cash, prepaid,
        and each of its cards and vouchers), oldest first."""
        e, p, a = t.journal_entries, t.postings, t.ledger_accounts
        held = select(t.instruments.c.id).where(t.instruments.c.account_id == account_id)
        first, _ = day_bounds(start, self.config.zone)
        _, last = day_bounds(end, self.config.zone)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(e.c.id, e.c.kind, e.c.reference, e.c.created_at, a.c.kind.label("balance"),
                       a.c.owner, p.c.amount_minor)
                .join(p, p.c.entry_id == e.c.id).join(a, a.c.id == p.c.ledger_account_id)
                .where((a.c.owner == account_id) | a.c.owner.in_(held),
                       e.c.created_at >= first, e.c.created_at < last)
                .order_by(e.c.id, a.c.kind, a.c.owner)).all()
        currency = self.config.currency
        return [Movement(entry_id=r.id, at=r.created_at, kind=r.kind, reference=r.reference,
                         balance=r.balance,
                         instrument=None if r.owner == account_id else r.owner,
                         amount_minor=int(r.amount_minor), currency=currency) for r in rows]

    @staticmethod
    def _present(row: Any) -> MonthlyBill:
        return MonthlyBill(month=row.month, account_id=row.account_id, currency=row.currency,
                           total_minor=int(row.total_minor), lines=int(row.lines),
                           generated_at=row.generated_at)

    @staticmethod
    def _line(r: Any) -> BillLine:
        return BillLine(day=r.day, workspace_id=r.workspace_id, site=r.site, item=r.item,
                        retention_days=r.retention_days, kind=r.kind, quantity=r.quantity,
                        unit_price=r.unit_price, amount_minor=int(r.amount_minor),
                        currency=r.currency, detail_id=r.detail_id,
                        received_at=r.received_at)
