"""Replay protection for signed inbound calls: a nonce is taken once within its window
(marketplaces.md §3.2: KooGallery's activities carry a random nonce to be cached).

The adapter that verifies a call asks a :class:`NonceStore`; it stays free of any
database. The billing center's store keeps the nonces in its database
(``services.nonce_store``), so a replay is refused by every process and after a
restart; :class:`MemoryNonces` serves an adapter used on its own (tests, a script).
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Protocol

MAX_NONCE = 128  # the longest nonce an adapter accepts (and a store keeps)


class NonceStore(Protocol):
    def remember(self, scope: str, nonce: str, seen_at: datetime,
                 keep_until: datetime) -> bool:
        """Take ``nonce`` in ``scope`` (a vendor) once: True the first time, False when it
        was taken already (a replay). Kept at least until ``keep_until`` (past it the
        call's timestamp is refused anyway); may be forgotten after it."""
        ...


class NonceStoreFull(Exception):
    """The store cannot take another nonce now: refuse the call, the vendor retries."""


class MemoryNonces:
    """Nonces in this process's memory: forgotten on restart, not shared between processes."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._kept: dict[tuple[str, str], datetime] = {}
        self._lock = threading.Lock()

    def remember(self, scope: str, nonce: str, seen_at: datetime,
                 keep_until: datetime) -> bool:
        with self._lock:
            if len(self._kept) >= self.capacity:
                self._kept = {k: until for k, until in self._kept.items() if until > seen_at}
            if (scope, nonce) in self._kept:
                return False
            if len(self._kept) >= self.capacity:
                raise NonceStoreFull("too many live nonces at once")
            self._kept[(scope, nonce)] = keep_until
            return True
