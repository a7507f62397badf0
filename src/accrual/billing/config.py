"""What one billing center (one currency) is configured with."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from zoneinfo import ZoneInfo

from accrual.infra.throttle import ThrottlePolicy

# decisions.md 16: discount vouchers granted per prepaid-card purchase paid with cash,
# as (purchase at least, voucher) in minor units; the CNY default.
CNY_CARD_BONUSES: tuple[tuple[int, int], ...] = (
    (10_000_00, 1_000_00), (30_000_00, 5_000_00), (100_000_00, 20_000_00))


@dataclass(frozen=True)
class BillingConfig:
    currency: str = "CNY"
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    session_ttl: timedelta = timedelta(days=7)
    sign_in: ThrottlePolicy = field(default_factory=ThrottlePolicy)
    # A registration's billing account that no console confirmed is removed after this.
    pending_registration_ttl: timedelta = timedelta(hours=1)
    # decisions.md 15: a card's face value is a multiple of this (minor units), at least
    # one of it; it is valid this long from purchase; a voucher this long from issue.
    card_step_minor: int = 100_00
    card_validity: timedelta = timedelta(days=365)
    voucher_validity: timedelta = timedelta(days=90)
    # Off (empty) for the USD center unless configured (decisions.md 16).
    card_bonuses: tuple[tuple[int, int], ...] | None = None

    def bonuses(self) -> tuple[tuple[int, int], ...]:
        if self.card_bonuses is not None:
            return self.card_bonuses
        return CNY_CARD_BONUSES if self.currency == "CNY" else ()
