"""What one billing center (one currency) is configured with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class BillingConfig:
    currency: str = "CNY"
    zone: ZoneInfo = ZoneInfo("Asia/Shanghai")
    session_ttl: timedelta = timedelta(days=7)
    # A registration's billing account that no console confirmed is removed after this.
    pending_registration_ttl: timedelta = timedelta(hours=1)
