"""Metering under hostile input: a day's totals stay inside their limits, free quotas bind at
ingestion, and /usage takes only JSON in UTF-8 against a documented body."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select

from accrual.app import Runtime
from accrual.catalog import ITEMS
from accrual.clock import ManualClock
from accrual.console.adapters import tables as t
from accrual.console.domain.usage import MAX_DAY_UNITS
from accrual.console.wiring import MIGRATIONS
from accrual.money import MAX_AMOUNT
from tests.conftest import SHANGHAI, START
from tests.helpers import bearer, close_day, console_login, downgrade, register, send_usage

TODAY = START.date().isoformat()  # 2026-11-26
MAX_QUANTITY = 10**15


def record(ws: str, rid: str, item: str = "logs", quantity: object = "1000", hour: int = 9,
           **extra: Any) -> dict[str, Any]:
    return {"id": rid, "workspace_id": ws, "item": item,
            "time": f"{TODAY}T{hour:02d}:00:00+08:00", "quantity": quantity, **extra}


def post(client: TestClient, key: str, records: list[dict[str, Any]]) -> httpx.Response:
    return client.post("/console/v1/usage", json={"records": records}, headers=bearer(key))


def codes(report: dict[str, Any]) -> dict[str, int]:
    found: dict[str, int] = {}
    for rejection in report["rejected"]:
        found[rejection["code"]] = found.get(rejection["code"], 0) + 1
    return found


def totals(runtime: Runtime, ws: str) -> dict[tuple[str, int], tuple[int, int]]:
    d = t.usage_day_totals
    with runtime.console.engine.connect() as conn:
        return {(r.item, r.retention_days): (r.quantity, r.companion) for r in conn.execute(
            select(d).where(d.c.workspace_id == ws))}


def stored_sum(runtime: Runtime, ws: str, item: str) -> int:
    u = t.usage_records
    with runtime.console.engine.connect() as conn:
        rows = conn.execute(select(u.c.quantity).where(u.c.workspace_id == ws, u.c.item == item))
        return sum(q for (q,) in rows)  # in Python: the point is what was stored


# -- defect 1: a day's total cannot pass 64 bits, and one tenant cannot stall the close -----


def test_a_day_flooded_with_maximal_logs_refuses_the_excess_and_every_read_answers(
        client: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    ada, bob = register(client), register(client, "bob")
    ws, key = ada["workspace_id"], ada["ingest_key"]
    # About 9,300 valid records of 10^15 logs each: their SUM would pass 2^63.
    flood = [record(ws, f"flood-{n}", quantity=str(MAX_QUANTITY), retention_days=7)
             for n in range(9_300)]
    first, second = post(client, key, flood[:5_000]), post(client, key, flood[5_000:])
    send_usage(client, bob["ingest_key"], [record(bob["workspace_id"], "bob-1",
                                                  quantity="2000000", retention_days=7)])
    # Stored whole, the flood's SUM passed 2^63 and each of these reads answered 500.
    owner = console_login(client)
    quota = client.get(f"/console/v1/workspaces/{ws}/quota", headers=owner)
    assert quota.status_code == 200, quota.text
    assert {i["item"]: i["used"] for i in quota.json()["items"]}["logs"] == str(MAX_QUANTITY)
    usage = client.get(f"/console/v1/workspaces/{ws}/usage",
                       params={"from": TODAY, "to": TODAY}, headers=owner)
    assert usage.status_code == 200, usage.text
    assert usage.json()["items"] == [{"item": "logs", "retention_days": 7, "days": [
        {"day": TODAY, "quantity": str(MAX_QUANTITY), "complete": False}]}]
    admission = client.post("/console/v1/admission", headers=bearer(key), json={
        "checks": [{"workspace_id": ws, "item": "logs"}]})
    assert admission.status_code == 200, admission.text
    assert admission.json()["answers"][0]["allowed"] is True  # commercial: never held back

    assert first.status_code == 200 and second.status_code == 422  # nothing more fitted
    assert first.json()["accepted"] == 1
    assert codes(first.json()) == {"daily_limit_exceeded": 4_999}
    assert second.json()["accepted"] == 0
    assert codes(second.json()) == {"daily_limit_exceeded": 4_300}
    assert all("1000000000000000" in r["message"] for r in first.json()["rejected"][:3])
    assert totals(runtime, ws) == {("logs", 7): (MAX_QUANTITY, 0)}
    assert stored_sum(runtime, ws, "logs") == MAX_QUANTITY  # the refused were not stored
    # Resending the one stored record is a duplicate, not a refusal.
    again = send_usage(client, key, [flood[0]])
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 1, [])

    clock.set(datetime(2026, 11, 27, 0, 40, tzinfo=SHANGHAI))
    closed = close_day(client, TODAY)
    assert closed["charges"] == 2
    for tenant, quantity in ((ada, str(MAX_QUANTITY)), (bob, "2000000")):
        details = client.get(f"/console/v1/workspaces/{tenant['workspace_id']}/billing-details",
                             params={"from": TODAY, "to": TODAY},
                             headers=console_login(client, "bob" if tenant is bob else "ada"))
        assert details.status_code == 200, details.text
        (detail,) = details.json()["details"]
        assert detail["quantity"] == quantity
        assert Decimal(detail["amount"]) < MAX_AMOUNT


def test_counting_rules_cannot_multiply_a_record_past_the_day(
        client: TestClient, runtime: Runtime) -> None:
    ada = register(client)
    ws, key = ada["workspace_id"], ada["ingest_key"]
    report = post(client, key, [
        # 10^15 records of 1 GB each: 10^15 × 102,400 billable units.
        record(ws, "split", quantity=str(MAX_QUANTITY), retention_days=7,
               attributes={"size_bytes": 10**9}),
        # 10^13 runs of a detection weighing 100 calls, plus a surcharge per run.
        record(ws, "weighed", "trigger", quantity=str(10**13),
               attributes={"kind": "intelligent_rum", "window_minutes": 10**6}),
        record(ws, "fits", "trigger", quantity=str(10**13), attributes={"kind": "intelligent_rum"}),
    ]).json()
    assert [(r["index"], r["code"]) for r in report["rejected"]] == [
        (0, "daily_limit_exceeded"), (1, "daily_limit_exceeded")]
    assert report["accepted"] == 1
    assert totals(runtime, ws) == {("trigger", 0): (10**15, 0)}

    # Spans: the day bills max(spans / 10, traces), so it holds at most 10 × the limit.
    traces = [record(ws, f"tr-{n}", "trace", quantity=1, retention_days=7,
                     attributes={"spans": MAX_QUANTITY}) for n in range(11)]
    spans = post(client, key, traces).json()
    assert spans["accepted"] == 10 and [r["index"] for r in spans["rejected"]] == [10]
    assert spans["rejected"][0]["code"] == "daily_limit_exceeded"
    assert totals(runtime, ws)[("trace", 7)] == (10, 10 * MAX_QUANTITY)


def test_an_item_priced_per_unit_holds_what_its_highest_price_keeps_below_max_amount(
        client: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    ada = register(client)
    ws, key = ada["workspace_id"], ada["ingest_key"]
    highest = max(row.unit_price for row in runtime.console.book.rows if
                  (row.item, row.currency, row.site_group) == ("network_host", "CNY", "cn"))
    limit = runtime.console.ingestion.limits.day_limit("network_host")
    assert limit < MAX_DAY_UNITS  # a host a day at a few yuan: 10^15 hosts would not fit
    assert limit * highest / ITEMS["network_host"].unit_size < MAX_AMOUNT
    assert (limit + 1) * highest / ITEMS["network_host"].unit_size >= MAX_AMOUNT - 1
    report = post(client, key, [record(ws, "too-many", "network_host", quantity=str(limit + 1)),
                                record(ws, "most", "network_host", quantity=str(limit))]).json()
    assert report["accepted"] == 1 and codes(report) == {"daily_limit_exceeded": 1}
    clock.set(datetime(2026, 11, 27, 0, 40, tzinfo=SHANGHAI))
    close_day(client, TODAY)
    (detail,) = client.get(f"/console/v1/workspaces/{ws}/billing-details",
                           params={"from": TODAY, "to": TODAY},
                           headers=console_login(client)).json()["details"]
    assert detail["quantity"] == str(limit) and Decimal(detail["amount"]) < MAX_AMOUNT


def test_duplicates_and_conflicts_do_not_count_towards_the_day(
        client: TestClient, runtime: Runtime) -> None:
    ada = register(client)
    ws, key = ada["workspace_id"], ada["ingest_key"]
    half = str(MAX_QUANTITY // 2)
    send_usage(client, key, [record(ws, "a", quantity=half, retention_days=7)])
    report = send_usage(client, key, [
        record(ws, "a", quantity=half, retention_days=7),  # duplicate
        record(ws, "a", quantity="5", retention_days=7),  # conflict
        record(ws, "b", quantity=half, retention_days=7),  # fills the day exactly
        record(ws, "c", quantity="1", retention_days=7),  # one too many
        record(ws, "d", quantity="0", retention_days=7),  # nothing more: fits
        record(ws, "e", quantity="1", retention_days=14),  # another tier, its own total
    ])
    assert report["accepted"] == 3 and report["duplicates"] == 1
    assert [(r["index"], r["code"]) for r in report["rejected"]] == [
        (1, "conflict"), (3, "daily_limit_exceeded")]
    assert totals(runtime, ws) == {("logs", 7): (MAX_QUANTITY, 0), ("logs", 14): (1, 0)}


def test_batches_sent_at_once_cannot_pass_the_limit_together(
        client: TestClient, runtime: Runtime) -> None:
    ada = register(client)
    ws = ada["workspace_id"]
    # Each batch fits alone (600 × 10^12 < 10^15); both together would not.
    batches = [[record(ws, f"{side}-{n}", quantity=str(10**12), retention_days=7)
                for n in range(600)] for side in ("left", "right")]
    accepted: list[int] = []
    start = threading.Barrier(2)

    def send(batch: list[dict[str, Any]]) -> None:
        start.wait()
        accepted.append(runtime.console.ingestion.ingest(batch).accepted)

    threads = [threading.Thread(target=send, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(accepted) == 1_000 and sorted(accepted)[1] == 600
    assert totals(runtime, ws) == {("logs", 7): (MAX_QUANTITY, 0)}
    assert stored_sum(runtime, ws, "logs") == MAX_QUANTITY


# -- defect 9: the free plan's quotas bind at ingestion; free data is kept 7 days ---------


def test_a_free_workspace_quota_binds_collectors_that_skip_admission(
        client: TestClient, runtime: Runtime) -> None:
    register(client)
    owner = console_login(client)
    free = client.post("/console/v1/workspaces", json={"name": "Lab"}, headers=owner).json()
    ws, key = free["workspace_id"], free["ingest_key"]
    send_usage(client, key, [record(ws, "a", quantity="999999"), record(ws, "b", quantity="1")])
    # The quota is used up: 300,000 more logs are refused one by one; traces still count.
    report = send_usage(client, key, [
        *[record(ws, f"more-{n}", quantity="1000") for n in range(300)],
        record(ws, "tr", "trace", quantity="10"),
        record(ws, "sms", "sms", quantity="1"),
    ])
    assert report["accepted"] == 1
    assert codes(report) == {"quota_exceeded": 300, "not_in_plan": 1}
    assert "1000000" in report["rejected"][0]["message"]
    quota = {i["item"]: i for i in client.get(f"/console/v1/workspaces/{ws}/quota",
                                               headers=owner).json()["items"]}
    assert (quota["logs"]["used"], quota["logs"]["exceeded"]) == ("1000000", True)
    assert quota["trace"]["used"] == "10"
    admission = client.post("/console/v1/admission", headers=bearer(key), json={
        "checks": [{"workspace_id": ws, "item": "logs"}]}).json()["answers"][0]
    assert (admission["allowed"], admission["reason"]) == (False, "quota_exceeded")
    assert stored_sum(runtime, ws, "logs") == 1_000_000


def test_a_free_workspace_keeps_records_sent_without_a_retention_for_seven_days(
        client: TestClient, runtime: Runtime) -> None:
    register(client)
    owner = console_login(client)
    free = client.post("/console/v1/workspaces", json={"name": "Lab"}, headers=owner).json()
    ws, key = free["workspace_id"], free["ingest_key"]
    policies = client.get(f"/console/v1/workspaces/{ws}/retention", headers=owner).json()
    assert {p["data_type"]: p["retention_days"] for p in policies["policies"]}["logs"] == 7
    send_usage(client, key, [record(ws, item, item, quantity="1")
                             for item in ("logs", "trace", "rum_pv", "timeseries", "profile")])
    u = t.usage_records
    with runtime.console.engine.connect() as conn:
        tiers = dict(conn.execute(select(u.c.item, u.c.retention_days)
                                  .where(u.c.workspace_id == ws)).all())
    assert tiers == {"logs": 7, "trace": 7, "rum_pv": 7, "timeseries": 7, "profile": 7}


# -- defect 8 (/usage): JSON in UTF-8 only, and a body the document describes --------------


def test_usage_takes_only_json_in_utf8(client: TestClient, runtime: Runtime) -> None:
    ada = register(client)
    ws, key = ada["workspace_id"], ada["ingest_key"]
    body = {"records": [record(ws, "é-1")]}
    text = json.dumps(body, ensure_ascii=False)
    refused = {
        "utf-16": (text.encode("utf-16"), "application/json; charset=utf-16"),
        "latin-1 declared": (text.encode("latin-1"), "application/json; charset=latin-1"),
        "text/plain": (text.encode(), "text/plain"),
        "form": (text.encode(), "application/x-www-form-urlencoded"),
        "none": (text.encode(), None),
        "other parameter": (text.encode(), "application/json; profile=x"),
    }
    for case, (content, content_type) in refused.items():
        headers = bearer(key) if content_type is None else {**bearer(key),
                                                            "content-type": content_type}
        response = client.post("/console/v1/usage", content=content, headers=headers)
        assert response.status_code == 415, (case, response.text)
        assert response.json()["error"]["code"] == "unsupported_media_type", case
    # JSON declared, Latin-1 bytes: not UTF-8, so not JSON.
    latin = client.post("/console/v1/usage", content=text.encode("latin-1"),
                        headers={**bearer(key), "content-type": "application/json"})
    assert (latin.status_code, latin.json()["error"]["code"]) == (400, "malformed_json")
    with runtime.console.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.usage_records)).scalar_one() == 0
    for content_type in ("application/json", "Application/JSON; charset=UTF-8",
                         'application/json;charset="utf-8"'):
        ok = client.post("/console/v1/usage", content=text.encode(),
                         headers={**bearer(key), "content-type": content_type})
        assert ok.status_code == 200, (content_type, ok.text)


def test_the_usage_body_is_a_complete_schema_in_the_document(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    operation = document["paths"]["/console/v1/usage"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert "$ref" not in json.dumps(schema)  # nothing it points at can be missing
    assert {"415", "413", "422", "400"} <= set(operation["responses"])
    records = schema["properties"]["records"]
    assert records["maxItems"] == 50_000 and schema["required"] == ["records"]
    fields = records["items"]["properties"]
    assert fields["id"]["maxLength"] == 128 and fields["id"]["minLength"] == 1
    assert {"type": "integer", "minimum": 0, "maximum": MAX_QUANTITY} in fields["quantity"]["anyOf"]
    attributes = fields["attributes"]["anyOf"][0]
    # Every attribute a counting rule reads is named, with its bounds.
    assert {"spans", "resource", "long_task", "error", "action", "kind", "window_minutes",
            "size_bytes", "storage", "duration_seconds", "node"} <= set(attributes["properties"])
    assert "4096 bytes" in attributes["description"]
    assert set(fields["item"]["enum"]) == {c for c, i in ITEMS.items() if not i.legacy}


def test_quantities_outside_the_ascii_grammar_are_refused(client: TestClient,
                                                          runtime: Runtime) -> None:
    ada = register(client)
    ws, key = ada["workspace_id"], ada["ingest_key"]
    bad = ["١٢٣", "1_000", " 7 ", "+5", "²"]
    report = post(client, key, [record(ws, f"q-{n}", quantity=q) for n, q in enumerate(bad)]
                  + [record(ws, "attr", "trace", quantity=1, attributes={"spans": "١٢"})]).json()
    assert [r["code"] for r in report["rejected"]] == ["invalid_quantity"] * 5 + [
        "invalid_attributes"]
    assert report["accepted"] == 0


def test_yesterday_of_a_free_workspace_upgraded_today_is_kept_at_the_free_tier(
        client: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    """Late records from before an upgrade were free data: 7 days, not the commercial default."""
    ada = register(client)
    ws = ada["workspace_id"]
    with runtime.console.engine.begin() as conn:
        conn.execute(t.workspaces.update().where(t.workspaces.c.id == ws)
                     .values(commercial_since=START - timedelta(hours=2)))
    send_usage(client, ada["ingest_key"], [record(ws, "before", hour=7),
                                           record(ws, "after", hour=9)])
    u = t.usage_records
    with runtime.console.engine.connect() as conn:
        tiers = dict(conn.execute(select(u.c.record_id, u.c.retention_days)).all())
    assert tiers == {"before": 7, "after": 14}


def test_the_migration_fills_the_totals_from_stored_usage_holding_overflowed_days_at_the_limit(
        runtime: Runtime) -> None:
    at = START
    day = START.date()

    def row(ws: str, rid: str, item: str, quantity: int, companion: int = 0) -> dict[str, Any]:
        return {"workspace_id": ws, "record_id": rid, "item": item, "occurred_at": at,
                "day": day, "hour_start": at, "retention_days": 7, "quantity": quantity,
                "companion": companion, "digest": "d", "received_at": at}

    rows = [row("w1", f"l{n}", "logs", MAX_QUANTITY) for n in range(9_300)]  # stored before
    rows += [row("w1", f"t{n}", "timeseries", q) for n, q in enumerate((5, 9, 3))]
    rows += [row("w2", f"s{n}", "trace", 2, 7) for n in range(3)]
    # The database as revision console_0002 left it (without the later tables), holding
    # usage stored then.
    downgrade(runtime.console.engine, MIGRATIONS, "alembic_version_console", "console_0002")
    with runtime.console.engine.begin() as conn:
        conn.execute(insert(t.usage_records), rows)
    runtime.console.migrate()
    assert {k: v for ws in ("w1", "w2") for k, v in totals(runtime, ws).items()} == {
        ("logs", 7): (MAX_QUANTITY, 0), ("timeseries", 7): (9, 0), ("trace", 7): (6, 21)}
