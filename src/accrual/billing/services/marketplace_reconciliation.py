"""Marketplace reconciliation: for the vendors that let a seller read back what they
hold (Azure's ``GET usageEvents``, marketplaces.md §4.5), the charges whose outcome we
do not know are settled by what the vendor really holds.

Which charges (job ``marketplace reconciliation``, a scheduler step after the
reporter): an Azure charge left ``sent`` without an answer recorded for longer than
the reporter's grace (a reporter killed between sending and recording, a timeout),
and one the reporter refused past the window as an *unknown outcome* (sent before,
never answered: its money stays on the cloud receivable). For each, by the event
Azure holds for its (subscription, dimension, hour), Azure's deduplication key:

* held with the same quantity: ``accepted`` with Azure's usage event id (the money
  stays on the cloud receivable: Azure bills it);
* held with another quantity (never ours: we send one quantity per key): the vendor
  bills something else, so this charge is a ``duplicate`` and its money goes to the
  billing account's wallet, as the reporter does for one;
* none held, within the window: back to ``pending``, due now; the reporter sends it
  again, identical (Azure answers a Duplicate of the same quantity if it took it
  after all, which the adapter counts as accepted);
* none held, the window closed (plus a margin for Azure's own lag): Azure never got
  it, so it is ``refused`` and its amount is carried back into the cloud account's
  next cut, as the reporter does for a charge it never sent: Azure bills it in a later
  hour, once (or, the subscription having ended, the reporter closes the carry into
  the wallet).

Each change is one conditional update (the charge still as read), so a reporter
recording its answer meanwhile wins and the row is left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Connection, Engine, and_, insert, or_, select, update

from accrual.billing.adapters import tables as t
from accrual.billing.domain import settlement
from accrual.billing.domain.marketplace import ChargeStatus, MarketplaceError
from accrual.billing.marketplaces import Marketplaces
from accrual.billing.marketplaces.azure import AzureMarketplace, UsageRecord
from accrual.billing.services import ledger
from accrual.billing.services.marketplace_reporter import SENT_GRACE, UNKNOWN_OUTCOME
from accrual.billing.services.movements import Movements
from accrual.clock import Clock
from accrual.infra.db import in_transaction
from accrual.infra.jobs import Job

log = logging.getLogger(__name__)

SENT, PENDING, ACCEPTED, DUPLICATE, REFUSED = (
    ChargeStatus.SENT.value, ChargeStatus.PENDING.value, ChargeStatus.ACCEPTED.value,
    ChargeStatus.DUPLICATE.value, ChargeStatus.REFUSED.value)
# How long after the window closes Azure's answer about an hour is taken as final.
SETTLE_MARGIN = timedelta(hours=1)
BATCH = 500  # charges reconciled per run
ENTRY_KIND = "marketplace_refused"  # the reporter's kind: the same movement
NOT_HELD = ("reconciled: the marketplace holds no event for it after its window; carried "
            "into the next cut")
OTHER_QUANTITY = "reconciled: the marketplace holds another quantity for this hour ({held})"
RESEND = "reconciled: the marketplace holds no event for it yet; sent again"


@dataclass(frozen=True)
class ReconcileOutcome:
    checked: int = 0  # charges whose outcome was unknown
    accepted: int = 0  # found held by the vendor
    resent: int = 0  # back to pending within the window
    duplicate: int = 0  # the vendor holds another quantity
    carried: int = 0  # not held after the window: into the next cut
    at: datetime | None = None


class MarketplaceReconciliation:
    def __init__(self, engine: Engine, clock: Clock, marketplaces: Marketplaces,
                 movements: Movements, *, sent_grace: timedelta = SENT_GRACE) -> None:
        self.engine = engine
        self.clock = clock
        self.marketplaces = marketplaces
        self.movements = movements
        self.sent_grace = sent_grace
        self.job = Job("marketplace reconciliation", clock)
        self.last = ReconcileOutcome()
        self.totals = ReconcileOutcome()

    def run(self) -> ReconcileOutcome:
        adapter = self.marketplaces.by_vendor.get("azure")
        if not isinstance(adapter, AzureMarketplace):
            return ReconcileOutcome()
        now = self.clock.now()
        rows = self._unknown(now)
        if not rows:
            self.last = ReconcileOutcome(at=now)
            self.job.unit_ok("azure")
            return self.last
        start = min(r.period_start for r in rows)
        end = max(r.period_start for r in rows) + adapter.limits.period
        try:
            held = _by_key(adapter.reconcile(start, end))
        except MarketplaceError as error:
            log.warning("marketplace reconciliation: azure usageEvents unavailable: %s", error)
            self.job.unit_failed("azure", error)
            return ReconcileOutcome(checked=len(rows), at=now)
        counts = {"accepted": 0, "resent": 0, "duplicate": 0, "carried": 0}
        for row in rows:
            record = held.get((row.external_id, row.dimension, row.period_start))
            done = in_transaction(self.engine, partial(self._settle, row=row, record=record,
                                                       now=now))
            if done is not None:
                counts[done] += 1
        self.job.unit_ok("azure")
        self.last = ReconcileOutcome(checked=len(rows), at=now, **counts)
        self.totals = ReconcileOutcome(
            checked=self.totals.checked + len(rows),
            accepted=self.totals.accepted + counts["accepted"],
            resent=self.totals.resent + counts["resent"],
            duplicate=self.totals.duplicate + counts["duplicate"],
            carried=self.totals.carried + counts["carried"], at=now)
        return self.last

    def _unknown(self, now: datetime) -> Sequence[Any]:
        mc, ca = t.marketplace_charges, t.cloud_accounts
        with self.engine.connect() as conn:
            return conn.execute(
                select(mc.c.id, mc.c.status, mc.c.attempts, mc.c.dimension, mc.c.period_start,
                       mc.c.quantity, mc.c.amount_minor, mc.c.deadline_at, mc.c.cloud_account_id,
                       ca.c.external_id)
                .join(ca, ca.c.id == mc.c.cloud_account_id)
                .where(mc.c.vendor == "azure", or_(
                    and_(mc.c.status == SENT, mc.c.sent_at <= now - self.sent_grace),
                    and_(mc.c.status == REFUSED, mc.c.settled_at.is_not(None),
                         mc.c.last_error.like(f"%{UNKNOWN_OUTCOME}%"))))
                .order_by(mc.c.period_start, mc.c.id).limit(BATCH)).all()

    def _settle(self, conn: Connection, *, row: Any, record: UsageRecord | None,
                now: datetime) -> str | None:
        mc = t.marketplace_charges
        still = and_(mc.c.id == row.id, mc.c.status == row.status,
                     mc.c.attempts == row.attempts)
        if record is not None and record.submitted_quantity == row.quantity:
            changed = conn.execute(update(mc).where(still).values(
                status=ACCEPTED, settled_at=now, last_error=None,
                record_id=(record.usage_event_id or "")[:255] or None)).rowcount
            if changed:
                log.info("marketplace reconciliation: azure charge %s held as event %s",
                         row.id, record.usage_event_id)
            return "accepted" if changed else None
        if record is not None:
            changed = conn.execute(update(mc).where(still).values(
                status=DUPLICATE, settled_at=now,
                last_error=OTHER_QUANTITY.format(held=record.submitted_quantity))).rowcount
            if changed:
                self._to_wallet(conn, row.id, now)
                log.warning("marketplace reconciliation: azure charge %s: another quantity "
                            "(%s) held for its hour", row.id, record.submitted_quantity)
            return "duplicate" if changed else None
        if row.status == SENT and now < row.deadline_at:
            changed = conn.execute(update(mc).where(still).values(
                status=PENDING, next_attempt_at=now, last_error=RESEND)).rowcount
            return "resent" if changed else None
        if now < row.deadline_at + SETTLE_MARGIN:
            return None  # Azure may still be catching up: ask again next run
        changed = conn.execute(update(mc).where(still).values(
            status=REFUSED, settled_at=now, last_error=NOT_HELD)).rowcount
        if changed:
            carry = t.marketplace_carry
            added = conn.execute(update(carry).where(
                carry.c.cloud_account_id == row.cloud_account_id).values(
                carried_minor=carry.c.carried_minor + row.amount_minor,
                updated_at=now)).rowcount
            if not added:  # (the cut that made the charge writes the row: never, in practice)
                conn.execute(insert(carry).values(cloud_account_id=row.cloud_account_id,
                                                  carried_minor=row.amount_minor,
                                                  updated_at=now))
            log.warning("marketplace reconciliation: azure charge %s was never billed: "
                        "carried into the next cut", row.id)
        return "carried" if changed else None

    def _to_wallet(self, conn: Connection, charge_id: int, now: datetime) -> None:
        mc, ca = t.marketplace_charges, t.cloud_accounts
        row = conn.execute(select(mc.c.amount_minor, ca.c.account_id)
                           .join(ca, ca.c.id == mc.c.cloud_account_id)
                           .where(mc.c.id == charge_id)).one()
        amount = int(row.amount_minor)
        if amount <= 0 or row.account_id is None:
            return

        def compute(held: ledger.Holdings) -> settlement.Postings:
            return settlement.cloud_to_wallet(amount, held.balances.get(settlement.CASH, 0))

        self.movements.post_many(conn, [ledger.Entry(
            row.account_id, f"marketplace/{charge_id}", ledger.digest(amount), ENTRY_KIND,
            str(charge_id), compute, what=f"marketplace charge {charge_id}")], now)


def _by_key(records: Sequence[UsageRecord]) -> dict[tuple[str, str, datetime], UsageRecord]:
    """Azure's events by its deduplication key (subscription, dimension, hour)."""
    held: dict[tuple[str, str, datetime], UsageRecord] = {}
    for record in records:
        hour = record.usage_date.replace(minute=0, second=0, microsecond=0)
        held.setdefault((record.resource_id, record.dimension, hour), record)
    return held
