"""The KooGallery emulator, one test per item of marketplaces.md §6 Huawei: the
activities it sends (signature, probes, result codes, timeout, retries, Body-Sign,
idempotency, lifecycle) against an ISV built on the adapter, and the usage push it
serves (signature, batch size, formats, values, metering_sn, packages, deferred
validation, deadline)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from accrual.app import Runtime
from accrual.billing.marketplaces.huawei import ActivityKind
from accrual.clock import ManualClock
from tests.conftest import make_runtime
from tests.contract import conftest_huawei
from tests.contract.conftest_huawei import ACCESS_KEY, PRODUCT, SECRET_KEY, SKU, T0, Huawei

# The shared fixtures, bound by name here (pytest finds fixtures in a module's namespace).
huawei_served = conftest_huawei.huawei_served
huawei = conftest_huawei.huawei
HOUR = timedelta(hours=1)


def _hmac(key: str, data: bytes) -> bytes:
    return hmac.new(key.encode(), data, hashlib.sha256).digest()


def _only(calls: list[dict[str, Any]], activity: str) -> list[dict[str, Any]]:
    return [c for c in calls if c["activity"] == activity and c["probe"] is None]


# --- activities ---------------------------------------------------------------------


def test_activities_are_signed_posts_with_ms_timestamp_and_nonce(huawei: Huawei) -> None:
    huawei.product()
    bought = huawei.order(customer_id="hw-buyer-1")
    [call] = huawei.calls()
    attempt = call["attempts"][0]
    assert call["url"] == f"{huawei.isv_url}/isv/newInstance" and call["outcome"] == "succeeded"
    query, body = attempt["query"], attempt["body"].encode()
    assert query["timestamp"] == str(int(T0.timestamp()) * 1000)  # milliseconds
    canonical = ACCESS_KEY + query["nonce"] + query["timestamp"] + _hmac(ACCESS_KEY, body).hex()
    assert query["signature"] == _hmac(ACCESS_KEY, canonical.encode()).hex()
    fields = json.loads(body)
    assert fields["orderId"] == bought["order"]["order_id"]
    assert fields["buyerInfo"]["customerId"] == "hw-buyer-1"
    assert fields["orderInfo"][0]["productInfo"][0] == {"skuCode": SKU, "productId": PRODUCT,
                                                       "linearValue": 1}
    [seen] = huawei.isv.received
    assert seen.kind == ActivityKind.CREATE and seen.account_id == "hw-buyer-1"
    assert huawei.orders()[0]["status"] == "active"


def test_hex_case_and_the_hmac_key_reading_are_switches(huawei: Huawei) -> None:
    huawei.product()
    huawei.ctl("PUT", "/control/config", json={"hex_case": "upper"})
    huawei.order()
    [call] = huawei.calls()
    signature = call["attempts"][0]["query"]["signature"]
    assert signature == signature.upper() and call["outcome"] == "succeeded"  # compared /i
    huawei.ctl("PUT", "/control/config", json={"hmac_key": "secret_key", "hex_case": "lower"})
    huawei.order()  # the ISV still reads the key as the access key: refused
    assert huawei.calls()[-1]["attempts"][0]["result_code"] == "000001"
    assert huawei.isv.refused == ["bad_signature"]
    huawei.isv.reset(huawei.listing(hmac_key="secret_key", secret_key=SECRET_KEY))
    huawei.order()
    assert huawei.calls()[-1]["outcome"] == "succeeded"


def test_unknown_body_fields_are_signed_too(huawei: Huawei) -> None:
    huawei.product()
    huawei.ctl("PUT", "/control/config", json={"extra_fields": True})
    huawei.order()
    [call] = huawei.calls()
    assert "sandboxUnknownField" in json.loads(call["attempts"][0]["body"])
    assert call["outcome"] == "succeeded"


def test_stale_replayed_and_forged_probes_must_be_refused(huawei: Huawei) -> None:
    huawei.product()
    order_id = huawei.order()["order"]["order_id"]
    for kind in ("stale", "replay", "bad_signature"):
        probe = huawei.ctl("POST", f"/control/orders/{order_id}/probe", json={"kind": kind})
        assert probe["outcome"] == "rejected", (kind, probe)
        assert probe["attempts"][0]["result_code"] == "000001"
    assert huawei.isv.refused == ["stale", "replayed", "bad_signature"]
    [sent] = _only(huawei.calls(), "newInstance")
    replay = huawei.calls()[-2]
    assert replay["attempts"][0]["query"] == sent["attempts"][0]["query"]  # byte for byte
    assert replay["attempts"][0]["body"] == sent["attempts"][0]["body"]
    huawei.isv.mode = "naive"  # an ISV that checks nothing is caught
    assert huawei.ctl("POST", f"/control/orders/{order_id}/probe",
                      json={"kind": "replay"})["outcome"] == "accepted"
    huawei.ctl("POST", "/control/orders/nope/probe", json={"kind": "stale"}, expect=404)


def test_processing_means_poll_query_instance_later(huawei: Huawei) -> None:
    huawei.product()
    huawei.isv.mode = "processing"
    huawei.isv.pending_queries = 1
    order = huawei.order()["order"]
    [state] = huawei.orders()
    assert state["status"] == "provisioning" and state["instance_id"]
    first = huawei.ctl("POST", "/control/tick")
    assert len(first["polled"]) == 1 and huawei.orders()[0]["status"] == "provisioning"
    huawei.ctl("POST", "/control/tick")
    [state] = huawei.orders()
    assert state["status"] == "active" and state["order_id"] == order["order_id"]
    queries = [a.instance_ids for a in huawei.isv.received if a.activity == "queryInstance"]
    assert queries == [(state["instance_id"],)] * 2


def test_failed_calls_are_retried_hourly_three_times(huawei: Huawei) -> None:
    huawei.product()
    huawei.isv.mode = "http_500"
    huawei.order()
    assert huawei.ctl("POST", "/control/tick")["retried"] == []  # not due yet
    for attempt in range(2, 5):
        huawei.clock.advance(HOUR)
        assert len(huawei.ctl("POST", "/control/tick")["retried"]) == 1
        [call] = huawei.calls()
        assert len(call["attempts"]) == attempt
    assert call["outcome"] == "gave_up" and huawei.orders()[0]["status"] == "failed"
    bodies = [json.loads(a["body"]) for a in call["attempts"]]
    assert len({b["businessId"] for b in bodies}) == 4  # new on every request
    assert len({b["orderId"] for b in bodies}) == 1
    assert len({a["query"]["nonce"] for a in call["attempts"]}) == 4
    huawei.clock.advance(HOUR)
    assert huawei.ctl("POST", "/control/tick")["retried"] == []


def test_a_retry_that_succeeds_ends_the_schedule(huawei: Huawei) -> None:
    huawei.product()
    huawei.isv.fail_next = 1
    huawei.order()
    huawei.clock.advance(HOUR)
    huawei.ctl("POST", "/control/tick")
    [call] = huawei.calls()
    assert [a["status"] for a in call["attempts"]] == [500, 200]
    assert call["outcome"] == "succeeded" and huawei.orders()[0]["status"] == "active"


def test_a_slow_isv_times_out_and_counts_as_a_failure(huawei: Huawei) -> None:
    huawei.product()
    huawei.sandbox.config.request_timeout_s = 0.2  # 5 s by default
    huawei.isv.mode, huawei.isv.delay_s = "slow", 0.6
    huawei.order()
    [call] = huawei.calls()
    assert "Timeout" in call["attempts"][0]["error"] and call["outcome"] == "pending"
    assert call["next_at"] == (T0 + HOUR).isoformat()


@pytest.mark.parametrize(("mode", "problem"), [
    ("no_body_sign", "bodySign is empty"),
    ("wrong_sign_type", "sign_type is not equals HMAC-SHA256"),
    ("tampered", "bodySign does not match the body"),
])
def test_the_answers_body_sign_is_checked(huawei: Huawei, mode: str, problem: str) -> None:
    huawei.product()
    huawei.isv.mode = mode  # type: ignore[assignment]
    huawei.order()
    [call] = huawei.calls()
    assert call["attempts"][0]["body_sign"] == problem and call["outcome"] == "pending"
    huawei.ctl("PUT", "/control/config", json={"require_body_sign": False})
    huawei.clock.advance(HOUR)
    huawei.ctl("POST", "/control/tick")
    assert huawei.calls()[0]["outcome"] == "succeeded"


def test_a_resent_new_instance_must_get_the_same_instance_id(huawei: Huawei) -> None:
    huawei.product()
    order = huawei.order()["order"]
    again = huawei.ctl("POST", f"/control/orders/{order['order_id']}/resend")
    assert again["outcome"] == "succeeded" and again["violations"] == []
    first, second = (json.loads(c["attempts"][0]["body"]) for c in huawei.calls())
    assert first["businessId"] != second["businessId"]
    assert first["orderLineId"] == second["orderLineId"]
    answers = [json.loads(c["attempts"][0]["answer"])["instanceId"] for c in huawei.calls()]
    assert answers[0] == answers[1] == huawei.orders()[0]["instance_id"]
    huawei.isv.mode = "naive"  # instanceId = businessId: another one every time
    caught = huawei.ctl("POST", f"/control/orders/{order['order_id']}/resend")
    assert caught["violations"] and "differs" in caught["violations"][0]


def test_pay_per_use_idempotency_is_by_order_and_product(huawei: Huawei) -> None:
    huawei.product(charging_mode="ON_DEMAND")
    order = huawei.order()["order"]
    huawei.ctl("POST", f"/control/orders/{order['order_id']}/resend")
    created = [a for a in huawei.isv.received if a.activity == "newInstance"]
    assert created[0].charging_mode == "ON_DEMAND"
    assert {huawei.isv.market.instance_id_for(a) for a in created} == {  # type: ignore[union-attr]
        huawei.orders()[0]["instance_id"]}


def test_the_lifecycle_tells_the_isv_every_change(huawei: Huawei) -> None:
    huawei.product()
    order_id = huawei.order(trial=True)["order"]["order_id"]
    path = f"/control/orders/{order_id}"
    huawei.ctl("POST", f"{path}/refresh", json={"scene": "TRIAL_TO_FORMAL"})
    renewed = huawei.ctl("POST", f"{path}/refresh", json={"scene": "RENEWAL"})
    assert renewed["order"]["expires_at"] == (T0 + timedelta(days=90)).isoformat()
    huawei.ctl("POST", f"{path}/refresh", json={"scene": "UNSUBSCRIBE_RENEWAL_PERIOD"})
    huawei.ctl("POST", f"{path}/upgrade", json={"sku_code": "sku-bigger"})
    huawei.ctl("POST", f"{path}/unfreeze", expect=409)  # not frozen
    assert huawei.ctl("POST", f"{path}/freeze")["order"]["status"] == "frozen"
    huawei.ctl("POST", f"{path}/upgrade", json={}, expect=409)  # frozen
    assert huawei.ctl("POST", f"{path}/unfreeze")["order"]["status"] == "active"
    huawei.ctl("POST", "/control/query", json={"order_ids": [order_id]})
    assert huawei.ctl("POST", f"{path}/release", json={})["order"]["status"] == "released"
    huawei.ctl("POST", f"{path}/freeze", expect=409)
    kinds = [a.kind for a in huawei.isv.received]
    assert kinds == [ActivityKind.CREATE, ActivityKind.TRIAL_TO_FORMAL, ActivityKind.RENEW,
                     ActivityKind.UNSUBSCRIBE_RENEWAL, ActivityKind.UPGRADE,
                     ActivityKind.FREEZE, ActivityKind.UNFREEZE, ActivityKind.QUERY,
                     ActivityKind.CANCEL]
    instance = huawei.orders()[0]["instance_id"]
    assert all(a.instance_id == instance for a in huawei.isv.received[1:]
               if a.kind != ActivityKind.QUERY)
    assert all(c["outcome"] == "succeeded" for c in huawei.calls())


# --- the usage push -------------------------------------------------------------------


def _record(instance_id: str, sn: str, value: str = "1.5", **overrides: Any) -> dict[str, Any]:
    return {"instance_id": instance_id, "record_time": "20261126T103000Z",
            "begin_time": "20261126T090000Z", "end_time": "20261126T100000Z",
            "usage_value": value, "metering_sn": sn, **overrides}


def _push(huawei: Huawei, records: list[dict[str, Any]], *, key: str = ACCESS_KEY,
          ts: str | None = None, nonce: str | None = None, sort: bool = True,
          body: bytes | None = None) -> httpx.Response:
    raw = body if body is not None else json.dumps(
        {"usage_records": records}, sort_keys=sort, separators=(",", ":")).encode()
    ts = ts or str(int(huawei.clock.now().timestamp() * 1000))
    nonce = nonce or secrets.token_hex(8)
    text = b"ts=" + ts.encode() + b"&nonce=" + nonce.encode() + b"&body=" + raw
    signature = base64.b64encode(_hmac(key, text)).decode()
    return huawei.control.post("/api/mkp-openapi-public/global/v1/isv/usage-data", content=raw,
                               headers={"signature": signature, "ts": ts, "nonce": nonce,
                                        "Content-Type": "application/json"})


@pytest.fixture
def instance(huawei: Huawei) -> str:
    huawei.product(charging_mode="ON_DEMAND")
    huawei.order()
    return str(huawei.orders()[0]["instance_id"])


def test_the_push_signature_timestamp_and_nonce_are_checked(huawei: Huawei, instance: str) -> None:
    records = [_record(instance, "sn-1")]
    assert _push(huawei, records, key="wrong").json()["error_code"] == "invalid_signature"
    stale = str(int((T0 - timedelta(seconds=61)).timestamp() * 1000))
    assert _push(huawei, records, ts=stale).json()["error_code"] == "stale_timestamp"
    assert _push(huawei, records, ts=str(int(T0.timestamp()))).status_code == 401  # seconds
    assert _push(huawei, records, sort=False).json()["error_code"] == "invalid_signature"
    assert _push(huawei, records, nonce="n" * 65).json()["error_code"] == "invalid_nonce"
    assert _push(huawei, records, nonce="once").status_code == 200
    replay = _push(huawei, records, nonce="once")
    assert replay.status_code == 401 and replay.json()["error_code"] == "replayed_nonce"
    missing = huawei.control.post("/api/mkp-openapi-public/global/v1/isv/usage-data",
                                  json={"usage_records": records})
    assert missing.json()["error_code"] == "missing_signature"
    usage = huawei.ctl("GET", "/control/usage")
    assert [p["status"] for p in usage["pushes"]] == [401] * 5 + [200, 401, 401]
    assert len(usage["records"]) == 1


def test_a_push_holds_one_to_a_thousand_records(huawei: Huawei, instance: str) -> None:
    many = [_record(instance, f"sn-{i}") for i in range(1001)]
    assert _push(huawei, many).json()["error_code"] == "invalid_body"
    assert _push(huawei, []).status_code == 400
    assert _push(huawei, [], body=b'{"usage_records":"x"}').status_code == 400
    assert _push(huawei, many[:1000]).status_code == 200
    assert len(huawei.ctl("GET", "/control/usage")["records"]) == 1000


def test_bad_records_are_accepted_then_flagged_by_background_validation(
        huawei: Huawei, instance: str) -> None:
    records = [
        _record(instance, "ok-1", "0.0001"),
        _record(instance, "ok-2", "12"),
        _record(instance, "zero", "0"),
        _record(instance, "five-places", "1.00001"),
        _record(instance, "number", 1.5),
        _record(instance, "negative", "-1"),
        _record(instance, "bad-time", end_time="2026-11-26T10:00:00Z"),
        _record(instance, "reversed", begin_time="20261126T110000Z"),
        _record("no-such-instance", "unknown"),
        {k: v for k, v in _record(instance, "x").items() if k != "metering_sn"},
    ]
    answered = _push(huawei, records)
    assert answered.status_code == 200 and "request_id" in answered.json()
    pending = huawei.ctl("GET", "/control/usage")["records"]
    assert {r["validation"] for r in pending} == {"pending"}
    assert huawei.ctl("POST", "/control/validate") == {"billable": 2, "rejected": 8,
                                                       "duplicate": 0}
    result = {r["metering_sn"]: r for r in huawei.ctl("GET", "/control/usage")["records"]}
    assert result["ok-1"]["validation"] == result["ok-2"]["validation"] == "billable"
    assert "decimal string > 0" in result["zero"]["reason"]
    assert "at most 4 decimal places" in result["five-places"]["reason"]
    assert "decimal string" in result["number"]["reason"]
    assert "yyyyMMdd'T'HHmmss'Z'" in result["bad-time"]["reason"]
    assert "after end_time" in result["reversed"]["reason"]
    assert "no pay-per-use instance" in result["unknown"]["reason"]
    assert "metering_sn is required" in result[None]["reason"]


def test_metering_sn_is_deduplicated_across_pushes(huawei: Huawei, instance: str) -> None:
    _push(huawei, [_record(instance, "sn-1"), _record(instance, "sn-1")])
    _push(huawei, [_record(instance, "sn-1", "2")])
    assert huawei.ctl("POST", "/control/tick")["validated"] == {"billable": 1, "rejected": 0,
                                                               "duplicate": 2}
    usage = huawei.ctl("GET", "/control/usage")
    assert usage["received_per_metering_sn"] == {"sn-1": 3}  # the double send is visible
    assert [r["validation"] for r in usage["records"]] == ["billable", "duplicate", "duplicate"]


def test_a_package_product_needs_relate_pkg_instance(huawei: Huawei) -> None:
    huawei.product(charging_mode="ON_DEMAND", package=True)
    huawei.order()
    instance = huawei.orders()[0]["instance_id"]
    _push(huawei, [_record(instance, "a"), _record(instance, "b", relate_pkg_instance="pkg-1")])
    huawei.ctl("POST", "/control/validate")
    records = huawei.ctl("GET", "/control/usage")["records"]
    assert [r["validation"] for r in records] == ["rejected", "billable"]
    assert "relate_pkg_instance" in records[0]["reason"]


def test_usage_of_a_frozen_or_period_instance_is_rejected(huawei: Huawei, instance: str) -> None:
    order_id = huawei.orders()[0]["order_id"]
    huawei.ctl("POST", f"/control/orders/{order_id}/freeze")
    _push(huawei, [_record(instance, "while-frozen")])
    huawei.ctl("POST", f"/control/orders/{order_id}/unfreeze")  # validation sees the past
    huawei.ctl("POST", "/control/validate")
    [record] = huawei.ctl("GET", "/control/usage")["records"]
    assert record["validation"] == "rejected" and "was frozen" in record["reason"]


def test_late_usage_is_billable_but_flagged(huawei: Huawei, instance: str) -> None:
    huawei.clock.set(T0.replace(hour=12, minute=0))  # the 09-10 hour, exactly 2 h after
    _push(huawei, [_record(instance, "in-time")])
    huawei.clock.advance(timedelta(seconds=1))
    _push(huawei, [_record(instance, "late")])
    huawei.ctl("POST", "/control/validate")
    records = huawei.ctl("GET", "/control/usage")["records"]
    assert [(r["validation"], r["late"]) for r in records] == [("billable", False),
                                                               ("billable", True)]


def test_daily_usage_is_due_by_one_oclock(huawei: Huawei) -> None:
    huawei.product("daily-product", charging_mode="ON_DEMAND", billing="daily")
    huawei.order("daily-product", term_days=30)
    instance = huawei.orders()[0]["instance_id"]
    day = {"begin_time": "20261126T000000Z", "end_time": "20261127T000000Z"}
    huawei.clock.set(T0.replace(day=27, hour=0, minute=59))
    _push(huawei, [_record(instance, "on-time", **day)])
    huawei.clock.set(T0.replace(day=27, hour=1, minute=1))
    _push(huawei, [_record(instance, "late", **day)])
    huawei.ctl("POST", "/control/validate")
    assert [r["late"] for r in huawei.ctl("GET", "/control/usage")["records"]] == [False, True]


def test_faults_refuse_the_next_pushes(huawei: Huawei, instance: str) -> None:
    huawei.ctl("POST", "/control/faults", json={"kind": "throttling"})
    huawei.ctl("POST", "/control/faults", json={"kind": "internal_error"})
    assert _push(huawei, [_record(instance, "a")]).status_code == 429
    assert _push(huawei, [_record(instance, "a")]).status_code == 500
    assert _push(huawei, [_record(instance, "a")]).status_code == 200
    huawei.ctl("POST", "/control/faults", json={"kind": "nope"}, expect=422)


def test_the_control_api_refuses_what_it_cannot_do(huawei: Huawei) -> None:
    huawei.product()
    huawei.ctl("POST", "/control/products", expect=409, json={
        "product_id": PRODUCT, "sku_code": SKU, "isv_url": huawei.isv_url})
    huawei.ctl("POST", "/control/products", expect=400, json={
        "product_id": "p2", "sku_code": SKU, "isv_url": "ftp://x"})
    huawei.ctl("POST", "/control/products/none/orders", expect=404, json={})
    seller = huawei.ctl("GET", "/control/seller")
    assert seller["access_key"] == ACCESS_KEY and seller["endpoint_url"] == huawei.endpoint
    assert huawei.ctl("PUT", "/control/config", json={"retries": 1})["retries"] == 1
    huawei.ctl("PUT", "/control/config", json={"hex_case": "mixed"}, expect=422)
    assert huawei.ctl("POST", "/control/reset") == {"reset": True}
    assert huawei.ctl("GET", "/control/products") == {"products": []}


# --- mounted in the app, and alone ---------------------------------------------------------


def test_the_app_mounts_the_emulator_out_of_the_schema(runtime: Runtime,
                                                       client: TestClient) -> None:
    assert runtime.huawei_sandbox is not None
    assert runtime.huawei_sandbox.endpoint_url == "http://127.0.0.1:8000/sandbox/huawei"
    created = client.post("/sandbox/huawei/control/products", json={
        "product_id": "p1", "sku_code": "s1", "isv_url": "http://127.0.0.1:9/isv"})
    assert created.status_code == 201, created.text
    unsigned = client.post("/sandbox/huawei/api/mkp-openapi-public/global/v1/isv/usage-data",
                           json={"usage_records": []})
    assert unsigned.status_code == 401
    paths = client.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith("/sandbox/huawei")]


def test_off_mounts_nothing(tmp_path: Path, pg_databases: tuple[str, str] | None,
                            clock: ManualClock) -> None:
    runtime = make_runtime(tmp_path, pg_databases, clock, huawei_marketplace="off")
    try:
        assert runtime.huawei_sandbox is None
        with TestClient(runtime.app) as client:
            assert client.post("/sandbox/huawei/control/reset").status_code == 404
    finally:
        runtime.console.engine.dispose()
        runtime.billing.engine.dispose()


def test_the_command_serves_the_emulator_alone_with_its_choices() -> None:
    from typer.testing import CliRunner

    from accrual.cli import app

    runner = CliRunner()
    shown = runner.invoke(app, ["sandbox", "huawei", "--help"])
    assert shown.exit_code == 0 and "--hmac-key" in shown.output
    assert runner.invoke(app, ["sandbox", "huawei", "--hex-case", "mixed"]).exit_code != 0
