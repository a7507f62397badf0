"""The marketplace charge reporter against a fake vendor (decisions.md 23).

``FakeVendor`` is a test double of the vendor's side (not of our code): it keeps the
records it took the way AWS does (one per buyer, dimension and hour; an identical
resend answers the same record id, another quantity ``duplicate``) and fails on cue.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select, update

from accrual.app import Runtime, create_app
from accrual.billing.adapters import tables as t
from accrual.billing.domain.marketplace import (
    Buyer,
    Entitlement,
    Notification,
    Refused,
    ReportLimits,
    ReportResult,
    ReportStatus,
    Transient,
    UsageReport,
)
from accrual.billing.services import ledger
from accrual.billing.services.marketplace_reporter import MarketplaceReporter
from accrual.clock import ManualClock
from tests.conftest import BACKEND, START
from tests.helpers import bearer
from tests.integration.test_instruments import audit, overview
from tests.integration.test_settlement_batches import DAY, cheap_passwords, detail, tenant
from tests.reliability.support import record

__all__ = ["cheap_passwords"]

UNIT = 100  # minor units one unit of the fake listing's dimension is worth


class Crash(Exception):
    """What the fake raises to stand for a process dying after the vendor took the call."""


class ReportsOnly:
    """A vendor fake for the reporter, which only reports: the other calls of the seam
    are never made here."""

    def resolve_buyer(self, token: str) -> Buyer:
        raise NotImplementedError

    def entitlement(self, buyer: Buyer) -> Entitlement:
        raise NotImplementedError

    def verify_notification(self, headers: Mapping[str, str], body: bytes,
                            now: datetime) -> Notification:
        raise NotImplementedError


@dataclass
class FakeVendor(ReportsOnly):
    vendor: str = "aws"
    dimension: str = "usage"
    unit_minor: int = UNIT
    limits: ReportLimits = field(default_factory=lambda: ReportLimits(
        batch_size=25, max_request_bytes=1_000_000, period=timedelta(hours=1),
        lateness=timedelta(hours=6), min_quantity=0, max_quantity=2**31 - 1))
    # What the next calls do, in order: "ok", "crash" (takes the records, then raises),
    # "throttled", "transient", "refused", "unprocessed-first", "broken" (always raises).
    script: list[str] = field(default_factory=list)
    unsubscribed: set[str] = field(default_factory=set)
    calls: list[list[UsageReport]] = field(default_factory=list)
    records: dict[tuple[str, str, datetime], tuple[int, str]] = field(default_factory=dict)
    taken: int = 0  # records created (a duplicate bill would be one too many)

    def report(self, reports: Sequence[UsageReport]) -> list[ReportResult]:
        assert 0 < len(reports) <= self.limits.batch_size
        assert all(r.quantity >= 0 for r in reports)
        self.calls.append(list(reports))
        step = self.script.pop(0) if self.script else "ok"
        if step == "broken":
            self.script.insert(0, "broken")
            raise RuntimeError("the vendor's endpoint is broken")
        if step in ("throttled", "transient"):
            raise Transient("ThrottlingException" if step == "throttled" else "InternalError",
                            "try again", throttled=step == "throttled")
        if step == "refused":
            raise Refused("InvalidProductCodeException", "unknown product")
        results = []
        for n, r in enumerate(reports):
            if step == "unprocessed-first" and n == 0:
                results.append(ReportResult(r.key, ReportStatus.UNPROCESSED))
                continue
            if r.buyer.account_id in self.unsubscribed:
                results.append(ReportResult(r.key, ReportStatus.REFUSED,
                                            reason="CustomerNotSubscribed"))
                continue
            key = (r.buyer.account_id, r.dimension, r.period_start)
            held = self.records.get(key)
            if held is None:
                self.taken += 1
                held = self.records[key] = (r.quantity, f"rec-{self.taken}")
            if held[0] != r.quantity:
                results.append(ReportResult(r.key, ReportStatus.DUPLICATE, reason="different"))
            else:
                results.append(ReportResult(r.key, ReportStatus.ACCEPTED, record_id=held[1]))
        if step == "crash":
            raise Crash("the reporter died before recording the answer")
        return results


@pytest.fixture
def aws(runtime: Runtime) -> FakeVendor:
    fake = FakeVendor()
    runtime.billing.marketplaces.by_vendor["aws"] = fake
    return fake


# The reporter's figures over this module's tests, written to the reliability report.
FIGURES: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def figures() -> Iterator[None]:
    FIGURES.clear()
    yield
    if FIGURES:
        record("marketplace reporter", f"fake-vendor-{BACKEND}", dict(sorted(FIGURES.items())))


@pytest.fixture
def reporter(runtime: Runtime, aws: FakeVendor) -> Iterator[MarketplaceReporter]:
    found = runtime.billing.marketplace_reporter
    found.random = lambda: 1.0  # the longest jittered delay, so tests know when it is due
    yield found
    backlog = found.backlog()
    vendors = [v for v in runtime.billing.marketplaces.by_vendor.values()
               if isinstance(v, FakeVendor)]
    sent_keys = {r.key for v in vendors for call in v.calls for r in call}
    FIGURES.update({"charges": len(charges(runtime)), "sends": backlog.sends,
                    "retries": backlog.retries, "accepted": backlog.accepted,
                    "refused": backlog.refused, "duplicate_answers": backlog.duplicate,
                    "vendor_records": sum(v.taken for v in vendors),
                    "charges_sent": len(sent_keys)})
    # Billed at most once: the vendor holds no more records than charges it was sent.
    duplicates = sum(v.taken for v in vendors) - backlog.accepted
    FIGURES["duplicates_created"] += max(duplicates, 0)
    assert duplicates <= 0


def cloud_tenant(runtime: Runtime, clock: ManualClock, name: str, *, vendor: str = "aws",
                 status: str = "active", external_id: str = "123456789012",
                 unsubscribing_at: datetime | None = None) -> tuple[str, str, str]:
    """(workspace, billing account, cloud account) of a workspace settled by ``vendor``
    from its first day (the binding rows written directly, as activation will)."""
    ws, account = tenant(runtime, clock, name)
    cloud_id = f"ca_{name}"
    with runtime.billing.engine.begin() as conn:
        conn.execute(insert(t.cloud_accounts).values(
            id=cloud_id, account_id=account, vendor=vendor, external_id=external_id,
            status=status, linked_at=START, product_code=f"prod-{vendor}",
            unsubscribing_at=unsubscribing_at))
        conn.execute(update(t.bindings).where(t.bindings.c.workspace_id == ws).values(
            settlement_method=vendor, cloud_account_id=cloud_id))
    return ws, account, cloud_id


def charges(runtime: Runtime) -> list[Any]:
    with runtime.billing.engine.connect() as conn:
        return conn.execute(select(t.marketplace_charges)
                            .order_by(t.marketplace_charges.c.id)).all()


def lines(runtime: Runtime) -> dict[str, Any]:
    with runtime.billing.engine.connect() as conn:
        return {r.detail_id: r for r in conn.execute(select(t.charges))}


def carry(runtime: Runtime, cloud_id: str) -> int | None:
    with runtime.billing.engine.connect() as conn:
        return conn.execute(select(t.marketplace_carry.c.carried_minor).where(
            t.marketplace_carry.c.cloud_account_id == cloud_id)).scalar()


def cloud_receivable(runtime: Runtime) -> int:
    """What the vendors are still to bill, net (the account's balance, negated)."""
    a, p = t.ledger_accounts, t.postings
    with runtime.billing.engine.connect() as conn:
        return -sum(int(x) for x in conn.execute(
            select(p.c.amount_minor).join(a, a.c.id == p.c.ledger_account_id)
            .where(a.c.kind == "cloud_receivable")).scalars())


def day(n: int) -> date:
    return DAY + timedelta(days=n)


def test_settlement_records_the_cloud_side_only_for_a_live_cloud_account(
        runtime: Runtime, clock: ManualClock, cheap_passwords: None) -> None:
    live, _, live_cloud = cloud_tenant(runtime, clock, "ada")
    waiting, _, waiting_cloud = cloud_tenant(runtime, clock, "bob", status="pending",
                                             external_id="2")
    gone, gone_account, _ = cloud_tenant(runtime, clock, "cyd", status="cancelled",
                                         external_id="3")
    unlinked, _ = tenant(runtime, clock, "dee")
    with runtime.billing.engine.begin() as conn:
        conn.execute(update(t.bindings).where(t.bindings.c.workspace_id == unlinked)
                     .values(settlement_method="aws"))
    runtime.billing.wallet.recharge(gone_account, "1.00", "t-1")
    sent = [detail(live, "1.50"), detail(waiting, "2.00"), detail(gone, "3.00"),
            detail(unlinked, "4.00")]
    runtime.billing.inbox.deliver(sent)
    found = lines(runtime)
    assert [(found[d.id].settlement_method, found[d.id].cloud_account_id,
             found[d.id].cloud_minor) for d in sent] == [
        ("aws", live_cloud, 150), ("aws", waiting_cloud, 200),
        ("billing_center", None, None), ("billing_center", None, None)]
    # The cancelled subscription's day was paid by the wallet: cash, then arrears.
    assert overview(runtime, gone_account)["cash"] == "0.00"
    assert overview(runtime, gone_account)["arrears"] == "2.00"
    # A correction gives the cloud back its share: a negative cloud_minor.
    fix = detail(live, "-1.00", revision=1)
    runtime.billing.inbox.deliver([fix])
    assert lines(runtime)[fix.id].cloud_minor == -100
    audit(runtime)


def test_a_cut_reports_whole_units_once_per_period_and_carries_the_rest(
        runtime: Runtime, clock: ManualClock, aws: FakeVendor, reporter: MarketplaceReporter,
        cheap_passwords: None) -> None:
    ws, _, cloud_id = cloud_tenant(runtime, clock, "ada")
    runtime.billing.inbox.deliver([detail(ws, "1.50"), detail(ws, "0.25", item="trace")])
    outcome = reporter.run()
    assert (outcome.cut, outcome.sent, outcome.accepted) == (1, 1, 1)
    [first] = charges(runtime)
    assert (first.quantity, first.amount_minor, first.status, first.record_id) \
        == (1, 100, "accepted", "rec-1")
    assert first.period_start == datetime(2026, 11, 26, 2, tzinfo=first.period_start.tzinfo)
    assert first.deadline_at - first.period_start == timedelta(hours=6)
    assert carry(runtime, cloud_id) == 75
    assert {r.marketplace_charge_id for r in lines(runtime).values()} == {first.id}
    # Later in the same hour: the period's charge exists, the new line waits.
    clock.advance(timedelta(minutes=20))
    late = detail(ws, "0.40", item="profile")
    runtime.billing.inbox.deliver([late])
    assert reporter.run().cut == 0 and lines(runtime)[late.id].marketplace_charge_id is None
    clock.advance(timedelta(minutes=40))
    assert reporter.run().cut == 1
    second = charges(runtime)[-1]
    assert (second.quantity, second.status) == (1, "accepted")  # 75 carried + 40 = 1 unit
    assert carry(runtime, cloud_id) == 15
    assert len(aws.calls) == 2 and aws.taken == 2
    audit(runtime)


def test_negative_corrections_are_carried_and_never_sent_negative(
        runtime: Runtime, clock: ManualClock, aws: FakeVendor, reporter: MarketplaceReporter,
        cheap_passwords: None) -> None:
    ws, _, cloud_id = cloud_tenant(runtime, clock, "ada")
    runtime.billing.inbox.deliver([detail(ws, "2.00")])
    reporter.run()
    runtime.billing.inbox.deliver([detail(ws, "-5.00", revision=1)])  # gives back 5.00
    for n in (1, 2):
        clock.advance(timedelta(hours=1))
        runtime.billing.inbox.deliver([detail(ws, "1.00", day=day(n))])
        assert reporter.run().cut == 0  # -500 + 100 (+ 100): nothing whole to report
    clock.advance(timedelta(hours=1))
    runtime.billing.inbox.deliver([detail(ws, "4.70", day=day(3))])
    assert reporter.run().cut == 1
    found = charges(runtime)
    assert [c.quantity for c in found] == [2, 1]  # -300 + 470 = 170: one unit, 70 carried
    assert carry(runtime, cloud_id) == 70
    total_cloud = sum(r.cloud_minor for r in lines(runtime).values())
    assert sum(c.amount_minor for c in found) + carry(runtime, cloud_id) == total_cloud
    assert all(r.marketplace_charge_id is not None for r in lines(runtime).values())
    assert [q for call in aws.calls for q in (r.quantity for r in call)] == [2, 1]


def test_a_crash_between_send_and_mark_sends_the_identical_report_once_more(
        runtime: Runtime, clock: ManualClock, aws: FakeVendor, reporter: MarketplaceReporter,
        cheap_passwords: None) -> None:
    ws, _, _ = cloud_tenant(runtime, clock, "ada")
    runtime.billing.inbox.deliver([detail(ws, "3.00")])
    aws.script = ["crash"]
    outcome = reporter.run()
    assert (outcome.sent, outcome.accepted) == (1, 0)
    [charge] = charges(runtime)
    assert (charge.status, charge.attempts) == ("sent", 1)
    assert reporter.job.degraded
    assert reporter.run().sent == 0  # not before the grace: the answer may still come
    clock.advance(timedelta(minutes=6))
    assert reporter.run().accepted == 1
    [charge] = charges(runtime)
    assert (charge.status, charge.attempts, charge.record_id) == ("accepted", 2, "rec-1")
    assert aws.calls[0] == aws.calls[1]  # the same report, field for field
    assert aws.taken == 1  # billed once
    backlog = reporter.backlog()
    assert (backlog.sends, backlog.retries, backlog.accepted, backlog.pending) == (2, 1, 1, 0)
    assert not reporter.job.degraded


def test_throttling_and_passing_failures_back_off_then_succeed(
        runtime: Runtime, clock: ManualClock, aws: FakeVendor, reporter: MarketplaceReporter,
        cheap_passwords: None) -> None:
    ws, _, _ = cloud_tenant(runtime, clock, "ada")
    runtime.billing.inbox.deliver([detail(ws, "3.00")])
    aws.script = ["throttled", "transient"]
    assert reporter.run().retried == 1
    [charge] = charges(runtime)
    now = clock.now()
    # The first retry after throttling: 30 s × 4 (random drew its maximum).
    assert (charge.status, charge.attempts) == ("pending", 1)
    assert charge.next_attempt_at == now + timedelta(minutes=2)
    assert "ThrottlingException" in charge.last_error
    clock.advance(timedelta(minutes=1))
    assert reporter.run().sent == 0  # not due yet
    clock.advance(timedelta(minutes=1))
    assert reporter.run().retried == 1
    [charge] = charges(runtime)
    assert charge.next_attempt_at == clock.now() + timedelta(minutes=1)  # 30 s × 2
    clock.advance(timedelta(minutes=1))
    assert reporter.run().accepted == 1
    backlog = reporter.backlog()
    assert (backlog.sends, backlog.retries, backlog.accepted) == (3, 2, 1)
    assert aws.taken == 1 and len(aws.calls) == 3


def test_unprocessed_reports_go_again_and_a_refused_batch_moves_money_to_the_wallet(
        runtime: Runtime, clock: ManualClock, aws: FakeVendor, reporter: MarketplaceReporter,
        cheap_passwords: None) -> None:
    ws1, _, _ = cloud_tenant(runtime, clock, "ada", external_id="1")
    ws2, _, _ = cloud_tenant(runtime, clock, "bob", external_id="2")
    runtime.billing.inbox.deliver([detail(ws1, "1.00"), detail(ws2, "2.00")])
    aws.script = ["unprocessed-first"]
    outcome = reporter.run()
    assert (outcome.sent, outcome.accepted, outcome.retried) == (2, 1, 1)
    assert [c.status for c in charges(runtime)] == ["pending", "accepted"]
    clock.advance(timedelta(seconds=30))
    assert reporter.run().accepted == 1
    # A refused batch: each of its charges is refused, and its money owed by the wallet.
    ws3, account3, _ = cloud_tenant(runtime, clock, "cyd", external_id="3")
    runtime.billing.wallet.recharge(account3, "1.00", "t-3")
    runtime.billing.inbox.deliver([detail(ws3, "2.50", day=day(1))])
    before = cloud_receivable(runtime)
    aws.script = ["refused"]
    assert reporter.run().refused == 1
    refused = charges(runtime)[-1]
    assert refused.status == "refused" and "InvalidProductCodeException" in refused.last_error
    assert cloud_receivable(runtime) == before - 200  # 2 units left it; 50 stay carried
    assert overview(runtime, account3)["cash"] == "0.00"
    assert overview(runtime, account3)["arrears"] == "1.00"
    with runtime.billing.engine.connect() as conn:
        assert conn.execute(select(t.journal_entries.c.kind).where(
            t.journal_entries.c.idempotency_key == f"marketplace/{refused.id}")).scalar() \
            == "marketplace_refused"
    audit(runtime)


def test_a_charge_past_the_vendors_window_is_refused_unsent_and_alerted_before(
        runtime: Runtime, clock: ManualClock, aws: FakeVendor, reporter: MarketplaceReporter,
        cheap_passwords: None) -> None:
    ws, account, _ = cloud_tenant(runtime, clock, "ada")
    runtime.billing.inbox.deliver([detail(ws, "3.00")])
    aws.script = ["broken"]
    reporter.run()
    assert reporter.job.failure("aws/prod-aws") is not None
    assert reporter.backlog().near_deadline == 0
    # Four hours on, a third of the six-hour window is left: alerted once, job degraded.
    clock.advance(timedelta(hours=4, minutes=1))
    assert reporter.run().alerted == 1
    assert reporter.run().alerted == 0
    [charge] = charges(runtime)
    assert charge.alerted_at is not None and charge.status in ("sent", "pending")
    assert reporter.backlog().near_deadline == 1
    assert reporter.job.failure(f"charge/{charge.id}").code == "marketplace_deadline_near"
    with TestClient(create_app(runtime)) as client:
        health = client.get("/healthz").json()
    assert health["status"] == "degraded"
    assert any(d["job"] == "marketplace reporter" for d in health["degraded"])
    # Past the window: never sent again. This one was sent before with no answer, so the
    # vendor may hold it: refused, and its money left on the cloud receivable to reconcile.
    clock.advance(timedelta(hours=2))
    calls = len(aws.calls)
    assert reporter.run().refused == 1
    assert len(aws.calls) == calls
    [charge] = charges(runtime)
    assert charge.status == "refused" and charge.last_error.startswith("past the vendor's window")
    assert overview(runtime, account)["arrears"] == "0.00"
    # One never sent (the reporter was down past the window) is cut again into a later
    # period: the vendor bills it once, the wallet nothing.
    aws.script = []
    runtime.billing.inbox.deliver([detail(ws, "2.00", day=day(1))])
    reporter.cut()
    clock.advance(timedelta(hours=7))
    outcome = reporter.run()
    assert (outcome.refused, outcome.cut, outcome.accepted) == (1, 0, 0)
    unsent = charges(runtime)[-1]
    assert (unsent.status, unsent.attempts) == ("refused", 0)
    assert unsent.last_error == "past the vendor's window; never sent: carried into the next cut"
    assert carry(runtime, unsent.cloud_account_id) == unsent.amount_minor
    outcome = reporter.run()
    assert (outcome.cut, outcome.accepted) == (1, 1)
    again = charges(runtime)[-1]
    assert (again.quantity, again.status) == (unsent.quantity, "accepted")
    assert again.period_start > unsent.period_start
    assert carry(runtime, unsent.cloud_account_id) == 0
    assert overview(runtime, account)["arrears"] == "0.00"
    # Nothing is left to send: the vendor's failure and the alert are over.
    assert reporter.job.failing == {} and not reporter.job.degraded
    audit(runtime)


def test_final_usage_within_the_hour_after_unsubscribing_and_pending_accounts_wait(
        runtime: Runtime, clock: ManualClock, aws: FakeVendor, reporter: MarketplaceReporter,
        cheap_passwords: None) -> None:
    now = clock.now()
    leaving, _, leaving_cloud = cloud_tenant(runtime, clock, "ada", status="unsubscribing",
                                             external_id="1",
                                             unsubscribing_at=now - timedelta(minutes=30))
    gone, _, gone_cloud = cloud_tenant(runtime, clock, "bob", status="unsubscribing",
                                       external_id="2", unsubscribing_at=now - timedelta(hours=2))
    waiting, _, waiting_cloud = cloud_tenant(runtime, clock, "cyd", status="pending",
                                             external_id="3")
    runtime.billing.inbox.deliver([detail(w, "1.00") for w in (leaving, gone, waiting)])
    outcome = reporter.run()
    assert (outcome.cut, outcome.accepted, outcome.refused) == (1, 1, 1)
    # The account past its final hour is billed nothing more: its line is closed into a
    # refused charge, never sent, whose money the wallet pays.
    sent, closing = sorted(charges(runtime), key=lambda c: c.status)
    assert (sent.cloud_account_id, sent.status) == (leaving_cloud, "accepted")
    assert (closing.cloud_account_id, closing.status, closing.amount_minor, closing.attempts) \
        == (gone_cloud, "refused", 100, 0)
    assert lines(runtime)[detail(gone, "1.00").id].marketplace_charge_id == closing.id
    assert [r.buyer.account_id for call in aws.calls for r in call] == ["1"]
    # Confirmed by the vendor: the pending account's lines are reported next run.
    with runtime.billing.engine.begin() as conn:
        conn.execute(update(t.cloud_accounts).where(t.cloud_accounts.c.id == waiting_cloud)
                     .values(status="active"))
    assert reporter.run().cut == 1
    assert [c.cloud_account_id for c in charges(runtime) if c.status == "accepted"] \
        == [leaving_cloud, waiting_cloud]
    audit(runtime)


def test_an_ended_subscription_leaves_nothing_on_the_cloud_receivable(
        runtime: Runtime, clock: ManualClock, aws: FakeVendor, reporter: MarketplaceReporter,
        cheap_passwords: None) -> None:
    ws, account, cloud_id = cloud_tenant(runtime, clock, "ada")
    runtime.billing.wallet.recharge(account, "0.50", "t-1")
    runtime.billing.inbox.deliver([detail(ws, "1.50")])
    assert reporter.run().accepted == 1  # 1 unit sent, 50 carried
    runtime.billing.inbox.deliver([detail(ws, "0.20", item="trace")])
    # The unit the vendor accepted (it pays it), the carry and the unreported line.
    assert cloud_receivable(runtime) == 100 + 50 + 20
    with runtime.billing.engine.begin() as conn:
        conn.execute(update(t.cloud_accounts).where(t.cloud_accounts.c.id == cloud_id)
                     .values(status="cancelled", cancelled_at=clock.now()))
    clock.advance(timedelta(minutes=5))
    outcome = reporter.run()
    assert (outcome.cut, outcome.sent, outcome.refused) == (0, 0, 1)
    assert cloud_receivable(runtime) == 100 and carry(runtime, cloud_id) == 0
    # 0.70 from the wallet: the 0.50 of cash, then 0.20 of arrears.
    assert (overview(runtime, account)["cash"], overview(runtime, account)["arrears"]) \
        == ("0.00", "0.20")
    assert reporter.run().refused == 0  # closed once
    audit(runtime)


def test_an_ended_subscription_given_back_more_than_it_was_charged_credits_the_wallet(
        runtime: Runtime, clock: ManualClock, aws: FakeVendor, reporter: MarketplaceReporter,
        cheap_passwords: None) -> None:
    ws, account, cloud_id = cloud_tenant(runtime, clock, "ada")
    runtime.billing.inbox.deliver([detail(ws, "2.00")])
    assert reporter.run().accepted == 1  # 2 units billed by the vendor
    runtime.billing.inbox.deliver([detail(ws, "-1.50", revision=1)])
    assert cloud_receivable(runtime) == 200 - 150
    with runtime.billing.engine.begin() as conn:
        conn.execute(update(t.cloud_accounts).where(t.cloud_accounts.c.id == cloud_id)
                     .values(status="failed"))
    assert reporter.run().refused == 1
    assert cloud_receivable(runtime) == 200  # what the vendor billed stays its to pay
    assert overview(runtime, account)["cash"] == "1.50"
    audit(runtime)


def test_a_failing_vendor_does_not_stop_another(
        runtime: Runtime, clock: ManualClock, aws: FakeVendor, reporter: MarketplaceReporter,
        cheap_passwords: None) -> None:
    huawei = FakeVendor(vendor="huawei", dimension="amount", limits=ReportLimits(
        batch_size=1000, max_request_bytes=1_000_000, period=timedelta(days=1),
        lateness=timedelta(hours=25), min_quantity=1, max_quantity=10**9))
    runtime.billing.marketplaces.by_vendor["huawei"] = huawei
    runtime.billing.marketplaces.by_vendor.pop("aliyun", None)  # a vendor with no listing here
    on_aws, _, _ = cloud_tenant(runtime, clock, "ada", external_id="1")
    on_huawei, _, _ = cloud_tenant(runtime, clock, "bob", vendor="huawei", external_id="2")
    unknown, _, aliyun_cloud = cloud_tenant(runtime, clock, "cyd", vendor="aliyun",
                                           external_id="3")
    runtime.billing.inbox.deliver([detail(w, "2.00") for w in (on_aws, on_huawei, unknown)])
    aws.script = ["broken"]
    outcome = reporter.run()
    assert (outcome.cut, outcome.sent, outcome.accepted) == (2, 2, 1)
    found = {c.vendor: c for c in charges(runtime)}
    assert found["huawei"].status == "accepted"
    assert found["huawei"].period_start.hour == 0  # a daily listing reports by UTC day
    assert found["aws"].status == "sent"
    assert reporter.job.failure("aws/prod-aws").code == "RuntimeError"
    assert reporter.job.failure(f"cloud_account/{aliyun_cloud}").code \
        == "marketplace_not_configured"
    assert reporter.job.failure("huawei/prod-huawei") is None


@pytest.fixture
def operator_client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime)) as test_client:
        yield test_client


def test_the_operator_sees_the_backlog_and_the_charges(
        runtime: Runtime, clock: ManualClock, aws: FakeVendor, reporter: MarketplaceReporter,
        operator_client: TestClient, cheap_passwords: None) -> None:
    client = operator_client
    ws, _, cloud_id = cloud_tenant(runtime, clock, "ada")
    runtime.billing.inbox.deliver([detail(ws, "3.00")])
    aws.script = ["transient"]
    reporter.run()
    clock.advance(timedelta(minutes=10))
    operator = bearer(runtime.admin_token)
    backlog = client.get("/billing/v1/admin/marketplaces/reporter", headers=operator)
    assert backlog.status_code == 200, backlog.text
    assert backlog.json() == {
        "pending": 1, "sent_unanswered": 0, "oldest_pending_age_s": 600, "near_deadline": 0,
        "accepted": 0, "duplicate": 0, "refused": 0, "unknown": 0, "sends": 1, "retries": 0,
        "by_vendor": {"aws": {"pending": 1, "sent": 0, "accepted": 0, "duplicate": 0,
                              "refused": 0, "unknown": 0}}}
    reporter.run()
    listed = client.get("/billing/v1/admin/marketplaces/charges", headers=operator,
                        params={"status": "accepted", "cloud_account_id": cloud_id, "limit": 5})
    assert listed.status_code == 200, listed.text
    [charge] = listed.json()
    assert (charge["quantity"], charge["amount"], charge["currency"], charge["attempts"],
            charge["record_id"]) == (3, "3.00", "CNY", 2, "rec-1")
    assert client.get("/billing/v1/admin/marketplaces/charges", headers=operator,
                      params={"status": "pending"}).json() == []
    jobs = client.get("/billing/v1/admin/jobs", headers=operator).json()
    assert "marketplace reporter" in {j["job"] for j in jobs["jobs"]}
    assert client.get("/billing/v1/admin/marketplaces/reporter").status_code == 401
    for bad in ({"status": "lost"}, {"limit": 0}, {"limit": 501}, {"cloud_account_id": "x" * 33}):
        answer = client.get("/billing/v1/admin/marketplaces/charges", headers=operator,
                            params=bad)
        assert answer.status_code == 422, bad
    audit(runtime)


def test_ledger_answers_the_postings_it_wrote(runtime: Runtime, clock: ManualClock,
                                              cheap_passwords: None) -> None:
    _, account = tenant(runtime, clock, "ada")
    entry = ledger.Entry(account, "k-1", ledger.digest(1), "recharge", None,
                         {"bank_clearing": -100, "cash": 100})
    with runtime.billing.engine.begin() as conn:
        first, again = ledger.post_many(conn, [entry, entry], clock.now())
    assert first.created and first.postings == {"bank_clearing": -100, "cash": 100}
    assert not again.created and again.postings == {} and again.entry_id == first.entry_id
