"""The settlement waterfall (reference-billing.md §4.1, decisions.md 15–17).

A charge is paid, in order, from standard vouchers, discount vouchers, prepaid
cards (soonest expiry first), cash, and finally the negative prepaid balance
(arrears). Vouchers never pay SMS or synthetic tests; expired instruments pay
nothing. One charge may be split across several instruments.

A negative correction (:func:`give_back`) goes the other way: it pays arrears
first (decisions.md 17), then returns to what paid the corrected detail, in
reverse order, so that voucher money never turns into cash.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

STANDARD_VOUCHER = "voucher_standard"
DISCOUNT_VOUCHER = "voucher_discount"
CARD = "card"
CASH = "cash"
# The ledger account whose balance goes below zero when the account owes (arrears).
PREPAID = "prepaid"
CLOUD = "cloud_receivable"  # what a cloud-settled charge leaves to the marketplace account

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
        cash_minor: int, rest: str = PREPAID) -> list[Split]:
    """How a charge of ``amount_minor`` for ``item`` is paid at ``at``; the splits sum to it.
    What nothing else pays goes to ``rest``: the prepaid balance (arrears), or a cloud
    account."""
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
        splits.append(Split(rest, rest, remaining))
    assert sum(s.amount_minor for s in splits) == amount_minor
    return splits


BREAKAGE = "breakage"  # what is left on instruments when they expire


def give_back(amount_minor: int, arrears_minor: int, paid: Mapping[str, tuple[str, int]],
              rest: str = CASH) -> list[Split]:
    """How a negative correction of ``amount_minor`` is returned; the splits sum to it.

    ``paid`` is what each source paid, net, for the detail being corrected:
    ``{source: (kind, amount)}`` with sources as :func:`pay` names them.
    Arrears (``arrears_minor`` owed by the account) are paid first. Then each
    source gets back at most what it paid, in reverse waterfall order: cash,
    cards (latest expiry first is not known here: the order of ``paid``,
    reversed), discount vouchers, standard vouchers; an instrument that has
    expired since gets its share back too (its account then writes it off, so
    that what it paid for the line is known to be returned). Whatever is left,
    when more is returned than was paid, goes to ``rest`` (cash; the cloud
    account for a cloud-settled line, whose cloud share comes back first as
    cash's does).
    """
    assert amount_minor > 0 and arrears_minor >= 0
    remaining = amount_minor
    splits: list[Split] = []
    if arrears_minor:
        take = min(remaining, arrears_minor)
        splits.append(Split(PREPAID, PREPAID, take))
        remaining -= take
    rank = {CASH: 0, CLOUD: 0, CARD: 1, DISCOUNT_VOUCHER: 2, STANDARD_VOUCHER: 3}
    sources = [(source, kind, amount) for source, (kind, amount) in paid.items()
               if kind in rank and amount > 0]
    order = {source: n for n, source in enumerate(paid)}
    sources.sort(key=lambda s: (rank[s[1]], -order[s[0]]))
    for source, kind, amount in sources:
        if remaining == 0:
            break
        take = min(remaining, amount)
        splits.append(Split(source, kind, take))
        remaining -= take
    if remaining:
        splits.append(Split(rest, rest, remaining))
    merged: dict[tuple[str, str], int] = {}
    for split in splits:
        merged[(split.source, split.kind)] = merged.get((split.source, split.kind), 0) + split.amount_minor
    result = [Split(source, kind, amount) for (source, kind), amount in merged.items()]
    assert sum(s.amount_minor for s in result) == amount_minor
    return result
