"""Malformed and hostile input (RELIABILITY.md R7) through the public HTTP API.

Bad input gets a 4xx whose body is ``{"error": {"code", "message"}}`` with a
stable code, and stores nothing; no input gets a 5xx (the test client re-raises
any server error, so one fails the test outright).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from accrual.app import Runtime
from accrual.billing.adapters import tables as billing_tables
from accrual.console.adapters import tables as console_tables
from accrual.console.api.metering import MAX_BODY_BYTES
from tests.conftest import START
from tests.helpers import OPERATOR, bearer, billing_login, console_login, register

TIME = "2026-11-26T09:00:00+08:00"  # an hour before START, today on the site


# -- helpers --------------------------------------------------------------------


def record(workspace_id: str, record_id: str = "r-1", /, **fields: Any) -> dict[str, Any]:
    return {"id": record_id, "workspace_id": workspace_id, "item": "logs", "time": TIME,
            "quantity": "1000", "retention_days": 7, **fields}


def usage_rows(runtime: Runtime, workspace_id: str | None = None) -> int:
    usage = console_tables.usage_records
    query = select(func.count()).select_from(usage)
    if workspace_id is not None:
        query = query.where(usage.c.workspace_id == workspace_id)
    with runtime.console.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def stored_quantity(runtime: Runtime, workspace_id: str, record_id: str) -> int:
    usage = console_tables.usage_records
    with runtime.console.engine.connect() as conn:
        return int(conn.execute(select(usage.c.quantity).where(
            usage.c.workspace_id == workspace_id, usage.c.record_id == record_id)).scalar_one())


def row_counts(runtime: Runtime) -> dict[str, int]:
    """Rows in every table of both databases: what "stores nothing" is checked against."""
    counts = {}
    for engine, metadata in ((runtime.console.engine, console_tables.metadata),
                             (runtime.billing.engine, billing_tables.metadata)):
        with engine.connect() as conn:
            for table in metadata.sorted_tables:
                counts[table.name] = int(conn.execute(
                    select(func.count()).select_from(table)).scalar_one())
    return counts


def post_usage(client: TestClient, token: str, body: Any = None, *,
               raw: bytes | None = None) -> httpx.Response:
    """POST /usage with exactly these bytes (``raw``), or ``body`` as JSON."""
    content = raw if raw is not None else json.dumps(body).encode()
    return client.post("/console/v1/usage", content=content,
                       headers={**bearer(token), "content-type": "application/json"})


def with_token(record_json: dict[str, Any], field: str, token: str) -> bytes:
    """A one-record body whose ``field`` is the raw JSON text ``token``."""
    placeholder = "\x01placeholder\x01"
    text = json.dumps({"records": [{**record_json, field: placeholder}]})
    return text.replace(json.dumps(placeholder), token).encode()


def error_code(response: httpx.Response, status: int, case: str = "") -> str:
    """The envelope's code, once the status and the envelope's shape are checked."""
    assert response.status_code == status, f"{case}: {response.status_code} {response.text}"
    error = response.json()["error"]
    assert isinstance(error["code"], str) and error["code"], case
    assert isinstance(error["message"], str) and error["message"], case
    return str(error["code"])


def rejected_codes(response: httpx.Response) -> list[tuple[int, str]]:
    return [(r["index"], r["code"]) for r in response.json()["rejected"]]


@pytest.fixture
def tenant(client: TestClient) -> dict[str, Any]:
    return register(client)


# -- usage: records judged one by one ------------------------------------------------

FUTURE = (START + timedelta(minutes=5, seconds=1)).isoformat()
TOO_OLD = (START - timedelta(days=35, seconds=1)).isoformat()

BAD_RECORDS: dict[str, tuple[dict[str, Any], str]] = {
    "unknown item": ({"item": "bitcoin"}, "unknown_item"),
    "retired item": ({"item": "datakit", "retention_days": None}, "unknown_item"),
    "item not a string": ({"item": 7}, "unknown_item"),
    "negative quantity": ({"quantity": "-1"}, "invalid_quantity"),
    "negative integer quantity": ({"quantity": -5}, "invalid_quantity"),
    "non-numeric quantity": ({"quantity": "lots"}, "invalid_quantity"),
    "empty quantity": ({"quantity": ""}, "invalid_quantity"),
    "boolean quantity": ({"quantity": True}, "invalid_quantity"),
    "list quantity": ({"quantity": [1]}, "invalid_quantity"),
    "missing quantity": ({"quantity": None}, "invalid_quantity"),
    "fractional quantity": ({"quantity": "1.5"}, "invalid_quantity"),
    "NaN as a string": ({"quantity": "NaN"}, "invalid_quantity"),
    "Infinity as a string": ({"quantity": "-Infinity"}, "invalid_quantity"),
    "1e309 as a string": ({"quantity": "1e309"}, "invalid_quantity"),
    "1E+999999 as a string": ({"quantity": "1E+999999"}, "invalid_quantity"),
    "exponent beyond Decimal as a string": ({"quantity": "1E+99999999999999999999"},
                                            "invalid_quantity"),
    "40-digit string quantity": ({"quantity": "1" * 40}, "invalid_quantity"),
    "40-digit integer quantity": ({"quantity": int("9" * 40)}, "invalid_quantity"),
    "quantity over the bound": ({"quantity": str(10**15 + 1)}, "invalid_quantity"),
    "unknown workspace": ({"workspace_id": "0" * 32}, "unknown_workspace"),
    "workspace id not a string": ({"workspace_id": 12}, "unknown_workspace"),
    "workspace id an array": ({"workspace_id": ["a"]}, "unknown_workspace"),
    "workspace id an object": ({"workspace_id": {"id": "a"}}, "unknown_workspace"),
    "time over 5 minutes ahead": ({"time": FUTURE}, "time_in_future"),
    "time older than 35 days": ({"time": TOO_OLD}, "too_late"),
    "naive time": ({"time": "2026-11-26T09:00:00"}, "invalid_time"),
    "time not a timestamp": ({"time": "yesterday"}, "invalid_time"),
    "time a number": ({"time": 1795000000}, "invalid_time"),
    "time at the end of the calendar": ({"time": "9999-12-31T23:59:59-23:59"}, "time_in_future"),
    "time at the start of the calendar": ({"time": "0001-01-01T00:00:00+23:59"}, "too_late"),
    "retention the item does not offer": ({"retention_days": 5}, "invalid_retention"),
    "retention as a string": ({"retention_days": "7"}, "invalid_retention"),
    "retention on an item without tiers": ({"item": "trigger", "retention_days": 7},
                                           "invalid_retention"),
    "empty id": ({"id": ""}, "invalid_id"),
    "id too long": ({"id": "x" * 129}, "invalid_id"),
    "id not a string": ({"id": 1}, "invalid_id"),
    "unknown field": ({"price": "0"}, "invalid_record"),
    "attributes not an object": ({"attributes": [1, 2]}, "invalid_attributes"),
    "attributes too large": ({"attributes": {"blob": "x" * 5000}}, "invalid_attributes"),
}


# (Cases are looped inside one test: every registration hashes two passwords.)
def test_a_bad_record_is_rejected_with_its_code_and_not_stored(
        client: TestClient, runtime: Runtime, tenant: dict[str, Any]) -> None:
    before = row_counts(runtime)
    for case, (fields, code) in BAD_RECORDS.items():
        response = post_usage(client, tenant["ingest_key"],
                              {"records": [record(tenant["workspace_id"], **fields)]})
        assert error_code(response, 422, case) == "all_records_rejected", case
        body = response.json()
        assert (body["accepted"], body["duplicates"]) == (0, 0), case
        assert rejected_codes(response) == [(0, code)], case
        assert body["rejected"][0]["message"], case
        assert row_counts(runtime) == before, case
    assert usage_rows(runtime) == 0


# Number tokens that are valid JSON but no acceptable quantity: the record is rejected.
RAW_NUMBERS = {
    "40-digit integer": "1" * 40,
    "fraction": "1.5",
    "negative": "-3",
}
# Past the bounds of any JSON number a body may hold (infra.http.JSON_NUMBER_MAX_*): the
# body is refused as it is parsed, before any field could turn it into an int.
UNPARSED_NUMBERS = {
    "1e309": "1e309",
    "1E+999999": "1E+999999",
    "-1e309": "-1e309",
    "tiny exponent": "1e-999999",
    "101-digit integer": "1" * 101,
}


def test_a_quantity_number_out_of_bounds_is_rejected(client: TestClient, runtime: Runtime,
                                                     tenant: dict[str, Any]) -> None:
    for case, token in RAW_NUMBERS.items():
        raw = with_token(record(tenant["workspace_id"]), "quantity", token)
        response = post_usage(client, tenant["ingest_key"], raw=raw)
        assert error_code(response, 422, case) == "all_records_rejected", case
        assert rejected_codes(response) == [(0, "invalid_quantity")], case
    for case, token in UNPARSED_NUMBERS.items():
        raw = with_token(record(tenant["workspace_id"]), "quantity", token)
        response = post_usage(client, tenant["ingest_key"], raw=raw)
        assert error_code(response, 400, case) == "malformed_json", case
    assert usage_rows(runtime) == 0


def test_a_whole_json_number_quantity_is_accepted(client: TestClient, runtime: Runtime,
                                                  tenant: dict[str, Any]) -> None:
    # The counterpart of the refusals above: an exact whole number is fine as a number.
    for n, token in enumerate(("1000", "1000.0", "1E+3")):
        raw = with_token(record(tenant["workspace_id"], f"n-{n}"), "quantity", token)
        response = post_usage(client, tenant["ingest_key"], raw=raw)
        assert response.status_code == 200, response.text
        assert stored_quantity(runtime, tenant["workspace_id"], f"n-{n}") == 1000


def test_the_edges_of_the_time_window_are_accepted(client: TestClient, runtime: Runtime,
                                                   tenant: dict[str, Any]) -> None:
    ws = tenant["workspace_id"]
    edges = [record(ws, "ahead", time=(START + timedelta(minutes=5)).isoformat()),
             record(ws, "old", time=(START - timedelta(days=35)).isoformat()),
             record(ws, "utc", time="2026-11-26T01:00:00Z")]
    response = post_usage(client, tenant["ingest_key"], {"records": edges})
    assert response.json() == {"accepted": 3, "duplicates": 0, "rejected": []}, response.text
    assert usage_rows(runtime, ws) == 3


def test_a_mixed_batch_stores_only_the_good_records(client: TestClient, runtime: Runtime,
                                                    tenant: dict[str, Any]) -> None:
    ws = tenant["workspace_id"]
    records = [record(ws, "good-1"), record(ws, "bad-1", item="bitcoin"),
               record(ws, "good-2", quantity=5), record(ws, "bad-2", quantity="-1"),
               "not a record", record(ws, "bad-3", time=FUTURE)]
    response = post_usage(client, tenant["ingest_key"], {"records": records})
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 2 and response.json()["duplicates"] == 0
    assert rejected_codes(response) == [(1, "unknown_item"), (3, "invalid_quantity"),
                                        (4, "invalid_record"), (5, "time_in_future")]
    assert usage_rows(runtime, ws) == 2
    assert stored_quantity(runtime, ws, "good-2") == 5


def test_another_tenants_workspace_is_refused_to_an_ingest_key(
        client: TestClient, runtime: Runtime, tenant: dict[str, Any]) -> None:
    other = register(client, "bob")
    response = post_usage(client, tenant["ingest_key"],
                          {"records": [record(other["workspace_id"])]})
    assert error_code(response, 422) == "all_records_rejected"
    assert rejected_codes(response) == [(0, "unknown_workspace")]
    assert usage_rows(runtime, other["workspace_id"]) == 0
    assert usage_rows(runtime) == 0


# -- usage: bodies refused as a whole ---------------------------------------------------


def _raw_bodies(ws: str) -> dict[str, bytes]:
    good = record(ws)
    return {
        "NaN token": with_token(good, "quantity", "NaN"),
        "Infinity token": with_token(good, "quantity", "Infinity"),
        "-Infinity token": with_token(good, "quantity", "-Infinity"),
        "exponent beyond Decimal": with_token(good, "quantity", "1E+99999999999999999999"),
        "5000-digit integer": with_token(good, "quantity", "9" * 5000),
        "duplicate key in a record": with_token(good, "id", '"r-1", "id": "r-2"'),
        "duplicate quantity key": with_token(good, "quantity", '"1", "quantity": "2"'),
        "duplicate records key": b'{"records": [], "records": []}',
        "truncated": b'{"records": [',
        "trailing garbage": json.dumps({"records": [good]}).encode() + b" x",
        "single quotes": b"{'records': []}",
        "empty body": b"",
        "not JSON at all": b"records=1",
        "bad UTF-8": b'{"records": [{"id": "\xff\xfe"}]}',
        "UTF-16": json.dumps({"records": [good]}).encode("utf-16"),
        "NUL in an id": with_token(good, "id", '"a\\u0000b"'),
        "NUL in a workspace id": with_token(good, "workspace_id", f'"{ws}\\u0000"'),
        "lone surrogate in an id": with_token(good, "id", '"\\ud800"'),
        "lone surrogate in a key": b'{"records": [{"\\udc00": 1}]}',
        "deep nesting": b'{"records": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    }


def test_an_unreadable_body_is_400_malformed_json(client: TestClient, runtime: Runtime,
                                                  tenant: dict[str, Any]) -> None:
    for case, raw in _raw_bodies(tenant["workspace_id"]).items():
        response = post_usage(client, tenant["ingest_key"], raw=raw)
        assert error_code(response, 400, case) == "malformed_json", case
    assert usage_rows(runtime) == 0


def test_a_surrogate_pair_is_text_not_a_lone_surrogate(client: TestClient, runtime: Runtime,
                                                       tenant: dict[str, Any]) -> None:
    # JSON encoders escape non-BMP characters as a pair; that must stay acceptable.
    raw = with_token(record(tenant["workspace_id"]), "id", '"\\ud83d\\ude00"')
    response = post_usage(client, tenant["ingest_key"], raw=raw)
    assert response.status_code == 200, response.text
    assert stored_quantity(runtime, tenant["workspace_id"], "\U0001f600") == 1000


BAD_SHAPES = {
    "array": [],
    "string": "records",
    "number": 42,
    "null": None,
    "object without records": {},
    "records an object": {"records": {}},
    "records a string": {"records": "r-1"},
    "records null": {"records": None},
}


def test_a_body_without_a_records_array_is_422(client: TestClient, runtime: Runtime,
                                               tenant: dict[str, Any]) -> None:
    for case, body in BAD_SHAPES.items():
        response = post_usage(client, tenant["ingest_key"], body)
        assert error_code(response, 422, case) == "invalid_request", case
    assert usage_rows(runtime) == 0


def test_an_empty_batch_is_answered_and_stores_nothing(client: TestClient, runtime: Runtime,
                                                       tenant: dict[str, Any]) -> None:
    response = post_usage(client, tenant["ingest_key"], {"records": []})
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 0, "duplicates": 0, "rejected": []}
    assert usage_rows(runtime) == 0


def test_a_batch_over_50000_records_is_413_and_stores_nothing(
        client: TestClient, runtime: Runtime, tenant: dict[str, Any]) -> None:
    good = record(tenant["workspace_id"])
    records = [{**good, "id": f"r-{n}"} for n in range(50_001)]
    response = post_usage(client, tenant["ingest_key"], {"records": records})
    assert error_code(response, 413) == "batch_too_large"
    assert usage_rows(runtime) == 0
    # 50,000 is still one batch: judged record by record.
    response = post_usage(client, tenant["ingest_key"], {"records": [{}] * 50_000})
    assert error_code(response, 422) == "all_records_rejected"
    assert len(response.json()["rejected"]) == 50_000


def test_a_body_over_the_byte_limit_is_413(client: TestClient, runtime: Runtime,
                                           tenant: dict[str, Any]) -> None:
    head = b'{"records": [], "pad": "'
    raw = head + b"x" * (MAX_BODY_BYTES - len(head)) + b'"}'
    response = post_usage(client, tenant["ingest_key"], raw=raw)
    assert error_code(response, 413) == "payload_too_large"
    assert usage_rows(runtime) == 0


def test_usage_without_a_valid_key_is_401(client: TestClient, runtime: Runtime,
                                          tenant: dict[str, Any]) -> None:
    for case, headers in {
        "no token": {},
        "wrong token": {"Authorization": "Bearer ik_not-a-key"},
        "empty token": {"Authorization": "Bearer "},
        "basic auth": {"Authorization": "Basic YWRhOnNlY3JldA=="},
        "no scheme": {"Authorization": tenant["ingest_key"]},
    }.items():
        response = client.post("/console/v1/usage", headers=headers,
                               json={"records": [record(tenant["workspace_id"])]})
        assert error_code(response, 401, case) == "unauthorized", case
    assert usage_rows(runtime) == 0


# -- usage: one record per (workspace, id) -------------------------------------------


def test_the_same_id_twice_in_one_batch(client: TestClient, runtime: Runtime,
                                        tenant: dict[str, Any]) -> None:
    ws = tenant["workspace_id"]
    same = post_usage(client, tenant["ingest_key"], {"records": [record(ws), record(ws)]})
    assert same.status_code == 200, same.text
    assert same.json() == {"accepted": 1, "duplicates": 1, "rejected": []}

    other = [record(ws, "r-2", quantity="1000"), record(ws, "r-2", quantity="2000")]
    conflicting = post_usage(client, tenant["ingest_key"], {"records": other})
    assert conflicting.status_code == 200, conflicting.text
    assert conflicting.json()["accepted"] == 1 and conflicting.json()["duplicates"] == 0
    assert rejected_codes(conflicting) == [(1, "conflict")]
    assert usage_rows(runtime, ws) == 2
    assert stored_quantity(runtime, ws, "r-2") == 1000


CHANGES = {
    "quantity": {"quantity": "1001"},
    "time": {"time": "2026-11-26T09:30:00+08:00"},
    "item": {"item": "trace", "retention_days": 7},
    "retention": {"retention_days": 14},
    "attributes": {"attributes": {"host": "b"}},
}


def test_the_same_id_across_batches(client: TestClient, runtime: Runtime,
                                    tenant: dict[str, Any]) -> None:
    ws, key = tenant["workspace_id"], tenant["ingest_key"]
    for case, change in CHANGES.items():
        first = record(ws, f"{case}-1", attributes={"host": "a"})
        assert post_usage(client, key, {"records": [first]}).json()["accepted"] == 1, case

        again = post_usage(client, key, {"records": [first]})
        assert again.status_code == 200, f"{case}: {again.text}"
        assert again.json() == {"accepted": 0, "duplicates": 1, "rejected": []}, case

        changed = post_usage(client, key, {"records": [{**first, **change}]})
        assert error_code(changed, 422, case) == "all_records_rejected", case
        assert rejected_codes(changed) == [(0, "conflict")], case

        # A known record, a conflicting one and a new one together: the batch is answered.
        batch = [first, {**first, **change}, record(ws, f"{case}-2")]
        mixed = post_usage(client, key, {"records": batch})
        assert mixed.status_code == 200, f"{case}: {mixed.text}"
        assert (mixed.json()["accepted"], mixed.json()["duplicates"]) == (1, 1), case
        assert rejected_codes(mixed) == [(1, "conflict")], case
        assert stored_quantity(runtime, ws, f"{case}-1") == 1000, case
    assert usage_rows(runtime, ws) == 2 * len(CHANGES)


def test_the_same_id_in_two_workspaces_is_two_records(client: TestClient, runtime: Runtime,
                                                      tenant: dict[str, Any]) -> None:
    other = register(client, "bob")
    for reg in (tenant, other):
        response = post_usage(client, reg["ingest_key"], {"records": [record(reg["workspace_id"])]})
        assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    assert usage_rows(runtime) == 2


# -- fuzz: random JSON anywhere in a usage request --------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12)
FIELDS = st.sampled_from(["id", "workspace_id", "item", "time", "quantity", "retention_days",
                          "attributes", "extra"])
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def assert_clean_answer(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    body = response.json()
    if response.status_code == 200:
        assert set(body) == {"accepted", "duplicates", "rejected"}
        assert all(isinstance(r["code"], str) and r["code"] for r in body["rejected"])
    else:
        assert 400 <= response.status_code < 500, response.text
        assert isinstance(body["error"]["code"], str) and body["error"]["code"]
        assert isinstance(body["error"]["message"], str)


@FUZZ
@given(body=JSON_VALUES)
def test_fuzz_any_json_body(client: TestClient, tenant: dict[str, Any], body: Any) -> None:
    assert_clean_answer(post_usage(client, tenant["ingest_key"], body))


@FUZZ
@given(records=st.lists(JSON_VALUES, max_size=5))
def test_fuzz_any_json_records(client: TestClient, tenant: dict[str, Any],
                               records: list[Any]) -> None:
    assert_clean_answer(post_usage(client, tenant["ingest_key"], {"records": records}))


@FUZZ
@given(fields=st.dictionaries(FIELDS, JSON_VALUES, min_size=1, max_size=3),
       record_id=st.text(min_size=1, max_size=8))
def test_fuzz_any_json_in_record_fields(client: TestClient, runtime: Runtime,
                                        tenant: dict[str, Any], fields: dict[str, Any],
                                        record_id: str) -> None:
    sent = {**record(tenant["workspace_id"], record_id), **fields}
    before = usage_rows(runtime)
    response = post_usage(client, tenant["ingest_key"], {"records": [sent]})
    assert_clean_answer(response)
    accepted = response.json().get("accepted", 0) if response.status_code == 200 else 0
    assert usage_rows(runtime) == before + accepted


# -- registration -------------------------------------------------------------------


def registration(name: str = "eve", **overrides: Any) -> dict[str, Any]:
    return {"email": f"{name}@example.com", "password": "correct horse battery",
            "username": name, "workspace_name": f"{name}'s team", "language": "en", **overrides}


def accounts_on_both_sides(runtime: Runtime) -> tuple[int, int]:
    counts = row_counts(runtime)
    return (counts[console_tables.accounts.name], counts[billing_tables.accounts.name])


TAKEN = {
    "email in another case": ({"email": "ADA@Example.COM"}, "email_taken"),
    "email padded": ({"email": "  ada@example.com "}, "email_taken"),
    "username": ({"username": "ada"}, "username_taken"),
    "username in another case": ({"username": "ADA"}, "username_taken"),
}


def test_a_taken_email_or_username_is_409_and_creates_nothing(
        client: TestClient, runtime: Runtime, tenant: dict[str, Any]) -> None:
    before = row_counts(runtime)
    for case, (overrides, code) in TAKEN.items():
        response = client.post("/console/v1/registrations", json=registration(**overrides))
        assert error_code(response, 409, case) == code, case
        assert row_counts(runtime) == before, case
    assert accounts_on_both_sides(runtime) == (1, 1)


INVALID_REGISTRATIONS: dict[str, tuple[dict[str, Any], str]] = {
    "email without @": ({"email": "eve.example.com"}, "invalid_email"),
    "email without domain dot": ({"email": "eve@localhost"}, "invalid_email"),
    "email with a space": ({"email": "e ve@example.com"}, "invalid_email"),
    "empty email": ({"email": ""}, "invalid_email"),
    "username too short": ({"username": "ev"}, "invalid_username"),
    "username starting with a dash": ({"username": "-eve"}, "invalid_username"),
    "username with a space": ({"username": "eve adams"}, "invalid_username"),
    "username not ASCII": ({"username": "ёва"}, "invalid_username"),
    "password too short": ({"password": "short"}, "invalid_password"),
    "blank workspace name": ({"workspace_name": "   "}, "invalid_workspace_name"),
    "unknown language": ({"language": "fr"}, "invalid_language"),
    "email not a string": ({"email": 5}, "invalid_request"),
    "password too long": ({"password": "x" * 257}, "invalid_request"),
    "NUL in the email": ({"email": "e\x00ve@example.com"}, "invalid_request"),
    "NUL in the workspace name": ({"workspace_name": "a\x00b"}, "invalid_request"),
    "unknown field": ({"plan": "enterprise"}, "invalid_request"),
    "missing username": ({"username": None}, "invalid_request"),
}


def test_an_invalid_registration_is_422_and_creates_nothing(
        client: TestClient, runtime: Runtime) -> None:
    before = row_counts(runtime)
    for case, (overrides, code) in INVALID_REGISTRATIONS.items():
        body = {k: v for k, v in registration(**overrides).items() if v is not None}
        response = client.post("/console/v1/registrations", json=body)
        assert error_code(response, 422, case) == code, case
        assert row_counts(runtime) == before, case
    assert accounts_on_both_sides(runtime) == (0, 0)
    # The refusal left nothing in the way of the corrected request.
    assert client.post("/console/v1/registrations", json=registration()).status_code == 201
    assert accounts_on_both_sides(runtime) == (1, 1)


def test_an_unreadable_registration_is_400_malformed_json(client: TestClient,
                                                          runtime: Runtime) -> None:
    for case, raw in {"truncated": b'{"email": "eve@example.com", ',
                      "bad UTF-8": b'{"email": "\xff"}', "unclosed array": b"["}.items():
        response = client.post("/console/v1/registrations", content=raw,
                               headers={"content-type": "application/json"})
        assert error_code(response, 400, case) == "malformed_json", case
    assert accounts_on_both_sides(runtime) == (0, 0)


# -- recharges ---------------------------------------------------------------------


def recharge(client: TestClient, account_id: str, amount: Any, reference: str = "transfer-1",
             headers: dict[str, str] = OPERATOR) -> httpx.Response:
    return client.post(f"/billing/v1/admin/accounts/{account_id}/recharges",
                       json={"amount": amount, "reference": reference}, headers=headers)


def cash(client: TestClient, account_id: str) -> str:
    overview = client.get(f"/billing/v1/accounts/{account_id}/overview", headers=OPERATOR)
    assert overview.status_code == 200, overview.text
    return str(overview.json()["cash"])


INVALID_AMOUNTS: list[tuple[Any, str]] = [
    (10.5, "invalid_request"),
    (10.0, "invalid_request"),
    (True, "invalid_request"),
    (None, "invalid_request"),
    (["10"], "invalid_request"),
    ("0", "invalid_amount"),
    ("0.00", "invalid_amount"),
    (0, "invalid_amount"),
    ("-1", "invalid_amount"),
    (-1, "invalid_amount"),
    ("1.001", "invalid_amount"),
    ("abc", "invalid_amount"),
    ("", "invalid_amount"),
    ("NaN", "invalid_amount"),
    ("Infinity", "invalid_amount"),
    ("1e309", "invalid_amount"),
    ("1E+999999", "invalid_amount"),
    ("1" * 40, "invalid_amount"),
    (int("1" * 40), "invalid_amount"),
    ("1234567890123456789012345678.91", "invalid_amount"),  # 30 digits, 2 places
    ("100000000000000000000", "invalid_amount"),  # beyond any ledger balance
    ("0x10", "invalid_amount"),
    ("1,00", "invalid_amount"),
]


def test_an_invalid_amount_is_422_and_credits_nothing(
        client: TestClient, runtime: Runtime, tenant: dict[str, Any]) -> None:
    account = tenant["billing_account_id"]
    before = row_counts(runtime)
    for amount, code in INVALID_AMOUNTS:
        response = recharge(client, account, amount)
        assert error_code(response, 422, repr(amount)) == code, repr(amount)
        assert row_counts(runtime) == before, repr(amount)
    assert cash(client, account) == "0.00"


def test_an_invalid_reference_is_422(client: TestClient, runtime: Runtime,
                                     tenant: dict[str, Any]) -> None:
    before = row_counts(runtime)
    references: list[tuple[Any, str]] = [("", "invalid_reference"), ("x" * 129, "invalid_request"),
                                         ("a\x00b", "invalid_request"), (42, "invalid_request")]
    for reference, code in references:
        response = recharge(client, tenant["billing_account_id"], "10", reference)
        assert error_code(response, 422, repr(reference)) == code, repr(reference)
    assert row_counts(runtime) == before


def test_a_reference_credits_once(client: TestClient, runtime: Runtime,
                                  tenant: dict[str, Any]) -> None:
    account = tenant["billing_account_id"]
    first = recharge(client, account, "10.00")
    assert first.status_code == 200, first.text
    assert first.json()["created"] is True and cash(client, account) == "10.00"

    # The same transfer again, also written another way: credited once.
    for amount in ("10.00", "10", 10, "10.0"):
        again = recharge(client, account, amount)
        assert again.status_code == 200, again.text
        assert again.json()["created"] is False
        assert cash(client, account) == "10.00"

    before = row_counts(runtime)
    conflicting = recharge(client, account, "20.00")
    assert error_code(conflicting, 409) == "idempotency_conflict"
    assert cash(client, account) == "10.00"
    assert row_counts(runtime) == before


def test_a_recharge_for_an_unknown_account_is_404(client: TestClient, runtime: Runtime,
                                                  tenant: dict[str, Any]) -> None:
    before = row_counts(runtime)
    assert error_code(recharge(client, "0" * 32, "10"), 404) == "account_not_found"
    assert error_code(recharge(client, "nobody", "10"), 404) == "account_not_found"
    assert row_counts(runtime) == before


def test_a_recharge_needs_the_operator(client: TestClient, runtime: Runtime,
                                       tenant: dict[str, Any]) -> None:
    account = tenant["billing_account_id"]
    own_session = billing_login(client)
    for headers in ({}, bearer("garbage"), own_session):
        assert error_code(recharge(client, account, "10", headers=headers), 401) == "unauthorized"
    assert cash(client, account) == "0.00"


# -- close-day ---------------------------------------------------------------------


def close(client: TestClient, body: Any, headers: dict[str, str] = OPERATOR) -> httpx.Response:
    return client.post("/console/v1/admin/close-day", json=body, headers=headers)


@pytest.mark.parametrize("day,code", [
    ("2026-11-26", "day_not_over"),  # today on the site
    ("2026-11-27", "day_not_over"),
    ("9999-12-31", "day_not_over"),
    ("2026-10-21", "day_beyond_horizon"),  # 36 days ago
    ("0001-01-01", "day_beyond_horizon"),
])
def test_close_day_refuses_days_outside_the_window(client: TestClient, runtime: Runtime,
                                                   day: str, code: str) -> None:
    before = row_counts(runtime)
    assert error_code(close(client, {"date": day}), 422) == code
    assert row_counts(runtime) == before


@pytest.mark.parametrize("body", [
    {"date": "2026-13-01"},
    {"date": "2026-02-30"},
    {"date": "yesterday"},
    {"date": "2026-11-25T00:00:00+08:00x"},
    {"date": None},
    {"date": 0},  # a midnight Unix timestamp
    {"date": 1795392000},  # 2026-11-25T00:00:00Z as a timestamp
    {"date": ["2026-11-25"]},
    {},
    {"date": "2026-11-25", "force": True},
    [],
])
def test_close_day_refuses_a_bad_date(client: TestClient, runtime: Runtime, body: Any) -> None:
    before = row_counts(runtime)
    assert error_code(close(client, body), 422) == "invalid_request"
    assert row_counts(runtime) == before


def test_close_day_needs_the_operator(client: TestClient, runtime: Runtime,
                                      tenant: dict[str, Any]) -> None:
    before = row_counts(runtime)
    for headers in ({}, bearer("garbage"), bearer(tenant["ingest_key"])):
        assert error_code(close(client, {"date": "2026-11-25"}, headers), 401) == "unauthorized"
    assert row_counts(runtime) == before
    # The edges of the window do close.
    assert close(client, {"date": "2026-11-25"}).status_code == 200
    assert close(client, {"date": "2026-10-22"}).status_code == 200


# -- other endpoints ---------------------------------------------------------------


def test_billing_details_take_any_valid_range_without_5xx(client: TestClient,
                                                          tenant: dict[str, Any]) -> None:
    session = console_login(client)
    path = f"/console/v1/workspaces/{tenant['workspace_id']}/billing-details"
    for params in ({"to": "0001-01-01"}, {"from": "9999-12-31", "to": "9999-12-31"},
                   {"to": "0001-01-31"}):
        response = client.get(path, params=params, headers=session)
        assert response.status_code == 200, response.text
    assert error_code(client.get(path, params={"from": "2026-11-26", "to": "2026-11-01"},
                                 headers=session), 422) == "invalid_range"
    assert error_code(client.get(path, params={"from": "2025-01-01", "to": "2026-11-26"},
                                 headers=session), 422) == "invalid_range"
    assert error_code(client.get(path, params={"to": "someday"}, headers=session),
                      422) == "invalid_request"


def test_nul_in_a_path_is_422(client: TestClient, tenant: dict[str, Any]) -> None:
    assert error_code(client.get("/console/v1/workspaces/a%00b", headers=console_login(client)),
                      422) == "invalid_request"
    assert error_code(client.get("/billing/v1/accounts/a%00b/overview", headers=OPERATOR),
                      422) == "invalid_request"


def test_nul_in_a_registration_key_is_refused_and_stores_nothing(client: TestClient,
                                                                 runtime: Runtime) -> None:
    # PostgreSQL cannot store NUL: the key used to reach the database and answer 500.
    before = row_counts(runtime)
    body = {"registration_key": "k" * 15 + "\x00", "username": "nulkey", "password": "pw-123456",
            "email": "nul@example.com", "language": "en"}
    response = client.post("/billing/v1/internal/registrations", json=body, headers=OPERATOR)
    assert error_code(response, 422, "body") == "invalid_request"
    confirm = {"workspace_id": "w1", "site": "cn1", "workspace_name": "W",
               "owner_email": "nul@example.com", "language": "en", "day": "2026-11-26"}
    for method, path, payload in (("POST", "/billing/v1/internal/registrations/a%00b/confirm", confirm),
                                  ("DELETE", "/billing/v1/internal/registrations/a%00b", None)):
        answer = client.request(method, path, json=payload, headers=OPERATOR)
        assert error_code(answer, 422, path) == "invalid_request", path
    assert row_counts(runtime) == before
