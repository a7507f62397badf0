"""The Huawei adapter: its activity verifier and answers (direct, and as the ISV the
emulator calls in test_huawei_emulator.py), and its usage push against the emulator
over HTTP: records, precision, batch rules, dedupe, whole-call failures, fallback."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from accrual.billing.domain.marketplace import (
    Buyer,
    NotificationRejected,
    Refused,
    ReportStatus,
    TokenRejected,
    Transient,
    UsageReport,
)
from accrual.billing.marketplaces.huawei import (
    ActivityKind,
    HuaweiMarketplace,
    ResultCode,
    activity_signature,
    metering_sn,
)
from accrual.sandbox.huawei.signing import body_sign_problem
from tests.contract import conftest_huawei
from tests.contract.conftest_huawei import ACCESS_KEY, PRODUCT, T0, Huawei
from tests.sandbox_server import free_port

# The shared fixtures, bound by name here (pytest finds fixtures in a module's namespace).
huawei_served = conftest_huawei.huawei_served
huawei = conftest_huawei.huawei
HOUR = timedelta(hours=1)
_opened: list[HuaweiMarketplace] = []


@pytest.fixture(autouse=True)
def _close_adapters() -> Iterator[None]:
    yield
    while _opened:
        _opened.pop().close()


def adapter(huawei: Huawei, **overrides: Any) -> HuaweiMarketplace:
    _opened.append(HuaweiMarketplace(huawei.listing(**overrides), huawei.clock))
    return _opened[-1]


def signed(market: HuaweiMarketplace, fields: dict[str, Any], *, at: Any = T0,
           nonce: str = "nonce-1") -> tuple[dict[str, str], bytes]:
    body = json.dumps(fields).encode()
    timestamp = str(int(at.timestamp() * 1000))
    return ({"signature": activity_signature(market.listing, nonce, timestamp, body),
             "timestamp": timestamp, "nonce": nonce}, body)


NEW = {"orderId": "CS1", "orderLineId": "CS1-1", "businessId": "b-1", "testFlag": "1",
       "buyerInfo": {"customerId": "hw-acct-1", "customerName": "Ada"},
       "orderInfo": [{"orderId": "CS1", "trialFlag": "0", "chargingMode": "PERIOD",
                      "expireTime": "20261226103000",
                      "productInfo": [{"skuCode": "sku-1", "productId": PRODUCT}]}]}


# --- inbound activities ----------------------------------------------------------------


def test_a_new_instance_is_verified_and_answered_with_a_stable_id(huawei: Huawei) -> None:
    market = adapter(huawei)
    query, body = signed(market, NEW)
    activity = market.verify_activity("POST", "/isv/newInstance", query, {}, body, T0)
    assert (activity.kind, activity.account_id, activity.order_id, activity.product_id) == (
        ActivityKind.CREATE, "hw-acct-1", "CS1", PRODUCT)
    assert activity.expires_at == T0 + timedelta(days=30) and activity.test
    resent = dict(NEW, businessId="b-2")
    query2, body2 = signed(market, resent, nonce="nonce-2")
    again = market.verify_activity("POST", "/isv/newInstance", query2, {}, body2, T0)
    answer, answer2 = market.answer(activity), market.answer(again)
    first = json.loads(answer.body)
    assert first == {"resultCode": "000000", "resultMsg": "success",
                     "instanceId": json.loads(answer2.body)["instanceId"]}
    # A restarted adapter (nothing stored) answers the same id.
    assert market.instance_id_for(activity) == adapter(huawei).instance_id_for(again)
    other = dict(NEW, orderId="CS2")
    query3, body3 = signed(market, other, nonce="nonce-3")
    assert market.instance_id_for(market.verify_activity(
        "POST", "/isv/newInstance", query3, {}, body3, T0)) != first["instanceId"]
    assert body_sign_problem(ACCESS_KEY, answer.headers["Body-Sign"], answer.body) is None
    assert answer.headers["Body-Sign"].startswith('sign_type="HMAC-SHA256", signature="')
    assert activity.buyer(first["instanceId"]) == Buyer(
        "huawei", "hw-acct-1", PRODUCT, license_ref=first["instanceId"])


def test_the_timestamp_must_be_within_sixty_seconds(huawei: Huawei) -> None:
    market = adapter(huawei)
    for offset, accepted in ((60, True), (-60, True), (61, False), (-61, False)):
        query, body = signed(market, NEW, at=T0 + timedelta(seconds=offset),
                             nonce=f"n{offset}")
        if accepted:
            market.verify_activity("POST", "/isv/newInstance", query, {}, body, T0)
        else:
            with pytest.raises(NotificationRejected) as refused:
                market.verify_activity("POST", "/isv/newInstance", query, {}, body, T0)
            assert refused.value.code == "stale"


@pytest.mark.parametrize(("change", "code"), [
    (lambda q, b: (dict(q, signature="0" * 64), b), "bad_signature"),
    (lambda q, b: (q, b.replace(b"Ada", b"Eve")), "bad_signature"),
    (lambda q, b: (q, b + b"\n"), "bad_signature"),  # the raw body, byte for byte
    (lambda q, b: ({k: v for k, v in q.items() if k != "nonce"}, b), "malformed"),
    (lambda q, b: (dict(q, timestamp="1.5e12"), b), "malformed"),
    (lambda q, b: (dict(q, timestamp="9" * 16), b), "stale"),
])
def test_forged_and_malformed_activities_are_refused(huawei: Huawei, change: Any,
                                                     code: str) -> None:
    market = adapter(huawei)
    query, body = change(*signed(market, NEW))
    with pytest.raises(NotificationRejected) as refused:
        market.verify_activity("POST", "/isv/newInstance", query, {}, body, T0)
    assert refused.value.code == code
    answer = json.loads(market.refusal(refused.value).body)
    assert answer["resultCode"] == ("000002" if code == "malformed" else "000001")


def test_a_nonce_is_taken_once(huawei: Huawei) -> None:
    market = adapter(huawei)
    query, body = signed(market, NEW)
    market.verify_activity("POST", "/isv/newInstance", query, {}, body, T0)
    with pytest.raises(NotificationRejected) as replayed:
        market.verify_activity("POST", "/isv/newInstance", query, {}, body, T0)
    assert replayed.value.code == "replayed"
    # A forged request never burns a nonce the real one needs.
    fresh_q, fresh_b = signed(market, NEW, nonce="nonce-9")
    with pytest.raises(NotificationRejected):
        market.verify_activity("POST", "/isv/newInstance", dict(fresh_q, signature="f" * 64),
                               {}, fresh_b, T0)
    market.verify_activity("POST", "/isv/newInstance", fresh_q, {}, fresh_b, T0)


def test_every_activity_maps_to_a_neutral_kind(huawei: Huawei) -> None:
    market = adapter(huawei)
    cases: list[tuple[str, dict[str, Any], ActivityKind]] = [
        ("refreshInstance", {"scene": "RENEWAL", "instanceId": "i1", "orderId": "o2",
                             "expireTime": "20270101000000"}, ActivityKind.RENEW),
        ("refreshInstance", {"scene": "TRIAL_TO_FORMAL", "instanceId": "i1"},
         ActivityKind.TRIAL_TO_FORMAL),
        ("refreshInstance", {"scene": "UNSUBSCRIBE_RENEWAL_PERIOD", "instanceId": "i1"},
         ActivityKind.UNSUBSCRIBE_RENEWAL),
        ("upgradeInstance", {"instanceId": "i1", "orderId": "o3"}, ActivityKind.UPGRADE),
        ("updateInstanceStatus", {"instanceId": "i1", "status": "FREEZE"}, ActivityKind.FREEZE),
        ("updateInstanceStatus", {"instanceId": "i1", "status": "UNFREEZE"},
         ActivityKind.UNFREEZE),
        ("releaseInstance", {"instanceId": "i1"}, ActivityKind.RELEASE),
        ("releaseInstance", {"instanceId": "i1", "orderId": "o1"}, ActivityKind.CANCEL),
        ("queryInstance", {"instanceId": "i1,i2"}, ActivityKind.QUERY),
    ]
    for number, (name, fields, kind) in enumerate(cases):
        query, body = signed(market, fields, nonce=f"n{number}")
        activity = market.verify_activity("POST", f"/isv/{name}", query, {}, body, T0)
        assert activity.kind == kind and activity.activity == name
    assert activity.instance_ids == ("i1", "i2")
    with pytest.raises(ValueError, match="newInstance"):
        activity.buyer("i1")
    assert json.loads(market.answer(activity).body)["info"] == [{"instanceId": "i1"},
                                                                {"instanceId": "i2"}]
    for number, (path, fields, code) in enumerate([
            ("/isv/deleteEverything", {"instanceId": "i1"}, "unknown_activity"),
            ("/isv/refreshInstance", {"scene": "LATER", "instanceId": "i1"},
             "invalid_parameters"),
            ("/isv/updateInstanceStatus", {"instanceId": "i1", "status": "PAUSE"},
             "invalid_parameters"),
            ("/isv/releaseInstance", {"instanceId": "i" * 65}, "invalid_parameters"),
            ("/isv/newInstance", {"orderId": "o1"}, "invalid_parameters")]):
        query, body = signed(market, fields, nonce=f"bad{number}")
        with pytest.raises(NotificationRejected) as refused:
            market.verify_activity("POST", path, query, {}, body, T0)
        assert refused.value.code == code
    # The activity may also be named in the body when the path does not.
    query, body = signed(market, {"activity": "releaseInstance", "instanceId": "i9"},
                         nonce="by-body")
    assert market.verify_activity("POST", "/isv", query, {}, body, T0).kind == \
        ActivityKind.RELEASE
    with pytest.raises(NotificationRejected):
        market.verify_activity("GET", "/isv/releaseInstance", query, {}, body, T0)


def test_vendor_calls_it_lacks_refuse_clearly(huawei: Huawei) -> None:
    market = adapter(huawei)
    with pytest.raises(TokenRejected) as token:
        market.resolve_buyer("anything")
    assert token.value.code == "not_supported"
    with pytest.raises(Refused) as entitlement:
        market.entitlement(Buyer("huawei", "acct", PRODUCT, license_ref="i1"))
    assert entitlement.value.code == "not_supported"
    with pytest.raises(NotificationRejected) as notification:
        market.verify_notification({}, b"{}", T0)
    assert notification.value.code == "not_supported"


def test_the_emulator_accepts_the_adapters_answers(huawei: Huawei) -> None:
    huawei.product()
    huawei.order()
    [call] = huawei.calls()
    assert call["attempts"][0]["body_sign"] == "ok" and call["outcome"] == "succeeded"
    [activity] = huawei.isv.received
    assert huawei.orders()[0]["instance_id"] == huawei.isv.market.instance_id_for(  # type: ignore[union-attr]
        activity)


# --- the usage push ----------------------------------------------------------------------


@pytest.fixture
def buyer(huawei: Huawei) -> Buyer:
    huawei.product(charging_mode="ON_DEMAND")
    huawei.order(customer_id="hw-acct-1")
    [activity] = huawei.isv.received
    return Buyer("huawei", "hw-acct-1", PRODUCT,
                 license_ref=huawei.isv.market.instance_id_for(activity))  # type: ignore[union-attr]


def usage(buyer: Buyer, key: str, quantity: int = 5, at: Any = None) -> UsageReport:
    return UsageReport(key=key, buyer=buyer, dimension="usage_minor",
                       period_start=at or T0.replace(minute=0) - HOUR, quantity=quantity)


def test_a_push_carries_signed_records_the_emulator_bills(huawei: Huawei, buyer: Buyer) -> None:
    market = adapter(huawei, usage_unit=Decimal("0.01"))
    results = market.report([usage(buyer, "c1", 150), usage(buyer, "c2", 1),
                             usage(buyer, "c3", 12345)])
    assert [(r.key, r.status) for r in results] == [("c1", ReportStatus.ACCEPTED),
                                                    ("c2", ReportStatus.ACCEPTED),
                                                    ("c3", ReportStatus.ACCEPTED)]
    [push] = huawei.ctl("GET", "/control/usage")["pushes"]
    body = push["body"].encode()
    assert json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode() == body
    text = b"ts=" + push["headers"]["ts"].encode() + b"&nonce=" + \
        push["headers"]["nonce"].encode() + b"&body=" + body
    assert push["headers"]["signature"] == base64.b64encode(
        hmac.new(ACCESS_KEY.encode(), text, hashlib.sha256).digest()).decode()
    assert push["headers"]["ts"] == str(int(T0.timestamp()) * 1000)
    records = json.loads(body)["usage_records"]
    assert [r["usage_value"] for r in records] == ["1.5", "0.01", "123.45"]
    assert records[0] == {"instance_id": buyer.license_ref,
                          "metering_sn": metering_sn(usage(buyer, "c1", 150)),
                          "record_time": "20261126T103000Z", "begin_time": "20261126T090000Z",
                          "end_time": "20261126T100000Z", "usage_value": "1.5"}
    assert huawei.ctl("POST", "/control/validate") == {"billable": 3, "rejected": 0,
                                                       "duplicate": 0}


def test_a_resend_is_never_billed_twice(huawei: Huawei, buyer: Buyer) -> None:
    market = adapter(huawei)
    market.report([usage(buyer, "c1")])
    market.report([usage(buyer, "c1")])  # the reporter did not see the first answer
    huawei.ctl("POST", "/control/validate")
    usage_view = huawei.ctl("GET", "/control/usage")
    assert usage_view["received_per_metering_sn"] == {metering_sn(usage(buyer, "c1")): 2}
    assert [r["validation"] for r in usage_view["records"]] == ["billable", "duplicate"]


def test_the_metering_sn_is_stable_and_names_the_charge_not_only_its_key(buyer: Buyer) -> None:
    first = metering_sn(usage(buyer, "17"))
    assert first == metering_sn(usage(buyer, "17"))  # every resend: the same
    assert first.startswith("17-") and len(first) <= 64
    # Another center's (or a fresh database's) charge 17 is another instance or period.
    other = Buyer("huawei", "hw-acct-2", PRODUCT, license_ref="hw-other-instance")
    assert metering_sn(usage(other, "17")) != first
    assert metering_sn(usage(buyer, "17", at=T0.replace(minute=0))) != first
    assert len(metering_sn(usage(buyer, "k" * 64))) == 64


def test_limits_and_precision_rules(huawei: Huawei, buyer: Buyer) -> None:
    market = adapter(huawei)
    limits = market.limits
    assert (limits.batch_size, limits.min_quantity, limits.period, limits.lateness) == (
        1000, 1, HOUR, 3 * HOUR)
    daily = adapter(huawei, billing="daily").limits
    assert (daily.period, daily.lateness) == (24 * HOUR, 25 * HOUR)
    with pytest.raises(ValueError, match="> 0"):
        market.report([usage(buyer, "zero", 0)])
    with pytest.raises(ValueError, match="at most 1000"):
        market.report([usage(buyer, f"k{i}") for i in range(1001)])
    with pytest.raises(ValueError, match="instance id"):
        market.report([usage(Buyer("huawei", "a", PRODUCT), "k")])
    with pytest.raises(ValueError, match="product"):
        market.report([usage(Buyer("huawei", "a", "other", license_ref="i"), "k")])
    with pytest.raises(ValueError, match="4 decimal places"):
        adapter(huawei, usage_unit=Decimal("0.00001"))
    assert market.report([]) == []
    assert len(market.report([usage(buyer, f"k{i}") for i in range(1000)])) == 1000
    assert huawei.ctl("GET", "/control/usage")["pushes"][0]["status"] == 200


def test_whole_push_failures_are_transient_or_refused(huawei: Huawei, buyer: Buyer) -> None:
    market = adapter(huawei)
    huawei.ctl("POST", "/control/faults", json={"kind": "throttling"})
    with pytest.raises(Transient) as throttled:
        market.report([usage(buyer, "c1")])
    assert throttled.value.throttled
    huawei.ctl("POST", "/control/faults", json={"kind": "internal_error"})
    with pytest.raises(Transient) as failed:
        market.report([usage(buyer, "c1")])
    assert failed.value.code == "vendor_error"
    with pytest.raises(Transient) as unauthorized:
        adapter(huawei, access_key="not-the-key").report([usage(buyer, "c1")])
    assert unauthorized.value.code == "unauthorized" and "invalid_signature" in \
        unauthorized.value.message
    huawei.sandbox.state.config.max_usage_records = 1  # a stricter marketplace
    with pytest.raises(Refused) as refused:
        market.report([usage(buyer, "c1"), usage(buyer, "c2")])
    assert refused.value.code == "invalid_request"


def test_an_unreachable_domain_falls_back_to_the_other(huawei: Huawei, buyer: Buyer) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    market = adapter(huawei, endpoint_url=dead, fallback_url=huawei.endpoint)
    assert market.report([usage(buyer, "c1")])[0].status == ReportStatus.ACCEPTED
    alone = adapter(huawei, endpoint_url=dead, fallback_url=None)
    with pytest.raises(Transient) as network:
        alone.report([usage(buyer, "c2")])
    assert network.value.code == "network"
    assert len(huawei.ctl("GET", "/control/usage")["pushes"]) == 1


def test_the_secret_key_reading_signs_pushes_with_the_secret(huawei: Huawei,
                                                            buyer: Buyer) -> None:
    huawei.ctl("PUT", "/control/config", json={"hmac_key": "secret_key"})
    with pytest.raises(Transient):
        adapter(huawei).report([usage(buyer, "c1")])
    market = adapter(huawei, hmac_key="secret_key", secret_key=huawei.sandbox.secret_key)
    assert market.report([usage(buyer, "c1")])[0].status == ReportStatus.ACCEPTED
    with pytest.raises(ValueError, match="secret_key"):
        adapter(huawei, hmac_key="secret_key")


def test_result_codes_are_the_documented_ones() -> None:
    assert [c.value for c in ResultCode] == ["000000", "000001", "000002", "000003", "000004",
                                             "000005", "000100"]
