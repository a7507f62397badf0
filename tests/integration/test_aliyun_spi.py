"""The Alibaba Cloud Marketplace SPI endpoint in process: calls signed here as Alibaba
signs them (MD5 ``token`` with the ISV key), each refusal with its code and nothing
stored, retries answered as the first, and the USD center on the International site."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from accrual.app import Runtime
from accrual.billing.adapters import tables as t
from accrual.billing.marketplaces.aliyun import BEIJING, SPI_TIME_FORMAT, spi_token
from accrual.clock import ManualClock
from tests.conftest import make_runtime
from tests.helpers import register

SPI = "/billing/v1/marketplaces/aliyun/spi"
PRODUCT = "cmapi00012345"


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(runtime.app) as test_client:
        yield test_client


def call(client: TestClient, runtime: Runtime, action: str, key: str | None = None,
         **params: str) -> Any:
    signed = {"action": action, **params}
    signed["token"] = spi_token(signed, key or runtime.settings.resolve_aliyun_spi_key())
    return client.get(f"{SPI}?{urlencode(signed)}", follow_redirects=False)


def create(client: TestClient, runtime: Runtime, order: str = "1000000000001",
           uid: str = "2000000000000001", product: str = PRODUCT) -> Any:
    return call(client, runtime, "createInstance", aliUid=uid, orderBizId=order,
                orderId="3000000000000001", productCode=product, skuId="standard",
                trial="false")


def count(runtime: Runtime, table: Any) -> int:
    with runtime.billing.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def status(runtime: Runtime, instance: str) -> str:
    c = t.cloud_accounts
    with runtime.billing.engine.connect() as conn:
        return str(conn.execute(select(c.c.status).where(c.c.license_ref == instance)).scalar_one())


def refused(answer: Any, status_code: int, code: str) -> None:
    assert answer.status_code == status_code, answer.text
    body = answer.json()
    assert (body["success"], body["error"]["code"]) == (False, code), body


def test_create_is_idempotent_and_answers_the_activation(
        runtime: Runtime, client: TestClient) -> None:
    first = create(client, runtime)
    assert first.status_code == 200, first.text
    answer = first.json()
    assert answer["instanceId"] == "1000000000001"
    assert answer["appInfo"]["authUrl"].endswith(SPI)
    activation = answer["appInfo"]["frontEndUrl"].rsplit("/", 1)[1]
    again = create(client, runtime).json()  # Alibaba retries: the same answer
    assert again == answer
    assert count(runtime, t.cloud_accounts) == 1
    seen = client.get(f"/billing/v1/marketplaces/activations/{activation}").json()
    assert (seen["vendor"], seen["buyer_account_id"]) == ("aliyun", "2000000000000001")


def test_refusals_store_nothing(runtime: Runtime, client: TestClient) -> None:
    refused(create(client, runtime, product="someone-elses"), 403, "wrong_product")
    refused(call(client, runtime, "createInstance", key="not-the-key", aliUid="1",
                 orderBizId="2", orderId="3", productCode=PRODUCT, skuId="s", trial="false"),
            403, "bad_token")
    refused(client.get(f"{SPI}?action=createInstance&aliUid=1"), 403, "missing_token")
    refused(call(client, runtime, "deleteEverything", instanceId="1"), 422, "unknown_action")
    refused(call(client, runtime, "renewInstance", instanceId="1"), 422, "malformed")
    refused(client.get(f"{SPI}?action=verify&action=verify&token=x"), 422, "malformed")
    assert count(runtime, t.cloud_accounts) == 0
    assert count(runtime, t.marketplace_notifications) == 0


def test_lifecycle_retries_are_duplicates_and_verify_is_used_once(
        runtime: Runtime, client: TestClient, clock: ManualClock) -> None:
    instance = create(client, runtime).json()["instanceId"]
    activation = create(client, runtime).json()["appInfo"]["frontEndUrl"].rsplit("/", 1)[1]
    register(client, "ada", activation_id=activation)
    now = clock.now().astimezone(BEIJING).strftime(SPI_TIME_FORMAT)
    login = call(client, runtime, "verify", instanceId=instance, timeStamp=now)
    assert login.status_code == 303 and "/marketplaces/activations/act_" in \
        login.headers["location"]
    refused(call(client, runtime, "verify", instanceId=instance, timeStamp=now), 409,
            "spi_replayed")
    stale = (clock.now() - timedelta(minutes=6)).astimezone(BEIJING).strftime(SPI_TIME_FORMAT)
    refused(call(client, runtime, "verify", instanceId=instance, timeStamp=stale), 403, "stale")
    refused(call(client, runtime, "verify", instanceId="no-such", timeStamp=now), 404,
            "unknown_instance")

    expire = call(client, runtime, "expiredInstance", instanceId=instance)
    assert expire.json() == {"success": True} and status(runtime, instance) == "suspended"
    clock.advance(timedelta(seconds=1))
    now = clock.now().astimezone(BEIJING).strftime(SPI_TIME_FORMAT)
    refused(call(client, runtime, "verify", instanceId=instance, timeStamp=now), 409,
            "instance_not_active")
    renew = {"instanceId": instance, "orderId": "3000000000000002",
             "expiredOn": "2027-01-26 10:00:00"}
    assert call(client, runtime, "renewInstance", **renew).json() == {"success": True}
    assert status(runtime, instance) == "active"
    notes = count(runtime, t.marketplace_notifications)
    assert call(client, runtime, "renewInstance", **renew).json() == {"success": True}
    assert count(runtime, t.marketplace_notifications) == notes  # a retry: nothing new
    upgrade = call(client, runtime, "upgradeInstance", instanceId=instance,
                   orderId="3000000000000003", skuId="premium")
    assert upgrade.json() == {"success": True} and status(runtime, instance) == "active"
    # A release for an instance never seen here is answered (Alibaba stops retrying).
    unknown = call(client, runtime, "releaseInstance", instanceId="no-such", isRefund="true")
    assert unknown.json() == {"success": True}
    release = call(client, runtime, "releaseInstance", instanceId=instance, isRefund="false",
                   orderId="3000000000000003")
    assert release.json() == {"success": True} and status(runtime, instance) == "cancelled"
    refused(create(client, runtime), 409, "instance_released")


def test_a_center_without_the_listing_answers_not_configured(
        tmp_path: Path, pg_databases: tuple[str, str] | None, clock: ManualClock) -> None:
    runtime = make_runtime(tmp_path, pg_databases, clock, aliyun_marketplace="off")
    try:
        assert "aliyun" not in runtime.billing.marketplaces
        with TestClient(runtime.app) as client:
            answer = client.get(f"{SPI}?action=createInstance&token=x")
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "marketplace_not_configured"
        assert runtime.aliyun_sandbox is None
    finally:
        runtime.console.engine.dispose()
        runtime.billing.engine.dispose()


def test_a_usd_center_sells_on_the_international_site(
        tmp_path: Path, pg_databases: tuple[str, str] | None, clock: ManualClock) -> None:
    runtime = make_runtime(tmp_path, pg_databases, clock, site="us1", site_group="intl",
                           currency="USD")
    try:
        adapter = runtime.billing.marketplaces.get("aliyun")
        assert (adapter.vendor, getattr(adapter, "currency", None)) == ("aliyun", "USD")
        assert adapter.listing.usage_api() == "marketplaceintl"
        assert runtime.aliyun_intl_sandbox is not None and runtime.aliyun_sandbox is not None
        assert list(runtime.aliyun_intl_sandbox.state.products) == [PRODUCT]
        assert runtime.aliyun_sandbox.state.products == {}
        with TestClient(runtime.app) as client:
            answer = create(client, runtime)
            assert answer.status_code == 200, answer.text
            activation = answer.json()["appInfo"]["frontEndUrl"].rsplit("/", 1)[1]
            reg = register(client, "ada", activation_id=activation)
            accounts = client.get(f"/billing/v1/accounts/{reg['billing_account_id']}",
                                  headers={"Authorization": f"Bearer {runtime.admin_token}"})
            [workspace] = accounts.json()["workspaces"]
            assert workspace["settlement_method"] == "aliyun"
    finally:
        runtime.console.engine.dispose()
        runtime.billing.engine.dispose()
