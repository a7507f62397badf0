"""The three signatures the Alibaba Cloud Marketplace emulator speaks (marketplaces.md §2).

* :func:`spi_token`: the MD5 ``token`` the marketplace puts on every SPI call to the
  ISV: every parameter but ``token``, sorted by name, ``k=v`` joined with ``&``, then
  ``&key=<ISV key>``, lowercase hex (§2.2).
* :func:`rpc_signature`: the OpenAPI RPC signature v1 (``SignatureMethod=HMAC-SHA1``)
  over **all** request parameters, query and form body alike; what the SDKs send with
  ``Config(signature_algorithm="v2")``.
* :func:`acs3_signature`: the ACS3-HMAC-SHA256 ``Authorization`` header, the SDKs'
  default (``alibabacloud_tea_openapi`` ``do_request``): a canonical request of method,
  path, sorted query, the signed headers and the body's SHA-256.

Percent-encoding is RFC 3986 (space ``%20``, ``*`` ``%2A``, ``~`` kept), as
``urllib.parse.quote(value, safe="~")`` gives.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import quote

ACS3 = "ACS3-HMAC-SHA256"


def percent(value: str) -> str:
    return quote(value, safe="~", encoding="utf-8")


def spi_token(params: Mapping[str, str], key: str) -> str:
    joined = "&".join(f"{name}={params[name]}" for name in sorted(params) if name != "token")
    return hashlib.md5(f"{joined}&key={key}".encode()).hexdigest()  # Alibaba's scheme


def rpc_string_to_sign(method: str, params: Mapping[str, str]) -> str:
    canonical = "&".join(f"{percent(name)}={percent(params[name])}" for name in sorted(params)
                         if name != "Signature")
    return f"{method.upper()}&{percent('/')}&{percent(canonical)}"


def rpc_signature(method: str, params: Mapping[str, str], secret: str) -> str:
    digest = hmac.new(f"{secret}&".encode(), rpc_string_to_sign(method, params).encode(),
                      hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def acs3_canonical_request(method: str, path: str, query: Mapping[str, str],
                           headers: Mapping[str, str], signed: Iterable[str],
                           payload_hash: str) -> str:
    """``headers`` with lower-case names; ``signed`` the SignedHeaders list."""
    names = sorted(signed)
    canonical_query = "&".join(f"{percent(name)}={percent(query[name])}"
                               for name in sorted(query))
    canonical_headers = "".join(f"{name}:{headers[name].strip()}\n" for name in names)
    return "\n".join((method.upper(), path or "/", canonical_query, canonical_headers,
                      ";".join(names), payload_hash))


def acs3_signature(secret: str, canonical_request: str) -> str:
    to_sign = f"{ACS3}\n{hashlib.sha256(canonical_request.encode()).hexdigest()}"
    return hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
