"""A sandbox payment gateway: a pay page, a signed asynchronous notify, a redirect back.

It plays the real sequence in one process, with no outside service:

1. ``create_payment`` answers ``/sandbox/pay/<token>``; the token carries the
   payment (order, amount, currency, return URL) under the sandbox's own MAC, so
   the page cannot be altered and survives a restart.
2. ``GET`` that URL shows the pay page: a plain HTML form.
3. ``POST`` it with ``decision=pay``: the sandbox signs a notify (see
   :mod:`accrual.billing.payments.gateway`) and sends it to the billing center's
   notify endpoint through the injected sender (an in-process call, or an HTTP
   POST through an injected ``httpx.Client``). Once it is acknowledged, the
   browser is redirected (303) to the return URL with ``order_id`` and
   ``status`` added to its query. A payment's transaction id is derived from its
   token, so paying the same page twice sends the same transaction again, which
   the billing center credits once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Mapping
from html import escape
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from accrual.billing.payments.gateway import (
    SIGNATURE_HEADER,
    Notify,
    NotifyRefused,
    PaymentRequest,
    sign,
    verify,
)
from accrual.clock import Clock
from accrual.infra.http import StrictJSONRoute, strict_json

log = logging.getLogger(__name__)

BASE_PATH = "/sandbox/pay"
# Sends a notify (headers, raw body) to the billing center; the HTTP status it answered.
NotifySender = Callable[[dict[str, str], bytes], int]
_MAX_NOTIFY_BYTES = 16 * 1024
_MAX_FORM_BYTES = 1024
_NOTIFY_FIELDS = {"order_id": 32, "transaction_id": 128, "amount": 40, "currency": 3,
                  "status": 16}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SandboxGateway:
    name = "sandbox"

    def __init__(self, secret: str, clock: Clock, base_path: str = BASE_PATH) -> None:
        self.secret = secret  # shared with the billing center: signs the notifies
        self.clock = clock
        self.base_path = base_path.rstrip("/")
        # The pay-page tokens are the gateway's own business: a key of their own.
        self._page_key = hmac.new(secret.encode(), b"sandbox pay page", hashlib.sha256).digest()

    # -- the adapter side (PaymentGateway) ----------------------------------------

    def create_payment(self, request: PaymentRequest) -> str:
        payload = json.dumps({"order_id": request.order_id, "amount": request.amount,
                              "currency": request.currency, "description": request.description,
                              "return_url": request.return_url},
                             separators=(",", ":"), sort_keys=True).encode()
        body = _b64(payload)
        return f"{self.base_path}/{body}.{self._mac(body)}"

    def verify_notify(self, headers: Mapping[str, str], body: bytes) -> Notify:
        header = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER.lower()),
                      None)
        verify(self.secret, header, body, self.clock.now())
        if len(body) > _MAX_NOTIFY_BYTES:
            raise NotifyRefused("malformed_notify", "the notify body is too large")
        try:
            fields = strict_json(body)
        except (ValueError, RecursionError):
            raise NotifyRefused("malformed_notify", "the notify body is not valid JSON") from None
        if not isinstance(fields, dict) or not all(
                isinstance(fields.get(name), str) and 0 < len(fields[name]) <= limit
                for name, limit in _NOTIFY_FIELDS.items()):
            raise NotifyRefused("malformed_notify", "a notify carries order_id, transaction_id, "
                                                    "amount, currency and status as strings")
        return Notify(**{name: fields[name] for name in _NOTIFY_FIELDS})

    # -- the gateway's own side: the pay page -------------------------------------

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._page_key, body.encode(), hashlib.sha256).digest())

    def _payment(self, token: str) -> dict[str, Any] | None:
        body, _, mac = token.partition(".")
        if len(token) > 4096 or not hmac.compare_digest(self._mac(body).encode(),
                                                         mac.encode("utf-8", "replace")):
            return None
        payment: dict[str, Any] = json.loads(_unb64(body))
        return payment

    def transaction_id(self, token: str) -> str:
        return "sbx_" + hmac.new(self._page_key, b"txn:" + token.encode(),
                                 hashlib.sha256).hexdigest()[:28]

    def notify_for(self, token: str, payment: Mapping[str, Any]) -> tuple[dict[str, str], bytes]:
        """The signed notify that says this payment was paid: (headers, body)."""
        now = self.clock.now()
        body = json.dumps({"order_id": payment["order_id"],
                           "transaction_id": self.transaction_id(token),
                           "amount": payment["amount"], "currency": payment["currency"],
                           "status": "paid", "paid_at": now.isoformat()},
                          separators=(",", ":")).encode()
        return ({"Content-Type": "application/json",
                 SIGNATURE_HEADER: sign(self.secret, body, now)}, body)

    def router(self, send_notify: NotifySender) -> APIRouter:
        """The pay page; a payment is announced to the billing center through ``send_notify``."""
        router = APIRouter(prefix=self.base_path, tags=["sandbox: payment gateway"],
                           route_class=StrictJSONRoute)

        @router.get("/{token}", response_class=HTMLResponse,
                    responses={404: {"description": "Unknown or altered payment link"}})
        def pay_page(token: str) -> HTMLResponse:
            """The sandbox's pay page for one payment: the amount, and Pay / Cancel buttons."""
            payment = self._payment(token)
            if payment is None:
                return _page("Unknown payment", "<p>This payment link is not valid.</p>", 404)
            action = escape(f"{self.base_path}/{token}", quote=True)
            return _page("Sandbox payment", f"""
<p>Merchant order <code>{escape(payment['order_id'])}</code>: {escape(payment['description'])}</p>
<p class="amount">{escape(payment['amount'])} {escape(payment['currency'])}</p>
<form method="post" action="{action}">
  <button type="submit" name="decision" value="pay">Pay</button>
  <button type="submit" name="decision" value="cancel">Cancel</button>
</form>""")

        @router.post("/{token}", response_class=HTMLResponse,
                     responses={303: {"description": "Back to the merchant's return URL"},
                                404: {"description": "Unknown or altered payment link"},
                                502: {"description": "The merchant did not acknowledge the notify"}})
        async def pay(token: str, request: Request) -> Response:
            """Submit the pay form (`decision=pay` or `cancel`, form-encoded). Paying sends the
            signed notify to the billing center and then redirects back to the return URL."""
            payment = self._payment(token)
            if payment is None:
                return _page("Unknown payment", "<p>This payment link is not valid.</p>", 404)
            raw = await request.body()
            form = parse_qs(raw[:_MAX_FORM_BYTES].decode("latin-1"))
            decision = (form.get("decision") or ["pay"])[0]
            if decision == "pay":
                headers, body = self.notify_for(token, payment)
                try:
                    status = await run_in_threadpool(send_notify, headers, body)
                except Exception as error:  # noqa: BLE001 (the payer may try again)
                    log.warning("sandbox: notify for %s failed: %s", payment["order_id"], error)
                    status = 0
                if status != 200:
                    return _page("Payment not confirmed",
                                 "<p>The merchant did not acknowledge the payment; "
                                 "submit the form again to retry.</p>", 502)
            outcome = "paid" if decision == "pay" else "cancelled"
            if not payment.get("return_url"):
                return _page("Payment " + outcome, f"<p>Order {escape(payment['order_id'])}: "
                                                   f"{outcome}. You may close this page.</p>")
            return RedirectResponse(
                _with_query(payment["return_url"], order_id=payment["order_id"], status=outcome),
                status_code=303)

        return router


def in_process_sender(receive: Callable[[Mapping[str, str], bytes], tuple[int, object]]
                      ) -> NotifySender:
    """A sender that calls the billing center's notify handler in this process."""
    return lambda headers, body: receive(dict(headers), body)[0]


def http_sender(client: httpx.Client, url: str) -> NotifySender:
    """A sender that POSTs the notify to ``url`` (the billing center's notify endpoint)."""
    def send(headers: dict[str, str], body: bytes) -> int:
        return client.post(url, content=body, headers=headers).status_code
    return send


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit(parts._replace(query=query))


def _page(title: str, content: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title></head>
<body><h1>{escape(title)}</h1>{content}
<p><small>Accrual sandbox gateway: no real money moves.</small></p></body></html>""",
                        status_code=status)
