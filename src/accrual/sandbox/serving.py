"""What serving an emulator over HTTP shares: bodies read up to a bound, headers by
lower-case name, and the app of its own an emulator runs as (``accrual sandbox``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request


async def read_bounded(request: Request, limit: int) -> bytes | None:
    """The body, or None once it passes ``limit`` bytes (nothing more is read)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def lower_headers(request: Request) -> dict[str, str]:
    return {name.lower(): value for name, value in request.headers.items()}


def standalone_app(title: str, description: str, *routers: APIRouter, **state: Any) -> FastAPI:
    """An app serving only the emulators' routers; ``state`` is set on ``app.state``."""
    app = FastAPI(title=title, description=description)
    for name, value in state.items():
        setattr(app.state, name, value)
    for router in routers:
        app.include_router(router)
    return app
