"""What every emulator's control API shares: its error, the base of its request
bodies, :func:`run` turning a :class:`ControlError` into its HTTP answer, and
:func:`control_api`, the router with the routes every control API has (the config,
faults, tick and reset). Each emulator adds its own routes to that router.

Errors are ``{"error": {"code", "message"}}`` with the error's status.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, MutableMapping
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict

from accrual.sandbox.emulator import Config, EmulatorState


class ControlError(Exception):
    """A control request that cannot be done: its HTTP status and stable code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


ItemT = TypeVar("ItemT")


def known(items: Mapping[str, ItemT], key: str, kind: str) -> ItemT:
    """The ``kind`` (product, order, ...) named ``key``: 404 ``unknown_<kind>`` if none."""
    item = items.get(key)
    if item is None:
        raise ControlError(404, f"unknown_{kind}", f"no {kind} {key}")
    return item


def add_new(items: MutableMapping[str, ItemT], key: str, item: ItemT, kind: str) -> ItemT:
    """Keep a new ``kind`` under ``key`` (the caller holds the lock): 409
    ``<kind>_exists`` if there is one already."""
    if key in items:
        raise ControlError(409, f"{kind}_exists", f"{kind} {key} exists already")
    items[key] = item
    return item


def check_url(url: str | None) -> None:
    """A URL the seller gives (None: none given) must be http(s)."""
    if url is not None and not url.startswith(("http://", "https://")):
        raise ControlError(400, "invalid_url", f"{url!r} is not an http(s) URL")


class Body(BaseModel):
    """A control request's body: a field it does not know is refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


# A successful answer's value and status -> the response
Render = Callable[[Any, int], Response]
# A PUT /config field -> (the config's attribute, how its value becomes the attribute's)
Renamed = Mapping[str, tuple[str, Callable[[Any], Any]]]


def json_answer(value: Any, status: int = 200) -> Response:
    return JSONResponse(value, status_code=status)


def error_answer(error: ControlError) -> JSONResponse:
    return JSONResponse({"error": {"code": error.code, "message": error.message}},
                        status_code=error.status)


def run(call: Callable[[], Any], status: int = 200, render: Render = json_answer) -> Response:
    """The call's value as the answer, or the :class:`ControlError` it raised."""
    try:
        return render(call(), status)
    except ControlError as error:
        return error_answer(error)


def seconds(value: int) -> timedelta:
    return timedelta(seconds=value)


def apply_change(config: Config, change: BaseModel, renamed: Renamed) -> None:
    """Set each field given (not None) on the config; the others stay."""
    for name, value in change.model_dump(exclude_none=True).items():
        attribute, convert = renamed.get(name, (name, _same))
        setattr(config, attribute, convert(value))


class Controlled(Protocol):
    """What :func:`control_api` needs of an emulator."""

    @property
    def state(self) -> EmulatorState[Any]: ...

    @property
    def config(self) -> Config: ...

    def describe(self) -> dict[str, Any]: ...

    def inject(self, *args: Any, **kwargs: Any) -> None: ...

    def tick(self) -> Any: ...

    def reset(self) -> None: ...


def control_api(sandbox: Controlled, change: type[Body], fault: type[Body], *,
                renamed: Renamed | None = None, render: Render = json_answer) -> APIRouter:
    """The router of ``<prefix>/control`` with the routes every emulator has:

    * ``GET /config``: ``sandbox.describe()``;
    * ``PUT /config``: a ``change`` body; its fields are the config's attributes, but
      for those ``renamed`` (``token_ttl_seconds`` -> ``token_ttl``, a timedelta);
    * ``POST /faults``: a ``fault`` body, whose fields are ``sandbox.inject``'s
      arguments; answered ``{"injected": <the body>}``;
    * ``POST /tick``, ``POST /reset``.

    Each route's description is the docstring of the emulator's method it calls.
    ``render`` writes a successful answer (an emulator may write its numbers exactly).
    """
    router = APIRouter(prefix="/control")

    def get_config() -> Any:
        return sandbox.describe()

    def put_config(change: BaseModel) -> Any:
        """Change some of the open choices; the others stay."""
        with sandbox.state.lock:
            apply_change(sandbox.config, change, renamed or {})
        return sandbox.describe()

    def inject(body: BaseModel) -> Any:
        return run(lambda: _injected(sandbox, body), render=render)

    def tick() -> Any:
        return run(sandbox.tick, render=render)

    def reset() -> Any:
        sandbox.reset()
        return {"reset": True}

    router.add_api_route("/config", get_config, methods=["GET"],
                         description=inspect.getdoc(sandbox.describe))
    router.add_api_route("/config", _with_body(put_config, "change", change), methods=["PUT"])
    router.add_api_route("/faults", _with_body(inject, "body", fault), methods=["POST"],
                         description=inspect.getdoc(sandbox.inject))
    router.add_api_route("/tick", tick, methods=["POST"], description=inspect.getdoc(sandbox.tick))
    router.add_api_route("/reset", reset, methods=["POST"],
                         description=inspect.getdoc(sandbox.state.reset))
    return router


def _injected(sandbox: Controlled, body: BaseModel) -> dict[str, Any]:
    sandbox.inject(**body.model_dump())
    return {"injected": body.model_dump()}


EndpointT = TypeVar("EndpointT", bound=Callable[..., Any])


def _with_body(endpoint: EndpointT, parameter: str, model: type[BaseModel]) -> EndpointT:
    # FastAPI reads a body's model from the endpoint's annotation; these endpoints
    # serve every emulator, so each router's copy is told its emulator's model.
    endpoint.__annotations__ = {**endpoint.__annotations__, parameter: model}
    return endpoint


def _same(value: Any) -> Any:
    return value
