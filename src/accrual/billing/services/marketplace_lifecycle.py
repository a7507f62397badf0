"""A marketplace subscription's life after activation: the vendor's notifications
(marketplaces.md §1.5–1.6; reference-billing.md §5.3–5.4; decisions.md 13).

``POST /billing/v1/marketplaces/{vendor}/notifications`` hands the raw request to
:meth:`MarketplaceLifecycle.notify`. The adapter proves it is the vendor's (a forged,
stale or malformed one is refused with the adapter's code, logged, and changes
nothing); a message id seen before answers ``duplicate`` and changes nothing; else one
transaction records the message and applies it to the cloud account it names:

* ``subscribe-success``: the cloud account is active;
* ``unsubscribe-pending``: ``unsubscribing`` (``unsubscribing_at`` = now): the vendor's
  final-usage hour, in which the charge reporter sends what is still owed;
* ``unsubscribe-success``: ``cancelled``; ``subscribe-fail``: ``failed``. Both end the
  subscription, and the vendor's rule (``subscriptions.on_cancellation``) applies to
  every workspace whose newest binding settles through that cloud account:
  - AWS, Huawei, Azure: locked at once (``cloud_locks``; its console is told
    ``locked``, reason ``marketplace``; the owner is mailed). Its bindings are left as
    they are: what it uses meanwhile is settled from the account's wallet (the
    settlement falls back when a binding's cloud account has ended). Re-subscribing
    (a new activation bound to it), another cloud account or the billing center
    (``PUT …/settlement-method``, allowed for a locked workspace even when it was
    activated from that vendor or changed this month) unlocks it at once;
  - Alibaba Cloud: no lock; it settles by the billing center from the next billing
    day and its owner is mailed.
  A workspace that already leaves that cloud account tomorrow is left alone.
  - Huawei: locked too, and the cloud link is removed: its binding moves to the
    billing center from the next billing day, so once unlocked it settles there
    (reference-billing.md §5.4).
* ``entitlement-updated``: the entitlement is read again; one no longer active ends
  the subscription as above.
* ``suspend`` (Alibaba expiredInstance, Huawei freeze, Azure Suspend): ``suspended``;
  the vendor takes no usage, so the reporter cuts nothing (its lines wait) and the
  workspaces it settles are locked (mail ``cloud_suspended``). ``reinstate`` or
  ``renew`` bring it back ``active`` and lift those locks (``cloud_unlocked``, route
  ``reinstated``); a renewal of an active subscription changes nothing.
* ``plan-changed``: a vendor that meters against the plan (Azure) has the new plan
  stored (``license_ref``) for the next reports; an instance vendor's changes nothing.

Vendors that call us in their own protocol (Alibaba SPI, Huawei activities, Azure
webhook) verify the call with their adapter and hand the result to
:meth:`MarketplaceLifecycle.apply`, which answers a message id applied before as
``duplicate`` (a vendor's retry) instead of refusing it. For Alibaba and Huawei the
call names the purchase by its instance (``license_ref``), which is what matches.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from accrual.billing.adapters import tables as t
from accrual.billing.config import BillingConfig
from accrual.billing.domain import methods as rules
from accrual.billing.domain import subscriptions as rule
from accrual.billing.domain.marketplace import (
    Acknowledged,
    Buyer,
    MarketplaceError,
    Notification,
    NotificationAction,
    NotificationRejected,
    Transient,
)
from accrual.billing.marketplaces import Marketplaces
from accrual.billing.services import cloud_locks
from accrual.billing.services import mail_outbox as mails
from accrual.billing.services.accounts import BillingAccounts
from accrual.clock import Clock
from accrual.contract.errors import Conflict, Forbidden, Invalid, NotFound, Unavailable
from accrual.infra.db import in_transaction

log = logging.getLogger(__name__)

# SNS delivers at most 256 KiB of message in an envelope of a few KiB.
MAX_NOTIFICATION_BYTES = 300 * 1024
MAX_MESSAGE_ID, MAX_CUSTOMER, MAX_LICENSE_REF = 128, 255, 2048
DUPLICATE = "duplicate"  # the outcome of a notification applied before
ACKNOWLEDGED = "acknowledged"  # a protocol message the adapter answered (SNS confirmation)


@dataclass(frozen=True)
class NotificationOutcome:
    message_id: str
    vendor: str
    action: str
    # applied | unchanged (nothing to change) | unknown_customer | duplicate (applied
    # before) | acknowledged (a protocol message, e.g. SNS's subscription confirmation)
    outcome: str
    cloud_account_id: str | None = None
    status: str | None = None  # the cloud account's status afterwards
    locked: tuple[str, ...] = field(default=())  # workspaces locked by it
    switched: tuple[str, ...] = field(default=())  # moved to the billing center by it
    unlocked: tuple[str, ...] = field(default=())  # unlocked by it (reinstated)


class MarketplaceLifecycle:
    def __init__(self, engine: Engine, config: BillingConfig, clock: Clock,
                 accounts: BillingAccounts, marketplaces: Marketplaces) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.accounts = accounts
        self.marketplaces = marketplaces

    def notify(self, vendor: str, headers: Mapping[str, str], body: bytes) -> NotificationOutcome:
        vendor = rules.check_vendor(vendor, self.config.currency)
        if vendor not in self.marketplaces:
            # This center sells no listing there: nothing to come from (not a passing fault).
            raise NotFound("marketplace_not_configured",
                           f"this billing center has no {vendor} marketplace listing")
        adapter = self.marketplaces.get(vendor)
        if len(body) > MAX_NOTIFICATION_BYTES:
            raise Invalid("notification_too_large",
                          f"a notification is at most {MAX_NOTIFICATION_BYTES} bytes")
        now = self.clock.now()
        try:
            note = adapter.verify_notification(headers, body, now)
        except Acknowledged as handled:
            log.info("%s protocol message %s: %s", vendor, handled.message_id, handled.message)
            return NotificationOutcome(handled.message_id[:MAX_MESSAGE_ID], vendor, handled.code,
                                       ACKNOWLEDGED)
        except NotificationRejected as rejected:
            log.warning("%s notification rejected (%s): %s", vendor, rejected.code,
                        rejected.message)
            raise Forbidden(rejected.code, "not a notification from the marketplace: "
                                           f"{rejected.message}") from None
        except Transient as error:
            log.warning("%s notification: cannot verify now: %s", vendor, error)
            raise Unavailable("marketplace_unavailable",
                              "the notification cannot be verified now; send it again") from None
        if note.vendor != vendor:
            log.warning("%s notification rejected: it names vendor %s", vendor, note.vendor)
            raise Forbidden("notification_invalid",
                            "the notification names another vendor or is malformed")
        outcome = self.apply(note)
        if outcome.outcome == DUPLICATE:
            raise _replayed(note)
        return outcome

    def apply(self, note: Notification) -> NotificationOutcome:
        """Apply a notification an adapter has verified (the vendors that call us with
        their own protocol: Alibaba SPI, Huawei activities, Azure webhook). Idempotent by
        ``message_id``: one applied before answers outcome ``duplicate`` and changes
        nothing, so a vendor's retry of the same call is answered as the first was."""
        if note.vendor not in self.marketplaces or not 1 <= len(note.message_id) <= MAX_MESSAGE_ID \
                or not 1 <= len(note.customer) <= MAX_CUSTOMER \
                or (note.license_ref is not None
                    and not 1 <= len(note.license_ref) <= MAX_LICENSE_REF):
            log.warning("%s notification rejected: unusable (vendor, id, customer or "
                        "license length)", note.vendor)
            raise Forbidden("notification_invalid",
                            "the notification names another vendor or is malformed")
        if self._seen(note.message_id):
            return _duplicate(note)
        active = None
        if note.action is NotificationAction.ENTITLEMENT_UPDATED:
            # Read outside the transaction: a vendor call never holds database locks.
            active = self._entitlement_active(self.marketplaces.get(note.vendor), note)
        try:
            return in_transaction(self.engine, lambda conn: self._apply(conn, note, active))
        except IntegrityError:
            # The same message delivered twice at once: the other delivery applied it.
            if self._seen(note.message_id):
                return _duplicate(note)
            raise

    def _seen(self, message_id: str) -> bool:
        """Whether a notification with this vendor message id was applied already."""
        n = t.marketplace_notifications
        with self.engine.connect() as conn:
            return conn.execute(select(n.c.message_id)
                                .where(n.c.message_id == message_id)).first() is not None

    def _entitlement_active(self, adapter: Any, note: Notification) -> bool | None:
        with self.engine.connect() as conn:
            cloud = self._cloud_account(conn, note)
        if cloud is None:
            return None
        buyer = Buyer(vendor=cloud.vendor, account_id=cloud.external_id,
                      product_code=cloud.product_code or note.product_code,
                      customer_id=cloud.customer_ref, license_ref=cloud.license_ref)
        try:
            return bool(adapter.entitlement(buyer).active)
        except MarketplaceError as error:
            log.warning("%s entitlement of %s cannot be read now: %s", cloud.vendor,
                        cloud.external_id, error)
            raise Unavailable("marketplace_unavailable",
                              "the entitlement cannot be read now; send it again") from None

    @staticmethod
    def _cloud_account(conn: Connection, note: Notification, *, lock: bool = False) -> Any:
        """The cloud account a notification is about: the vendor names the buyer by its
        account or its customer id. Of several (a buyer who subscribed again), the one
        in its final window for an ``unsubscribe-success``, else the newest live one,
        else the newest."""
        c = t.cloud_accounts
        if note.vendor in rule.INSTANCE_VENDORS and note.license_ref:
            # The vendor names the purchase by its instance (a buyer may hold several);
            # its later calls often carry nothing else.
            query = select(c).where(c.c.vendor == note.vendor,
                                    c.c.license_ref == note.license_ref)
        else:
            # Listings past AWS's Concurrent Agreements never learn a CustomerIdentifier:
            # the buyer's account id, when the notification names it, matches instead.
            accounts = sorted({name for name in (note.customer, note.account_id) if name})
            query = select(c).where(c.c.vendor == note.vendor, or_(
                c.c.external_id.in_(accounts), c.c.customer_ref == note.customer))
        query = query.order_by(c.c.linked_at, c.c.id)
        if lock and conn.dialect.name == "postgresql":
            query = query.with_for_update()
        # A call without a product code (Alibaba's renewInstance, …) matches any.
        rows = [r for r in conn.execute(query) if r.product_code is None
                or not note.product_code or r.product_code == note.product_code]
        if not rows:
            return None
        live = [r for r in rows if not rule.ended(r.status)]
        if note.action is NotificationAction.UNSUBSCRIBE_SUCCESS:
            closing = [r for r in live if r.status == rule.CloudStatus.UNSUBSCRIBING]
            if closing:
                return closing[0]
        return (live or rows)[-1]

    def _apply(self, conn: Connection, note: Notification, active: bool | None
               ) -> NotificationOutcome:
        now = self.clock.now()
        cloud = self._cloud_account(conn, note, lock=True)
        outcome = NotificationOutcome(note.message_id, note.vendor, str(note.action),
                                      "unknown_customer")
        if cloud is not None:
            if note.action is NotificationAction.ENTITLEMENT_UPDATED:
                change = None if active is None else rule.after_entitlement(cloud.status, active)
            else:
                change = rule.after_notification(note.action, cloud.status)
            outcome = NotificationOutcome(note.message_id, note.vendor, str(note.action),
                                          "unchanged", cloud.id, cloud.status)
            if note.action is NotificationAction.PLAN_CHANGED:
                outcome = self._replan(conn, note, cloud, outcome)
            elif change is not None:
                outcome = self._move(conn, note, cloud, change, now)
        else:
            log.warning("%s notification %s (%s) names no cloud account known here: %s",
                        note.vendor, note.message_id, note.action, note.customer)
        conn.execute(insert(t.marketplace_notifications).values(
            message_id=note.message_id, vendor=note.vendor, action=str(note.action),
            external_id=note.customer, sent_at=note.sent_at, received_at=now,
            outcome=outcome.outcome if outcome.status is None
            else f"{outcome.outcome}: {outcome.status}"))
        return outcome

    def _move(self, conn: Connection, note: Notification, cloud: Any, change: rule.Transition,
              now: datetime) -> NotificationOutcome:
        c = t.cloud_accounts
        values: dict[str, object] = {"status": change.status}
        if change.status == rule.CloudStatus.UNSUBSCRIBING:
            values["unsubscribing_at"] = now
        if change.ends:
            values["cancelled_at"] = now
        conn.execute(update(c).where(c.c.id == cloud.id).values(**values))
        log.info("%s cloud account %s: %s → %s (%s)", cloud.vendor, cloud.id, cloud.status,
                 change.status, note.action)
        locked: list[str] = []
        switched: list[str] = []
        if change.ends:
            settled = self._settled_through(conn, cloud.id)
            then = rule.on_cancellation(cloud.vendor)
            if then is not rule.OnCancel.LOCK:
                switched = self._to_billing_center(conn, cloud, settled)
            if then is rule.OnCancel.SWITCH_TO_BILLING_CENTER:
                self._mail(conn, "cloud_switched", cloud, switched, now)
            else:
                locked = cloud_locks.lock(conn, settled, cloud.id, cloud.account_id, now)
                self._mail(conn, "cloud_locked", cloud, locked, now, then_billing_center=(
                    then is rule.OnCancel.LOCK_THEN_BILLING_CENTER))
        elif change.suspends:
            locked = cloud_locks.lock(conn, self._settled_through(conn, cloud.id), cloud.id,
                                      cloud.account_id, now)
            self._mail(conn, "cloud_suspended", cloud, locked, now)
        elif change.resumes:
            k = t.cloud_locks
            for workspace_id in sorted(set(conn.execute(select(k.c.workspace_id).where(
                    k.c.cloud_account_id == cloud.id, k.c.unlocked_at.is_(None))).scalars())):
                if cloud_locks.unlock(conn, workspace_id, "reinstated", cloud.account_id, now):
                    switched.append(workspace_id)  # reported as unlocked, below
            return NotificationOutcome(note.message_id, note.vendor, str(note.action),
                                       "applied", cloud.id, str(change.status),
                                       unlocked=tuple(switched))
        return NotificationOutcome(note.message_id, note.vendor, str(note.action), "applied",
                                   cloud.id, str(change.status), tuple(locked), tuple(switched))

    def _to_billing_center(self, conn: Connection, cloud: Any, settled: list[str]) -> list[str]:
        """Settle these workspaces by the billing center from the next billing day: a
        change to the cloud account from tomorrow is undone; one in force today is
        followed by the billing center from tomorrow."""
        b = t.bindings
        for workspace_id in settled:
            conn.execute(delete(b).where(b.c.workspace_id == workspace_id,
                                         b.c.cloud_account_id == cloud.id,
                                         b.c.effective_from > self.accounts.today()))
            self.accounts.bind_in(conn, workspace_id, cloud.account_id, rules.BILLING_CENTER)
        return list(settled)

    @staticmethod
    def _replan(conn: Connection, note: Notification, cloud: Any,
                unchanged: NotificationOutcome) -> NotificationOutcome:
        """Another plan: a vendor that reports usage against the plan (Azure) gets the new
        one from the next report; an instance vendor's instance stays what it is."""
        if rule.ended(cloud.status) or not note.license_ref \
                or cloud.vendor in rule.INSTANCE_VENDORS or note.license_ref == cloud.license_ref:
            return unchanged
        c = t.cloud_accounts
        conn.execute(update(c).where(c.c.id == cloud.id).values(license_ref=note.license_ref))
        log.info("%s cloud account %s: plan %s → %s", cloud.vendor, cloud.id, cloud.license_ref,
                 note.license_ref)
        return NotificationOutcome(note.message_id, note.vendor, str(note.action), "applied",
                                   cloud.id, cloud.status)

    def _settled_through(self, conn: Connection, cloud_account_id: str) -> list[str]:
        """The live workspaces whose newest binding settles through this cloud account
        (today's, or from tomorrow)."""
        b, w = t.bindings, t.workspaces
        found = []
        for workspace_id in sorted(set(conn.execute(select(b.c.workspace_id).where(
                b.c.cloud_account_id == cloud_account_id)).scalars())):
            newest = conn.execute(select(b.c.cloud_account_id).where(
                b.c.workspace_id == workspace_id).order_by(b.c.effective_from.desc())
                .limit(1)).scalar()
            dissolved = conn.execute(select(w.c.dissolved_at).where(
                w.c.workspace_id == workspace_id)).scalar()
            if newest == cloud_account_id and dissolved is None:
                found.append(workspace_id)
        return found

    def _mail(self, conn: Connection, template: str, cloud: Any, workspace_ids: list[str],
              now: datetime, *, then_billing_center: bool = False) -> None:
        """One mail to each workspace's owner, in its language."""
        if not workspace_ids or cloud.account_id is None:
            return
        w, a = t.workspaces, t.accounts
        username = conn.execute(select(a.c.username).where(a.c.id == cloud.account_id)).scalar()
        effective = rules.effective_from(self.accounts.today()).isoformat()
        for row in conn.execute(select(w).where(w.c.workspace_id.in_(workspace_ids))
                                .order_by(w.c.workspace_id)):
            mails.queue(conn, template=template, language=row.language,
                        recipient=row.owner_email,
                        values={"workspace_name": row.name, "vendor": cloud.vendor,
                                "cloud_account": cloud.external_id, "username": username,
                                "effective_from": effective,
                                "then_billing_center": then_billing_center},
                        dedup_key=f"cloud/{cloud.id}/{template}/{row.workspace_id}", now=now)


def _duplicate(note: Notification) -> NotificationOutcome:
    log.info("%s notification %s (%s for %s) applied before: nothing changes", note.vendor,
             note.message_id, note.action, note.customer)
    return NotificationOutcome(note.message_id, note.vendor, str(note.action), DUPLICATE)


def _replayed(note: Notification) -> Conflict:
    """A notification applied before, sent again: a replay, or the vendor retrying a
    delivery whose answer it lost. Nothing changes either way; a 4xx ends the vendor's
    retries (SNS retries only 5xx and timeouts)."""
    log.warning("%s notification %s (%s for %s) replayed: ignored", note.vendor,
                note.message_id, note.action, note.customer)
    return Conflict("notification_replayed",
                    f"notification {note.message_id} was received before; nothing changed")
