"""The marketplace's calls to the ISV: SPI GETs signed with the MD5 ``token``
(marketplaces.md §2.2, §2.3), and how their answers are judged.

Every call carries ``action`` and the action's parameters; with
``SandboxConfig.extra_params`` also one parameter of a random name the ISV cannot
know, so an ISV that signs only the parameters it knows fails. Times are
``yyyy-MM-dd HH:mm:ss``, Beijing time.

Answers:

* ``createInstance``: JSON with ``instanceId`` (a string, or a number taken as one);
  ``"0"`` means "still provisioning, call again" (the instance stays OPENING until a
  tick gets a real id); ``appInfo``/``info`` are kept as given.
* ``renewInstance``, ``upgradeInstance``, ``expiredInstance``, ``releaseInstance``:
  ``{"success": true}``; the string ``"true"`` is accepted too and noted.
* ``verify``: any 2xx or 3xx (the ISV logs the user in or redirects).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from accrual.sandbox.aliyun.signing import spi_token

MAX_ANSWER_CHARS = 64 * 1024
CALL_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Reply:
    status: int
    location: str | None
    body: str


# GET url -> the ISV's reply
Getter = Callable[[str], Reply]


def http_get(url: str) -> Reply:
    response = httpx.get(url, timeout=CALL_TIMEOUT_S, follow_redirects=False)
    return Reply(response.status_code, response.headers.get("location"),
                 response.text[:MAX_ANSWER_CHARS])


def signed_params(action: str, params: dict[str, str], key: str, *,
                  extra: bool) -> dict[str, str]:
    """The call's parameters with ``action`` (and an unknowable extra one), then ``token``."""
    out = {"action": action, **params}
    if extra:
        out[f"x{secrets.token_hex(3)}"] = secrets.token_hex(4)
    out["token"] = spi_token(out, key)
    return out


def url_for(base: str, params: dict[str, str]) -> str:
    joiner = "&" if urlsplit(base).query else "?"
    return base + joiner + urlencode(params)


@dataclass(frozen=True)
class Judgement:
    """What one reply means: ``ok``, ``pending`` (createInstance "0"), or failed."""

    outcome: str  # ok | pending | failed
    answer: Any = None
    note: str | None = None  # what was wrong with the answer


def judge(action: str, reply: Reply) -> Judgement:
    if action == "verify":
        if 200 <= reply.status < 400:
            return Judgement("ok", {"status": reply.status, "location": reply.location})
        return Judgement("failed", {"status": reply.status}, f"verify answered {reply.status}")
    if not 200 <= reply.status < 300:
        return Judgement("failed", None, f"HTTP {reply.status}")
    try:
        answer = json.loads(reply.body)
    except ValueError:
        return Judgement("failed", None, "the answer is not JSON")
    if not isinstance(answer, dict):
        return Judgement("failed", answer, "the answer is not a JSON object")
    if action == "createInstance":
        instance_id = answer.get("instanceId")
        if isinstance(instance_id, int) and not isinstance(instance_id, bool):
            instance_id = str(instance_id)
        if not isinstance(instance_id, str) or not instance_id:
            return Judgement("failed", answer, "createInstance answered no instanceId")
        if instance_id == "0":
            return Judgement("pending", answer)
        return Judgement("ok", {**answer, "instanceId": instance_id})
    success = answer.get("success")
    if success is True:
        return Judgement("ok", answer)
    if success == "true":  # the samples' form; kept in the answer, shown as success_form
        return Judgement("ok", answer)
    return Judgement("failed", answer, f"success is {success!r}")
