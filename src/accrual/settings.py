"""Deployment settings: environment variables, or a settings file in the same format.

The file is ``accrual.env`` in the working directory, or the one named by
``ACCRUAL_SETTINGS_FILE``; environment variables win over it.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from accrual.infra.mail import LogMailer, Mailer, SmtpMailer
from accrual.infra.throttle import ThrottlePolicy


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ACCRUAL_", env_file=os.environ.get("ACCRUAL_SETTINGS_FILE", "accrual.env"),
        extra="ignore")

    port: int = Field(8000, validation_alias=AliasChoices("PORT", "ACCRUAL_PORT"))
    host: str = "127.0.0.1"
    data_dir: Path = Path("var")
    admin_token: str | None = None
    site: str = "cn1"
    site_group: Literal["cn", "intl"] = "cn"
    timezone: str | None = None  # the site's; default by site group
    currency: Literal["CNY", "USD"] = "CNY"  # the billing center's
    billing_timezone: str | None = None  # default by currency
    console_db_url: str | None = None
    billing_db_url: str | None = None
    day_close_grace_minutes: int = Field(30, ge=0, le=24 * 60)
    late_horizon_days: int = Field(35, ge=1, le=400)
    scheduler: bool = True
    scheduler_interval_seconds: float = Field(2.0, gt=0)
    seed_demo: bool = True
    price_book: Path | None = None  # a CSV replacing the shipped price book
    # Sign-in throttling (both sides): failed sign-ins allowed per account and per client
    # address within the window; the limit's lockout lasts a window, doubling for each
    # further lockout up to the maximum.
    sign_in_account_failures: int = Field(5, ge=1, le=1000)
    sign_in_address_failures: int = Field(20, ge=1, le=100_000)
    sign_in_window_minutes: int = Field(15, ge=1, le=24 * 60)
    sign_in_max_block_minutes: int = Field(60, ge=1, le=7 * 24 * 60)
    # The proxies whose X-Forwarded-For / X-Forwarded-Proto the server believes (uvicorn's
    # forwarded_allow_ips: comma-separated addresses or networks, "*" for any); otherwise a
    # client's address is the connection's, i.e. the proxy's.
    forwarded_allow_ips: str = "127.0.0.1"
    smtp_host: str | None = None  # unset: mail is written to the log
    smtp_port: int = 25
    smtp_from: str = "billing@accrual.localhost"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    # Online recharge: "sandbox" mounts the sandbox gateway under /sandbox/pay; "off" has none.
    payment_gateway: Literal["sandbox", "off"] = "sandbox"
    payment_secret: str | None = None  # signs gateway notifies; generated when unset
    # Where people and marketplaces reach this server (fulfillment and notification URLs,
    # the sandboxes' links); default http://<host>:<port>.
    public_url: str | None = None
    # The pages' cookies are Secure (sent over HTTPS only; browsers also accept them on
    # http://localhost and 127.0.0.1). Off only for a plain-HTTP set-up on another host.
    cookie_secure: bool = True
    # AWS Marketplace: "sandbox" settles through the emulator mounted under /sandbox/aws
    # (its listing created at start); "aws" through AWS itself; "off": no AWS settlement.
    aws_marketplace: Literal["sandbox", "aws", "off"] = "sandbox"
    aws_product_code: str = Field("accrual-saas", pattern=r"^[-a-zA-Z0-9/=:_.@]{1,255}$")
    aws_dimension: str = Field("usage_minor", min_length=1, max_length=255)
    aws_region: str = "us-east-1"
    aws_endpoint_url: str | None = None  # "aws": the real endpoints of the region when unset
    aws_access_key_id: str | None = None  # "aws": boto3's credential chain when unset
    aws_secret_access_key: str | None = None
    aws_metering_window_hours: int = Field(6, ge=1, le=24)  # AWS's lateness limit
    aws_legacy_identifiers: bool = False  # meter by CustomerIdentifier (older listings)
    # --- Huawei Cloud KooGallery ------------------------------------------------------
    # "sandbox" settles through the emulator mounted under /sandbox/huawei (its product
    # created at start, its activities sent to this server); "huawei" through KooGallery
    # itself; "off": no Huawei settlement and no emulator.
    huawei_marketplace: Literal["sandbox", "huawei", "off"] = "sandbox"
    huawei_product_id: str = Field("OFFI-accrual-saas", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    huawei_sku_code: str = Field("accrual-usage", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    huawei_dimension: str = Field("usage_minor", min_length=1, max_length=255)
    # Pay-per-use reporting by the hour (report by +2 h) or by the day (by 01:00).
    huawei_billing: Literal["hourly", "daily"] = "hourly"
    # From the seller console; "sandbox" uses the emulator's own keys.
    huawei_access_key: str | None = None
    huawei_secret_key: str | None = None
    # Which secret keys the HMACs (KooGallery leaves it undocumented).
    huawei_hmac_key: Literal["access_key", "secret_key"] = "access_key"
    huawei_endpoint_url: str = "https://mkt.myhuaweicloud.com"
    huawei_fallback_url: str | None = "https://mkt.myhuaweicloud.cn"
    # How far an activity's timestamp may be from now (KooGallery: 60 s).
    huawei_tolerance_seconds: int = Field(60, ge=5, le=600)
    # --- end Huawei ---------------------------------------------------------------------
    # --- Alibaba Cloud Marketplace (settlement method "aliyun") -----------------------
    # "sandbox" mounts its emulators (China under /sandbox/aliyun, International under
    # /sandbox/aliyun-intl) and settles through the one of the center's currency (CNY:
    # China, USD: International), its listing created at start; "aliyun" settles through
    # Alibaba itself; "off": neither.
    aliyun_marketplace: Literal["sandbox", "aliyun", "off"] = "sandbox"
    aliyun_product_code: str = Field("cmapi00012345", pattern=r"^[-a-zA-Z0-9_.]{1,64}$")
    aliyun_access_key_id: str | None = None  # "aliyun": required; sandbox: the emulator's
    aliyun_access_key_secret: str | None = None
    aliyun_spi_key: str | None = None  # the seller console's ISV key; sandbox: generated
    aliyun_endpoint: str | None = None  # "aliyun": the site's OpenAPI host when unset
    aliyun_billing: Literal["hourly", "daily"] = "hourly"  # the listing's billing period
    # Azure Marketplace (decisions.md 14: a USD center only; in another currency no adapter
    # is configured): "sandbox" mounts its emulator under /sandbox/azure and settles
    # through it (its offer created at start, landing page and webhook pointing here);
    # "azure" through Microsoft's endpoints; "off": no Azure settlement, no emulator.
    azure_marketplace: Literal["sandbox", "azure", "off"] = "sandbox"
    # The publisher's Entra app entered on the offer ("sandbox": registered in the emulator;
    # its secret is generated and kept under the data dir when unset).
    azure_tenant_id: str = Field("72f988bf-86f1-41af-91ab-2d7cd011db47",
                                 pattern=r"^[0-9a-fA-F-]{36}$")
    azure_client_id: str = Field("9b0c4a1e-2f3d-4c5b-8a6e-7f8091a2b3c4",
                                 pattern=r"^[0-9a-fA-F-]{36}$")
    azure_client_secret: str | None = None
    azure_offer_id: str = Field("accrual-saas", pattern=r"^[A-Za-z0-9][-A-Za-z0-9_.]{0,49}$")
    azure_publisher_id: str | None = None  # checked on webhook calls when set
    # The offer's plans, comma separated, the first the default ("sandbox": the plans its
    # offer is created with); each meters the money dimension.
    azure_plan_ids: str = Field("payg,pro", pattern=r"^[-A-Za-z0-9_.]{1,50}(,[-A-Za-z0-9_.]{1,50})*$")
    azure_dimension: str = Field("usage_minor", min_length=1, max_length=255)
    azure_login_url: str | None = None  # "azure": https://login.microsoftonline.com when unset
    azure_api_url: str | None = None  # "azure": https://marketplaceapi.microsoft.com when unset

    def mailer(self) -> Mailer:
        if not self.smtp_host:
            return LogMailer()
        return SmtpMailer(self.smtp_host, self.smtp_port, self.smtp_from,
                          username=self.smtp_username, password=self.smtp_password,
                          starttls=self.smtp_starttls)

    def sign_in_policy(self) -> ThrottlePolicy:
        window = timedelta(minutes=self.sign_in_window_minutes)
        return ThrottlePolicy(
            account_failures=self.sign_in_account_failures,
            address_failures=self.sign_in_address_failures, window=window,
            max_block=max(window, timedelta(minutes=self.sign_in_max_block_minutes)))

    def site_zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone or ("Asia/Shanghai" if self.site_group == "cn" else "UTC"))

    def billing_zone(self) -> ZoneInfo:
        return ZoneInfo(self.billing_timezone or ("Asia/Shanghai" if self.currency == "CNY" else "UTC"))

    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    def console_url(self) -> str:
        return self.console_db_url or f"sqlite:///{self.data_dir / 'console.sqlite3'}"

    def billing_url(self) -> str:
        return self.billing_db_url or f"sqlite:///{self.data_dir / 'billing.sqlite3'}"

    def resolve_admin_token(self) -> tuple[str, bool]:
        """The operator token, and whether it was generated (kept under the data dir)."""
        if self.admin_token:
            return self.admin_token, False
        return self._kept_secret("admin_token", "op_", 24), True

    def resolve_aliyun_spi_key(self) -> str:
        """The ISV key SPI calls are signed with; in sandbox mode generated once (kept
        under the data dir) when unset."""
        if self.aliyun_spi_key:
            return self.aliyun_spi_key
        if self.aliyun_marketplace == "aliyun":
            raise ValueError("ACCRUAL_ALIYUN_SPI_KEY is required with aliyun_marketplace=aliyun")
        return self._kept_secret("aliyun_spi_key", "", 24)

    def azure_plans(self) -> list[str]:
        return list(dict.fromkeys(self.azure_plan_ids.split(",")))

    def resolve_azure_client_secret(self) -> str:
        """The Entra app's secret; in sandbox mode generated once (kept under the data dir)."""
        if self.azure_client_secret:
            return self.azure_client_secret
        return self._kept_secret("azure_client_secret", "", 32)

    def resolve_payment_secret(self) -> str:
        """The secret that gateway notifies are signed with (kept under the data dir)."""
        if self.payment_secret:
            return self.payment_secret
        return self._kept_secret("payment_secret", "whsec_", 32)

    def _kept_secret(self, name: str, prefix: str, size: int) -> str:
        """The secret kept in the data dir under ``name``, made on first use (readable by
        the owner only), so a restart keeps it."""
        path = self.data_dir / name
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        secret = prefix + secrets.token_urlsafe(size)
        path.write_text(secret + "\n")
        path.chmod(0o600)
        return secret
