"""Ingestion's two ways of storing a batch on PostgreSQL (COPY straight into the table, or
through the staging table when some records are already there) answer alike; so does SQLite."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select

from accrual.app import Runtime
from accrual.clock import ManualClock
from accrual.console.adapters import tables as t
from accrual.infra import credentials
from tests.conftest import SHANGHAI, START

DAY = date(2026, 11, 25)


@pytest.fixture
def workspace(runtime: Runtime, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(credentials, "_hasher",
                        PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    clock.set(datetime(2026, 11, 25, 0, 5, tzinfo=SHANGHAI))
    reg = runtime.console.accounts.register("ada@example.com", "correct horse battery", "ada",
                                            "Ada's team", "en")
    clock.set(START)
    yield reg.workspace_id


def record(workspace_id: str, n: int, quantity: str = "100", hour: int = 9) -> dict[str, Any]:
    return {"id": f"r-{n}", "workspace_id": workspace_id, "item": "logs",
            "time": f"2026-11-25T{hour:02d}:00:00+08:00", "quantity": quantity,
            "retention_days": 7}


def stored(runtime: Runtime) -> dict[str, int]:
    with runtime.console.engine.connect() as conn:
        return dict(conn.execute(select(t.usage_records.c.record_id,
                                        t.usage_records.c.quantity)).all())


def test_new_known_and_conflicting_records_in_one_batch(runtime: Runtime, workspace: str) -> None:
    first = runtime.console.ingestion.ingest([record(workspace, n) for n in range(5)])
    assert (first.accepted, first.duplicates, first.rejected) == (5, 0, [])
    batch = [record(workspace, 10), record(workspace, 1), record(workspace, 2, "999"),
             record(workspace, 11), record(workspace, 10), record(workspace, 11, "7"),
             {"id": "bad"}]
    result = runtime.console.ingestion.ingest(batch)
    assert result.accepted == 2 and result.duplicates == 2
    assert [(r.index, r.code) for r in result.rejected] == [
        (2, "conflict"), (5, "conflict"), (6, "unknown_workspace")]
    assert stored(runtime) == {**{f"r-{n}": 100 for n in range(5)}, "r-10": 100, "r-11": 100}


def test_late_usage_is_noted_by_either_path(runtime: Runtime, workspace: str) -> None:
    runtime.console.ingestion.ingest([record(workspace, 1)])
    runtime.console.day_close.close_day(DAY)
    fresh = runtime.console.ingestion.ingest([record(workspace, 2)])  # straight in
    assert fresh.accepted == 1
    with runtime.console.engine.begin() as conn:
        conn.execute(t.late_days.delete())
    mixed = runtime.console.ingestion.ingest([record(workspace, 2), record(workspace, 3)])
    assert (mixed.accepted, mixed.duplicates) == (1, 1)  # through the staging table
    with runtime.console.engine.connect() as conn:
        late = conn.execute(select(t.late_days.c.workspace_id, t.late_days.c.day)).all()
    assert late == [(workspace, DAY)]


def test_a_batch_of_only_known_records_notes_nothing_late(runtime: Runtime,
                                                          workspace: str) -> None:
    runtime.console.ingestion.ingest([record(workspace, 1)])
    runtime.console.day_close.close_day(DAY)
    again = runtime.console.ingestion.ingest([record(workspace, 1)])
    assert (again.accepted, again.duplicates) == (0, 1)
    with runtime.console.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.late_days)).scalar_one() == 0


def test_overlapping_batches_sent_at_once_store_each_record_once(runtime: Runtime,
                                                                 workspace: str) -> None:
    batches = [[record(workspace, n) for n in range(start, start + 300)]
               for start in (0, 100, 200, 0)]
    results: list[Any] = []
    errors: list[BaseException] = []

    def send(batch: list[dict[str, Any]]) -> None:
        try:
            results.append(runtime.console.ingestion.ingest(batch))
        except BaseException as error:  # noqa: BLE001 (reported below)
            errors.append(error)

    threads = [threading.Thread(target=send, args=(b,)) for b in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(r.accepted for r in results) == 500
    assert sum(r.accepted + r.duplicates for r in results) == 1200
    assert all(r.rejected == [] for r in results)
    assert len(stored(runtime)) == 500
