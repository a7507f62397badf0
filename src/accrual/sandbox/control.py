"""What every emulator's control API shares."""

from __future__ import annotations


class ControlError(Exception):
    """A control request that cannot be done: its HTTP status and stable code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
