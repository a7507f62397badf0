"""A real local SMTP server for tests (aiosmtpd), collecting what it receives."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from accrual.app import Runtime
from accrual.clock import ManualClock
from tests.conftest import make_runtime


class Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, _server: object, _session: object, envelope: object) -> str:
        content = envelope.content  # type: ignore[attr-defined]
        self.messages.append(message_from_bytes(content, policy=policy.default))  # type: ignore[arg-type]
        return "250 OK"

    def bodies_to(self, address: str) -> list[str]:
        return [m.get_content() for m in self.messages if m["To"] == address]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def mail_runtime(tmp_path: Path, pg_databases: tuple[str, str] | None, clock: ManualClock,
                 smtp_server: tuple[Inbox, int]) -> Iterator[tuple[Runtime, Inbox]]:
    """A runtime whose mail goes to the local SMTP server."""
    inbox, port = smtp_server
    runtime = make_runtime(tmp_path, pg_databases, clock, smtp_host="127.0.0.1", smtp_port=port)
    yield runtime, inbox
    runtime.console.engine.dispose()
    runtime.billing.engine.dispose()
