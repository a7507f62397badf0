"""Properties of ingestion and day close, on SQLite and on PostgreSQL.

Whatever the order, the batching, the resending of usage and the closes in
between, a day's statistics and the sum of its billing details are the same.
Each example registers fresh workspaces, so examples never share state.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from itertools import pairwise
from typing import Any

import pytest
from argon2 import PasswordHasher
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from accrual.app import Runtime
from accrual.clock import ManualClock
from accrual.console.adapters import tables as t
from accrual.console.api.views import detail_json
from accrual.console.services.reports import billing_details
from accrual.contract.messages import detail_id
from accrual.infra import credentials
from tests.conftest import SHANGHAI, START

DAY = date(2026, 11, 25)
# The workspace exists before the day it is billed for; usage is sent and the
# day closed next morning (START, 2026-11-26 10:00 Shanghai).
REGISTERED_AT = datetime(2026, 11, 25, 0, 5, tzinfo=SHANGHAI)

PROPERTY = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

# (item, retention tier sent or None) → (unit size, CNY/cn unit price), literals
# from reference-billing.md §2.2 and the vocabulary of decisions.md.
PRICED: dict[tuple[str, int | None], tuple[int, str]] = {
    ("logs", 7): (1_000_000, "1.2"),
    ("logs", 3): (1_000_000, "1"),
    ("trace", 3): (1_000_000, "2"),
    ("rum_pv", 3): (10_000, "0.7"),
    ("trigger", None): (10_000, "1"),
    ("synthetic_test", None): (10_000, "1"),
    ("sensitive_scan", None): (10**9, "0.1"),
    ("timeseries", 3): (1000, "0.6"),          # max of cumulative counts
    ("network_host", None): (1, "2"),          # max of cumulative counts
    ("session_replay", None): (1000, "2.5"),   # max of cumulative counts
    ("forward_internal", 180): (10**9, "0.007"),  # max of stock
}
MAX_ITEMS = {"timeseries", "network_host", "session_replay", "forward_internal"}

Usage = tuple[tuple[str, int | None], int, int, int]  # (item, tier), hour, minute, quantity

usage = st.tuples(
    st.sampled_from(sorted(PRICED, key=str)),
    st.integers(min_value=0, max_value=23),
    st.integers(min_value=0, max_value=59),
    st.one_of(st.integers(min_value=0, max_value=20_000),
              st.integers(min_value=0, max_value=10**11)),
)
usages = st.lists(usage, min_size=1, max_size=25)


@pytest.fixture
def cheap_passwords(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Registration hashes passwords with argon2 twice (console and billing center);
    a cheap hasher keeps dozens of registrations per test fast. Nothing here logs in."""
    monkeypatch.setattr(credentials, "_hasher",
                        PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    yield


def new_workspace(runtime: Runtime, clock: ManualClock) -> str:
    tag = uuid.uuid4().hex[:16]
    clock.set(REGISTERED_AT)
    registration = runtime.console.accounts.register(
        f"p{tag}@example.com", "correct horse battery", f"p{tag}", "Property", "en")
    clock.set(START)
    return registration.workspace_id


def records_for(workspace_id: str, items: list[Usage]) -> list[dict[str, Any]]:
    records = []
    for n, ((item, tier), hour, minute, quantity) in enumerate(items):
        record: dict[str, Any] = {"id": f"u-{n}", "workspace_id": workspace_id, "item": item,
                                  "time": f"{DAY.isoformat()}T{hour:02d}:{minute:02d}:00+08:00",
                                  "quantity": str(quantity)}
        if tier is not None:
            record["retention_days"] = tier
        records.append(record)
    return records


def expected_day(items: list[Usage]) -> dict[tuple[str, int], tuple[Decimal, int]]:
    """The oracle: sum or max per (item, tier), priced and rounded half-up once."""
    quantities: dict[tuple[str, int | None], int] = {}
    for key, _hour, _minute, quantity in items:
        if key[0] in MAX_ITEMS:
            quantities[key] = max(quantities.get(key, 0), quantity)
        else:
            quantities[key] = quantities.get(key, 0) + quantity
    expected = {}
    for (item, tier), quantity in quantities.items():
        unit_size, unit_price = PRICED[(item, tier)]
        amount = (Decimal(quantity) / unit_size * Decimal(unit_price)).quantize(
            Decimal("0.01"), rounding=ROUND_HALF_UP)
        expected[(item, tier or 0)] = (Decimal(quantity), int(amount * 100))
    return expected


def statistics(runtime: Runtime, workspace_id: str) -> dict[tuple[str, int], tuple[Decimal, int]]:
    s = t.daily_statistics
    with runtime.console.engine.connect() as conn:
        rows = conn.execute(select(s).where(s.c.workspace_id == workspace_id, s.c.day == DAY)).all()
    return {(r.item, r.retention_days): (Decimal(r.quantity), r.amount_minor) for r in rows}


def details(runtime: Runtime, workspace_id: str) -> list[dict[str, Any]]:
    return [detail_json(d) for d in billing_details(runtime.console.engine, workspace_id, DAY, DAY)]


def detail_totals(rows: list[dict[str, Any]]) -> dict[tuple[str, int], tuple[Decimal, int]]:
    totals: dict[tuple[str, int], tuple[Decimal, int]] = defaultdict(lambda: (Decimal(0), 0))
    for d in rows:
        key = (d["item"], d["retention_days"])
        quantity, amount = totals[key]
        totals[key] = (quantity + Decimal(d["quantity"]),
                       amount + int(Decimal(d["amount"]) * 100))
    return dict(totals)


def split(records: list[dict[str, Any]], cuts: list[int]) -> list[list[dict[str, Any]]]:
    bounds = sorted({0, len(records), *(c % (len(records) + 1) for c in cuts)})
    return [records[a:b] for a, b in pairwise(bounds) if b > a]


def ingest(runtime: Runtime, batch: list[dict[str, Any]]) -> tuple[int, int]:
    result = runtime.console.ingestion.ingest(batch)
    assert result.rejected == []
    return result.accepted, result.duplicates


def close(runtime: Runtime, *workspaces: str) -> tuple[int, int]:
    result = runtime.console.day_close.close_day(DAY, workspaces=list(workspaces))
    return result.charges, result.adjustments


def assert_revision_chain(site: str, workspace_id: str, rows: list[dict[str, Any]]) -> None:
    """Per key: one charge at revision 0, then adjustments each pointing to the one before."""
    by_key: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for d in rows:
        by_key[(d["item"], d["retention_days"])].append(d)
    for (item, tier), chain in by_key.items():
        chain.sort(key=lambda d: d["revision"])
        assert [d["revision"] for d in chain] == list(range(len(chain)))
        assert chain[0]["kind"] == "charge" and chain[0]["adjusts"] is None
        for previous, d in pairwise(chain):
            assert d["kind"] == "adjustment"
            assert d["adjusts"] == previous["id"]
            assert d["id"] == detail_id(site, workspace_id, DAY, item, tier, d["revision"])


# -- properties -------------------------------------------------------------------------


@PROPERTY
@given(items=usages, data=st.data())
def test_order_and_batching_do_not_change_the_day(runtime: Runtime, clock: ManualClock,
                                                  cheap_passwords: None, items: list[Usage],
                                                  data: st.DataObject) -> None:
    one, many = new_workspace(runtime, clock), new_workspace(runtime, clock)

    assert ingest(runtime, records_for(one, items)) == (len(items), 0)

    shuffled = data.draw(st.permutations(records_for(many, items)), label="order")
    batches = split(shuffled, data.draw(st.lists(st.integers(0, 100), max_size=6), label="cuts"))
    resent = data.draw(st.lists(st.integers(0, len(shuffled) - 1), max_size=5), label="resent")
    for position, index in enumerate(resent):
        batches[position % len(batches)].append(dict(shuffled[index]))
    accepted = duplicates = 0
    for batch in batches:
        a, d = ingest(runtime, batch)
        accepted, duplicates = accepted + a, duplicates + d
    assert (accepted, duplicates) == (len(items), len(resent))

    expected = expected_day(items)
    assert close(runtime, one, many) == (2 * len(expected), 0)

    assert statistics(runtime, one) == expected
    assert statistics(runtime, many) == expected
    for workspace_id in (one, many):
        rows = details(runtime, workspace_id)
        assert all(d["kind"] == "charge" for d in rows)
        assert detail_totals(rows) == expected


@PROPERTY
@given(items=usages, data=st.data())
def test_closing_between_batches_gives_the_same_totals(runtime: Runtime, clock: ManualClock,
                                                      cheap_passwords: None, items: list[Usage],
                                                      data: st.DataObject) -> None:
    """Late usage for a closed day becomes adjustments; charge + adjustments of
    every key add up to what one batch closed once gives."""
    once, late = new_workspace(runtime, clock), new_workspace(runtime, clock)
    ingest(runtime, records_for(once, items))
    assert close(runtime, once) == (len(expected_day(items)), 0)

    shuffled = data.draw(st.permutations(records_for(late, items)), label="order")
    batches = split(shuffled, data.draw(st.lists(st.integers(0, 100), max_size=5), label="cuts"))
    created = 0
    for batch in batches:
        ingest(runtime, batch)
        charges, adjustments = close(runtime, late)
        created += charges + adjustments
        # A further close with nothing new changes nothing.
        assert close(runtime, late) == (0, 0)

    expected = expected_day(items)
    assert statistics(runtime, once) == expected
    assert statistics(runtime, late) == expected
    once_rows, late_rows = details(runtime, once), details(runtime, late)
    assert detail_totals(once_rows) == expected
    assert detail_totals(late_rows) == expected
    assert len(late_rows) == created
    assert_revision_chain(runtime.console.config.site, late, late_rows)
    # Every statistic's amount is the sum of its details' (rounded) amounts.
    assert {k: v[1] for k, v in detail_totals(late_rows).items()} == {
        k: v[1] for k, v in statistics(runtime, late).items()}


@PROPERTY
@given(items=usages, data=st.data())
def test_resending_and_reclosing_change_nothing(runtime: Runtime, clock: ManualClock,
                                                cheap_passwords: None, items: list[Usage],
                                                data: st.DataObject) -> None:
    workspace_id = new_workspace(runtime, clock)
    records = records_for(workspace_id, items)
    assert ingest(runtime, records) == (len(records), 0)
    close(runtime, workspace_id)
    stats_before, details_before = statistics(runtime, workspace_id), details(runtime, workspace_id)
    assert stats_before == expected_day(items)

    again = data.draw(st.lists(st.sampled_from(records), min_size=1, max_size=30), label="again")
    batches = split(again, data.draw(st.lists(st.integers(0, 100), max_size=3), label="cuts"))
    for batch in batches:
        assert ingest(runtime, [dict(r) for r in batch]) == (0, len(batch))
    assert close(runtime, workspace_id) == (0, 0)
    assert runtime.console.day_close.close_day(DAY, workspaces=[workspace_id]).already_closed

    assert statistics(runtime, workspace_id) == stats_before
    assert details(runtime, workspace_id) == details_before


# -- conflicts and malformed input ----------------------------------------------------------


def test_a_resent_id_with_another_payload_is_a_conflict_and_changes_nothing(
        runtime: Runtime, clock: ManualClock, cheap_passwords: None) -> None:
    workspace_id = new_workspace(runtime, clock)
    records = records_for(workspace_id, [(("logs", 7), 9, 0, 500_000)])
    assert ingest(runtime, records) == (1, 0)
    changed = {**records[0], "quantity": "900000"}
    result = runtime.console.ingestion.ingest([changed, {**records[0], "retention_days": 3}])
    assert (result.accepted, result.duplicates) == (0, 0)
    assert [(r.index, r.code) for r in result.rejected] == [(0, "conflict"), (1, "conflict")]
    # Within one batch too: the first payload wins, the second is a conflict.
    fresh = records_for(workspace_id, [(("trigger", None), 9, 0, 10_000)])[0] | {"id": "v-1"}
    result = runtime.console.ingestion.ingest([fresh, {**fresh, "quantity": "1"}, dict(fresh)])
    assert (result.accepted, result.duplicates) == (1, 1)
    assert [(r.index, r.code) for r in result.rejected] == [(1, "conflict")]
    close(runtime, workspace_id)
    assert statistics(runtime, workspace_id) == {("logs", 7): (Decimal(500_000), 60),
                                                 ("trigger", 0): (Decimal(10_000), 100)}


@pytest.mark.parametrize("field, value, codes", [
    ("workspace_id", ["not", "a", "string"], {"unknown_workspace"}),
    ("workspace_id", {"id": "x"}, {"unknown_workspace"}),
    ("workspace_id", "ws\x00", {"unknown_workspace"}),
    ("id", "u\x00-1", {"invalid_id", "invalid_record"}),
])
def test_a_malformed_record_is_rejected_without_failing_the_batch(
        runtime: Runtime, clock: ManualClock, cheap_passwords: None, field: str, value: object,
        codes: set[str]) -> None:
    workspace_id = new_workspace(runtime, clock)
    good, bad = records_for(workspace_id, [(("logs", 7), 9, 0, 1), (("logs", 7), 10, 0, 2)])
    bad[field] = value
    result = runtime.console.ingestion.ingest([good, bad])
    assert result.accepted == 1
    assert [r.index for r in result.rejected] == [1]
    assert result.rejected[0].code in codes


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**20), max_value=10**20),
                         st.decimals(allow_nan=False, allow_infinity=False), st.text(max_size=12),
                         st.sampled_from(["\x00", "a\x00b"]))  # PostgreSQL text cannot hold NUL
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6)
KNOWN_CODES = {"invalid_record", "invalid_id", "unknown_workspace", "workspace_dissolved",
               "unknown_item", "item_not_available", "invalid_time", "time_in_future", "too_late",
               "invalid_quantity", "invalid_retention", "invalid_attributes", "conflict"}


def test_every_record_of_any_batch_is_accepted_a_duplicate_or_rejected(
        runtime: Runtime, clock: ManualClock, cheap_passwords: None) -> None:
    """Records as they come out of the JSON parser: any field may hold any JSON value."""
    workspace_id = new_workspace(runtime, clock)

    def either(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(valid, json_values)

    record = st.fixed_dictionaries(
        {"id": either(st.sampled_from(["a", "b", "c"])),
         "workspace_id": either(st.just(workspace_id)),
         "item": either(st.sampled_from(["logs", "trigger", "timeseries", "sms"])),
         "time": either(st.sampled_from(["2026-11-25T09:00:00+08:00", "2026-11-26T01:00:00Z"])),
         "quantity": either(st.sampled_from(["1", "20000", 5]))},
        optional={"retention_days": either(st.sampled_from([3, 7, 0])),
                  "attributes": either(st.just({"host": "a"})),
                  "extra": json_values})
    batch = st.lists(st.one_of(record, json_values), max_size=8)

    @PROPERTY
    @given(batch)
    def check(records: list[Any]) -> None:
        result = runtime.console.ingestion.ingest(records)
        assert result.accepted + result.duplicates + len(result.rejected) == len(records)
        assert [r.index for r in result.rejected] == sorted({r.index for r in result.rejected})
        assert all(0 <= r.index < len(records) and r.code in KNOWN_CODES for r in result.rejected)

    check()
