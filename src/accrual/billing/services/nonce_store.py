"""The billing center's nonce store (``domain.nonces.NonceStore``) in its database:
a nonce taken here is refused as a replay by every process of the center, also after
a restart, for as long as the call's timestamp could still pass.

Taking a nonce is one insert in its own transaction; the primary key (scope, nonce)
makes the second of two concurrent inserts fail, which is the replay answer. Nonces
past ``keep_until`` are pruned on the way, at most once a minute per process, so the
table holds about a replay window's worth.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from accrual.billing.adapters import tables as t
from accrual.billing.domain.nonces import MAX_NONCE

log = logging.getLogger(__name__)

PRUNE_EVERY = timedelta(minutes=1)


class DatabaseNonces:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._pruned_at: datetime | None = None
        self._lock = threading.Lock()

    def remember(self, scope: str, nonce: str, seen_at: datetime,
                 keep_until: datetime) -> bool:
        if not 1 <= len(nonce) <= MAX_NONCE or not 1 <= len(scope) <= 16:
            raise ValueError(f"a nonce has 1 to {MAX_NONCE} characters, a scope 1 to 16")
        self._prune(seen_at)
        n = t.marketplace_nonces
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(n).values(scope=scope, nonce=nonce, seen_at=seen_at,
                                              keep_until=keep_until))
        except IntegrityError:
            # Taken before, or by a concurrent delivery of the same call this instant.
            return False
        return True

    def _prune(self, now: datetime) -> None:
        with self._lock:
            if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
                return
            self._pruned_at = now
        n = t.marketplace_nonces
        with self.engine.begin() as conn:
            pruned = conn.execute(delete(n).where(n.c.keep_until < now)).rowcount
        if pruned:
            log.debug("nonce store: %d expired nonce(s) pruned", pruned)

    def count(self) -> int:
        """How many nonces are kept (operators, tests)."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(t.marketplace_nonces))
                       .scalar_one())
