"""AWS Marketplace end to end, over real HTTP: the emulator shipped with Accrual plays
AWS (mounted under /sandbox/aws), the billing center speaks to it through boto3, and
the emulator posts the buyer's browser form and its signed SNS notifications back to
the billing center's own endpoints.

A buyer subscribes → the fulfillment post → registration with the activation → the
workspace settles through AWS → usage → day close → vouchers pay first → the rest is
reported to AWS and accepted exactly once, also when the reporter is killed between
sending and recording the answer and when AWS throttles, fails or leaves records
unprocessed. Then the buyer unsubscribes: the final report goes out within the hour,
the workspace is locked, forged and replayed notifications change nothing, and moving
to the billing center unlocks it.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from accrual.app import Runtime
from accrual.billing.domain.marketplace import ReportResult, UsageReport
from accrual.clock import ManualClock
from tests.conftest import SHANGHAI, START, make_runtime
from tests.e2e.marketplace_support import backlog, charges, ok, served
from tests.helpers import OPERATOR, bearer
from tests.sandbox_server import free_port

PASSWORD = "correct horse battery"
PRODUCT = "accrual-saas"
CONTROL = "/sandbox/aws/control"


@pytest.fixture
def live(tmp_path: Path, pg_databases: tuple[str, str] | None,
         clock: ManualClock) -> Iterator[tuple[Runtime, httpx.Client]]:
    """The whole app served on a real port it knows in advance (AWS and the emulator
    call it back there)."""
    port = free_port()
    runtime = make_runtime(tmp_path, pg_databases, clock, public_url=f"http://127.0.0.1:{port}")
    with served(runtime, port) as http:
        yield runtime, http



def subscribe_and_register(http: httpx.Client, name: str) -> dict[str, Any]:
    """A buyer subscribes on AWS, AWS posts their browser to our fulfillment URL, and they
    register on the website with the activation it led to."""
    bought = ok(http.post(f"{CONTROL}/products/{PRODUCT}/subscriptions",
                          json={"post_fulfillment": True}), 201)
    fulfilled = bought["fulfillment"]
    assert fulfilled["status"] == 303, fulfilled
    activation_id = fulfilled["location"].rsplit("/", 1)[1]
    activation = ok(http.get(f"/billing/v1/marketplaces/activations/{activation_id}"))
    assert (activation["vendor"], activation["buyer_account_id"], activation["state"]) \
        == ("aws", bought["customer_aws_account_id"], "open")
    registered = ok(http.post("/console/v1/registrations", json={
        "email": f"{name}@example.com", "password": PASSWORD, "username": name,
        "workspace_name": f"{name}'s team", "language": "en",
        "activation_id": activation_id}), 201)
    login = ok(http.post("/billing/v1/sessions", json={"username": name, "password": PASSWORD}))
    return {**registered, **bought, "billing": bearer(login["token"])}


def logs(workspace_id: str, record_id: str, millions: int, day: str) -> dict[str, object]:
    """Logs at 7 days' retention: 1.20 per million (CNY, cn sites), early that day."""
    return {"id": record_id, "workspace_id": workspace_id, "item": "logs", "retention_days": 7,
            "time": f"{day}T00:05:00+08:00", "quantity": str(millions * 1_000_000)}


def send(http: httpx.Client, buyer: dict[str, Any], record_id: str, millions: int,
         day: str) -> None:
    answer = ok(http.post("/console/v1/usage", headers=bearer(buyer["ingest_key"]), json={
        "records": [logs(buyer["workspace_id"], record_id, millions, day)]}))
    assert answer["accepted"] == 1, answer


def records(http: httpx.Client) -> list[dict[str, Any]]:
    return ok(http.get(f"{CONTROL}/records"))["records"]




def overview(http: httpx.Client, buyer: dict[str, Any]) -> dict[str, Any]:
    return ok(http.get(f"/billing/v1/accounts/{buyer['billing_account_id']}/overview",
                       headers=buyer["billing"]))


def test_a_buyer_from_subscription_to_a_charge_billed_once_through_boto3(
        live: tuple[Runtime, httpx.Client], clock: ManualClock) -> None:
    runtime, http = live
    clock.set(START)
    ada = subscribe_and_register(http, "ada")
    account = ada["billing_account_id"]
    [workspace] = ok(http.get(f"/billing/v1/accounts/{account}",
                              headers=ada["billing"]))["workspaces"]
    assert (workspace["workspace_id"], workspace["settlement_method"]) \
        == (ada["workspace_id"], "aws")
    # Vouchers pay first (reference-billing.md §4.1): 1.00 of a 2.40 day.
    ok(http.post(f"/billing/v1/admin/accounts/{account}/vouchers", headers=OPERATOR, json={
        "kind": "voucher_standard", "amount": "1.00", "reference": "welcome"}), 201)
    send(http, ada, "a1", 2, "2026-11-26")

    # After midnight the scheduler closes the day, settles it and reports the rest.
    clock.set(datetime(2026, 11, 27, 0, 31, tzinfo=SHANGHAI))
    runtime.scheduler.tick()
    assert runtime.scheduler.last_error is None
    assert (overview(http, ada)["vouchers"], overview(http, ada)["arrears"]) == ("0.00", "0.00")
    [charge] = charges(http)
    assert (charge["status"], charge["quantity"], charge["amount"], charge["attempts"]) \
        == ("accepted", 140, "1.40", 1)
    [record] = records(http)
    assert (record["customer_aws_account_id"], record["dimension"], Decimal(record["quantity"]),
            record["metering_record_id"]) \
        == (ada["customer_aws_account_id"], "usage_minor", 140, charge["record_id"])
    # The next ticks send nothing more.
    runtime.scheduler.tick()
    assert len(records(http)) == 1 and backlog(http)["pending"] == 0


class Killed(Exception):
    """The reporter's process dying after AWS took the call, before the answer is kept."""


def test_exactly_once_under_throttling_errors_unprocessed_records_and_a_killed_reporter(
        live: tuple[Runtime, httpx.Client], clock: ManualClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    runtime, http = live
    clock.set(START)
    buyers = [subscribe_and_register(http, name) for name in ("ada", "bob", "cyd")]
    for n, buyer in enumerate(buyers, start=1):
        send(http, buyer, f"r{n}", n, "2026-11-26")  # 1.20, 2.40, 3.60
    reporter = runtime.billing.marketplace_reporter
    clock.set(datetime(2026, 11, 27, 0, 31, tzinfo=SHANGHAI))

    def fault(kind: str, **extra: int) -> None:
        ok(http.post(f"{CONTROL}/faults", json={"operation": "BatchMeterUsage", "kind": kind,
                                                "calls": 1, **extra}))

    def due() -> None:
        """Move to when every charge backing off is due again."""
        waiting = [datetime.fromisoformat(c["next_attempt_at"]) for c in charges(http)
                   if c["status"] == "pending"]
        clock.set(max([clock.now(), *waiting]) + timedelta(seconds=1))

    fault("throttling")
    runtime.scheduler.tick()  # day close, settlement, cut: three charges, one call
    assert [c["status"] for c in charges(http)] == ["pending"] * 3 and records(http) == []
    fault("internal_error")
    due()
    reporter.run()
    assert [c["status"] for c in charges(http)] == ["pending"] * 3 and records(http) == []
    fault("unprocessed", records=1)
    due()
    reporter.run()
    assert sorted(c["status"] for c in charges(http)) == ["accepted", "accepted", "pending"]

    # Killed: AWS takes the last charge, the reporter dies before recording the answer.
    aws = runtime.billing.marketplaces.get("aws")
    real_report = aws.report

    def report_then_die(reports: Sequence[UsageReport]) -> list[ReportResult]:
        real_report(reports)
        raise Killed

    monkeypatch.setattr(aws, "report", report_then_die)
    due()
    reporter.run()
    assert sorted(c["status"] for c in charges(http)) == ["accepted", "accepted", "sent"]
    assert len(records(http)) == 3
    # Restarted: after the grace the identical report goes again; AWS answers the same id.
    monkeypatch.setattr(aws, "report", real_report)
    clock.advance(timedelta(minutes=6))
    reporter.run()

    final = charges(http)
    assert [c["status"] for c in final] == ["accepted"] * 3
    taken = records(http)
    assert sorted(int(Decimal(r["quantity"])) for r in taken) == sorted(c["quantity"] for c in final) \
        == [120, 240, 360]
    assert {r["metering_record_id"] for r in taken} == {c["record_id"] for c in final}
    # Each (buyer, dimension, hour) billed once: duplicates created = 0.
    counts = ok(http.get(f"{CONTROL}/records"))["counts_per_hour"]
    assert set(counts.values()) == {1}
    figures = backlog(http)
    assert (figures["accepted"], figures["pending"], figures["sent_unanswered"]) == (3, 0, 0)
    # Sends: 3 throttled + 3 failed + 3 (1 unprocessed) + 1 killed + 1 resent.
    assert (figures["sends"], figures["retries"]) == (11, 8)


def notifications(http: httpx.Client, action: str) -> list[dict[str, Any]]:
    sent = ok(http.get(f"{CONTROL}/notifications"))["notifications"]
    return [n for n in sent if json.loads(n["envelope"]["Message"])["action"] == action]


def test_unsubscribing_reports_within_the_hour_then_locks_and_the_billing_center_unlocks(
        live: tuple[Runtime, httpx.Client], clock: ManualClock) -> None:
    runtime, http = live
    clock.set(START)
    ada = subscribe_and_register(http, "ada")
    send(http, ada, "a1", 1, "2026-11-26")
    # Ten past midnight the buyer cancels: the final-usage hour starts.
    clock.set(datetime(2026, 11, 27, 0, 10, tzinfo=SHANGHAI))
    ok(http.post(f"{CONTROL}/subscriptions/{ada['subscription_id']}/unsubscribe"))
    [pending] = notifications(http, "unsubscribe-pending")
    assert [a["status"] for a in pending["attempts"]] == [200]
    # The day closes inside that hour: its charge is the final report, and AWS takes it.
    clock.set(datetime(2026, 11, 27, 0, 31, tzinfo=SHANGHAI))
    runtime.scheduler.tick()
    [charge] = charges(http)
    assert (charge["status"], charge["quantity"]) == ("accepted", 120)

    # The hour ends: unsubscribe-success; the workspace loses the link and is locked.
    clock.set(datetime(2026, 11, 27, 1, 11, tzinfo=SHANGHAI))
    ok(http.post(f"{CONTROL}/tick"))
    [success] = notifications(http, "unsubscribe-success")
    assert [a["status"] for a in success["attempts"]] == [200]
    runtime.scheduler.tick()  # the lock reaches the console
    refused = http.post("/console/v1/usage", headers=bearer(ada["ingest_key"]), json={
        "records": [logs(ada["workspace_id"], "a2", 1, "2026-11-27")]})
    assert "workspace_locked" in refused.text, refused.text

    # Forged (the message changed, the signature kept) and replayed: nothing changes.
    url = "/billing/v1/marketplaces/aws/notifications"
    envelope = dict(success["envelope"])
    message = json.loads(envelope["Message"])
    forged = {**envelope, "Message": json.dumps({**message, "action": "subscribe-success"})}
    answer = http.post(url, content=json.dumps(forged), headers=success["headers"])
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"]["code"] == "bad_signature"
    replayed = http.post(url, content=success["body"], headers=success["headers"])
    assert replayed.status_code == 409, replayed.text
    assert replayed.json()["error"]["code"] == "notification_replayed"
    assert "workspace_locked" in http.post("/console/v1/usage", headers=bearer(
        ada["ingest_key"]), json={"records": [logs(ada["workspace_id"], "a3", 1,
                                                  "2026-11-27")]}).text

    # Unlock by settling through the billing center instead: at once.
    moved = ok(http.put(
        f"/billing/v1/accounts/{ada['billing_account_id']}/workspaces/{ada['workspace_id']}"
        "/settlement-method", headers=ada["billing"],
        json={"settlement_method": "billing_center"}))
    assert moved["unlocked"] is True
    runtime.scheduler.tick()
    send(http, ada, "a4", 1, "2026-11-27")


def test_a_person_subscribes_on_the_sandbox_listing_page_and_lands_on_the_activation(
        live: tuple[Runtime, httpx.Client], clock: ManualClock) -> None:
    _, http = live
    clock.set(START)
    listing = http.get(f"/sandbox/aws/marketplace/{PRODUCT}")
    assert listing.status_code == 200 and "Subscribe" in listing.text
    setup = http.post(f"/sandbox/aws/marketplace/{PRODUCT}/subscribe")
    assert setup.status_code == 200, setup.text
    # The page's form, as the browser submits it.
    action = re.search(r'<form id="setup" method="post" action="([^"]+)"', setup.text)
    token = re.search(r'name="x-amzn-marketplace-token" value="([^"]+)"', setup.text)
    assert action and token
    assert action[1] == str(http.base_url.join("/billing/v1/marketplaces/aws/fulfillment"))
    landed = http.post(action[1], data={"x-amzn-marketplace-token": html.unescape(token[1])},
                       follow_redirects=True)
    assert landed.status_code == 200, landed.text
    assert (landed.json()["vendor"], landed.json()["state"]) == ("aws", "open")
    assert http.get("/sandbox/aws/marketplace/nope").status_code == 404
