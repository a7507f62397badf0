"""SNS subscription confirmation, as AWS sends it to a newly subscribed HTTPS endpoint:
the adapter proves the message is SNS's (certificate, signature over the confirmation's
own fields, topic, age) and that SubscribeURL is ConfirmSubscription for that very topic
and token on the trusted SNS host, then visits it once. Anything else visits nothing.

A small local SNS plays AWS here: it serves the signing certificate and answers
ConfirmSubscription, recording each visit."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from fastapi import FastAPI, Request, Response

from accrual.billing.domain.marketplace import Acknowledged, NotificationRejected
from accrual.billing.marketplaces.aws import AwsListing, AwsMarketplace
from accrual.clock import ManualClock
from tests.sandbox_server import serve

NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
PRODUCT = "accrual-saas"
TOPIC = f"arn:aws:sns:us-east-1:287250355862:aws-mp-subscription-notification-{PRODUCT}"
FIELDS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")

_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.local")])
_CERT = (x509.CertificateBuilder().subject_name(_NAME).issuer_name(_NAME)
         .public_key(_KEY.public_key()).serial_number(1)
         .not_valid_before(NOW - timedelta(days=1)).not_valid_after(NOW + timedelta(days=30))
         .sign(_KEY, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))


class LocalSns:
    def __init__(self) -> None:
        self.visits: list[dict[str, str]] = []
        self.status = 200
        self.app = FastAPI()

        @self.app.get("/sns/cert.pem")
        def cert() -> Response:
            return Response(_CERT, media_type="application/x-pem-file")

        @self.app.get("/sns/")
        def confirm(request: Request) -> Response:
            self.visits.append(dict(request.query_params))
            return Response("<ConfirmSubscriptionResponse/>", status_code=self.status)


@pytest.fixture
def sns() -> Iterator[tuple[LocalSns, str]]:
    local = LocalSns()
    with serve(local.app) as base:
        yield local, base


@pytest.fixture
def adapter(sns: tuple[LocalSns, str]) -> Iterator[AwsMarketplace]:
    _, base = sns
    market = AwsMarketplace(AwsListing(product_code=PRODUCT, endpoint_url=base,
                                       access_key_id="AKIASANDBOX", secret_access_key="x",
                                       trusted_cert_prefixes=(base + "/sns/",)),
                            ManualClock(NOW))
    yield market
    market.close()


def confirmation(base: str, *, kind: str = "SubscriptionConfirmation", topic: str = TOPIC,
                 token: str = "tok-123", url: str | None = None, sent_at: datetime = NOW,
                 tamper: dict[str, str] | None = None) -> bytes:
    envelope: dict[str, Any] = {
        "Type": kind, "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b", "Token": token,
        "TopicArn": topic, "Message": f"You have chosen to subscribe to the topic {topic}.",
        "SubscribeURL": url or f"{base}/sns/?" + urlencode(
            {"Action": "ConfirmSubscription", "TopicArn": topic, "Token": token}),
        "Timestamp": sent_at.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "SignatureVersion": "2",
        "SigningCertURL": f"{base}/sns/cert.pem"}
    text = "".join(f"{name}\n{envelope[name]}\n" for name in FIELDS).encode()
    envelope["Signature"] = base64.b64encode(
        _KEY.sign(text, padding.PKCS1v15(), hashes.SHA256())).decode()
    envelope.update(tamper or {})
    return json.dumps(envelope).encode()


HEADERS = {"x-amz-sns-message-type": "SubscriptionConfirmation"}


def test_a_proven_confirmation_visits_subscribe_url_once(
        sns: tuple[LocalSns, str], adapter: AwsMarketplace) -> None:
    local, base = sns
    with pytest.raises(Acknowledged) as done:
        adapter.verify_notification(HEADERS, confirmation(base), NOW)
    assert done.value.code == "subscription_confirmed"
    assert local.visits == [{"Action": "ConfirmSubscription", "TopicArn": TOPIC,
                             "Token": "tok-123"}]


@pytest.mark.parametrize(("case", "code"), [
    ({"tamper": {"Token": "other"}}, "bad_signature"),  # the token is signed
    ({"url": "http://169.254.169.254/latest/meta-data/?Action=ConfirmSubscription"},
     "untrusted_subscribe_url"),
    ({"topic": "arn:aws:sns:us-east-1:111122223333:someone-elses-topic"}, "unknown_topic"),
    ({"sent_at": NOW - timedelta(hours=2)}, "stale"),
])
def test_forged_or_stale_confirmations_visit_nothing(
        sns: tuple[LocalSns, str], adapter: AwsMarketplace, case: dict[str, Any],
        code: str) -> None:
    local, base = sns
    with pytest.raises(NotificationRejected) as refused:
        adapter.verify_notification(HEADERS, confirmation(base, **case), NOW)
    assert refused.value.code == code
    assert local.visits == []


def test_a_subscribe_url_for_another_topic_or_token_is_not_visited(
        sns: tuple[LocalSns, str], adapter: AwsMarketplace) -> None:
    local, base = sns
    other = f"{base}/sns/?" + urlencode({"Action": "ConfirmSubscription", "TopicArn": TOPIC,
                                         "Token": "not-the-signed-one"})
    with pytest.raises(NotificationRejected) as refused:
        adapter.verify_notification(HEADERS, confirmation(base, url=other), NOW)
    assert refused.value.code == "untrusted_subscribe_url" and local.visits == []
    extra = f"{base}/sns/?" + urlencode({"Action": "Unsubscribe", "TopicArn": TOPIC,
                                         "Token": "tok-123"})
    with pytest.raises(NotificationRejected):
        adapter.verify_notification(HEADERS, confirmation(base, url=extra), NOW)
    assert local.visits == []


def test_an_unanswered_confirmation_is_transient_and_an_unsubscribe_is_acknowledged(
        sns: tuple[LocalSns, str], adapter: AwsMarketplace) -> None:
    from accrual.billing.domain.marketplace import Transient
    local, base = sns
    local.status = 500
    with pytest.raises(Transient):
        adapter.verify_notification(HEADERS, confirmation(base), NOW)
    with pytest.raises(Acknowledged) as gone:
        adapter.verify_notification({}, confirmation(base, kind="UnsubscribeConfirmation"), NOW)
    assert gone.value.code == "unsubscribe_confirmed"
    assert len(local.visits) == 1  # the failed confirmation only; an unsubscribe visits nothing
