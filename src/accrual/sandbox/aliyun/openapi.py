"""Alibaba Cloud's OpenAPI gateway as the emulator serves it: one RPC endpoint (the
prefix's ``/``, POST or GET) that authenticates a call, then runs its action.

A call is authenticated by either of the two signatures the official SDKs make
(:mod:`accrual.sandbox.aliyun.signing`):

* RPC v1, ``SignatureMethod=HMAC-SHA1`` over every query and form parameter
  (``Action``, ``Version``, ``AccessKeyId``, ``SignatureNonce``, ``Timestamp``, ...);
* ACS3-HMAC-SHA256 in ``Authorization``, with ``x-acs-action``, ``x-acs-version``,
  ``x-acs-date``, ``x-acs-signature-nonce`` and ``x-acs-content-sha256`` signed; the
  body's hash is checked against the body, and every ``x-acs-*`` header, ``host`` and
  ``content-type`` present must be signed.

Either way the access key must be the profile's, the timestamp within the tolerance
(15 minutes) of the emulator's clock, and the nonce not seen within its TTL.

Errors are Alibaba's envelope ``{"RequestId", "HostId", "Code", "Message",
"Recommend"}`` with the gateway's codes: ``IncompleteSignature``,
``InvalidAccessKeyId.NotFound`` (404), ``SignatureDoesNotMatch``,
``InvalidTimeStamp.Format``, ``InvalidTimeStamp.Expired``, ``SignatureNonceUsed``,
``MissingParameter``, ``InvalidParameter``, ``InvalidAction.NotFound`` (404),
``InvalidVersion``, ``Throttling.User``, ``InternalError`` (500),
``ServiceUnavailable`` (503).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from accrual.sandbox.aliyun import signing
from accrual.sandbox.aliyun.state import Profile, Push, SandboxState, UsageRecord

MAX_BODY_BYTES = 256 * 1024
MAX_PARAMS = 2000
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_RPC_SIGNING = ("Signature", "SignatureMethod", "SignatureVersion", "SignatureNonce",
                "Timestamp", "AccessKeyId", "Format", "Action", "Version", "SecurityToken")
_ACS3_REQUIRED = ("host", "x-acs-action", "x-acs-version", "x-acs-date",
                  "x-acs-signature-nonce", "x-acs-content-sha256")


class PopError(Exception):
    """An OpenAPI error answer."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Call:
    """An authenticated call: who, which action, and its business parameters."""

    action: str
    version: str
    access_key_id: str
    signature_method: str
    nonce: str
    params: dict[str, str]  # without the signing parameters


# (state, call) -> (status, answer body, the usage records accepted); raises PopError
Action = Callable[[SandboxState, Call], tuple[int, dict[str, Any], list[UsageRecord]]]


def handle(state: SandboxState, profile: Profile, actions: Mapping[str, Action], method: str,
           path: str, query: Sequence[tuple[str, str]], headers: Mapping[str, str],
           body: bytes) -> tuple[int, bytes]:
    """One call (``headers`` with lower-case names, ``path`` under the prefix)."""
    request_id = str(uuid.uuid4()).upper()
    with state.lock:
        push = Push(id=state.next_serial(), request_id=request_id, received_at=state.now(),
                    version=None, signature_method=None, access_key_id=None, nonce=None,
                    status=200, error_code=None, message=None)
        try:
            call = authenticate(state, method, path, query, headers, body)
            push.version, push.signature_method = call.version, call.signature_method
            push.access_key_id, push.nonce = call.access_key_id, call.nonce
            action = actions.get(call.action)
            if action is None:
                raise PopError("InvalidAction.NotFound",
                               f"Specified api {call.action} is not found.", 404)
            if call.version not in profile.versions:
                raise PopError("InvalidVersion", f"Specified parameter Version {call.version} "
                                                 "is not valid.")
            fault = state.take_fault()
            if fault is not None:
                raise {"throttling": PopError("Throttling.User", "Request was denied due to "
                                                                 "user flow control."),
                       "internal_error": PopError("InternalError", "The request processing has "
                                                                   "failed due to some unknown "
                                                                   "error.", 500),
                       "unavailable": PopError("ServiceUnavailable", "The request has failed "
                                                                     "due to a temporary failure "
                                                                     "of the server.", 503),
                       }[fault.kind]
            status, answer, records = action(state, call)
            answer = {"RequestId": request_id, **answer}
            push.status, push.records = status, records
            if not answer.get("Success", True):
                push.error_code, push.message = answer.get("Code"), answer.get("Message")
        except PopError as error:
            status = error.status
            answer = {"RequestId": request_id, "HostId": profile.host, "Code": error.code,
                      "Message": error.message,
                      "Recommend": "https://api.aliyun.com/troubleshoot?q=" + error.code}
            push.status, push.error_code, push.message = status, error.code, error.message
        state.pushes.append(push)
    return status, json.dumps(answer).encode()


def authenticate(state: SandboxState, method: str, path: str,
                 query: Sequence[tuple[str, str]], headers: Mapping[str, str],
                 body: bytes) -> Call:
    if method not in ("GET", "POST"):
        raise PopError("UnsupportedHTTPMethod", f"{method} is not supported.", 405)
    if path not in ("", "/"):
        raise PopError("InvalidAction.NotFound", f"no API at {path}", 404)
    query_params = _unique(query, "query")
    body_params: dict[str, str] = {}
    if body:
        if headers.get("content-type", "").split(";")[0].strip() != (
                "application/x-www-form-urlencoded"):
            raise PopError("InvalidParameter", "an RPC body is a URL-encoded form")
        try:
            body_params = _unique(parse_qsl(body.decode(), keep_blank_values=True,
                                            strict_parsing=True), "body")
        except (UnicodeDecodeError, ValueError):
            raise PopError("InvalidParameter", "the body is not a URL-encoded form") from None
    clash = set(query_params) & set(body_params)
    if clash:
        raise PopError("InvalidParameter", f"{sorted(clash)} given twice")
    params = {**query_params, **body_params}
    authorization = headers.get("authorization", "")
    if authorization.startswith(signing.ACS3 + " "):
        call = _acs3(state, method, path or "/", query_params, params, headers, body,
                     authorization)
    elif "Signature" in params:
        call = _rpc(state, method, params)
    else:
        raise PopError("IncompleteSignature", "The request signature does not conform to "
                                              "Aliyun standards: no signature.")
    if call.signature_method not in state.config.signatures:
        raise PopError("IncompleteSignature",
                       f"{call.signature_method} is not accepted here "
                       f"({', '.join(state.config.signatures)})")
    return call


def _rpc(state: SandboxState, method: str, params: dict[str, str]) -> Call:
    for name in ("AccessKeyId", "SignatureMethod", "SignatureVersion", "SignatureNonce",
                 "Timestamp"):
        if not params.get(name):
            raise PopError("IncompleteSignature", f"{name} is required to sign a call.")
    for name in ("Action", "Version"):
        if not params.get(name):
            raise PopError("MissingParameter", f"{name} is mandatory for this action.")
    if params["SignatureMethod"] != "HMAC-SHA1" or params["SignatureVersion"] != "1.0":
        raise PopError("IncompleteSignature", "SignatureMethod HMAC-SHA1, SignatureVersion 1.0")
    secret = _secret(state, params["AccessKeyId"])
    expected = signing.rpc_signature(method, params, secret)
    if not hmac.compare_digest(expected.encode(), params["Signature"].encode()):
        raise PopError("SignatureDoesNotMatch",
                       "Specified signature is not matched with our calculation. "
                       f"server string to sign is:{signing.rpc_string_to_sign(method, params)}")
    _fresh(state, params["AccessKeyId"], params["Timestamp"], params["SignatureNonce"])
    return Call(action=params["Action"], version=params["Version"],
                access_key_id=params["AccessKeyId"], signature_method="HMAC-SHA1",
                nonce=params["SignatureNonce"],
                params={k: v for k, v in params.items() if k not in _RPC_SIGNING})


def _acs3(state: SandboxState, method: str, path: str, query: dict[str, str],
          params: dict[str, str], headers: Mapping[str, str], body: bytes,
          authorization: str) -> Call:
    fields: dict[str, str] = {}
    for part in authorization[len(signing.ACS3) + 1:].split(","):
        name, _, value = part.strip().partition("=")
        fields[name] = value
    access_key, signed_list, signature = (fields.get("Credential"), fields.get("SignedHeaders"),
                                          fields.get("Signature"))
    if not (access_key and signed_list and signature):
        raise PopError("IncompleteSignature",
                       "Authorization needs Credential, SignedHeaders and Signature.")
    signed = signed_list.split(";")
    must = set(_ACS3_REQUIRED) | {h for h in headers if h.startswith("x-acs-")} | (
        {"content-type"} & set(headers))
    missing = sorted(must - set(signed))
    if missing or any(name not in headers for name in signed):
        raise PopError("IncompleteSignature",
                       f"headers {missing or signed} must be present and signed.")
    if not hmac.compare_digest(hashlib.sha256(body).hexdigest(),
                               headers["x-acs-content-sha256"].lower()):
        raise PopError("SignatureDoesNotMatch", "x-acs-content-sha256 is not the body's hash.")
    secret = _secret(state, access_key)
    canonical = signing.acs3_canonical_request(method, path, query, headers, signed,
                                               headers["x-acs-content-sha256"])
    if not hmac.compare_digest(signing.acs3_signature(secret, canonical).encode(),
                               signature.lower().encode()):
        raise PopError("SignatureDoesNotMatch",
                       "Specified signature is not matched with our calculation. "
                       f"server canonical request is:{canonical}")
    _fresh(state, access_key, headers["x-acs-date"], headers["x-acs-signature-nonce"])
    return Call(action=headers["x-acs-action"], version=headers["x-acs-version"],
                access_key_id=access_key, signature_method=signing.ACS3,
                nonce=headers["x-acs-signature-nonce"],
                params={k: v for k, v in params.items() if k not in _RPC_SIGNING})


def _secret(state: SandboxState, access_key_id: str) -> str:
    if not hmac.compare_digest(access_key_id.encode(), state.config.access_key_id.encode()):
        raise PopError("InvalidAccessKeyId.NotFound", "Specified access key is not found.", 404)
    return state.config.access_key_secret


def _fresh(state: SandboxState, access_key_id: str, stamp: str, nonce: str) -> None:
    try:
        at = datetime.strptime(stamp, TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise PopError("InvalidTimeStamp.Format",
                       f"Specified time stamp {stamp!r} is not yyyy-MM-ddTHH:mm:ssZ.") from None
    now = state.now()
    if abs(now - at) > state.config.timestamp_tolerance:
        raise PopError("InvalidTimeStamp.Expired", f"Specified time stamp or date value is "
                                                   f"expired: {stamp}, now {now:%Y-%m-%dT%H:%M:%SZ}.")
    if not 1 <= len(nonce) <= 128:
        raise PopError("IncompleteSignature", "SignatureNonce has 1 to 128 characters.")
    if not state.use_nonce(access_key_id, nonce, now):
        raise PopError("SignatureNonceUsed", "Specified signature nonce was used already.")


def _unique(pairs: Sequence[tuple[str, str]], where: str) -> dict[str, str]:
    if len(pairs) > MAX_PARAMS:
        raise PopError("InvalidParameter", f"more than {MAX_PARAMS} parameters")
    out: dict[str, str] = {}
    for name, value in pairs:
        if name in out:
            raise PopError("InvalidParameter", f"{name} is given twice in the {where}")
        out[name] = value
    return out
