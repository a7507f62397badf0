"""The Alibaba Cloud Marketplace emulator, one instance per profile (China at
``/sandbox/aliyun``, International at ``/sandbox/aliyun-intl``).

It plays the marketplace's two sides (marketplaces.md §2, §6 Alibaba):

* it **calls the ISV**: a purchase sends ``createInstance`` to the product's SPI
  endpoint, retried (``spi_attempts``) until an ``instanceId`` comes back, kept
  OPENING while the ISV answers ``"0"``, then sent once more with the very same
  parameters to check the ISV answers the same id (``confirm_create``); renewals,
  upgrades, expiry, release and logins (``verify``) follow. Every call, attempt,
  answer and problem is kept (``/control/spi-calls``); a call that failed is sent
  again by ``tick``.
* it **serves** ``PushMeteringData`` (:mod:`accrual.sandbox.aliyun.metering`) behind
  the OpenAPI gateway's signature checks (:mod:`accrual.sandbox.aliyun.openapi`).

Lifecycle of an instance: OPENING (createInstance not answered with an id yet) →
OPENED → EXPIRED (``expiredInstance``; frozen) → OPENED again by a renewal, or
CLOSED (``releaseInstance``). The marketplace changes its own state whatever the
ISV answers (the order is paid); only OPENING → OPENED waits for the ISV's id.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from accrual.clock import Clock
from accrual.sandbox.aliyun import spi
from accrual.sandbox.aliyun.metering import push_metering_data
from accrual.sandbox.aliyun.openapi import handle
from accrual.sandbox.aliyun.state import (
    KEYS,
    Billing,
    Fault,
    FaultKind,
    Instance,
    Product,
    Profile,
    SandboxConfig,
    SandboxState,
    SpiCall,
    spi_time,
)
from accrual.sandbox.control import ControlError as ControlError  # its control API raises it
from accrual.sandbox.control import add_new, check_url, known
from accrual.sandbox.deliveries import attempt
from accrual.sandbox.emulator import Emulator
from accrual.sandbox.faults import MAX_CALLS

log = logging.getLogger(__name__)

MAX_PRODUCT_CODE = 64
MAX_TERM_DAYS = 3660


class AliyunSandbox(Emulator[SandboxState, SandboxConfig]):
    """One emulated marketplace site; ``base_url`` is where the app serving it listens,
    under its profile's prefix."""

    def __init__(self, clock: Clock, base_url: str, profile: Profile, *,
                 config: SandboxConfig | None = None, getter: spi.Getter | None = None) -> None:
        self.profile = profile
        super().__init__(SandboxState(clock, config or SandboxConfig(
            access_key_id=profile.access_key_id, access_key_secret=profile.access_key_secret)),
            base_url, profile.prefix)
        self.get = getter or spi.http_get

    @property
    def sdk_endpoint(self) -> str:
        """What the SDKs take as ``Config.endpoint`` (with ``protocol="http"``)."""
        return self.endpoint_url.split("://", 1)[1]

    def describe(self) -> dict[str, Any]:
        """The profile and the open choices in force."""
        profile = self.profile
        return {"profile": profile.name, "currency": profile.currency,
                "stands_for": profile.host, "versions": list(profile.versions),
                "sdk_endpoint": self.sdk_endpoint, **self.config.describe()}

    # --- the OpenAPI ----------------------------------------------------------------

    def handle(self, method: str, path: str, query: Sequence[tuple[str, str]],
               headers: Mapping[str, str], body: bytes) -> tuple[int, bytes]:
        return handle(self.state, self.profile, {"PushMeteringData": push_metering_data},
                      method, path, query, headers, body)

    # --- products -------------------------------------------------------------------

    def create_product(self, code: str, isv_url: str, spi_key: str, *,
                       billing: Billing = "hourly",
                       items: Mapping[str, Sequence[str]] | None = None) -> Product:
        if not code or len(code) > MAX_PRODUCT_CODE or not code.isascii():
            raise ControlError(400, "invalid_product_code",
                               f"a product code is 1 to {MAX_PRODUCT_CODE} ASCII characters")
        check_url(isv_url)
        if not 1 <= len(spi_key) <= 256:
            raise ControlError(400, "invalid_key", "the ISV key has 1 to 256 characters")
        chosen = dict(items) if items is not None else {"Frequency": ()}
        if not chosen or any(key not in KEYS for key in chosen):
            raise ControlError(400, "invalid_items", f"metering Keys are among {list(KEYS)}")
        product = Product(code, isv_url, spi_key, billing,
                          {key: tuple(values) for key, values in chosen.items()})
        with self.state.lock:
            return add_new(self.state.products, code, product, "product")

    # --- the buyer's side -----------------------------------------------------------

    def buy(self, product_code: str, *, ali_uid: str | None = None, sku_id: str = "standard",
            trial: bool = False, term_days: int | None = 30) -> dict[str, Any]:
        """A buyer pays: createInstance to the ISV (and once more to confirm its id)."""
        if term_days is not None and not 1 <= term_days <= MAX_TERM_DAYS:
            raise ControlError(400, "invalid_term", f"term_days is 1..{MAX_TERM_DAYS} or null")
        if ali_uid is not None and not (ali_uid.isdigit() and len(ali_uid) <= 20):
            raise ControlError(400, "invalid_ali_uid", "aliUid is up to 20 digits")
        with self.state.lock:
            product = self._product(product_code)
            now = self.state.now()
            instance = Instance(
                order_biz_id=_digits(13), product_code=product.code,
                ali_uid=ali_uid or _digits(16), order_id=_digits(15), sku_id=sku_id,
                trial=trial, created_at=now,
                expires_on=now + timedelta(days=term_days) if term_days else None)
            self.state.instances[instance.order_biz_id] = instance
            params = {"aliUid": instance.ali_uid, "orderBizId": instance.order_biz_id,
                      "orderId": instance.order_id, "productCode": product.code,
                      "skuId": sku_id, "trial": "true" if trial else "false"}
            if instance.expires_on is not None:
                params["expiredOn"] = spi_time(instance.expires_on)
            call = self._new_call(instance, "createInstance", params)
        self._send(call)
        return self._instance_view(instance)

    def renew(self, order_biz_id: str, term_days: int = 30) -> dict[str, Any]:
        if not 1 <= term_days <= MAX_TERM_DAYS:
            raise ControlError(400, "invalid_term", f"term_days is 1..{MAX_TERM_DAYS}")
        with self.state.lock:
            instance = self._opened(order_biz_id, ("OPENED", "EXPIRED"))
            now = self.state.now()
            start = max(now, instance.expires_on or now)
            instance.expires_on = start + timedelta(days=term_days)
            instance.status, instance.expired_at = "OPENED", None
            instance.order_id = _digits(15)
            call = self._new_call(instance, "renewInstance", {
                "instanceId": str(instance.instance_id), "orderId": instance.order_id,
                "expiredOn": spi_time(instance.expires_on)})
        self._send(call)
        return self._instance_view(instance)

    def upgrade(self, order_biz_id: str, sku_id: str) -> dict[str, Any]:
        if not 1 <= len(sku_id) <= 64:
            raise ControlError(400, "invalid_sku", "a SKU id has 1 to 64 characters")
        with self.state.lock:
            instance = self._opened(order_biz_id, ("OPENED",))
            instance.sku_id = sku_id
            instance.order_id = _digits(15)
            call = self._new_call(instance, "upgradeInstance", {
                "instanceId": str(instance.instance_id), "orderId": instance.order_id,
                "skuId": sku_id})
        self._send(call)
        return self._instance_view(instance)

    def expire(self, order_biz_id: str) -> dict[str, Any]:
        with self.state.lock:
            instance = self._opened(order_biz_id, ("OPENED",))
            instance.status, instance.expired_at = "EXPIRED", self.state.now()
            call = self._new_call(instance, "expiredInstance",
                                  {"instanceId": str(instance.instance_id)})
        self._send(call)
        return self._instance_view(instance)

    def release(self, order_biz_id: str, *, refund: bool = False) -> dict[str, Any]:
        with self.state.lock:
            instance = self._opened(order_biz_id, ("OPENED", "EXPIRED"))
            instance.status, instance.closed_at = "CLOSED", self.state.now()
            call = self._new_call(instance, "releaseInstance", {
                "instanceId": str(instance.instance_id), "isRefund": "true" if refund else "false",
                "orderId": instance.order_id})
        self._send(call)
        return self._instance_view(instance)

    def login(self, order_biz_id: str) -> dict[str, Any]:
        """The buyer clicks "log in" in the console: ``verify`` to the ISV's authUrl."""
        with self.state.lock:
            instance = self._opened(order_biz_id, ("OPENED",))
            call = self._new_call(instance, "verify", {
                "instanceId": str(instance.instance_id),
                "timeStamp": spi_time(self.state.now())}, url=self._auth_url(instance))
        self._send(call)
        return call.describe()

    def probe(self, order_biz_id: str, kind: str) -> dict[str, Any]:
        """A call the ISV must refuse: ``forged_token`` (a verify signed with another key)
        or ``stale_verify`` (a genuine verify an hour old). Accepting it is a problem."""
        if kind not in ("forged_token", "stale_verify"):
            raise ControlError(400, "unknown_probe", "kind is forged_token or stale_verify")
        with self.state.lock:
            instance = self._opened(order_biz_id, ("OPENED",))
            product = self.state.products[instance.product_code]
            when = self.state.now() - (timedelta(hours=1) if kind == "stale_verify"
                                       else timedelta())
            params = spi.signed_params("verify", {"instanceId": str(instance.instance_id),
                                                  "timeStamp": spi_time(when)},
                                       product.spi_key if kind == "stale_verify"
                                       else "not-the-isv-key", extra=self.config.extra_params)
            call = SpiCall(id=self.state.next_serial(), action="verify",
                           order_biz_id=instance.order_biz_id,
                           url=spi.url_for(self._auth_url(instance), params), params=params,
                           purpose="probe")
            self.state.spi_calls.append(call)
        reply, error = self._attempt(call)
        with self.state.lock:
            refused = reply is not None and not 200 <= reply.status < 400
            call.outcome = "ok" if refused else "failed"
            call.answer = {"status": reply.status if reply else None, "error": error}
            if reply is not None and not refused:
                call.problems.append(f"the ISV accepted a {kind.replace('_', ' ')} "
                                     f"(HTTP {reply.status})")
            return call.describe()

    def tick(self) -> dict[str, Any]:
        """Send again every lifecycle call not answered well yet (createInstance "0" too)."""
        with self.state.lock:
            pending = [c for c in self.state.spi_calls
                       if c.outcome != "ok" and c.purpose == "lifecycle"]
        for call in pending:
            self._send(call)
        with self.state.lock:
            return {"attempted": len(pending),
                    "ok": sum(1 for c in pending if c.outcome == "ok")}

    def inject(self, kind: FaultKind, calls: int = 1) -> None:
        """The next ``calls`` OpenAPI calls fail as ``kind`` says."""
        if kind not in ("throttling", "internal_error", "unavailable"):
            raise ControlError(400, "unknown_fault",
                               "kind is throttling, internal_error or unavailable")
        if not 1 <= calls <= MAX_CALLS:
            raise ControlError(400, "invalid_fault", "calls is 1..1000")
        with self.state.lock:
            self.state.faults.append(Fault(kind, calls))

    # --- views ----------------------------------------------------------------------

    def instances_view(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return [self._instance_view(i) for i in self.state.instances.values()]

    def spi_calls_view(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return [c.describe() for c in self.state.spi_calls]

    def pushes_view(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return [p.describe() for p in self.state.pushes]

    def usage_view(self, instance_id: str | None = None) -> dict[str, Any]:
        """Accepted usage, and how many times each (instance, key, window) was pushed:
        more than 1 is a double bill, Alibaba deduplicates nothing."""
        with self.state.lock:
            rows: list[dict[str, Any]] = []
            counts: dict[str, int] = {}
            for push in self.state.pushes:
                if not push.accepted:
                    continue
                for record in push.records:
                    if instance_id is not None and record.instance_id != instance_id:
                        continue
                    rows.append({**record.describe(), "request_id": push.request_id})
                    for entity in record.entities:
                        key = "|".join((record.instance_id, entity.key,
                                        str(int(record.start.timestamp())),
                                        str(int(record.end.timestamp()))))
                        counts[key] = counts.get(key, 0) + 1
            return {"records": rows, "pushes_per_window": counts}

    # --- inside ---------------------------------------------------------------------

    def _product(self, code: str) -> Product:
        return known(self.state.products, code, "product")

    def _opened(self, order_biz_id: str, allowed: tuple[str, ...]) -> Instance:
        instance = known(self.state.instances, order_biz_id, "instance")
        if instance.status not in allowed or instance.instance_id is None:
            raise ControlError(409, "wrong_status",
                               f"instance {order_biz_id} is {instance.status}; this needs "
                               f"{' or '.join(allowed)}")
        return instance

    def _auth_url(self, instance: Instance) -> str:
        info = instance.app_info or {}
        url = info.get("authUrl")
        if isinstance(url, str) and url.startswith(("http://", "https://")):
            return url
        return self.state.products[instance.product_code].isv_url

    def _new_call(self, instance: Instance, action: str, params: dict[str, str], *,
                  url: str | None = None, purpose: str = "lifecycle") -> SpiCall:
        """Build, sign and record a call; the caller holds the lock."""
        product = self.state.products[instance.product_code]
        signed = spi.signed_params(action, params, product.spi_key,
                                   extra=self.config.extra_params)
        call = SpiCall(id=self.state.next_serial(), action=action,
                       order_biz_id=instance.order_biz_id,
                       url=spi.url_for(url or product.isv_url, signed), params=signed,
                       purpose=purpose)
        self.state.spi_calls.append(call)
        return call

    def _attempt(self, call: SpiCall) -> tuple[spi.Reply | None, str | None]:
        """One GET, outside the lock (the ISV may call back); recorded."""
        reply, error = attempt(lambda: self.get(call.url))
        with self.state.lock:
            call.attempts.append({"at": self.state.now().isoformat(),
                                  "status": reply.status if reply else None,
                                  "body": reply.body if reply else None, "error": error})
        return reply, error

    def _send(self, call: SpiCall) -> None:
        """Up to ``spi_attempts`` tries until the ISV answers well (or "0")."""
        for _ in range(self.config.spi_attempts):
            reply, error = self._attempt(call)
            judgement = spi.judge(call.action, reply) if reply is not None else (
                spi.Judgement("failed", None, error))
            with self.state.lock:
                call.answer = judgement.answer
                if judgement.note:
                    call.problems.append(judgement.note)
                if judgement.outcome == "failed":
                    call.outcome = "failed"
                    continue
                call.outcome = "ok" if judgement.outcome == "ok" else "pending"
                confirm = self._opened_by(call, judgement)
            if confirm is not None:
                self._confirm(confirm, call)
            return
        log.info("sandbox aliyun: %s %s failed after %s attempts", call.action,
                 call.order_biz_id, self.config.spi_attempts)

    def _opened_by(self, call: SpiCall, judgement: spi.Judgement) -> SpiCall | None:
        """A createInstance answered with an id: the instance opens; the confirming resend
        (same parameters, same token) to make. The caller holds the lock."""
        if call.action != "createInstance" or judgement.outcome != "ok":
            return None
        instance = self.state.instances[call.order_biz_id]
        if instance.instance_id is not None:
            return None
        instance.instance_id = judgement.answer["instanceId"]
        instance.status = "OPENED"
        app_info = judgement.answer.get("appInfo")
        instance.app_info = app_info if isinstance(app_info, dict) else None
        if not self.config.confirm_create:
            return None
        confirm = SpiCall(id=self.state.next_serial(), action=call.action,
                          order_biz_id=call.order_biz_id, url=call.url, params=call.params,
                          purpose="confirm")
        self.state.spi_calls.append(confirm)
        return confirm

    def _confirm(self, confirm: SpiCall, first: SpiCall) -> None:
        reply, error = self._attempt(confirm)
        judgement = spi.judge("createInstance", reply) if reply is not None else (
            spi.Judgement("failed", None, error))
        with self.state.lock:
            confirm.answer = judgement.answer
            expected = first.answer["instanceId"]
            got = judgement.answer.get("instanceId") if isinstance(judgement.answer, dict) else None
            if judgement.outcome == "ok" and got == expected:
                confirm.outcome = "ok"
                return
            confirm.outcome = "failed"
            confirm.problems.append(
                f"createInstance sent again for order {first.order_biz_id} answered "
                f"instanceId {got!r}, not {expected!r}" if judgement.outcome != "failed"
                else f"createInstance sent again failed: {judgement.note}")

    def _instance_view(self, instance: Instance) -> dict[str, Any]:
        with self.state.lock:
            calls = [c.describe() for c in self.state.spi_calls
                     if c.order_biz_id == instance.order_biz_id]
            return {**instance.describe(), "spi_calls": calls,
                    "problems": [p for c in calls for p in c["problems"]]}


def _digits(count: int) -> str:
    return str(secrets.randbelow(9) + 1) + "".join(str(secrets.randbelow(10))
                                                   for _ in range(count - 1))
