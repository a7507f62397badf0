"""The charge reporter for a vendor that keeps every push (``resend_safe=False``, Alibaba
Cloud): a report that may have arrived is never sent again by itself.

``KeepingVendor`` is a test double of the vendor's side: like Alibaba it keeps every
push it receives (no deduplication), and fails on cue either *before* keeping the
call (the request never left, throttled, bad keys) or *after* (a timeout, a reset,
a 5xx while it kept the records, the reporter dying), or answers a 5xx having kept
nothing, so that only the operator's resolution tells.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from accrual.app import Runtime, create_app
from accrual.billing.domain.marketplace import (
    ReportLimits,
    ReportResult,
    ReportStatus,
    Transient,
    UsageReport,
)
from accrual.billing.services.marketplace_reporter import (
    RATE_LIMIT_PACE,
    MarketplaceReporter,
    RunOutcome,
)
from accrual.clock import ManualClock
from tests.conftest import BACKEND
from tests.helpers import bearer
from tests.integration.test_marketplace_reporter import (
    UNIT,
    ReportsOnly,
    carry,
    charges,
    cloud_tenant,
)
from tests.integration.test_settlement_batches import cheap_passwords, detail
from tests.reliability.support import record

__all__ = ["cheap_passwords"]

# Before the call is kept: a resend cannot bill twice.
BEFORE = {"not_sent": Transient("not_sent", "Failed to establish a new connection"),
          "throttled": Transient("throttled", "Throttling.User", throttled=True),
          "credentials": Transient("credentials_rejected", "SignatureDoesNotMatch")}
# After it is kept (or unknowable): a resend could bill twice.
AFTER = {"timeout": Transient("network", "Read timed out"),
         "reset": Transient("network", "Connection reset by peer"),
         "5xx": Transient("vendor_error", "InternalError")}


class Killed(BaseException):
    """The reporter's process dying after the vendor kept the call: nothing of ours runs
    after it (no handler catches a BaseException), as with a real kill."""


@dataclass
class KeepingVendor(ReportsOnly):
    vendor: str = "aliyun"
    dimension: str = "usage_minor"
    unit_minor: int = UNIT
    limits: ReportLimits = field(default_factory=lambda: ReportLimits(
        batch_size=100, max_request_bytes=64 * 1024, period=timedelta(hours=1),
        lateness=timedelta(hours=1, minutes=59), min_quantity=0, max_quantity=10**15,
        resend_safe=False))
    # The next calls: "ok", a key of BEFORE or AFTER, "5xx-lost" (a 5xx, nothing kept),
    # "crash" (kept, then the reporter dies), "rate_limited" (the adapter's own limit).
    script: list[str] = field(default_factory=list)
    calls: list[list[UsageReport]] = field(default_factory=list)
    pushes: Counter[tuple[str, datetime]] = field(default_factory=Counter)

    def report(self, reports: Sequence[UsageReport]) -> list[ReportResult]:
        step = self.script.pop(0) if self.script else "ok"
        if step == "rate_limited":  # answered by the adapter, no call made
            return [ReportResult(r.key, ReportStatus.UNPROCESSED, reason="rate_limited")
                    for r in reports]
        self.calls.append(list(reports))
        if step in BEFORE:
            raise BEFORE[step]
        if step == "5xx-lost":
            raise AFTER["5xx"]
        for r in reports:  # Alibaba keeps every push it receives
            self.pushes[(r.buyer.account_id, r.period_start)] += 1
        if step in AFTER:
            raise AFTER[step]
        if step == "crash":
            raise Killed("the reporter died before recording the answer")
        return [ReportResult(r.key, ReportStatus.ACCEPTED, f"req#{n}")
                for n, r in enumerate(reports, start=1)]

    def duplicates(self) -> int:
        return sum(n - 1 for n in self.pushes.values() if n > 1)


FIGURES: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def figures() -> Iterator[None]:
    FIGURES.clear()
    yield
    if FIGURES:
        record("marketplace reporter (keeps every push)", f"keeping-vendor-{BACKEND}",
               dict(sorted(FIGURES.items())))


@pytest.fixture
def aliyun(runtime: Runtime) -> KeepingVendor:
    fake = KeepingVendor()
    runtime.billing.marketplaces.by_vendor["aliyun"] = fake
    return fake


@pytest.fixture
def reporter(runtime: Runtime, aliyun: KeepingVendor) -> Iterator[MarketplaceReporter]:
    found = runtime.billing.marketplace_reporter
    found.random = lambda: 1.0
    held = [0]
    run = found.run

    def counted() -> RunOutcome:
        outcome = run()
        held[0] += outcome.unknown
        return outcome

    found.run = counted  # type: ignore[method-assign]
    yield found
    backlog = found.backlog()
    FIGURES.update({"charges": len(charges(runtime)), "sends": backlog.sends,
                    "retries": backlog.retries, "accepted": backlog.accepted,
                    "unknown_held": held[0],
                    "vendor_pushes": sum(aliyun.pushes.values()),
                    "duplicates_created": aliyun.duplicates()})
    assert aliyun.duplicates() == 0  # every window pushed at most once


@pytest.fixture
def operator(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime)) as client:
        client.headers.update(bearer(runtime.admin_token))
        yield client


def one_charge(runtime: Runtime) -> Any:
    [charge] = charges(runtime)
    return charge


def resolve(client: TestClient, charge_id: int, billed: bool, status: int = 200) -> Any:
    answer = client.post(f"/billing/v1/admin/marketplaces/charges/{charge_id}/resolution",
                         json={"billed": billed})
    assert answer.status_code == status, answer.text
    return answer.json()


def buyer(runtime: Runtime, clock: ManualClock, name: str = "ada", amount: str = "3.00") -> str:
    ws, _, cloud_id = cloud_tenant(runtime, clock, name, vendor="aliyun",
                                   external_id=f"uid-{name}")
    runtime.billing.inbox.deliver([detail(ws, amount)])
    return cloud_id


def test_killed_between_push_and_mark_is_held_never_resent_then_resolved_billed(
        runtime: Runtime, clock: ManualClock, aliyun: KeepingVendor,
        reporter: MarketplaceReporter, operator: TestClient, cheap_passwords: None) -> None:
    buyer(runtime, clock)
    aliyun.script = ["crash"]
    with pytest.raises(Killed):
        reporter.run()
    assert one_charge(runtime).status == "sent"
    assert reporter.run().sent == 0  # restarted within the grace: the answer may come
    clock.advance(timedelta(minutes=6))  # past the grace: AWS would get it again
    outcome = reporter.run()
    assert (outcome.sent, outcome.unknown) == (0, 1)
    charge = one_charge(runtime)
    assert (charge.status, charge.attempts) == ("unknown", 1)
    assert charge.alerted_at == clock.now()
    assert "outcome unknown" in charge.last_error
    # Visible: backlog, the charges list, the job (so /healthz is degraded).
    assert operator.get("/billing/v1/admin/marketplaces/reporter").json()["unknown"] == 1
    listed = operator.get("/billing/v1/admin/marketplaces/charges",
                          params={"status": "unknown"}).json()
    assert [c["id"] for c in listed] == [charge.id]
    assert reporter.job.failure(f"charge/{charge.id}").code == "marketplace_outcome_unknown"
    health = operator.get("/healthz").json()
    assert health["status"] == "degraded"
    assert any(d["job"] == "marketplace reporter" for d in health["degraded"])
    # Many runs later, still never pushed again.
    for _ in range(3):
        clock.advance(timedelta(minutes=10))
        assert reporter.run().sent == 0
    assert sum(aliyun.pushes.values()) == 1
    # The operator finds it on Alibaba's bill.
    resolved = resolve(operator, charge.id, True)
    assert (resolved["status"], resolved["attempts"]) == ("accepted", 1)
    assert reporter.job.failure(f"charge/{charge.id}") is None
    reporter.run()
    assert operator.get("/healthz").json()["status"] == "ok"
    assert sum(aliyun.pushes.values()) == 1
    # Only an unknown charge is resolved; an unknown id is 404.
    assert resolve(operator, charge.id, False, 409)["error"]["code"] == "charge_not_unknown"
    assert resolve(operator, 999999, True, 404)["error"]["code"] == "charge_not_found"
    bad = operator.post(f"/billing/v1/admin/marketplaces/charges/{charge.id}/resolution",
                        json={"billed": "yes"})
    assert bad.status_code == 422, bad.text
    anonymous = TestClient(create_app(runtime)).post(
        f"/billing/v1/admin/marketplaces/charges/{charge.id}/resolution", json={"billed": True})
    assert anonymous.status_code == 401


@pytest.mark.parametrize("failure", sorted(AFTER))
def test_a_failure_that_does_not_prove_non_receipt_is_held(
        runtime: Runtime, clock: ManualClock, aliyun: KeepingVendor,
        reporter: MarketplaceReporter, operator: TestClient, cheap_passwords: None,
        failure: str) -> None:
    buyer(runtime, clock)
    aliyun.script = [failure]
    outcome = reporter.run()
    assert (outcome.sent, outcome.unknown, outcome.retried) == (1, 1, 0)
    charge = one_charge(runtime)
    assert charge.status == "unknown"
    clock.advance(timedelta(minutes=30))
    assert reporter.run().sent == 0
    # Alibaba kept it (its bill shows it): accepted, pushed once.
    assert resolve(operator, charge.id, True)["status"] == "accepted"
    assert aliyun.pushes == Counter({("uid-ada", charge.period_start): 1})


def test_a_5xx_that_kept_nothing_is_resolved_not_billed_and_sent_once_more(
        runtime: Runtime, clock: ManualClock, aliyun: KeepingVendor,
        reporter: MarketplaceReporter, operator: TestClient, cheap_passwords: None) -> None:
    buyer(runtime, clock)
    aliyun.script = ["5xx-lost"]
    reporter.run()
    charge = one_charge(runtime)
    assert charge.status == "unknown" and not aliyun.pushes
    resolved = resolve(operator, charge.id, False)
    assert resolved["status"] == "pending"
    assert reporter.run().accepted == 1
    charge = one_charge(runtime)
    assert (charge.status, charge.attempts) == ("accepted", 2)
    assert sum(aliyun.pushes.values()) == 1


def test_not_billed_after_the_window_is_carried_into_the_next_cut(
        runtime: Runtime, clock: ManualClock, aliyun: KeepingVendor,
        reporter: MarketplaceReporter, operator: TestClient, cheap_passwords: None) -> None:
    cloud_id = buyer(runtime, clock)
    aliyun.script = ["timeout"]
    reporter.run()
    first = one_charge(runtime)
    clock.set(first.deadline_at + timedelta(minutes=1))
    reporter.run()
    assert one_charge(runtime).status == "unknown"  # the deadline alone decides nothing
    resolved = resolve(operator, first.id, False)
    assert (resolved["status"], carry(runtime, cloud_id)) == ("refused", 300)
    outcome = reporter.run()
    assert (outcome.cut, outcome.accepted) == (1, 1)
    _, second = charges(runtime)
    assert (second.quantity, second.status) == (3, "accepted")
    assert second.period_start > first.period_start
    assert carry(runtime, cloud_id) == 0
    # Pushed: the timed-out one (Alibaba kept it, but the operator found it unbilled:
    # it never reached a bill) and the carried one, each window once.
    assert set(aliyun.pushes.values()) == {1}


@pytest.mark.parametrize("failure", sorted(BEFORE))
def test_a_failure_that_proves_non_receipt_is_retried(
        runtime: Runtime, clock: ManualClock, aliyun: KeepingVendor,
        reporter: MarketplaceReporter, cheap_passwords: None, failure: str) -> None:
    buyer(runtime, clock)
    aliyun.script = [failure]
    outcome = reporter.run()
    assert (outcome.retried, outcome.unknown) == (1, 0)
    charge = one_charge(runtime)
    assert charge.status == "pending"
    if failure == "throttled":  # paced: a minute at least
        assert charge.next_attempt_at >= clock.now() + RATE_LIMIT_PACE
    clock.set(charge.next_attempt_at)
    assert reporter.run().accepted == 1
    assert one_charge(runtime).attempts == 2
    assert sum(aliyun.pushes.values()) == 1


def test_the_adapters_rate_limit_is_paced_a_minute_or_more(
        runtime: Runtime, clock: ManualClock, aliyun: KeepingVendor,
        reporter: MarketplaceReporter, cheap_passwords: None) -> None:
    reporter.random = lambda: 0.0  # no jitter: the pace alone
    buyer(runtime, clock)
    aliyun.script = ["rate_limited", "rate_limited"]
    reporter.run()
    charge = one_charge(runtime)
    assert charge.status == "pending"
    assert charge.next_attempt_at == clock.now() + RATE_LIMIT_PACE
    clock.advance(timedelta(seconds=59))
    assert reporter.run().sent == 0
    clock.advance(timedelta(seconds=1))
    assert reporter.run().retried == 1  # refused again, without a call
    clock.advance(RATE_LIMIT_PACE)
    assert reporter.run().accepted == 1
    assert len(aliyun.calls) == 1 and sum(aliyun.pushes.values()) == 1


def test_a_charge_only_ever_refused_before_receipt_is_carried_at_its_deadline(
        runtime: Runtime, clock: ManualClock, aliyun: KeepingVendor,
        reporter: MarketplaceReporter, cheap_passwords: None) -> None:
    cloud_id = buyer(runtime, clock)
    aliyun.script = ["throttled"]
    reporter.run()
    first = one_charge(runtime)
    clock.set(first.deadline_at)
    aliyun.script = []
    assert reporter.run().refused == 1  # past the window: refused unsent, carried
    assert carry(runtime, cloud_id) == 300
    assert reporter.run().accepted == 1  # cut again in this period, and sent
    first, second = charges(runtime)
    assert (first.status, second.status, second.quantity) == ("refused", "accepted", 3)
    assert carry(runtime, cloud_id) == 0
    assert sum(aliyun.pushes.values()) == 1


def test_a_charge_id_past_the_column_or_not_plain_digits_is_422(operator: TestClient) -> None:
    # The ids are 32-bit (PostgreSQL's integer): a larger one is refused before any query.
    for charge_id in (2**31, 4611686018427387903, "+1", "1e3"):
        answer = operator.post(f"/billing/v1/admin/marketplaces/charges/{charge_id}/resolution",
                               json={"billed": False})
        assert answer.status_code == 422, (charge_id, answer.text)
    missing = operator.post("/billing/v1/admin/marketplaces/charges/2147483647/resolution",
                            json={"billed": False})
    assert missing.status_code == 404, missing.text
