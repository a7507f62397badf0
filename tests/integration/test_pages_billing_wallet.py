"""The billing center's wallet pages: refusals beside their fields with nothing stored,
another account's order never shown, a form the pages never send answered with a page."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from accrual.app import Runtime
from tests.helpers import ADMIN, bearer, register
from tests.pages_support import billing_sign_in, browser_client, error_text, submit


@pytest.mark.parametrize("face_value", ["abc", "-1", "150", "1e400", "1" * 23, ""])
def test_a_refused_card_purchase_says_why_and_buys_nothing(
        client: TestClient, runtime: Runtime, face_value: str) -> None:
    ada = register(client)
    client.post(f"/billing/v1/admin/accounts/{ada['billing_account_id']}/recharges",
                headers=bearer(ADMIN), json={"amount": "500.00", "reference": "r-1"})
    with browser_client(runtime) as browser:
        billing_sign_in(browser, "ada")
        refused = submit(browser, "/billing/prepaid-cards",
                         {"face_value": face_value, "order_key": "k-1"})
        assert 400 <= refused.status_code < 500
        assert 'id="e-face_value"' in refused.text and error_text(refused)
    assert runtime.billing.instruments.cards(ada["billing_account_id"]) == []
    assert runtime.billing.wallet.overview(ada["billing_account_id"]).cash_minor == 50000


def test_too_little_cash_and_bad_codes_are_refused_beside_the_field(
        client: TestClient, runtime: Runtime) -> None:
    ada = register(client)
    with browser_client(runtime) as browser:
        billing_sign_in(browser, "ada")
        poor = submit(browser, "/billing/prepaid-cards", {"face_value": "100", "order_key": "k-2"})
        assert poor.status_code == 409 and 'id="e-face_value"' in poor.text
        for code in ("short", "ABCDEFGHJKLMNPQR", "x" * 128):
            bad = submit(browser, "/billing/vouchers", {"code": code})
            assert bad.status_code in (404, 422) and 'id="e-code"' in bad.text, code
        bad_amount = submit(browser, "/billing/recharge", {"amount": "-5", "order_key": "k-3"})
        assert bad_amount.status_code == 422 and 'id="e-amount"' in bad_amount.text
        incomplete = submit(browser, "/billing/prepaid-cards", {"face_value": "100"})
        assert incomplete.status_code == 422 and "<html" in incomplete.text
    assert runtime.billing.instruments.vouchers(ada["billing_account_id"]) == []


def test_another_accounts_recharge_order_is_not_shown(client: TestClient, runtime: Runtime) -> None:
    register(client)
    bob = register(client, "bob")
    order, _ = runtime.billing.payments.create_order(bob["billing_account_id"], "55.55", "key-bob")
    with browser_client(runtime) as browser:
        billing_sign_in(browser, "ada")
        page = browser.get(f"/billing/recharge/return?order_id={order.order_id}")
        assert page.status_code == 404 and "55.55" not in page.text


def test_the_profile_refuses_a_bad_phone_beside_it_and_saves_a_good_one(
        client: TestClient, runtime: Runtime) -> None:
    ada = register(client)
    with browser_client(runtime) as browser:
        billing_sign_in(browser, "ada")
        refused = submit(browser, "/billing/profile", {"contact_name": "Ada L", "phone": "call me"})
        assert refused.status_code == 422 and 'id="e-phone"' in refused.text
        assert runtime.billing.accounts.account(ada["billing_account_id"]).contact_name is None
        saved = submit(browser, "/billing/profile", {"contact_name": "Ada L", "phone": "+86 10-1234"})
        assert saved.status_code == 303
        page = browser.get(saved.headers["location"])
        assert "The profile was saved." in page.text and "+86 10-1234" in page.text


def test_certification_refuses_beside_the_field_then_is_fixed(client: TestClient,
                                                              runtime: Runtime) -> None:
    ada = register(client)
    with browser_client(runtime) as browser:
        billing_sign_in(browser, "ada")
        bad = submit(browser, "/billing/certification",
                     {"enterprise_name": "Ada Ltd", "taxpayer_id": "12"})
        assert bad.status_code == 422 and 'id="e-taxpayer_id"' in bad.text
        assert runtime.billing.accounts.account(ada["billing_account_id"]).certification is None
        done = submit(browser, "/billing/certification",
                      {"enterprise_name": "Ada Ltd", "taxpayer_id": "91110000123456789X"})
        assert done.status_code == 303
        shown = browser.get("/billing/certification")
        assert "91110000123456789X" in shown.text and "<form class=\"stack\"" not in shown.text
        again = submit(browser, "/billing/certification",
                       {"enterprise_name": "Other", "taxpayer_id": "91110000123456789Y"})
        assert again.status_code == 409
