"""The settlement waterfall (reference-billing.md §4.1, decisions.md 15–17).

A charge is paid, in order, from standard vouchers, discount vouchers, prepaid
cards (soonest expiry first), cash, and finally the negative prepaid balance
(arrears). Vouchers never pay SMS or synthetic tests; expired instruments pay
nothing. One charge may be split across several instruments.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

STANDARD_VOUCHER = "voucher_standard"
DISCOUNT_VOUCHER = "voucher_discount"
CARD = "card"
CASH = "cash"
ARREARS = "prepaid"  # the negative prepaid balance

# Items vouchers may not pay for.
VOUCHER_EXCLUDED_ITEMS = frozenset({"sms", "synthetic_test"})

_ORDER = {STANDARD_VOUCHER: 0, DISCOUNT_VOUCHER: 1, CARD: 2}


@dataclass(frozen=True, slots=True)
class Instrument:
    """A voucher or prepaid card with what is left on it."""

    id: str
    kind: str  # voucher_standard | voucher_discount | card
    balance_minor: int
    expires_at: datetime
    created_at: datetime

    def usable(self, at: datetime, item: str) -> bool:
        if self.balance_minor <= 0 or self.expires_at <= at:
            return False
        return not (self.kind != CARD and item in VOUCHER_EXCLUDED_ITEMS)


@dataclass(frozen=True, slots=True)
class Split:
    source: str  # an instrument id, "cash" or "prepaid"
    kind: str
    amount_minor: int


def pay(amount_minor: int, item: str, at: datetime, instruments: Iterable[Instrument],
        cash_minor: int) -> list[Split]:
    """How a charge of ``amount_minor`` for ``item`` is paid at ``at``; the splits sum to it."""
    assert amount_minor > 0
    remaining = amount_minor
    splits: list[Split] = []
    ordered = sorted((i for i in instruments if i.usable(at, item)),
                     key=lambda i: (_ORDER[i.kind], i.expires_at, i.created_at, i.id))
    for instrument in ordered:
        if remaining == 0:
            break
        take = min(remaining, instrument.balance_minor)
        splits.append(Split(instrument.id, instrument.kind, take))
        remaining -= take
    if remaining and cash_minor > 0:
        take = min(remaining, cash_minor)
        splits.append(Split(CASH, CASH, take))
        remaining -= take
    if remaining:
        splits.append(Split(ARREARS, ARREARS, remaining))
    assert sum(s.amount_minor for s in splits) == amount_minor
    return splits
