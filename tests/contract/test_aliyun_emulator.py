"""The Alibaba Cloud Marketplace emulator against its checklist (marketplaces.md §6
Alibaba): SPI calls to an ISV that verifies them with the adapter, and
PushMeteringData through Alibaba's own SDKs and through hand-made requests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from alibabacloud_market20151101 import models as market_models
from alibabacloud_market20151101.client import Client as MarketClient
from alibabacloud_marketplaceintl20221230 import models as intl_models
from alibabacloud_marketplaceintl20221230.client import Client as IntlClient
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.utils_models import Config
from darabonba.runtime import ExtendsParameters, RuntimeOptions
from fastapi.testclient import TestClient

from accrual.app import Runtime
from accrual.billing.marketplaces.aliyun import SpiKind
from accrual.clock import ManualClock
from tests.conftest import make_runtime
from tests.contract.conftest_aliyun import (  # noqa: F401 - fixtures
    PRODUCT,
    T0,
    Aliyun,
    aliyun_fixture,
    aliyun_served_fixture,
)

HOUR = timedelta(hours=1)
WINDOW = (int((T0 - HOUR).replace(minute=0).timestamp()),
          int(T0.replace(minute=0).timestamp()))  # 09:00-10:00, due before 10:59


def record(instance: str, value: Any = "5", *, window: tuple[int, int] = WINDOW,
           key: str = "Frequency", **entity: Any) -> dict[str, Any]:
    return {"InstanceId": instance, "StartTime": window[0], "EndTime": window[1],
            "Entities": [{"Key": key, "Value": value, **entity}]}


def stamp(world: Aliyun) -> str:
    return world.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")


def sdk(world: Aliyun, profile: str = "china", *, signature: str = "HMAC-SHA1",
        intl_api: bool = False, secret: str | None = None) -> tuple[Any, RuntimeOptions]:
    """Alibaba's own client for a site, and runtime options carrying the test clock."""
    site = world.site(profile)
    config = Config(access_key_id=site.profile.access_key_id,
                    access_key_secret=secret or site.profile.access_key_secret,
                    endpoint=site.sdk_endpoint, protocol="http",
                    signature_algorithm="v2" if signature == "HMAC-SHA1" else None)
    extends = (ExtendsParameters(queries={"Timestamp": stamp(world)})
               if signature == "HMAC-SHA1"
               else ExtendsParameters(headers={"x-acs-date": stamp(world)}))
    client = IntlClient(config) if intl_api else MarketClient(config)
    return client, RuntimeOptions(extends_parameters=extends)


def push(world: Aliyun, records: list[dict[str, Any]], profile: str = "china",
         **options: Any) -> dict[str, Any]:
    client, runtime = sdk(world, profile, **options)
    answer = client.push_metering_data_with_options(
        market_models.PushMeteringDataRequest(metering=json.dumps(records)), runtime)
    return dict(answer.body.to_map())


def refused(world: Aliyun, records: Any, profile: str = "china", **options: Any) -> str:
    with pytest.raises(ClientException) as caught:
        client, runtime = sdk(world, profile, **options)
        metering = records if isinstance(records, str) else json.dumps(records)
        client.push_metering_data_with_options(
            market_models.PushMeteringDataRequest(metering=metering), runtime)
    return str(caught.value.code)


def raw_rpc(world: Aliyun, params: dict[str, str], *, profile: str = "china",
            secret: str | None = None, nonce: str | None = None, when: str | None = None,
            add_after: dict[str, str] | None = None) -> httpx.Response:
    """A hand-signed RPC v1 call (for what the SDK will not send)."""
    site = world.site(profile)
    signed = {"Action": "PushMeteringData", "Version": "2015-11-01", "Format": "JSON",
              "AccessKeyId": site.profile.access_key_id, "SignatureMethod": "HMAC-SHA1",
              "SignatureVersion": "1.0", "SignatureNonce": nonce or uuid.uuid4().hex,
              "Timestamp": when or stamp(world), **params}

    def enc(text: str) -> str:
        return quote(text, safe="~")
    canonical = "&".join(f"{enc(k)}={enc(signed[k])}" for k in sorted(signed))
    digest = hmac.new(f"{secret or site.profile.access_key_secret}&".encode(),
                      f"POST&%2F&{enc(canonical)}".encode(), hashlib.sha1).digest()
    signed["Signature"] = base64.b64encode(digest).decode()
    return world.http.post(site.endpoint_url + "/", params={**signed, **(add_after or {})})


# --- SPI: the marketplace calls the ISV --------------------------------------------------


def test_create_instance_is_a_signed_get_over_all_parameters_and_confirmed(
        aliyun: Aliyun) -> None:
    aliyun.product()
    bought = aliyun.buy(trial=True, term_days=30)
    assert bought["status"] == "OPENED" and bought["problems"] == []
    assert bought["instance_id"] == bought["order_biz_id"]  # the adapter's idempotent id
    assert bought["app_info"]["authUrl"].endswith(f"/spi/china/{PRODUCT}")
    first, confirm = bought["spi_calls"]
    assert (first["purpose"], confirm["purpose"]) == ("lifecycle", "confirm")
    assert confirm["params"] == first["params"] and confirm["outcome"] == "ok"
    params = first["params"]
    assert params["action"] == "createInstance" and params["trial"] == "true"
    assert params["productCode"] == PRODUCT and params["aliUid"].isdigit()
    # yyyy-MM-dd HH:mm:ss, Beijing time: 10:30 UTC + 30 days is 18:30 in Beijing.
    assert params["expiredOn"] == "2026-12-26 18:30:00"
    unknown = [name for name in params if name not in {
        "action", "aliUid", "orderBizId", "orderId", "productCode", "skuId", "trial",
        "expiredOn", "token"}]
    assert len(unknown) == 1  # a parameter the ISV cannot know, signed over by both sides
    events = [e for _, e in aliyun.isv.events]
    assert [e.kind for e in events] == [SpiKind.CREATE, SpiKind.CREATE]
    assert events[0].extra == ((unknown[0], params[unknown[0]]),)
    assert events[0].expires_at == datetime(2026, 12, 26, 10, 30, tzinfo=UTC)
    assert events[0].trial is True and events[0].account_id == params["aliUid"]


def test_create_instance_retried_until_an_id_other_than_zero(aliyun: Aliyun) -> None:
    aliyun.product()
    aliyun.isv.mode, aliyun.isv.countdown = "pending", 2
    bought = aliyun.buy()
    assert bought["status"] == "OPENING" and bought["instance_id"] is None
    assert aliyun.ctl("POST", "/control/tick") == {"attempted": 1, "ok": 0}
    assert aliyun.ctl("POST", "/control/tick") == {"attempted": 1, "ok": 1}
    (instance,) = aliyun.ctl("GET", "/control/instances")["instances"]
    assert instance["status"] == "OPENED" and instance["instance_id"] == instance["order_biz_id"]
    assert instance["problems"] == []
    assert [c["purpose"] for c in instance["spi_calls"]] == ["lifecycle", "confirm"]
    assert len(instance["spi_calls"][0]["attempts"]) == 3


def test_an_isv_answering_another_id_on_the_resent_create_is_caught(aliyun: Aliyun) -> None:
    aliyun.product()
    aliyun.isv.mode = "random_ids"
    bought = aliyun.buy()
    assert bought["status"] == "OPENED"
    (problem,) = bought["problems"]
    assert "answered instanceId" in problem and bought["instance_id"] in problem


def test_failed_calls_are_retried_and_success_may_be_a_string(aliyun: Aliyun) -> None:
    aliyun.product()
    aliyun.isv.mode, aliyun.isv.countdown = "fail_first", 2
    bought = aliyun.buy()
    first = bought["spi_calls"][0]
    assert [a["status"] for a in first["attempts"]] == [500, 500, 200]
    assert first["outcome"] == "ok" and bought["status"] == "OPENED"
    aliyun.isv.mode = "string_success"
    renewed = aliyun.ctl("POST", f"/control/instances/{bought['order_biz_id']}/renew",
                         json={"term_days": 10})
    assert renewed["spi_calls"][-1]["success_form"] == "string"
    assert renewed["spi_calls"][-1]["outcome"] == "ok"
    aliyun.isv.mode = "good"
    upgraded = aliyun.ctl("POST", f"/control/instances/{bought['order_biz_id']}/upgrade",
                          json={"sku_id": "pro"})
    assert upgraded["spi_calls"][-1]["success_form"] == "boolean"


def test_isv_failures_beyond_the_attempts_wait_for_a_tick(aliyun: Aliyun) -> None:
    aliyun.product()
    aliyun.isv.mode, aliyun.isv.countdown = "fail_first", 3
    bought = aliyun.buy()
    assert bought["status"] == "OPENING" and bought["spi_calls"][0]["outcome"] == "failed"
    assert aliyun.ctl("POST", "/control/tick")["ok"] == 1
    (instance,) = aliyun.ctl("GET", "/control/instances")["instances"]
    assert instance["status"] == "OPENED"


def test_lifecycle_opened_expired_renewed_released(aliyun: Aliyun) -> None:
    aliyun.product()
    order = aliyun.buy(term_days=30)["order_biz_id"]
    path = f"/control/instances/{order}"
    assert aliyun.ctl("POST", path + "/upgrade", json={"sku_id": "pro"})["sku_id"] == "pro"
    assert aliyun.ctl("POST", path + "/expire")["status"] == "EXPIRED"
    conflict = aliyun.ctl("POST", path + "/upgrade", expect=409, json={"sku_id": "max"})
    assert conflict["error"]["code"] == "wrong_status"
    aliyun.clock.advance(timedelta(days=40))
    renewed = aliyun.ctl("POST", path + "/renew", json={"term_days": 30})
    assert renewed["status"] == "OPENED"
    assert aliyun.ctl("POST", path + "/release", json={"refund": True})["status"] == "CLOSED"
    assert aliyun.isv.kinds() == [SpiKind.CREATE, SpiKind.CREATE, SpiKind.UPGRADE,
                                  SpiKind.EXPIRE, SpiKind.RENEW, SpiKind.RELEASE]
    events = [e for _, e in aliyun.isv.events]
    assert events[2].sku_id == "pro"
    assert events[4].expires_at == T0 + timedelta(days=70)
    assert events[5].refund is True and events[5].instance_id == order
    assert all(c["outcome"] == "ok" for c in aliyun.ctl("GET", "/control/spi-calls")["spi_calls"])


def test_login_and_the_calls_an_isv_must_refuse(aliyun: Aliyun) -> None:
    aliyun.product()
    order = aliyun.buy()["order_biz_id"]
    login = aliyun.ctl("POST", f"/control/instances/{order}/login")
    assert login["outcome"] == "ok" and login["answer"]["status"] == 302
    assert login["params"]["timeStamp"] == "2026-11-26 18:30:00"
    assert aliyun.isv.kinds()[-1] == SpiKind.LOGIN
    for kind, code in (("forged_token", "bad_token"), ("stale_verify", "stale")):
        probe = aliyun.ctl("POST", f"/control/instances/{order}/probe", json={"kind": kind})
        assert probe["problems"] == [] and probe["answer"]["status"] == 403
        assert aliyun.isv.rejected[-1] == ("china", code)
    aliyun.isv.mode = "blind"
    careless = aliyun.ctl("POST", f"/control/instances/{order}/probe",
                          json={"kind": "forged_token"})
    assert careless["problems"] == ["the ISV accepted a forged token (HTTP 302)"]


# --- PushMeteringData --------------------------------------------------------------------


@pytest.mark.parametrize("signature", ["HMAC-SHA1", "ACS3-HMAC-SHA256"])
def test_the_china_sdk_pushes_with_either_signature(aliyun: Aliyun, signature: str) -> None:
    aliyun.product()
    instance = aliyun.opened()
    answer = push(aliyun, [record(instance, "7")], signature=signature)
    assert answer["Success"] is True and answer["RequestId"]
    (pushed,) = aliyun.pushes()
    assert pushed["accepted"] and pushed["signature_method"] == signature
    assert pushed["version"] == "2015-11-01" and pushed["request_id"] == answer["RequestId"]
    (usage,) = aliyun.usage()["records"]
    assert usage["entities"] == [{"key": "Frequency", "value": "7", "metering_assist": None}]
    assert (usage["start_time"], usage["end_time"]) == WINDOW and usage["billable"]


@pytest.mark.parametrize("signature", ["HMAC-SHA1", "ACS3-HMAC-SHA256"])
def test_the_international_sdk_pushes_metering_data_fields(aliyun: Aliyun,
                                                           signature: str) -> None:
    aliyun.product("international")
    instance = aliyun.opened("international")
    client, runtime = sdk(aliyun, "international", signature=signature, intl_api=True)
    answer = client.push_metering_data_with_options(intl_models.PushMeteringDataRequest(
        gmt_create=stamp(aliyun), metering_data=[intl_models.PushMeteringDataRequestMeteringData(
            instance_id=instance, start_time=WINDOW[0], end_time=WINDOW[1],
            metering_entity='{"Frequency": "3"}', push_order_biz_id="charge-1")]), runtime)
    assert answer.body.success is True and answer.body.result is True
    (pushed,) = aliyun.pushes("international")
    assert pushed["version"] == "2022-12-30" and pushed["signature_method"] == signature
    assert pushed["records"][0]["push_order_biz_id"] == "charge-1"
    # The Market API is served on the International site as well; not the reverse.
    aliyun.clock.advance(timedelta(seconds=60))
    assert push(aliyun, [record(instance, window=(WINDOW[1], WINDOW[1] + 1200))],
                "international")["Success"] is True
    client, runtime = sdk(aliyun, "china", intl_api=True)
    with pytest.raises(ClientException) as caught:
        client.push_metering_data_with_options(intl_models.PushMeteringDataRequest(
            metering_data=[]), runtime)
    assert caught.value.code == "InvalidVersion"


def test_the_international_api_refuses_in_its_body(aliyun: Aliyun) -> None:
    aliyun.product("international")
    client, runtime = sdk(aliyun, "international", intl_api=True)
    answer = client.push_metering_data_with_options(intl_models.PushMeteringDataRequest(
        metering_data=[intl_models.PushMeteringDataRequestMeteringData(
            instance_id="404", start_time=WINDOW[0], end_time=WINDOW[1],
            metering_entity='{"Frequency": 1}')]), runtime)
    assert answer.status_code == 200 and answer.body.success is False
    assert answer.body.code == "InvalidInstanceId.NotFound"


def test_the_signature_covers_every_parameter_and_the_keys(aliyun: Aliyun) -> None:
    aliyun.product()
    instance = aliyun.opened()
    metering = json.dumps([record(instance)])
    assert raw_rpc(aliyun, {"Metering": metering}).json()["Success"] is True
    aliyun.clock.advance(timedelta(seconds=61))
    added = raw_rpc(aliyun, {"Metering": metering}, add_after={"Extra": "1"})
    assert (added.status_code, added.json()["Code"]) == (400, "SignatureDoesNotMatch")
    wrong = raw_rpc(aliyun, {"Metering": metering}, secret="not-the-secret")
    assert wrong.json()["Code"] == "SignatureDoesNotMatch"
    assert refused(aliyun, [record(instance)], secret="not-the-secret") == (
        "SignatureDoesNotMatch")
    intl_keys = aliyun.intl.profile
    other = raw_rpc(aliyun, {"Metering": metering, "AccessKeyId": intl_keys.access_key_id},
                    secret=intl_keys.access_key_secret)
    assert (other.status_code, other.json()["Code"]) == (404, "InvalidAccessKeyId.NotFound")
    unsigned = aliyun.http.post(aliyun.china.endpoint_url, params={
        "Action": "PushMeteringData", "Version": "2015-11-01", "Metering": metering})
    assert unsigned.json()["Code"] == "IncompleteSignature"
    assert len([p for p in aliyun.pushes() if p["accepted"]]) == 1


def test_nonces_are_single_use_and_timestamps_fresh(aliyun: Aliyun) -> None:
    aliyun.product()
    instance = aliyun.opened()
    metering = json.dumps([record(instance)])
    assert raw_rpc(aliyun, {"Metering": metering}, nonce="n-1").json()["Success"] is True
    aliyun.clock.advance(timedelta(seconds=61))
    again = raw_rpc(aliyun, {"Metering": metering}, nonce="n-1")
    assert again.json()["Code"] == "SignatureNonceUsed"
    old = (aliyun.clock.now() - timedelta(minutes=16)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert raw_rpc(aliyun, {"Metering": metering}, when=old).json()["Code"] == (
        "InvalidTimeStamp.Expired")
    assert raw_rpc(aliyun, {"Metering": metering}, when="yesterday").json()["Code"] == (
        "InvalidTimeStamp.Format")
    aliyun.clock.advance(timedelta(minutes=16))  # past the nonce's TTL: usable again
    assert raw_rpc(aliyun, {"Metering": metering}, nonce="n-1").json()["Success"] is True


def test_acs3_signs_the_headers_and_the_body(aliyun: Aliyun) -> None:
    aliyun.product("international")
    instance = aliyun.opened("international")
    client, runtime = sdk(aliyun, "international", signature="ACS3-HMAC-SHA256",
                          intl_api=True)
    runtime.extends_parameters.headers["x-acs-unsigned"] = "1"
    request = intl_models.PushMeteringDataRequest(metering_data=[
        intl_models.PushMeteringDataRequestMeteringData(
            instance_id=instance, start_time=WINDOW[0], end_time=WINDOW[1],
            metering_entity='{"Frequency": 1}')])
    # The SDK signs every header it sends, the extra one too: accepted.
    assert client.push_metering_data_with_options(request, runtime).body.success is True
    site = aliyun.intl
    sha = hashlib.sha256(b"MeteringData.1.InstanceId=1").hexdigest()
    forged = aliyun.http.post(site.endpoint_url + "/", content=b"MeteringData.1.InstanceId=2",
                              headers={
        "content-type": "application/x-www-form-urlencoded", "x-acs-action": "PushMeteringData",
        "x-acs-version": "2022-12-30", "x-acs-date": stamp(aliyun),
        "x-acs-signature-nonce": "n", "x-acs-content-sha256": sha,
        "authorization": f"ACS3-HMAC-SHA256 Credential={site.profile.access_key_id},"
                         "SignedHeaders=content-type;host;x-acs-action;x-acs-content-sha256;"
                         "x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=00"})
    assert forged.json()["Code"] == "SignatureDoesNotMatch"
    unsigned = aliyun.http.post(site.endpoint_url + "/", headers={
        "x-acs-action": "PushMeteringData", "x-acs-version": "2022-12-30",
        "x-acs-date": stamp(aliyun), "x-acs-signature-nonce": "m", "x-acs-extra": "1",
        "x-acs-content-sha256": hashlib.sha256(b"").hexdigest(),
        "authorization": f"ACS3-HMAC-SHA256 Credential={site.profile.access_key_id},"
                         "SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;"
                         "x-acs-signature-nonce;x-acs-version,Signature=00"})
    assert unsigned.json()["Code"] == "IncompleteSignature"


def test_the_metering_parameter_and_its_records_are_checked(aliyun: Aliyun) -> None:
    aliyun.product(items={"Frequency": [], "Storage": ["cmapi00012345-Storage-1",
                                                      "cmapi00012345-Storage-2"]})
    aliyun.product(code="cmapi00099999")
    instance = aliyun.opened()
    other = aliyun.opened(code="cmapi00099999")
    assert refused(aliyun, "not json") == "InvalidParameter.Metering"
    assert refused(aliyun, {"InstanceId": instance}) == "InvalidParameter.Metering"
    assert refused(aliyun, []) == "InvalidParameter.Metering"
    assert refused(aliyun, [record(instance)] * 101) == "InvalidParameter.Metering"
    assert refused(aliyun, [record("nope")]) == "InvalidInstanceId.NotFound"
    assert refused(aliyun, [record(instance), record(other)]) == (
        "InvalidParameter.ProductMismatch")
    assert refused(aliyun, [record(instance, window=(WINDOW[1], WINDOW[0]))]) == (
        "InvalidParameter.MeteringTime")
    assert refused(aliyun, [record(instance, window=(WINDOW[0], WINDOW[0] + 300))]) == (
        "InvalidParameter.MeteringTime")  # an hourly product: more than 5 minutes
    future = int((T0 + HOUR).timestamp())
    assert refused(aliyun, [record(instance, window=(future - 600, future))]) == (
        "InvalidParameter.MeteringTime")
    assert refused(aliyun, [record(instance, key="Period")]) == "InvalidParameter.MeteringKey"
    assert refused(aliyun, [record(instance, key="Storage")]) == "InvalidParameter.MeteringKey"
    assert refused(aliyun, [record(instance, "-1")]) == "InvalidParameter.MeteringValue"
    assert refused(aliyun, [record(instance, True)]) == "InvalidParameter.MeteringValue"
    assert not any(p["accepted"] for p in aliyun.pushes())
    # 100 records, string times as in Alibaba's sample, a meteringAssit of the product's.
    batch = [record(instance, window=(WINDOW[0] + n, WINDOW[1])) for n in range(99)]
    batch.append({**record(instance, "1.5", key="Storage",
                           meteringAssit="cmapi00012345-Storage-2"),
                  "StartTime": str(WINDOW[0]), "EndTime": str(WINDOW[1])})
    assert push(aliyun, batch)["Success"] is True
    assert len(aliyun.usage()["records"]) == 100


def test_one_push_per_instance_a_minute_and_no_deduplication(aliyun: Aliyun) -> None:
    aliyun.product()
    first, second = aliyun.opened(), aliyun.opened()
    assert push(aliyun, [record(first), record(first, window=(WINDOW[1], WINDOW[1] + 1200))])[
        "Success"]
    aliyun.clock.advance(timedelta(seconds=59))
    assert refused(aliyun, [record(second), record(first)]) == "Throttling.Instance"
    assert push(aliyun, [record(second)])["Success"]  # another instance is not held back
    aliyun.clock.advance(timedelta(seconds=1))
    assert push(aliyun, [record(first)])["Success"]  # the same window again: billed again
    counts = aliyun.usage()["pushes_per_window"]
    assert counts[f"{first}|Frequency|{WINDOW[0]}|{WINDOW[1]}"] == 2
    assert counts[f"{second}|Frequency|{WINDOW[0]}|{WINDOW[1]}"] == 1
    assert [p["error_code"] for p in aliyun.pushes()] == [None, "Throttling.Instance", None, None]


def test_the_billing_deadline_hourly_and_daily(aliyun: Aliyun) -> None:
    aliyun.product()
    aliyun.product(code="cmapi00077777", billing="daily")
    hourly, daily = aliyun.opened(), aliyun.opened(code="cmapi00077777")
    eight = datetime(2026, 11, 26, 8, 10, tzinfo=UTC)
    window = (int(eight.timestamp()), int((eight + timedelta(minutes=10)).timestamp()))
    aliyun.clock.set(datetime(2026, 11, 26, 9, 58, 59, tzinfo=UTC))
    assert push(aliyun, [record(hourly, window=window)])["Success"]
    aliyun.clock.set(datetime(2026, 11, 26, 9, 59, 0, tzinfo=UTC) + timedelta(seconds=60))
    assert refused(aliyun, [record(hourly, window=window)]) == "MeteringDataExpired"
    # Daily: Beijing's 26 November is due before 01:59 on the 27th, Beijing time.
    day = (int(datetime(2026, 11, 25, 16, tzinfo=UTC).timestamp()),
           int(datetime(2026, 11, 26, 16, tzinfo=UTC).timestamp()))
    aliyun.clock.set(datetime(2026, 11, 26, 17, 58, tzinfo=UTC))
    assert push(aliyun, [record(daily, window=day)])["Success"]
    aliyun.clock.set(datetime(2026, 11, 26, 17, 59, tzinfo=UTC))
    assert refused(aliyun, [record(daily, window=day)]) == "MeteringDataExpired"


def test_usage_after_the_instance_ended_is_taken_but_never_billed(aliyun: Aliyun) -> None:
    aliyun.product()
    order = aliyun.buy()["order_biz_id"]
    aliyun.clock.set(T0.replace(minute=20))  # expires 10:20
    aliyun.ctl("POST", f"/control/instances/{order}/expire")
    aliyun.clock.set(T0.replace(hour=11, minute=5))
    this_hour = (int(T0.replace(minute=0).timestamp()), int(T0.replace(hour=11,
                                                                       minute=0).timestamp()))
    before = (this_hour[0] - 3600, this_hour[0])
    assert refused(aliyun, [record(order, window=before)]) == "MeteringDataExpired"
    aliyun.clock.set(T0.replace(hour=10, minute=58))
    later = (int(T0.replace(minute=25).timestamp()), int(T0.replace(minute=40).timestamp()))
    assert push(aliyun, [record(order, window=(this_hour[0], later[0])),
                         record(order, window=later)])["Success"]
    billable = [r["billable"] for r in aliyun.usage()["records"]]
    assert billable == [True, False]


def test_faults_and_profiles(aliyun: Aliyun) -> None:
    aliyun.product()
    instance = aliyun.opened()
    aliyun.ctl("POST", "/control/faults", json={"kind": "throttling", "calls": 1})
    aliyun.ctl("POST", "/control/faults", json={"kind": "internal_error", "calls": 1})
    assert refused(aliyun, [record(instance)]) == "Throttling.User"
    with pytest.raises(Exception) as server:
        push(aliyun, [record(instance)])
    assert getattr(server.value, "code", None) == "InternalError"
    assert push(aliyun, [record(instance)])["Success"]
    china = aliyun.ctl("GET", "/control/config")
    intl = aliyun.ctl("GET", "/control/config", profile="international")
    assert (china["currency"], intl["currency"]) == ("CNY", "USD")
    assert china["access_key_id"] != intl["access_key_id"]
    assert china["sdk_endpoint"].endswith("/sandbox/aliyun")
    assert intl["sdk_endpoint"].endswith("/sandbox/aliyun-intl")
    only_v3 = aliyun.ctl("PUT", "/control/config", json={"signatures": ["ACS3-HMAC-SHA256"]})
    assert only_v3["signatures"] == ["ACS3-HMAC-SHA256"]
    aliyun.clock.advance(timedelta(seconds=61))
    assert refused(aliyun, [record(instance)]) == "IncompleteSignature"
    assert push(aliyun, [record(instance)], signature="ACS3-HMAC-SHA256")["Success"]


# --- mounted in the app, and alone -------------------------------------------------------


def test_the_app_mounts_both_sites_out_of_the_schema(runtime: Runtime,
                                                      client: TestClient) -> None:
    assert runtime.aliyun_sandbox is not None and runtime.aliyun_intl_sandbox is not None
    assert runtime.aliyun_sandbox.sdk_endpoint == "127.0.0.1:8000/sandbox/aliyun"
    assert client.get("/sandbox/aliyun-intl/control/config").json()["currency"] == "USD"
    unsigned = client.post("/sandbox/aliyun/", params={"Action": "PushMeteringData"})
    assert unsigned.json()["Code"] == "IncompleteSignature"
    paths = client.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith("/sandbox/aliyun")]


def test_off_mounts_neither(tmp_path: Path, pg_databases: tuple[str, str] | None,
                            clock: ManualClock) -> None:
    runtime = make_runtime(tmp_path, pg_databases, clock, aliyun_marketplace="off")
    try:
        assert runtime.aliyun_sandbox is None and runtime.aliyun_intl_sandbox is None
        with TestClient(runtime.app) as client:
            assert client.post("/sandbox/aliyun/control/reset").status_code == 404
    finally:
        runtime.console.engine.dispose()
        runtime.billing.engine.dispose()


def test_the_command_serves_both_sites_alone() -> None:
    from typer.testing import CliRunner

    from accrual.cli import app

    shown = CliRunner().invoke(app, ["sandbox", "aliyun", "--help"])
    assert shown.exit_code == 0 and "aliyun-intl" in shown.output
