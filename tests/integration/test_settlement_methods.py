"""Changing a workspace's settlement method: linked cloud accounts, next-day effect, once a
month, and what a cloud-settled day is paid from (vouchers and cards first, then the cloud)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from accrual.app import Runtime, create_app
from accrual.billing.adapters import tables as t
from accrual.clock import ManualClock
from accrual.contract.errors import Conflict, Invalid, NotFound
from tests.conftest import SHANGHAI
from tests.helpers import bearer
from tests.integration.test_instruments import audit, overview, spent
from tests.integration.test_settlement_batches import cheap_passwords, detail, tenant

__all__ = ["cheap_passwords"]

TODAY = date(2026, 11, 26)  # the conftest clock's day in Shanghai
TOMORROW = TODAY + timedelta(days=1)


@pytest.fixture
def ada(runtime: Runtime, clock: ManualClock, cheap_passwords: None) -> tuple[str, str]:
    return tenant(runtime, clock, "ada")


def test_a_marketplace_needs_a_linked_cloud_account(runtime: Runtime,
                                                    ada: tuple[str, str]) -> None:
    ws, account = ada
    methods = runtime.billing.methods
    with pytest.raises(Conflict) as refused:
        methods.change(account, ws, "aws")
    assert refused.value.code == "cloud_account_required"
    with pytest.raises(Invalid) as azure:
        methods.change(account, ws, "azure")  # decisions.md 14: USD centers only
    assert azure.value.code == "method_not_available"
    with pytest.raises(Conflict) as same:
        methods.change(account, ws, "billing_center")
    assert same.value.code == "settlement_unchanged"
    with pytest.raises(NotFound):
        methods.change(account, "someone-elses", "billing_center")
    with runtime.billing.engine.connect() as conn:
        assert conn.execute(select(t.settlement_changes)).all() == []


def test_a_change_applies_from_the_next_day_once_a_month(
        runtime: Runtime, clock: ManualClock, ada: tuple[str, str]) -> None:
    ws, account = ada
    methods = runtime.billing.methods
    _, created = methods.link_cloud_account(account, "aws", "123456789012")
    assert created and methods.link_cloud_account(account, "aws", "123456789012")[1] is False
    changed = methods.change(account, ws, "aws")
    assert changed.bound.effective_from == TOMORROW
    assert changed.from_method == "billing_center" and changed.bound.settlement_method == "aws"
    # Today settles as it began; tomorrow by the marketplace.
    with runtime.billing.engine.connect() as conn:
        assert runtime.billing.accounts.binding_in_force(conn, ws, TODAY).settlement_method \
            == "billing_center"
        assert runtime.billing.accounts.binding_in_force(conn, ws, TOMORROW).settlement_method \
            == "aws"
    with pytest.raises(Conflict) as limit:
        methods.change(account, ws, "billing_center")
    assert limit.value.code == "settlement_change_limit"
    assert "2026-12-01" in limit.value.message
    clock.set(datetime(2026, 12, 1, 0, 1, tzinfo=SHANGHAI))
    back = methods.change(account, ws, "billing_center")
    assert back.bound.effective_from == date(2026, 12, 2) and back.from_method == "aws"


def test_a_cloud_settled_day_spends_vouchers_and_cards_then_the_cloud_account(
        runtime: Runtime, clock: ManualClock, ada: tuple[str, str]) -> None:
    ws, account = ada
    billing = runtime.billing
    billing.wallet.recharge(account, "100", "t")
    billing.methods.link_cloud_account(account, "huawei", "hw-0042")
    billing.methods.change(account, ws, "huawei")
    voucher = billing.instruments.issue_voucher(account, "voucher_standard", "10", "v").voucher.number
    card = billing.instruments.grant_card(account, "100", "c").card.number
    today = detail(ws, "5.00")  # still the wallet's day: the voucher pays
    logs = detail(ws, "150.00", day=TOMORROW)
    sms = detail(ws, "3.00", day=TOMORROW, item="sms")
    billing.inbox.deliver([today, logs, sms])
    assert spent(runtime, today.id) == {voucher: 500}
    # The wallet's cash is never used for a cloud-settled workspace.
    assert spent(runtime, logs.id) == {voucher: 500, card: 10000, "cloud_receivable": 4500}
    assert spent(runtime, sms.id) == {"cloud_receivable": 300}  # vouchers never pay SMS
    assert overview(runtime, account) == {"currency": "CNY", "cash": "100.00",
                                          "vouchers": "0.00", "prepaid_cards": "0.00",
                                          "arrears": "0.00"}
    with billing.engine.connect() as conn:
        methods = {r.detail_id: r.settlement_method for r in conn.execute(
            select(t.charges.c.detail_id, t.charges.c.settlement_method))}
    assert methods == {today.id: "billing_center", logs.id: "huawei", sms.id: "huawei"}
    # A correction gives the cloud its share back first, never cash.
    fix = detail(ws, "-50.00", day=TOMORROW, revision=1)
    billing.inbox.deliver([fix])
    assert spent(runtime, fix.id) == {"cloud_receivable": -4500, card: -500}
    assert overview(runtime, account)["cash"] == "100.00"
    audit(runtime)


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime)) as test_client:
        yield test_client


def test_settlement_methods_over_http(runtime: Runtime, client: TestClient,
                                      ada: tuple[str, str]) -> None:
    ws, account = ada
    operator = bearer(runtime.admin_token)
    base = f"/billing/v1/accounts/{account}"
    refused = client.put(f"{base}/workspaces/{ws}/settlement-method", headers=operator,
                         json={"settlement_method": "aliyun"})
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "cloud_account_required"
    linked = client.post(f"/billing/v1/admin/accounts/{account}/cloud-accounts", headers=operator,
                         json={"vendor": "aliyun", "cloud_account_id": "ali-7"})
    assert linked.status_code == 201, linked.text
    again = client.post(f"/billing/v1/admin/accounts/{account}/cloud-accounts", headers=operator,
                        json={"vendor": "aliyun", "cloud_account_id": "ali-7"})
    assert again.status_code == 200
    assert [c["vendor"] for c in client.get(f"{base}/cloud-accounts", headers=operator).json()] \
        == ["aliyun"]
    changed = client.put(f"{base}/workspaces/{ws}/settlement-method", headers=operator,
                         json={"settlement_method": "aliyun"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["effective_from"] == TOMORROW.isoformat()
    bad = client.put(f"{base}/workspaces/{ws}/settlement-method", headers=operator,
                     json={"settlement_method": "cash"})
    assert bad.status_code == 422
