"""Refusals both sides raise for business outcomes, each with a stable ``code``.

A refusal says *what kind* of no it is (not found, conflict, invalid, ...) and
carries a code that is part of the public contract and never changes meaning.
It knows nothing of HTTP: the entry points map each kind to a status
(``accrual.infra.http.status_for``) and write the ``{"error": {"code",
"message"}}`` envelope.
"""

from __future__ import annotations


class ServiceError(Exception):
    """A refusal of a request that is wrong as a whole (the default kind)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Unauthorized(ServiceError):
    """The caller is not who it claims, or did not say."""


class Forbidden(ServiceError):
    """The caller is known but may not do this."""


class NotFound(ServiceError):
    """The thing named does not exist (or is not the caller's to see)."""


class Conflict(ServiceError):
    """The request contradicts the current state or an earlier request."""


class Invalid(ServiceError):
    """A well-formed request whose values break a rule."""


class Unavailable(ServiceError):
    """A peer or resource needed for the answer is not reachable now."""


class TooManyAttempts(ServiceError):
    """Too many failed attempts (sign-ins) lately: refused without looking at this one;
    ``retry_after_s`` is when the next attempt is looked at again."""

    def __init__(self, retry_after_s: int, message: str | None = None) -> None:
        self.retry_after_s = max(1, int(retry_after_s))
        super().__init__("too_many_attempts", message or (
            f"too many failed sign-ins; wait {_wait(self.retry_after_s)} before trying again"))


def _wait(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = -(-seconds // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
