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

from accrual import __version__
from accrual.billing.api import routers as billing_routers
from accrual.billing.api.payments import notify_answer
from accrual.billing.config import BillingConfig
from accrual.billing.domain.marketplace import Marketplace
from accrual.billing.marketplaces import Marketplaces
from accrual.billing.marketplaces.aliyun import (
    SPI_PATH,
    AliyunListing,
    AliyunMarketplace,
    profile_for,
)
from accrual.billing.marketplaces.aws import AwsListing, AwsMarketplace
from accrual.billing.marketplaces.azure import AzureListing, AzureMarketplace
from accrual.billing.marketplaces.huawei import HuaweiListing, HuaweiMarketplace
from accrual.billing.payments.sandbox import SandboxGateway, in_process_sender
from accrual.billing.wiring import BillingCenter
from accrual.catalog import ITEMS, PriceBook, load_price_book
from accrual.clock import Clock, SystemClock
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
from accrual.sandbox.aliyun import CHINA, INTERNATIONAL, AliyunSandbox, aliyun_router
from accrual.sandbox.aws import AwsSandbox, aws_router
from accrual.sandbox.azure import AzureSandbox, azure_router
from accrual.sandbox.huawei import HuaweiSandbox, huawei_router
from accrual.settings import Settings

log = logging.getLogger("accrual")

# Where AWS sends the buyer's browser and its notifications (the billing API's routes).
AWS_FULFILLMENT_PATH = "/billing/v1/marketplaces/aws/fulfillment"
AWS_NOTIFICATIONS_PATH = "/billing/v1/marketplaces/aws/notifications"
# Where Alibaba Cloud Marketplace sends its SPI calls (createInstance, …, verify).
ALIYUN_SPI_PATH = SPI_PATH


# Where Azure sends the buyer's browser (the offer's landing page) and its webhook calls.
AZURE_LANDING_PATH = "/billing/v1/marketplaces/azure/landing"
AZURE_WEBHOOK_PATH = "/billing/v1/marketplaces/azure/webhook"


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
                            BillingConfig(currency=settings.currency, zone=settings.billing_zone()),
                            clock, mailer, payment_gateway=_payment_gateway(settings, clock),
                            marketplaces=Marketplaces(_marketplaces(settings, clock)))
    console_config = ConsoleConfig(
        site=settings.site, site_group=settings.site_group, zone=settings.site_zone(),
        currency=settings.currency,
        day_close_grace=timedelta(minutes=settings.day_close_grace_minutes),
        late_horizon=timedelta(days=settings.late_horizon_days))
    port: BillingCenterPort = InProcessBillingCenter(billing)
    if wrap_billing_port is not None:
        port = wrap_billing_port(port)
    console = Console(make_engine(settings.console_url()), console_config, clock, port,
                      book or load_price_book(settings.price_book), mailer)
    billing.connect_console(settings.site, InProcessConsole(console))
    runtime = Runtime(settings, console, billing, admin_token, generated,
                      sites={settings.site: console})
    if settings.aws_marketplace == "sandbox":
        runtime.aws_sandbox = AwsSandbox(clock, settings.base_url())
        # The listing the center sells, as a seller creates it in the Marketplace portal.
        runtime.aws_sandbox.create_product(
            settings.aws_product_code, [settings.aws_dimension],
            legacy=settings.aws_legacy_identifiers,
            fulfillment_url=f"{settings.base_url()}{AWS_FULFILLMENT_PATH}",
            notification_url=f"{settings.base_url()}{AWS_NOTIFICATIONS_PATH}")
    # --- Huawei KooGallery -------------------------------------------------------------
    if settings.huawei_marketplace != "off" and settings.public_url:
        # Buyers are sent to the activation page at this address (else the one
        # KooGallery called).
        runtime.billing.huawei_activities.public_url = settings.base_url()
    if settings.huawei_marketplace == "sandbox":
        runtime.huawei_sandbox = HuaweiSandbox(clock, settings.base_url(),
                                               access_key=_huawei_keys(settings)[0],
                                               secret_key=_huawei_keys(settings)[1])
        # The product the center sells, as a seller lists it in the KooGallery console:
        # pay-per-use, its activities sent to this server.
        runtime.huawei_sandbox.create_product(
            settings.huawei_product_id, settings.huawei_sku_code,
            f"{settings.base_url()}{HUAWEI_ACTIVITIES_PATH}", charging_mode="ON_DEMAND",
            billing=settings.huawei_billing)
    # --- end Huawei ---------------------------------------------------------------------
    if settings.aliyun_marketplace == "sandbox":
        # --- Alibaba Cloud Marketplace sandbox ---
        runtime.aliyun_sandbox = AliyunSandbox(clock, settings.base_url(), CHINA)
        runtime.aliyun_intl_sandbox = AliyunSandbox(clock, settings.base_url(), INTERNATIONAL)
        # The listing, as the seller publishes it, on the site of the center's currency.
        site = (runtime.aliyun_sandbox if _aliyun_profile(settings) == "china"
                else runtime.aliyun_intl_sandbox)
        site.create_product(settings.aliyun_product_code,
                            f"{settings.base_url()}{ALIYUN_SPI_PATH}",
                            settings.resolve_aliyun_spi_key(), billing=settings.aliyun_billing)
    if settings.azure_marketplace == "sandbox":
        runtime.azure_sandbox = _azure_sandbox(settings, clock, billing.marketplaces)
    runtime.scheduler = Scheduler(runtime, settings.scheduler_interval_seconds)
    runtime.app = create_app(runtime)
    return runtime


def _marketplaces(settings: Settings, clock: Clock) -> list[Marketplace]:
    """The marketplace adapters configured for this center (the same adapter talks to
    the vendor or to its emulator; only the endpoint and the trusted certificates differ)."""
    adapters: list[Marketplace] = []
    if settings.aws_marketplace != "off":
        adapters.append(_aws_marketplace(settings, clock))
    # --- Azure (USD centers only) -------------------------------------------------------
    azure = _azure_marketplace(settings, clock)
    if azure is not None:
        adapters.append(azure)
    # --- end Azure ----------------------------------------------------------------------
    # --- Huawei KooGallery -------------------------------------------------------------
    if settings.huawei_marketplace != "off":
        adapters.append(_huawei_marketplace(settings, clock))
    # --- end Huawei ---------------------------------------------------------------------
    # --- Alibaba Cloud Marketplace -------------------------------------------------------
    adapters += _aliyun_marketplace(settings, clock)
    # --- end Alibaba ---------------------------------------------------------------------
    return adapters


# --- Huawei KooGallery -------------------------------------------------------------------
# Where KooGallery sends the activities (the billing API's route).
HUAWEI_ACTIVITIES_PATH = "/billing/v1/marketplaces/huawei/activities"
# The sandbox seller's keys when none are configured (the emulator is given the same).
HUAWEI_SANDBOX_KEYS = ("sandbox-access-key", "sandbox-secret-key")


def _huawei_keys(settings: Settings) -> tuple[str, str]:
    if settings.huawei_marketplace == "sandbox":
        return (settings.huawei_access_key or HUAWEI_SANDBOX_KEYS[0],
                settings.huawei_secret_key or HUAWEI_SANDBOX_KEYS[1])
    if not settings.huawei_access_key:
        raise ValueError("ACCRUAL_HUAWEI_MARKETPLACE=huawei needs ACCRUAL_HUAWEI_ACCESS_KEY "
                         "(the seller console's access key)")
    return settings.huawei_access_key, settings.huawei_secret_key or ""


def _huawei_marketplace(settings: Settings, clock: Clock) -> HuaweiMarketplace:
    """The KooGallery adapter: against the emulator mounted under /sandbox/huawei, or
    KooGallery's own endpoints (with its fallback domain)."""
    sandbox = settings.huawei_marketplace == "sandbox"
    access_key, secret_key = _huawei_keys(settings)
    return HuaweiMarketplace(HuaweiListing(
        product_id=settings.huawei_product_id, access_key=access_key,
        secret_key=secret_key or None, hmac_key=settings.huawei_hmac_key,
        endpoint_url=(f"{settings.base_url()}/sandbox/huawei" if sandbox
                      else settings.huawei_endpoint_url),
        fallback_url=None if sandbox else settings.huawei_fallback_url,
        dimension=settings.huawei_dimension, billing=settings.huawei_billing,
        tolerance=timedelta(seconds=settings.huawei_tolerance_seconds)), clock)
# --- end Huawei --------------------------------------------------------------------------


def _aws_marketplace(settings: Settings, clock: Clock) -> Marketplace:
    sandbox = settings.aws_marketplace == "sandbox"
    endpoint = f"{settings.base_url()}/sandbox/aws" if sandbox else settings.aws_endpoint_url
    return AwsMarketplace(AwsListing(
        product_code=settings.aws_product_code, dimension=settings.aws_dimension,
        region=settings.aws_region, endpoint_url=endpoint,
        access_key_id="sandbox" if sandbox else settings.aws_access_key_id,
        secret_access_key="sandbox" if sandbox else settings.aws_secret_access_key,
        lateness=timedelta(hours=settings.aws_metering_window_hours),
        legacy_identifiers=settings.aws_legacy_identifiers,
        # The emulator signs its notifications with a certificate it serves itself.
        trusted_cert_prefixes=(f"{endpoint}/",) if sandbox else ()), clock)


# --- Alibaba Cloud Marketplace wiring ------------------------------------------------


def _aliyun_profile(settings: Settings) -> Literal["china", "international"]:
    return profile_for(settings.currency)


def _aliyun_marketplace(settings: Settings, clock: Clock) -> list[Marketplace]:
    """Settlement method "aliyun": the site of the center's currency, through Alibaba's
    SDKs to Alibaba or to the emulator mounted here (its keys, plain HTTP)."""
    if settings.aliyun_marketplace == "off":
        return []
    profile = _aliyun_profile(settings)
    if settings.aliyun_marketplace == "sandbox":
        site = CHINA if profile == "china" else INTERNATIONAL
        endpoint: str | None = f"{settings.base_url()}{site.prefix}".split("://", 1)[1]
        key_id, secret = site.access_key_id, site.access_key_secret
        protocol: Literal["https", "http"] = (
            "https" if settings.base_url().startswith("https://") else "http")
    else:
        if not settings.aliyun_access_key_id or not settings.aliyun_access_key_secret:
            raise ValueError("aliyun_marketplace=aliyun needs ACCRUAL_ALIYUN_ACCESS_KEY_ID "
                             "and ACCRUAL_ALIYUN_ACCESS_KEY_SECRET")
        endpoint, protocol = settings.aliyun_endpoint, "https"
        key_id, secret = settings.aliyun_access_key_id, settings.aliyun_access_key_secret
    return [AliyunMarketplace(AliyunListing(
        profile=profile, product_code=settings.aliyun_product_code, access_key_id=key_id,
        access_key_secret=secret, spi_key=settings.resolve_aliyun_spi_key(),
        endpoint=endpoint, protocol=protocol, billing=settings.aliyun_billing,
        public_url=settings.base_url()), clock)]


# --- Azure Marketplace -------------------------------------------------------------

def _azure_marketplace(settings: Settings, clock: Clock) -> AzureMarketplace | None:
    """The Azure adapter, in a USD center only (decisions.md 14); in another currency the
    setting has no effect (logged once, at start)."""
    if settings.azure_marketplace == "off":
        return None
    if settings.currency != "USD":
        log.info("azure_marketplace=%s has no effect: Azure settles USD billing centers "
                 "only, this one is %s", settings.azure_marketplace, settings.currency)
        return None
    if settings.azure_marketplace == "sandbox":
        api_url = f"{settings.base_url()}/sandbox/azure"
        login_url = f"{api_url}/login"
    else:
        if not settings.azure_client_secret:
            # A generated secret can only be the emulator's: Entra would refuse every call.
            raise ValueError("azure_marketplace=azure needs ACCRUAL_AZURE_CLIENT_SECRET (and "
                             "the offer's ACCRUAL_AZURE_TENANT_ID and ACCRUAL_AZURE_CLIENT_ID)")
        api_url = settings.azure_api_url or "https://marketplaceapi.microsoft.com"
        login_url = settings.azure_login_url or "https://login.microsoftonline.com"
    return AzureMarketplace(AzureListing(
        tenant_id=settings.azure_tenant_id, client_id=settings.azure_client_id,
        client_secret=settings.resolve_azure_client_secret(), offer_id=settings.azure_offer_id,
        publisher_id=settings.azure_publisher_id, api_url=api_url.rstrip("/"),
        login_url=login_url.rstrip("/"), dimension=settings.azure_dimension), clock)


def _azure_sandbox(settings: Settings, clock: Clock, marketplaces: Marketplaces) -> AzureSandbox:
    """The emulator; when this center settles through it, with the publisher's app and
    the offer as the publisher enters them in Partner Center (landing page and webhook
    here)."""
    sandbox = AzureSandbox(clock, settings.base_url())
    if "azure" in marketplaces:
        sandbox.register_app(tenant_id=settings.azure_tenant_id,
                             client_id=settings.azure_client_id,
                             client_secret=settings.resolve_azure_client_secret())
        sandbox.create_offer(
            settings.azure_offer_id,
            [{"plan_id": plan, "dimensions": [settings.azure_dimension]}
             for plan in settings.azure_plans()],
            publisher_id=settings.azure_publisher_id or "accrual",
            app_id=settings.azure_client_id,
            landing_url=f"{settings.base_url()}{AZURE_LANDING_PATH}",
            webhook_url=f"{settings.base_url()}{AZURE_WEBHOOK_PATH}")
    return sandbox

# --- end Azure Marketplace ---


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
    gateway = runtime.billing.payments.gateway
    if isinstance(gateway, SandboxGateway):
        # The sandbox's pay page; its notifies reach the center in this process.
        sender = in_process_sender(partial(notify_answer, runtime.billing.payments))
        app.include_router(gateway.router(sender))
    if runtime.aws_sandbox is not None:
        # The emulator speaks AWS's protocol, not Accrual's API: kept out of the schema.
        app.include_router(aws_router(runtime.aws_sandbox), include_in_schema=False)
    if runtime.huawei_sandbox is not None:
        app.include_router(huawei_router(runtime.huawei_sandbox), include_in_schema=False)
    for aliyun in (runtime.aliyun_sandbox, runtime.aliyun_intl_sandbox):
        if aliyun is not None:
            app.include_router(aliyun_router(aliyun), include_in_schema=False)
    if runtime.azure_sandbox is not None:
        app.include_router(azure_router(runtime.azure_sandbox), include_in_schema=False)

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
