"""Huawei Cloud KooGallery end to end, over real HTTP: the emulator shipped with Accrual
plays KooGallery (mounted under /sandbox/huawei), sends its signed V2 activities to the
billing center's own endpoint, and takes the usage the charge reporter pushes.

A buyer orders the pay-per-use product → newInstance → queryInstance gives the
activation page → registration with that activation → the workspace settles through
KooGallery → usage → day close → vouchers pay first → the rest is pushed and billed
exactly once per metering_sn, also when the reporter is killed between sending and
recording the answer and when KooGallery throttles or fails. Forged, stale and replayed
activities change nothing, also in a new runtime on the same database (the nonce store
is there). Freeze locks, unfreeze unlocks; release locks, removes the cloud link and
moves the workspace to the billing center, where choosing the billing center unlocks it
and mails its owner (a real SMTP server).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from accrual.app import Runtime, build
from accrual.billing.adapters import tables as t
from accrual.billing.domain.marketplace import ReportResult, UsageReport
from accrual.clock import ManualClock
from accrual.sandbox.huawei.signing import activity_signature
from tests.conftest import SHANGHAI, START, make_runtime
from tests.e2e.marketplace_support import backlog, charges, ok, served
from tests.helpers import OPERATOR, bearer
from tests.sandbox_server import free_port
from tests.smtp import Inbox

PASSWORD = "correct horse battery"
PRODUCT = "OFFI-accrual-saas"
CONTROL = "/sandbox/huawei/control"
ACTIVITIES = "/billing/v1/marketplaces/huawei/activities"


@pytest.fixture
def live(tmp_path: Path, pg_databases: tuple[str, str] | None, clock: ManualClock,
         smtp_server: tuple[Inbox, int]) -> Iterator[tuple[Runtime, httpx.Client, Inbox]]:
    """The whole app on a real port it knows in advance (KooGallery calls it there),
    mailing to a local SMTP server."""
    inbox, smtp_port = smtp_server
    port = free_port()
    runtime = make_runtime(tmp_path, pg_databases, clock, public_url=f"http://127.0.0.1:{port}",
                           smtp_host="127.0.0.1", smtp_port=smtp_port)
    with served(runtime, port) as http:
        yield runtime, http, inbox



def calls(http: httpx.Client, activity: str | None = None) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = ok(http.get(f"{CONTROL}/calls"))["calls"]
    return [c for c in found if activity is None or c["activity"] == activity]


def answer_of(call: dict[str, Any], status: int = 200) -> dict[str, Any]:
    attempt = call["attempts"][-1]
    assert attempt["status"] == status and attempt["body_sign"] == "ok", attempt
    parsed: dict[str, Any] = json.loads(attempt["answer"])
    return parsed


def order_of(http: httpx.Client, order_id: str) -> dict[str, Any]:
    [order] = [o for o in ok(http.get(f"{CONTROL}/orders"))["orders"]
               if o["order_id"] == order_id]
    return order


def buy_and_register(http: httpx.Client, name: str) -> dict[str, Any]:
    """A buyer orders on KooGallery: newInstance reaches us; KooGallery asks for the
    instance's information (queryInstance), whose front-end URL is the activation page;
    the buyer registers with that activation."""
    bought = ok(http.post(f"{CONTROL}/products/{PRODUCT}/orders",
                          json={"customer_id": f"hw-{name}", "customer_name": name}), 201)
    call = bought["call"]
    assert call["outcome"] == "succeeded", call
    instance_id = answer_of(call)["instanceId"]
    order_id = bought["order"]["order_id"]
    assert order_of(http, order_id)["instance_id"] == instance_id
    # KooGallery resends newInstance: the same instance, the same open activation.
    again = ok(http.post(f"{CONTROL}/orders/{order_id}/resend"))
    assert (again["outcome"], again["violations"]) == ("succeeded", [])
    assert answer_of(again)["appInfo"] == answer_of(call)["appInfo"]
    queried = ok(http.post(f"{CONTROL}/query", json={"order_ids": [order_id]}))
    assert queried["outcome"] == "succeeded", queried
    app_info = order_of(http, order_id)["app_info"]
    activation_id = app_info["frontEndUrl"].rsplit("/", 1)[1]
    assert app_info["frontEndUrl"] == str(http.base_url.join(
        f"/billing/v1/marketplaces/activations/{activation_id}"))
    activation = ok(http.get(app_info["frontEndUrl"]))
    assert (activation["vendor"], activation["buyer_account_id"], activation["state"]) \
        == ("huawei", f"hw-{name}", "open")
    registered = ok(http.post("/console/v1/registrations", json={
        "email": f"{name}@example.com", "password": PASSWORD, "username": name,
        "workspace_name": f"{name}'s team", "language": "en",
        "activation_id": activation_id}), 201)
    login = ok(http.post("/billing/v1/sessions", json={"username": name, "password": PASSWORD}))
    return {**registered, "order_id": order_id, "instance_id": instance_id,
            "activation_id": activation_id, "billing": bearer(login["token"])}


def logs(workspace_id: str, record_id: str, millions: int, day: str) -> dict[str, object]:
    """Logs at 7 days' retention: 1.20 per million (CNY, cn sites), early that day."""
    return {"id": record_id, "workspace_id": workspace_id, "item": "logs", "retention_days": 7,
            "time": f"{day}T00:05:00+08:00", "quantity": str(millions * 1_000_000)}


def send(http: httpx.Client, buyer: dict[str, Any], record_id: str, millions: int,
         day: str) -> httpx.Response:
    return http.post("/console/v1/usage", headers=bearer(buyer["ingest_key"]), json={
        "records": [logs(buyer["workspace_id"], record_id, millions, day)]})


def accepted(http: httpx.Client, buyer: dict[str, Any], record_id: str, day: str) -> None:
    answer = ok(send(http, buyer, record_id, 1, day))
    assert answer["accepted"] == 1, answer


def refused_locked(http: httpx.Client, buyer: dict[str, Any], record_id: str, day: str) -> None:
    answer = send(http, buyer, record_id, 1, day)
    assert "workspace_locked" in answer.text, answer.text




def usage(http: httpx.Client) -> dict[str, Any]:
    return ok(http.get(f"{CONTROL}/usage"))


def account_view(http: httpx.Client, buyer: dict[str, Any]) -> dict[str, Any]:
    return ok(http.get(f"/billing/v1/accounts/{buyer['billing_account_id']}",
                       headers=buyer["billing"]))


def test_a_buyer_from_order_to_a_charge_billed_once(
        live: tuple[Runtime, httpx.Client, Inbox], clock: ManualClock) -> None:
    runtime, http, _ = live
    clock.set(START)
    ada = buy_and_register(http, "ada")
    account = ada["billing_account_id"]
    [workspace] = account_view(http, ada)["workspaces"]
    assert (workspace["workspace_id"], workspace["settlement_method"]) \
        == (ada["workspace_id"], "huawei")
    # Vouchers pay first (reference-billing.md §4.1): 1.00 of a 2.40 day.
    ok(http.post(f"/billing/v1/admin/accounts/{account}/vouchers", headers=OPERATOR, json={
        "kind": "voucher_standard", "amount": "1.00", "reference": "welcome"}), 201)
    assert ok(send(http, ada, "a1", 2, "2026-11-26"))["accepted"] == 1

    # After midnight the scheduler closes the day, settles it and pushes the rest.
    clock.set(datetime(2026, 11, 27, 0, 31, tzinfo=SHANGHAI))
    runtime.scheduler.tick()
    assert runtime.scheduler.last_error is None
    [charge] = charges(http)
    assert (charge["status"], charge["quantity"], charge["amount"], charge["attempts"]) \
        == ("accepted", 140, "1.40", 1)
    [record] = usage(http)["records"]
    assert (record["record"]["instance_id"], record["record"]["usage_value"]) \
        == (ada["instance_id"], "140")
    assert ok(http.post(f"{CONTROL}/validate")) == {"billable": 1, "rejected": 0,
                                                    "duplicate": 0}
    [record] = usage(http)["records"]
    assert (record["validation"], record["late"]) == ("billable", False)
    runtime.scheduler.tick()  # nothing more is sent
    assert len(usage(http)["records"]) == 1 and backlog(http)["pending"] == 0


class Killed(Exception):
    """The reporter's process dying after KooGallery took the push, before the answer
    is kept."""


def test_exactly_once_per_metering_sn_under_throttling_errors_and_a_killed_reporter(
        live: tuple[Runtime, httpx.Client, Inbox], clock: ManualClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    runtime, http, _ = live
    clock.set(START)
    buyers = [buy_and_register(http, name) for name in ("ada", "bob", "cyd")]
    for n, buyer in enumerate(buyers, start=1):
        assert ok(send(http, buyer, f"r{n}", n, "2026-11-26"))["accepted"] == 1
    reporter = runtime.billing.marketplace_reporter
    clock.set(datetime(2026, 11, 27, 0, 31, tzinfo=SHANGHAI))

    def fault(kind: str) -> None:
        ok(http.post(f"{CONTROL}/faults", json={"kind": kind, "calls": 1}))

    def due() -> None:
        """Move to when every charge backing off is due again."""
        waiting = [datetime.fromisoformat(c["next_attempt_at"]) for c in charges(http)
                   if c["status"] == "pending"]
        clock.set(max([clock.now(), *waiting]) + timedelta(seconds=1))

    fault("throttling")
    runtime.scheduler.tick()  # day close, settlement, cut: three charges, one push
    assert [c["status"] for c in charges(http)] == ["pending"] * 3
    fault("internal_error")
    due()
    reporter.run()
    assert [c["status"] for c in charges(http)] == ["pending"] * 3
    assert [p["status"] for p in usage(http)["pushes"]] == [429, 500]

    # Killed: KooGallery takes the push, the reporter dies before recording the answer.
    huawei = runtime.billing.marketplaces.get("huawei")
    real_report = huawei.report

    def report_then_die(reports: Sequence[UsageReport]) -> list[ReportResult]:
        real_report(reports)
        raise Killed

    monkeypatch.setattr(huawei, "report", report_then_die)
    due()
    reporter.run()
    assert [c["status"] for c in charges(http)] == ["sent"] * 3
    # Restarted: after the grace the identical push goes again, the same metering_sn.
    monkeypatch.setattr(huawei, "report", real_report)
    clock.advance(timedelta(minutes=6))
    reporter.run()
    final = charges(http)
    assert [c["status"] for c in final] == ["accepted"] * 3
    assert sorted(c["quantity"] for c in final) == [120, 240, 360]

    # KooGallery's background validation bills each metering_sn once.
    assert ok(http.post(f"{CONTROL}/validate")) == {"billable": 3, "rejected": 0,
                                                    "duplicate": 3}
    seen = usage(http)
    billable = [r for r in seen["records"] if r["validation"] == "billable"]
    assert sorted(r["metering_sn"] for r in billable) == sorted(
        {r["metering_sn"] for r in seen["records"]})
    assert len(billable) == len(final) == 3
    assert sorted(Decimal(r["record"]["usage_value"]) for r in billable) == [120, 240, 360]
    assert set(seen["received_per_metering_sn"].values()) == {2}  # the resend, not billed
    # The metering_sn is the charge's, as the reporter's report names it.
    instance_of = {b["instance_id"] for b in buyers}
    assert {r["record"]["instance_id"] for r in billable} == instance_of
    for charge in final:
        assert any(r["metering_sn"].startswith(f"{charge['id']}-") for r in billable)
    figures = backlog(http)
    assert (figures["accepted"], figures["pending"], figures["sent_unanswered"],
            figures["duplicate"], figures["refused"]) == (3, 0, 0, 0, 0)
    # Sends: 3 throttled + 3 failed + 3 killed + 3 resent = 12, of which 9 retries.
    assert (figures["sends"], figures["retries"]) == (12, 9)
    assert [p["status"] for p in seen["pushes"]] == [429, 500, 200, 200]


def _signed_again(call: dict[str, Any], at: datetime, nonce: str) -> tuple[str, bytes]:
    """The call's last body, signed afresh (KooGallery's retry: a new nonce and time)."""
    body = call["attempts"][-1]["body"].encode()
    timestamp = str(int(at.timestamp() * 1000))
    signature = activity_signature("sandbox-access-key", "sandbox-secret-key", nonce,
                                   timestamp, body, hmac_key="access_key", hex_case="lower")
    return urlencode({"signature": signature, "timestamp": timestamp, "nonce": nonce}), body


def notifications(runtime: Runtime) -> int:
    """How many vendor calls the lifecycle recorded as applied."""
    with runtime.billing.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(
            t.marketplace_notifications)).scalar_one())


def test_forged_stale_and_replayed_activities_change_nothing_also_after_a_restart(
        live: tuple[Runtime, httpx.Client, Inbox], clock: ManualClock, tmp_path: Path) -> None:
    runtime, http, _ = live
    clock.set(START)
    ada = buy_and_register(http, "ada")
    order = ada["order_id"]
    ok(http.post(f"{CONTROL}/orders/{order}/freeze"))
    [freeze] = calls(http, "updateInstanceStatus")
    assert (freeze["outcome"], answer_of(freeze)["resultCode"]) == ("succeeded", "000000")
    ok(http.post(f"{CONTROL}/orders/{order}/unfreeze"))
    runtime.scheduler.tick()
    accepted(http, ada, "a1", "2026-11-26")
    before = len(calls(http, "updateInstanceStatus"))

    # The freeze again, as probes: stale, badly signed, replayed (its exact query and body).
    for kind in ("stale", "bad_signature", "replay"):
        probe = ok(http.post(f"{CONTROL}/orders/{order}/probe", json={"kind": kind}))
        assert probe["outcome"] == "rejected", probe
        assert json.loads(probe["attempts"][-1]["answer"])["resultCode"] == "000001"
    runtime.scheduler.tick()
    accepted(http, ada, "a2", "2026-11-26")  # not frozen by any of them
    assert len(calls(http, "updateInstanceStatus")) == before + 3

    # A new runtime on the same database (a restart, or another process): its adapter's
    # memory never saw the nonces; the database did.
    [unfreeze, *_] = [c for c in calls(http, "updateInstanceStatus") if c["probe"] is None][1:]
    attempt = unfreeze["attempts"][-1]
    replay_query = urlencode(attempt["query"])
    second = build(runtime.settings, clock=clock)
    try:
        with TestClient(second.app) as other:
            answer = other.post(f"{ACTIVITIES}/updateInstanceStatus?{replay_query}",
                                content=attempt["body"].encode(),
                                headers={"Content-Type": "application/json;charset=UTF-8"})
            assert answer.status_code == 401
            assert answer.json()["resultCode"] == "000001", answer.text
            assert "Body-Sign" in answer.headers
            # KooGallery's retry of the unfreeze (a new nonce, the same event: its answer
            # was lost) is a duplicate: answered success, nothing recorded or changed.
            applied = notifications(runtime)
            query, body = _signed_again(unfreeze, clock.now(), "retry-nonce-1")
            retried = other.post(f"{ACTIVITIES}/updateInstanceStatus?{query}", content=body)
            assert retried.json()["resultCode"] == "000000", retried.text
            assert notifications(runtime) == applied
            # The same nonce once more: a replay.
            again = other.post(f"{ACTIVITIES}/updateInstanceStatus?{query}", content=body)
            assert again.json()["resultCode"] == "000001", again.text
            # A forged body under a valid-looking query, and one for an unknown instance.
            forged = other.post(f"{ACTIVITIES}/updateInstanceStatus?{query}",
                                content=body.replace(b"UNFREEZE", b"FREEZE"))
            assert forged.json()["resultCode"] == "000001"
            unknown_body = json.dumps({"instanceId": "hw-nobody", "status": "FREEZE",
                                       "testFlag": "1"}).encode()
            query, _ = _signed_again({"attempts": [{"body": unknown_body.decode()}]},
                                     clock.now(), "retry-nonce-2")
            unknown = other.post(f"{ACTIVITIES}/updateInstanceStatus?{query}",
                                 content=unknown_body)
            assert unknown.json()["resultCode"] == "000003", unknown.text
    finally:
        second.console.engine.dispose()
        second.billing.engine.dispose()
    runtime.scheduler.tick()
    accepted(http, ada, "a3", "2026-11-26")  # still not frozen
    assert second.billing.huawei_activities.nonces.count() >= 3  # type: ignore[attr-defined]


def test_freeze_locks_unfreeze_unlocks_release_moves_to_the_billing_center_which_unlocks(
        live: tuple[Runtime, httpx.Client, Inbox], clock: ManualClock) -> None:
    runtime, http, inbox = live
    clock.set(START)
    ada = buy_and_register(http, "ada")
    order, account, workspace = ada["order_id"], ada["billing_account_id"], ada["workspace_id"]
    accepted(http, ada, "a1", "2026-11-26")

    # Frozen (expired or unpaid): locked; unfrozen: unlocked.
    ok(http.post(f"{CONTROL}/orders/{order}/freeze"))
    runtime.scheduler.tick()
    refused_locked(http, ada, "a2", "2026-11-26")
    ok(http.post(f"{CONTROL}/orders/{order}/unfreeze"))
    runtime.scheduler.tick()
    accepted(http, ada, "a3", "2026-11-26")
    # Renewed and upgraded: nothing to change for an active instance.
    ok(http.post(f"{CONTROL}/orders/{order}/refresh", json={"scene": "RENEWAL"}))
    ok(http.post(f"{CONTROL}/orders/{order}/upgrade", json={}))
    assert [answer_of(c)["resultCode"] for c in calls(http)
            if c["activity"] in ("refreshInstance", "upgradeInstance")] == ["000000"] * 2
    # Frozen, then renewed: a renewal brings it back too.
    ok(http.post(f"{CONTROL}/orders/{order}/freeze"))
    runtime.scheduler.tick()
    refused_locked(http, ada, "a4", "2026-11-26")
    ok(http.post(f"{CONTROL}/orders/{order}/refresh", json={"scene": "RENEWAL"}))
    runtime.scheduler.tick()
    accepted(http, ada, "a5", "2026-11-26")

    # Released by the buyer's unsubscription: locked, the cloud link removed, the
    # billing center from tomorrow (reference-billing.md §5.4).
    ok(http.post(f"{CONTROL}/orders/{order}/release", json={"unsubscribed": True}))
    [release] = calls(http, "releaseInstance")
    assert answer_of(release)["resultCode"] == "000000"
    runtime.scheduler.tick()
    refused_locked(http, ada, "a6", "2026-11-26")
    [bound] = account_view(http, ada)["workspaces"]
    assert bound["workspace_id"] == workspace
    methods = ok(http.get(f"/billing/v1/accounts/{account}/cloud-accounts",
                          headers=ada["billing"]))
    assert [c["status"] for c in methods] == ["cancelled"]
    locked_mail = [m for m in inbox.messages if m["To"] == "ada@example.com"
                   and "subscription ended" in m["Subject"]]
    assert locked_mail and "billing center" in locked_mail[-1].get_content()

    # Choosing the billing center (what it settles by from tomorrow already) unlocks it.
    moved = ok(http.put(f"/billing/v1/accounts/{account}/workspaces/{workspace}"
                        "/settlement-method", headers=ada["billing"],
                        json={"settlement_method": "billing_center"}))
    assert (moved["settlement_method"], moved["changed"], moved["unlocked"]) \
        == ("billing_center", False, True)
    runtime.scheduler.tick()
    accepted(http, ada, "a7", "2026-11-26")
    unlocked_mail = [m for m in inbox.messages if m["To"] == "ada@example.com"
                     and "is unlocked" in m["Subject"]]
    assert unlocked_mail, [m["Subject"] for m in inbox.messages]
    assert "billing center" in unlocked_mail[-1].get_content()
    # Once unlocked it stays on the billing center; asking again is unchanged.
    again = http.put(f"/billing/v1/accounts/{account}/workspaces/{workspace}"
                     "/settlement-method", headers=ada["billing"],
                     json={"settlement_method": "billing_center"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "settlement_unchanged"
    clock.set(datetime(2026, 11, 27, 10, 0, tzinfo=SHANGHAI))
    [bound] = account_view(http, ada)["workspaces"]
    assert bound["settlement_method"] == "billing_center"


def test_a_released_workspace_is_unlocked_by_subscribing_again(
        live: tuple[Runtime, httpx.Client, Inbox], clock: ManualClock) -> None:
    runtime, http, _ = live
    clock.set(START)
    ada = buy_and_register(http, "ada")
    ok(http.post(f"{CONTROL}/orders/{ada['order_id']}/release", json={}))
    runtime.scheduler.tick()
    refused_locked(http, ada, "a1", "2026-11-26")
    # A new order: a new instance and activation, claimed and bound by the same account.
    bought = ok(http.post(f"{CONTROL}/products/{PRODUCT}/orders",
                          json={"customer_id": "hw-ada"}), 201)
    assert answer_of(bought["call"])["instanceId"] != ada["instance_id"]
    ok(http.post(f"{CONTROL}/query", json={"order_ids": [bought["order"]["order_id"]]}))
    url = order_of(http, bought["order"]["order_id"])["app_info"]["frontEndUrl"]
    activation_id = url.rsplit("/", 1)[1]
    ok(http.post(f"/billing/v1/marketplaces/activations/{activation_id}/claim",
                 headers=ada["billing"]))
    [bound] = ok(http.post(f"/billing/v1/marketplaces/activations/{activation_id}/workspaces",
                           headers=ada["billing"],
                           json={"workspace_ids": [ada["workspace_id"]]}))["workspaces"]
    assert (bound["settlement_method"], bound["unlocked"]) == ("huawei", True)
    runtime.scheduler.tick()
    accepted(http, ada, "a2", "2026-11-26")



def test_a_released_workspace_is_unlocked_by_another_cloud_account(
        live: tuple[Runtime, httpx.Client, Inbox], clock: ManualClock) -> None:
    runtime, http, _ = live
    clock.set(START)
    ada = buy_and_register(http, "ada")
    # A second instance the same account holds (claimed, settling nothing yet).
    bought = ok(http.post(f"{CONTROL}/products/{PRODUCT}/orders",
                          json={"customer_id": "hw-ada"}), 201)
    activation_id = answer_of(bought["call"])["appInfo"]["frontEndUrl"].rsplit("/", 1)[1]
    claimed = ok(http.post(f"/billing/v1/marketplaces/activations/{activation_id}/claim",
                           headers=ada["billing"]))
    ok(http.post(f"{CONTROL}/orders/{ada['order_id']}/release", json={}))
    runtime.scheduler.tick()
    refused_locked(http, ada, "a1", "2026-11-26")
    # queryInstance tells KooGallery the first instance's state here.
    ok(http.post(f"{CONTROL}/query", json={"order_ids": [ada["order_id"]]}))
    assert "cancelled" in order_of(http, ada["order_id"])["app_info"]["memo"]
    moved = ok(http.put(
        f"/billing/v1/accounts/{ada['billing_account_id']}/workspaces/{ada['workspace_id']}"
        "/settlement-method", headers=ada["billing"],
        json={"settlement_method": "huawei", "cloud_account_id": claimed["cloud_account_id"]}))
    assert (moved["settlement_method"], moved["changed"], moved["unlocked"]) \
        == ("huawei", True, True)
    runtime.scheduler.tick()
    accepted(http, ada, "a2", "2026-11-26")


def test_an_order_of_a_product_this_center_does_not_sell_is_refused(
        live: tuple[Runtime, httpx.Client, Inbox], clock: ManualClock) -> None:
    runtime, http, _ = live
    clock.set(START)
    base = str(http.base_url).rstrip("/")
    ok(http.post(f"{CONTROL}/products", json={
        "product_id": "OFFI-other", "sku_code": "other", "isv_url": base + ACTIVITIES,
        "charging_mode": "ON_DEMAND"}), 201)
    bought = ok(http.post(f"{CONTROL}/products/OFFI-other/orders", json={}), 201)
    assert answer_of(bought["call"], 400)["resultCode"] == "000002"
    assert bought["order"]["instance_id"] is None
    with runtime.billing.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.cloud_accounts)).scalar() == 0


def test_usage_settled_while_frozen_waits_and_is_pushed_once_unfrozen(
        live: tuple[Runtime, httpx.Client, Inbox], clock: ManualClock) -> None:
    runtime, http, _ = live
    clock.set(START)
    ada = buy_and_register(http, "ada")
    accepted(http, ada, "a1", "2026-11-26")  # 1.20
    ok(http.post(f"{CONTROL}/orders/{ada['order_id']}/freeze"))
    # The day closes while the instance is frozen: KooGallery takes no usage for it, so
    # none is pushed; the day waits on the cloud receivable, not on the wallet.
    clock.set(datetime(2026, 11, 27, 0, 31, tzinfo=SHANGHAI))
    runtime.scheduler.tick()
    assert charges(http) == [] and usage(http)["pushes"] == []
    overview = ok(http.get(f"/billing/v1/accounts/{ada['billing_account_id']}/overview",
                           headers=ada["billing"]))
    assert overview["arrears"] == "0.00"
    # Unfrozen: the next run reports it, once.
    clock.set(datetime(2026, 11, 27, 1, 5, tzinfo=SHANGHAI))
    ok(http.post(f"{CONTROL}/orders/{ada['order_id']}/unfreeze"))
    runtime.scheduler.tick()
    [charge] = charges(http)
    assert (charge["quantity"], charge["status"]) == (120, "accepted")
    assert len(usage(http)["pushes"]) == 1
    overview = ok(http.get(f"/billing/v1/accounts/{ada['billing_account_id']}/overview",
                           headers=ada["billing"]))
    assert overview["arrears"] == "0.00"
