"""HTTP plumbing against hostile clients: body limits, strict JSON, media types, 405 Allow."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from accrual.app import Runtime
from accrual.console.api.metering import MAX_BODY_BYTES
from accrual.infra.http import JSON_BODY_LIMIT
from tests.helpers import OPERATOR, bearer, billing_login, console_login, register

CHUNK = 64 * 1024


def call_asgi(runtime: Runtime, method: str, path: str, headers: list[tuple[bytes, bytes]],
              chunks: int, chunk: bytes = b"x" * CHUNK) -> tuple[int, dict[str, Any], int]:
    """Drive the app directly with a body of ``chunks`` chunks; returns the status, the
    JSON answer and how many chunks the app pulled through ``receive``."""
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        if pulled < chunks:
            pulled += 1
            return {"type": "http.request", "body": chunk, "more_body": pulled < chunks}
        await asyncio.sleep(3600)  # a client that never finishes: the app must not wait
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "root_path": "", "query_string": b"", "headers": headers,
             "client": ("127.0.0.1", 5000), "server": ("testserver", 80)}
    asyncio.run(asyncio.wait_for(runtime.app(scope, receive, send), timeout=60))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body), pulled


BIG = 200 * 1024 * 1024 // CHUNK  # 200 MB in chunks


@pytest.mark.parametrize("path", ["/console/v1/registrations", "/billing/v1/sessions"])
def test_a_declared_length_over_the_limit_is_413_before_anything_is_read(
        runtime: Runtime, path: str) -> None:
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(BIG * CHUNK).encode())]
    status, body, pulled = call_asgi(runtime, "POST", path, headers, BIG)
    assert (status, body["error"]["code"]) == (413, "payload_too_large"), body
    assert pulled == 0


@pytest.mark.parametrize("path", ["/console/v1/registrations", "/billing/v1/sessions"])
def test_a_streamed_body_without_length_stops_at_the_limit(runtime: Runtime, path: str) -> None:
    status, body, pulled = call_asgi(runtime, "POST", path,
                                     [(b"content-type", b"application/json")], BIG)
    assert (status, body["error"]["code"]) == (413, "payload_too_large"), body
    # Reading stopped at the first chunk past the limit, not at the end of 200 MB.
    assert pulled == JSON_BODY_LIMIT // CHUNK + 1


def test_a_body_just_under_the_limit_is_read_and_judged(runtime: Runtime) -> None:
    chunks = JSON_BODY_LIMIT // CHUNK
    status, body, pulled = call_asgi(runtime, "POST", "/billing/v1/sessions",
                                     [(b"content-type", b"application/json")], chunks)
    assert pulled == chunks
    assert (status, body["error"]["code"]) == (400, "malformed_json"), body


def test_usage_keeps_its_own_larger_limit(client: TestClient, runtime: Runtime) -> None:
    key = register(client)["ingest_key"]
    raw = b'{"records": [], "pad": "' + b"x" * (2 * JSON_BODY_LIMIT) + b'"}'
    response = client.post("/console/v1/usage", content=raw, headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    over = b"x" * (MAX_BODY_BYTES + 1)
    status, body, _ = call_asgi(runtime, "POST", "/console/v1/usage", [
        (b"authorization", f"Bearer {key}".encode()), (b"content-type", b"application/json"),
        (b"content-length", str(len(over)).encode())], 1, over)
    assert (status, body["error"]["code"]) == (413, "payload_too_large")


# -- strict JSON on every endpoint ----------------------------------------------------

def registration_raw(**replace: str) -> bytes:
    fields = {"email": '"eve@example.com"', "password": '"correct horse battery"',
              "username": '"eve"', "workspace_name": '"Eve\'s team"', "language": '"en"',
              **replace}
    return ("{" + ", ".join(f'"{k}": {v}' for k, v in fields.items()) + "}").encode()


def accounts_count(client: TestClient) -> int:
    response = client.post("/billing/v1/sessions",
                           json={"username": "eve", "password": "correct horse battery"})
    return 1 if response.status_code == 200 else 0


@pytest.mark.parametrize(("raw", "problem"), [
    (registration_raw(email='"eve@example.com", "email": "mallory@example.com"'),
     "duplicate key 'email'"),
    (registration_raw(language="NaN"), "NaN is not a number"),
    (registration_raw(language="Infinity"), "Infinity is not a number"),
    (registration_raw(language="-Infinity"), "-Infinity is not a number"),
])
def test_duplicate_keys_and_constants_in_a_registration_are_400(
        client: TestClient, raw: bytes, problem: str) -> None:
    response = client.post("/console/v1/registrations", content=raw,
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "malformed_json" and problem in error["message"], error
    assert accounts_count(client) == 0
    ok = client.post("/console/v1/registrations", content=registration_raw(),
                     headers={"Content-Type": "application/json"})
    assert ok.status_code == 201, ok.text


def test_a_duplicate_amount_in_a_recharge_is_400_and_credits_nothing(client: TestClient) -> None:
    reg = register(client)
    account = reg["billing_account_id"]
    session = billing_login(client)
    raw = b'{"amount": "1.00", "amount": "500.00", "reference": "t-1"}'
    response = client.post(f"/billing/v1/admin/accounts/{account}/recharges", content=raw,
                           headers={**OPERATOR, "Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "malformed_json"
    assert "duplicate key 'amount'" in response.json()["error"]["message"]
    overview = client.get(f"/billing/v1/accounts/{account}/overview", headers=session).json()
    assert overview["cash"] == "0.00"


def test_a_duplicate_key_in_a_login_is_400(client: TestClient) -> None:
    register(client)
    raw = b'{"username": "mallory", "username": "ada", "password": "correct horse battery"}'
    response = client.post("/billing/v1/sessions", content=raw,
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "malformed_json"


@pytest.mark.parametrize("content_type", [
    None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"])
def test_a_json_endpoint_refuses_another_media_type_with_415(
        client: TestClient, content_type: str | None) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = client.post("/console/v1/registrations", content=registration_raw(),
                           headers=headers)
    assert response.status_code == 415, response.text
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert accounts_count(client) == 0


def test_a_405_names_every_method_the_path_takes(client: TestClient) -> None:
    response = client.delete("/console/v1/workspaces")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}
    single = client.get("/console/v1/registrations")
    assert single.status_code == 405 and single.headers["allow"] == "POST"


# -- numbers, dates ---------------------------------------------------------------------

@pytest.mark.parametrize("to", ["0", "1700000000", "2026-1-1", "20261125", "2026-11-25T00:00:00",
                                "\uff12\uff10\uff12\uff16-11-25"])
def test_a_date_query_must_be_yyyy_mm_dd(client: TestClient, to: str) -> None:
    reg = register(client)
    console = client.post("/console/v1/sessions", json={
        "email": "ada@example.com", "password": "correct horse battery"}).json()["token"]
    for path, headers in [
            (f"/console/v1/workspaces/{reg['workspace_id']}/usage",
             {"Authorization": f"Bearer {console}"}),
            (f"/billing/v1/accounts/{reg['billing_account_id']}/transactions",
             billing_login(client))]:
        response = client.get(path, params={"from": "2026-11-01", "to": to}, headers=headers)
        assert response.status_code == 422, (path, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid_request" and "YYYY-MM-DD" in error["message"], error
        good = client.get(path, params={"from": "2026-11-01", "to": "2026-11-25"}, headers=headers)
        assert good.status_code == 200, (path, good.text)


@pytest.mark.parametrize("amount", ["\u0661\u0662\u0663", "\uff11\uff12", "1_000", " 7 ", "+7",
                                    "1e3", "7\n"])
def test_an_amount_outside_the_number_grammar_credits_nothing(
        client: TestClient, amount: str) -> None:
    reg = register(client)
    account = reg["billing_account_id"]
    response = client.post(f"/billing/v1/admin/accounts/{account}/recharges", headers=OPERATOR,
                           json={"amount": amount, "reference": "t-1"})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_amount"
    overview = client.get(f"/billing/v1/accounts/{account}/overview",
                          headers=billing_login(client)).json()
    assert overview["cash"] == "0.00"


@pytest.mark.parametrize("profile", ["+1", "%201", "1_0", "%EF%BC%91"])
def test_a_row_id_in_a_path_must_be_ascii_digits(client: TestClient, profile: str) -> None:
    reg = register(client)
    account = reg["billing_account_id"]
    response = client.delete(f"/billing/v1/accounts/{account}/invoice-profiles/{profile}",
                             headers=billing_login(client))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("quantity", ["\u0661\u0662\u0663", "1_000", " 7 ", "+7", "1e3"])
def test_a_quantity_outside_the_number_grammar_is_not_stored(
        client: TestClient, quantity: str) -> None:
    reg = register(client)
    response = client.post("/console/v1/usage", headers={
        "Authorization": f"Bearer {reg['ingest_key']}"}, json={"records": [{
            "id": "r-1", "workspace_id": reg["workspace_id"], "item": "logs",
            "time": "2026-11-25T01:00:00+00:00", "quantity": quantity}]})
    assert response.status_code == 422, response.text
    assert response.json()["rejected"][0]["code"] == "invalid_quantity"


# -- identities and names -----------------------------------------------------------------

@pytest.mark.parametrize("email", ["\uff54\uff45\uff4e\uff41@example.com", "TENA@Example.COM",
                                   "\uff34\uff25\uff2e\uff21@\uff45xample.com"])
def test_a_look_alike_email_is_the_same_account(client: TestClient, email: str) -> None:
    register(client, "tena")
    again = client.post("/console/v1/registrations", json={
        "email": email, "password": "correct horse battery", "username": "tena2",
        "workspace_name": "Second", "language": "en"})
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] == "email_taken"
    login = client.post("/console/v1/sessions",
                        json={"email": email, "password": "correct horse battery"})
    assert login.status_code == 200, login.text


def test_an_email_with_an_invisible_character_is_refused(client: TestClient) -> None:
    response = client.post("/console/v1/registrations", json={
        "email": "te\u200bna@example.com", "password": "correct horse battery",
        "username": "tena", "workspace_name": "Team", "language": "en"})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_email"


BAD_NAMES = {"bidi override": "abc\u202edcba", "bidi isolate": "a\u2066b\u2069",
             "zero-width space": "Ad\u200ba", "zero-width joiner": "A\u200dda",
             "BOM": "\ufeffAda", "newline": "Ada\nTeam", "tab": "Ada\tTeam", "DEL": "Ada\x7f",
             "line separator": "Ada\u2028Team", "private use": "Ada\ue000",
             "unassigned": "Ada\U000e0080", "Hangul filler": "\u3164",
             "half-width filler": "Ada\uffa0", "grapheme joiner": "A\u034fda",
             "blank Braille": "\u2800\u2800"}


@pytest.mark.parametrize("case", list(BAD_NAMES))
def test_a_name_with_control_or_bidi_characters_is_refused(client: TestClient, case: str) -> None:
    name = BAD_NAMES[case]
    response = client.post("/console/v1/registrations", json={
        "email": "eve@example.com", "password": "correct horse battery", "username": "eve",
        "workspace_name": name, "language": "en"})
    assert response.status_code == 422, (case, response.text)
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and "workspace_name" in error["message"], error
    assert accounts_count(client) == 0
    reg = register(client)
    session = client.post("/console/v1/sessions", json={
        "email": "ada@example.com", "password": "correct horse battery"}).json()["token"]
    created = client.post("/console/v1/workspaces", headers={"Authorization": f"Bearer {session}"},
                          json={"name": name, "language": "en"})
    assert created.status_code == 422, (case, created.text)
    assert created.json()["error"]["code"] == "invalid_request"
    titled = client.post(f"/billing/v1/accounts/{reg['billing_account_id']}/invoice-profiles",
                         headers=billing_login(client), json={
                             "invoice_type": "vat_ordinary", "title": name,
                             "taxpayer_id": "91110000MA01234567"})
    assert titled.status_code == 422, (case, titled.text)
    assert "title" in titled.json()["error"]["message"]


def test_names_in_any_script_are_taken(client: TestClient) -> None:
    reg = register(client, workspace_name=(
        "\u963f\u8fbe\u7684\u56e2\u961f \u2014 \u00c9quipe \u0639\u0631\u0628\u064a"))
    assert reg["workspace_id"]


def test_billing_usernames_are_one_account_whatever_the_case(client: TestClient) -> None:
    register(client, "ada")
    for username in ("Ada", "ADA", "\uff41\uff44\uff41"):
        login = client.post("/billing/v1/sessions",
                            json={"username": username, "password": "correct horse battery"})
        assert login.status_code == 200, (username, login.text)
    taken = client.post("/console/v1/registrations", json={
        "email": "other@example.com", "password": "correct horse battery", "username": "ADA",
        "workspace_name": "Other", "language": "en"})
    assert taken.status_code == 409, taken.text


# -- numbers past what any field takes, dates in bodies, addresses stored before -----------

@pytest.mark.parametrize("number", ["1E+9999", "1" + "0" * 200 + ".0", "9" * 150, "1E-9999"])
def test_a_number_past_the_parser_bounds_is_400_and_stores_nothing(
        client: TestClient, number: str) -> None:
    # A lax integer field made an int of 10^9999 and the refusal could not print it (500).
    reg = register(client)
    path = f"/console/v1/workspaces/{reg['workspace_id']}/alerts/logs"
    response = client.put(path, content=b'{"threshold": ' + number.encode() + b"}",
                          headers={**console_login(client), "Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "malformed_json" and "out of range" in error["message"], error
    alerts = client.get(f"/console/v1/workspaces/{reg['workspace_id']}/alerts",
                        headers=console_login(client)).json()
    assert alerts["alerts"] == []


def test_a_usage_attribute_past_the_parser_bounds_is_400(client: TestClient) -> None:
    # int(Decimal("1E+99999999")) in a counting rule ran for minutes.
    reg = register(client)
    raw = (b'{"records": [{"id": "r-1", "workspace_id": "' + reg["workspace_id"].encode()
           + b'", "item": "trace", "time": "2026-11-26T01:00:00+00:00", "quantity": 1, '
           b'"attributes": {"spans": 1E+99999999}}]}')
    response = client.post("/console/v1/usage", content=raw, headers={
        **bearer(reg["ingest_key"]), "Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "malformed_json"


@pytest.mark.parametrize("day", ["0", "1700000000", "2026-11-25T00:00:00", "20261125"])
def test_a_date_in_an_operator_body_must_be_yyyy_mm_dd(client: TestClient, day: str) -> None:
    closed = client.post("/console/v1/admin/close-day", json={"date": day}, headers=OPERATOR)
    assert closed.status_code == 422, closed.text
    error = closed.json()["error"]
    assert error["code"] == "invalid_request" and "YYYY-MM-DD" in error["message"], error
    rerated = client.post("/console/v1/admin/rerates", headers=OPERATOR, json={
        "from": day, "to": "2026-11-25", "reason": "test", "actor": "ops@example.com"})
    assert rerated.status_code == 422, rerated.text
    assert "YYYY-MM-DD" in rerated.json()["error"]["message"]
    assert client.get("/console/v1/admin/rerates", headers=OPERATOR).json()["rerates"] == []


def test_an_address_stored_before_normalisation_still_logs_in_and_is_not_taken_twice(
        client: TestClient, runtime: Runtime) -> None:
    from sqlalchemy import update

    from accrual.console.adapters import tables as t

    full_width = "\uff54\uff45\uff4e\uff41@example.com"
    register(client, "tena")
    # Before e-mails were normalised they were stored stripped and lower-cased only.
    with runtime.console.engine.begin() as conn:
        conn.execute(update(t.accounts).where(t.accounts.c.email == "tena@example.com")
                     .values(email=full_width))
    for spelling in (full_width, "\uff34\uff25\uff2e\uff21@example.com"):
        login = client.post("/console/v1/sessions",
                            json={"email": spelling, "password": "correct horse battery"})
        assert login.status_code == 200, (spelling, login.text)
    again = client.post("/console/v1/registrations", json={
        "email": full_width, "password": "correct horse battery", "username": "tena2",
        "workspace_name": "Second", "language": "en"})
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] == "email_taken"
    wrong = client.post("/console/v1/sessions",
                        json={"email": full_width, "password": "not the password"})
    assert wrong.status_code == 401
