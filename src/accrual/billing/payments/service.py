"""Recharge orders: opened by an account through a gateway, paid by the gateway's notify.

An order is created once per (account, Idempotency-Key). The gateway is called
outside any transaction: the order row is claimed first, then the gateway opens
the payment, then its redirect URL is stored (a retry with the same key that
finds no URL yet asks the gateway again, for the same order id).

A notify credits cash only when its signature holds, it is fresh, it names a
known order and it carries that order's amount and currency. The credit is one
journal entry (``settlement.recharge``: arrears are paid first) keyed by the
gateway's transaction id, and the order turns ``paid`` in the same transaction;
a replayed notify finds the order paid by the same transaction and is
acknowledged without a second credit. Every refusal is logged and counted.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from accrual.billing.adapters import tables as t
from accrual.billing.config import BillingConfig
from accrual.billing.domain import bounds, settlement
from accrual.billing.payments.gateway import (
    Notify,
    NotifyRefused,
    PaymentGateway,
    PaymentRequest,
)
from accrual.billing.services import ledger
from accrual.billing.services.accounts import BillingAccounts
from accrual.billing.services.arrears import Arrears
from accrual.clock import Clock
from accrual.contract.errors import (
    Conflict,
    Invalid,
    NotFound,
    ServiceError,
    Unavailable,
)
from accrual.infra.db import in_transaction
from accrual.money import (
    InvalidDecimal,
    format_minor,
    to_decimal,
    to_minor,
)

log = logging.getLogger(__name__)

class OrderStatus(StrEnum):
    PENDING = "pending"  # opened with the gateway, not paid yet
    PAID = "paid"  # the gateway's notify credited the cash


PENDING = OrderStatus.PENDING.value
PAID = OrderStatus.PAID.value
JOURNAL_KIND = "online_recharge"
_MAX_RETURN_URL = 500


@dataclass(frozen=True)
class RechargeOrder:
    order_id: str
    account_id: str
    status: OrderStatus
    amount_minor: int
    currency: str
    redirect_url: str | None  # where the payer's browser pays; None until the gateway answered
    return_url: str | None
    transaction_id: str | None  # the gateway's, once paid
    created_at: datetime
    paid_at: datetime | None


class NotifyOutcome(StrEnum):
    """What an accepted notify did."""

    CREDITED = "credited"  # the order's cash is credited now
    DUPLICATE = "duplicate"  # a replay of the notify that credited it
    IGNORED = "ignored"  # not a payment (e.g. cancelled): nothing to credit


class Payments:
    def __init__(self, engine: Engine, config: BillingConfig, clock: Clock,
                 accounts: BillingAccounts, gateway: PaymentGateway | None,
                 arrears: Arrears) -> None:
        self.engine = engine
        self.arrears = arrears
        self.config = config
        self.clock = clock
        self.accounts = accounts
        self.gateway = gateway
        self._counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()

    # -- orders -------------------------------------------------------------------

    def create_order(self, account_id: str, amount: object, idempotency_key: str,
                     return_url: str | None = None) -> tuple[RechargeOrder, bool]:
        """Open a recharge order (or find the one this key opened); (order, created).

        The same key with another amount or return URL is 409 ``idempotency_conflict``."""
        gateway = self._gateway()
        currency = self.config.currency
        try:
            amount_minor = bounds.movement_minor(amount, currency)
        except InvalidDecimal as error:
            raise Invalid("invalid_amount", f"amount {error.reason}") from None
        bounds.check_idempotency_key(idempotency_key)
        if return_url is not None and not _safe_return_url(return_url):
            raise Invalid("invalid_return_url", "return_url must be a path on this site "
                          f"('/…') or an http(s) URL, at most {_MAX_RETURN_URL} characters")
        self.accounts.account(account_id)
        with self.engine.connect() as conn:
            held = ledger.balances(conn, account_id)
        # Refused now rather than after the customer has paid: the notify's credit is
        # checked again under the account's lock (``ledger.post``).
        bounds.check_movement(account_id, held,
                              settlement.recharge(amount_minor, held.get(settlement.PREPAID, 0)),
                              currency, what="this recharge order")
        request_digest = ledger.digest(amount_minor, currency, return_url or "")
        o = t.recharge_orders

        def claim(conn: Connection) -> tuple[Any, bool]:
            row = conn.execute(select(o).where(o.c.account_id == account_id,
                                               o.c.idempotency_key == idempotency_key)).first()
            if row is not None:
                if row.request_digest != request_digest:
                    raise Conflict("idempotency_conflict", "this Idempotency-Key was already "
                                   "used for a different recharge order")
                return row, False
            order_id = "ro_" + secrets.token_hex(12)
            conn.execute(insert(o).values(
                id=order_id, account_id=account_id, idempotency_key=idempotency_key,
                request_digest=request_digest, gateway=gateway.name, amount_minor=amount_minor,
                currency=currency, return_url=return_url, status=PENDING,
                created_at=self.clock.now()))
            return conn.execute(select(o).where(o.c.id == order_id)).one(), True

        row, created = in_transaction(self.engine, claim)
        if row.redirect_url is None:
            try:
                url = gateway.create_payment(PaymentRequest(
                    order_id=row.id, amount=format_minor(row.amount_minor, row.currency),
                    currency=row.currency, description="Cash top-up", return_url=row.return_url))
            except Exception as error:  # the order stays; a retry with the key asks again
                log.exception("gateway %s: opening a payment for %s failed", gateway.name, row.id)
                raise Unavailable("gateway_unavailable",
                                  "the payment gateway did not answer; retry with the same "
                                  "Idempotency-Key") from error
            with self.engine.begin() as conn:
                # A concurrent retry may have stored its URL first; that one stands.
                conn.execute(update(o).where(o.c.id == row.id, o.c.redirect_url.is_(None))
                             .values(redirect_url=url))
                row = conn.execute(select(o).where(o.c.id == row.id)).one()
        return _order(row), created

    def order(self, account_id: str, order_id: str) -> RechargeOrder:
        o = t.recharge_orders
        with self.engine.connect() as conn:
            row = conn.execute(select(o).where(o.c.id == order_id,
                                               o.c.account_id == account_id)).first()
        if row is None:
            raise NotFound("order_not_found", "no such recharge order for this account")
        return _order(row)

    # -- notifies -----------------------------------------------------------------

    def notify(self, headers: Mapping[str, str], body: bytes) -> NotifyOutcome:
        """Verify and apply one notify: credited, duplicate (a replay) or ignored (not a
        payment). A notify that credits nothing raises its refusal: ``ServiceError`` for a
        forged, stale, malformed or mismatched one, ``Conflict`` when the order was paid by
        another transaction, ``Invalid`` when the credit would pass the balance bound."""
        gateway = self._gateway()
        try:
            notice = gateway.verify_notify(headers, body)
        except NotifyRefused as refusal:
            raise self._refused(ServiceError(refusal.code, refusal.message), None) from None
        if notice.status != PAID:
            log.info("payment notify for %s with status %r: nothing to credit",
                     notice.order_id, notice.status)
            self._count(NotifyOutcome.IGNORED.value)
            return NotifyOutcome.IGNORED
        try:
            outcome = in_transaction(self.engine, lambda conn: self._apply(conn, gateway, notice))
        except ServiceError as error:
            raise self._refused(error, notice) from None
        self._count(outcome.value)
        return outcome

    def _apply(self, conn: Connection, gateway: PaymentGateway,
               notice: Notify) -> NotifyOutcome:
        o = t.recharge_orders
        query = select(o).where(o.c.id == notice.order_id, o.c.gateway == gateway.name)
        if conn.dialect.name == "postgresql":
            # Concurrent notifies of one order wait here; the later one sees it paid.
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            raise ServiceError("unknown_order", "no recharge order with this id")
        if notice.currency != row.currency:
            raise ServiceError("currency_mismatch", "the notify's currency is not the order's")
        try:
            amount_minor = to_minor(to_decimal(notice.amount, max_places=2), row.currency)
        except InvalidDecimal:
            amount_minor = None
        if amount_minor != row.amount_minor:
            raise ServiceError("amount_mismatch", "the notify's amount is not the order's")
        if row.status == PAID:
            if row.transaction_id == notice.transaction_id:
                return NotifyOutcome.DUPLICATE
            raise Conflict("order_already_paid",
                           "this order was paid by another transaction; not credited again")
        try:
            posted = ledger.post(
                conn, owner=row.account_id, key=f"payment/{gateway.name}/{notice.transaction_id}",
                request_digest=ledger.digest(row.id, row.amount_minor), kind=JOURNAL_KIND,
                reference=row.id, now=self.clock.now(),
                compute=lambda h: settlement.recharge(row.amount_minor,
                                                      h.balances[settlement.PREPAID]))
        except Conflict:
            raise Conflict("transaction_conflict",
                           "this transaction id already paid another order") from None
        conn.execute(update(o).where(o.c.id == row.id).values(
            status=PAID, transaction_id=notice.transaction_id, entry_id=posted.entry_id,
            paid_at=self.clock.now()))
        self.arrears.after_movement(conn, [row.account_id])
        return NotifyOutcome.CREDITED

    def counts(self) -> dict[str, int]:
        """Notifies seen since start: credited, duplicate, ignored, refused and refused.<code>."""
        with self._counts_lock:
            return dict(self._counts)

    def _count(self, *names: str) -> None:
        with self._counts_lock:
            self._counts.update(names)

    def _refused(self, error: ServiceError, notice: Notify | None) -> ServiceError:
        self._count("refused", f"refused.{error.code}")
        log.warning("payment notify refused (%s) for order %s, transaction %s: %s", error.code,
                    notice.order_id if notice else "?", notice.transaction_id if notice else "?",
                    error.message)
        return error

    def _gateway(self) -> PaymentGateway:
        if self.gateway is None:
            raise Unavailable("payments_unavailable", "online recharge is not configured here")
        return self.gateway


def _safe_return_url(url: str) -> bool:
    if len(url) > _MAX_RETURN_URL or any(ch <= " " or ch == "\x7f" for ch in url):
        return False
    if url.startswith("/"):
        return not url.startswith(("//", "/\\"))
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0]
    return scheme.lower() in ("http", "https") and bool(host) and "\\" not in url


def _order(row: Any) -> RechargeOrder:
    return RechargeOrder(
        order_id=row.id, account_id=row.account_id, status=OrderStatus(row.status),
        amount_minor=int(row.amount_minor), currency=row.currency,
        redirect_url=row.redirect_url, return_url=row.return_url,
        transaction_id=row.transaction_id, created_at=row.created_at, paid_at=row.paid_at)
