"""Huawei Cloud KooGallery's V2 activities, handled (marketplaces.md §3.3, §3.5;
reference-billing.md §5.4, §6.6; decisions.md 13).

KooGallery POSTs each activity to ``/billing/v1/marketplaces/huawei/activities`` and
reads the answer's ``resultCode`` (``Body-Sign`` signed). :meth:`HuaweiActivities.handle`
verifies the call with the adapter, the nonce taken in the center's database
(``nonce_store``: a replay is refused by every process, also after a restart), then:

* ``newInstance``: the instance id derived from the order (the same on every resend);
  the buyer is announced (:meth:`MarketplaceActivations.announce`): one cloud account
  per instance and an activation the buyer registers or signs in with. The answer
  carries the ``instanceId`` and, in ``appInfo.frontEndUrl``, the activation page;
* ``queryInstance``: each instance we know with its ``appInfo``: the activation page
  (a fresh activation while nobody took the instance, else the one taken) and the
  cloud account's state in ``memo``;
* ``refreshInstance`` (renewal, trial to formal) → ``renew``; ``upgradeInstance`` →
  ``plan-changed``; ``updateInstanceStatus`` FREEZE → ``suspend`` (its workspaces
  locked), UNFREEZE → ``reinstate`` (unlocked); ``releaseInstance`` →
  ``unsubscribe-success``: locked, the cloud link removed, settled by the billing
  center from the next day (``OnCancel.LOCK_THEN_BILLING_CENTER``). Each goes through
  :meth:`MarketplaceLifecycle.apply` under a message id built from the call's content,
  so KooGallery's retry of the same event (a new nonce, the same fields) is a
  duplicate, answered success, changing nothing. ``refreshInstance`` rolling a renewal
  back (``UNSUBSCRIBE_RENEWAL_PERIOD``) changes nothing here: the subscription stays in
  force until KooGallery freezes or releases it.

Refused calls change nothing and are logged: forged, stale or replayed ``000001``;
malformed, or a newInstance of a product this center does not sell, ``000002``; an
instance we do not know ``000003``; a failure of ours ``000005`` (KooGallery retries).
KooGallery reads the result code, so every answer is HTTP 200.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from accrual.billing.adapters import tables as t
from accrual.billing.domain import subscriptions as rule
from accrual.billing.domain.marketplace import (
    Buyer,
    Notification,
    NotificationAction,
    NotificationRejected,
)
from accrual.billing.domain.nonces import NonceStore
from accrual.billing.marketplaces import Marketplaces
from accrual.billing.marketplaces.huawei import (
    VENDOR,
    Activity,
    ActivityKind,
    ActivityResponse,
    HuaweiMarketplace,
    ResultCode,
)
from accrual.billing.services.marketplace_activation import Activation, MarketplaceActivations
from accrual.billing.services.marketplace_lifecycle import MarketplaceLifecycle
from accrual.clock import Clock
from accrual.contract.errors import NotFound, ServiceError

log = logging.getLogger(__name__)

ACTIVATION_PATH = "/billing/v1/marketplaces/activations/"
_ACTIONS = {ActivityKind.RENEW: NotificationAction.RENEW,
            ActivityKind.TRIAL_TO_FORMAL: NotificationAction.RENEW,
            ActivityKind.UPGRADE: NotificationAction.PLAN_CHANGED,
            ActivityKind.FREEZE: NotificationAction.SUSPEND,
            ActivityKind.UNFREEZE: NotificationAction.REINSTATE,
            ActivityKind.RELEASE: NotificationAction.UNSUBSCRIBE_SUCCESS,
            ActivityKind.CANCEL: NotificationAction.UNSUBSCRIBE_SUCCESS}


@dataclass(frozen=True)
class Handled:
    """What was done with one call, and the answer to send (exactly these bytes)."""

    activity: str | None  # KooGallery's name, once verified
    result_code: str
    outcome: str  # refused: <code> | created | queried | applied | unchanged | duplicate | …
    response: ActivityResponse


class HuaweiActivities:
    def __init__(self, engine: Engine, clock: Clock, marketplaces: Marketplaces,
                 activations: MarketplaceActivations, lifecycle: MarketplaceLifecycle,
                 nonces: NonceStore, *, public_url: str | None = None) -> None:
        self.engine = engine
        self.clock = clock
        self.marketplaces = marketplaces
        self.activations = activations
        self.lifecycle = lifecycle
        self.nonces = nonces
        # Where buyers reach this center (the activation page); the route's own base URL
        # when unset.
        self.public_url = public_url

    def adapter(self) -> HuaweiMarketplace:
        """The Huawei adapter; 404 ``marketplace_not_configured`` when this center sells
        no KooGallery product (not a passing fault: KooGallery should not call)."""
        adapter = self.marketplaces.by_vendor.get(VENDOR)
        if not isinstance(adapter, HuaweiMarketplace):
            raise NotFound("marketplace_not_configured",
                           "this billing center has no Huawei KooGallery product")
        return adapter

    def handle(self, method: str, path: str, query: Mapping[str, str],
               headers: Mapping[str, str], body: bytes, *,
               base_url: str | None = None) -> Handled:
        adapter = self.adapter()
        try:
            activity = adapter.verify_activity(method, path, query, headers, body,
                                               self.clock.now(), nonces=self.nonces)
        except NotificationRejected as rejected:
            log.warning("huawei activity refused (%s): %s", rejected.code, rejected.message)
            answer = adapter.refusal(rejected)
            return Handled(None, _code(answer), f"refused: {rejected.code}", answer)
        except SQLAlchemyError:
            log.exception("huawei activity: the nonce store failed; KooGallery will retry")
            return Handled(None, ResultCode.INTERNAL_ERROR.value, "failed",
                           adapter.respond(ResultCode.INTERNAL_ERROR, "try again later"))
        try:
            handled = self._dispatch(adapter, activity, (self.public_url or base_url or "")
                                     .rstrip("/"))
        except ServiceError as refused:
            log.warning("huawei %s refused (%s): %s", activity.activity, refused.code,
                        refused.message)
            handled = Handled(activity.activity, ResultCode.INVALID_PARAMETERS.value,
                              f"refused: {refused.code}",
                              adapter.respond(ResultCode.INVALID_PARAMETERS, refused.message))
        except Exception:
            log.exception("huawei %s failed; KooGallery will retry", activity.activity)
            handled = Handled(activity.activity, ResultCode.INTERNAL_ERROR.value, "failed",
                              adapter.respond(ResultCode.INTERNAL_ERROR, "try again later"))
        log.info("huawei %s (instance %s): %s, answered %s", activity.activity,
                 activity.instance_id or ",".join(activity.instance_ids), handled.outcome,
                 handled.result_code)
        return handled

    # -- the activities ------------------------------------------------------------

    def _dispatch(self, adapter: HuaweiMarketplace, activity: Activity,
                  base: str) -> Handled:
        if activity.kind is ActivityKind.CREATE:
            if activity.product_id != adapter.listing.product_id:
                # Its usage could never be pushed (one listing per center): refuse loudly.
                log.error("huawei newInstance for product %s; this center sells %s",
                          activity.product_id, adapter.listing.product_id)
                return Handled(activity.activity, ResultCode.INVALID_PARAMETERS.value,
                               "refused: unknown_product", adapter.respond(
                                   ResultCode.INVALID_PARAMETERS,
                                   f"product {activity.product_id} is not sold here"))
            instance_id = adapter.instance_id_for(activity)
            activation = self.activations.announce(activity.buyer(instance_id))
            answer = adapter.respond(ResultCode.SUCCESS, instanceId=instance_id,
                                     appInfo=_app_info(base, activation, "active"))
            return Handled(activity.activity, ResultCode.SUCCESS.value, "created", answer)
        if activity.kind is ActivityKind.QUERY:
            return self._query(adapter, activity, base)
        cloud = self._instance(activity.instance_id or "")
        if cloud is None:
            log.warning("huawei %s names instance %s, unknown here", activity.activity,
                        activity.instance_id)
            return Handled(activity.activity, ResultCode.INSTANCE_NOT_FOUND.value,
                           "unknown_instance", adapter.respond(
                               ResultCode.INSTANCE_NOT_FOUND,
                               f"instance {activity.instance_id} is unknown"))
        action = _ACTIONS.get(activity.kind)
        if action is None:  # a renewal rolled back: in force until frozen or released
            return Handled(activity.activity, ResultCode.SUCCESS.value, "unchanged",
                           adapter.respond(ResultCode.SUCCESS))
        note = Notification(
            message_id=self._message_id(activity), vendor=VENDOR, action=action,
            customer=cloud.external_id, product_code=cloud.product_code or "",
            sent_at=activity.sent_at, account_id=cloud.external_id,
            license_ref=activity.instance_id)
        outcome = self.lifecycle.apply(note)
        if outcome.outcome == "unknown_customer":
            return Handled(activity.activity, ResultCode.INSTANCE_NOT_FOUND.value,
                           outcome.outcome, adapter.respond(
                               ResultCode.INSTANCE_NOT_FOUND,
                               f"instance {activity.instance_id} is unknown"))
        return Handled(activity.activity, ResultCode.SUCCESS.value, outcome.outcome,
                       adapter.respond(ResultCode.SUCCESS))

    def _query(self, adapter: HuaweiMarketplace, activity: Activity, base: str) -> Handled:
        info: list[dict[str, Any]] = []
        for instance_id in activity.instance_ids:
            cloud = self._instance(instance_id)
            if cloud is None:
                continue
            activation = None
            if cloud.account_id is None and cloud.status == rule.CloudStatus.ACTIVE:
                # Nobody took it yet: an open activation (a fresh one once the last expired).
                activation = self.activations.announce(_buyer(cloud))
            else:
                activation = self._latest_activation(cloud.id)
            info.append({"instanceId": instance_id,
                         "appInfo": _app_info(base, activation, cloud.status)})
        if not info:
            return Handled(activity.activity, ResultCode.INSTANCE_NOT_FOUND.value,
                           "unknown_instance", adapter.respond(
                               ResultCode.INSTANCE_NOT_FOUND, "no such instance here"))
        return Handled(activity.activity, ResultCode.SUCCESS.value, "queried",
                       adapter.respond(ResultCode.SUCCESS, info=info))

    def _instance(self, instance_id: str) -> Any:
        """The cloud account of this instance (the newest, should there be several)."""
        c = t.cloud_accounts
        with self.engine.connect() as conn:
            return conn.execute(select(c).where(c.c.vendor == VENDOR,
                                                c.c.license_ref == instance_id)
                                .order_by(c.c.linked_at.desc(), c.c.id).limit(1)).first()

    def _latest_activation(self, cloud_account_id: str) -> Activation | None:
        a = t.marketplace_activations
        with self.engine.connect() as conn:
            newest = conn.execute(select(a.c.id).where(a.c.cloud_account_id == cloud_account_id)
                                  .order_by(a.c.created_at.desc()).limit(1)).scalar()
        return None if newest is None else self.activations.activation(newest)

    def _message_id(self, activity: Activity) -> str:
        """The same for KooGallery's every retry of one event (its fields do not change;
        only the nonce and timestamp do), different for the next event. A status change
        names nothing but the instance and the status, so it is told apart from an
        earlier one by how many opposite changes were recorded before it: FREEZE,
        UNFREEZE, FREEZE are three events; a retried FREEZE is the same one."""
        instance = activity.instance_id or ""
        prefix = f"{VENDOR}:{activity.activity}:{instance}:"
        fields = dict(activity.extra)
        if activity.kind in (ActivityKind.FREEZE, ActivityKind.UNFREEZE):
            status = "FREEZE" if activity.kind is ActivityKind.FREEZE else "UNFREEZE"
            opposite = "UNFREEZE" if status == "FREEZE" else "FREEZE"
            n = t.marketplace_notifications
            with self.engine.connect() as conn:
                before = conn.execute(select(func.count()).where(n.c.message_id.startswith(
                    f"{prefix}{opposite}:", autoescape=True))).scalar_one()
            return f"{prefix}{status}:{before}"
        parts: tuple[str, ...]
        if activity.kind in (ActivityKind.RENEW, ActivityKind.TRIAL_TO_FORMAL,
                             ActivityKind.UNSUBSCRIBE_RENEWAL):
            parts = (fields.get("scene", ""), activity.order_id or "",
                     activity.order_line_id or "", fields.get("expireTime", ""),
                     activity.product_id or "")
        else:  # upgrade: its own order; release: the unsubscription's order, if any
            parts = (activity.order_id or "", activity.order_line_id or "")
        return prefix + _digest(*parts)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def _buyer(cloud: Any) -> Buyer:
    return Buyer(vendor=VENDOR, account_id=cloud.external_id,
                 product_code=cloud.product_code or "", license_ref=cloud.license_ref)


def _app_info(base: str, activation: Activation | None, status: str) -> dict[str, str]:
    """KooGallery's ``appInfo``: where the buyer goes next (the activation page: register
    or sign in there), and the instance's state here. No credentials: Accrual's own
    sign-in is the buyer's."""
    info = {"memo": f"Accrual cloud account {status}"}
    if activation is not None:
        info["frontEndUrl"] = f"{base}{ACTIVATION_PATH}{activation.id}"
        info["memo"] += f"; activation {activation.state}"
    return info


def _code(answer: ActivityResponse) -> str:
    return str(json.loads(answer.body).get("resultCode"))
