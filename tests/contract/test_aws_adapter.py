"""The AWS adapter against the emulator over HTTP: buyers, entitlements, each report
status, the whole-call failures, and notification checks (genuine and forged)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

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
from accrual.billing.marketplaces.aws import AwsListing, AwsMarketplace
from accrual.sandbox.aws import sns
from tests.contract.conftest import DIMENSION, PRODUCT, T0, Aws

HOUR = timedelta(hours=1)


_opened: list[AwsMarketplace] = []


def adapter(aws: Aws, **overrides: Any) -> AwsMarketplace:
    listing = AwsListing(**{"product_code": PRODUCT, "endpoint_url": aws.endpoint,
                            "region": "us-west-2", "access_key_id": "AKIASANDBOX",
                            "secret_access_key": "sandbox",
                            "trusted_cert_prefixes": (aws.endpoint + "/sns/",), **overrides})
    _opened.append(AwsMarketplace(listing, aws.clock))
    return _opened[-1]


@pytest.fixture(autouse=True)
def _close_adapters() -> Iterator[None]:
    yield
    while _opened:
        _opened.pop().close()


@pytest.fixture
def market(aws: Aws) -> AwsMarketplace:
    aws.product(notification_url=aws.receiver_url + "/sns")
    return adapter(aws)


def buyer_of(market: AwsMarketplace, aws: Aws, **options: Any) -> Buyer:
    return market.resolve_buyer(aws.subscribe(**options)["registration_token"])


def usage(buyer: Buyer, key: str, quantity: int = 5, at: Any = None,
          dimension: str = DIMENSION) -> UsageReport:
    return UsageReport(key=key, buyer=buyer, dimension=dimension,
                       period_start=at or T0.replace(minute=0), quantity=quantity)


def test_resolve_names_account_product_and_license(aws: Aws, market: AwsMarketplace) -> None:
    subscribed = aws.subscribe()
    buyer = market.resolve_buyer(subscribed["registration_token"])
    assert buyer == Buyer(vendor="aws", account_id=subscribed["customer_aws_account_id"],
                          product_code=PRODUCT, customer_id=None,
                          license_ref=subscribed["license_arn"])
    with pytest.raises(TokenRejected) as again:
        market.resolve_buyer(subscribed["registration_token"])
    assert again.value.code == "expired_token"
    with pytest.raises(TokenRejected) as unknown:
        market.resolve_buyer("never-issued")
    assert unknown.value.code == "invalid_token"
    aws.ctl("POST", "/control/faults", json={"operation": "ResolveCustomer", "kind": "throttling"})
    with pytest.raises(Transient) as throttled:
        market.resolve_buyer(aws.subscribe()["registration_token"])
    assert throttled.value.throttled


def test_a_legacy_listing_meters_by_customer_identifier(aws: Aws) -> None:
    aws.product(legacy=True)
    market = adapter(aws, legacy_identifiers=True)
    subscribed = aws.subscribe()
    buyer = market.resolve_buyer(subscribed["registration_token"])
    assert buyer.customer_id == subscribed["customer_identifier"]
    [result] = market.report([usage(buyer, "c1")])
    assert result.status == ReportStatus.ACCEPTED
    assert market.entitlement(buyer).active


def test_entitlement_pages_to_the_buyers_current_subscription(aws: Aws,
                                                              market: AwsMarketplace) -> None:
    expires = T0 + 30 * 24 * HOUR
    buyer = buyer_of(market, aws, expires_at=expires.isoformat())
    aws.ctl("POST", "/control/faults", json={"operation": "GetEntitlements", "kind": "empty_page"})
    entitlement = market.entitlement(buyer)
    assert entitlement.active and entitlement.expires_at == expires
    assert entitlement.dimensions == ("seats", DIMENSION)
    by_account = Buyer("aws", buyer.account_id, PRODUCT)  # no license known
    assert market.entitlement(by_account).active
    [sub] = aws.ctl("GET", "/control/subscriptions")["subscriptions"]
    aws.ctl("POST", f"/control/subscriptions/{sub['subscription_id']}/unsubscribe")
    assert not market.entitlement(buyer).active


def test_report_maps_each_status_back_to_its_key(aws: Aws, market: AwsMarketplace) -> None:
    ada, bob = buyer_of(market, aws), buyer_of(market, aws)
    stranger = Buyer("aws", "999999999999", PRODUCT)
    first = market.report([usage(ada, "a1"), usage(bob, "b1", quantity=0)])
    assert [r.status for r in first] == [ReportStatus.ACCEPTED] * 2
    assert all(r.record_id for r in first)
    aws.ctl("POST", "/control/faults", json={"operation": "BatchMeterUsage",
                                             "kind": "unprocessed", "records": 1})
    # Out of order against the first call: results still follow the reports.
    second = market.report([usage(bob, "b1", quantity=0), usage(stranger, "s1"),
                            usage(ada, "a1-changed", quantity=6), usage(ada, "a2", dimension="seats")])
    assert [(r.key, r.status) for r in second] == [
        ("b1", ReportStatus.ACCEPTED), ("s1", ReportStatus.REFUSED),
        ("a1-changed", ReportStatus.DUPLICATE), ("a2", ReportStatus.UNPROCESSED)]
    assert second[0].record_id == first[1].record_id
    assert second[1].reason == "CustomerNotSubscribed"
    assert len(aws.records()["records"]) == 2


def test_whole_call_failures_are_transient_or_refused(aws: Aws, market: AwsMarketplace) -> None:
    buyer = buyer_of(market, aws)
    for kind, throttled in (("throttling", True), ("internal_error", False)):
        aws.ctl("POST", "/control/faults", json={"operation": "BatchMeterUsage", "kind": kind})
        with pytest.raises(Transient) as caught:
            market.report([usage(buyer, "k")])
        assert caught.value.throttled is throttled
    by_account = Buyer("aws", buyer.account_id, PRODUCT)
    with pytest.raises(Refused) as late:
        market.report([usage(by_account, "k", at=T0 - 7 * HOUR)])
    assert late.value.code == "timestamp_out_of_bounds"
    with pytest.raises(Refused) as dimension:
        market.report([usage(buyer, "k", dimension="gigabytes")])
    assert dimension.value.code == "invalid_usage_dimension"
    other = Buyer("aws", buyer.account_id, PRODUCT, license_ref=buyer.license_ref[:-4] + "0000"
                  if buyer.license_ref else None)
    with pytest.raises(Refused) as license_:
        market.report([usage(other, "k")])
    assert license_.value.code == "invalid_license"
    wrong_product = adapter(aws, product_code="prod-nope")
    with pytest.raises(Refused) as product:
        wrong_product.report([usage(Buyer("aws", buyer.account_id, "prod-nope"), "k")])
    assert product.value.code == "invalid_product_code"


def test_an_unreachable_endpoint_is_transient(aws: Aws) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    market = adapter(aws, endpoint_url=closed)
    buyer = Buyer("aws", "123456789012", PRODUCT)
    for call in (lambda: market.resolve_buyer("t"), lambda: market.entitlement(buyer),
                 lambda: market.report([usage(buyer, "k")])):
        with pytest.raises(Transient) as caught:
            call()
        assert caught.value.code == "network"


# --- notifications ---------------------------------------------------------------


def delivered(aws: Aws, index: int = -1) -> tuple[dict[str, str], bytes]:
    return aws.receiver.notifications[index]


def rejected(market: AwsMarketplace, headers: dict[str, str], body: bytes | str,
             now: Any = T0) -> str:
    with pytest.raises(NotificationRejected) as caught:
        market.verify_notification(headers, body.encode() if isinstance(body, str) else body, now)
    return caught.value.code


def test_a_genuine_notification_is_accepted(aws: Aws, market: AwsMarketplace) -> None:
    subscribed = aws.subscribe()
    headers, body = delivered(aws)
    notification = market.verify_notification(headers, body, T0 + timedelta(minutes=10))
    assert notification.action == NotificationAction.SUBSCRIBE_SUCCESS
    assert notification.customer == subscribed["customer_identifier"]
    assert notification.account_id == subscribed["customer_aws_account_id"]
    assert (notification.vendor, notification.product_code, notification.sent_at) == (
        "aws", PRODUCT, T0)
    assert notification.message_id == json.loads(body)["MessageId"]
    # A replay carries the same message id (the center drops it by that).
    aws.ctl("POST", "/control/notifications/1/replay")
    assert market.verify_notification(*delivered(aws), T0).message_id == notification.message_id
    # Message delivered as an object, as SQS raw delivery does.
    envelope = json.loads(body)
    envelope["Message"] = json.loads(envelope["Message"])
    assert market.verify_notification({}, json.dumps(envelope).encode(), T0).action == \
        NotificationAction.SUBSCRIBE_SUCCESS
    aws.ctl("PUT", "/control/config", json={"sns_signature_version": "1"})
    [sub] = aws.ctl("GET", "/control/subscriptions")["subscriptions"]
    aws.ctl("POST", f"/control/subscriptions/{sub['subscription_id']}/unsubscribe")
    assert market.verify_notification(*delivered(aws), T0).action == \
        NotificationAction.UNSUBSCRIBE_PENDING


def test_forged_tampered_untrusted_stale_or_foreign_notifications_are_rejected(
        aws: Aws, market: AwsMarketplace) -> None:
    aws.subscribe()
    headers, body = delivered(aws)
    envelope = json.loads(body)

    def variant(**changes: Any) -> str:
        return json.dumps({**envelope, **changes})

    signature = envelope["Signature"]
    forged = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    assert rejected(market, headers, variant(Signature=forged)) == "bad_signature"
    tampered = envelope["Message"].replace("subscribe-success", "unsubscribe-success")
    assert rejected(market, headers, variant(Message=tampered)) == "bad_signature"
    assert rejected(market, headers, variant(
        SigningCertURL="http://127.0.0.1:9/evil/cert.pem")) == "untrusted_certificate"
    real = adapter(aws, trusted_cert_prefixes=())  # trusts only https://sns.us-west-2.amazonaws.com/
    assert rejected(real, headers, body) == "untrusted_certificate"
    assert rejected(market, headers, body, now=T0 + HOUR + timedelta(seconds=1)) == "stale"
    assert rejected(market, headers, body, now=T0 - HOUR) == "stale"
    other_topic = envelope["TopicArn"].replace(PRODUCT, "prod-other")
    assert rejected(market, headers, variant(TopicArn=other_topic)) == "unknown_topic"
    assert rejected(market, headers, b"not json") == "malformed"
    assert rejected(market, headers, variant(Type="SubscriptionConfirmation")) == "malformed"
    # Correctly signed, but an action AWS never sends.
    message = json.loads(envelope["Message"])
    odd = sns.make_envelope(aws.sandbox.signer, topic_arn=envelope["TopicArn"],
                            message={**message, "action": "subscribe-maybe"}, sent_at=T0,
                            cert_url=envelope["SigningCertURL"], unsubscribe_url="x", version="2")
    assert rejected(market, {}, json.dumps(odd)) == "unknown_action"
