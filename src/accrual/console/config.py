"""What one console deployment (one site) is configured with."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from zoneinfo import ZoneInfo

from accrual.infra.throttle import ThrottlePolicy


@dataclass(frozen=True)
class ConsoleConfig:
    site: str = "cn1"
    site_group: str = "cn"  # cn | intl: picks the price column with `currency`
    zone: ZoneInfo = ZoneInfo("Asia/Shanghai")  # noqa: RUF009 - zones are immutable and cached
    currency: str = "CNY"  # the billing center's currency this site feeds
    day_close_grace: timedelta = timedelta(minutes=30)
    late_horizon: timedelta = timedelta(days=35)
    future_tolerance: timedelta = timedelta(minutes=5)
    max_batch_records: int = 50_000
    session_ttl: timedelta = timedelta(days=7)
    sign_in: ThrottlePolicy = field(default_factory=ThrottlePolicy)
