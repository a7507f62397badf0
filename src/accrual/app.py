"""The composition root: both sides, their transports, the scheduler and the web app.

This module may import both sides; neither side imports it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text

from accrual import __version__, marketplace_setup
from accrual.billing import operator_pages as billing_operator_pages
from accrual.billing import pages as billing_pages
from accrual.billing.api import routers as billing_routers
from accrual.billing.api.payments import notify_answer
from accrual.billing.config import BillingConfig
from accrual.billing.marketplaces import Marketplaces
from accrual.billing.payments.sandbox import SandboxGateway, in_process_sender
from accrual.billing.wiring import BillingCenter
from accrual.catalog import ITEMS, PriceBook, load_price_book
from accrual.clock import Clock, SystemClock
from accrual.console import operator_pages as console_operator_pages
from accrual.console import pages as console_pages
from accrual.console.api import routers as console_routers
from accrual.console.api.metering import MAX_BODY_BYTES as USAGE_BODY_LIMIT
from accrual.console.config import ConsoleConfig
from accrual.console.wiring import Console
from accrual.contract.errors import ServiceError
from accrual.contract.messages import (
    ActivatedWorkspace,
    ActivationCheck,
    ActivationGrant,
    BindingChanged,
    BindingCodeConfirmation,
    BindingCodeRequest,
    BindingCodeSent,
    Envelope,
    RegistrationConfirmation,
    RegistrationRequest,
    RegistrationResult,
    SignInTicket,
    SignInTicketRequest,
    WalletOverview,
)
from accrual.contract.ports import BillingCenterPort, PeerRefused
from accrual.infra import openapi
from accrual.infra.db import make_engine
from accrual.infra.http import (
    JSON_BODY_LIMIT,
    BodyLimit,
    error_response,
    error_responses,
    install_error_handlers,
)
from accrual.infra.jobs import Job
from accrual.infra.mail import Mailer
from accrual.money import format_minor
from accrual.sandbox.aliyun import AliyunSandbox
from accrual.sandbox.aws import AwsSandbox
from accrual.sandbox.azure import AzureSandbox
from accrual.sandbox.huawei import HuaweiSandbox
from accrual.settings import Settings
from accrual.web import operator as web_operator
from accrual.web import site as web_site
from accrual.web.rendering import Pages
from accrual.web.security import CookiePolicy

log = logging.getLogger("accrual")

def _copy(messages: Sequence[Envelope]) -> list[Envelope]:
    # Messages cross the seam as JSON even in one process, so nothing but the
    # contract is shared between the sides.
    return [Envelope.model_validate_json(m.model_dump_json()) for m in messages]


class InProcessBillingCenter:
    """BillingCenterPort for the embedded set-up: direct calls, contract types only."""

    def __init__(self, center: BillingCenter) -> None:
        self.center = center

    def register_account(self, request: RegistrationRequest) -> RegistrationResult:
        try:
            return self.center.accounts.register(request.model_copy())
        except ServiceError as error:
            raise PeerRefused(error.code, error.message) from None

    def confirm_registration(self, registration_key: str,
                             confirmation: RegistrationConfirmation) -> None:
        try:
            self.center.accounts.confirm(registration_key, confirmation.model_copy())
        except ServiceError as error:
            raise PeerRefused(error.code, error.message) from None

    def cancel_registration(self, registration_key: str) -> None:
        self.center.accounts.cancel(registration_key)

    def request_binding_code(self, request: BindingCodeRequest) -> BindingCodeSent:
        try:
            return self.center.binding_codes.request_code(request.model_copy())
        except ServiceError as error:
            raise PeerRefused(error.code, error.message) from None

    def confirm_binding_code(self, confirmation: BindingCodeConfirmation) -> BindingChanged:
        try:
            return self.center.binding_codes.confirm_code(confirmation.model_copy())
        except ServiceError as error:
            raise PeerRefused(error.code, error.message) from None

    def check_activation(self, request: ActivationCheck) -> ActivationGrant:
        try:
            return self.center.activated_workspaces.check(request.model_copy())
        except ServiceError as error:
            raise PeerRefused(error.code, error.message) from None

    def bind_activated_workspace(self, workspace: ActivatedWorkspace) -> BindingChanged:
        try:
            return self.center.activated_workspaces.bind(workspace.model_copy())
        except ServiceError as error:
            raise PeerRefused(error.code, error.message) from None

    def wallet_overview(self, billing_account_id: str) -> WalletOverview:
        try:
            return self.center.console_visits.wallet_overview(billing_account_id).model_copy()
        except ServiceError as error:
            raise PeerRefused(error.code, error.message) from None

    def sign_in_ticket(self, request: SignInTicketRequest) -> SignInTicket:
        try:
            return self.center.console_visits.issue(request.model_copy())
        except ServiceError as error:
            raise PeerRefused(error.code, error.message) from None

    def deliver(self, messages: Sequence[Envelope]) -> list[str]:
        return self.center.inbox.deliver(_copy(messages))


class InProcessConsole:
    def __init__(self, console: Console) -> None:
        self.console = console

    def deliver(self, messages: Sequence[Envelope]) -> list[str]:
        return self.console.inbox.deliver(_copy(messages))


class Scheduler:
    """Runs the periodic work: relays both ways, day close after midnight + grace,
    reaping of unconfirmed registrations, the marketplace charge reporter. ``tick`` is what tests call."""

    def __init__(self, runtime: Runtime, interval_s: float) -> None:
        self.runtime = runtime
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = 0
        self.last_error: str | None = None
        # The steps that keep no job record of their own.
        self.jobs: dict[str, Job] = {}

    def tick(self) -> None:
        rt = self.runtime
        # (name, step, the job it runs as when it does not record itself)
        steps: list[tuple[str, Callable[[], object], Job | None]] = []
        for console in rt.sites.values():
            site = console.config.site
            steps += [(f"{site} relay", console.relay.drain, None),
                      (f"{site} day close", console.day_close.close_due_days, None),
                      (f"{site} relay", console.relay.drain, None),
                      (f"{site} alerts", console.alerts.evaluate, self._job(f"{site} alerts"))]
        # Arrears before the relay, so that lock states reach the consoles in this tick;
        # mails last, so that this tick's mails (arrears, bills) leave in it too.
        steps += [("arrears tick", rt.billing.arrears.tick, rt.billing.arrears.job),
                  ("billing relay", rt.billing_relay_drain, None),
                  ("registration reaper", rt.billing.accounts.reap_pending,
                   self._job("registration reaper")),
                  ("monthly bills", rt.billing.statements.generate_due,
                   self._job("monthly bills")),
                  ("instrument expiry", rt.billing.instruments.expire_due,
                   self._job("instrument expiry")),
                  ("marketplace reporter", rt.billing.marketplace_reporter.run,
                   rt.billing.marketplace_reporter.job),
                  ("marketplace reconciliation", rt.billing.marketplace_reconciliation.run,
                   rt.billing.marketplace_reconciliation.job),
                  ("billing mails", rt.billing.mails.send_due, rt.billing.mails.job)]
        for name, step, job in steps:
            try:
                if job is None:
                    step()
                else:
                    with job.run():
                        step()
            except Exception as error:  # keep the loop alive; the status shows it
                self.last_error = f"{name}: {error}"
                log.exception("scheduler: %s failed", name)
        self.ticks += 1

    def _job(self, name: str) -> Job:
        found = self.jobs.get(name)
        if found is None:
            found = self.jobs[name] = Job(name, self.runtime.console.clock)
        return found

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="accrual-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.tick()


@dataclass
class Runtime:
    settings: Settings
    console: Console
    billing: BillingCenter
    admin_token: str
    admin_token_generated: bool
    app: FastAPI = field(init=False)
    scheduler: Scheduler = field(init=False)
    # Every console site feeding this billing center; `console` is the one served here.
    sites: dict[str, Console] = field(default_factory=dict)
    # The AWS Marketplace emulator served under /sandbox/aws, when configured.
    aws_sandbox: AwsSandbox | None = None
    # The Huawei KooGallery emulator served under /sandbox/huawei, when configured.
    huawei_sandbox: HuaweiSandbox | None = None
    # The Alibaba Cloud Marketplace emulators under /sandbox/aliyun and /sandbox/aliyun-intl.
    aliyun_sandbox: AliyunSandbox | None = None
    aliyun_intl_sandbox: AliyunSandbox | None = None
    # The Azure Marketplace emulator served under /sandbox/azure, when configured.
    azure_sandbox: AzureSandbox | None = None

    def attach_site(self, config: ConsoleConfig, db_url: str) -> Console:
        """Another console site feeding the same billing center (its own database)."""
        console = Console(make_engine(db_url), config, self.console.clock,
                          InProcessBillingCenter(self.billing), self.console.book)
        console.migrate()
        self.billing.connect_console(config.site, InProcessConsole(console))
        self.sites[config.site] = console
        return console

    def console_jobs(self) -> list[Job]:
        return [job for console in self.sites.values()
                for job in (console.day_close.job, console.relay.job, console.inbox.job)]

    def billing_jobs(self) -> list[Job]:
        jobs = [self.billing.inbox.job, self.billing.arrears.job, self.billing.mails.job,
                self.billing.marketplace_reporter.job,
                self.billing.marketplace_reconciliation.job]
        if self.billing.relay is not None:
            jobs.append(self.billing.relay.job)
        return jobs

    def jobs(self) -> list[Job]:
        """Every job of this process, by name."""
        return sorted([*self.console_jobs(), *self.billing_jobs(),
                       *self.scheduler.jobs.values()], key=lambda job: job.name)

    def billing_relay_drain(self) -> int:
        return self.billing.relay.drain() if self.billing.relay is not None else 0

    def migrate(self) -> None:
        self.console.migrate()
        self.billing.migrate()


class DegradedJob(BaseModel):
    job: str = Field(description="The job, e.g. `cn1 day close`, `cn1 relay`, `billing inbox`, "
                                 "`arrears tick`, `billing mails`")
    reason: str = Field(description="What is degraded, e.g. `2 unit(s) failing, e.g. "
                                    "workspace/…/2026-11-25: NoPrice`")
    failing: int = Field(description="Units (workspace days, messages, accounts, mails) "
                                     "failing now; each is retried with backoff")
    last_run_at: datetime | None


class SchedulerHealth(BaseModel):
    running: bool
    ticks: int
    last_error: str | None


class Health(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"status": "ok", "version": "0.1.0", "site": "cn1", "currency": "CNY", "degraded": [],
         "scheduler": {"running": True, "ticks": 12, "last_error": None}},
        {"status": "degraded", "version": "0.1.0", "site": "cn1", "currency": "CNY",
         "degraded": [{"job": "cn1 day close",
                       "reason": "1 unit(s) failing, e.g. workspace/0f3a…/2026-11-25: NoPrice",
                       "failing": 1, "last_run_at": "2026-11-25T16:31:00+00:00"}],
         "scheduler": {"running": True, "ticks": 13, "last_error": None}}]})

    status: Literal["ok", "degraded"] = Field(
        description="`ok`, or `degraded` while a background job has failing units or its "
                    "last run failed (the databases are reachable either way)")
    version: str
    site: str
    currency: str
    degraded: list[DegradedJob] = Field(description="The degraded jobs and why; empty when ok")
    scheduler: SchedulerHealth


def build(settings: Settings, *, clock: Clock | None = None,
          wrap_billing_port: Callable[[BillingCenterPort], BillingCenterPort] | None = None,
          book: PriceBook | None = None, mailer: Mailer | None = None) -> Runtime:
    """Assemble both sides. ``wrap_billing_port`` puts another transport (HTTP, or a
    failing one in tests) between the console and the billing center."""
    clock = clock or SystemClock()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    admin_token, generated = settings.resolve_admin_token()
    mailer = mailer or settings.mailer()
    billing = BillingCenter(make_engine(settings.billing_url()),
                            BillingConfig(currency=settings.currency, zone=settings.billing_zone(),
                                          sign_in=settings.sign_in_policy()),
                            clock, mailer, payment_gateway=_payment_gateway(settings, clock),
                            marketplaces=Marketplaces(marketplace_setup.adapters(settings, clock)))
    console_config = ConsoleConfig(
        site=settings.site, site_group=settings.site_group, zone=settings.site_zone(),
        currency=settings.currency,
        day_close_grace=timedelta(minutes=settings.day_close_grace_minutes),
        late_horizon=timedelta(days=settings.late_horizon_days),
        sign_in=settings.sign_in_policy())
    port: BillingCenterPort = InProcessBillingCenter(billing)
    if wrap_billing_port is not None:
        port = wrap_billing_port(port)
    console = Console(make_engine(settings.console_url()), console_config, clock, port,
                      book or load_price_book(settings.price_book), mailer)
    billing.connect_console(settings.site, InProcessConsole(console))
    runtime = Runtime(settings, console, billing, admin_token, generated,
                      sites={settings.site: console})
    sandboxes = marketplace_setup.sandboxes(settings, clock, billing)
    runtime.aws_sandbox, runtime.huawei_sandbox = sandboxes.aws, sandboxes.huawei
    runtime.aliyun_sandbox, runtime.aliyun_intl_sandbox = sandboxes.aliyun, sandboxes.aliyun_intl
    runtime.azure_sandbox = sandboxes.azure
    runtime.scheduler = Scheduler(runtime, settings.scheduler_interval_seconds)
    runtime.app = create_app(runtime)
    return runtime


def _payment_gateway(settings: Settings, clock: Clock) -> SandboxGateway | None:
    if settings.payment_gateway == "sandbox":
        return SandboxGateway(settings.resolve_payment_secret(), clock)
    return None


def create_app(runtime: Runtime) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if runtime.settings.scheduler:
            runtime.scheduler.start()
        try:
            yield
        finally:
            runtime.scheduler.stop()

    app = FastAPI(
        title="Accrual", version=__version__, lifespan=lifespan,
        description="Metering and billing for multi-workspace SaaS. `/console/v1` is the "
                    "workspace side (one site); `/billing/v1` is the billing center (one "
                    "currency). Every error is `{\"error\": {\"code\", \"message\"}}` with a "
                    "stable code; amounts are decimal strings.")
    app.state.console = runtime.console
    app.state.billing = runtime.billing
    app.state.admin_token = runtime.admin_token
    install_error_handlers(app)
    openapi.install(app)
    # The usage endpoint and the relay's inboxes take large batches; every other body is small.
    app.add_middleware(BodyLimit, default_limit=JSON_BODY_LIMIT, limits=dict.fromkeys(
        ("/console/v1/usage", "/console/v1/internal/inbox", "/billing/v1/internal/inbox"),
        USAGE_BODY_LIMIT))
    for router in console_routers:
        app.include_router(router)
    for router in billing_routers:
        app.include_router(router)
    # The pages: the shared ones, then each side's, over the same services.
    policy = CookiePolicy(secure=runtime.settings.cookie_secure)
    web_site.install(app, policy, runtime.console.clock,
                     (console_pages.remember_language, billing_pages.remember_language))
    app.state.console_pages = Pages(console_pages.TEMPLATES, policy,
                                    {"labels": console_pages.LABELS,
                                     "zone": runtime.console.config.zone.key},
                                    clock=runtime.console.clock)
    for router in console_pages.routers:
        app.include_router(router)
    app.state.billing_pages = Pages(billing_pages.TEMPLATES, policy,
                                    {"labels": billing_pages.LABELS,
                                     "zone": runtime.billing.config.zone.key,
                                     "minor": format_minor},
                                    clock=runtime.billing.clock)
    for router in billing_pages.routers:
        app.include_router(router)
    # The operator's pages: the shared sign-in and home, then each side's.
    app.include_router(web_operator.router(app.state.error_pages))
    app.state.console_operator_pages = Pages(console_operator_pages.TEMPLATES, policy,
                                             {"zone": runtime.console.config.zone.key},
                                             clock=runtime.console.clock)
    for router in console_operator_pages.routers:
        app.include_router(router)
    app.state.billing_operator_pages = Pages(billing_operator_pages.TEMPLATES, policy,
                                             {"zone": runtime.billing.config.zone.key,
                                              "minor": format_minor},
                                             clock=runtime.billing.clock)
    for router in billing_operator_pages.routers:
        app.include_router(router)
    gateway = runtime.billing.payments.gateway
    if isinstance(gateway, SandboxGateway):
        # The sandbox's pay page; its notifies reach the center in this process.
        sender = in_process_sender(partial(notify_answer, runtime.billing.payments))
        app.include_router(gateway.router(sender))
    # The emulators speak their vendors' protocols, not Accrual's API: out of the schema.
    for router in marketplace_setup.routers(runtime):
        app.include_router(router, include_in_schema=False)

    @app.get("/healthz", tags=["operations"], response_model=Health,
             responses=error_responses(503))
    def healthz() -> Any:
        """Liveness, both databases' reachability (503 `unhealthy` when one is down) and
        the background jobs: `status` is `degraded` (still 200) while a job has units
        failing (a workspace's day close, a message, an account, a mail) or its last run
        failed; `degraded` names each such job and why. The operator jobs views
        (`/console/v1/admin/jobs`, `/billing/v1/admin/jobs`) give the details."""
        for side, engine in (("console", runtime.console.engine),
                             ("billing", runtime.billing.engine)):
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
            except Exception as error:  # noqa: BLE001 - any failure to reach the database
                log.warning("healthz: %s database unreachable: %s", side, error)
                return error_response(503, "unhealthy", f"the {side} database is unreachable")
        degraded = [DegradedJob(job=job.name, reason=job.reason() or "",
                                failing=len(job.failing), last_run_at=job.last_run_at)
                    for job in runtime.jobs() if job.degraded]
        if degraded:
            log.warning("healthz: degraded: %s",
                        "; ".join(f"{d.job}: {d.reason}" for d in degraded))
        return Health(status="degraded" if degraded else "ok", version=__version__,
                      site=runtime.settings.site, currency=runtime.settings.currency,
                      degraded=degraded,
                      scheduler=SchedulerHealth(running=runtime.settings.scheduler,
                                                ticks=runtime.scheduler.ticks,
                                                last_error=runtime.scheduler.last_error))

    @app.get("/catalog/v1/items", tags=["catalog"], responses=error_responses(404))
    def items() -> dict[str, Any]:
        """Billing item codes with unit sizes, daily rules and retention tiers."""
        return {"items": [
            {"code": i.code, "title": i.title, "unit_size": str(i.unit_size), "rule": i.rule.value,
             "data_type": i.data_type.value if i.data_type else None, "tiers": list(i.tiers),
             "site_groups": list(i.site_groups), "currencies": list(i.currencies),
             "legacy": i.legacy}
            for i in ITEMS.values()]}

    @app.get("/catalog/v1/prices", tags=["catalog"], responses=error_responses(404))
    def prices() -> dict[str, Any]:
        """Every row of the price book in force (all columns, all versions)."""
        return {"prices": [
            {"book": r.book, "effective_from": r.effective_from.isoformat(),
             "currency": r.currency, "site_group": r.site_group, "item": r.item,
             "retention_days": r.retention_days, "unit_price": str(r.unit_price)}
            for r in runtime.console.book.rows]}

    return app
