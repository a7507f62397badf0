"""The cloud marketplaces of one billing center, from its settings: the vendor adapters
it settles through (:func:`adapters`) and, in sandbox mode, the vendors' emulators
served by the same process (:func:`sandboxes`, :func:`routers`), each listing created
as a seller would publish it, pointing back at this server's endpoints.

The composition root's part for marketplaces (``accrual.app`` calls it): it may import
the billing side and the emulators; neither imports it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Literal

from fastapi import APIRouter

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
from accrual.billing.wiring import BillingCenter
from accrual.clock import Clock
from accrual.sandbox.aliyun import CHINA, INTERNATIONAL, AliyunSandbox, aliyun_router
from accrual.sandbox.aws import AwsSandbox, aws_router
from accrual.sandbox.azure import AzureSandbox, azure_router
from accrual.sandbox.huawei import HuaweiSandbox, huawei_router
from accrual.settings import Settings

if TYPE_CHECKING:
    from accrual.app import Runtime

log = logging.getLogger("accrual")

# Where AWS sends the buyer's browser and its notifications (the billing API's routes).
AWS_FULFILLMENT_PATH = "/billing/v1/marketplaces/aws/fulfillment"
AWS_NOTIFICATIONS_PATH = "/billing/v1/marketplaces/aws/notifications"
# Where Alibaba Cloud Marketplace sends its SPI calls (createInstance, …, verify).
ALIYUN_SPI_PATH = SPI_PATH


# Where Azure sends the buyer's browser (the offer's landing page) and its webhook calls.
AZURE_LANDING_PATH = "/billing/v1/marketplaces/azure/landing"
AZURE_WEBHOOK_PATH = "/billing/v1/marketplaces/azure/webhook"




def adapters(settings: Settings, clock: Clock) -> list[Marketplace]:
    """The marketplace adapters configured for this center (the same adapter talks to
    the vendor or to its emulator; only the endpoint and the trusted certificates differ)."""
    adapters: list[Marketplace] = []
    if settings.aws_marketplace != "off":
        adapters.append(_aws_marketplace(settings, clock))
    azure = _azure_marketplace(settings, clock)
    if azure is not None:
        adapters.append(azure)
    if settings.huawei_marketplace != "off":
        adapters.append(_huawei_marketplace(settings, clock))
    adapters += _aliyun_marketplace(settings, clock)
    return adapters


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



@dataclass
class Sandboxes:
    """The emulators this process serves (None: that vendor's is not configured)."""

    aws: AwsSandbox | None = None
    huawei: HuaweiSandbox | None = None
    aliyun: AliyunSandbox | None = None  # China, under /sandbox/aliyun
    aliyun_intl: AliyunSandbox | None = None  # International, under /sandbox/aliyun-intl
    azure: AzureSandbox | None = None


def sandboxes(settings: Settings, clock: Clock, billing: BillingCenter) -> Sandboxes:
    """The emulators of the vendors configured ``sandbox``, each with the listing this
    center sells created in it."""
    found = Sandboxes()
    if settings.aws_marketplace == "sandbox":
        found.aws = AwsSandbox(clock, settings.base_url())
        # The listing the center sells, as a seller creates it in the Marketplace portal.
        found.aws.create_product(
            settings.aws_product_code, [settings.aws_dimension],
            legacy=settings.aws_legacy_identifiers,
            fulfillment_url=f"{settings.base_url()}{AWS_FULFILLMENT_PATH}",
            notification_url=f"{settings.base_url()}{AWS_NOTIFICATIONS_PATH}")
    if settings.huawei_marketplace != "off" and settings.public_url:
        # Buyers are sent to the activation page at this address (else the one
        # KooGallery called).
        billing.huawei_activities.public_url = settings.base_url()
    if settings.huawei_marketplace == "sandbox":
        found.huawei = HuaweiSandbox(clock, settings.base_url(),
                                               access_key=_huawei_keys(settings)[0],
                                               secret_key=_huawei_keys(settings)[1])
        # The product the center sells, as a seller lists it in the KooGallery console:
        # pay-per-use, its activities sent to this server.
        found.huawei.create_product(
            settings.huawei_product_id, settings.huawei_sku_code,
            f"{settings.base_url()}{HUAWEI_ACTIVITIES_PATH}", charging_mode="ON_DEMAND",
            billing=settings.huawei_billing)
    if settings.aliyun_marketplace == "sandbox":
        found.aliyun = AliyunSandbox(clock, settings.base_url(), CHINA)
        found.aliyun_intl = AliyunSandbox(clock, settings.base_url(), INTERNATIONAL)
        # The listing, as the seller publishes it, on the site of the center's currency.
        site = (found.aliyun if _aliyun_profile(settings) == "china"
                else found.aliyun_intl)
        site.create_product(settings.aliyun_product_code,
                            f"{settings.base_url()}{ALIYUN_SPI_PATH}",
                            settings.resolve_aliyun_spi_key(), billing=settings.aliyun_billing)
    if settings.azure_marketplace == "sandbox":
        found.azure = _azure_sandbox(settings, clock, billing.marketplaces)
    return found


def routers(runtime: Runtime) -> Iterator[APIRouter]:
    """The routers of the emulators a runtime serves."""
    if runtime.aws_sandbox is not None:
        yield aws_router(runtime.aws_sandbox)
    if runtime.huawei_sandbox is not None:
        yield huawei_router(runtime.huawei_sandbox)
    for aliyun in (runtime.aliyun_sandbox, runtime.aliyun_intl_sandbox):
        if aliyun is not None:
            yield aliyun_router(aliyun)
    if runtime.azure_sandbox is not None:
        yield azure_router(runtime.azure_sandbox)
