"""Azure Marketplace end to end, over real HTTP, in a USD billing center (decisions.md
14): the emulator shipped with Accrual plays Microsoft (mounted under /sandbox/azure,
Entra under its /login), the billing center speaks to it through the Azure adapter,
and the emulator sends the buyer's browser to the landing page and its webhook calls
to the billing center's own endpoints.

A buyer purchases → the landing page with the token → registration with the
activation → Activate at Azure (billing starts) → usage → day close → settlement →
the reporter sends → Azure holds each hour's event exactly once, also when the
reporter is killed between sending and recording, when Azure throttles or fails, and
when reconciliation reads back what Azure holds. Then the subscription's life by
webhook: Suspend locks, Reinstate unlocks (answered Success), ChangePlan moves the
reports to the new plan, Unsubscribe locks and mails the owner; forged, stale and
replayed calls change nothing. A CNY center has no Azure at all.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from sqlalchemy import select

from accrual.app import Runtime
from accrual.billing.adapters import tables
from accrual.billing.domain.marketplace import Buyer, ReportResult, UsageReport
from accrual.billing.marketplaces.azure import AzureMarketplace
from accrual.clock import ManualClock
from accrual.marketplace_setup import adapters
from accrual.settings import Settings
from tests.conftest import make_runtime
from tests.e2e.marketplace_support import backlog, charges, ok, served
from tests.helpers import OPERATOR, bearer
from tests.sandbox_server import free_port, serve
from tests.smtp import Inbox

PASSWORD = "correct horse battery"
OFFER = "accrual-saas"
CONTROL = "/sandbox/azure/control"
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
NEXT_DAY = datetime(2026, 11, 27, 0, 31, tzinfo=UTC)  # the day closes (UTC + 30 min)


def _usd(tmp_path: Path, pg: tuple[str, str] | None, clock: ManualClock, port: int,
         **extra: object) -> Runtime:
    return make_runtime(tmp_path, pg, clock, public_url=f"http://127.0.0.1:{port}",
                        site="us1", site_group="intl", currency="USD", **extra)


@pytest.fixture
def live(tmp_path: Path, pg_databases: tuple[str, str] | None, clock: ManualClock,
         smtp_server: tuple[Inbox, int]) -> Iterator[tuple[Runtime, httpx.Client, Inbox]]:
    """The whole USD app served on a port it knows in advance (the emulator calls it
    back there), its mail going to a real local SMTP server."""
    inbox, smtp_port = smtp_server
    clock.set(T0)
    port = free_port()
    runtime = _usd(tmp_path, pg_databases, clock, port, smtp_host="127.0.0.1",
                   smtp_port=smtp_port)
    with served(runtime, port) as http:
        yield runtime, http, inbox



def purchase(http: httpx.Client, plan: str = "payg") -> dict[str, Any]:
    """A customer buys the offer in Azure: a subscription waiting for its Activate."""
    return ok(http.post(f"{CONTROL}/offers/{OFFER}/purchases", json={"plan_id": plan}), 201)


def land(http: httpx.Client, bought: dict[str, Any]) -> str:
    """Azure sends the browser to the landing page; it is sent on to the activation."""
    landed = http.get(bought["landing_url"])
    assert landed.status_code == 303, landed.text
    return str(landed.headers["location"].rsplit("/", 1)[1])


def register(http: httpx.Client, name: str, activation_id: str) -> httpx.Response:
    return http.post("/console/v1/registrations", json={
        "email": f"{name}@example.com", "password": PASSWORD, "username": name,
        "workspace_name": f"{name}'s team", "language": "en", "activation_id": activation_id})


def buyer(http: httpx.Client, name: str, plan: str = "payg") -> dict[str, Any]:
    bought = purchase(http, plan)
    registered = ok(register(http, name, land(http, bought)), 201)
    login = ok(http.post("/billing/v1/sessions", json={"username": name, "password": PASSWORD}))
    return {**registered, **bought, "billing": bearer(login["token"]), "email":
            f"{name}@example.com"}


def subscription(http: httpx.Client, subscription_id: str) -> dict[str, Any]:
    [found] = [s for s in ok(http.get(f"{CONTROL}/subscriptions"))["subscriptions"]
               if s["id"] == subscription_id]
    return dict(found)


def logs(workspace_id: str, record_id: str, millions: int, day: str) -> dict[str, object]:
    """Logs at 7 days' retention: 0.40 USD per million (intl sites)."""
    return {"id": record_id, "workspace_id": workspace_id, "item": "logs", "retention_days": 7,
            "time": f"{day}T00:05:00+00:00", "quantity": str(millions * 1_000_000)}


def ingest(http: httpx.Client, who: dict[str, Any], record_id: str, millions: int,
           day: str) -> httpx.Response:
    return http.post("/console/v1/usage", headers=bearer(who["ingest_key"]), json={
        "records": [logs(who["workspace_id"], record_id, millions, day)]})


def send(http: httpx.Client, who: dict[str, Any], record_id: str, millions: int,
         day: str) -> None:
    assert ok(ingest(http, who, record_id, millions, day))["accepted"] == 1


def usage(http: httpx.Client) -> dict[str, Any]:
    return dict(ok(http.get(f"{CONTROL}/usage")))




def webhooks(http: httpx.Client, action: str) -> list[dict[str, Any]]:
    return [w for w in ok(http.get(f"{CONTROL}/webhooks"))["webhooks"] if w["action"] == action]


def locked(http: httpx.Client, who: dict[str, Any], record_id: str, day: str) -> bool:
    answer = ingest(http, who, record_id, 1, day)
    return "workspace_locked" in answer.text


def test_landing_registration_activates_and_usage_is_billed_once(
        live: tuple[Runtime, httpx.Client, Inbox], clock: ManualClock) -> None:
    runtime, http, _ = live
    bought = purchase(http)
    assert bought["landing_url"].startswith(f"{http.base_url}/billing/v1/marketplaces/azure/"
                                            "landing?token=")
    activation_id = land(http, bought)
    activation = ok(http.get(f"/billing/v1/marketplaces/activations/{activation_id}"))
    assert (activation["vendor"], activation["buyer_account_id"], activation["state"]) \
        == ("azure", bought["subscription_id"], "open")
    # Landing starts no billing: Azure waits for the Activate.
    assert subscription(http, bought["subscription_id"])["saasSubscriptionStatus"] \
        == "PendingFulfillmentStart"

    # Azure failing at Activate refuses the registration whole: nothing is made.
    ok(http.post(f"{CONTROL}/faults", json={"operation": "activate", "kind": "internal_error"}))
    failed = register(http, "ada", activation_id)
    assert failed.status_code == 503, failed.text
    assert failed.json()["error"]["code"] == "marketplace_unavailable"
    assert http.post("/billing/v1/sessions", json={"username": "ada", "password": PASSWORD}
                     ).status_code == 401
    assert ok(http.get(f"/billing/v1/marketplaces/activations/{activation_id}"))["state"] \
        == "open"
    assert subscription(http, bought["subscription_id"])["saasSubscriptionStatus"] \
        == "PendingFulfillmentStart"
    # The same request again: Activate, then the registration; billing starts at Azure.
    ada = ok(register(http, "ada", activation_id), 201)
    assert subscription(http, bought["subscription_id"])["saasSubscriptionStatus"] == "Subscribed"
    assert ok(http.get(f"/billing/v1/marketplaces/activations/{activation_id}"))["state"] \
        == "completed"
    ada["billing"] = bearer(ok(http.post("/billing/v1/sessions", json={
        "username": "ada", "password": PASSWORD}))["token"])
    [workspace] = ok(http.get(f"/billing/v1/accounts/{ada['billing_account_id']}",
                              headers=ada["billing"]))["workspaces"]
    assert workspace["settlement_method"] == "azure"

    # A second purchase claimed by the signed-in account: Activate at the claim.
    second = purchase(http)
    claimed_id = land(http, second)
    claimed = ok(http.post(f"/billing/v1/marketplaces/activations/{claimed_id}/claim",
                           headers=ada["billing"]))
    assert claimed["state"] == "completed"
    assert subscription(http, second["subscription_id"])["saasSubscriptionStatus"] \
        == "Subscribed"
    ok(http.post(f"/billing/v1/marketplaces/activations/{claimed_id}/claim",
                 headers=ada["billing"]))  # repeated: Activate answers "active already"

    # Usage → day close → settlement → the reporter: 2 million logs = 0.80 USD = 80 units.
    send(http, ada, "a1", 2, "2026-11-26")
    clock.set(NEXT_DAY)
    runtime.scheduler.tick()
    assert runtime.scheduler.last_error is None
    [charge] = charges(http)
    assert (charge["status"], charge["quantity"], charge["amount"], charge["currency"]) \
        == ("accepted", 80, "0.80", "USD")
    held = usage(http)
    [event] = held["accepted"]
    assert (event["resourceId"], event["dimension"], Decimal(str(event["quantity"])),
            event["planId"], event["effectiveStartTime"][:13], event["usageEventId"]) \
        == (bought["subscription_id"], "usage_minor", 80, "payg", "2026-11-27T00",
            charge["record_id"])
    runtime.scheduler.tick()  # nothing more goes
    assert len(usage(http)["received"]) == 1 and set(held["counts_per_key"].values()) == {1}


class Killed(Exception):
    """The reporter's process dying after the call, before the answer is kept."""


def test_each_hour_is_held_once_through_faults_a_killed_reporter_and_reconciliation(
        live: tuple[Runtime, httpx.Client, Inbox], clock: ManualClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    runtime, http, _ = live
    buyers = [buyer(http, name) for name in ("ada", "bob", "cyd", "dan")]
    for n, who in enumerate(buyers, start=1):
        send(http, who, f"r{n}", n, "2026-11-26")  # 0.40, 0.80, 1.20, 1.60
    reporter = runtime.billing.marketplace_reporter
    reconciliation = runtime.billing.marketplace_reconciliation
    clock.set(NEXT_DAY)

    def fault(kind: str, **extra: int) -> None:
        ok(http.post(f"{CONTROL}/faults", json={"operation": "batchUsageEvent", "kind": kind,
                                                "calls": 1, **extra}))

    def due() -> None:
        waiting = [datetime.fromisoformat(c["next_attempt_at"]) for c in charges(http)
                   if c["status"] == "pending"]
        clock.set(max([clock.now(), *waiting]) + timedelta(seconds=1))

    def statuses() -> list[str]:
        return [c["status"] for c in charges(http)]

    fault("throttling")
    runtime.scheduler.tick()  # day close, settlement, cut: four charges, one call (429)
    assert statuses() == ["pending"] * 4 and usage(http)["accepted"] == []
    fault("internal_error")
    due()
    reporter.run()
    assert statuses() == ["pending"] * 4 and usage(http)["accepted"] == []
    fault("event_error", events=2)  # two events answered Error: sent again
    due()
    reporter.run()
    assert sorted(statuses()) == ["accepted", "accepted", "pending", "pending"]

    # Killed twice: once after Azure took the call, once before it reached Azure.
    azure = runtime.billing.marketplaces.get("azure")
    real_report = azure.report

    def report_then_die(reports: Sequence[UsageReport]) -> list[ReportResult]:
        real_report(reports[:1])  # the first reached Azure, the second did not
        raise Killed

    monkeypatch.setattr(azure, "report", report_then_die)
    due()
    reporter.run()
    assert sorted(statuses()) == ["accepted", "accepted", "sent", "sent"]
    assert len(usage(http)["accepted"]) == 3
    monkeypatch.setattr(azure, "report", real_report)

    # Reconciliation after the grace: the one Azure holds is accepted with its id (no
    # resend); the one it does not is sent again by the reporter.
    clock.advance(timedelta(minutes=6))
    figures = reconciliation.run()
    assert (figures.checked, figures.accepted, figures.resent) == (2, 1, 1)
    assert sorted(statuses()) == ["accepted", "accepted", "accepted", "pending"]
    reporter.run()
    final = charges(http)
    assert [c["status"] for c in final] == ["accepted"] * 4
    held = usage(http)
    assert sorted(Decimal(str(e["quantity"])) for e in held["accepted"]) \
        == sorted(Decimal(c["quantity"]) for c in final) == [40, 80, 120, 160]
    assert {e["usageEventId"] for e in held["accepted"]} == {c["record_id"] for c in final}
    # Each (subscription, dimension, hour) held once: duplicates created = 0.
    assert set(held["counts_per_key"].values()) == {1} and len(held["counts_per_key"]) == 4
    status = ok(http.get("/billing/v1/admin/marketplaces/reconciliation", headers=OPERATOR))
    assert (status["since_start"]["accepted"], status["since_start"]["resent"]) == (1, 1)
    figures_out = backlog(http)
    assert (figures_out["accepted"], figures_out["pending"], figures_out["duplicate"],
            figures_out["refused"]) == (4, 0, 0, 0)
    # Sends: 4 throttled + 4 failed + 4 (2 errors) + 2 killed + 1 resent.
    assert (figures_out["sends"], figures_out["retries"]) == (15, 11)


def test_a_resend_after_a_lost_answer_and_an_unknown_outcome_past_the_window(
        live: tuple[Runtime, httpx.Client, Inbox], clock: ManualClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    runtime, http, _ = live
    ada, bob = buyer(http, "ada"), buyer(http, "bob")
    send(http, ada, "a1", 1, "2026-11-26")
    send(http, bob, "b1", 2, "2026-11-26")
    azure = runtime.billing.marketplaces.get("azure")
    real_report = azure.report

    def report_then_die(reports: Sequence[UsageReport]) -> list[ReportResult]:
        real_report(reports)
        raise Killed

    monkeypatch.setattr(azure, "report", report_then_die)
    clock.set(NEXT_DAY)
    runtime.scheduler.tick()
    assert [c["status"] for c in charges(http)] == ["sent", "sent"]
    monkeypatch.setattr(azure, "report", real_report)
    before = overview_cash(http, ada)

    # The reporter, restarted, resends identically: Azure answers Duplicate with the
    # original event of the same quantity, which counts as accepted (billed once, no
    # money to the wallet).
    clock.advance(timedelta(minutes=6))
    runtime.billing.marketplace_reporter.run()
    first, second = charges(http)
    held = {e["usageEventId"] for e in usage(http)["accepted"]}
    assert (first["status"], second["status"]) == ("accepted", "accepted")
    assert {first["record_id"], second["record_id"]} == held
    assert [r["answer"]["result"][0]["status"] for r in usage(http)["received"]][-1] \
        == "Duplicate"
    assert overview_cash(http, ada) == before

    # Another day: sent, never answered, and the reporter stays down past Azure's 24 h:
    # refused as an unknown outcome (kept on the cloud receivable), then reconciliation
    # finds Azure holds it: accepted.
    send(http, ada, "a2", 3, "2026-11-27")
    monkeypatch.setattr(azure, "report", report_then_die)
    clock.set(NEXT_DAY + timedelta(days=1))
    runtime.scheduler.tick()
    monkeypatch.setattr(azure, "report", real_report)
    clock.advance(timedelta(hours=25))
    runtime.billing.marketplace_reporter.run()
    third = charges(http)[-1]
    assert third["status"] == "refused" and "reconcile" in third["last_error"]
    figures = runtime.billing.marketplace_reconciliation.run()
    assert (figures.checked, figures.accepted) == (1, 1)
    third = charges(http)[-1]
    assert (third["status"], third["quantity"]) == ("accepted", 120)
    assert third["record_id"] in {e["usageEventId"] for e in usage(http)["accepted"]}
    assert overview_cash(http, ada) == before
    assert set(usage(http)["counts_per_key"].values()) == {1}


def overview_cash(http: httpx.Client, who: dict[str, Any]) -> Any:
    return ok(http.get(f"/billing/v1/accounts/{who['billing_account_id']}/overview",
                       headers=who["billing"]))


def forge_token(claims: dict[str, Any]) -> str:
    """A JWT signed by a key that is not the tenant's."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    signed = f"{part({'alg': 'RS256', 'kid': 'forged', 'typ': 'JWT'})}.{part(claims)}"
    signature = key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signed + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


def test_webhooks_suspend_reinstate_change_plan_unsubscribe_and_forgeries(
        live: tuple[Runtime, httpx.Client, Inbox], clock: ManualClock) -> None:
    runtime, http, inbox = live
    ada = buyer(http, "ada")
    sub_id = ada["subscription_id"]
    runtime.scheduler.tick()
    send(http, ada, "a1", 1, "2026-11-26")

    # Suspend (payment failed). Get operation fails at first: the call cannot be
    # confirmed, is answered 503 and changes nothing; Azure calls again and it applies:
    # the workspace is locked.
    clock.set(T0 + timedelta(hours=1))
    ok(http.post(f"{CONTROL}/faults", json={"operation": "operations",
                                            "kind": "internal_error"}))
    ok(http.post(f"{CONTROL}/subscriptions/{sub_id}/suspend"))
    [suspend] = webhooks(http, "Suspend")
    assert [a["status"] for a in suspend["attempts"]] == [503]
    runtime.scheduler.tick()
    send(http, ada, "a1b", 1, "2026-11-26")  # not locked yet
    clock.advance(timedelta(minutes=1))
    ok(http.post(f"{CONTROL}/tick"))
    [suspend] = webhooks(http, "Suspend")
    assert [a["status"] for a in suspend["attempts"]] == [503, 200]
    runtime.scheduler.tick()
    assert locked(http, ada, "a2", "2026-11-26")

    # Forged: a captured call's token on another body (an operation Azure does not
    # know as such), a token of another key, none at all; then a replay. Nothing changes.
    url = "/billing/v1/marketplaces/azure/webhook"
    headers = {"content-type": "application/json",
               "authorization": suspend["headers"]["Authorization"]}
    payload = json.loads(suspend["body"])
    forged_body = json.dumps({**payload, "action": "Reinstate", "status": "Succeeded"})
    answer = http.post(url, content=forged_body, headers=headers)
    assert (answer.status_code, answer.json()["error"]["code"]) \
        == (403, "operation_unconfirmed")
    claims = json.loads(base64.urlsafe_b64decode(
        suspend["headers"]["Authorization"].split(".")[1] + "=="))
    answer = http.post(url, content=forged_body, headers={
        **headers, "authorization": "Bearer " + forge_token(claims)})
    assert (answer.status_code, answer.json()["error"]["code"]) == (403, "bad_signature")
    answer = http.post(url, content=suspend["body"], headers={"content-type": "application/json"})
    assert (answer.status_code, answer.json()["error"]["code"]) == (403, "unauthenticated")
    replayed = http.post(url, content=suspend["body"], headers=headers)
    assert ok(replayed)["outcome"] == "duplicate"
    runtime.scheduler.tick()
    assert locked(http, ada, "a3", "2026-11-26")

    # Reinstate: answered Success at Azure, the workspace unlocked.
    ok(http.post(f"{CONTROL}/subscriptions/{sub_id}/reinstate"))
    [reinstate] = webhooks(http, "Reinstate")
    assert [a["status"] for a in reinstate["attempts"]] == [200]
    [operation] = [o for o in ok(http.get(f"{CONTROL}/operations"))["operations"]
                   if o["id"] == reinstate["operation_id"]]
    assert (operation["status"], operation["acknowledged"]) == ("Succeeded", "Success")
    assert subscription(http, sub_id)["saasSubscriptionStatus"] == "Subscribed"
    runtime.scheduler.tick()
    send(http, ada, "a4", 1, "2026-11-26")
    # A stale replay of the Suspend (its token expired) changes nothing: 403, unlocked.
    clock.advance(timedelta(hours=2))
    stale = http.post(url, content=suspend["body"], headers=headers)
    assert (stale.status_code, stale.json()["error"]["code"]) == (403, "stale")
    runtime.scheduler.tick()
    send(http, ada, "a5", 1, "2026-11-26")

    # The day closes: reported against payg.
    clock.set(NEXT_DAY)
    runtime.scheduler.tick()
    assert [(e["planId"], Decimal(str(e["quantity"]))) for e in usage(http)["accepted"]] \
        == [("payg", 160)]

    # ChangePlan to pro: answered Success; the next day's usage goes against pro.
    ok(http.post(f"{CONTROL}/subscriptions/{sub_id}/plan", json={"plan_id": "pro"}))
    [change] = webhooks(http, "ChangePlan")
    assert [a["status"] for a in change["attempts"]] == [200]
    assert subscription(http, sub_id)["planId"] == "pro"
    send(http, ada, "a6", 2, "2026-11-27")
    clock.set(NEXT_DAY + timedelta(days=1))
    runtime.scheduler.tick()
    assert [(e["planId"], Decimal(str(e["quantity"]))) for e in usage(http)["accepted"]] \
        == [("payg", 160), ("pro", 80)]
    assert [c["status"] for c in charges(http)] == ["accepted", "accepted"]

    # Renew of an active subscription: nothing changes. Unsubscribe: locked, owner mailed.
    ok(http.post(f"{CONTROL}/subscriptions/{sub_id}/renew"))
    ok(http.post(f"{CONTROL}/subscriptions/{sub_id}/unsubscribe"))
    [unsubscribe] = webhooks(http, "Unsubscribe")
    assert [a["status"] for a in unsubscribe["attempts"]] == [200]
    runtime.scheduler.tick()
    assert locked(http, ada, "a7", "2026-11-28")
    mails = inbox.bodies_to(ada["email"])
    assert sum("was suspended by the marketplace" in body for body in mails) == 1, mails
    ended = [body for body in mails if "has ended, so the workspace" in body]
    assert len(ended) == 1 and "azure" in ended[0] and sub_id in ended[0], mails
    # Its retry (the answer lost) and a replay: duplicates, answered 200, nothing more.
    again = http.post(url, content=unsubscribe["body"], headers={
        "content-type": "application/json",
        "authorization": unsubscribe["headers"]["Authorization"]})
    assert ok(again)["outcome"] == "duplicate"
    runtime.scheduler.tick()
    assert len(inbox.bodies_to(ada["email"])) == len(mails)
    assert all(w["delivered"] for w in ok(http.get(f"{CONTROL}/webhooks"))["webhooks"])


def test_a_cny_center_has_no_azure(tmp_path: Path, pg_databases: tuple[str, str] | None,
                                   clock: ManualClock) -> None:
    port = free_port()
    runtime = make_runtime(tmp_path, pg_databases, clock,
                           public_url=f"http://127.0.0.1:{port}")
    try:
        assert "azure" not in runtime.billing.marketplaces
        with serve(runtime.app, port=port) as base, httpx.Client(base_url=base) as http:
            landing = http.get("/billing/v1/marketplaces/azure/landing", params={"token": "x"})
            assert (landing.status_code, landing.json()["error"]["code"]) \
                == (404, "marketplace_not_configured")
            hook = http.post("/billing/v1/marketplaces/azure/webhook", content=b"{}")
            assert (hook.status_code, hook.json()["error"]["code"]) \
                == (404, "marketplace_not_configured")
    finally:
        runtime.console.engine.dispose()
        runtime.billing.engine.dispose()


def test_reconciliation_settles_what_azure_holds_another_quantity_of_or_never_got(
        live: tuple[Runtime, httpx.Client, Inbox], clock: ManualClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two charges sent by a reporter that died before Azure got them: for one, Azure
    holds another quantity of that hour (sent by someone else): a duplicate, its amount
    owed through the wallet, once; for the other, nothing, and the window closes: its
    amount is carried into the next cut, which Azure bills, once."""
    runtime, http, _ = live
    ada, bob = buyer(http, "ada"), buyer(http, "bob")
    send(http, ada, "a1", 1, "2026-11-26")  # 0.40
    send(http, bob, "b1", 2, "2026-11-26")  # 0.80
    azure = runtime.billing.marketplaces.get("azure")
    real_report = azure.report

    def die_before_azure(reports: Sequence[UsageReport]) -> list[ReportResult]:
        raise Killed

    monkeypatch.setattr(azure, "report", die_before_azure)
    clock.set(NEXT_DAY)
    runtime.scheduler.tick()
    first, second = sorted(charges(http), key=lambda c: c["quantity"])  # ada's, bob's
    assert (first["status"], second["status"]) == ("sent", "sent")
    monkeypatch.setattr(azure, "report", real_report)
    # Another sender of ours (a second deployment, an operator by hand) took ada's hour.
    [taken] = real_report([UsageReport(
        key="other", buyer=buyer_of_charge(runtime, first["cloud_account_id"]),
        dimension="usage_minor", period_start=datetime.fromisoformat(first["period_start"]),
        quantity=7)])
    assert taken.status.value == "accepted"

    reconciliation = runtime.billing.marketplace_reconciliation
    clock.advance(timedelta(minutes=6))
    figures = reconciliation.run()
    assert (figures.checked, figures.duplicate, figures.resent) == (2, 1, 1)
    first, second = sorted(charges(http), key=lambda c: c["quantity"])
    assert first["status"] == "duplicate" and "another quantity" in first["last_error"]
    assert overview_cash(http, ada)["arrears"] == "0.40"
    # bob's goes back to pending, but no reporter runs until the window has closed: it
    # is refused as an unknown outcome, then reconciliation finds Azure never got it and
    # carries its amount into bob's next cut, which Azure bills.
    clock.set(datetime.fromisoformat(second["deadline_at"]) + timedelta(hours=2))
    runtime.billing.marketplace_reporter.send()
    second = sorted(charges(http), key=lambda c: c["quantity"])[1]
    assert second["status"] == "refused" and "reconcile" in second["last_error"]
    figures = reconciliation.run()
    assert (figures.checked, figures.carried) == (1, 1)
    assert reconciliation.run().checked == 0
    runtime.scheduler.tick()
    again = [c for c in charges(http) if c["id"] not in (first["id"], second["id"])]
    assert [(c["status"], c["quantity"], c["cloud_account_id"]) for c in again] \
        == [("accepted", 80, second["cloud_account_id"])]
    assert (overview_cash(http, ada)["arrears"], overview_cash(http, bob)["arrears"]) \
        == ("0.40", "0.00")  # ada's once
    assert set(usage(http)["counts_per_key"].values()) == {1}


def buyer_of_charge(runtime: Runtime, cloud_account_id: str) -> Buyer:
    """The buyer as the reporter names it for the charges of this cloud account."""
    c = tables.cloud_accounts
    with runtime.billing.engine.connect() as conn:
        row = conn.execute(select(c.c.external_id, c.c.product_code, c.c.license_ref)
                           .where(c.c.id == cloud_account_id)).one()
    return Buyer("azure", row.external_id, row.product_code, license_ref=row.license_ref)


def test_azure_itself_needs_the_apps_secret_and_takes_microsofts_endpoints(
        tmp_path: Path, clock: ManualClock) -> None:
    settings = Settings(data_dir=tmp_path, admin_token="op", currency="USD",
                        azure_marketplace="azure")
    with pytest.raises(ValueError, match="ACCRUAL_AZURE_CLIENT_SECRET"):
        adapters(settings, clock)
    chosen = adapters(settings.model_copy(update={"azure_client_secret": "s3cret"}),
                           clock)
    [azure] = [m for m in chosen if isinstance(m, AzureMarketplace)]
    assert (azure.listing.api_url, azure.listing.login_url, azure.listing.client_secret) \
        == ("https://marketplaceapi.microsoft.com", "https://login.microsoftonline.com",
            "s3cret")
    azure.close()
    # In another currency the setting does nothing: no adapter.
    assert not [m for m in adapters(settings.model_copy(update={"currency": "CNY"}), clock)
                if m.vendor == "azure"]
