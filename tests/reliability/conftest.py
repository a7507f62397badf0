"""Reliability tests (RELIABILITY.md 2.6: R1, R2, R7, R8).

R1 and R2 race threads against row locks and unique constraints, which only
PostgreSQL has: they take the ``pg_runtime`` fixture and are left out of the
SQLite pass (deselected, not skipped). The PostgreSQL pass of ``make test``
(``ACCRUAL_TEST_DB=postgresql pytest -m db``) runs them; an unreachable server
ends that pass with an error (``pg_databases``), never with skipped tests.
R7 and R8 run on both backends.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from accrual.app import Runtime
from accrual.infra.db import RETRIES
from tests.conftest import BACKEND


@pytest.fixture(scope="session")
def pg_database_settings() -> dict[str, str]:
    """The server's own settings: the figures (R1, R2) measure durable commits, as the
    reports before them did."""
    return {}


@pytest.fixture(scope="session")
def password_hasher() -> None:
    """Passwords at the production cost: R7 times the answers to registrations and logins."""
    return None


@pytest.fixture
def pg_runtime(runtime: Runtime, pg_databases: tuple[str, str] | None) -> Iterator[Runtime]:
    """The test runtime, on PostgreSQL only; retry counts start from zero."""
    if pg_databases is None:
        pytest.fail("this test needs PostgreSQL: run it with ACCRUAL_TEST_DB=postgresql")
    RETRIES.reset()
    yield runtime


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if BACKEND == "postgresql":
        return
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        (dropped if "pg_runtime" in getattr(item, "fixturenames", ()) else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
