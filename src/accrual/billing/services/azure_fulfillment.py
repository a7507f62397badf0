"""Azure Marketplace fulfilment: the landing page, Activate, and the webhook
(marketplaces.md §4.2–4.4; decisions.md 13, 14). USD billing centers only.

**Landing.** After buying, Azure sends the buyer's browser to the offer's landing page,
``GET /billing/v1/marketplaces/azure/landing?token=…``. :meth:`AzureFulfillment.landing`
hands the token to ``MarketplaceActivations.fulfil``: Resolve names the SaaS
subscription (the cloud account's ``external_id``; its plan is ``license_ref``), Get
subscription says it is in force (waiting for its Activate, or Subscribed), and an
activation is recorded, as for AWS.

**Activate.** Azure bills a subscription from its Activate on, so it is called when
the buyer commits an account to it: just before a registration reserves the
activation (``POST /console/v1/registrations`` with ``activation_id``) and just before
a signed-in account claims it (:meth:`AzureFulfillment.start`, wired as the
``before_take`` hook of both). It runs outside any database transaction, after a
read of the activation, and is idempotent (a second call finds it Subscribed on that
plan and succeeds). When Azure refuses it or cannot be reached, that step is refused
(409 ``marketplace_refused`` / ``subscription_ended``, or 503
``marketplace_unavailable``) and nothing is stored, so the activation is never half
done: the buyer retries the same request. The one gap left is the reverse: Azure
activated, then our step failed after it (the database, a console failure after the
reservation); the subscription is then Subscribed at Azure with nothing reported
against it (metered plans bill only what we report), and the buyer's retry, or a
claim after coming back through the landing page, completes it with an Activate that
answers "already active".

**Webhook.** ``POST /billing/v1/marketplaces/azure/webhook``: :meth:`AzureFulfillment.webhook`
verifies the bearer JWT (a forged, stale or malformed call is 403 and changes
nothing), confirms the call with Get operation (the docs' rule: the payload is not
trusted), and acts on the operation as Azure holds it:

* ``ChangePlan``, ``ChangeQuantity``, ``Reinstate`` (Azure waits for our answer): PATCH
  the operation ``Success`` while it is InProgress; then, once Succeeded, apply it.
  ChangePlan is ``plan-changed`` with the subscription's plan as Azure now holds it (so
  the reporter reports against the new plan); Reinstate is ``reinstate`` (locks set by
  the suspension lifted); ChangeQuantity changes nothing of ours (seats are not what
  we bill).
* ``Suspend`` → ``suspend`` (the workspaces settled through it locked), applied only
  while Azure still holds the subscription Suspended (a late retry of a Suspend that
  was since reinstated changes nothing); ``Renew`` → ``renew``; ``Unsubscribe`` →
  ``unsubscribe-success`` (decisions.md 13: like AWS, the workspaces are locked and
  their owners mailed).
* An operation that Failed or ended in Conflict changes nothing.

Each is applied through ``MarketplaceLifecycle.apply`` with the operation id as the
message id, so Microsoft's retry of a call already applied (its answer lost) is a
duplicate answered 200, and a replayed call changes nothing. A call that cannot be
confirmed now (Azure or the database unreachable) is 503, which Microsoft retries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import Engine, select

from accrual.billing.adapters import tables as t
from accrual.billing.domain import subscriptions as rule
from accrual.billing.domain.marketplace import (
    MarketplaceError,
    Notification,
    NotificationAction,
    NotificationRejected,
    Refused,
    Transient,
)
from accrual.billing.marketplaces import Marketplaces
from accrual.billing.marketplaces.azure import AzureEvent, AzureMarketplace, AzureOperation
from accrual.billing.services.marketplace_activation import Activation, MarketplaceActivations
from accrual.billing.services.marketplace_lifecycle import MarketplaceLifecycle
from accrual.clock import Clock
from accrual.contract.errors import Conflict, Forbidden, Invalid, NotFound, Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

VENDOR = "azure"
MAX_WEBHOOK_BYTES = 64 * 1024
_ACTIONS = {"Unsubscribe": NotificationAction.UNSUBSCRIBE_SUCCESS,
            "Suspend": NotificationAction.SUSPEND,
            "Reinstate": NotificationAction.REINSTATE,
            "ChangePlan": NotificationAction.PLAN_CHANGED,
            "Renew": NotificationAction.RENEW}
_ANSWERED = ("ChangePlan", "ChangeQuantity", "Reinstate")  # Azure waits for our PATCH
# The adapter's refusals of a call whose token held but whose body is not a call of ours.
_MALFORMED = frozenset({"malformed", "unknown_action", "wrong_offer"})


@dataclass(frozen=True)
class WebhookOutcome:
    operation_id: str
    action: str  # Azure's name
    subscription_id: str
    # applied | unchanged | duplicate | unknown_customer | not_applied (the operation
    # failed, or is no longer what Azure holds) | acknowledged (ChangeQuantity)
    outcome: str
    acknowledged: bool = False  # we PATCHed it Success in this call
    cloud_account_id: str | None = None
    status: str | None = None  # the cloud account's status afterwards
    locked: tuple[str, ...] = field(default=())
    unlocked: tuple[str, ...] = field(default=())


class AzureFulfillment:
    def __init__(self, engine: Engine, clock: Clock, marketplaces: Marketplaces,
                 activations: MarketplaceActivations, lifecycle: MarketplaceLifecycle) -> None:
        self.engine = engine
        self.clock = clock
        self.marketplaces = marketplaces
        self.activations = activations
        self.lifecycle = lifecycle

    def adapter(self) -> AzureMarketplace:
        """The Azure adapter; 404 ``marketplace_not_configured`` when this center has none
        (another currency, or switched off)."""
        adapter = self.marketplaces.by_vendor.get(VENDOR)
        if not isinstance(adapter, AzureMarketplace):
            raise NotFound("marketplace_not_configured",
                           "this billing center has no azure marketplace listing (Azure "
                           "settles USD billing centers only)")
        return adapter

    # -- the landing page ---------------------------------------------------------

    def landing(self, token: object) -> Activation:
        self.adapter()
        return self.activations.fulfil(VENDOR, token)

    # -- Activate -------------------------------------------------------------------

    def start(self, activation_id: str) -> None:
        """Activate the activation's subscription at Azure, when it is an Azure one that
        may still be taken (the transaction that takes it checks the rest). Refusals are
        the caller's to pass on; nothing is stored here."""
        a, c = t.marketplace_activations, t.cloud_accounts
        with self.engine.connect() as conn:
            row = conn.execute(select(a.c.vendor, a.c.account_id, a.c.expires_at, c.c.status,
                                      c.c.external_id, c.c.license_ref)
                               .join(c, c.c.id == a.c.cloud_account_id)
                               .where(a.c.id == activation_id)).first()
        if row is None or row.vendor != VENDOR or rule.ended(row.status) or (
                row.account_id is None and row.expires_at <= self.clock.now()):
            return
        adapter = self.adapter()
        try:
            first = adapter.activate(row.external_id, row.license_ref or "")
        except Transient as error:
            log.warning("azure Activate of %s: unavailable: %s", row.external_id, error)
            raise Unavailable("marketplace_unavailable",
                              "the azure marketplace cannot activate the subscription now; "
                              "nothing was recorded, please retry") from None
        except Refused as refused:
            log.error("azure Activate of %s refused: %s", row.external_id, refused)
            if refused.code == "unsubscribed":
                raise Conflict("subscription_ended", "this azure subscription has ended; "
                                                     "subscribe again in the marketplace") from None
            raise Conflict("marketplace_refused", "the azure marketplace refused to activate "
                                                  f"this subscription: {refused.message}") from None
        log.info("azure subscription %s: %s (activation %s)", row.external_id,
                 "activated, billing starts" if first else "active already", activation_id)

    # -- the webhook ------------------------------------------------------------------

    def webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookOutcome:
        adapter = self.adapter()
        if len(body) > MAX_WEBHOOK_BYTES:
            raise Forbidden("malformed", f"a webhook call is at most {MAX_WEBHOOK_BYTES} bytes")
        try:
            event = adapter.verify_webhook("POST", headers, body, self.clock.now())
        except NotificationRejected as rejected:
            log.warning("azure webhook rejected (%s): %s", rejected.code, rejected.message)
            if rejected.code in _MALFORMED:
                raise Invalid(rejected.code, f"not a webhook call of this offer: "
                                             f"{rejected.message}") from None
            raise Forbidden(rejected.code, "not a call from the marketplace: "
                                           f"{rejected.message}") from None
        except Transient as error:
            log.warning("azure webhook: cannot verify now: %s", error)
            raise Unavailable("marketplace_unavailable",
                              "the call cannot be verified now; send it again") from None
        operation, acknowledged = self._confirmed(adapter, event)
        if operation.status != "Succeeded":
            log.warning("azure %s %s of %s is %s: nothing to apply", event.action,
                        operation.id, event.instance_id, operation.status)
            return WebhookOutcome(operation.id, event.action, event.instance_id, "not_applied",
                                  acknowledged)
        action = _ACTIONS.get(event.action)
        if action is None:  # ChangeQuantity: seats are not what this center bills
            return WebhookOutcome(operation.id, event.action, event.instance_id,
                                  "acknowledged" if acknowledged else "unchanged", acknowledged)
        plan = operation.plan_id or event.plan_id
        if action in (NotificationAction.SUSPEND, NotificationAction.PLAN_CHANGED):
            held = self._call(lambda: adapter.subscription(event.instance_id))
            if action is NotificationAction.SUSPEND and (held is None
                                                         or held.status != "Suspended"):
                log.info("azure Suspend %s of %s: the subscription is %s now: not applied",
                         operation.id, event.instance_id, held and held.status)
                return WebhookOutcome(operation.id, event.action, event.instance_id,
                                      "not_applied", acknowledged)
            if held is not None:
                plan = held.plan_id  # a later change applied first stays in force
        outcome = self.lifecycle.apply(Notification(
            message_id=operation.id, vendor=VENDOR, action=action, customer=event.instance_id,
            product_code=event.product_code, sent_at=event.sent_at,
            account_id=event.instance_id,
            license_ref=plan if action is NotificationAction.PLAN_CHANGED else None))
        return WebhookOutcome(operation.id, event.action, event.instance_id, outcome.outcome,
                              acknowledged, outcome.cloud_account_id, outcome.status,
                              outcome.locked, outcome.unlocked)

    def _confirmed(self, adapter: AzureMarketplace, event: AzureEvent
                   ) -> tuple[AzureOperation, bool]:
        """The operation as Azure holds it, answered Success first when Azure waits for
        us; 403 ``operation_unconfirmed`` when Azure knows no such operation."""
        operation = self._call(lambda: adapter.operation(event.instance_id, event.order_id))
        if operation is None or operation.subscription_id != event.instance_id \
                or operation.action != event.action:
            log.warning("azure webhook %s (%s of %s) not confirmed by Get operation",
                        event.order_id, event.action, event.instance_id)
            raise Forbidden("operation_unconfirmed",
                            "the marketplace knows no such operation of this subscription")
        if event.action not in _ANSWERED or operation.status != "InProgress":
            return operation, False
        try:
            adapter.acknowledge(event.instance_id, operation.id, success=True)
        except Refused as refused:
            if refused.code != "already_decided":
                raise Unavailable("marketplace_unavailable",
                                  f"the operation cannot be answered now: {refused}") from None
            # Decided meanwhile (the automatic success after 10 s, or a newer change).
            again = self._call(lambda: adapter.operation(event.instance_id, operation.id))
            return again or operation, False
        except Transient as error:
            raise Unavailable("marketplace_unavailable",
                              f"the operation cannot be answered now: {error}") from None
        log.info("azure %s %s of %s answered Success", event.action, operation.id,
                 event.instance_id)
        return AzureOperation(operation.id, operation.subscription_id, operation.action,
                              "Succeeded", operation.plan_id, operation.quantity), True

    @staticmethod
    def _call(call: Callable[[], T]) -> T:
        try:
            return call()
        except ValueError:
            raise Forbidden("malformed", "the call names no valid subscription or "
                                         "operation id") from None
        except MarketplaceError as error:
            log.warning("azure webhook: the marketplace cannot confirm now: %s", error)
            raise Unavailable("marketplace_unavailable",
                              "the operation cannot be confirmed now; send it again") from None
