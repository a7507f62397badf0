"""A local Microsoft Entra ID, as much of it as the marketplace needs.

* The client-credentials token endpoints, v1 ``POST /{tenant}/oauth2/token`` (form
  ``grant_type=client_credentials, client_id, client_secret, resource``) and v2
  ``POST /{tenant}/oauth2/v2.0/token`` (``scope=<resource>/.default``). The answer is
  ``{token_type: "Bearer", expires_in, ext_expires_in, access_token}``; an error is
  ``{error, error_description, error_codes}`` with Entra's AADSTS codes.
* Access tokens are RS256 JWTs: ``aud`` the resource, ``iss``
  ``<issuer base>/{tenant}/v2.0``, ``tid``, ``appid``/``azp`` the client, ``iat``,
  ``nbf``, ``exp``.
* The webhook's bearer token is minted here too, the way Entra issues the marketplace's
  token for the publisher's app: ``aud`` the offer's app id, ``tid`` its tenant,
  ``appid``/``azp`` the marketplace (:data:`MARKETPLACE_RESOURCE`).
* ``GET /{tenant}/v2.0/.well-known/openid-configuration`` and
  ``GET /{tenant}/discovery/v2.0/keys`` publish the signing key (JWKS), so a publisher
  verifies exactly as against ``login.microsoftonline.com``.

The key is the emulator's own RSA key, made on first use.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

MAX_TOKEN_CHARS = 16 * 1024


class TokenInvalid(Exception):
    """A bearer token that is not one of ours, or not valid now."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Issuer:
    """The emulator's signing key and the tokens it mints and checks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: rsa.RSAPrivateKey | None = None
        self.kid = uuid.uuid4().hex

    def _ready(self) -> rsa.RSAPrivateKey:
        # Made on first use: an application that never issues a token pays nothing.
        with self._lock:
            if self._key is None:
                self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return self._key

    def mint(self, claims: dict[str, Any]) -> str:
        header = {"typ": "JWT", "alg": "RS256", "kid": self.kid}
        signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
                         + b64url(json.dumps(claims, separators=(",", ":")).encode()))
        signature = self._ready().sign(signing_input.encode(), padding.PKCS1v15(),
                                       hashes.SHA256())
        return signing_input + "." + b64url(signature)

    def check(self, token: str, now: datetime) -> dict[str, Any]:
        """The claims of a token this issuer minted that is valid at ``now``."""
        if len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
            raise TokenInvalid("not a JWT")
        head, body, signature = token.split(".")
        try:
            header = json.loads(b64url_decode(head))
            claims = json.loads(b64url_decode(body))
            raw_signature = b64url_decode(signature)
        except ValueError:
            raise TokenInvalid("not a JWT") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise TokenInvalid("not a JWT")
        if header.get("alg") != "RS256" or header.get("kid") != self.kid:
            raise TokenInvalid("not signed by this issuer")
        try:
            self._ready().public_key().verify(raw_signature, f"{head}.{body}".encode(),
                                              padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise TokenInvalid("the signature does not match") from None
        stamp = now.timestamp()
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= stamp:
            raise TokenInvalid("the token has expired")
        if isinstance(claims.get("nbf"), int) and claims["nbf"] > stamp:
            raise TokenInvalid("the token is not valid yet")
        return claims

    def jwks(self) -> dict[str, Any]:
        numbers = self._ready().public_key().public_numbers()

        def encode(value: int) -> str:
            return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))

        return {"keys": [{"kty": "RSA", "use": "sig", "kid": self.kid, "alg": "RS256",
                          "n": encode(numbers.n), "e": encode(numbers.e)}]}


def openid_configuration(login_base: str, tenant: str) -> dict[str, Any]:
    """The tenant's v2.0 discovery document (the fields a token verifier reads)."""
    return {"issuer": f"{login_base}/{tenant}/v2.0",
            "token_endpoint": f"{login_base}/{tenant}/oauth2/v2.0/token",
            "jwks_uri": f"{login_base}/{tenant}/discovery/v2.0/keys",
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
            "response_types_supported": ["token"], "tenant_region_scope": "NA"}


def token_error(error: str, code: int, description: str) -> dict[str, Any]:
    """Entra's error body, with its AADSTS code."""
    return {"error": error, "error_description": f"AADSTS{code}: {description}",
            "error_codes": [code], "trace_id": str(uuid.uuid4()),
            "correlation_id": str(uuid.uuid4())}
