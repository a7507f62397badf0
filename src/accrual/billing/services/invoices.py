"""Invoice requests against monthly bills: what may be invoiced, the requests, and the
operator's decision on them.

What may be invoiced (decisions.md 21, reference-billing.md §4.8), per monthly bill:

    invoiceable = consumption of the bill paid from cash
                + prepaid-card purchases paid with cash in the bill's month
                - what requests not rejected already took from the bill

* *Consumption paid from cash*: for each line (``charges`` row) on the bill, the
  postings of its journal entry (``entry_id``) on the account's ``cash`` ledger
  account, negated. A charge paid partly from cash counts only that part; what
  fell into arrears (the ``prepaid`` account) and whatever vouchers or prepaid
  cards paid never count. A negative adjustment that gave cash back lowers it.
* *Prepaid-card purchases paid with cash*: journal entries of kind
  ``card_purchase`` of the account made in the bill's month (billing-center
  zone), their ``cash`` postings negated (``Instruments.buy_card`` posts them;
  partner cards and vouchers move no cash and never count).
* A bill's invoiceable amount never goes below zero.

A request is refused unless the account has its enterprise certification, is
not in arrears (``prepaid`` balance below zero), names invoice information whose
title and taxpayer id are the certification's, has a mailing address for a
paper invoice, and asks for at most what the named bills leave invoiceable.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, insert, select, update

from accrual.billing.adapters import tables as t
from accrual.billing.config import BillingConfig
from accrual.billing.domain import invoicing, settlement
from accrual.billing.domain.arrears import owed_minor
from accrual.billing.domain.invoicing import BillParts
from accrual.billing.services import ledger
from accrual.billing.services.accounts import BillingAccounts
from accrual.billing.services.instruments import CARD_PURCHASE
from accrual.billing.services.invoice_records import PAPER_TYPES, InvoiceRecords
from accrual.billing.services.statements import month_start, next_month, parse_month
from accrual.clock import Clock, day_bounds, site_day
from accrual.contract.errors import Conflict, Forbidden, Invalid, NotFound
from accrual.infra.db import exact_sum, in_transaction
from accrual.money import InvalidDecimal, format_minor, parse_amount

REQUESTED, ISSUED, REJECTED = (invoicing.RequestStatus.REQUESTED.value,
                                invoicing.RequestStatus.ISSUED.value,
                                invoicing.RequestStatus.REJECTED.value)
STATUSES = (REQUESTED, ISSUED, REJECTED)


@dataclass(frozen=True)
class _Bill:
    id: int
    month: date
    total_minor: int


@dataclass(frozen=True)
class InvoiceableBill:
    """One monthly bill and what it leaves to invoice."""

    month: date  # the month's first day
    bill_total_minor: int
    parts: BillParts


@dataclass(frozen=True)
class Invoiceable:
    account_id: str
    currency: str
    bills: tuple[InvoiceableBill, ...]  # newest month first

    @property
    def invoiceable_minor(self) -> int:
        return sum(bill.parts.invoiceable_minor for bill in self.bills)


@dataclass(frozen=True)
class BillShare:
    """What an invoice request takes from one monthly bill."""

    month: date
    amount_minor: int


@dataclass(frozen=True)
class InvoiceRequest:
    id: int
    account_id: str
    status: invoicing.RequestStatus
    invoice_type: str
    amount_minor: int
    currency: str
    bills: tuple[BillShare, ...]  # oldest month first
    profile_id: int
    profile: Mapping[str, object]  # the invoice information as it was when requested
    address_id: int | None
    address: Mapping[str, object] | None  # likewise the mailing address
    invoice_number: str | None
    reject_reason: str | None
    requested_at: datetime
    issued_at: datetime | None
    rejected_at: datetime | None


class Invoices:
    """The invoiceable amount, requests and the operator's decision. A request names one of
    the account's invoice records (``records``), whose details it keeps a snapshot of."""

    def __init__(self, engine: Engine, config: BillingConfig, clock: Clock,
                 accounts: BillingAccounts, records: InvoiceRecords) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.accounts = accounts
        self.records = records

    # -- the invoiceable amount ----------------------------------------------

    def invoiceable(self, account_id: str) -> Invoiceable:
        """Per monthly bill (newest first) and in total: what may still be invoiced."""
        self.accounts.account(account_id)
        b = t.monthly_bills
        with self.engine.connect() as conn:
            bills = [_Bill(r.id, r.month, int(r.total_minor)) for r in conn.execute(
                select(b.c.id, b.c.month, b.c.total_minor).where(b.c.account_id == account_id)
                .order_by(b.c.month.desc()))]
            parts = self._parts(conn, account_id, bills)
        return Invoiceable(account_id=account_id, currency=self.config.currency, bills=tuple(
            InvoiceableBill(month=bill.month, bill_total_minor=bill.total_minor,
                            parts=parts[bill.id]) for bill in bills))

    def _parts(self, conn: Connection, account_id: str,
               bills: Sequence[_Bill]) -> dict[int, BillParts]:
        """bill id -> its parts of the invoiceable amount, summed from the ledger."""
        if not bills:
            return {}
        c, p, e, a = t.charges, t.postings, t.journal_entries, t.ledger_accounts
        ids = [bill.id for bill in bills]
        cash_account = conn.execute(select(a.c.id).where(
            a.c.owner == account_id, a.c.kind == settlement.CASH)).scalar()
        cash_paid: dict[int, int] = {}
        cards: dict[date, int] = {}
        if cash_account is not None:
            cash_paid = {bill_id: -int(total) for bill_id, total in conn.execute(
                select(c.c.bill_id, exact_sum(p.c.amount_minor))
                .join(p, p.c.entry_id == c.c.entry_id)
                .where(c.c.bill_id.in_(ids), c.c.account_id == account_id,
                       p.c.ledger_account_id == cash_account)
                .group_by(c.c.bill_id))}
            first, _ = day_bounds(min(bill.month for bill in bills), self.config.zone)
            last, _ = day_bounds(next_month(max(bill.month for bill in bills)), self.config.zone)
            for created_at, amount in conn.execute(
                    select(e.c.created_at, p.c.amount_minor).join(p, p.c.entry_id == e.c.id)
                    .where(e.c.account_id == account_id, e.c.kind == CARD_PURCHASE,
                           p.c.ledger_account_id == cash_account,
                           e.c.created_at >= first, e.c.created_at < last)):
                month = month_start(site_day(created_at, self.config.zone))
                cards[month] = cards.get(month, 0) - int(amount)
        r, link = t.invoice_requests, t.invoice_request_bills
        requested = {bill_id: int(total) for bill_id, total in conn.execute(
            select(link.c.bill_id, exact_sum(link.c.amount_minor))
            .join(r, r.c.id == link.c.request_id)
            .where(link.c.bill_id.in_(ids), r.c.status != REJECTED)
            .group_by(link.c.bill_id))}
        return {bill.id: BillParts(consumption_paid_in_cash_minor=cash_paid.get(bill.id, 0),
                                   card_purchases_paid_in_cash_minor=cards.get(bill.month, 0),
                                   requested_minor=requested.get(bill.id, 0))
                for bill in bills}

    # -- requests ------------------------------------------------------------

    def request(self, account_id: str, *, months: Sequence[str], profile_id: int,
                address_id: int | None = None, amount: object = None) -> InvoiceRequest:
        """Request one invoice against monthly bills; without an amount, for all they leave
        invoiceable. The amount is taken from the oldest bill first."""
        wanted = invoicing.check_months([parse_month(m) for m in months])
        currency = self.config.currency
        amount_minor: int | None = None
        if amount is not None:
            try:
                amount_minor = parse_amount(amount, currency)
            except InvalidDecimal as error:
                raise Invalid("invalid_amount", f"amount {error.reason}") from None
        account = self.accounts.account(account_id)
        if account.certification is None:
            raise Forbidden("invoice_needs_certification",
                            "invoices need the account's enterprise certification first")
        now = self.clock.now()

        def work(conn: Connection) -> InvoiceRequest:
            # Under the account's ledger lock (PostgreSQL; SQLite writes one at a time):
            # two requests never both take the same invoiceable amount.
            balances = ledger.balances(conn, account_id, lock=True)
            owed = owed_minor(balances.get(settlement.PREPAID, 0))
            if owed:
                raise Forbidden("account_in_arrears",
                                f"the account owes {format_minor(owed, currency)}; settle the "
                                "arrears before requesting an invoice")
            profile = self.records.profile_row(conn, account_id, profile_id)
            if not self.records.matches_certification(profile, account):
                raise Invalid("invoice_title_mismatch",
                              "the invoice title and taxpayer id must be those of the enterprise "
                              "certification")
            address = None
            if profile.invoice_type in PAPER_TYPES:
                if address_id is None:
                    raise Invalid("invoice_address_required",
                                  "a paper invoice needs a mailing address (address_id)")
                address = self.records.address_row(conn, account_id, address_id)
            b = t.monthly_bills
            found = {r.month: _Bill(r.id, r.month, int(r.total_minor)) for r in conn.execute(
                select(b.c.id, b.c.month, b.c.total_minor).where(
                    b.c.account_id == account_id, b.c.month.in_(wanted)))}
            for month in wanted:
                if month not in found:
                    raise NotFound("bill_not_found",
                                   f"no monthly bill for {month:%Y-%m} (bills are generated on "
                                   "the 3rd of the next month)")
            bills = sorted(found.values(), key=lambda bill: bill.month)
            parts = self._parts(conn, account_id, bills)
            available = sum(parts[bill.id].invoiceable_minor for bill in bills)
            total = invoicing.request_total(amount_minor, available, currency)
            request_id = conn.execute(insert(t.invoice_requests).values(
                account_id=account_id, profile_id=profile.id,
                address_id=None if address is None else address.id,
                invoice_type=profile.invoice_type,
                profile_snapshot=json.dumps(_snapshot(profile, _PROFILE_FIELDS), sort_keys=True),
                address_snapshot=None if address is None else json.dumps(
                    _snapshot(address, _ADDRESS_FIELDS), sort_keys=True),
                amount_minor=total, currency=currency, status=REQUESTED, requested_at=now)
                .returning(t.invoice_requests.c.id)).scalar_one()
            taken = invoicing.allocate(total, [(bill.id, parts[bill.id].invoiceable_minor)
                                               for bill in bills])
            conn.execute(insert(t.invoice_request_bills), [
                {"request_id": request_id, "bill_id": bill_id, "amount_minor": take}
                for bill_id, take in taken])
            return self._present(conn, self._get_request(conn, request_id))

        return in_transaction(self.engine, work)

    def requests(self, account_id: str) -> list[InvoiceRequest]:
        """The account's invoice requests with their status, newest first."""
        self.accounts.account(account_id)
        r = t.invoice_requests
        with self.engine.connect() as conn:
            rows = conn.execute(select(r).where(r.c.account_id == account_id)
                                .order_by(r.c.id.desc())).all()
            return self._present_many(conn, rows)

    def get(self, account_id: str, request_id: int) -> InvoiceRequest:
        self.accounts.account(account_id)
        with self.engine.connect() as conn:
            row = self._get_request(conn, request_id)
            if row.account_id != account_id:
                raise NotFound("invoice_not_found", f"no invoice request {request_id}")
            return self._present(conn, row)

    def pending(self, status: str | None = REQUESTED) -> list[InvoiceRequest]:
        """Requests of every account (operator), oldest first; optionally of one status."""
        if status is not None and status not in STATUSES:
            raise Invalid("invalid_status", f"status must be one of {', '.join(STATUSES)}")
        r = t.invoice_requests
        query = select(r).order_by(r.c.requested_at, r.c.id).limit(1000)
        if status is not None:
            query = query.where(r.c.status == status)
        with self.engine.connect() as conn:
            return self._present_many(conn, conn.execute(query).all())

    # -- the operator's decision ---------------------------------------------

    def issue(self, request_id: int, invoice_number: str) -> InvoiceRequest:
        """Mark a request issued with the invoice's number. Repeating it with the same
        number changes nothing."""
        number = invoicing.check_invoice_number(invoice_number)

        def work(conn: Connection) -> InvoiceRequest:
            r = t.invoice_requests
            taken = conn.execute(select(r.c.id).where(r.c.invoice_number == number,
                                                      r.c.id != request_id)).first()
            if taken is not None:
                raise Conflict("invoice_number_taken",
                               f"invoice number {number} is already on request {taken.id}")
            return self._decide(conn, request_id, lambda row: row.status == ISSUED
                                and row.invoice_number == number,
                                status=ISSUED, invoice_number=number, issued_at=self.clock.now())

        return in_transaction(self.engine, work)

    def reject(self, request_id: int, reason: str) -> InvoiceRequest:
        """Refuse a request; what it took from its bills may be requested again."""
        text = invoicing.check_reject_reason(reason)
        return in_transaction(self.engine, lambda conn: self._decide(
            conn, request_id, lambda row: row.status == REJECTED and row.reject_reason == text,
            status=REJECTED, reject_reason=text, rejected_at=self.clock.now()))

    def _decide(self, conn: Connection, request_id: int, repeated: Callable[[Any], bool],
                **values: object) -> InvoiceRequest:
        r = t.invoice_requests
        row = self._get_request(conn, request_id)
        if not invoicing.needs_decision(row.status, repeated=repeated(row)):
            return self._present(conn, row)
        changed = conn.execute(update(r).where(r.c.id == request_id, r.c.status == REQUESTED)
                               .values(**values)).rowcount
        if changed != 1:  # decided by someone else meanwhile
            raise Conflict("invoice_already_decided", "the request was decided meanwhile")
        return self._present(conn, self._get_request(conn, request_id))

    # -- presenting ----------------------------------------------------------

    @staticmethod
    def _get_request(conn: Connection, request_id: int) -> Row[Any]:
        row = conn.execute(select(t.invoice_requests)
                           .where(t.invoice_requests.c.id == request_id)).first()
        if row is None:
            raise NotFound("invoice_not_found", f"no invoice request {request_id}")
        return row

    def _present(self, conn: Connection, row: Any) -> InvoiceRequest:
        return self._present_many(conn, [row])[0]

    def _present_many(self, conn: Connection, rows: Sequence[Any]) -> list[InvoiceRequest]:
        link, b = t.invoice_request_bills, t.monthly_bills
        taken: dict[int, list[BillShare]] = {}
        for start in range(0, len(rows), 500):
            ids = [row.id for row in rows[start:start + 500]]
            for request_id, month, amount in conn.execute(
                    select(link.c.request_id, b.c.month, link.c.amount_minor)
                    .join(b, b.c.id == link.c.bill_id).where(link.c.request_id.in_(ids))
                    .order_by(link.c.request_id, b.c.month)):
                taken.setdefault(request_id, []).append(BillShare(month, int(amount)))
        return [InvoiceRequest(
            id=row.id, account_id=row.account_id, status=invoicing.RequestStatus(row.status),
            invoice_type=row.invoice_type, amount_minor=int(row.amount_minor),
            currency=row.currency, bills=tuple(taken.get(row.id, ())),
            profile_id=row.profile_id, profile=json.loads(row.profile_snapshot),
            address_id=row.address_id,
            address=None if row.address_snapshot is None else json.loads(row.address_snapshot),
            invoice_number=row.invoice_number, reject_reason=row.reject_reason,
            requested_at=row.requested_at, issued_at=row.issued_at,
            rejected_at=row.rejected_at) for row in rows]


_PROFILE_FIELDS = ("invoice_type", "title", "taxpayer_id", "registered_address",
                   "registered_phone", "bank_name", "bank_account", "email")
_ADDRESS_FIELDS = ("recipient", "phone", "address", "postcode", "email")


def _snapshot(row: Row[Any], fields: Sequence[str]) -> dict[str, object]:
    return {name: getattr(row, name) for name in fields}
