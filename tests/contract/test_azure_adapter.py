"""The Azure adapter against the emulator over HTTP: tokens, buyers, activation,
entitlements, each usage status, reconciliation, and the webhook both ways (the
emulator's calls verified by the adapter, forged calls refused)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from accrual.billing.domain.marketplace import (
    Buyer,
    NotificationAction,
    NotificationRejected,
    Refused,
    ReportStatus,
    TokenRejected,
    Transient,
    UsageReport,
)
from accrual.billing.marketplaces.azure import (
    AzureEvent,
    AzureListing,
    AzureMarketplace,
    EventKind,
    exact_quantity,
    webhook_response,
)
from tests.contract.azure_support import DIMENSION, OFFER, T0, Az

pytest_plugins = ["tests.contract.conftest_azure"]

HOUR = timedelta(hours=1)


@pytest.fixture
def azure(az: Az) -> Iterator[AzureMarketplace]:
    adapter = make(az)
    yield adapter
    adapter.close()


def make(az: Az, **overrides: Any) -> AzureMarketplace:
    listing = AzureListing(**{"tenant_id": az.tenant, "client_id": az.app_id,
                              "client_secret": az.secret, "offer_id": OFFER,
                              "publisher_id": "accrual", "api_url": az.endpoint,
                              "login_url": az.sandbox.login_url, **overrides})
    return AzureMarketplace(listing, az.clock)


def buyer_of(az: Az, azure: AzureMarketplace, plan: str = "payg", **options: Any) -> Buyer:
    bought = az.purchase(plan, **options)
    buyer = azure.resolve_buyer(bought["token"])
    assert azure.activate(buyer.account_id, plan, options.get("quantity")) is True
    return buyer


def usage(buyer: Buyer, key: str, *, at: Any = T0 + HOUR, quantity: int = 1) -> UsageReport:
    return UsageReport(key=key, buyer=buyer, dimension=DIMENSION, period_start=at,
                       quantity=quantity)


# --- tokens -----------------------------------------------------------------------------


def test_tokens_come_by_client_credentials_and_are_reused_until_near_expiry(
        az: Az, azure: AzureMarketplace) -> None:
    first = azure.access_token()
    az.ctl("POST", "/control/faults", json={"operation": "token", "kind": "internal_error"})
    az.clock.advance(timedelta(minutes=54))
    assert azure.access_token() == first  # cached: the fault is not reached
    az.clock.advance(timedelta(minutes=1))  # five minutes before expiry: fetched anew
    with pytest.raises(Transient) as failed:
        azure.access_token()
    assert failed.value.code == "token_refused"
    assert azure.access_token() != first
    wrong = make(az, client_secret="wrong-secret-value")
    with pytest.raises(Transient) as refused:
        wrong.access_token()
    assert "AADSTS7000215" in refused.value.message
    wrong.close()


# --- buyers -----------------------------------------------------------------------------


def test_resolve_buyer_takes_the_landing_token_decoded_encoded_or_form_mangled(
        az: Az, azure: AzureMarketplace) -> None:
    bought = az.purchase()
    token = bought["token"]
    encoded = urlsplit(bought["landing_url"]).query.removeprefix("token=")
    for given in (token, encoded, token.replace("+", " ")):
        buyer = azure.resolve_buyer(given)
        assert buyer == Buyer(vendor="azure", account_id=bought["subscription_id"],
                              product_code=OFFER,
                              customer_id=bought["subscription"]["beneficiary"]["tenantId"],
                              license_ref="payg")
    assert parse_qs(urlsplit(bought["landing_url"]).query)["token"][0] == token
    with pytest.raises(TokenRejected) as unknown:
        azure.resolve_buyer("bm90LWEtdG9rZW4=")
    assert unknown.value.code == "invalid_token"
    az.clock.advance(timedelta(hours=24))
    with pytest.raises(TokenRejected):
        azure.resolve_buyer(token)


def test_a_token_for_another_offer_of_the_same_app_is_the_wrong_product(
        az: Az, azure: AzureMarketplace) -> None:
    az.ctl("POST", "/control/offers", expect=201, json={
        "offer_id": "sibling", "app_id": az.app_id,
        "plans": [{"plan_id": "p", "dimensions": [DIMENSION]}]})
    bought = az.ctl("POST", "/control/offers/sibling/purchases", expect=201, json={"plan_id": "p"})
    with pytest.raises(TokenRejected) as wrong:
        azure.resolve_buyer(bought["token"])
    assert wrong.value.code == "wrong_product"


def test_activation_is_idempotent_and_entitlement_follows_the_state(
        az: Az, azure: AzureMarketplace) -> None:
    bought = az.purchase("seats", quantity=3)
    buyer = azure.resolve_buyer(bought["token"])
    # PendingFulfillmentStart: in force (the buyer lands with it), not billed yet.
    waiting = azure.entitlement(buyer)
    assert waiting.active and waiting.dimensions == ()
    with pytest.raises(Refused) as wrong_plan:
        azure.activate(buyer.account_id, "gold")
    assert wrong_plan.value.code == "activation_refused"
    assert azure.activate(buyer.account_id, "seats", 3) is True
    assert azure.activate(buyer.account_id, "seats", 3) is False
    assert azure.activate(buyer.account_id, "seats") is False
    with pytest.raises(Refused):
        azure.activate(buyer.account_id, "seats", 4)
    entitled = azure.entitlement(buyer)
    assert entitled.active and entitled.expires_at is None  # auto-renewing
    assert entitled.dimensions == (azure.dimension,)
    az.ctl("POST", f"/control/subscriptions/{buyer.account_id}/suspend")
    assert not azure.entitlement(buyer).active
    az.ctl("POST", f"/control/subscriptions/{buyer.account_id}/unsubscribe")
    assert not azure.entitlement(buyer).active
    with pytest.raises(Refused) as ended:
        azure.activate(buyer.account_id, "seats")
    assert ended.value.code == "unsubscribed"
    ghost = Buyer("azure", "00000000-0000-0000-0000-000000000000", OFFER, license_ref="payg")
    assert not azure.entitlement(ghost).active
    fixed_term = buyer_of(az, azure, auto_renew=False)
    assert azure.entitlement(fixed_term).expires_at == T0.replace(month=12)


# --- usage ------------------------------------------------------------------------------


def test_report_answers_each_event_and_a_resend_recovers_the_accepted_id(
        az: Az, azure: AzureMarketplace) -> None:
    az.clock.advance(3 * HOUR)
    buyer = buyer_of(az, azure)
    az.clock.advance(2 * HOUR)  # 15:30, active since 13:30
    first = azure.report([usage(buyer, "a", at=T0 + 3 * HOUR, quantity=40),
                          usage(buyer, "b", at=T0 + 4 * HOUR, quantity=123456789012345)])
    assert [r.status for r in first] == [ReportStatus.ACCEPTED, ReportStatus.ACCEPTED]
    assert all(r.record_id for r in first)
    sent = az.ctl("GET", "/control/usage")["received"][0]["request"]
    assert '"quantity":40,' in sent and '"quantity":123456789012345,' in sent
    assert '"effectiveStartTime":"2026-11-26T13:30:00Z"' in sent
    assert '"planId":"payg"' in sent
    # The same event again (its answer lost) is the accepted one; another quantity is not.
    again = azure.report([usage(buyer, "a", at=T0 + 3 * HOUR, quantity=40),
                          usage(buyer, "c", at=T0 + 4 * HOUR, quantity=7)])
    assert (again[0].status, again[0].record_id) == (ReportStatus.ACCEPTED, first[0].record_id)
    assert again[1].status is ReportStatus.DUPLICATE and "123456789012345" in (again[1].reason
                                                                               or "")
    late = azure.report([usage(buyer, "d", at=T0 - 12 * HOUR),
                         usage(buyer, "e", at=T0 + 2 * HOUR)])
    assert [r.status for r in late] == [ReportStatus.REFUSED, ReportStatus.REFUSED]
    assert (late[1].reason or "").startswith("ResourceNotActive")  # before activation
    az.ctl("POST", "/control/faults", json={"operation": "batchUsageEvent",
                                            "kind": "event_error", "events": 1})
    failed = azure.report([usage(buyer, "f", at=T0 + 5 * HOUR)])
    assert failed[0].status is ReportStatus.UNPROCESSED
    assert azure.report([usage(buyer, "f", at=T0 + 5 * HOUR)])[0].status is ReportStatus.ACCEPTED
    assert all(n == 1 for n in az.ctl("GET", "/control/usage")["counts_per_key"].values())


def test_whole_call_failures_are_transient_and_bad_input_never_leaves(
        az: Az, azure: AzureMarketplace) -> None:
    buyer = buyer_of(az, azure)
    az.clock.advance(HOUR)
    az.ctl("POST", "/control/faults", json={"operation": "batchUsageEvent", "kind": "throttling"})
    with pytest.raises(Transient) as throttled:
        azure.report([usage(buyer, "a")])
    assert throttled.value.throttled
    az.ctl("POST", "/control/faults", json={"operation": "batchUsageEvent",
                                            "kind": "internal_error"})
    with pytest.raises(Transient):
        azure.report([usage(buyer, "a")])
    with pytest.raises(ValueError):
        azure.report([usage(buyer, str(i), at=T0 + HOUR - i * HOUR) for i in range(26)])
    with pytest.raises(ValueError):
        azure.report([usage(buyer, "zero", quantity=0)])
    with pytest.raises(ValueError):
        azure.report([usage(Buyer("azure", buyer.account_id, "other-offer", license_ref="p"),
                            "x")])
    received = az.ctl("GET", "/control/usage")["received"]
    assert [r["status"] for r in received] == [429, 500]


def test_quantities_are_exact_decimals_on_the_wire() -> None:
    assert exact_quantity(Decimal("0.1")) == Decimal("0.1")
    assert exact_quantity(Decimal("1E+2")) == 100
    assert exact_quantity(999_999_999_999_999) == 999_999_999_999_999
    for bad in (Decimal("0"), Decimal("-1"), Decimal("NaN"), 10**15,
                Decimal("1.234567890123456"), True):
        with pytest.raises(ValueError):
            exact_quantity(bad)  # type: ignore[arg-type]


def test_reconcile_reads_usage_events_with_exact_quantities(
        az: Az, azure: AzureMarketplace) -> None:
    buyer = buyer_of(az, azure)
    az.clock.advance(3 * HOUR)
    [accepted] = azure.report([usage(buyer, "a", quantity=25)])
    records = azure.reconcile(T0)
    assert [(r.resource_id, r.submitted_quantity, r.recon_status, r.usage_event_id)
            for r in records] == [(buyer.account_id, Decimal(25), "Accepted", accepted.record_id)]
    assert records[0].usage_date == T0.replace(minute=0) + HOUR
    az.ctl("POST", f"/control/usage/{accepted.record_id}/recon",
           json={"status": "Mismatch", "processed_quantity": "24.5"})
    [mismatch] = azure.reconcile(T0, T0 + 4 * HOUR, recon_status="Mismatch")
    assert mismatch.processed_quantity == Decimal("24.5")
    assert azure.reconcile(T0 + 2 * HOUR) == []


# --- operations -------------------------------------------------------------------------


def test_plan_quantity_and_cancel_operations_are_polled_to_their_end(
        az: Az, azure: AzureMarketplace) -> None:
    buyer = buyer_of(az, azure, "seats", quantity=2)
    ref = azure.change_quantity(buyer.account_id, 4)
    assert ref.location.endswith(f"/operations/{ref.operation_id}?api-version=2018-08-31")
    pending = azure.operation(buyer.account_id, ref.operation_id)
    assert pending is not None and (pending.status, pending.quantity) == ("InProgress", 4)
    az.tick()
    done = azure.operation(buyer.account_id, ref.operation_id)
    assert done is not None and done.status == "Succeeded"
    with pytest.raises(Refused):
        azure.change_quantity(buyer.account_id, 4)  # unchanged
    assert azure.operation(buyer.account_id, "00000000-0000-0000-0000-000000000000") is None
    plan = azure.change_plan(buyer.account_id, "gold")
    az.tick()
    sub = azure.subscription(buyer.account_id)
    assert sub is not None and sub.plan_id == "gold" and plan.operation_id
    azure.cancel(buyer.account_id)
    az.tick()
    sub = azure.subscription(buyer.account_id)
    assert sub is not None and sub.status == "Unsubscribed"


# --- webhook ----------------------------------------------------------------------------


def publisher(az: Az, azure: AzureMarketplace, seen: list[Any], *,
              answer: bool = True) -> None:
    """The publisher's webhook endpoint: verify, confirm with Get operation, answer."""
    def handle(headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        try:
            event = azure.verify_webhook("POST", headers, body, az.clock.now())
        except (NotificationRejected, Transient) as error:
            seen.append(error)
            return webhook_response(error)
        seen.append(event)
        confirmed = azure.operation(event.instance_id, event.order_id)
        assert confirmed is not None and confirmed.action == event.action
        if event.needs_answer and answer:
            azure.acknowledge(event.instance_id, event.order_id, success=True)
        return webhook_response(event)
    az.receiver.handler = handle


def test_the_emulators_webhook_calls_verify_and_a_change_is_acknowledged(
        az: Az, azure: AzureMarketplace) -> None:
    buyer = buyer_of(az, azure, "seats", quantity=2)
    seen: list[Any] = []
    publisher(az, azure, seen)
    az.ctl("POST", f"/control/subscriptions/{buyer.account_id}/plan", json={"plan_id": "gold"})
    [event] = seen
    assert isinstance(event, AzureEvent)
    assert (event.kind, event.plan_id, event.status, event.source, event.needs_answer) == (
        EventKind.UPGRADE, "gold", "InProgress", "Azure", True)
    assert event.account_id == buyer.customer_id and event.product_code == OFFER
    sub = azure.subscription(buyer.account_id)
    assert sub is not None and sub.plan_id == "gold"  # applied by our Success
    assert az.receiver.answers == [200]
    for action, kind in (("renew", EventKind.RENEW), ("suspend", EventKind.FREEZE)):
        az.ctl("POST", f"/control/subscriptions/{buyer.account_id}/{action}")
        assert seen[-1].kind is kind and not seen[-1].needs_answer
    az.ctl("POST", f"/control/subscriptions/{buyer.account_id}/reinstate")
    assert seen[-1].kind is EventKind.UNFREEZE
    assert azure.entitlement(buyer).active
    az.ctl("POST", f"/control/subscriptions/{buyer.account_id}/unsubscribe")
    headers, body = az.receiver.calls[-1]
    notification = azure.verify_notification(headers, body, az.clock.now())
    assert (notification.action, notification.account_id, notification.message_id) == (
        NotificationAction.UNSUBSCRIBE_SUCCESS, buyer.account_id, seen[-1].order_id)
    assert seen[-1].kind is EventKind.CANCEL


def test_an_acknowledgement_after_the_automatic_success_is_already_decided(
        az: Az, azure: AzureMarketplace) -> None:
    buyer = buyer_of(az, azure, "seats", quantity=2)
    seen: list[Any] = []
    publisher(az, azure, seen, answer=False)
    az.ctl("POST", f"/control/subscriptions/{buyer.account_id}/quantity", json={"quantity": 5})
    az.clock.advance(timedelta(seconds=10))
    az.tick()
    with pytest.raises(Refused) as late:
        azure.acknowledge(buyer.account_id, seen[0].order_id, success=False)
    assert late.value.code == "already_decided"


def forged(az: Az, claims: dict[str, Any], *, key: rsa.RSAPrivateKey | None = None,
           header: dict[str, Any] | None = None) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()
    head = header or {"alg": "RS256", "kid": az.sandbox.issuer.kid, "typ": "JWT"}
    signing_input = f"{part(head)}.{part(claims)}"
    signer = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signature = signer.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


def test_forged_stale_or_misaddressed_webhook_calls_are_refused(
        az: Az, azure: AzureMarketplace) -> None:
    buyer = buyer_of(az, azure)
    az.ctl("POST", f"/control/subscriptions/{buyer.account_id}/renew")
    headers, body = az.receiver.calls[-1]
    now = az.clock.now()
    assert azure.verify_webhook("POST", headers, body, now).kind is EventKind.RENEW
    genuine = headers["authorization"].removeprefix("Bearer ")
    claims = json.loads(base64.urlsafe_b64decode(genuine.split(".")[1] + "=="))

    def refused(token: str | None, *, payload: bytes = body, at: Any = now,
                method: str = "POST") -> str:
        sent = {k: v for k, v in headers.items() if k != "authorization"}
        if token is not None:
            sent["authorization"] = f"Bearer {token}"
        with pytest.raises(NotificationRejected) as caught:
            azure.verify_webhook(method, sent, payload, at)
        return caught.value.code

    assert refused(None) == "unauthenticated"
    assert refused(forged(az, claims)) == "bad_signature"  # right kid, another key
    unsigned = forged(az, claims, header={"alg": "none", "kid": az.sandbox.issuer.kid})
    assert refused(unsigned) == "bad_signature"
    assert refused(genuine, at=now + 2 * HOUR) == "stale"
    assert refused(genuine, method="GET") == "malformed"
    assert refused(genuine, payload=b"[]") == "malformed"
    # The emulator's own key, other claims: each is checked.
    key = az.sandbox.issuer._ready()
    assert refused(forged(az, claims | {"aud": "someone-else"}, key=key)) == "wrong_audience"
    assert refused(forged(az, claims | {"iss": "https://evil.example/t/v2.0"},
                          key=key)) == "wrong_issuer"
    assert refused(forged(az, claims | {"azp": "x", "appid": "x"}, key=key)) == "wrong_caller"
    other_offer = json.dumps(json.loads(body) | {"offerId": "other"}).encode()
    assert refused(genuine, payload=other_offer) == "wrong_offer"
    unknown = json.dumps(json.loads(body) | {"action": "Transfer"}).encode()
    assert refused(genuine, payload=unknown) == "unknown_action"
    # Another app's adapter: the genuine token is not addressed to it.
    stranger = make(az, client_id="11111111-1111-1111-1111-111111111111")
    with pytest.raises(NotificationRejected) as misaddressed:
        stranger.verify_webhook("POST", headers, body, now)
    assert misaddressed.value.code == "wrong_audience"
    stranger.close()
    assert webhook_response(NotificationRejected("bad_signature", "x"))[0] == 401
    assert webhook_response(Transient("keys_unavailable", "x"))[0] == 503
