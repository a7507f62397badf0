"""The Azure Marketplace emulator over HTTP: one test per item of the Azure checklist
(marketplaces.md §6), named after it, plus its mounting in the app."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi.testclient import TestClient

from accrual.app import Runtime
from accrual.clock import ManualClock
from accrual.sandbox.azure import wire
from tests.conftest import make_runtime
from tests.contract.azure_support import DIMENSION, OFFER, T0, Az

pytest_plugins = ["tests.contract.conftest_azure"]

HOUR = timedelta(hours=1)
SUBS = "/api/saas/subscriptions"


def claims_of(jwt: str) -> dict[str, Any]:
    body = jwt.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))


def event(resource: str, *, at: Any = T0 - HOUR / 2, quantity: Any = 1, plan: str = "payg",
          dimension: str = DIMENSION) -> dict[str, Any]:
    return {"resourceId": resource, "quantity": quantity, "dimension": dimension,
            "effectiveStartTime": at.strftime("%Y-%m-%dT%H:%M:%SZ") if hasattr(at, "strftime")
            else at, "planId": plan}


def batch(az: Az, *events: dict[str, Any]) -> list[dict[str, Any]]:
    answer = az.api("POST", "/api/batchUsageEvent", content=wire.dumps({"request": list(events)}),
                    headers={"content-type": "application/json"})
    assert answer.status_code == 200, answer.text
    body = wire.loads(answer.content)
    assert body["count"] == len(events)
    return list(body["result"])


# --- auth and common headers -------------------------------------------------------


def test_bearer_token_api_version_and_request_ids_are_checked_and_a_wrong_app_is_403(
        az: Az) -> None:
    v1 = az.http.post(f"{az.sandbox.login_url}/{az.tenant}/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": az.app_id,
        "client_secret": az.secret, "resource": "20e940b3-4c77-4b0b-9a53-9e16a1b010a7"})
    assert v1.status_code == 200 and v1.json()["token_type"] == "Bearer"
    claims = claims_of(v1.json()["access_token"])
    assert (claims["aud"], claims["appid"], claims["tid"]) == (
        "20e940b3-4c77-4b0b-9a53-9e16a1b010a7", az.app_id, az.tenant)
    wrong_secret = az.http.post(f"{az.sandbox.login_url}/{az.tenant}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": az.app_id,
        "client_secret": "not-it", "scope": "20e940b3-4c77-4b0b-9a53-9e16a1b010a7/.default"})
    assert (wrong_secret.status_code, wrong_secret.json()["error"]) == (401, "invalid_client")

    listed = az.api("GET", SUBS, headers={"x-ms-requestid": "req-1",
                                          "x-ms-correlationid": "cor-1"})
    assert listed.status_code == 200
    assert (listed.headers["x-ms-requestid"], listed.headers["x-ms-correlationid"]) == (
        "req-1", "cor-1")
    generated = az.api("GET", SUBS)
    assert len(generated.headers["x-ms-requestid"]) == 36
    assert az.api("GET", SUBS, headers={"authorization": ""}).status_code == 403
    assert az.api("GET", SUBS, token="abc.def.ghi").status_code == 403
    assert az.api("GET", SUBS, version=None).status_code == 400
    assert az.api("GET", SUBS, version="2017-01-01").status_code == 400
    # An app no offer is configured with, and an app of another offer.
    stranger = az.ctl("POST", "/control/apps", expect=201, json={})
    stranger_token = az.token(stranger["tenant_id"], stranger["app_id"], stranger["client_secret"])
    assert az.api("GET", SUBS, token=stranger_token).status_code == 403
    other = az.ctl("POST", "/control/offers", expect=201, json={
        "offer_id": "other-offer", "plans": [{"plan_id": "p", "dimensions": ["d"]}]})
    other_token = az.token(other["tenant_id"], other["app_id"], other["client_secret"])
    mine = az.purchase()
    assert az.api("GET", f"{SUBS}/{mine['subscription_id']}", token=other_token).status_code == 403
    assert az.api("GET", SUBS, token=other_token).json()["subscriptions"] == []
    # Tokens expire by the emulator's clock.
    token = az.token()
    az.clock.advance(HOUR)
    assert az.api("GET", SUBS, token=token).status_code == 403


# --- landing-page token ---------------------------------------------------------------


def test_resolve_needs_the_url_decoded_token_within_its_ttl_in_every_state(az: Az) -> None:
    bought = az.purchase()
    token = bought["token"]
    assert "+" in token and "/" in token
    in_url = parse_qs(urlsplit(bought["landing_url"]).query)["token"][0]
    assert in_url == token and "%2B" in bought["landing_url"]
    encoded = urlsplit(bought["landing_url"]).query.removeprefix("token=")
    assert az.api("POST", f"{SUBS}/resolve",
                  headers={"x-ms-marketplace-token": encoded}).status_code == 400
    assert az.api("POST", f"{SUBS}/resolve").status_code == 400
    resolved = az.api("POST", f"{SUBS}/resolve", headers={"x-ms-marketplace-token": token})
    assert resolved.status_code == 200
    body = resolved.json()
    assert (body["id"], body["offerId"], body["planId"]) == (bought["subscription_id"], OFFER,
                                                            "payg")
    assert body["subscription"]["saasSubscriptionStatus"] == "PendingFulfillmentStart"
    az.api("POST", f"{SUBS}/{body['id']}/activate", json={"planId": "payg"})
    az.ctl("POST", f"/control/subscriptions/{body['id']}/unsubscribe")
    again = az.api("POST", f"{SUBS}/resolve", headers={"x-ms-marketplace-token": token})
    assert again.json()["subscription"]["saasSubscriptionStatus"] == "Unsubscribed"
    az.clock.advance(timedelta(hours=24))
    late = az.api("POST", f"{SUBS}/resolve", headers={"x-ms-marketplace-token": token},
                  token=az.token())
    assert late.status_code == 400 and "expired" in late.json()["error"]["message"]


# --- the state machine ----------------------------------------------------------------


def test_activate_patch_and_delete_follow_the_documented_400_and_404_rules(az: Az) -> None:
    bought = az.purchase("seats", quantity=5)
    sid = bought["subscription_id"]
    one = f"{SUBS}/{sid}"
    # Not Subscribed yet: no changes.
    assert az.api("PATCH", one, json={"quantity": 6}).status_code == 400
    assert az.api("POST", one + "/activate", json={}).status_code == 400
    assert az.api("POST", one + "/activate", json={"planId": "gold"}).status_code == 400
    assert az.api("POST", one + "/activate",
                  json={"planId": "seats", "quantity": 7}).status_code == 400
    assert az.api("POST", one + "/activate",
                  json={"planId": "seats", "quantity": 5}).status_code == 200
    assert az.subscription(sid)["saasSubscriptionStatus"] == "Subscribed"
    assert az.api("POST", one + "/activate", json={"planId": "seats"}).status_code == 400
    for body in ({"planId": "gold", "quantity": 3}, {}, {"planId": "seats"},
                 {"planId": "nope"}, {"quantity": 5}, {"quantity": 51}, {"quantity": 0}):
        assert az.api("PATCH", one, json=body).status_code == 400, body
    assert az.api("GET", f"{SUBS}/00000000-0000-0000-0000-000000000000").status_code == 404
    payg = az.subscribed()["subscription_id"]
    assert az.api("PATCH", f"{SUBS}/{payg}", json={"quantity": 2}).status_code == 400
    # A CSP purchase allows only Read.
    csp = az.subscribed(csp=True)["subscription_id"]
    assert az.subscription(csp)["allowedCustomerOperations"] == ["Read"]
    assert az.api("PATCH", f"{SUBS}/{csp}", json={"planId": "gold"}).status_code == 400
    assert az.api("DELETE", f"{SUBS}/{csp}").status_code == 400
    # Suspended: activate and PATCH refused; Unsubscribed is terminal.
    az.ctl("POST", f"/control/subscriptions/{sid}/suspend")
    assert az.api("POST", one + "/activate", json={"planId": "seats"}).status_code == 400
    assert az.api("PATCH", one, json={"quantity": 6}).status_code == 400
    az.ctl("POST", f"/control/subscriptions/{sid}/unsubscribe")
    assert az.api("POST", one + "/activate", json={"planId": "seats"}).status_code == 404
    assert az.api("DELETE", one).status_code == 404
    assert az.api("GET", one).json()["saasSubscriptionStatus"] == "Unsubscribed"
    az.ctl("POST", f"/control/subscriptions/{sid}/reinstate", expect=409)
    plans = az.api("GET", f"{SUBS}/{payg}/listAvailablePlans").json()["plans"]
    assert [p["planId"] for p in plans] == ["payg", "gold", "seats"]
    assert plans[2]["isPricePerSeat"] and plans[2]["maxQuantity"] == 50


def test_list_pages_by_continuation_token_and_includes_unsubscribed(az: Az) -> None:
    ids = [az.purchase()["subscription_id"] for _ in range(3)]
    az.ctl("POST", f"/control/subscriptions/{ids[0]}/unsubscribe")
    az.ctl("PUT", "/control/config", json={"page_size": 2})
    first = az.api("GET", SUBS).json()
    assert [s["id"] for s in first["subscriptions"]] == ids[:2]
    assert first["subscriptions"][0]["saasSubscriptionStatus"] == "Unsubscribed"
    following = az.http.get(first["@nextLink"],
                          headers={"authorization": f"Bearer {az.token()}"}).json()
    assert [s["id"] for s in following["subscriptions"]] == ids[2:]
    assert following["@nextLink"] is None
    assert az.api("GET", SUBS, params={"continuationToken": "!!"}).status_code == 400


# --- operations -------------------------------------------------------------------------


def test_publisher_changes_answer_202_with_an_operation_that_finishes_and_calls_the_webhook(
        az: Az) -> None:
    sid = az.subscribed()["subscription_id"]
    changed = az.api("PATCH", f"{SUBS}/{sid}", json={"planId": "gold"})
    assert changed.status_code == 202 and changed.content == b""
    location, op_id = changed.headers["operation-location"], changed.headers["operation-id"]
    assert location.startswith(f"{az.endpoint}{SUBS}/{sid}/operations/{op_id}")
    assert "api-version=2018-08-31" in location
    polled = az.http.get(location, headers={"authorization": f"Bearer {az.token()}"}).json()
    assert (polled["status"], polled["action"], polled["planId"]) == (
        "InProgress", "ChangePlan", "gold")
    pending = az.api("GET", f"{SUBS}/{sid}/operations").json()["operations"]
    assert [o["id"] for o in pending] == [op_id]
    assert az.subscription(sid)["planId"] == "payg"  # not before the operation finishes
    assert az.receiver.calls == []
    az.tick()
    assert az.api("GET", f"{SUBS}/{sid}/operations/{op_id}").json()["status"] == "Succeeded"
    assert az.subscription(sid)["planId"] == "gold"
    [call] = az.receiver.calls
    payload = json.loads(call[1])
    assert (payload["id"], payload["action"], payload["status"],
            payload["operationRequestSource"]) == (op_id, "ChangePlan", "Succeeded", "Partner")
    # A Conflict leaves the subscription as it was.
    again = az.api("PATCH", f"{SUBS}/{sid}", json={"planId": "payg"}).headers["operation-id"]
    az.ctl("POST", f"/control/operations/{again}/complete", json={"status": "Conflict"})
    assert az.api("GET", f"{SUBS}/{sid}/operations/{again}").json()["status"] == "Conflict"
    assert az.subscription(sid)["planId"] == "gold"
    # Delete: 202, Unsubscribed once finished, and an Unsubscribe call.
    deleted = az.api("DELETE", f"{SUBS}/{sid}")
    assert deleted.status_code == 202
    az.tick()
    assert az.subscription(sid)["saasSubscriptionStatus"] == "Unsubscribed"
    assert json.loads(az.receiver.calls[-1][1])["action"] == "Unsubscribe"
    unknown = az.api("GET", f"{SUBS}/{sid}/operations/00000000-0000-0000-0000-000000000000")
    assert unknown.status_code == 404


def test_marketplace_changes_need_the_publishers_patch_or_auto_succeed_after_10_s(az: Az) -> None:
    sid = az.subscribed("seats", quantity=5)["subscription_id"]
    op = az.ctl("POST", f"/control/subscriptions/{sid}/plan", json={"plan_id": "gold"})
    payload = json.loads(az.receiver.calls[-1][1])
    assert (payload["action"], payload["status"], payload["operationRequestSource"]) == (
        "ChangePlan", "InProgress", "Azure")
    assert payload["subscription"]["id"] == sid and payload["purchaseToken"] is None
    ack = f"{SUBS}/{sid}/operations/{op['id']}"
    assert az.api("PATCH", ack, json={"status": "Maybe"}).status_code == 400
    assert az.api("PATCH", ack, json={"status": "Failure"}).status_code == 200
    assert az.subscription(sid)["planId"] == "seats"
    assert az.api("GET", ack).json()["status"] == "Failed"
    assert az.api("PATCH", ack, json={"status": "Success"}).status_code == 409
    # Success applies it.
    op = az.ctl("POST", f"/control/subscriptions/{sid}/quantity", json={"quantity": 9})
    assert az.api("PATCH", f"{SUBS}/{sid}/operations/{op['id']}",
                  json={"status": "Success"}).status_code == 200
    assert az.subscription(sid)["quantity"] == 9
    # No answer: still pending before 10 s, Succeeded after.
    op = az.ctl("POST", f"/control/subscriptions/{sid}/quantity", json={"quantity": 12})
    az.clock.advance(timedelta(seconds=9))
    az.tick()
    assert az.subscription(sid)["quantity"] == 9
    az.clock.advance(timedelta(seconds=1))
    az.tick()
    assert az.subscription(sid)["quantity"] == 12
    assert az.api("PATCH", f"{SUBS}/{sid}/operations/{op['id']}",
                  json={"status": "Failure"}).status_code == 409


def test_notify_only_actions_arrive_succeeded_and_reject_acknowledgement_and_reinstate_needs_one(
        az: Az) -> None:
    sid = az.subscribed()["subscription_id"]
    before = az.subscription(sid)["term"]
    az.ctl("POST", f"/control/subscriptions/{sid}/renew")
    az.ctl("POST", f"/control/subscriptions/{sid}/suspend")
    renew, suspend = (json.loads(body) for _, body in az.receiver.calls)
    assert (renew["action"], renew["status"]) == ("Renew", "Succeeded")
    assert renew["subscription"]["term"]["startDate"] == before["endDate"]
    assert (suspend["action"], suspend["status"]) == ("Suspend", "Succeeded")
    for notified in (renew, suspend):
        answer = az.api("PATCH", f"{SUBS}/{sid}/operations/{notified['id']}",
                        json={"status": "Success"})
        assert answer.status_code == 400
    refused = az.ctl("POST", f"/control/subscriptions/{sid}/reinstate")
    az.api("PATCH", f"{SUBS}/{sid}/operations/{refused['id']}", json={"status": "Failure"})
    assert az.subscription(sid)["saasSubscriptionStatus"] == "Suspended"
    accepted = az.ctl("POST", f"/control/subscriptions/{sid}/reinstate")
    az.api("PATCH", f"{SUBS}/{sid}/operations/{accepted['id']}", json={"status": "Success"})
    assert az.subscription(sid)["saasSubscriptionStatus"] == "Subscribed"


def test_patching_an_older_update_after_a_newer_one_was_fulfilled_is_409(az: Az) -> None:
    sid = az.subscribed("seats", quantity=5)["subscription_id"]
    older = az.ctl("POST", f"/control/subscriptions/{sid}/quantity", json={"quantity": 6})
    az.clock.advance(timedelta(seconds=1))
    newer = az.ctl("POST", f"/control/subscriptions/{sid}/quantity", json={"quantity": 7})
    az.api("PATCH", f"{SUBS}/{sid}/operations/{newer['id']}", json={"status": "Success"})
    late = az.api("PATCH", f"{SUBS}/{sid}/operations/{older['id']}", json={"status": "Success"})
    assert late.status_code == 409 and "newer" in late.json()["error"]["message"]
    assert az.subscription(sid)["quantity"] == 7


# --- webhook delivery -----------------------------------------------------------------


def test_webhook_calls_carry_a_jwt_and_are_retried_until_a_200_then_given_up(az: Az) -> None:
    sid = az.subscribed()["subscription_id"]
    az.receiver.status = 500
    az.ctl("POST", f"/control/subscriptions/{sid}/renew")
    [delivery] = az.webhooks()
    assert not delivery["delivered"] and len(delivery["attempts"]) == 1
    token = delivery["headers"]["Authorization"].removeprefix("Bearer ")
    claims = claims_of(token)
    assert (claims["aud"], claims["tid"], claims["azp"]) == (
        az.app_id, az.tenant, "20e940b3-4c77-4b0b-9a53-9e16a1b010a7")
    assert claims["iss"] == f"{az.sandbox.login_url}/{az.tenant}/v2.0"
    az.tick()  # not due yet
    assert len(az.webhooks()[0]["attempts"]) == 1
    az.clock.advance(timedelta(minutes=1))
    az.tick()
    assert len(az.webhooks()[0]["attempts"]) == 2
    az.receiver.status = 200
    az.clock.advance(timedelta(minutes=1))
    az.tick()
    delivered = az.webhooks()[0]
    assert delivered["delivered"] and [a["status"] for a in delivered["attempts"]] == [500, 500,
                                                                                      200]
    assert len(az.receiver.calls) == 3
    assert len({body for _, body in az.receiver.calls}) == 1  # the same payload each time
    # A change nobody answers fails once the retries are used up.
    az.ctl("PUT", "/control/config", json={"webhook_max_attempts": 2})
    az.receiver.status = 503
    op = az.ctl("POST", f"/control/subscriptions/{sid}/plan", json={"plan_id": "gold"})
    az.clock.advance(timedelta(seconds=5))
    az.ctl("PUT", "/control/config", json={"ack_timeout_seconds": 3600})
    az.clock.advance(timedelta(minutes=1))
    az.tick()
    last = az.webhooks()[-1]
    assert last["given_up"] and len(last["attempts"]) == 2
    assert az.api("GET", f"{SUBS}/{sid}/operations/{op['id']}").json()["status"] == "Failed"
    # Without the JWT switch, no Authorization header.
    az.ctl("PUT", "/control/config", json={"webhook_jwt": False})
    az.receiver.status = 200
    az.ctl("POST", f"/control/subscriptions/{sid}/renew")
    assert "authorization" not in az.receiver.calls[-1][0]


def test_a_4xx_answer_to_a_marketplace_change_refuses_it_and_a_replay_is_byte_for_byte(
        az: Az) -> None:
    sid = az.subscribed("seats", quantity=5)["subscription_id"]
    az.receiver.status = 400
    op = az.ctl("POST", f"/control/subscriptions/{sid}/quantity", json={"quantity": 8})
    assert az.api("GET", f"{SUBS}/{sid}/operations/{op['id']}").json()["status"] == "Failed"
    assert az.subscription(sid)["quantity"] == 5
    az.receiver.status = 200
    delivery = az.webhooks()[-1]
    az.ctl("POST", f"/control/webhooks/{delivery['id']}/replay")
    assert az.receiver.calls[-1][1] == az.receiver.calls[-2][1]
    assert (az.receiver.calls[-1][0]["authorization"]
            == az.receiver.calls[-2][0]["authorization"])


def test_a_suspension_ends_after_30_days_and_terms_renew_or_end_at_their_end(az: Az) -> None:
    suspended = az.subscribed()["subscription_id"]
    renewing = az.subscribed()["subscription_id"]
    ending = az.subscribed(auto_renew=False)["subscription_id"]
    az.ctl("POST", f"/control/subscriptions/{suspended}/suspend")
    az.clock.advance(timedelta(days=29))
    az.tick()
    assert az.subscription(suspended)["saasSubscriptionStatus"] == "Suspended"
    az.clock.advance(timedelta(days=1))
    result = az.tick()  # 2026-12-26 10:30: the monthly terms end too
    assert az.subscription(suspended)["saasSubscriptionStatus"] == "Unsubscribed"
    assert set(result["ended"]) == {suspended, ending} and result["renewed"] == [renewing]
    assert az.subscription(renewing)["term"]["startDate"].startswith("2026-12-26T10:30")
    assert az.subscription(renewing)["term"]["endDate"].startswith("2027-01-26T10:30")
    actions = [(json.loads(b)["subscriptionId"], json.loads(b)["action"])
               for _, b in az.receiver.calls]
    assert (suspended, "Unsubscribe") in actions and (renewing, "Renew") in actions
    assert (ending, "Unsubscribe") in actions


# --- metering ---------------------------------------------------------------------------


def test_metering_batches_hold_at_most_25_events_each_judged_with_its_own_status(az: Az) -> None:
    sid = az.subscribed()["subscription_id"]
    pending = az.purchase()["subscription_id"]
    other = az.ctl("POST", "/control/offers", expect=201, json={
        "offer_id": "other-offer", "plans": [{"plan_id": "p", "dimensions": [DIMENSION]}]})
    foreign = az.ctl("POST", "/control/offers/other-offer/purchases", expect=201,
                     json={"plan_id": "p"})["subscription_id"]
    assert other["app_id"] != az.app_id
    too_many = az.api("POST", "/api/batchUsageEvent",
                      json={"request": [event(sid, at=T0 - HOUR * i) for i in range(26)]})
    assert too_many.status_code == 400 and too_many.json()["code"] == "BadArgument"
    results = batch(
        az,
        event(sid, quantity=Decimal("12.5")),
        event(sid, quantity=Decimal("3")),  # the same hour and dimension
        event(sid, at=T0 - 2 * HOUR, quantity=0),
        event(sid, at=T0 - 2 * HOUR, quantity="5"),
        event(sid, at=T0 - 2 * HOUR, dimension="nope"),
        event(sid, at=T0 - 2 * HOUR, plan="gold"),
        event(sid, at=T0 - 25 * HOUR),
        event(sid, at=T0 + HOUR),
        event("00000000-0000-0000-0000-000000000000"),
        event(foreign, plan="p"),
        event(pending),
        event(sid, dimension="storage", quantity=Decimal("0.1")),
        {"resourceId": sid},
    )
    assert [r["status"] for r in results] == [
        "Accepted", "Duplicate", "InvalidQuantity", "BadArgument", "InvalidDimension",
        "BadArgument", "Expired", "BadArgument", "ResourceNotFound", "ResourceNotAuthorized",
        "ResourceNotActive", "Accepted", "BadArgument"]
    first = results[0]
    assert first["quantity"] == Decimal("12.5") and first["usageEventId"]
    echoed = results[1]["error"]["additionalInfo"]["acceptedMessage"]
    assert (echoed["usageEventId"], echoed["status"], echoed["quantity"]) == (
        first["usageEventId"], "Duplicate", Decimal("12.5"))
    assert results[11]["quantity"] == Decimal("0.1")
    usage = az.ctl("GET", "/control/usage")
    assert len(usage["accepted"]) == 2 and all(n == 1 for n in usage["counts_per_key"].values())
    # Every call received, the refused one too, with the exact body sent.
    assert [r["status"] for r in usage["received"]] == [400, 200]
    assert '"quantity":12.5' in usage["received"][1]["request"]


def test_single_usage_event_is_200_then_409_with_the_accepted_message(az: Az) -> None:
    sid = az.subscribed()["subscription_id"]
    sent = event(sid, quantity=Decimal("1234567890.123"))
    first = az.api("POST", "/api/usageEvent", content=wire.dumps(sent),
                   headers={"content-type": "application/json"})
    assert first.status_code == 200
    assert b'"quantity":1234567890.123' in first.content
    accepted = first.json()
    assert accepted["status"] == "Accepted"
    again = az.api("POST", "/api/usageEvent", json=event(sid, quantity=7))
    assert again.status_code == 409
    conflict = again.json()
    assert conflict["code"] == "Conflict"
    assert conflict["additionalInfo"]["acceptedMessage"]["usageEventId"] == accepted["usageEventId"]
    bad = az.api("POST", "/api/usageEvent", json=event(sid, quantity=-1))
    assert bad.status_code == 400
    assert bad.json()["details"][0]["code"] == "InvalidQuantity"
    assert [r["status"] for r in az.ctl("GET", "/control/usage")["received"]] == [200, 409, 400]


def test_usage_before_a_cancellation_is_accepted_within_24_h_and_none_after(az: Az) -> None:
    sid = az.subscribed()["subscription_id"]
    az.clock.advance(3 * HOUR)  # 13:30
    az.ctl("POST", f"/control/subscriptions/{sid}/unsubscribe")
    az.clock.advance(2 * HOUR)  # 15:30
    results = batch(az, event(sid, at=T0 + HOUR), event(sid, at=T0 + 3 * HOUR),
                    event(sid, at=T0 + 4 * HOUR))
    assert [r["status"] for r in results] == ["Accepted", "Accepted", "ResourceNotActive"]
    before_activation = batch(az, event(sid, at=T0 - 2 * HOUR))
    assert before_activation[0]["status"] == "ResourceNotActive"


def test_the_duplicate_key_is_configurable_and_injected_faults_answer_as_azure(az: Az) -> None:
    sid = az.subscribed()["subscription_id"]
    az.ctl("PUT", "/control/config", json={"dedupe": "resource"})
    results = batch(az, event(sid), event(sid, dimension="storage"))
    assert [r["status"] for r in results] == ["Accepted", "Duplicate"]
    az.ctl("POST", "/control/faults", json={"operation": "batchUsageEvent",
                                            "kind": "event_error", "events": 1})
    az.clock.advance(3 * HOUR)
    results = batch(az, event(sid, at=T0 + HOUR), event(sid, at=T0 + 2 * HOUR))
    assert [r["status"] for r in results] == ["Error", "Accepted"]
    az.ctl("POST", "/control/faults", json={"operation": "batchUsageEvent", "kind": "throttling"})
    throttled = az.api("POST", "/api/batchUsageEvent", json={"request": [event(sid)]})
    assert throttled.status_code == 429
    az.ctl("POST", "/control/faults", json={"operation": "get", "kind": "internal_error"})
    assert az.api("GET", f"{SUBS}/{sid}").status_code == 500
    assert az.api("GET", f"{SUBS}/{sid}").status_code == 200


def test_usage_events_lists_what_was_accepted_for_reconciliation(az: Az) -> None:
    sid = az.subscribed()["subscription_id"]
    az.clock.advance(4 * HOUR)
    batch(az, event(sid, at=T0 + HOUR, quantity=Decimal("4.25")),
          event(sid, at=T0 + 3 * HOUR, quantity=2))
    assert az.api("GET", "/api/usageEvents").status_code == 400
    rows = wire.loads(az.api("GET", "/api/usageEvents",
                             params={"usageStartDate": "2026-11-26T00:00:00Z"}).content)
    assert [(r["usageResourceId"], r["submittedQuantity"], r["reconStatus"]) for r in rows] == [
        (sid, Decimal("4.25"), "Accepted"), (sid, 2, "Accepted")]
    later = az.api("GET", "/api/usageEvents", params={
        "usageStartDate": "2026-11-26T12:00:00Z", "dimension": DIMENSION}).json()
    assert len(later) == 1 and later[0]["usageDate"].startswith("2026-11-26T13:00:00")
    az.ctl("POST", f"/control/usage/{rows[0]['usageEventId']}/recon",
           json={"status": "Mismatch", "processed_quantity": "4"})
    mismatched = wire.loads(az.api("GET", "/api/usageEvents", params={
        "usageStartDate": "2026-11-26T00:00:00Z", "reconStatus": "Mismatch"}).content)
    assert [(r["submittedQuantity"], r["processedQuantity"]) for r in mismatched] == [
        (Decimal("4.25"), 4)]


def test_live_quirks_switch_to_the_observed_answers(az: Az) -> None:
    az.ctl("PUT", "/control/config", json={"live_quirks": True})
    sid = az.purchase()["subscription_id"]
    assert az.api("POST", f"{SUBS}/{sid}/activate", json={"planId": "gold"}).status_code == 200
    assert az.api("GET", f"{SUBS}/{sid}/operations/x").status_code == 400
    op = az.api("PATCH", f"{SUBS}/{sid}", json={"planId": "gold"}).headers["operation-id"]
    assert az.api("PATCH", f"{SUBS}/{sid}/operations/{op}",
                  json={"status": "Success"}).status_code == 500


# --- mounting -------------------------------------------------------------------------


def test_the_app_serves_the_emulator_under_sandbox_azure_out_of_the_schema(
        runtime: Runtime, client: TestClient) -> None:
    assert runtime.azure_sandbox is not None
    assert runtime.azure_sandbox.endpoint_url == "http://127.0.0.1:8000/sandbox/azure"
    created = client.post("/sandbox/azure/control/offers", json={
        "offer_id": "o", "plans": [{"plan_id": "p", "dimensions": ["usage_minor"]}]})
    assert created.status_code == 201, created.text
    assert client.get("/sandbox/azure/api/saas/subscriptions").status_code == 403
    paths = client.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith("/sandbox/azure")]


def test_off_mounts_nothing_and_the_command_serves_it_alone(
        tmp_path: Path, pg_databases: tuple[str, str] | None, clock: ManualClock) -> None:
    runtime = make_runtime(tmp_path, pg_databases, clock, azure_marketplace="off")
    try:
        assert runtime.azure_sandbox is None
        with TestClient(runtime.app) as client:
            assert client.post("/sandbox/azure/control/reset").status_code == 404
    finally:
        runtime.console.engine.dispose()
        runtime.billing.engine.dispose()
    from typer.testing import CliRunner

    from accrual.cli import app

    runner = CliRunner()
    shown = runner.invoke(app, ["sandbox", "azure", "--help"])
    assert shown.exit_code == 0 and "--dedupe" in shown.output
    assert runner.invoke(app, ["sandbox", "azure", "--dedupe", "hourly"]).exit_code != 0
