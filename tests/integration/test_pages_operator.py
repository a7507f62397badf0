"""The operator's pages: the token sign-in, each page behind it, close day and the
invoice decision through the pages changing what the API shows, Chinese."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from accrual.app import Runtime
from accrual.clock import ManualClock
from tests.conftest import ADMIN, SHANGHAI
from tests.helpers import OPERATOR, billing_login, close_day, register, send_usage
from tests.integration.test_pages_crawl import accessibility_problems
from tests.pages_support import billing_sign_in, browser_client, console_sign_in, error_text, submit

PAGES = ["/operator/", "/operator/console/close-day", "/operator/console/jobs",
         "/operator/billing/invoices", "/operator/billing/invoices?status=issued",
         "/operator/billing/arrears", "/operator/billing/vouchers", "/operator/console/rerates"]


def operator_sign_in(browser: TestClient) -> None:
    response = submit(browser, "/operator/signin", {"token": ADMIN, "next": "/operator/"})
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/operator/"


def test_a_wrong_token_is_refused_and_sets_nothing(runtime: Runtime) -> None:
    with browser_client(runtime) as browser:
        refused = submit(browser, "/operator/signin", {"token": "not-the-token"})
        assert refused.status_code == 401
        assert error_text(refused) == ["That is not the operator token."]
        assert "accrual_operator" not in refused.headers.get("set-cookie", "")
        assert browser.get("/operator/").status_code == 303


def test_the_cookie_is_strict_holds_no_token_and_sign_out_clears_it(runtime: Runtime) -> None:
    with browser_client(runtime) as browser:
        response = submit(browser, "/operator/signin", {"token": ADMIN})
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("accrual_operator=") and ADMIN not in cookie
        assert {"Secure", "HttpOnly", "SameSite=strict"} <= {p.strip() for p in cookie.split(";")}
        assert browser.get("/operator/").status_code == 200
        out = submit(browser, "/operator/signout")
        assert out.status_code == 303
        assert browser.get("/operator/").status_code == 303
        browser.cookies.set("accrual_operator", ADMIN, domain="testserver.local")
        assert browser.get("/operator/console/jobs").status_code == 303


def test_every_page_needs_the_operator_not_a_session(client: TestClient,
                                                     runtime: Runtime) -> None:
    register(client)
    with browser_client(runtime) as browser:
        for path in PAGES:
            gone = browser.get(path)
            assert gone.status_code == 303, path
            assert gone.headers["location"].startswith("/operator/signin?next=")
        console_sign_in(browser, "ada@example.com")
        billing_sign_in(browser, "ada")
        for path in PAGES:
            assert browser.get(path).status_code == 303, path
        operator_sign_in(browser)
        for path in PAGES:
            assert browser.get(path).status_code == 200, path
        assert submit(browser, "/operator/console/close-day",
                      {"day": "2026-02-30"}).status_code == 422
        assert browser.post("/operator/console/close-day",
                            data={"day": "2026-01-01"}).status_code == 403  # no CSRF


def test_close_day_through_the_page(client: TestClient, runtime: Runtime,
                                    clock: ManualClock) -> None:
    clock.set(datetime(2026, 9, 29, 10, tzinfo=SHANGHAI))
    reg = register(client)
    send_usage(client, reg["ingest_key"], [{
        "id": "a", "workspace_id": reg["workspace_id"], "item": "logs",
        "time": "2026-09-28T12:00:00+08:00", "quantity": "1234567", "retention_days": 3}])
    with browser_client(runtime) as browser:
        operator_sign_in(browser)
        bad = submit(browser, "/operator/console/close-day", {"day": "yesterday"})
        assert bad.status_code == 422 and error_text(bad) == ["Give the day as YYYY-MM-DD."]
        closed = submit(browser, "/operator/console/close-day", {"day": "2026-09-28"})
        assert closed.status_code == 200 and "Messages delivered" in closed.text
        refused = submit(browser, "/operator/console/rerates", {
            "start": "2026-09-28", "end": "2026-09-01", "reason": "fix", "actor": "ops@x.io"})
        assert refused.status_code == 422 and 'id="e-end"' in refused.text
        rerated = submit(browser, "/operator/console/rerates", {
            "start": "2026-09-28", "end": "2026-09-28", "reason": "price check",
            "actor": "ops@example.com"})
        assert rerated.status_code == 303
        assert "price check" in browser.get("/operator/console/rerates").text
    audit = client.get("/console/v1/admin/rerates", headers=OPERATOR).json()["rerates"]
    assert [(r["reason"], r["days"]) for r in audit] == [("price check", 1)]
    again = close_day(client, "2026-09-28")
    assert again["already_closed"] is True
    account = reg["billing_account_id"]
    session = billing_login(client)
    overview = client.get(f"/billing/v1/accounts/{account}/overview", headers=session).json()
    assert overview["arrears"] == "1.23"
    with browser_client(runtime) as browser:
        operator_sign_in(browser)
        cases = browser.get("/operator/billing/arrears")
        assert "<td>ada</td>" in cases.text and "¥1.23" in cases.text, cases.text


def _invoice_requests(client: TestClient, clock: ManualClock, count: int) -> list[int]:
    clock.set(datetime(2026, 9, 29, 10, tzinfo=SHANGHAI))
    reg = register(client)
    account = reg["billing_account_id"]
    assert client.post(f"/billing/v1/admin/accounts/{account}/recharges", headers=OPERATOR,
                       json={"amount": "50.00", "reference": "t-1"}).status_code == 200
    send_usage(client, reg["ingest_key"], [{
        "id": "a", "workspace_id": reg["workspace_id"], "item": "logs",
        "time": "2026-09-28T12:00:00+08:00", "quantity": "9000000", "retention_days": 3}])
    close_day(client, "2026-09-28")
    clock.set(datetime(2026, 10, 3, 10, tzinfo=SHANGHAI))
    assert client.post(f"/billing/v1/admin/accounts/{account}/monthly-bills", headers=OPERATOR,
                       json={"month": "2026-09"}).status_code == 200
    session = billing_login(client)
    base = f"/billing/v1/accounts/{account}"
    assert client.put(f"{base}/certification", headers=session, json={
        "enterprise_name": "Analytical Engines Ltd",
        "taxpayer_id": "91310000MA1FL0XX1X"}).status_code == 200
    profile = client.post(f"{base}/invoice-profiles", headers=session, json={
        "invoice_type": "electronic_ordinary", "title": "Analytical Engines Ltd",
        "taxpayer_id": "91310000MA1FL0XX1X", "email": "finance@example.com"})
    assert profile.status_code == 201, profile.text
    ids = []
    for _ in range(count):
        made = client.post(f"{base}/invoices", headers=session, json={
            "months": ["2026-09"], "profile_id": profile.json()["id"], "amount": "1.00"})
        assert made.status_code == 201, made.text
        ids.append(int(made.json()["id"]))
    return ids


def _status(client: TestClient, status: str) -> list[dict[str, Any]]:
    listed = client.get(f"/billing/v1/admin/invoices?status={status}", headers=OPERATOR)
    return listed.json()["invoices"]  # type: ignore[no-any-return]


def test_issue_and_reject_invoice_requests_through_the_page(
        client: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    first, second = _invoice_requests(client, clock, 2)
    with browser_client(runtime) as browser:
        operator_sign_in(browser)
        waiting = browser.get("/operator/billing/invoices")
        assert f"/operator/billing/invoices/{first}/issue" in waiting.text
        assert accessibility_problems(waiting.text) == []  # one form per row, ids apart
        empty = submit(browser, f"/operator/billing/invoices/{first}/reject", {"reason": ""})
        assert empty.status_code == 422 and len(error_text(empty)) == 1
        issued = submit(browser, f"/operator/billing/invoices/{first}/issue",
                        {"invoice_number": "INV-0001"})
        assert issued.status_code == 303
        assert issued.headers["location"] == "/operator/billing/invoices?done=issued"
        assert "The invoice was marked issued." in browser.get(issued.headers["location"]).text
        rejected = submit(browser, f"/operator/billing/invoices/{second}/reject",
                          {"reason": "Wrong taxpayer id"})
        assert rejected.status_code == 303
        late = submit(browser, f"/operator/billing/invoices/{second}/issue",
                      {"invoice_number": "INV-0002"})
        assert late.status_code == 409
        assert submit(browser, "/operator/billing/invoices/99999/issue",
                      {"invoice_number": "INV-9"}).status_code == 404
        assert submit(browser, "/operator/billing/invoices/99999999999999999999/issue",
                      {"invoice_number": "INV-9"}).status_code == 422
    assert [(i["id"], i["invoice_number"]) for i in _status(client, "issued")] == [
        (first, "INV-0001")]
    assert [(i["id"], i["reject_reason"]) for i in _status(client, "rejected")] == [
        (second, "Wrong taxpayer id")]
    assert _status(client, "requested") == []


def test_chinese(runtime: Runtime) -> None:
    with browser_client(runtime) as browser:
        browser.cookies.set("accrual_lang", "zh", domain="testserver.local")
        assert "运营" in browser.get("/operator/signin").text
        operator_sign_in(browser)
        for path in PAGES:
            page = browser.get(path)
            assert page.status_code == 200 and page.headers["content-language"] == "zh", path
        assert "关账" in browser.get("/operator/console/close-day").text
        assert "开票申请" in browser.get("/operator/billing/invoices").text


def test_voucher_codes_through_the_page(client: TestClient, runtime: Runtime,
                                       clock: ManualClock) -> None:
    account = register(client)["billing_account_id"]
    with browser_client(runtime) as browser:
        operator_sign_in(browser)
        form = {"kind": "voucher_standard", "amount": "50.00", "count": "3",
                "validity_days": "90", "redeem_within_days": "30", "note": "conference"}
        for field, value in [("amount", "-1"), ("amount", "1e9999"), ("count", "0"),
                             ("count", "99999999999999999999"), ("validity_days", "x"),
                             ("redeem_within_days", "0"), ("kind", "card")]:
            refused = submit(browser, "/operator/billing/vouchers", {**form, field: value})
            assert refused.status_code == 422, (field, value, refused.text)
            assert f'id="e-{field}"' in refused.text, (field, value)
        made = submit(browser, "/operator/billing/vouchers", form)
        assert made.status_code == 200
        codes = re.findall(r"<code>([^<]+)</code>", made.text)
        assert len(codes) == 3
    session = billing_login(client)
    activated = client.post(f"/billing/v1/accounts/{account}/vouchers/activate",
                            json={"code": codes[0]}, headers=session)
    assert activated.status_code == 201, activated.text
    assert activated.json()["face_value"] == "50.00"
    # The batch, with one code activated, on the page and through the API; after the
    # activation window the others have lapsed.
    with browser_client(runtime) as browser:
        operator_sign_in(browser)
        page = browser.get("/operator/billing/vouchers").text
        row = re.search(r"<tr><td>[^<]*</td>\s*<td>Standard voucher</td>.*?</tr>", page, re.S)
        assert row and "conference" in row.group(0), page
        counts = re.findall(r'<td class="num">(\d+)</td>', row.group(0))
        assert counts == ["3", "1", "0", "2"]
    batches = client.get("/billing/v1/admin/voucher-codes/batches", headers=OPERATOR).json()
    assert [(b["made"], b["activated"], b["lapsed"], b["open"], b["face_value"], b["note"])
            for b in batches["batches"]] == [(3, 1, 0, 2, "50.00", "conference")]
    clock.advance(timedelta(days=31))
    later = client.get("/billing/v1/admin/voucher-codes/batches", headers=OPERATOR).json()
    assert [(b["activated"], b["lapsed"], b["open"]) for b in later["batches"]] == [(1, 2, 0)]
