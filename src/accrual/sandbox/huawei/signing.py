"""KooGallery's three signatures, as the marketplace side computes and checks them
(marketplaces.md §3.2, §3.4). Only ``hmac``/``hashlib``: Huawei's Python SDK
(huaweicloudsdkcore) signs its API-gateway calls (``SDK-HMAC-SHA256`` in an
``Authorization`` header); none of these three is one of those.

* V2 activity request (marketplace → ISV), in the URL query::

      canonical = accessKey + nonce + timestamp + hex(HMAC_SHA256(key, body))
      signature = hex(HMAC_SHA256(key, canonical))

  The docs never name the HMAC key: ``hmac_key="access_key"`` (default, the only
  secret both sides surely share) or ``"secret_key"`` (the access key stays in the
  canonical text, a separate secret keys both HMACs). The hex case is a choice too;
  a receiver compares case-insensitively.
* ``Body-Sign`` on the ISV's answer: ``sign_type="HMAC-SHA256",
  signature="<base64(HMAC_SHA256(accessKey, body))>"``.
* Usage push (ISV → marketplace), headers ``signature``, ``ts`` (ms), ``nonce``::

      signature = base64(HMAC_SHA256(key, "ts={ts}&nonce={nonce}&body={body}"))

  over the body exactly as sent, whose keys must be in natural sort order.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Literal

HmacKey = Literal["access_key", "secret_key"]
HexCase = Literal["lower", "upper"]
BODY_SIGN_TYPE = "HMAC-SHA256"
_BODY_SIGN = re.compile(r'^sign_type="([^"]*)",\s*signature="([^"]*)"$')


def _hmac(key: str, data: bytes) -> bytes:
    return hmac.new(key.encode(), data, hashlib.sha256).digest()


def activity_signature(access_key: str, secret_key: str | None, nonce: str, timestamp: str,
                       body: bytes, *, hmac_key: HmacKey = "access_key",
                       hex_case: HexCase = "lower") -> str:
    key = access_key if hmac_key == "access_key" else (secret_key or "")
    canonical = access_key + nonce + timestamp + _hmac(key, body).hex().lower()
    signature = _hmac(key, canonical.encode()).hex()
    return signature.upper() if hex_case == "upper" else signature


def body_sign(access_key: str, body: bytes) -> str:
    signature = base64.b64encode(_hmac(access_key, body)).decode()
    return f'sign_type="{BODY_SIGN_TYPE}", signature="{signature}"'


def body_sign_problem(access_key: str, header: str | None, body: bytes) -> str | None:
    """Why an ISV answer's ``Body-Sign`` fails, in the marketplace's words; None if good."""
    if not header:
        return "bodySign is empty"
    matched = _BODY_SIGN.match(header.strip())
    if matched is None:
        return "bodySign is malformed"
    if matched.group(1) != BODY_SIGN_TYPE:
        return "sign_type is not equals HMAC-SHA256"
    expected = base64.b64encode(_hmac(access_key, body)).decode()
    if not hmac.compare_digest(expected, matched.group(2)):
        return "bodySign does not match the body"
    return None


def usage_signature(key: str, ts: str, nonce: str, body: bytes) -> str:
    text = b"ts=" + ts.encode() + b"&nonce=" + nonce.encode() + b"&body=" + body
    return base64.b64encode(_hmac(key, text)).decode()
