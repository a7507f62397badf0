"""The KooGallery emulator: the marketplace calling the ISV (V2 activities) and the
usage push it serves (marketplaces.md §3, §6 Huawei).

Every activity is ``POST <isv_url>/<activity>`` (the docs leave the URL layout to
the seller's registration; one URL per activity is this emulator's choice) with a
JSON body and ``?signature=&timestamp=(ms)&nonce=`` (:mod:`.signing`). An answer
succeeds only as HTTP 200 with ``resultCode`` ``000000`` and, with
``require_body_sign``, a good ``Body-Sign``; 5 s without an answer is a failure. A
failed call is sent again every ``retry_interval`` (hourly), ``retries`` (3) times,
by :meth:`HuaweiSandbox.tick`, with a fresh nonce and timestamp; newInstance also
with a new ``businessId`` each time, and its ``instanceId`` must be the same on every
answer (another one is listed in the call's ``violations``). ``000004`` to
newInstance means "provisioning": ``tick`` polls queryInstance until it answers
``000000`` with the instance's ``info``.

The marketplace's own state changes when the buyer or the platform acts (a renewal,
a freeze, a release); the calls only tell the ISV, as KooGallery does.

Probes are calls the ISV must refuse (``000001`` or HTTP 401/403), sent once and
never retried: ``stale`` (the last call's body, validly signed, its timestamp
``stale_by`` old), ``replay`` (the last attempt's exact query and body again) and
``bad_signature``.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlencode

import httpx

from accrual.clock import Clock
from accrual.sandbox.control import ControlError as ControlError  # its control API raises it
from accrual.sandbox.control import add_new, known
from accrual.sandbox.deliveries import attempt
from accrual.sandbox.emulator import Emulator
from accrual.sandbox.faults import MAX_CALLS
from accrual.sandbox.huawei import usage
from accrual.sandbox.huawei.signing import activity_signature, body_sign_problem
from accrual.sandbox.huawei.state import (
    Billing,
    Call,
    ChargingMode,
    Fault,
    FaultKind,
    Order,
    Product,
    SandboxConfig,
    SandboxState,
    huawei_time,
    millis,
)

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "/sandbox/huawei"
MAX_ANSWER_BYTES = 64 * 1024
MAX_INSTANCE_ID = 64  # our bound on what an ISV may answer
MAX_QUERY_IDS = 100  # queryInstance takes up to 100 instance ids
SUCCESS, AUTH_FAILED, PROCESSING = "000000", "000001", "000004"
ProbeKind = Literal["stale", "replay", "bad_signature"]
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")

# POST (url with query, headers, body, timeout s) -> (status, lower-case headers, body)
Sender = Callable[[str, Mapping[str, str], bytes, float], tuple[int, dict[str, str], bytes]]


class HttpSender:
    """POSTs over one kept-alive client (made on first use: a TLS context costs time)."""

    def __init__(self) -> None:
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def __call__(self, url: str, headers: Mapping[str, str], body: bytes,
                 timeout: float) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(follow_redirects=False)
            client = self._client
        response = client.post(url, headers=dict(headers), content=body, timeout=timeout)
        return (response.status_code, {k.lower(): v for k, v in response.headers.items()},
                response.content[:MAX_ANSWER_BYTES])


class HuaweiSandbox(Emulator[SandboxState, SandboxConfig]):
    """One emulated KooGallery seller account with its access key (and, for the
    ``secret_key`` reading of the signature, its secret); ``base_url`` is where the
    emulator is served, and its ``endpoint_url`` where the usage push goes: the
    stand-in for ``https://mkt.myhuaweicloud.com``."""

    def __init__(self, clock: Clock, base_url: str, *, access_key: str = "sandbox-access-key",
                 secret_key: str = "sandbox-secret-key", prefix: str = DEFAULT_PREFIX,
                 config: SandboxConfig | None = None, sender: Sender | None = None) -> None:
        if not access_key or not secret_key:
            raise ValueError("the seller needs an access key and a secret key")
        super().__init__(SandboxState(clock, config or SandboxConfig()), base_url, prefix)
        self.access_key = access_key
        self.secret_key = secret_key
        self.send = sender or HttpSender()

    @property
    def usage_key(self) -> str:
        # The usage push is signed with the ISV's key: the access key, as for activities.
        return self.access_key if self.config.hmac_key == "access_key" else self.secret_key

    # --- the usage push ---------------------------------------------------------

    def handle_usage(self, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        return usage.receive(self.state, self.usage_key, headers, body)

    def validate(self) -> dict[str, int]:
        """Run the background validation of every pending usage record."""
        return usage.validate(self.state)

    # --- products and orders ----------------------------------------------------

    def create_product(self, product_id: str, sku_code: str, isv_url: str, *,
                       charging_mode: ChargingMode = "PERIOD", billing: Billing = "hourly",
                       package: bool = False) -> Product:
        if not _ID.match(product_id) or not _ID.match(sku_code):
            raise ControlError(400, "invalid_product", "product and SKU ids are 1-64 of "
                                                       "A-Z a-z 0-9 _ . : -")
        if not isv_url.startswith(("http://", "https://")) or len(isv_url) > 2048:
            raise ControlError(400, "invalid_url", f"{isv_url!r} is not an http(s) URL")
        product = Product(product_id, sku_code, isv_url.rstrip("/"), charging_mode, billing,
                          package)
        with self.state.lock:
            return add_new(self.state.products, product_id, product, "product")

    def buy(self, product_id: str, *, customer_id: str | None = None,
            customer_name: str = "sandbox buyer", trial: bool = False,
            term: timedelta = timedelta(days=30), order_amount: Decimal = Decimal("0.00"),
            test_flag: bool = True) -> dict[str, Any]:
        """A buyer orders the product: newInstance is sent; the order and the call."""
        if customer_id is not None and not _ID.match(customer_id):
            raise ControlError(400, "invalid_customer", "a customer id is 1-64 of A-Z a-z 0-9 _ . : -")
        if not timedelta(hours=1) <= term <= timedelta(days=3660) or order_amount < 0:
            raise ControlError(400, "invalid_order", "the term is 1 h to 10 years, the amount >= 0")
        with self.state.lock:
            product = self._product(product_id)
            now = self.state.now()
            number = self.state.next_number()
            order = Order(
                order_id=f"CS{millis(now)}{number:04d}", order_line_id=f"CS{millis(now)}{number:04d}-000001",
                product_id=product.product_id, sku_code=product.sku_code,
                customer_id=customer_id or secrets.token_hex(16), customer_name=customer_name,
                user_id=secrets.token_hex(16), user_name=customer_name.replace(" ", "_")[:64],
                charging_mode=product.charging_mode, trial=trial, created_at=now,
                expires_at=now + term)
            self.state.orders[order.order_id] = order
            body = {
                "orderId": order.order_id, "orderLineId": order.order_line_id,
                "testFlag": _flag(test_flag),
                "buyerInfo": {"customerId": order.customer_id,
                              "customerName": order.customer_name, "userId": order.user_id,
                              "userName": order.user_name},
                "orderInfo": [{
                    "orderId": order.order_id, "trialFlag": _flag(trial),
                    "orderAmount": f"{order_amount:.2f}", "chargingMode": product.charging_mode,
                    **({"periodType": "month", "periodNumber": 1}
                       if product.charging_mode == "PERIOD" else {}),
                    "provisionType": 1,
                    "productInfo": [{"skuCode": product.sku_code,
                                     "productId": product.product_id, "linearValue": 1}],
                    "createTime": huawei_time(now), "expireTime": huawei_time(order.expires_at),
                    "extendParams": []}]}
            call = self._call("newInstance", order, product, body)
        self._attempt(call)
        return {"order": order.describe(), "call": call.describe()}

    def resend_new_instance(self, order_id: str) -> dict[str, Any]:
        """Send newInstance again (as KooGallery re-sends): the same instanceId must come back."""
        with self.state.lock:
            order = self._order(order_id)
            first = next(c for c in self.state.calls
                         if c.activity == "newInstance" and c.order_id == order_id)
            call = self._call("newInstance", order, self._product(order.product_id),
                              dict(first.body))
        self._attempt(call)
        return call.describe()

    def refresh(self, order_id: str, scene: str, expires_at: datetime | None = None,
                product_id: str | None = None) -> dict[str, Any]:
        """refreshInstance: RENEWAL, TRIAL_TO_FORMAL or UNSUBSCRIBE_RENEWAL_PERIOD."""
        if scene not in ("RENEWAL", "TRIAL_TO_FORMAL", "UNSUBSCRIBE_RENEWAL_PERIOD"):
            raise ControlError(400, "invalid_scene", "scene is RENEWAL, TRIAL_TO_FORMAL or "
                                                     "UNSUBSCRIBE_RENEWAL_PERIOD")
        with self.state.lock:
            order = self._ready(order_id, ("active", "frozen"))
            if expires_at is None:
                step = timedelta(days=30)
                expires_at = (order.expires_at - step if scene == "UNSUBSCRIBE_RENEWAL_PERIOD"
                              else order.expires_at + step)
            if scene == "TRIAL_TO_FORMAL":
                order.trial = False
            order.expires_at = expires_at
            body = {"scene": scene, "orderId": order.order_id,
                    "orderLineId": order.order_line_id, "instanceId": order.instance_id,
                    "productId": product_id or order.product_id,
                    "expireTime": huawei_time(expires_at), "testFlag": "1"}
            call = self._call("refreshInstance", order, self._product(order.product_id), body)
        self._attempt(call)
        return {"order": order.describe(), "call": call.describe()}

    def upgrade(self, order_id: str, sku_code: str | None = None) -> dict[str, Any]:
        with self.state.lock:
            order = self._ready(order_id, ("active",))
            if sku_code is not None:
                order.sku_code = sku_code
            number = self.state.next_number()
            upgrade_order = f"CS{millis(self.state.now())}{number:04d}"
            body = {"instanceId": order.instance_id, "orderId": upgrade_order,
                    "orderLineId": f"{upgrade_order}-000001", "testFlag": "1"}
            call = self._call("upgradeInstance", order, self._product(order.product_id), body)
        self._attempt(call)
        return {"order": order.describe(), "call": call.describe()}

    def set_status(self, order_id: str, status: Literal["FREEZE", "UNFREEZE"]) -> dict[str, Any]:
        """updateInstanceStatus: FREEZE (expiry or a violation) or UNFREEZE."""
        with self.state.lock:
            order = self._ready(order_id, ("active",) if status == "FREEZE" else ("frozen",))
            order.status = "frozen" if status == "FREEZE" else "active"
            body = {"instanceId": order.instance_id, "status": status, "testFlag": "1"}
            call = self._call("updateInstanceStatus", order, self._product(order.product_id),
                              body)
        self._attempt(call)
        return {"order": order.describe(), "call": call.describe()}

    def release(self, order_id: str, *, unsubscribed: bool = True) -> dict[str, Any]:
        """releaseInstance: by unsubscription (with the order) or at the end of its life."""
        with self.state.lock:
            order = self._ready(order_id, ("active", "frozen", "provisioning"))
            order.status = "released"
            body: dict[str, Any] = {"instanceId": order.instance_id, "testFlag": "1"}
            if unsubscribed:
                body |= {"orderId": order.order_id, "orderLineId": order.order_line_id}
            call = self._call("releaseInstance", order, self._product(order.product_id), body)
        self._attempt(call)
        return {"order": order.describe(), "call": call.describe()}

    def query(self, order_ids: list[str]) -> dict[str, Any]:
        """queryInstance for up to 100 instances of one product."""
        if not 1 <= len(order_ids) <= MAX_QUERY_IDS:
            raise ControlError(400, "invalid_query", f"1 to {MAX_QUERY_IDS} orders")
        with self.state.lock:
            orders = [self._order(o) for o in order_ids]
            if any(o.instance_id is None for o in orders) or len(
                    {o.product_id for o in orders}) != 1:
                raise ControlError(409, "not_queryable",
                                   "every order needs an instance, all of one product")
            call = self._call("queryInstance", orders[0], self._product(orders[0].product_id),
                              {"instanceId": ",".join(o.instance_id or "" for o in orders),
                               "testFlag": "1"})
        self._attempt(call)
        return call.describe()

    def probe(self, kind: ProbeKind, order_id: str) -> dict[str, Any]:
        """Send the order's last call again as a call the ISV must refuse."""
        if kind not in ("stale", "replay", "bad_signature"):
            raise ControlError(400, "unknown_probe", "kind is stale, replay or bad_signature")
        with self.state.lock:
            order = self._order(order_id)
            last = next((c for c in reversed(self.state.calls) if c.order_id == order_id
                         and c.probe is None and c.attempts), None)
            if last is None:
                raise ControlError(409, "nothing_sent", f"nothing was sent for {order_id} yet")
            attempt = last.attempts[-1]
            probe = Call(id=len(self.state.calls) + 1, activity=last.activity,
                         order_id=order.order_id, url=last.url, body=last.body, probe=kind)
            self.state.calls.append(probe)
            raw = attempt["body"].encode()
            query = dict(attempt["query"])
            if kind == "stale":
                query = self._signed(raw, self.state.now() - self.config.stale_by)
            elif kind == "bad_signature":
                query = self._signed(raw, self.state.now())
                query["signature"] = ("0" if query["signature"][0] != "0" else "1") + \
                    query["signature"][1:]
        self._exchange(probe, query, raw)
        return probe.describe()

    def tick(self) -> dict[str, Any]:
        """Send every failed call whose retry is due; poll instances still provisioning;
        validate the pending usage records."""
        with self.state.lock:
            now = self.state.now()
            due = [c for c in self.state.calls if c.outcome == "pending" and c.next_at
                   and c.next_at <= now]
            polls = [self._call("queryInstance", order, self._product(order.product_id),
                                {"instanceId": order.instance_id, "testFlag": "1"})
                     for order in list(self.state.orders.values())
                     if order.status == "provisioning" and order.instance_id]
        for call in due + polls:
            self._attempt(call)
        validated = self.validate()
        return {"retried": [c.id for c in due], "polled": [c.id for c in polls],
                "validated": validated}

    def inject(self, kind: FaultKind, calls: int = 1) -> None:
        """The next ``calls`` usage pushes fail as ``kind`` says."""
        if kind not in ("internal_error", "throttling") or not 1 <= calls <= MAX_CALLS:
            raise ControlError(400, "invalid_fault", "kind internal_error|throttling, calls 1..1000")
        with self.state.lock:
            self.state.faults.append(Fault(kind, calls))

    # --- views ------------------------------------------------------------------

    def calls_view(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return [c.describe() for c in self.state.calls]

    def usage_view(self) -> dict[str, Any]:
        with self.state.lock:
            counts: dict[str, int] = {}
            for record in self.state.usage:
                sn = str(record.raw.get("metering_sn"))
                counts[sn] = counts.get(sn, 0) + 1
            return {"pushes": [p.describe() for p in self.state.pushes],
                    "records": [r.describe() for r in self.state.usage],
                    "received_per_metering_sn": counts}

    # --- inside -----------------------------------------------------------------

    def _product(self, product_id: str) -> Product:
        return known(self.state.products, product_id, "product")

    def _order(self, order_id: str) -> Order:
        return known(self.state.orders, order_id, "order")

    def _ready(self, order_id: str, states: tuple[str, ...]) -> Order:
        order = self._order(order_id)
        if order.instance_id is None or order.status not in states:
            raise ControlError(409, "wrong_state", f"order {order_id} is {order.status}; this "
                                                   f"needs an instance that is {'/'.join(states)}")
        return order

    def _call(self, activity: str, order: Order, product: Product,
              body: dict[str, Any]) -> Call:
        call = Call(id=len(self.state.calls) + 1, activity=activity, order_id=order.order_id,
                    url=f"{product.isv_url}/{activity}", body=body)
        self.state.calls.append(call)
        return call

    def _signed(self, raw: bytes, at: datetime) -> dict[str, str]:
        nonce, timestamp = secrets.token_hex(16), str(millis(at))
        signature = activity_signature(self.access_key, self.secret_key, nonce, timestamp, raw,
                                       hmac_key=self.config.hmac_key,
                                       hex_case=self.config.hex_case)
        return {"signature": signature, "timestamp": timestamp, "nonce": nonce}

    def _attempt(self, call: Call) -> None:
        with self.state.lock:
            body = dict(call.body)
            if call.activity == "newInstance":
                # A new businessId on every request, the same orderId and orderLineId.
                business_id = secrets.token_hex(16)
                body["businessId"] = business_id
                body["orderInfo"] = [dict(body["orderInfo"][0], businessId=business_id)]
            if self.config.extra_fields:
                body["sandboxUnknownField"] = secrets.token_hex(4)
            raw = json.dumps(body, ensure_ascii=False).encode()
            query = self._signed(raw, self.state.now())
        self._exchange(call, query, raw)

    def _exchange(self, call: Call, query: dict[str, str], raw: bytes) -> None:
        """Send once, outside the lock (the ISV may call back), and record the outcome."""
        url = f"{call.url}?{urlencode(query)}"
        headers = {"Content-Type": "application/json;charset=UTF-8"}
        timeout = self.config.request_timeout_s
        answered, error = attempt(lambda: self.send(url, headers, raw, timeout))
        status, answer_headers, content = answered or (None, {}, b"")
        answer = _parse(content) if status == 200 else None
        code = str(answer.get("resultCode")) if answer and "resultCode" in answer else None
        sign_problem = None
        if status == 200 and self.config.require_body_sign and call.probe is None:
            sign_problem = body_sign_problem(self.access_key, answer_headers.get("body-sign"),
                                             content)
        with self.state.lock:
            now = self.state.now()
            call.attempts.append({
                "at": now.isoformat(), "query": query, "body": raw.decode(), "status": status,
                "result_code": code, "result_msg": answer.get("resultMsg") if answer else None,
                "answer": content.decode("utf-8", "replace"), "body_sign": sign_problem or "ok",
                "error": error})
            if call.probe is not None:
                refused = status in (401, 403) or code == AUTH_FAILED
                call.outcome = "rejected" if refused else "accepted"
                return
            ok = status == 200 and answer is not None and sign_problem is None and (
                code == SUCCESS or (code == PROCESSING and call.activity in (
                    "newInstance", "queryInstance")))
            if ok:
                assert answer is not None
                self._apply(call, code, answer)
                call.outcome, call.next_at = "succeeded", None
            elif len(call.attempts) <= self.config.retries:
                call.next_at = now + self.config.retry_interval
            else:
                call.outcome, call.next_at = "gave_up", None
                order = self.state.orders.get(call.order_id or "")
                if call.activity == "newInstance" and order and order.status == "opening":
                    order.status = "failed"
        if not ok:
            log.info("sandbox huawei: %s call %s failed: %s", call.activity, call.id,
                     error or sign_problem or f"HTTP {status} resultCode {code}")

    def _apply(self, call: Call, code: str | None, answer: dict[str, Any]) -> None:
        order = self.state.orders.get(call.order_id or "")
        if order is None:
            return
        if call.activity == "newInstance":
            instance_id = answer.get("instanceId")
            if not (isinstance(instance_id, str) and _ID.match(instance_id)):
                if code == SUCCESS:
                    call.violations.append("no valid instanceId in the answer")
                return
            if order.instance_id is None:
                order.instance_id = instance_id
            elif order.instance_id != instance_id:
                call.violations.append(f"instanceId {instance_id} differs from the first "
                                       f"answer's {order.instance_id}")
            if order.status in ("opening", "failed"):
                order.status = "provisioning" if code == PROCESSING else "active"
        elif call.activity == "queryInstance" and code == SUCCESS:
            info = answer.get("info")
            for item in info if isinstance(info, list) else []:
                if not isinstance(item, dict):
                    continue
                found = self.state.by_instance(str(item.get("instanceId")))
                if found is not None:
                    found.app_info = item.get("appInfo") if isinstance(
                        item.get("appInfo"), dict) else None
                    if found.status == "provisioning":
                        found.status = "active"


def _flag(value: bool) -> str:
    return "1" if value else "0"


def _parse(content: bytes) -> dict[str, Any] | None:
    try:
        parsed = json.loads(content)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None
