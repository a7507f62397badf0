"""What every marketplace end-to-end test shares: the whole app served on a real port
the vendor's emulator calls back, and the operator's views of the charge reporter."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from accrual.app import Runtime
from tests.helpers import OPERATOR
from tests.sandbox_server import serve


@contextmanager
def served(runtime: Runtime, port: int) -> Iterator[httpx.Client]:
    """``runtime`` served on ``port`` (the one its public URL names), with a client of
    it; the reporter always takes the longest jittered delay, so a test can step past
    it. Everything is closed on leaving."""
    runtime.billing.marketplace_reporter.random = lambda: 1.0
    try:
        with serve(runtime.app, port=port) as base, \
                httpx.Client(base_url=base, timeout=30) as http:
            yield http
    finally:
        for adapter in runtime.billing.marketplaces.by_vendor.values():
            getattr(adapter, "close", lambda: None)()
        runtime.console.engine.dispose()
        runtime.billing.engine.dispose()


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def charges(http: httpx.Client) -> list[dict[str, Any]]:
    """Every marketplace charge, oldest first."""
    found: list[dict[str, Any]] = ok(http.get("/billing/v1/admin/marketplaces/charges",
                                              headers=OPERATOR))
    return sorted(found, key=lambda c: c["id"])


def backlog(http: httpx.Client) -> dict[str, Any]:
    return dict(ok(http.get("/billing/v1/admin/marketplaces/reporter", headers=OPERATOR)))
