"""What a payment gateway adapter does, and how its asynchronous notifies are signed.

A gateway takes a payment request and answers with the URL the payer's browser is
sent to; later it tells the billing center, by a notify posted to
``/billing/v1/payments/notify``, that the money arrived. A notify is trusted only
once :meth:`PaymentGateway.verify_notify` has accepted it.

The notify signature follows Stripe's webhook scheme: the header
``Accrual-Signature: t=<unix seconds>,v1=<hex>`` carries
``HMAC-SHA256(secret, "<t>." + body)``; the digest is compared in constant time,
and a timestamp more than 300 s away from the injected clock is refused, so a
captured notify cannot be replayed later. Several ``v1`` values may be sent (a
secret being rotated); one matching is enough.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

SIGNATURE_HEADER = "Accrual-Signature"
TOLERANCE_S = 300
# A header is short; anything longer is refused before any work is done on it.
_MAX_HEADER_CHARS = 1024
_MAX_SIGNATURES = 4


class NotifyRefused(Exception):
    """A notify that must credit nothing; ``code`` is the stable reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class PaymentRequest:
    """What the billing center asks a gateway to collect."""

    order_id: str
    amount: str  # decimal string in `currency`
    currency: str
    description: str
    return_url: str | None  # where the payer's browser goes back to afterwards


@dataclass(frozen=True)
class Notify:
    """A verified notify: the gateway says ``transaction_id`` paid ``amount`` for ``order_id``."""

    order_id: str
    transaction_id: str
    amount: str
    currency: str
    status: str  # "paid"; anything else is acknowledged and credits nothing


class PaymentGateway(Protocol):
    name: str

    def create_payment(self, request: PaymentRequest) -> str:
        """Open a payment with the gateway; the URL to redirect the payer's browser to."""
        ...

    def verify_notify(self, headers: Mapping[str, str], body: bytes) -> Notify:
        """The notify, if it is authentic and fresh; otherwise raise :class:`NotifyRefused`."""
        ...


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>." + body`` under ``secret``."""
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, now: datetime) -> str:
    """The ``Accrual-Signature`` header value for ``body`` sent at ``now``."""
    timestamp = int(now.timestamp())
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(secret: str, header: str | None, body: bytes, now: datetime,
           tolerance_s: int = TOLERANCE_S) -> int:
    """Check a signature header against ``body``; the signed timestamp when it holds.

    Refusals, in this order: ``invalid_signature`` (missing, malformed or not
    matching) and then ``stale_notify`` (signed more than ``tolerance_s`` seconds
    before or after ``now``). The digest is checked first, so nothing about the
    timing is revealed to a sender who does not hold the secret.
    """
    if not header or len(header) > _MAX_HEADER_CHARS:
        raise NotifyRefused("invalid_signature", f"send a {SIGNATURE_HEADER} header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1" and len(candidates) < _MAX_SIGNATURES:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise NotifyRefused("invalid_signature",
                            f"{SIGNATURE_HEADER} must be 't=<unix seconds>,v1=<hex digest>'")
    expected = signature(secret, timestamp, body).encode()
    # Every candidate is compared (no early exit), each in constant time.
    matched = [hmac.compare_digest(expected, c.encode("utf-8", "replace")) for c in candidates]
    if not any(matched):
        raise NotifyRefused("invalid_signature", "the signature does not match the body")
    if abs(int(now.timestamp()) - timestamp) > tolerance_s:
        raise NotifyRefused("stale_notify",
                            f"the notify was signed more than {tolerance_s} s from now")
    return timestamp
