"""Calls an emulator sends to the seller (notifications, webhooks, SPI and activity
calls), kept with what came of every attempt.

A failed attempt is recorded, never raised: the seller's server is what is under
test, and the emulator tries again as its vendor would.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import httpx

DELIVERY_TIMEOUT_S = 5.0

# POST (url, headers, body) -> the HTTP status answered
Sender = Callable[[str, Mapping[str, str], bytes], int]

AnswerT = TypeVar("AnswerT")


def http_send(url: str, headers: Mapping[str, str], body: bytes) -> int:
    return httpx.post(url, headers=dict(headers), content=body, timeout=DELIVERY_TIMEOUT_S,
                      follow_redirects=False).status_code


def attempt(send: Callable[[], AnswerT]) -> tuple[AnswerT | None, str | None]:
    """Send once: the answer and no error, or no answer and what went wrong."""
    try:
        return send(), None
    except Exception as failure:  # noqa: BLE001 - any failure is recorded and retried
        return None, f"{type(failure).__name__}: {failure}"


def succeeded(status: int | None) -> bool:
    return status is not None and 200 <= status < 300


@dataclass(kw_only=True)
class Delivery:
    """One call to the seller, its exact body and headers, and every attempt at it."""

    id: int
    url: str  # empty: the seller gave nowhere to send it; it stays undelivered
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)  # as last sent
    attempts: list[dict[str, Any]] = field(default_factory=list)
    delivered: bool = False

    def post(self, send: Sender) -> tuple[int | None, str | None]:
        """One attempt (outside the emulator's lock: the seller may call back)."""
        return attempt(lambda: send(self.url, self.headers, self.body))

    def record(self, at: datetime, status: int | None, error: str | None,
               **more: Any) -> bool:
        """Keep an attempt (the caller holds the lock); whether it was answered 2xx."""
        self.attempts.append({"at": at.isoformat(), "status": status, "error": error, **more})
        return succeeded(status)
