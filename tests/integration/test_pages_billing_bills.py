"""Bill management and invoice pages of the billing center: monthly bills with their
downloads, consumption details, income & expenditure, invoice information, addresses and
requests; refusals beside the field, tenancy, Chinese."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from fastapi.testclient import TestClient
from openpyxl import load_workbook

from accrual.app import Runtime
from accrual.clock import ManualClock
from tests.conftest import SHANGHAI
from tests.helpers import OPERATOR, billing_login, close_day, register, send_usage
from tests.pages_support import billing_sign_in, browser_client, error_text, submit

CERT = {"enterprise_name": "Analytical Engines Ltd", "taxpayer_id": "91310000MA1FL0XX1X"}
ELECTRONIC = {"invoice_type": "electronic_ordinary", "title": CERT["enterprise_name"],
              "taxpayer_id": CERT["taxpayer_id"], "email": "finance@example.com"}


def at(month: int, day: int, hour: int = 10) -> datetime:
    return datetime(2026, month, day, hour, 0, tzinfo=SHANGHAI)


def billed(client: TestClient, clock: ManualClock, name: str = "ada") -> dict[str, Any]:
    """An account with October's bill of 3.50 generated, paid in cash."""
    clock.set(at(10, 30, 0))
    reg = register(client, name)
    ws, key, account = reg["workspace_id"], reg["ingest_key"], reg["billing_account_id"]
    client.post(f"/billing/v1/admin/accounts/{account}/recharges",
                json={"amount": "100", "reference": f"r-{name}"}, headers=OPERATOR)
    clock.set(at(11, 1, 13))
    send_usage(client, key, [
        {"id": f"{name}-{i}", "workspace_id": ws, "item": "logs", "retention_days": 3,
         "time": f"{day}T12:00:00+08:00", "quantity": q}
        for i, (day, q) in enumerate((("2026-10-30", "1000000"), ("2026-10-31", "2500000")))])
    for day in ("2026-10-30", "2026-10-31"):
        close_day(client, day)
    clock.set(at(11, 3, 1))
    made = client.post(f"/billing/v1/admin/accounts/{account}/monthly-bills",
                       json={"month": "2026-10"}, headers=OPERATOR)
    assert made.status_code == 200 and made.json()["total"] == "3.50", made.text
    return reg


def test_monthly_bills_with_details_and_downloads(
        client: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    billed(client, clock)
    with browser_client(runtime) as browser:
        assert browser.get("/billing/bills/monthly").status_code == 303  # signed out
        billing_sign_in(browser, "ada")
        page = browser.get("/billing/bills/monthly")
        assert page.status_code == 200 and "2026-10" in page.text and "3.50" in page.text
        detail = browser.get("/billing/bills/monthly/2026-10")
        assert detail.status_code == 200 and "2.50" in detail.text and "1.00" in detail.text
        as_csv = browser.get("/billing/bills/monthly/2026-10/download/csv")
        assert as_csv.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
        assert sum(Decimal(r["amount"]) for r in rows) == Decimal("3.50")
        as_xlsx = browser.get("/billing/bills/monthly/2026-10/download/xlsx")
        assert as_xlsx.headers["content-type"].startswith("application/vnd.openxmlformats")
        sheet = load_workbook(io.BytesIO(as_xlsx.content)).active
        assert sheet is not None
        amounts = [r[-2] for r in sheet.iter_rows(min_row=2, values_only=True)]
        assert sum(Decimal(str(a)) for a in amounts) == Decimal("3.50")
        pdf = browser.get("/billing/bills/monthly/2026-10/download/pdf")
        assert pdf.headers["content-type"] == "application/pdf" and pdf.content[:4] == b"%PDF"
        assert browser.get("/billing/bills/monthly/2026-09").status_code == 404
        assert browser.get("/billing/bills/monthly/2026-13").status_code == 422
        assert browser.get("/billing/bills/monthly/2026-10/download/exe").status_code == 404


def test_consumption_and_transactions_filter_sort_and_download(
        client: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    billed(client, clock)
    with browser_client(runtime) as browser:
        billing_sign_in(browser, "ada")
        period = {"from": "2026-10-01", "to": "2026-10-31"}
        page = browser.get("/billing/bills/consumption", params={**period, "sort": "amount",
                                                                 "order": "desc"})
        assert page.status_code == 200
        assert page.text.index("2.50") < page.text.index("1.00")  # sorted by amount, largest first
        empty = browser.get("/billing/bills/consumption",
                            params={"from": "2026-09-01", "to": "2026-09-30"})
        assert empty.status_code == 200 and "No consumption in this period." in empty.text
        download = browser.get("/billing/bills/consumption/download/csv", params=period)
        rows = list(csv.DictReader(io.StringIO(download.content.decode("utf-8-sig"))))
        assert [r["amount"] for r in rows] == ["1.00", "2.50"]
        xlsx = browser.get("/billing/bills/consumption/download/xlsx", params=period)
        assert xlsx.headers["content-type"].startswith("application/vnd.openxmlformats")
        for bad, field, message in (({"from": "2026-10-32", "to": "2026-10-31"}, "from", "no day"),
                                    ({"from": "yesterday", "to": "2026-10-31"}, "from", "YYYY-MM-DD"),
                                    ({"from": "2026-10-31", "to": "2026-10-01"}, "to", "366"),
                                    ({"from": "1999-12-31", "to": "2000-01-02"}, "from", "2000-01-01"),
                                    ({"from": "2025-01-01", "to": "2026-10-31"}, "to", "366")):
            refused = browser.get("/billing/bills/consumption", params=bad)
            assert refused.status_code == 422, bad
            assert f'id="e-{field}"' in refused.text and message in " ".join(error_text(refused))
            assert browser.get("/billing/bills/consumption/download/csv",
                               params=bad).status_code == 422
        moves = browser.get("/billing/bills/transactions", params={"from": "2026-10-01",
                                                                   "to": "2026-11-30"})
        assert moves.status_code == 200 and "Recharge" in moves.text and "100.00" in moves.text
        sheet = browser.get("/billing/bills/transactions/download/csv",
                            params={"from": "2026-10-01", "to": "2026-11-30"})
        rows = list(csv.DictReader(io.StringIO(sheet.content.decode("utf-8-sig"))))
        assert "100.00" in [r["amount"] for r in rows]
        assert sum(Decimal(r["amount"]) for r in rows if r["balance"] == "cash") == Decimal("96.50")
        assert browser.get("/billing/bills/transactions",
                           params={"from": "2026-13-01"}).status_code == 422


def test_invoice_information_addresses_and_a_request(
        client: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    reg = billed(client, clock)
    account = reg["billing_account_id"]
    with browser_client(runtime) as browser:
        billing_sign_in(browser, "ada")
        assert browser.get("/billing/invoices").status_code == 200
        # Bad input: refused beside the field, nothing stored.
        wrong = submit(browser, "/billing/invoices/profiles", {**ELECTRONIC, "taxpayer_id": "x"})
        assert wrong.status_code == 422 and 'id="e-taxpayer_id"' in wrong.text
        no_mail = submit(browser, "/billing/invoices/profiles", {**ELECTRONIC, "email": ""})
        assert no_mail.status_code == 422 and 'id="e-email"' in no_mail.text
        bad_phone = submit(browser, "/billing/invoices/addresses",
                           {"recipient": "Ada", "phone": "call me", "address": "1 Century Avenue"})
        assert bad_phone.status_code == 422 and 'id="e-phone"' in bad_phone.text
        assert runtime.billing.invoice_records.profiles(account) == []
        assert runtime.billing.invoice_records.addresses(account) == []
        # Added, edited.
        assert submit(browser, "/billing/invoices/profiles", ELECTRONIC).status_code == 303
        assert submit(browser, "/billing/invoices/addresses",
                      {"recipient": "Ada Lovelace", "phone": "+86 138 0000 0000",
                       "address": "Room 801, 1 Century Avenue"}).status_code == 303
        profile = runtime.billing.invoice_records.profiles(account)[0]
        address = runtime.billing.invoice_records.addresses(account)[0]
        edited = submit(browser, f"/billing/invoices/addresses/{address.id}",
                        {"recipient": "Ada King", "phone": "+86 138 0000 0000",
                         "address": "Room 801, 1 Century Avenue"})
        assert edited.status_code == 303
        assert runtime.billing.invoice_records.addresses(account)[0].recipient == "Ada King"
        # Not certified: the rule as a clear message, nothing requested.
        step2 = browser.get("/billing/invoices/request", params={"months": "2026-10"})
        assert step2.status_code == 200 and "real-name authentication" in step2.text
        refused = submit(browser, "/billing/invoices/request",
                         {"months": "2026-10", "profile_id": str(profile.id)})
        assert refused.status_code == 403
        assert "enterprise certification" in " ".join(error_text(refused))
        assert runtime.billing.invoices.requests(account) == []
        session = billing_login(client)
        certified = client.put(f"/billing/v1/accounts/{account}/certification", json=CERT,
                               headers=session)
        assert certified.status_code == 200, certified.text
        none_picked = submit(browser, "/billing/invoices/request", {"profile_id": str(profile.id)})
        assert none_picked.status_code == 422 and 'id="e-months"' in none_picked.text
        too_much = submit(browser, "/billing/invoices/request",
                          {"months": "2026-10", "profile_id": str(profile.id), "amount": "9.99"})
        assert too_much.status_code == 422 and 'id="e-amount"' in too_much.text
        assert runtime.billing.invoices.requests(account) == []
        done = submit(browser, "/billing/invoices/request",
                      {"months": "2026-10", "profile_id": str(profile.id)})
        assert (done.status_code, done.headers["location"]) == (303, "/billing/invoices?done=requested")
        [made] = runtime.billing.invoices.requests(account)
        listing = browser.get("/billing/invoices?done=requested")
        assert "The invoice is requested." in listing.text and "Requested" in listing.text
        view = browser.get(f"/billing/invoices/requests/{made.id}")
        assert view.status_code == 200 and "3.50" in view.text and "2026-10" in view.text
        assert submit(browser, f"/billing/invoices/profiles/{profile.id}/delete").status_code == 303
        assert runtime.billing.invoice_records.profiles(account) == []


def test_another_accounts_bills_and_records_stay_hidden(
        client: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    ada = billed(client, clock, "ada")
    session = billing_login(client, "ada")
    made = client.post(f"/billing/v1/accounts/{ada['billing_account_id']}/mailing-addresses",
                       json={"recipient": "Secret Recipient", "phone": "+86 138 0000 0000",
                             "address": "Room 801, 1 Century Avenue"}, headers=session)
    assert made.status_code == 201, made.text
    address_id = made.json()["id"]
    profile = client.post(f"/billing/v1/accounts/{ada['billing_account_id']}/invoice-profiles",
                          json={**ELECTRONIC, "title": "Secret Title Ltd"}, headers=session)
    assert profile.status_code == 201, profile.text
    profile_id = profile.json()["id"]
    clock.set(at(11, 3, 2))
    register(client, "bob")
    with browser_client(runtime) as browser:
        billing_sign_in(browser, "bob")
        monthly = browser.get("/billing/bills/monthly")
        assert monthly.status_code == 200 and "3.50" not in monthly.text
        assert browser.get("/billing/bills/monthly/2026-10").status_code == 404
        assert browser.get("/billing/bills/monthly/2026-10/download/csv").status_code == 404
        other = browser.get(f"/billing/invoices/addresses/{address_id}")
        assert other.status_code == 404 and "Secret Recipient" not in other.text
        changed = submit(browser, f"/billing/invoices/addresses/{address_id}",
                         {"recipient": "Bob", "phone": "+86 1", "address": "Somewhere 1"})
        assert changed.status_code == 404
        assert submit(browser, f"/billing/invoices/addresses/{address_id}/delete").status_code == 404
        hidden = browser.get(f"/billing/invoices/profiles/{profile_id}")
        assert hidden.status_code == 404 and "Secret Title" not in hidden.text
        assert submit(browser, f"/billing/invoices/profiles/{profile_id}",
                      ELECTRONIC).status_code == 404
        assert submit(browser, f"/billing/invoices/profiles/{profile_id}/delete").status_code == 404
        assert "Secret" not in browser.get("/billing/invoices").text
        consumption = browser.get("/billing/bills/consumption",
                                  params={"from": "2026-10-01", "to": "2026-10-31"})
        assert consumption.status_code == 200 and "2.50" not in consumption.text
    ada_addresses = runtime.billing.invoice_records.addresses(ada["billing_account_id"])
    assert [a.recipient for a in ada_addresses] == ["Secret Recipient"]
    ada_profiles = runtime.billing.invoice_records.profiles(ada["billing_account_id"])
    assert [p.title for p in ada_profiles] == ["Secret Title Ltd"]


def test_pages_render_in_chinese(client: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    billed(client, clock)
    with browser_client(runtime) as browser:
        browser.cookies.set("accrual_lang", "zh")
        billing_sign_in(browser, "ada")
        for path, text in (("/billing/bills/monthly", "月账单"),
                           ("/billing/bills/consumption?from=2026-10-01&to=2026-10-31", "消费明细"),
                           ("/billing/bills/transactions", "收支明细"),
                           ("/billing/invoices", "发票管理"),
                           ("/billing/invoices/request", "申请发票")):
            page = browser.get(path)
            assert page.status_code == 200 and text in page.text, path
            assert not re.search(r">\s*(Monthly bills|Consumption details|Invoice information)\s*<",
                                 page.text), path
