"""Alibaba Cloud Marketplace end to end, over real HTTP: the emulator shipped with Accrual
plays Alibaba (mounted under /sandbox/aliyun for a CNY center, /sandbox/aliyun-intl for
a USD one), calls the billing center's SPI endpoint with signed GETs, and takes the
usage the billing center pushes through Alibaba's own SDKs.

A buyer pays in the marketplace → createInstance to our SPI endpoint → an activation
(appInfo.frontEndUrl) → registration with it → the workspace settles through Alibaba
Cloud → usage → day close → the rest is pushed. Alibaba keeps every push, so each
charge must reach it exactly once: also when the reporter is killed between the push
and recording it (then an operator resolves it), when Alibaba throttles or answers
5xx, and when the adapter's 60 s per-instance limit holds a push back. Forged, stale
and replayed SPI calls change nothing; releaseInstance moves the workspace to the
billing center and mails its owner (a real local SMTP server).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
from sqlalchemy import select

from accrual.app import Runtime
from accrual.billing.adapters import tables as t
from accrual.billing.domain.marketplace import ReportResult, UsageReport
from accrual.billing.marketplaces.aliyun import AliyunMarketplace
from accrual.clock import ManualClock
from tests.conftest import BACKEND, SHANGHAI, START, make_runtime
from tests.e2e.marketplace_support import backlog, charges, ok, served
from tests.helpers import OPERATOR, bearer
from tests.reliability.support import record
from tests.sandbox_server import free_port
from tests.smtp import Inbox, smtp_server

__all__ = ["smtp_server"]

PASSWORD = "correct horse battery"
PRODUCT = "cmapi00012345"
SPI = "/billing/v1/marketplaces/aliyun/spi"
CENTERS: dict[str, dict[str, Any]] = {
    "CNY": {"site": "cn1", "site_group": "cn", "currency": "CNY"},
    "USD": {"site": "us1", "site_group": "intl", "currency": "USD"},
}
CONTROL = {"CNY": "/sandbox/aliyun/control", "USD": "/sandbox/aliyun-intl/control"}


class Killed(BaseException):
    """The reporter's process dying after Alibaba took the push, before it is recorded
    (a BaseException: none of the reporter's handlers runs, as with a real kill)."""


@contextlib.contextmanager
def center(tmp_path: Path, pg: tuple[str, str] | None, clock: ManualClock, smtp_port: int,
           currency: str, billing: str = "hourly") -> Iterator[tuple[Runtime, httpx.Client]]:
    port = free_port()
    runtime = make_runtime(tmp_path, pg, clock, public_url=f"http://127.0.0.1:{port}",
                           smtp_host="127.0.0.1", smtp_port=smtp_port, aliyun_billing=billing,
                           **CENTERS[currency])
    with served(runtime, port) as http:
        yield runtime, http


@pytest.fixture
def live(tmp_path: Path, pg_databases: tuple[str, str] | None, clock: ManualClock,
         smtp_server: tuple[Inbox, int]) -> Iterator[tuple[Runtime, httpx.Client, Inbox]]:
    """A CNY center (Alibaba's China site) served on a real port it knows in advance."""
    inbox, smtp_port = smtp_server
    with center(tmp_path, pg_databases, clock, smtp_port, "CNY") as (runtime, http):
        yield runtime, http, inbox



def buy_and_register(http: httpx.Client, name: str, control: str = CONTROL["CNY"]
                     ) -> dict[str, Any]:
    """A buyer pays in the marketplace, which calls our SPI endpoint (createInstance, then
    the same call again to check the answer); they open appInfo.frontEndUrl and register
    on the website with the activation it shows."""
    bought = ok(http.post(f"{control}/products/{PRODUCT}/instances", json={}), 201)
    assert bought["problems"] == [], bought["problems"]
    assert (bought["status"], bought["instance_id"]) == ("OPENED", bought["order_biz_id"])
    create, confirm = bought["spi_calls"]
    assert (create["action"], confirm["purpose"], confirm["outcome"]) \
        == ("createInstance", "confirm", "ok")
    app_info = bought["app_info"]
    assert app_info["authUrl"] == str(http.base_url.join(SPI))
    front = urlsplit(app_info["frontEndUrl"])
    activation = ok(http.get(front.path))
    assert (activation["vendor"], activation["buyer_account_id"], activation["state"]) \
        == ("aliyun", bought["ali_uid"], "open")
    registered = ok(http.post("/console/v1/registrations", json={
        "email": f"{name}@example.com", "password": PASSWORD, "username": name,
        "workspace_name": f"{name}'s team", "language": "en",
        "activation_id": activation["id"]}), 201)
    login = ok(http.post("/billing/v1/sessions", json={"username": name, "password": PASSWORD}))
    return {**registered, **bought, "billing": bearer(login["token"])}


def logs(workspace_id: str, record_id: str, millions: int, day: str,
         offset: str = "+08:00") -> dict[str, object]:
    return {"id": record_id, "workspace_id": workspace_id, "item": "logs", "retention_days": 7,
            "time": f"{day}T00:05:00{offset}", "quantity": str(millions * 1_000_000)}


def send(http: httpx.Client, buyer: dict[str, Any], record_id: str, millions: int,
         day: str, offset: str = "+08:00") -> httpx.Response:
    return http.post("/console/v1/usage", headers=bearer(buyer["ingest_key"]), json={
        "records": [logs(buyer["workspace_id"], record_id, millions, day, offset)]})




def usage(http: httpx.Client, control: str = CONTROL["CNY"]) -> dict[str, Any]:
    """What Alibaba holds: accepted records, and pushes per (instance, Key, window)."""
    return ok(http.get(f"{control}/usage"))


def billed(http: httpx.Client, instance: str, control: str = CONTROL["CNY"]) -> bool:
    """What an operator reads on Alibaba's bill: whether the instance has a record."""
    return any(r["instance_id"] == instance for r in usage(http, control)["records"])


def resolve(http: httpx.Client, charge_id: int, was_billed: bool) -> dict[str, Any]:
    return ok(http.post(f"/billing/v1/admin/marketplaces/charges/{charge_id}/resolution",
                        headers=OPERATOR, json={"billed": was_billed}))


def charge_of(http: httpx.Client, runtime: Runtime, buyer: dict[str, Any]) -> dict[str, Any]:
    [charge] = [c for c in charges(http) if cloud_of(runtime, buyer) == c["cloud_account_id"]]
    return charge


def cloud_of(runtime: Runtime, buyer: dict[str, Any]) -> str:
    c = t.cloud_accounts
    with runtime.billing.engine.connect() as conn:
        return str(conn.execute(select(c.c.id).where(
            c.c.license_ref == buyer["instance_id"])).scalar_one())


@pytest.mark.parametrize(("currency", "billing"),
                         [("CNY", "hourly"), ("USD", "hourly"), ("CNY", "daily")])
def test_a_buyer_from_purchase_to_a_charge_pushed_once_through_the_sdk(
        tmp_path: Path, pg_databases: tuple[str, str] | None, clock: ManualClock,
        smtp_server: tuple[Inbox, int], currency: str, billing: str) -> None:
    """China (CNY center, Market 2015-11-01) and International (USD center,
    MarketplaceIntl 2022-12-30): the same path, each on its own site; a daily listing
    pushes the Beijing day once it is over."""
    control = CONTROL[currency]
    offset = "+08:00" if currency == "CNY" else "+00:00"
    period = timedelta(hours=1) if billing == "hourly" else timedelta(days=1)
    with center(tmp_path, pg_databases, clock, smtp_server[1], currency,
                billing) as (runtime, http):
        clock.set(START)
        adapter = runtime.billing.marketplaces.get("aliyun")
        assert isinstance(adapter, AliyunMarketplace)
        assert (adapter.listing.profile, adapter.currency) == (
            ("china", "CNY") if currency == "CNY" else ("international", "USD"))
        # The listing exists on this center's site only.
        assert [p["product_code"] for p in ok(http.get(f"{control}/products"))["products"]] \
            == [PRODUCT]
        other = CONTROL["USD" if currency == "CNY" else "CNY"]
        assert ok(http.get(f"{other}/products"))["products"] == []
        ada = buy_and_register(http, "ada", control)
        [workspace] = ok(http.get(f"/billing/v1/accounts/{ada['billing_account_id']}",
                                  headers=ada["billing"]))["workspaces"]
        assert workspace["settlement_method"] == "aliyun"
        assert ok(send(http, ada, "a1", 2, "2026-11-26", offset))["accepted"] == 1
        # Past midnight the day closes and settles; the charge's hour is still open.
        midnight = datetime(2026, 11, 27, tzinfo=SHANGHAI if currency == "CNY" else UTC)
        clock.set(midnight + timedelta(minutes=31))
        runtime.scheduler.tick()
        assert runtime.scheduler.last_error is None
        [charge] = charges(http)
        assert (charge["status"], charge["vendor"]) == ("pending", "aliyun")
        assert usage(http, control)["records"] == []
        # The period over, the reporter pushes it.
        start = datetime.fromisoformat(charge["period_start"])
        if billing == "daily":  # a Beijing day, the one the day close ran in
            assert start == datetime(2026, 11, 27, tzinfo=SHANGHAI)
        clock.set(start + period + timedelta(seconds=30))
        runtime.scheduler.tick()
        [charge] = charges(http)
        assert (charge["status"], charge["currency"]) == ("accepted", currency)
        [record] = usage(http, control)["records"]
        assert record["instance_id"] == ada["instance_id"]
        assert [Decimal(e["value"]) for e in record["entities"]] == [charge["quantity"]]
        if currency == "CNY":
            assert (charge["quantity"], charge["amount"]) == (240, "2.40")
        runtime.scheduler.tick()
        assert set(usage(http, control)["pushes_per_window"].values()) == {1}
        figures = backlog(http)
        assert (figures["accepted"], figures["sends"], figures["unknown"]) == (1, 2, 0)


def test_exactly_once_under_throttling_5xx_rate_limits_and_a_killed_reporter(
        live: tuple[Runtime, httpx.Client, Inbox], clock: ManualClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    runtime, http, _ = live
    clock.set(START)
    buyers = [buy_and_register(http, name) for name in ("ada", "bob", "cyd")]
    for n, buyer in enumerate(buyers, start=1):
        assert ok(send(http, buyer, f"r{n}", n, "2026-11-26"))["accepted"] == 1
    ada = buyers[0]
    reporter = runtime.billing.marketplace_reporter
    adapter = runtime.billing.marketplaces.get("aliyun")
    assert isinstance(adapter, AliyunMarketplace)

    def fault(kind: str) -> None:
        ok(http.post(f"{CONTROL['CNY']}/faults", json={"kind": kind, "calls": 1}))

    def due() -> None:
        waiting = [datetime.fromisoformat(c["next_attempt_at"]) for c in charges(http)
                   if c["status"] == "pending"]
        clock.set(max([clock.now(), *waiting]) + timedelta(seconds=1))

    clock.set(datetime(2026, 11, 27, 0, 31, tzinfo=SHANGHAI))
    runtime.scheduler.tick()  # day close, settlement, cut: three charges of an open hour
    assert [c["status"] for c in charges(http)] == ["pending"] * 3
    clock.set(datetime.fromisoformat(charges(http)[0]["period_start"])
              + timedelta(hours=1, seconds=30))

    # Throttled by the server: it kept nothing, so the charges go again, a minute on.
    fault("throttling")
    thrown_at = clock.now()
    reporter.run()
    assert [c["status"] for c in charges(http)] == ["pending"] * 3
    assert all(datetime.fromisoformat(c["next_attempt_at"]) >= thrown_at + timedelta(seconds=60)
               for c in charges(http))
    assert usage(http)["records"] == []

    # A 5xx: Alibaba may have kept the push, so nothing is pushed again by itself.
    due()
    fault("internal_error")
    outcome = reporter.run()
    assert (outcome.sent, outcome.unknown) == (3, 3)
    assert [c["status"] for c in charges(http)] == ["unknown"] * 3
    assert backlog(http)["unknown"] == 3
    health = ok(http.get("/healthz"))
    assert health["status"] == "degraded"
    clock.advance(timedelta(minutes=10))
    assert reporter.run().sent == 0
    # The operator reads Alibaba's bill: none of them is there; they go again.
    for charge in charges(http):
        assert not any(billed(http, b["instance_id"]) for b in buyers)
        assert resolve(http, charge["id"], False)["status"] == "pending"

    # Ada's instance was pushed less than a minute ago (by another reporter process, say):
    # the adapter holds her back without a call, for a minute at least.
    adapter._pushed_at[ada["instance_id"]] = clock.now()
    held_at = clock.now()
    outcome = reporter.run()
    assert (outcome.accepted, outcome.retried) == (2, 1)
    assert charge_of(http, runtime, ada)["status"] == "pending"
    assert datetime.fromisoformat(charge_of(http, runtime, ada)["next_attempt_at"]) \
        >= held_at + timedelta(seconds=60)
    clock.advance(timedelta(seconds=30))
    assert reporter.run().sent == 0

    # Killed: Alibaba takes ada's push, the reporter dies before recording it.
    real_report = adapter.report

    def report_then_die(reports: Sequence[UsageReport]) -> list[ReportResult]:
        real_report(reports)
        raise Killed

    monkeypatch.setattr(adapter, "report", report_then_die)
    due()
    with pytest.raises(Killed):
        reporter.run()
    assert charge_of(http, runtime, ada)["status"] == "sent"
    monkeypatch.setattr(adapter, "report", real_report)
    # Restarted, past the grace: held, not pushed again; the operator finds it billed.
    clock.advance(timedelta(minutes=6))
    assert reporter.run().unknown == 1
    assert charge_of(http, runtime, ada)["status"] == "unknown"
    assert billed(http, ada["instance_id"])
    assert resolve(http, charge_of(http, runtime, ada)["id"], True)["status"] == "accepted"
    reporter.run()

    final = charges(http)
    assert [c["status"] for c in final] == ["accepted"] * 3
    held = usage(http)
    assert sorted(int(Decimal(e["value"])) for r in held["records"] for e in r["entities"]) \
        == sorted(c["quantity"] for c in final) == [120, 240, 360]
    # Each (instance, Key, hour) pushed once: duplicates created = 0.
    assert set(held["pushes_per_window"].values()) == {1}
    assert {r["instance_id"] for r in held["records"]} == {b["instance_id"] for b in buyers}
    pushes = ok(http.get(f"{CONTROL['CNY']}/pushes"))["pushes"]
    figures = backlog(http)
    assert (figures["accepted"], figures["pending"], figures["unknown"]) == (3, 0, 0)
    # Reports handed to the adapter: 3 while their hour was open (no call) + 3 throttled
    # + 3 answered 5xx + 3 (bob, cyd pushed; ada held back by the rate limit, no call)
    # + ada's killed push; never one after an outcome was unknown.
    assert (figures["sends"], figures["retries"]) == (13, 10)
    # Calls that reached Alibaba: throttled, 5xx, bob+cyd, ada (killed) = 4.
    assert len(pushes) == 4
    assert ok(http.get("/healthz"))["status"] == "ok"
    record("alibaba cloud marketplace e2e", BACKEND, {
        "charges": len(final), "sends": figures["sends"], "retries": figures["retries"],
        "calls_reaching_alibaba": len(pushes), "unknown_resolved": 4,
        "duplicates_created": sum(n - 1 for n in held["pushes_per_window"].values())})


def newest_binding(runtime: Runtime, workspace_id: str) -> tuple[str, str]:
    b = t.bindings
    with runtime.billing.engine.connect() as conn:
        row = conn.execute(select(b.c.settlement_method, b.c.effective_from)
                           .where(b.c.workspace_id == workspace_id)
                           .order_by(b.c.effective_from.desc()).limit(1)).one()
    return row.settlement_method, row.effective_from.isoformat()


def spi_calls(http: httpx.Client, action: str) -> list[dict[str, Any]]:
    return [c for c in ok(http.get(f"{CONTROL['CNY']}/spi-calls"))["spi_calls"]
            if c["action"] == action]


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def test_forged_stale_and_replayed_calls_change_nothing_and_release_moves_to_the_wallet(
        live: tuple[Runtime, httpx.Client, Inbox], clock: ManualClock) -> None:
    runtime, http, inbox = live
    clock.set(START)
    ada = buy_and_register(http, "ada")
    order = ada["order_biz_id"]
    instances = f"{CONTROL['CNY']}/instances/{order}"

    # The emulator's probes: a verify signed with another key, and one an hour old.
    for kind, code in (("forged_token", "bad_token"), ("stale_verify", "stale")):
        probe = ok(http.post(f"{instances}/probe", json={"kind": kind}))
        assert (probe["outcome"], probe["problems"]) == ("ok", []), probe
        answer = http.get(path_of(probe["url"]))
        assert answer.status_code == 403 and answer.json()["error"]["code"] == code
        assert answer.json()["success"] is False

    # A genuine login: to the activation page (303); the same URL again is refused.
    login = ok(http.post(f"{instances}/login"))
    assert login["outcome"] == "ok" and login["answer"]["status"] == 303
    assert "/billing/v1/marketplaces/activations/act_" in login["answer"]["location"]
    replayed = http.get(path_of(login["url"]))
    assert replayed.status_code == 409 and replayed.json()["error"]["code"] == "spi_replayed"

    # A release forged from the purchase's signed URL (action changed, token kept), and
    # one with a made-up token: refused, nothing changes.
    [create] = [c for c in spi_calls(http, "createInstance") if c["purpose"] == "lifecycle"]
    params = dict(parse_qsl(urlsplit(create["url"]).query))
    forged = {**params, "action": "releaseInstance", "instanceId": ada["instance_id"],
              "isRefund": "false"}
    for query in (forged, {"action": "releaseInstance", "instanceId": ada["instance_id"],
                           "isRefund": "false", "token": "0" * 32}):
        answer = http.get(f"{SPI}?{urlencode(query)}")
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"]["code"] == "bad_token"
    # The purchase replayed: the same instance, no second cloud account.
    again = ok(http.get(path_of(create["url"])))
    assert again["instanceId"] == ada["instance_id"]
    assert cloud_of(runtime, ada).startswith("ca_")  # still exactly one
    [workspace] = ok(http.get(f"/billing/v1/accounts/{ada['billing_account_id']}",
                              headers=ada["billing"]))["workspaces"]
    assert workspace["settlement_method"] == "aliyun"

    # Expired: suspended, the workspace locked; renewed: back in force, unlocked.
    ok(http.post(f"{instances}/expire"))
    runtime.scheduler.tick()
    assert "workspace_locked" in send(http, ada, "a1", 1, "2026-11-26").text
    renewed = ok(http.post(f"{instances}/renew", json={"term_days": 30}))
    assert renewed["problems"] == []
    runtime.scheduler.tick()
    assert ok(send(http, ada, "a2", 1, "2026-11-26"))["accepted"] == 1

    # Released: the workspace settles by the billing center from tomorrow; ada is mailed.
    released = ok(http.post(f"{instances}/release", json={"refund": False}))
    assert released["problems"] == [] and released["status"] == "CLOSED"
    runtime.scheduler.tick()  # the mail leaves
    subjects = [str(m["Subject"]) for m in inbox.messages if m["To"] == "ada@example.com"]
    assert [x for x in subjects if "now settles by the billing center" in x] == [
        "Workspace ada's team now settles by the billing center account"], subjects
    assert any("suspended" in x for x in subjects)  # the expiry's lock was mailed too
    mails = inbox.bodies_to("ada@example.com")
    assert "From 2026-11-27" in mails[-1]
    # Not locked: today it still settles as before, tomorrow by the billing center.
    assert ok(send(http, ada, "a3", 1, "2026-11-26"))["accepted"] == 1
    assert newest_binding(runtime, ada["workspace_id"]) == ("billing_center", "2026-11-27")
    # Alibaba retrying the release: answered success, nothing more happens.
    [release] = spi_calls(http, "releaseInstance")
    assert ok(http.get(path_of(release["url"]))) == {"success": True}
    runtime.scheduler.tick()
    assert len([m for m in inbox.messages if m["To"] == "ada@example.com"]) == len(subjects)
    # The purchase replayed after the release cannot bring the instance back.
    revived = http.get(path_of(create["url"]))
    assert revived.status_code == 409, revived.text
    assert revived.json()["error"]["code"] == "instance_released"
    # The emulator saw no problem in any of our answers.
    assert all(c["problems"] == [] for c in spi_calls(http, "releaseInstance")
               + spi_calls(http, "createInstance"))
