"""The billing items of decisions.md (Vocabulary): unit sizes, daily rules, tiers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum


class DailyRule(StrEnum):
    # Hourly values are increments; the day's quantity is their sum.
    SUM = "sum"
    # Hourly values are cumulative distinct counts so far that day (or stock
    # levels); the day's quantity is their maximum (decisions.md 5 and 7).
    MAX = "max"


class DataType(StrEnum):
    """Data types that carry a retention policy (reference §2.5)."""

    METRICS = "metrics"
    LOGS = "logs"
    APM = "apm"
    RUM = "rum"
    BACKUP = "backup"


# Retention options and defaults per data type (reference §2.5, decisions.md 9).
RETENTION_OPTIONS: dict[DataType, tuple[int, ...]] = {
    DataType.METRICS: (3, 7, 14, 30, 180, 360),
    DataType.LOGS: (3, 7, 14, 30, 60),
    DataType.APM: (3, 7, 14, 30, 60),
    DataType.RUM: (3, 7, 14, 30, 60),
    DataType.BACKUP: (180, 360, 720),
}
RETENTION_DEFAULTS: dict[DataType, int] = {
    DataType.METRICS: 7,
    DataType.LOGS: 14,
    DataType.APM: 14,
    DataType.RUM: 14,
    DataType.BACKUP: 180,
}

# Items without a retention tier are keyed with tier 0 in price books and
# statistics, so that every key has the same shape.
NO_TIER = 0


@dataclass(frozen=True, slots=True)
class BillingItem:
    code: str
    title: str
    unit_size: Decimal
    rule: DailyRule
    data_type: DataType | None = None
    # Tiers the price book offers for this item; empty for flat items.
    tiers: tuple[int, ...] = ()
    # Only these site groups / currencies may use the item (SMS: China, CNY).
    site_groups: tuple[str, ...] = ("cn", "intl")
    currencies: tuple[str, ...] = ("CNY", "USD")
    legacy: bool = False
    # First day the item is billed at all, and the day it stopped being billed.
    available_from: date | None = None
    retired_from: date | None = None

    def offered(self, site_group: str, currency: str) -> bool:
        return site_group in self.site_groups and currency in self.currencies

    def billed_on(self, day: date) -> bool:
        return ((self.available_from is None or day >= self.available_from)
                and (self.retired_from is None or day < self.retired_from))

    def price_tiers(self) -> tuple[int, ...]:
        return self.tiers or (NO_TIER,)

    @property
    def tiered(self) -> bool:
        return bool(self.tiers)

    def default_tier(self) -> int:
        if self.data_type is None or not self.tiers:
            return NO_TIER
        return RETENTION_DEFAULTS[self.data_type]


_GB = Decimal(10**9)

ITEMS: dict[str, BillingItem] = {
    item.code: item
    for item in (
        BillingItem("timeseries", "Daily active time series", Decimal(1000), DailyRule.MAX,
                    DataType.METRICS, (3, 7, 14, 30, 180, 360)),
        BillingItem("logs", "Log records", Decimal(1_000_000), DailyRule.SUM,
                    DataType.LOGS, (3, 7, 14, 30, 60)),
        BillingItem("trace", "APM traces", Decimal(1_000_000), DailyRule.SUM,
                    DataType.APM, (3, 7, 14, 30, 60)),
        BillingItem("profile", "APM profiles", Decimal(10_000), DailyRule.SUM,
                    DataType.APM, (3, 7, 14)),
        BillingItem("rum_pv", "RUM page views", Decimal(10_000), DailyRule.SUM,
                    DataType.RUM, (3, 7, 14, 30, 60)),
        BillingItem("session_replay", "Session replays", Decimal(1000), DailyRule.MAX),
        BillingItem("synthetic_test", "Synthetic tests (platform nodes)", Decimal(10_000), DailyRule.SUM),
        BillingItem("trigger", "Task calls", Decimal(10_000), DailyRule.SUM,
                    available_from=date(2023, 11, 2)),
        BillingItem("sms", "SMS sent", Decimal(10), DailyRule.SUM,
                    site_groups=("cn",), currencies=("CNY",)),
        BillingItem("network_host", "Network (eBPF) hosts", Decimal(1), DailyRule.MAX),
        BillingItem("forward_external", "Data forwarded to external storage", _GB, DailyRule.SUM),
        BillingItem("forward_internal", "Data held in platform storage", _GB, DailyRule.MAX,
                    DataType.BACKUP, (180, 360, 720)),
        BillingItem("sensitive_scan", "Sensitive data scanned", _GB, DailyRule.SUM),
        BillingItem("scheduled_report", "Scheduled reports sent", Decimal(1), DailyRule.SUM),
        BillingItem("central_pipeline", "Raw logs processed centrally", _GB, DailyRule.SUM,
                    available_from=date(2024, 6, 26)),
        BillingItem("datakit", "DataKit hosts (legacy)", Decimal(1), DailyRule.MAX,
                    site_groups=("cn",), currencies=("CNY",), legacy=True,
                    retired_from=date(2023, 4, 20)),
    )
}


def item_for(code: str) -> BillingItem | None:
    return ITEMS.get(code)
