"""Stable error codes of the console, and the exception that carries them."""

from __future__ import annotations


class ConsoleError(Exception):
    """A business refusal with a stable code; entry points map it to HTTP."""

    status = 400

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        if status is not None:
            self.status = status


class NotFound(ConsoleError):
    status = 404


class Conflict(ConsoleError):
    status = 409


class Unavailable(ConsoleError):
    status = 503
