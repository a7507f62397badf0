"""Alibaba Cloud Marketplace's SPI calls to the billing center (marketplaces.md §2.2,
§2.3; reference-billing.md §5.3; decisions.md 13), behind
``GET /billing/v1/marketplaces/aliyun/spi``.

The marketplace GETs this endpoint with an MD5 ``token`` over every parameter. Each
call is first proven Alibaba's by the adapter (:meth:`AliyunMarketplace.verify_spi`);
one that is not (forged token, unknown action, another product, a ``verify`` whose
``timeStamp`` is more than the tolerance away) changes nothing, is logged, and is
answered with :func:`spi_failure` and a 4xx. Then:

* ``createInstance``: the buyer (aliUid) and the purchase (instance id = the
  ``orderBizId``, the same on every retry) are announced
  (:meth:`MarketplaceActivations.announce`: one cloud account per instance, the open
  activation while there is one); the answer is ``instanceId`` and ``appInfo`` with
  ``frontEndUrl`` = the activation's page and ``authUrl`` = this endpoint (where the
  console's "log in" sends ``verify``). Repeating it answers the same instance id.
  An instance we already saw released is never opened again (a replayed purchase URL
  would otherwise bring it back): 409.
* ``renewInstance`` → ``renew``, ``upgradeInstance`` → ``plan-changed``,
  ``expiredInstance`` → ``suspend``, ``releaseInstance`` → ``unsubscribe-success``
  (Alibaba's rule: its workspaces settle by the billing center from the next billing
  day, their owners are mailed; ``OnCancel.SWITCH_TO_BILLING_CENTER``), through
  :meth:`MarketplaceLifecycle.apply`, matched by instance (``license_ref``). The
  message id is ``aliyun:<action>:<instanceId>:<orderId>:<token>``: Alibaba retries a
  call with the very same parameters, so a retry is a duplicate (answered success,
  nothing changes), while two real calls differ in some parameter (a new order, a new
  expiry), hence in the token. A call identical in every parameter to one applied
  before is, to us, the same call: a replay of a captured URL changes nothing.
* ``verify``: the buyer logs in from Alibaba's console. A verify token is used once
  (kept as a notification row ``aliyun:verify:<token>``): a replay within the
  tolerance is 409. The buyer is sent (303) to an activation of the instance's
  cloud account (``linked`` when it belongs to a billing account already: that page
  asks them to sign in); a suspended or released instance is 409.

Answers are JSON as Alibaba reads them (``{"instanceId"…}``, ``{"success": true}``);
refusals carry ``success: false`` for Alibaba and ``error: {code, message}`` for us.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from accrual.billing.adapters import tables as t
from accrual.billing.domain import subscriptions as rule
from accrual.billing.domain.marketplace import (
    Buyer,
    Notification,
    NotificationAction,
    NotificationRejected,
)
from accrual.billing.marketplaces.aliyun import (
    SPI_PATH,
    VENDOR,
    AliyunMarketplace,
    AppInfo,
    SpiEvent,
    SpiKind,
    instance_id_for,
    spi_answer,
    spi_failure,
)
from accrual.billing.services.marketplace_activation import MarketplaceActivations
from accrual.billing.services.marketplace_lifecycle import MarketplaceLifecycle
from accrual.clock import Clock
from accrual.contract.errors import Conflict, Forbidden, Invalid, NotFound, ServiceError

log = logging.getLogger(__name__)

ACTIVATION_PATH = "/billing/v1/marketplaces/activations/{id}"
LIFECYCLE = {SpiKind.RENEW: NotificationAction.RENEW,
             SpiKind.UPGRADE: NotificationAction.PLAN_CHANGED,
             SpiKind.EXPIRE: NotificationAction.SUSPEND,
             SpiKind.RELEASE: NotificationAction.UNSUBSCRIBE_SUCCESS}
# The adapter's refusals that mean "not a call we know"; the others, "not Alibaba's".
_UNREADABLE = {"method_not_allowed", "malformed", "unknown_action"}


@dataclass(frozen=True)
class SpiReply:
    """What to answer: a JSON body (200), a redirect (``verify``, 303), or a refusal
    (its kind gives the status; the body is Alibaba's failure and our error)."""

    body: dict[str, Any] | None = None
    location: str | None = None
    refused: ServiceError | None = None
    applied: bool = False  # whether the call changed anything here


def refusal(error: ServiceError) -> SpiReply:
    return SpiReply({**spi_failure(error.message),
                     "error": {"code": error.code, "message": error.message}}, refused=error)


class AliyunSpi:
    def __init__(self, engine: Engine, clock: Clock, adapter: AliyunMarketplace,
                 activations: MarketplaceActivations, lifecycle: MarketplaceLifecycle) -> None:
        self.engine = engine
        self.clock = clock
        self.adapter = adapter
        self.activations = activations
        self.lifecycle = lifecycle

    def handle(self, method: str, query: str) -> SpiReply:
        now = self.clock.now()
        try:
            event = self.adapter.verify_spi(method, SPI_PATH, query, now)
        except NotificationRejected as rejected:
            log.warning("aliyun SPI call refused (%s): %s", rejected.code, rejected.message)
            kind = Invalid if rejected.code in _UNREADABLE else Forbidden
            return refusal(kind(rejected.code, "not a call from Alibaba Cloud Marketplace: "
                                               f"{rejected.message}"))
        try:
            if event.kind == SpiKind.CREATE:
                return self._create(event)
            if event.kind == SpiKind.LOGIN:
                return self._login(event, _token(query))
            return self._lifecycle(event, _token(query))
        except ServiceError as error:
            log.warning("aliyun SPI %s for %s refused (%s): %s", event.action,
                        event.instance_id or event.order_biz_id, error.code, error.message)
            return refusal(error)

    # -- the calls ---------------------------------------------------------------

    def _create(self, event: SpiEvent) -> SpiReply:
        instance = instance_id_for(event)
        cloud = self._cloud_account(instance)
        if cloud is not None and rule.ended(cloud.status):
            log.warning("aliyun createInstance for released instance %s refused", instance)
            return refusal(Conflict("instance_released", f"instance {instance} was released; "
                                                         "a purchase opens a new one"))
        activation = self.activations.announce(self.adapter.buyer_for(event))
        log.info("aliyun createInstance: instance %s of %s → activation %s", instance,
                 event.account_id, activation.id)
        return SpiReply(spi_answer(event, app_info=AppInfo(
            front_end_url=self._url(ACTIVATION_PATH.format(id=activation.id)),
            auth_url=self.adapter.listing.spi_url())), applied=True)

    def _lifecycle(self, event: SpiEvent, token: str) -> SpiReply:
        instance = str(event.instance_id)
        outcome = self.lifecycle.apply(Notification(
            message_id=f"{VENDOR}:{event.action}:{instance}:{event.order_id or ''}:{token}",
            vendor=VENDOR, action=LIFECYCLE[event.kind], customer=instance,
            product_code="", sent_at=self.clock.now(), license_ref=instance))
        log.info("aliyun %s for instance %s: %s", event.action, instance, outcome.outcome)
        return SpiReply(spi_answer(event), applied=outcome.outcome == "applied")

    def _login(self, event: SpiEvent, token: str) -> SpiReply:
        instance = str(event.instance_id)
        now = self.clock.now()
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(t.marketplace_notifications).values(
                    message_id=f"{VENDOR}:verify:{token}", vendor=VENDOR, action="verify",
                    external_id=instance, sent_at=event.signed_at or now, received_at=now,
                    outcome="login"))
        except IntegrityError:
            log.warning("aliyun verify for instance %s replayed: refused", instance)
            return refusal(Conflict("spi_replayed", "this login was used already; log in "
                                                    "from the Alibaba Cloud console again"))
        cloud = self._cloud_account(instance)
        if cloud is None:
            return refusal(NotFound("unknown_instance", f"instance {instance} is not known here"))
        if cloud.status != rule.CloudStatus.ACTIVE:
            return refusal(Conflict("instance_not_active",
                                    f"instance {instance} is {cloud.status}; renew it to log in"))
        activation = self.activations.announce(Buyer(
            vendor=VENDOR, account_id=cloud.external_id, product_code=cloud.product_code or "",
            license_ref=instance))
        return SpiReply(location=self._url(ACTIVATION_PATH.format(id=activation.id)))

    # -- helpers -----------------------------------------------------------------

    def _cloud_account(self, instance: str) -> Any:
        """The newest cloud account of this instance, if any."""
        c = t.cloud_accounts
        with self.engine.connect() as conn:
            return conn.execute(select(c).where(c.c.vendor == VENDOR, c.c.license_ref == instance)
                                .order_by(c.c.linked_at.desc(), c.c.id).limit(1)).first()

    def _url(self, path: str) -> str:
        return (self.adapter.listing.public_url or "").rstrip("/") + path


def _token(query: str) -> str:
    """The call's token (verified already): what tells two calls apart."""
    return dict(parse_qsl(query, keep_blank_values=True)).get("token", "").lower()

