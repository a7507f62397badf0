"""The billing center's nonce store (KooGallery's activity nonces) on SQLite and
PostgreSQL: a nonce is taken once, by one of many concurrent takers, also by a store
made afresh on the same database (a restart, another process); expired nonces are
pruned; and the Huawei adapter refuses a replay through it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from accrual.app import Runtime
from accrual.billing.adapters import tables as t
from accrual.billing.domain.marketplace import NotificationRejected
from accrual.billing.marketplaces.huawei import (
    HuaweiListing,
    HuaweiMarketplace,
    activity_signature,
)
from accrual.billing.services.nonce_store import PRUNE_EVERY, DatabaseNonces
from accrual.clock import ManualClock

NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=2)


def test_a_nonce_is_taken_once_per_scope_also_by_a_new_store(runtime: Runtime) -> None:
    store = DatabaseNonces(runtime.billing.engine)
    assert store.remember("huawei", "n-1", NOW, NOW + WINDOW) is True
    assert store.remember("huawei", "n-1", NOW, NOW + WINDOW) is False
    assert store.remember("aliyun", "n-1", NOW, NOW + WINDOW) is True  # another vendor's
    restarted = DatabaseNonces(runtime.billing.engine)
    assert restarted.remember("huawei", "n-1", NOW + timedelta(seconds=30),
                              NOW + WINDOW) is False
    assert restarted.count() == 2


def test_concurrent_takers_of_one_nonce_one_wins(runtime: Runtime) -> None:
    stores = [DatabaseNonces(runtime.billing.engine) for _ in range(8)]
    start = threading.Barrier(len(stores))
    results: list[bool] = []
    lock = threading.Lock()

    def take(store: DatabaseNonces) -> None:
        start.wait()
        taken = store.remember("huawei", "contended", NOW, NOW + WINDOW)
        with lock:
            results.append(taken)

    threads = [threading.Thread(target=take, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results) == [False] * 7 + [True]


def test_expired_nonces_are_pruned_at_most_once_a_minute(runtime: Runtime) -> None:
    store = DatabaseNonces(runtime.billing.engine)
    for n in range(5):
        assert store.remember("huawei", f"old-{n}", NOW, NOW + WINDOW)
    later = NOW + WINDOW + timedelta(seconds=1)
    assert store.remember("huawei", "new-0", later, later + WINDOW)
    with runtime.billing.engine.connect() as conn:
        kept = set(conn.execute(select(t.marketplace_nonces.c.nonce)).scalars())
    assert kept == {"new-0"}
    # Within the minute nothing is pruned again: one expiring meanwhile waits for the next.
    assert store.remember("huawei", "brief", later, later + timedelta(seconds=10))
    assert store.remember("huawei", "new-1", later + timedelta(seconds=30),
                          later + WINDOW)
    assert store.count() == 3
    assert store.remember("huawei", "new-2", later + PRUNE_EVERY, later + PRUNE_EVERY + WINDOW)
    with runtime.billing.engine.connect() as conn:
        kept = set(conn.execute(select(t.marketplace_nonces.c.nonce)).scalars())
    assert kept == {"new-0", "new-1", "new-2"}


def test_the_adapter_refuses_a_replay_through_the_store_after_a_restart(
        runtime: Runtime) -> None:
    clock = ManualClock(NOW)
    listing = HuaweiListing(product_id="OFFI-1", access_key="ak-1", fallback_url=None)
    body = b'{"activity":"updateInstanceStatus","instanceId":"hw1","status":"FREEZE"}'
    timestamp = str(int(NOW.timestamp() * 1000))
    query = {"timestamp": timestamp, "nonce": "nonce-42",
             "signature": activity_signature(listing, "nonce-42", timestamp, body).upper()}

    def verify(market: HuaweiMarketplace) -> str:
        try:
            market.verify_activity("POST", "/activities", query, {}, body, clock.now(),
                                   nonces=DatabaseNonces(runtime.billing.engine))
        except NotificationRejected as refused:
            return refused.code
        return "verified"

    first, restarted = HuaweiMarketplace(listing, clock), HuaweiMarketplace(listing, clock)
    assert verify(first) == "verified"
    assert verify(restarted) == "replayed"  # its memory never saw it; the database did
    # A forged call (the signature does not hold) never takes a nonce.
    forged = dict(query, nonce="nonce-43")
    try:
        first.verify_activity("POST", "/activities", forged, {}, body, clock.now(),
                              nonces=DatabaseNonces(runtime.billing.engine))
    except NotificationRejected as refused:
        assert refused.code == "bad_signature"
    assert DatabaseNonces(runtime.billing.engine).count() == 1
