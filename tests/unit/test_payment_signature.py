"""The notify signature: HMAC-SHA256 over `timestamp.body`, constant-time, 300 s fresh."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest

from accrual.billing.payments import gateway
from accrual.billing.payments.gateway import NotifyRefused, PaymentRequest, sign, verify
from accrual.billing.payments.sandbox import SandboxGateway
from accrual.clock import ManualClock

SECRET = "whsec_test"
NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
BODY = b'{"order_id":"ro_1","transaction_id":"t1","amount":"5.00","currency":"CNY","status":"paid"}'


def refusal(header: str | None, body: bytes = BODY, now: datetime = NOW,
            secret: str = SECRET) -> str:
    with pytest.raises(NotifyRefused) as refused:
        verify(secret, header, body, now)
    return refused.value.code


def test_the_header_is_the_hmac_of_timestamp_dot_body() -> None:
    header = sign(SECRET, BODY, NOW)
    stamp = int(NOW.timestamp())
    expected = hmac.new(SECRET.encode(), f"{stamp}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={stamp},v1={expected}"
    assert verify(SECRET, header, BODY, NOW) == stamp


def test_a_changed_body_or_another_secret_is_an_invalid_signature() -> None:
    header = sign(SECRET, BODY, NOW)
    assert refusal(header, BODY.replace(b"5.00", b"500.00")) == "invalid_signature"
    assert refusal(header, secret="whsec_other") == "invalid_signature"
    assert refusal(sign("whsec_other", BODY, NOW)) == "invalid_signature"
    # The timestamp is signed too: moving it breaks the signature.
    stamp = int(NOW.timestamp())
    assert refusal(header.replace(f"t={stamp}", f"t={stamp + 1}")) == "invalid_signature"


@pytest.mark.parametrize("header", [
    None, "", "v1=abc", "t=123", "t=abc,v1=00", "t=-5,v1=00", "garbage", "t=1,v1=" + "0" * 64,
    "t=" + "9" * 13 + ",v1=00", "x" * 2000])
def test_a_missing_or_malformed_header_is_an_invalid_signature(header: str | None) -> None:
    assert refusal(header) == "invalid_signature"


def test_older_than_300_seconds_is_stale_and_300_is_not() -> None:
    header = sign(SECRET, BODY, NOW)
    assert verify(SECRET, header, BODY, NOW + timedelta(seconds=300))
    assert refusal(header, now=NOW + timedelta(seconds=301)) == "stale_notify"
    # Signed far ahead of our clock: refused as well, so it cannot outlive the window.
    assert refusal(header, now=NOW - timedelta(seconds=301)) == "stale_notify"
    # A bad signature is reported as such whatever its age.
    assert refusal(sign("whsec_other", BODY, NOW), now=NOW + timedelta(days=1)) == "invalid_signature"


def test_one_matching_signature_among_several_is_enough() -> None:
    """A secret being rotated: the sender signs with the old and the new one."""
    stamp = int(NOW.timestamp())
    old = gateway.signature("whsec_old", stamp, BODY)
    new = gateway.signature(SECRET, stamp, BODY)
    assert verify(SECRET, f"t={stamp},v1={old},v1={new}", BODY, NOW) == stamp


def test_digests_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(gateway.hmac, "compare_digest", spy)
    verify(SECRET, sign(SECRET, BODY, NOW), BODY, NOW)
    assert len(calls) == 1


def test_the_sandbox_reads_only_signed_well_formed_notifies() -> None:
    clock = ManualClock(NOW)
    sandbox = SandboxGateway(SECRET, clock)
    notice = sandbox.verify_notify({"accrual-signature": sign(SECRET, BODY, NOW)}, BODY)
    assert (notice.order_id, notice.transaction_id, notice.amount) == ("ro_1", "t1", "5.00")
    with pytest.raises(NotifyRefused) as refused:
        sandbox.verify_notify({"Content-Type": "application/json"}, BODY)
    assert refused.value.code == "invalid_signature"
    for body in (b"not json", b"[]", json.dumps({"order_id": "ro_1"}).encode(),
                 BODY.replace(b'"5.00"', b"5.00")):
        with pytest.raises(NotifyRefused) as refused:
            sandbox.verify_notify({"Accrual-Signature": sign(SECRET, body, NOW)}, body)
        assert refused.value.code == "malformed_notify", body


def test_the_sandbox_pay_link_cannot_be_altered() -> None:
    sandbox = SandboxGateway(SECRET, ManualClock(NOW))
    url = sandbox.create_payment(PaymentRequest("ro_1", "5.00", "CNY", "Cash top-up", None))
    token = url.rsplit("/", 1)[1]
    assert sandbox._payment(token) == {"order_id": "ro_1", "amount": "5.00", "currency": "CNY",
                                       "description": "Cash top-up", "return_url": None}
    body, mac = token.split(".")
    forged = SandboxGateway("whsec_other", ManualClock(NOW)).create_payment(
        PaymentRequest("ro_1", "500.00", "CNY", "Cash top-up", None)).rsplit("/", 1)[1]
    assert sandbox._payment(forged.split(".")[0] + "." + mac) is None
    assert sandbox._payment(forged) is None
    assert sandbox._payment(body) is None
