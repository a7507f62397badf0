"""Invoices: invoice information, mailing addresses, the invoiceable amount of monthly bills
(decisions.md 21), requests and the rules that refuse them, and the operator's decision."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient

from accrual.app import Runtime
from accrual.clock import ManualClock
from tests.conftest import SHANGHAI
from tests.helpers import OPERATOR, billing_login, close_day, register, send_usage

CERT = {"enterprise_name": "Analytical Engines Ltd", "taxpayer_id": "91310000MA1FL0XX1X"}
SPECIAL = {"invoice_type": "vat_special", "title": CERT["enterprise_name"],
           "taxpayer_id": CERT["taxpayer_id"], "registered_address": "1 Century Avenue, Shanghai",
           "registered_phone": "+86 21 5000 0000", "bank_name": "Bank of Shanghai",
           "bank_account": "3100 2000 1234 5678"}
ELECTRONIC = {"invoice_type": "electronic_ordinary", "title": CERT["enterprise_name"],
              "taxpayer_id": CERT["taxpayer_id"].lower(), "email": "Finance@Example.com"}
ADDRESS = {"recipient": "Ada Lovelace", "phone": "+86 138 0000 0000",
           "address": "Room 801, 1 Century Avenue, Shanghai", "postcode": "200120"}


def at(month: int, day: int, hour: int = 10) -> datetime:
    return datetime(2026, month, day, hour, 0, tzinfo=SHANGHAI)


def logs(ws: str, rid: str, day: str, quantity: str) -> dict[str, object]:
    return {"id": rid, "workspace_id": ws, "item": "logs", "time": f"{day}T12:00:00+08:00",
            "quantity": quantity, "retention_days": 3}


def code(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    return str(response.json()["error"]["code"])


def recharge(client: TestClient, account: str, amount: str, reference: str) -> None:
    response = client.post(f"/billing/v1/admin/accounts/{account}/recharges",
                           json={"amount": amount, "reference": reference}, headers=OPERATOR)
    assert response.status_code == 200, response.text


def generate(client: TestClient, account: str, month: str) -> dict[str, Any]:
    response = client.post(f"/billing/v1/admin/accounts/{account}/monthly-bills",
                           json={"month": month}, headers=OPERATOR)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def invoiceable(client: TestClient, account: str, session: dict[str, str]) -> dict[str, Any]:
    response = client.get(f"/billing/v1/accounts/{account}/invoiceable", headers=session)
    assert response.status_code == 200, response.text
    body = response.json()
    return {"total": body["invoiceable"],
            **{b["month"]: b["invoiceable"] for b in body["bills"]}}


def test_invoice_requests_against_monthly_bills(client: TestClient, clock: ManualClock) -> None:
    clock.set(at(9, 25))
    reg = register(client)
    ws, key, account = reg["workspace_id"], reg["ingest_key"], reg["billing_account_id"]
    base = f"/billing/v1/accounts/{account}"
    recharge(client, account, "3.10", "t-1")

    # September: 1.23, all paid from cash.
    clock.set(at(9, 29))
    send_usage(client, key, [logs(ws, "a", "2026-09-28", "1234567")])  # 1.234567 -> 1.23
    close_day(client, "2026-09-28")
    clock.set(at(10, 3))
    assert generate(client, account, "2026-09")["total"] == "1.23"

    # October: 1.50 + 2.35 = 3.85 against 1.87 of cash left; 1.98 falls into arrears.
    clock.set(at(10, 21))
    send_usage(client, key, [logs(ws, "b", "2026-10-10", "1500000"),
                             logs(ws, "c", "2026-10-20", "2345678")])  # 2.345678 -> 2.35
    close_day(client, "2026-10-10")
    close_day(client, "2026-10-20")
    clock.set(at(11, 3))
    assert generate(client, account, "2026-10")["total"] == "3.85"
    session = billing_login(client)
    overview = client.get(f"{base}/overview", headers=session).json()
    assert (overview["cash"], overview["arrears"]) == ("0.00", "1.98")

    detail = client.get(f"{base}/invoiceable", headers=session).json()
    assert detail["currency"] == "CNY" and detail["invoiceable"] == "3.10"
    assert detail["bills"] == [
        {"month": "2026-10", "bill_total": "3.85", "consumption_paid_in_cash": "1.87",
         "card_purchases_paid_in_cash": "0.00", "requested": "0.00", "invoiceable": "1.87"},
        {"month": "2026-09", "bill_total": "1.23", "consumption_paid_in_cash": "1.23",
         "card_purchases_paid_in_cash": "0.00", "requested": "0.00", "invoiceable": "1.23"}]

    special = client.post(f"{base}/invoice-profiles", json=SPECIAL, headers=session)
    assert special.status_code == 201, special.text
    assert special.json()["matches_certification"] is False  # not certified yet
    special_id = special.json()["id"]
    want = {"months": ["2026-09", "2026-10"], "profile_id": special_id}

    # Refusals, one rule at a time.
    assert code(client.post(f"{base}/invoices", json=want, headers=session),
                403) == "invoice_needs_certification"
    certified = client.put(f"{base}/certification", json=CERT, headers=session)
    assert certified.status_code == 200, certified.text
    assert code(client.post(f"{base}/invoices", json=want, headers=session),
                403) == "account_in_arrears"
    recharge(client, account, "10.00", "t-2")  # pays the 1.98 of arrears first
    # What arrears paid, and what was paid later to settle them, is not invoiceable.
    assert invoiceable(client, account, session) == {
        "total": "3.10", "2026-10": "1.87", "2026-09": "1.23"}

    assert code(client.post(f"{base}/invoices", json=want, headers=session),
                422) == "invoice_address_required"
    address = client.post(f"{base}/mailing-addresses", json=ADDRESS, headers=session)
    assert address.status_code == 201, address.text
    address_id = address.json()["id"]
    want["address_id"] = address_id
    for wrong in ({"title": "Analytical Engines"}, {"taxpayer_id": "91310000MA1FL0XX2X"}):
        other = client.post(f"{base}/invoice-profiles", json={**SPECIAL, **wrong}, headers=session)
        assert other.json()["matches_certification"] is False
        assert code(client.post(f"{base}/invoices", headers=session,
                                json={**want, "profile_id": other.json()["id"]}),
                    422) == "invoice_title_mismatch"
    assert code(client.post(f"{base}/invoices", json={**want, "amount": "3.11"}, headers=session),
                422) == "amount_exceeds_invoiceable"
    assert code(client.post(f"{base}/invoices", json={**want, "months": ["2026-10"],
                                                      "amount": "1.88"}, headers=session),
                422) == "amount_exceeds_invoiceable"
    for missing in ("2026-08", "2026-11"):  # never billed; not generated yet
        assert code(client.post(f"{base}/invoices", headers=session,
                                json={**want, "months": ["2026-09", missing]}),
                    404) == "bill_not_found"
    for amount in ("0", "-1.00", "0.001", "abc"):
        assert code(client.post(f"{base}/invoices", json={**want, "amount": amount},
                                headers=session), 422) == "invalid_amount"
    assert code(client.post(f"{base}/invoices", json={**want, "amount": 1.5}, headers=session),
                422) == "invalid_request"  # a JSON float is never money
    assert code(client.post(f"{base}/invoices", json={**want, "months": ["2026-13"]},
                            headers=session), 422) == "invalid_month"
    assert code(client.post(f"{base}/invoices", json={**want, "months": ["1999-12"]},
                            headers=session), 422) == "date_out_of_range"
    assert code(client.post(f"{base}/invoices", json={**want, "months": []}, headers=session),
                422) == "invalid_request"
    assert code(client.post(f"{base}/invoices", json={**want, "profile_id": 999},
                            headers=session), 404) == "invoice_profile_not_found"
    assert code(client.post(f"{base}/invoices", json={**want, "address_id": 999},
                            headers=session), 404) == "mailing_address_not_found"
    assert client.get(f"{base}/invoices", headers=session).json() == {"invoices": []}

    # A request takes the amount from the oldest bill first.
    first = client.post(f"{base}/invoices", json={**want, "amount": "2.00"}, headers=session)
    assert first.status_code == 201, first.text
    first_body = first.json()
    assert (first_body["status"], first_body["amount"], first_body["invoice_type"]) == (
        "requested", "2.00", "vat_special")
    assert first_body["bills"] == [{"month": "2026-09", "amount": "1.23"},
                                   {"month": "2026-10", "amount": "0.77"}]
    assert first_body["profile"]["bank_account"] == SPECIAL["bank_account"]
    assert first_body["address"]["postcode"] == "200120"
    assert invoiceable(client, account, session) == {
        "total": "1.10", "2026-10": "1.10", "2026-09": "0.00"}
    assert code(client.post(f"{base}/invoices", json={**want, "amount": "1.11"}, headers=session),
                422) == "amount_exceeds_invoiceable"

    # An electronic invoice needs no address; without an amount it takes all that is left.
    electronic = client.post(f"{base}/invoice-profiles", json=ELECTRONIC, headers=session)
    assert electronic.status_code == 201, electronic.text
    assert electronic.json()["taxpayer_id"] == CERT["taxpayer_id"]
    assert electronic.json()["matches_certification"] is True
    second = client.post(f"{base}/invoices", headers=session, json={
        "months": ["2026-10", "2026-09"], "profile_id": electronic.json()["id"]})
    assert second.status_code == 201, second.text
    assert (second.json()["amount"], second.json()["address"]) == ("1.10", None)
    assert second.json()["bills"] == [{"month": "2026-10", "amount": "1.10"}]
    assert invoiceable(client, account, session) == {
        "total": "0.00", "2026-10": "0.00", "2026-09": "0.00"}
    assert code(client.post(f"{base}/invoices", json=want, headers=session),
                422) == "nothing_to_invoice"

    listed = client.get(f"{base}/invoices", headers=session).json()["invoices"]
    assert [(i["id"], i["status"], i["amount"]) for i in listed] == [
        (second.json()["id"], "requested", "1.10"), (first_body["id"], "requested", "2.00")]
    waiting = client.get("/billing/v1/admin/invoices", headers=OPERATOR).json()["invoices"]
    assert [i["id"] for i in waiting] == [first_body["id"], second.json()["id"]]

    # The request keeps the invoice information it was made with.
    edited = client.put(f"{base}/invoice-profiles/{special_id}", headers=session,
                        json={**SPECIAL, "bank_account": "6222 0000 1111 2222"})
    assert edited.status_code == 200, edited.text
    kept = client.get(f"{base}/invoices/{first_body['id']}", headers=session).json()
    assert kept["profile"]["bank_account"] == SPECIAL["bank_account"]

    # The operator rejects the first (its amount is free again) and issues the second.
    admin = "/billing/v1/admin/invoices"
    assert code(client.post(f"{admin}/{first_body['id']}/reject", json={"reason": "x"},
                            headers=session), 401) == "unauthorized"
    rejected = client.post(f"{admin}/{first_body['id']}/reject", headers=OPERATOR,
                           json={"reason": "The bank account does not match"})
    assert rejected.status_code == 200, rejected.text
    assert (rejected.json()["status"], rejected.json()["reject_reason"]) == (
        "rejected", "The bank account does not match")
    assert rejected.json()["rejected_at"] is not None
    assert invoiceable(client, account, session) == {
        "total": "2.00", "2026-10": "0.77", "2026-09": "1.23"}
    assert code(client.post(f"{admin}/{first_body['id']}/issue", headers=OPERATOR,
                            json={"invoice_number": "INV-1"}), 409) == "invoice_already_decided"

    issued = client.post(f"{admin}/{second.json()['id']}/issue", headers=OPERATOR,
                         json={"invoice_number": "31002600000012345678"})
    assert issued.status_code == 200, issued.text
    assert (issued.json()["status"], issued.json()["invoice_number"]) == (
        "issued", "31002600000012345678")
    again = client.post(f"{admin}/{second.json()['id']}/issue", headers=OPERATOR,
                        json={"invoice_number": "31002600000012345678"})
    assert again.status_code == 200 and again.json() == issued.json()
    assert code(client.post(f"{admin}/{second.json()['id']}/issue", headers=OPERATOR,
                            json={"invoice_number": "OTHER-2"}), 409) == "invoice_already_decided"
    assert code(client.post(f"{admin}/{second.json()['id']}/reject", headers=OPERATOR,
                            json={"reason": "late"}), 409) == "invoice_already_decided"
    assert code(client.post(f"{admin}/999/issue", headers=OPERATOR,
                            json={"invoice_number": "X-1"}), 404) == "invoice_not_found"
    assert invoiceable(client, account, session)["total"] == "2.00"  # issued stays taken

    # The freed amount can be requested again; a number is never on two invoices.
    third = client.post(f"{base}/invoices", json=want, headers=session)
    assert third.status_code == 201, third.text
    assert third.json()["amount"] == "2.00"
    assert code(client.post(f"{admin}/{third.json()['id']}/issue", headers=OPERATOR,
                            json={"invoice_number": "31002600000012345678"}),
                409) == "invoice_number_taken"
    statuses = [(i["status"], i["invoice_number"]) for i in
                client.get(f"{base}/invoices", headers=session).json()["invoices"]]
    assert statuses == [("requested", None), ("issued", "31002600000012345678"),
                        ("rejected", None)]
    issued_list = client.get(admin, params={"status": "issued"}, headers=OPERATOR).json()
    assert [i["id"] for i in issued_list["invoices"]] == [second.json()["id"]]

    # Another tenant sees none of it.
    register(client, "bob")
    bob = billing_login(client, "bob")
    for path in ("invoiceable", "invoices", f"invoices/{first_body['id']}", "invoice-profiles",
                 "mailing-addresses"):
        assert code(client.get(f"{base}/{path}", headers=bob), 403) == "forbidden"
    assert code(client.post(f"{base}/invoices", json=want, headers=bob), 403) == "forbidden"
    assert code(client.put(f"{base}/invoice-profiles/{special_id}", json=SPECIAL, headers=bob),
                403) == "forbidden"
    assert code(client.delete(f"{base}/mailing-addresses/{address_id}", headers=bob),
                403) == "forbidden"
    bob_account = client.post("/billing/v1/sessions", json={
        "username": "bob", "password": "correct horse battery"}).json()["account_id"]
    bob_base = f"/billing/v1/accounts/{bob_account}"
    # …nor through his own account's paths.
    assert code(client.get(f"{bob_base}/invoices/{first_body['id']}", headers=bob),
                404) == "invoice_not_found"
    assert code(client.put(f"{bob_base}/invoice-profiles/{special_id}", json=SPECIAL,
                           headers=bob), 404) == "invoice_profile_not_found"
    assert code(client.post(f"{bob_base}/invoices", headers=bob, json={
        "months": ["2026-10"], "profile_id": special_id}), 403) == "invoice_needs_certification"


def test_invoice_information_and_mailing_addresses(client: TestClient) -> None:
    reg = register(client)
    account, session = reg["billing_account_id"], billing_login(client)
    profiles = f"/billing/v1/accounts/{account}/invoice-profiles"
    addresses = f"/billing/v1/accounts/{account}/mailing-addresses"

    for body, expected in (
            ({**SPECIAL, "invoice_type": "paper"}, "invalid_invoice_type"),
            ({**SPECIAL, "title": " "}, "invalid_invoice_title"),
            ({**SPECIAL, "taxpayer_id": "123"}, "invalid_taxpayer_id"),
            ({**SPECIAL, "registered_address": None}, "invalid_registered_address"),
            ({**SPECIAL, "registered_phone": ""}, "invalid_registered_phone"),
            ({**SPECIAL, "registered_phone": "call me"}, "invalid_registered_phone"),
            ({**SPECIAL, "bank_name": None}, "invalid_bank_name"),
            ({**SPECIAL, "bank_account": None}, "invalid_bank_account"),
            ({**SPECIAL, "bank_account": "12-ab-34"}, "invalid_bank_account"),
            ({**ELECTRONIC, "email": None}, "invalid_email"),
            ({**ELECTRONIC, "email": "finance"}, "invalid_email")):
        assert code(client.post(profiles, json=body, headers=session), 422) == expected
    assert code(client.post(profiles, json={**SPECIAL, "colour": "red"}, headers=session),
                422) == "invalid_request"
    assert client.get(profiles, headers=session).json() == {"profiles": []}

    ordinary = client.post(profiles, headers=session, json={
        "invoice_type": "vat_ordinary", "title": "  Analytical Engines Ltd ",
        "taxpayer_id": "91310000MA1FL0XX1X"})
    assert ordinary.status_code == 201, ordinary.text
    assert ordinary.json()["title"] == "Analytical Engines Ltd"
    assert ordinary.json()["bank_account"] is None
    electronic = client.post(profiles, json=ELECTRONIC, headers=session).json()
    assert electronic["email"] == "finance@example.com"
    changed = client.put(f"{profiles}/{ordinary.json()['id']}", json=SPECIAL, headers=session)
    assert changed.status_code == 200, changed.text
    assert (changed.json()["invoice_type"], changed.json()["bank_name"]) == (
        "vat_special", "Bank of Shanghai")
    assert code(client.put(f"{profiles}/{ordinary.json()['id']}", headers=session,
                           json={**SPECIAL, "bank_name": None}), 422) == "invalid_bank_name"
    assert [p["id"] for p in client.get(profiles, headers=session).json()["profiles"]] == [
        ordinary.json()["id"], electronic["id"]]
    assert client.delete(f"{profiles}/{ordinary.json()['id']}", headers=session).status_code == 204
    assert code(client.delete(f"{profiles}/{ordinary.json()['id']}", headers=session),
                404) == "invoice_profile_not_found"
    assert code(client.put(f"{profiles}/{ordinary.json()['id']}", json=SPECIAL, headers=session),
                404) == "invoice_profile_not_found"
    assert code(client.delete(f"{profiles}/{2**31}", headers=session), 422) == "invalid_request"
    assert [p["id"] for p in client.get(profiles, headers=session).json()["profiles"]] == [
        electronic["id"]]

    for body, expected in (({**ADDRESS, "recipient": ""}, "invalid_recipient"),
                           ({**ADDRESS, "phone": "call me"}, "invalid_phone"),
                           ({**ADDRESS, "address": "x"}, "invalid_address"),
                           ({**ADDRESS, "postcode": "#1"}, "invalid_postcode"),
                           ({**ADDRESS, "email": "nobody"}, "invalid_email")):
        assert code(client.post(addresses, json=body, headers=session), 422) == expected
    created = client.post(addresses, json={**ADDRESS, "postcode": None}, headers=session)
    assert created.status_code == 201, created.text
    assert created.json()["postcode"] is None
    address_id = created.json()["id"]
    moved = client.put(f"{addresses}/{address_id}", headers=session,
                       json={**ADDRESS, "address": "2 Bund Road, Shanghai"})
    assert moved.status_code == 200 and moved.json()["address"] == "2 Bund Road, Shanghai"
    assert [a["address"] for a in client.get(addresses, headers=session).json()["addresses"]] == [
        "2 Bund Road, Shanghai"]
    assert client.delete(f"{addresses}/{address_id}", headers=session).status_code == 204
    assert client.get(addresses, headers=session).json() == {"addresses": []}
    assert code(client.put(f"{addresses}/{address_id}", json=ADDRESS, headers=session),
                404) == "mailing_address_not_found"


def test_prepaid_card_purchases_paid_with_cash_are_invoiceable_in_their_month(
        client: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    clock.set(at(10, 1))
    reg = register(client)
    account = reg["billing_account_id"]
    recharge(client, account, "600.00", "t-1")

    def purchase(key: str, face: str, when: datetime) -> None:
        clock.set(when)
        runtime.billing.instruments.buy_card(account, face, key)

    purchase("card/1", "100", at(10, 15))
    purchase("card/2", "200", at(10, 31, 23))  # 23:00 in Shanghai: still October
    purchase("card/3", "300", at(11, 1, 1))  # 01:00 on November 1st: November
    # A partner's card and a voucher move no cash: never invoiceable.
    runtime.billing.instruments.grant_card(account, "1000", "partner-1")
    runtime.billing.instruments.issue_voucher(account, "voucher_standard", "50", "gift")
    clock.set(at(11, 3))
    assert generate(client, account, "2026-10")["total"] == "0.00"
    session = billing_login(client)
    detail = client.get(f"/billing/v1/accounts/{account}/invoiceable", headers=session).json()
    assert detail["invoiceable"] == "300.00"
    assert detail["bills"] == [
        {"month": "2026-10", "bill_total": "0.00", "consumption_paid_in_cash": "0.00",
         "card_purchases_paid_in_cash": "300.00", "requested": "0.00", "invoiceable": "300.00"}]
