"""The marketplace charge reporter (decisions.md 23): what a cloud-settled day leaves to a
cloud account is reported to its marketplace, exactly once.

Each run does three steps (:meth:`MarketplaceReporter.run`, job ``marketplace
reporter``), each cloud account and each vendor's batch failing alone:

* **cut**: the charge lines settled through a cloud account and not reported yet
  (``charges.marketplace_charge_id`` NULL) are summed with what the account carries
  (``marketplace_carry``) into one ``marketplace_charges`` row of whole units of the
  listing's money dimension for the current period (the hour or day the vendor
  reports by), in one transaction per cloud account that also marks the lines and
  keeps the remainder (periods are UTC hours or days, or the adapter's own
  ``period_start(now)`` when it has one: Alibaba's daily listings bill by
  Beijing day). One charge per cloud account, dimension and period: lines
  settled after this period's cut wait for the next period. A total below one unit,
  or made negative by corrections, makes no charge: its lines stay unmarked and are
  summed again at the next cut, so the negative amount is carried until charges
  cover it and a quantity is never negative. Only active cloud accounts are cut, and
  unsubscribing ones during their final-usage hour (the final report goes out in it);
  a pending one waits for the vendor's confirmation.
* **send**: due pending charges, and charges left ``sent`` by a run that stopped
  between sending and recording the answer, go to the vendor in batches within its
  limits, per vendor and product. A batch is marked ``sent`` (attempts + 1) in a
  committed transaction before the call, and each answer is recorded after it:
  ``accepted`` (with the vendor's record id), ``duplicate``, ``refused``, or back to
  ``pending`` with backoff and full jitter (longer when throttled) for unprocessed
  reports and passing failures. A resend is identical (the key is the charge id; the
  buyer, dimension, period and quantity never change), so a vendor that deduplicates
  (AWS answers an identical record with the same record id) never bills it twice. A
  charge past the vendor's lateness limit is not sent: it is refused ("past the
  vendor's window"). If it was never sent, its amount is carried back and the next cut
  reports it in a later period (our records are stamped with the period they are cut
  in, not the usage day), so a reporter that was down past the window still bills
  the vendor, once; one sent before stays on the receivable (below).
* **watch**: a charge still unsent when little of its window is left (a third, or the
  configured margin) is logged at ERROR once (``alerted_at``) and kept as a failing
  unit of the job, so ``/healthz`` shows it degraded until it is answered.

Money the vendor will not bill is not lost: the amount of a ``refused`` or
``duplicate`` charge leaves the cloud receivable for the billing account's wallet
(cash, then the prepaid balance, which may go into arrears) through ``Movements`` in
a journal entry of its own (key ``marketplace/<charge id>``), in the transaction that
records the answer; so every balance stays explained by postings. A duplicate is
treated so because we never send two quantities under one key: the vendor holds some
other record, and this charge was not billed. One case keeps its money on the cloud
receivable: a charge that was sent before and reaches its deadline without an answer
that rules acceptance out (a lost answer, a timeout) may have been billed by the
vendor, so charging the wallet could bill it twice; it is refused with a reason that
says so and logged at ERROR, for the operator to reconcile with the vendor.

**Vendors that keep every push** (``ReportLimits.resend_safe`` False: Alibaba Cloud,
which deduplicates nothing and offers no query we rely on) are never sent a charge
that may have reached them already; the rules above change so:

* A charge is sent again only when every earlier send is *proven* not to have been
  kept: the adapter answered it ``unprocessed`` without a call (its own per-instance
  rate limit, a period still open), or the whole call failed with a ``Transient``
  whose code says the vendor holds nothing (:data:`NOT_RECEIVED`: ``not_sent``, no
  connection was ever made; ``throttled``, the server answered that it throttled us;
  ``credentials_rejected``, it refused our signature or keys) or a ``Refused``
  answer. A ``_claim`` takes only ``pending`` charges, never stale ``sent`` ones.
* Anything else leaves the outcome **unknown**: a timeout or a connection reset after
  the request went out (``network``), a 5xx (``vendor_error``), any other exception
  from the adapter, or a charge found ``sent`` past the grace without an answer (the
  reporter died between the call and recording it). Such a charge becomes
  ``unknown`` (:data:`UNKNOWN`), is logged at ERROR at once (``alerted_at``), counted
  in the backlog (``unknown``) and listed by ``/admin/marketplaces/charges``, and
  stays a failing unit (``charge/<id>``, code ``marketplace_outcome_unknown``) so
  ``/healthz`` is degraded until an operator resolves it with the vendor's bill
  (:meth:`MarketplaceReporter.resolve`, ``POST …/charges/{id}/resolution``):
  ``billed: true`` → ``accepted``; ``billed: false`` → ``pending`` again, due at once,
  if the vendor's window is still open, else ``refused`` and its amount carried into
  the next cut (reported in a later period, as for a charge never sent). Its deadline
  passing changes nothing by itself: only the operator knows whether it was billed.
* A ``pending`` charge of such a vendor that reaches its deadline was never kept by
  the vendor (the rules above), so it is carried into the next cut whatever its
  attempts, instead of staying on the receivable as an unknown outcome.
* Pacing: after the adapter's rate-limit refusal (``unprocessed``, reason
  ``rate_limited``) or a throttled call, the next try is at least
  :data:`RATE_LIMIT_PACE` (60 s, Alibaba's one push per instance a minute) away,
  jitter on top, and never past the deadline.

Vendors that deduplicate (AWS, ``resend_safe`` True) keep the rules above unchanged:
an identical resend after the grace is what makes their reports exactly once.

A cloud account whose subscription ended (``cancelled``, ``failed``, or unsubscribing
past its final-usage hour) can be billed nothing more. Its lines not yet reported and
its carry are closed at the next run (:meth:`MarketplaceReporter.close_ended`) into
one ``refused`` charge, never sent, whose whole amount (sub-unit leftovers included)
goes to the wallet the same way; a net amount given back (corrections beyond what
was charged) goes to the wallet as a credit, arrears first. So nothing stays on the
cloud receivable for an account the vendor no longer bills, except the unknown
outcomes above.
"""

from __future__ import annotations

import logging
import random as randomness
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Connection, Engine, Integer, and_, func, insert, or_, select, update

from accrual.billing.adapters import tables as t
from accrual.billing.config import BillingConfig
from accrual.billing.domain import marketplace_charges as rules
from accrual.billing.domain import settlement
from accrual.billing.domain.marketplace import (
    Buyer,
    ChargeStatus,
    Marketplace,
    Refused,
    ReportResult,
    ReportStatus,
    Transient,
    UsageReport,
)
from accrual.billing.marketplaces import Marketplaces
from accrual.billing.services import ledger
from accrual.billing.services.movements import Movements
from accrual.clock import Clock
from accrual.contract.errors import Conflict, Invalid, NotFound
from accrual.infra.bulk import among
from accrual.infra.db import in_transaction
from accrual.infra.jobs import ERROR_CHARS, Job

log = logging.getLogger(__name__)

PENDING, SENT = ChargeStatus.PENDING.value, ChargeStatus.SENT.value
# Sent to a vendor that keeps every push, with no answer proving whether it was kept:
# never sent again automatically; an operator resolves it (resend_safe=False only).
UNKNOWN = "unknown"
STATUSES = (*(s.value for s in ChargeStatus), UNKNOWN)
# Transient codes proving the vendor kept nothing of the call (sent again even to a
# vendor that keeps every push): no connection made, throttled or refused keys.
NOT_RECEIVED = frozenset({"not_sent", "throttled", "credentials_rejected"})
RATE_LIMITED = "rate_limited"  # an adapter's unprocessed reason: its own rate limit
RATE_LIMIT_PACE = timedelta(seconds=60)
OUTCOME_UNKNOWN = "outcome unknown, not sent again: resolve it with the vendor's bill"
ACCEPTED, DUPLICATE, REFUSED = (ChargeStatus.ACCEPTED.value, ChargeStatus.DUPLICATE.value,
                                ChargeStatus.REFUSED.value)
UNANSWERED = (PENDING, SENT)
# Cloud accounts whose lines are cut; an unsubscribing one only during FINAL_USAGE.
CUT_STATUSES = ("active", "unsubscribing")
FINAL_USAGE = timedelta(hours=1)  # the vendor's final-usage window (marketplaces.md §1.5)
# A charge left ``sent`` this long without an answer recorded is sent again.
SENT_GRACE = timedelta(minutes=5)
SEND_LIMIT = 1000  # charges sent per run
PAST_WINDOW = "past the vendor's window"
RECUT = "; never sent: carried into the next cut"
UNKNOWN_OUTCOME = ("; sent before without an answer that rules out the vendor billing it: "
                   "left on the cloud receivable to reconcile")
ENTRY_KIND = "marketplace_refused"  # the journal entry that moves a refused charge's money
CHARGES_LIMIT = 500  # charges listed at most
ENDED_STATUSES = ("cancelled", "failed")  # the vendor bills nothing more
ENDED = "the subscription ended before this was reported: moved to the wallet"
ENDED_DIMENSION = "(ended)"  # the closing charge's: never a vendor's dimension


@dataclass(frozen=True)
class RunOutcome:
    """What one run did."""

    cut: int = 0  # charges created
    sent: int = 0  # reports handed to vendors (resends included)
    accepted: int = 0
    duplicate: int = 0
    refused: int = 0
    retried: int = 0  # put back to pending to be sent again
    alerted: int = 0  # charges newly alerted as near their deadline
    unknown: int = 0  # charges held because the vendor may have kept them


@dataclass(frozen=True)
class VendorBacklog:
    pending: int
    sent: int
    accepted: int
    duplicate: int
    refused: int
    unknown: int = 0


@dataclass(frozen=True)
class Backlog:
    """The reporter's state, from its rows (so it survives restarts)."""

    pending: int  # cut, waiting to be sent (again)
    sent_unanswered: int  # sent, no answer recorded yet
    oldest_pending_age_s: int | None  # the oldest charge pending or sent, by its cut
    near_deadline: int  # pending or sent with little of the vendor's window left
    accepted: int
    duplicate: int
    refused: int
    sends: int  # reports handed to vendors, resends included
    retries: int  # of those, the resends
    by_vendor: dict[str, VendorBacklog] = field(default_factory=dict)
    unknown: int = 0  # held: the vendor may have kept them (an operator resolves them)


@dataclass(frozen=True)
class ChargeView:
    id: int
    cloud_account_id: str
    vendor: str
    dimension: str
    period_start: datetime
    quantity: int
    amount_minor: int
    status: str
    attempts: int
    next_attempt_at: datetime
    deadline_at: datetime
    created_at: datetime
    sent_at: datetime | None
    settled_at: datetime | None
    record_id: str | None
    last_error: str | None
    alerted_at: datetime | None


@dataclass
class _Tally:
    counts: Counter[str] = field(default_factory=Counter)

    def outcome(self) -> RunOutcome:
        return RunOutcome(**{name: self.counts[name] for name in RunOutcome.__dataclass_fields__})


class MarketplaceReporter:
    def __init__(self, engine: Engine, config: BillingConfig, clock: Clock,
                 marketplaces: Marketplaces, movements: Movements, *,
                 random: Callable[[], float] = randomness.random,
                 alert_margin: timedelta | None = None,
                 sent_grace: timedelta = SENT_GRACE) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.marketplaces = marketplaces
        self.movements = movements
        self.random = random
        self.alert_margin = alert_margin  # None: alert with a third of the window left
        self.sent_grace = sent_grace
        # Units: cloud_account/<id> (cut), <vendor>/<product> (send), charge/<id> (deadline).
        self.job = Job("marketplace reporter", clock)

    def run(self) -> RunOutcome:
        """Cut, send, watch deadlines, close ended subscriptions (the scheduler runs it
        inside ``job.run()``)."""
        tally = _Tally()
        self.close_ended(tally)
        self.cut(tally)
        self.send(tally)
        self.watch_deadlines(tally)
        return tally.outcome()

    # -- cut ---------------------------------------------------------------------

    def cut(self, tally: _Tally | None = None) -> int:
        """One charge per cloud account with lines not reported yet (or a carry of a unit
        or more); the number made."""
        tally = tally or _Tally()
        now = self.clock.now()
        c, ca = t.charges, t.cloud_accounts
        with self.engine.connect() as conn:
            accounts: list[Any] = list(conn.execute(
                select(ca.c.id, ca.c.vendor, ca.c.status, ca.c.unsubscribing_at)
                .where(ca.c.status.in_(CUT_STATUSES), ca.c.id.in_(
                    select(c.c.cloud_account_id).where(c.c.cloud_account_id.is_not(None),
                                                       c.c.marketplace_charge_id.is_(None))))
                .order_by(ca.c.id)))
            # With no new lines, a carry of a unit or more (a charge never sent in its
            # window, carried back) is cut too.
            listed = {a.id for a in accounts}
            accounts += [a for a in conn.execute(
                select(ca.c.id, ca.c.vendor, ca.c.status, ca.c.unsubscribing_at,
                       t.marketplace_carry.c.carried_minor)
                .join(t.marketplace_carry, t.marketplace_carry.c.cloud_account_id == ca.c.id)
                .where(ca.c.status.in_(CUT_STATUSES), t.marketplace_carry.c.carried_minor > 0)
                .order_by(ca.c.id))
                if a.id not in listed and a.vendor in self.marketplaces
                and a.carried_minor >= self.marketplaces.get(a.vendor).unit_minor]
        made = 0
        for account in accounts:
            if account.status == "unsubscribing" and account.unsubscribing_at is not None \
                    and now >= account.unsubscribing_at + FINAL_USAGE:
                continue  # its final hour is over: the vendor takes nothing more
            unit = f"cloud_account/{account.id}"
            try:
                created = in_transaction(self.engine, partial(
                    self._cut_one, cloud_account_id=account.id,
                    market=self.marketplaces.get(account.vendor), now=now))
            except Exception as error:  # noqa: BLE001 (this cloud account only; next run)
                log.error("marketplace reporter: cutting %s failed: %s", unit, error)
                self.job.unit_failed(unit, error)
                continue
            self.job.unit_ok(unit)
            made += created is not None
        tally.counts["cut"] += made
        return made

    def _cut_one(self, conn: Connection, *, cloud_account_id: str, market: Marketplace,
                 now: datetime) -> int | None:
        mc, c, carry = t.marketplace_charges, t.charges, t.marketplace_carry
        start = _period_start(market, now)
        if conn.execute(select(mc.c.id).where(
                mc.c.cloud_account_id == cloud_account_id, mc.c.dimension == market.dimension,
                mc.c.period_start == start)).first() is not None:
            return None  # this period is reported already: the rest waits for the next
        lines = conn.execute(select(c.c.detail_id, c.c.cloud_minor).where(
            c.c.cloud_account_id == cloud_account_id,
            c.c.marketplace_charge_id.is_(None))).all()
        carried = conn.execute(select(carry.c.carried_minor).where(
            carry.c.cloud_account_id == cloud_account_id)).scalar()
        piece = rules.cut(int(carried or 0), sum(int(r.cloud_minor or 0) for r in lines),
                          market.unit_minor, market.limits.max_quantity)
        if piece.quantity <= 0 or piece.quantity < market.limits.min_quantity:
            return None  # nothing whole to report: the lines are summed again next time
        charge_id: int = conn.execute(insert(mc).values(
            cloud_account_id=cloud_account_id, vendor=market.vendor, dimension=market.dimension,
            period_start=start, quantity=piece.quantity, amount_minor=piece.amount_minor,
            status=PENDING, attempts=0, next_attempt_at=now,
            deadline_at=rules.deadline(start, market.limits), created_at=now)
            .returning(mc.c.id)).scalar_one()
        marked = conn.execute(update(c).where(
            among(conn, c.c.detail_id, [r.detail_id for r in lines]),
            c.c.marketplace_charge_id.is_(None)).values(marketplace_charge_id=charge_id)).rowcount
        if marked != len(lines):  # another cut took some meanwhile: this one rolls back
            raise RuntimeError(f"cloud account {cloud_account_id}: lines cut concurrently")
        if carried is None:
            conn.execute(insert(carry).values(cloud_account_id=cloud_account_id,
                                              carried_minor=piece.carry_minor, updated_at=now))
        else:
            conn.execute(update(carry).where(carry.c.cloud_account_id == cloud_account_id)
                         .values(carried_minor=piece.carry_minor, updated_at=now))
        log.info("marketplace reporter: charge %s for %s: %d unit(s) of %s for %s (carry %d)",
                 charge_id, cloud_account_id, piece.quantity, market.dimension,
                 start.isoformat(), piece.carry_minor)
        return charge_id

    # -- ended subscriptions -------------------------------------------------------

    def close_ended(self, tally: _Tally | None = None) -> int:
        """Close what ended cloud accounts still hold unreported into the wallet; the number
        of cloud accounts closed."""
        tally = tally or _Tally()
        now = self.clock.now()
        c, ca, carry = t.charges, t.cloud_accounts, t.marketplace_carry
        ended = or_(ca.c.status.in_(ENDED_STATUSES),
                    and_(ca.c.status == "unsubscribing", ca.c.unsubscribing_at.is_not(None),
                         ca.c.unsubscribing_at <= now - FINAL_USAGE))
        holding = or_(ca.c.id.in_(select(c.c.cloud_account_id).where(
            c.c.cloud_account_id.is_not(None), c.c.marketplace_charge_id.is_(None))),
            ca.c.id.in_(select(carry.c.cloud_account_id).where(carry.c.carried_minor != 0)))
        with self.engine.connect() as conn:
            accounts = conn.execute(select(ca.c.id, ca.c.vendor).where(ended, holding)
                                    .order_by(ca.c.id)).all()
        closed = 0
        for account in accounts:
            unit = f"cloud_account/{account.id}"
            try:
                closed += in_transaction(self.engine, partial(
                    self._close_one, cloud_account_id=account.id, vendor=account.vendor,
                    now=now))
            except Exception as error:  # noqa: BLE001 (this cloud account only; next run)
                log.error("marketplace reporter: closing %s failed: %s", unit, error)
                self.job.unit_failed(unit, error)
                continue
            self.job.unit_ok(unit)
        tally.counts["refused"] += closed
        return closed

    def _close_one(self, conn: Connection, *, cloud_account_id: str, vendor: str,
                   now: datetime) -> int:
        mc, c, carry, ca = (t.marketplace_charges, t.charges, t.marketplace_carry,
                            t.cloud_accounts)
        lines = conn.execute(select(c.c.detail_id, c.c.cloud_minor).where(
            c.c.cloud_account_id == cloud_account_id,
            c.c.marketplace_charge_id.is_(None))).all()
        carried = int(conn.execute(select(carry.c.carried_minor).where(
            carry.c.cloud_account_id == cloud_account_id)).scalar() or 0)
        total = carried + sum(int(r.cloud_minor or 0) for r in lines)
        market = self.marketplaces.by_vendor.get(vendor)
        unit_minor = market.unit_minor if market is not None else 1
        # A charge row of its own (never sent) records where the amount went, under a
        # dimension of its own: apart from every report the vendor was sent.
        charge_id: int = conn.execute(insert(mc).values(
            cloud_account_id=cloud_account_id, vendor=vendor, dimension=ENDED_DIMENSION,
            period_start=now, quantity=max(total, 0) // unit_minor,
            amount_minor=total, status=REFUSED, attempts=0, next_attempt_at=now,
            deadline_at=now, created_at=now, settled_at=now, last_error=ENDED)
            .returning(mc.c.id)).scalar_one()
        marked = conn.execute(update(c).where(
            among(conn, c.c.detail_id, [r.detail_id for r in lines]),
            c.c.marketplace_charge_id.is_(None)).values(marketplace_charge_id=charge_id)).rowcount
        if marked != len(lines):  # a cut took some meanwhile: this one rolls back
            raise RuntimeError(f"cloud account {cloud_account_id}: lines cut concurrently")
        conn.execute(update(carry).where(carry.c.cloud_account_id == cloud_account_id)
                     .values(carried_minor=0, updated_at=now))
        owner = conn.execute(select(ca.c.account_id).where(ca.c.id == cloud_account_id)).scalar()
        if owner is not None and total != 0:
            self.movements.post_many(conn, [_wallet_entry(str(owner), charge_id, total)], now)
        log.warning("marketplace reporter: %s ended; %s minor unit(s) unreported moved to "
                    "its wallet (charge %s)", cloud_account_id, total, charge_id)
        return 1

    # -- send --------------------------------------------------------------------

    def _due(self, now: datetime) -> Any:
        mc = t.marketplace_charges
        return or_(and_(mc.c.status == PENDING, mc.c.next_attempt_at <= now),
                   and_(mc.c.status == SENT, mc.c.sent_at <= now - self.sent_grace))

    def send(self, tally: _Tally | None = None) -> int:
        """Send the due charges; the number of reports handed to vendors."""
        tally = tally or _Tally()
        now = self.clock.now()
        mc, ca = t.marketplace_charges, t.cloud_accounts
        with self.engine.connect() as conn:
            due = conn.execute(
                select(mc.c.id, mc.c.vendor, mc.c.deadline_at, mc.c.attempts, mc.c.status,
                       ca.c.product_code)
                .join(ca, ca.c.id == mc.c.cloud_account_id).where(self._due(now))
                .order_by(mc.c.deadline_at, mc.c.id).limit(SEND_LIMIT)).all()
        groups: dict[tuple[str, str], list[int]] = {}
        for row in due:
            safe = self._resend_safe(row.vendor)
            if not safe and row.status == SENT:
                # Left sent without an answer: the vendor may hold it; never again by itself.
                in_transaction(self.engine, partial(
                    self._hold, ids=[row.id], why="left sent without a recorded answer (the "
                    "reporter stopped between the call and its answer)", tally=tally))
                continue
            if row.deadline_at <= now:
                self._refuse_unsent(row.id, row.attempts, tally, carry=not safe)
                continue
            groups.setdefault((row.vendor, row.product_code or ""), []).append(row.id)
        before = tally.counts["sent"]
        for (vendor, product), ids in groups.items():
            unit = f"{vendor}/{product or '-'}"
            market = self.marketplaces.by_vendor.get(vendor)
            if market is None:
                self.job.unit_failed(unit, f"no {vendor} marketplace is configured",
                                     code="marketplace_not_configured")
                continue
            try:
                failed = self._send_group(market, ids, unit, tally)
            except Exception as error:  # (this vendor's product only)
                log.exception("marketplace reporter: sending to %s failed", unit)
                self.job.unit_failed(unit, error, next_attempt_at=now + self.sent_grace)
                continue
            if not failed:
                self.job.unit_ok(unit)
        self._clear_idle_units()
        return tally.counts["sent"] - before

    def _resend_safe(self, vendor: str) -> bool:
        market = self.marketplaces.by_vendor.get(vendor)
        return market is None or market.limits.resend_safe

    def _clear_idle_units(self) -> None:
        """A vendor's product that failed and has nothing left to send (its charges were
        answered or refused past their window) is no longer failing."""
        sending = [u for u in self.job.failing if not u.startswith(("cloud_account/", "charge/"))]
        if not sending:
            return
        mc, ca = t.marketplace_charges, t.cloud_accounts
        with self.engine.connect() as conn:
            busy = {f"{vendor}/{product or '-'}" for vendor, product in conn.execute(
                select(mc.c.vendor, ca.c.product_code).distinct()
                .join(ca, ca.c.id == mc.c.cloud_account_id)
                .where(mc.c.status.in_(UNANSWERED)))}
        for unit in sending:
            if unit not in busy:
                self.job.unit_ok(unit)

    def _send_group(self, market: Marketplace, ids: list[int], unit: str,
                    tally: _Tally) -> bool:
        """Send these charges of one vendor's product in batches; whether a batch failed."""
        reports = self._reports(ids, market)
        for batch in rules.batches(reports, market.limits, rules.report_bytes):
            if self._send_batch(market, batch, unit, tally):
                return True  # the vendor is struggling: the rest waits for the next run
        return False

    def _send_batch(self, market: Marketplace, batch: list[UsageReport], unit: str,
                    tally: _Tally) -> bool:
        """Claim, send and record one batch; whether the vendor failed for a passing reason."""
        safe = market.limits.resend_safe
        claimed = in_transaction(self.engine, lambda conn: self._claim(conn, batch, safe))
        sending = [r for r in batch if int(r.key) in claimed]
        if not sending:
            return False
        tally.counts["sent"] += len(sending)
        ids = [int(r.key) for r in sending]
        try:
            results = market.report(sending)
        except Transient as error:
            throttled, why = error.throttled, str(error)
            if not safe and not (throttled or error.code in NOT_RECEIVED):
                # A timeout, a reset after sending, a 5xx: the vendor may have kept it.
                in_transaction(self.engine, lambda conn: self._hold(conn, ids, why, tally))
                self.job.unit_failed(unit, error, code="marketplace_outcome_unknown")
                return True
            pace = RATE_LIMIT_PACE if throttled and not safe else None
            retry_at = in_transaction(self.engine, lambda conn: self._back_off(
                conn, ids, claimed, throttled, why, tally, at_least=pace))
            self.job.unit_failed(unit, error, next_attempt_at=retry_at)
            return True
        except Refused as error:
            refusals = [ReportResult(r.key, ReportStatus.REFUSED, reason=str(error))
                        for r in sending]
            in_transaction(self.engine, lambda conn: self._record(conn, refusals, claimed,
                                                                  tally))
            return False
        except Exception as error:
            if not safe:  # whatever happened, the call may have gone out
                why = f"{type(error).__name__}: {error}"
                in_transaction(self.engine, lambda conn: self._hold(conn, ids, why, tally))
            raise
        keys = [r.key for r in sending]
        if sorted(r.key for r in results) != sorted(keys):
            # An answer we cannot match: the charges stay sent and go again, identical
            # (held as unknown instead for a vendor that keeps every push).
            if not safe:
                in_transaction(self.engine, lambda conn: self._hold(
                    conn, ids, "an answer that does not match the reports sent", tally))
            raise RuntimeError(f"{market.vendor} answered {len(results)} result(s) that do "
                               f"not match the {len(keys)} report(s) sent")
        in_transaction(self.engine, lambda conn: self._record(conn, results, claimed, tally))
        return False

    def _reports(self, ids: list[int], market: Marketplace) -> list[UsageReport]:
        """The reports of these charges, identical on every send."""
        mc, ca = t.marketplace_charges, t.cloud_accounts
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(mc.c.id, mc.c.dimension, mc.c.period_start, mc.c.quantity, ca.c.vendor,
                       ca.c.external_id, ca.c.product_code, ca.c.customer_ref, ca.c.license_ref)
                .join(ca, ca.c.id == mc.c.cloud_account_id)
                .where(among(conn, mc.c.id, ids, Integer())).order_by(mc.c.deadline_at, mc.c.id)
            ).all()
        return [UsageReport(key=str(r.id), buyer=Buyer(
                    vendor=r.vendor, account_id=r.external_id, product_code=r.product_code or "",
                    customer_id=r.customer_ref, license_ref=r.license_ref),
                    dimension=r.dimension, period_start=r.period_start, quantity=int(r.quantity))
                for r in rows]

    def _claim(self, conn: Connection, batch: Sequence[UsageReport],
               resend_safe: bool = True) -> dict[int, int]:
        """Mark the charges of ``batch`` still due as sent, before the call: their attempts
        by id (a concurrent reporter's are skipped). For a vendor that keeps every push
        only pending ones: a stale sent one may have reached it."""
        mc = t.marketplace_charges
        now = self.clock.now()
        due = self._due(now) if resend_safe else and_(mc.c.status == PENDING,
                                                       mc.c.next_attempt_at <= now)
        query = select(mc.c.id, mc.c.attempts).where(
            among(conn, mc.c.id, [int(r.key) for r in batch], Integer()), due)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        claimed = {row.id: row.attempts + 1 for row in conn.execute(query)}
        if claimed:
            conn.execute(update(mc).where(among(conn, mc.c.id, claimed, Integer())).values(
                status=SENT, attempts=mc.c.attempts + 1, sent_at=now))
        return claimed

    def _back_off(self, conn: Connection, ids: list[int], attempts: dict[int, int],
                  throttled: bool, error: str, tally: _Tally, *,
                  at_least: timedelta | None = None) -> datetime:
        """Back to pending, each with its own jittered delay (``at_least`` after a rate
        limit, but before the deadline); the earliest next attempt."""
        mc = t.marketplace_charges
        now = self.clock.now()
        deadlines = dict(conn.execute(select(mc.c.id, mc.c.deadline_at)
                                      .where(among(conn, mc.c.id, ids, Integer()))).all())
        earliest: datetime | None = None
        for charge_id in ids:
            delay = rules.retry_delay(attempts[charge_id], throttled=throttled,
                                      random=self.random)
            at = rules.next_attempt_at(now, delay, deadlines[charge_id])
            if at_least is not None:
                at = max(at, min(now + at_least + delay, deadlines[charge_id]))
            conn.execute(update(mc).where(mc.c.id == charge_id, mc.c.status == SENT).values(
                status=PENDING, next_attempt_at=at, last_error=error[:ERROR_CHARS]))
            earliest = at if earliest is None else min(earliest, at)
            tally.counts["retried"] += 1
        return earliest or now

    def _record(self, conn: Connection, results: Sequence[ReportResult],
                attempts: dict[int, int], tally: _Tally) -> None:
        """The vendor's answers, and the money of what it will not bill back to wallets."""
        mc = t.marketplace_charges
        now = self.clock.now()
        given_back: list[int] = []
        unprocessed: list[int] = []
        paced: list[int] = []  # refused by the adapter's own rate limit
        for result in results:
            charge_id = int(result.key)
            if result.status == ReportStatus.UNPROCESSED:
                (paced if result.reason == RATE_LIMITED else unprocessed).append(charge_id)
                continue
            status = {ReportStatus.ACCEPTED: ACCEPTED, ReportStatus.DUPLICATE: DUPLICATE,
                      ReportStatus.REFUSED: REFUSED}[result.status]
            conn.execute(update(mc).where(mc.c.id == charge_id, mc.c.status == SENT).values(
                status=status, settled_at=now,
                record_id=result.record_id[:255] if result.record_id else None,
                last_error=(result.reason or status)[:ERROR_CHARS]
                if status != ACCEPTED else None))
            tally.counts[status] += 1
            if status != ACCEPTED:
                log.warning("marketplace reporter: charge %s %s by the vendor: %s", charge_id,
                            status, result.reason)
                given_back.append(charge_id)
        if unprocessed:
            self._back_off(conn, unprocessed, attempts, False, "unprocessed by the vendor",
                           tally)
        if paced:
            self._back_off(conn, paced, attempts, False, "rate limited: one push per "
                           f"instance every {RATE_LIMIT_PACE.seconds} s", tally,
                           at_least=RATE_LIMIT_PACE)
        self._to_wallets(conn, given_back, now)

    def _hold(self, conn: Connection, ids: list[int], why: str, tally: _Tally) -> None:
        """These sent charges may have been kept by a vendor that keeps every push: held
        as unknown, alerted now, for an operator to resolve."""
        mc = t.marketplace_charges
        now = self.clock.now()
        for charge_id in ids:
            held = conn.execute(update(mc).where(mc.c.id == charge_id, mc.c.status == SENT)
                                .values(status=UNKNOWN, alerted_at=now,
                                        last_error=f"{OUTCOME_UNKNOWN}: {why}"[:ERROR_CHARS])
                                ).rowcount
            if held:
                tally.counts["unknown"] += 1
                log.error("marketplace reporter: charge %s sent, %s; %s", charge_id, why,
                          OUTCOME_UNKNOWN)
                self.job.unit_failed(f"charge/{charge_id}", f"charge {charge_id}: "
                                     f"{OUTCOME_UNKNOWN}: {why}",
                                     code="marketplace_outcome_unknown")

    def resolve(self, charge_id: int, billed: bool) -> ChargeView:
        """An operator's answer for a charge held as unknown, from the vendor's bill:
        billed → accepted; not billed → pending again (due now) within the vendor's
        window, else refused and carried into the next cut. 404 ``charge_not_found``,
        409 ``charge_not_unknown`` for any other state (nothing changes)."""
        mc, carry = t.marketplace_charges, t.marketplace_carry

        def work(conn: Connection) -> str:
            now = self.clock.now()
            query = select(mc).where(mc.c.id == charge_id)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()
            row = conn.execute(query).first()
            if row is None:
                raise NotFound("charge_not_found", f"no marketplace charge {charge_id}")
            if row.status != UNKNOWN:
                raise Conflict("charge_not_unknown",
                               f"charge {charge_id} is {row.status}; only a charge whose "
                               "outcome is unknown is resolved")
            if billed:
                values: dict[str, Any] = {"status": ACCEPTED, "settled_at": now,
                                          "last_error": "resolved by the operator: billed"}
            elif now < row.deadline_at:
                values = {"status": PENDING, "next_attempt_at": now,
                          "last_error": "resolved by the operator: not billed; sent again"}
            else:
                values = {"status": REFUSED, "settled_at": now,
                          "last_error": "resolved by the operator: not billed; "
                                        + PAST_WINDOW + RECUT}
                conn.execute(update(carry).where(carry.c.cloud_account_id == row.cloud_account_id)
                             .values(carried_minor=carry.c.carried_minor + row.amount_minor,
                                     updated_at=now))
            conn.execute(update(mc).where(mc.c.id == charge_id, mc.c.status == UNKNOWN)
                         .values(**values))
            return str(values["status"])

        status = in_transaction(self.engine, work)
        log.warning("marketplace reporter: charge %s resolved by the operator (billed: %s): %s",
                    charge_id, billed, status)
        self.job.unit_ok(f"charge/{charge_id}")
        [view] = self.charges(limit=1, charge_id=charge_id)
        return view

    def _refuse_unsent(self, charge_id: int, attempts: int, tally: _Tally, *,
                       carry: bool = False) -> None:
        """Refuse a charge past the vendor's window without sending it again. One never
        sent (or, with ``carry``, never kept by a vendor that keeps every push) is cut
        again: its amount joins the cloud account's carry, so the next cut reports it in
        a later period (the vendor is billed; the wallet is not). One sent before keeps
        its money on the cloud receivable (the vendor may hold it)."""
        mc = t.marketplace_charges
        carried = t.marketplace_carry
        unit = f"charge/{charge_id}"
        never_sent = attempts == 0 or carry
        reason = PAST_WINDOW + (RECUT if never_sent else UNKNOWN_OUTCOME)

        def work(conn: Connection) -> bool:
            now = self.clock.now()
            changed = conn.execute(update(mc).where(
                mc.c.id == charge_id, mc.c.status.in_(UNANSWERED),
                mc.c.attempts == attempts).values(
                status=REFUSED, settled_at=now, last_error=reason)).rowcount
            if changed and never_sent:
                row = conn.execute(select(mc.c.cloud_account_id, mc.c.amount_minor)
                                   .where(mc.c.id == charge_id)).one()
                # The cut that made it wrote the carry row.
                conn.execute(update(carried)
                             .where(carried.c.cloud_account_id == row.cloud_account_id)
                             .values(carried_minor=carried.c.carried_minor + row.amount_minor,
                                     updated_at=now))
            return bool(changed)

        try:
            if in_transaction(self.engine, work):
                tally.counts["refused"] += 1
                log.error("marketplace reporter: charge %s refused unsent: %s", charge_id, reason)
                self.job.unit_ok(unit)
        except Exception as error:  # (this charge only; next run)
            log.exception("marketplace reporter: refusing charge %s failed", charge_id)
            self.job.unit_failed(unit, error)

    def _to_wallets(self, conn: Connection, charge_ids: list[int], now: datetime) -> None:
        """What these charges would have billed leaves the cloud receivable for the owning
        billing accounts' wallets (one idempotent journal entry each)."""
        if not charge_ids:
            return
        mc, ca = t.marketplace_charges, t.cloud_accounts
        rows = conn.execute(select(mc.c.id, mc.c.amount_minor, ca.c.account_id)
                            .join(ca, ca.c.id == mc.c.cloud_account_id)
                            .where(among(conn, mc.c.id, charge_ids, Integer()))
                            .order_by(mc.c.id)).all()
        entries = [_wallet_entry(row.account_id, row.id, int(row.amount_minor))
                   for row in rows if row.amount_minor > 0]
        self.movements.post_many(conn, entries, now)

    # -- deadlines ---------------------------------------------------------------

    def watch_deadlines(self, tally: _Tally | None = None) -> int:
        """Alert once for each unanswered charge near its deadline; keep those as failing
        units of the job while they stay unanswered. The number newly alerted."""
        tally = tally or _Tally()
        now = self.clock.now()
        mc = t.marketplace_charges
        with self.engine.connect() as conn:
            rows = conn.execute(select(mc.c.id, mc.c.cloud_account_id, mc.c.vendor,
                                       mc.c.period_start, mc.c.deadline_at, mc.c.alerted_at,
                                       mc.c.next_attempt_at, mc.c.status, mc.c.attempts,
                                       mc.c.last_error)
                                .where(mc.c.status.in_((*UNANSWERED, UNKNOWN)))).all()
        near: set[str] = set()
        alerted = 0
        for row in rows:
            if row.status == UNKNOWN:  # alerted when held; failing until resolved
                unit = f"charge/{row.id}"
                near.add(unit)
                if unit not in self.job.failing:
                    self.job.unit_failed(unit, f"{row.vendor} charge {row.id} of "
                                         f"{row.cloud_account_id}: {row.last_error}",
                                         code="marketplace_outcome_unknown")
                continue
            if now < rules.alert_at(row.period_start, row.deadline_at, self.alert_margin):
                continue
            unit = f"charge/{row.id}"
            near.add(unit)
            left = max(row.deadline_at - now, timedelta(0))
            text = (f"{row.vendor} charge {row.id} of {row.cloud_account_id} is still "
                    f"{row.status} after {row.attempts} attempt(s), {left} before the vendor's "
                    f"window closes at {row.deadline_at.isoformat()}: {row.last_error or '-'}")
            if row.alerted_at is None:
                with self.engine.begin() as conn:
                    first = conn.execute(update(mc).where(mc.c.id == row.id,
                                                          mc.c.alerted_at.is_(None))
                                         .values(alerted_at=now)).rowcount
                if first:
                    alerted += 1
                    log.error("marketplace reporter: %s", text)
            if unit not in self.job.failing:
                self.job.unit_failed(unit, text, code="marketplace_deadline_near",
                                     next_attempt_at=row.next_attempt_at)
        for unit in [u for u in self.job.failing if u.startswith("charge/") and u not in near]:
            self.job.unit_ok(unit)
        tally.counts["alerted"] += alerted
        return alerted

    # -- operator views ----------------------------------------------------------

    def backlog(self) -> Backlog:
        now = self.clock.now()
        mc = t.marketplace_charges
        by_vendor: dict[str, Counter[str]] = {}
        sends = sent_once = 0
        with self.engine.connect() as conn:
            for vendor, status, count, attempts, tried in conn.execute(
                    select(mc.c.vendor, mc.c.status, func.count(),
                           func.coalesce(func.sum(mc.c.attempts), 0),
                           func.count().filter(mc.c.attempts > 0))
                    .group_by(mc.c.vendor, mc.c.status)):
                by_vendor.setdefault(vendor, Counter())[status] += int(count)
                sends += int(attempts)
                sent_once += int(tried)
            open_rows = conn.execute(select(mc.c.created_at, mc.c.period_start,
                                            mc.c.deadline_at, mc.c.status)
                                     .where(mc.c.status.in_((*UNANSWERED, UNKNOWN)))).all()
        totals: Counter[str] = Counter()
        for counts in by_vendor.values():
            totals.update(counts)
        # Held charges are open too (the oldest-age figure), but not near any deadline.
        oldest = min((r.created_at for r in open_rows), default=None)
        return Backlog(
            pending=totals[PENDING], sent_unanswered=totals[SENT],
            oldest_pending_age_s=(max(int((now - oldest).total_seconds()), 0)
                                  if oldest is not None else None),
            near_deadline=sum(r.status != UNKNOWN and now >= rules.alert_at(
                r.period_start, r.deadline_at, self.alert_margin) for r in open_rows),
            accepted=totals[ACCEPTED], duplicate=totals[DUPLICATE], refused=totals[REFUSED],
            sends=sends, retries=sends - sent_once,
            by_vendor={vendor: VendorBacklog(counts[PENDING], counts[SENT], counts[ACCEPTED],
                                             counts[DUPLICATE], counts[REFUSED],
                                             counts[UNKNOWN])
                       for vendor, counts in sorted(by_vendor.items())},
            unknown=totals[UNKNOWN])

    def charges(self, *, status: str | None = None, cloud_account_id: str | None = None,
                limit: int = 100, charge_id: int | None = None) -> list[ChargeView]:
        """Charges, newest first, optionally of one status, cloud account or id."""
        if status is not None and status not in STATUSES:
            raise Invalid("invalid_status", f"status is one of {', '.join(STATUSES)}")
        if cloud_account_id is not None and not 1 <= len(cloud_account_id) <= 32:
            raise Invalid("invalid_cloud_account_id", "a cloud account id has 1 to 32 characters")
        if not 1 <= limit <= CHARGES_LIMIT:
            raise Invalid("invalid_limit", f"limit is between 1 and {CHARGES_LIMIT}")
        mc = t.marketplace_charges
        query = select(mc).order_by(mc.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(mc.c.status == status)
        if cloud_account_id is not None:
            query = query.where(mc.c.cloud_account_id == cloud_account_id)
        if charge_id is not None:
            query = query.where(mc.c.id == charge_id)
        with self.engine.connect() as conn:
            return [ChargeView(
                id=r.id, cloud_account_id=r.cloud_account_id, vendor=r.vendor,
                dimension=r.dimension, period_start=r.period_start, quantity=int(r.quantity),
                amount_minor=int(r.amount_minor), status=r.status, attempts=r.attempts,
                next_attempt_at=r.next_attempt_at, deadline_at=r.deadline_at,
                created_at=r.created_at, sent_at=r.sent_at, settled_at=r.settled_at,
                record_id=r.record_id, last_error=r.last_error, alerted_at=r.alerted_at)
                for r in conn.execute(query)]


def _period_start(market: Marketplace, now: datetime) -> datetime:
    """The start of the vendor's period containing ``now``: UTC hours and days, unless the
    adapter counts periods otherwise (Alibaba's daily listings bill by Beijing day)."""
    own = getattr(market, "period_start", None)
    return own(now) if callable(own) else rules.period_start(now, market.limits.period)


def _wallet_entry(owner: str, charge_id: int, amount_minor: int) -> ledger.Entry:
    """The wallet pays what a cloud account will not be billed (a positive amount), or
    gets back what corrections gave it beyond its charges (a negative one)."""
    def compute(held: ledger.Holdings) -> settlement.Postings:
        if amount_minor < 0:
            return settlement.wallet_from_cloud(-amount_minor,
                                                held.balances.get(settlement.PREPAID, 0))
        return settlement.cloud_to_wallet(amount_minor, held.balances.get(settlement.CASH, 0))

    return ledger.Entry(owner, f"marketplace/{charge_id}", ledger.digest(amount_minor),
                        ENTRY_KIND, str(charge_id), compute,
                        what=f"marketplace charge {charge_id}")
