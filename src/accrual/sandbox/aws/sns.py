"""SNS HTTP(S) delivery as AWS Marketplace's subscription topics use it.

An envelope is the JSON SNS POSTs to a subscribed endpoint: ``Type``
``Notification``, ``MessageId``, ``TopicArn``, ``Message`` (the marketplace's JSON
*as a string*), ``Timestamp``, ``SignatureVersion``, ``Signature`` and
``SigningCertURL``, plus ``UnsubscribeURL``. The signature is what AWS documents
for Notification messages: the lines ``name\\nvalue\\n`` for Message, MessageId,
Subject (only when present), Timestamp, TopicArn and Type, in that order, signed
with RSA PKCS#1 v1.5 over SHA1 (version 1) or SHA256 (version 2), base64.

The key is this emulator's own, an RSA key made on first use; its self-signed
certificate is served at ``SigningCertURL`` so a client verifies exactly as it
would against ``sns.<region>.amazonaws.com``.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

# The AWS account that owns every marketplace topic (marketplaces.md §1.5).
MARKETPLACE_ACCOUNT = "287250355862"
SUBSCRIPTION_TOPIC = "arn:aws:sns:us-east-1:287250355862:aws-mp-subscription-notification-{}"
ENTITLEMENT_TOPIC = "arn:aws:sns:us-east-1:287250355862:aws-mp-entitlement-notification-{}"
CERT_PATH = "/sns/cert.pem"
UNSUBSCRIBE_PATH = "/sns/unsubscribe"
_SIGNED_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")


def topic_for(action: str, product_code: str) -> str:
    template = ENTITLEMENT_TOPIC if action == "entitlement-updated" else SUBSCRIPTION_TOPIC
    return template.format(product_code)


def string_to_sign(envelope: dict[str, Any]) -> bytes:
    """AWS's canonical text of a Notification message."""
    return "".join(f"{name}\n{envelope[name]}\n" for name in _SIGNED_FIELDS
                   if name in envelope).encode()


def sns_timestamp(instant: datetime) -> str:
    """SNS's form: UTC, milliseconds, ``Z``."""
    utc = instant.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


class Signer:
    """This emulator's signing key and the certificate that names it."""

    def __init__(self, not_before: datetime) -> None:
        self._not_before = not_before
        self._lock = threading.Lock()
        self._key: rsa.RSAPrivateKey | None = None
        self._cert_pem: bytes | None = None

    def _ready(self) -> rsa.RSAPrivateKey:
        # Made on first use: an application that never sends a notification pays nothing.
        with self._lock:
            if self._key is None:
                key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
                name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.sandbox.accrual")])
                start = self._not_before - timedelta(days=365)
                cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                        .public_key(key.public_key()).serial_number(x509.random_serial_number())
                        .not_valid_before(start).not_valid_after(start + timedelta(days=3650))
                        .sign(key, hashes.SHA256()))
                self._cert_pem = cert.public_bytes(serialization.Encoding.PEM)
                self._key = key
            return self._key

    def cert_pem(self) -> bytes:
        self._ready()
        assert self._cert_pem is not None
        return self._cert_pem

    def sign(self, envelope: dict[str, Any], version: str) -> str:
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()  # version 1 is SHA1
        signature = self._ready().sign(string_to_sign(envelope), padding.PKCS1v15(), algorithm)
        return base64.b64encode(signature).decode()


def make_envelope(signer: Signer, *, topic_arn: str, message: dict[str, Any], sent_at: datetime,
                  cert_url: str, unsubscribe_url: str, version: str) -> dict[str, Any]:
    envelope: dict[str, Any] = {
        "Type": "Notification", "MessageId": str(uuid.uuid4()), "TopicArn": topic_arn,
        # The marketplace's payload travels as a string inside the envelope.
        "Message": json.dumps(message, separators=(",", ":")),
        "Timestamp": sns_timestamp(sent_at), "SignatureVersion": version}
    envelope["Signature"] = signer.sign(envelope, version)
    envelope["SigningCertURL"] = cert_url
    envelope["UnsubscribeURL"] = unsubscribe_url
    return envelope


def delivery_headers(envelope: dict[str, Any], subscription_arn: str) -> dict[str, str]:
    """The headers SNS sends with an HTTP delivery."""
    return {"Content-Type": "text/plain; charset=UTF-8",
            "User-Agent": "Amazon Simple Notification Service Agent",
            "x-amz-sns-message-type": envelope["Type"],
            "x-amz-sns-message-id": envelope["MessageId"],
            "x-amz-sns-topic-arn": envelope["TopicArn"],
            "x-amz-sns-subscription-arn": subscription_arn}
