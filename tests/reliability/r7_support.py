"""R7's shared pieces: a real tenant to attack with, a meter around the ASGI app, and the
schemathesis run (in process, every operation, positive and negative data)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import ADMIN
from tests.helpers import bearer, billing_login, console_login, register

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True)
class Tenant:
    """What a registration gives a tenant, and its sessions."""

    name: str
    console_account_id: str
    billing_account_id: str
    workspace_id: str
    ingest_key: str
    console_token: str
    billing_token: str

    @property
    def console(self) -> dict[str, str]:
        return bearer(self.console_token)

    @property
    def billing(self) -> dict[str, str]:
        return bearer(self.billing_token)

    @property
    def ingest(self) -> dict[str, str]:
        return bearer(self.ingest_key)


def make_tenant(client: TestClient, name: str) -> Tenant:
    made = register(client, name)
    console = console_login(client, name)["Authorization"].removeprefix("Bearer ")
    billing = billing_login(client, name)["Authorization"].removeprefix("Bearer ")
    return Tenant(name=name, console_account_id=made["console_account_id"],
                  billing_account_id=made["billing_account_id"],
                  workspace_id=made["workspace_id"], ingest_key=made["ingest_key"],
                  console_token=console, billing_token=billing)


@dataclass
class Call:
    method: str
    path: str
    status: int
    seconds: float
    raised: str | None = None


@dataclass
class Meter:
    """Wraps the ASGI app: every HTTP request's status and time, as the client saw it.

    An exception that escapes the app (after Starlette has answered 500, or before any
    answer) is turned into the 500 a real server would send, and recorded, so that a
    crash counts as a 5xx instead of ending the run."""

    app: Callable[[Scope, Receive, Send], Awaitable[None]]
    calls: list[Call] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0
        started = time.perf_counter()
        raised: str | None = None

        async def send_and_see(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_see)
        except (Exception, asyncio.CancelledError) as error:  # noqa: BLE001 - a server logs it
            raised = f"{type(error).__name__}: {str(error)[:200]}"
            if status == 0:
                status = 500
                await send({"type": "http.response.start", "status": 500,
                            "headers": [(b"content-type", b"text/plain")]})
                await send({"type": "http.response.body", "body": b"Internal Server Error"})
        finally:
            self.calls.append(Call(scope["method"], scope["path"], status,
                                   time.perf_counter() - started, raised))


# Which credential each operation gets (the patterns do not overlap); the others get none.
CREDENTIALS: list[tuple[str, str]] = [
    (r"^/(console|billing)/v1/(admin|internal)/", "operator"),
    (r"^/console/v1/(usage|admission)$", "ingest"),
    (r"^/console/v1/(?!admin/|internal/|usage$|admission$|registrations$|sessions$)", "console"),
    (r"^/billing/v1/(?!admin/|internal/|sessions$|payments/notify$)", "billing"),
]

# The checks R7 runs; each failure is reported under its name.
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "negative_data_rejection", "missing_required_header",
          "unsupported_method", "ignored_auth")


def schemathesis_config(tenant: Tenant, *, seed: int, max_examples: int) -> dict[str, Any]:
    tokens = {"operator": ADMIN, "ingest": tenant.ingest_key, "console": tenant.console_token,
              "billing": tenant.billing_token}
    checks: dict[str, Any] = {"enabled": False}
    checks.update({name: {"enabled": True} for name in CHECKS})
    return {
        "seed": seed,
        "workers": 1,
        "color": False,
        "max-failures": 100_000,
        "continue-on-failure": True,
        # The seed alone makes a run replayable; no example database between runs.
        "generation": {"mode": "all", "max-examples": max_examples, "database": "none"},
        "checks": checks,
        "phases": {"stateful": {"enabled": False}},
        # The tenant's own ids, so that valid data reaches past the 404s.
        "parameters": {"workspace_id": tenant.workspace_id,
                       "account_id": tenant.billing_account_id},
        "operations": [{"include-path-regex": pattern,
                        "headers": {"Authorization": f"Bearer {tokens[kind]}"}}
                       for pattern, kind in CREDENTIALS],
    }


@dataclass
class Finding:
    check: str
    operation: str
    status: int | None
    request: str
    message: str


@dataclass
class FuzzRun:
    operations: int
    operations_tested: int
    findings: list[Finding]
    errors: list[str]
    calls: list[Call]
    wall_s: float


def _describe(case: Any) -> str:
    parts = [f"{case.method.upper()} {case.formatted_path}"]
    if case.query:
        parts.append(f"query={case.query!r}")
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    if headers:
        parts.append(f"headers={headers!r}")
    if case.body is not None and type(case.body).__name__ != "NotSet":
        body = repr(case.body)
        parts.append("body=" + (body if len(body) <= 300 else body[:300] + "…"))
    return " ".join(parts)


def run_schemathesis(app: Any, tenant: Tenant, *, seed: int, max_examples: int) -> FuzzRun:
    """Every operation of ``/openapi.json``, in process; findings per check."""
    import schemathesis
    from schemathesis.engine import events, from_schema
    from schemathesis.python import asgi

    meter = Meter(app)
    config = schemathesis.Config.from_dict(schemathesis_config(
        tenant, seed=seed, max_examples=max_examples))
    schema = schemathesis.openapi.from_asgi("/openapi.json", meter, config=config)
    operations = sum(1 for _ in schema.get_all_operations())
    meter.calls.clear()  # the document's own request is not part of the run
    findings: list[Finding] = []
    errors: list[str] = []
    tested: set[str] = set()
    started = time.perf_counter()
    try:
        for event in from_schema(schema).execute():
            if isinstance(event, events.ScenarioFinished):
                recorder = event.recorder
                if recorder.interactions:
                    tested.add(recorder.label)
                for case_id, nodes in recorder.checks.items():
                    for node in nodes:
                        if node.failure_info is None:
                            continue
                        case = recorder.cases[case_id].value
                        interaction = recorder.interactions.get(case_id)
                        response = interaction.response if interaction else None
                        failure = node.failure_info.failure
                        findings.append(Finding(
                            check=node.name, operation=recorder.label,
                            status=response.status_code if response is not None else None,
                            request=_describe(case),
                            message=f"{failure.title}: {failure.message}"[:400]))
            elif isinstance(event, events.NonFatalError):
                errors.append(f"{event.label}: {event.info.title}: {event.info.message}"[:400])
            elif isinstance(event, events.FatalError):
                errors.append(f"fatal: {event.exception!r}"[:400])
    finally:
        asgi.shutdown_lifespans()
    return FuzzRun(operations=operations, operations_tested=len(tested), findings=findings,
                   errors=errors, calls=list(meter.calls),
                   wall_s=round(time.perf_counter() - started, 2))


def status_counts(calls: list[Call]) -> Counter[str]:
    return Counter(f"{call.status // 100}xx" for call in calls)
