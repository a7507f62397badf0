"""How money moves between ledger accounts.

Each function returns the postings of one balanced journal entry as
``{ledger account: signed amount in minor units}``; the amounts sum to zero.
A ledger account is named by its kind for a billing account's own accounts
(``cash``, ``prepaid``) and the center's (``revenue``, …), or by the
instrument's id for a prepaid card or voucher, each of which has an account
of its own. Balances are seen from the customer: cash, cards and vouchers are
what they hold, prepaid below zero is what they owe (arrears, decisions.md 17).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from accrual.billing.domain import waterfall
from accrual.billing.domain.arrears import owed_minor

CASH = waterfall.CASH
PREPAID = waterfall.PREPAID  # goes below zero when the account owes (arrears)
# The billing center's own accounts (owner "system").
REVENUE = "revenue"
BANK_CLEARING = "bank_clearing"  # money received from outside: transfers, gateways, partners
PROMOTIONS = "promotions"  # what vouchers given away are funded from
BREAKAGE = waterfall.BREAKAGE  # instrument balances written off at expiry
# What cloud-settled workspaces leave to their marketplace account (reference-billing.md
# §4.1: vouchers and cards first, then the cloud account's cash): to be billed by the vendor.
CLOUD_RECEIVABLE = waterfall.CLOUD
CLOUD_METHODS = ("aws", "aliyun", "huawei", "azure")

Postings = dict[str, int]

_NEVER = datetime.max.replace(tzinfo=UTC)


def _balanced(postings: Postings) -> Postings:
    postings = {account: amount for account, amount in postings.items() if amount != 0}
    assert sum(postings.values()) == 0, postings
    return postings


def charge(amount_minor: int, cash_minor: int, instruments: Iterable[waterfall.Instrument] = (),
           item: str = "", at: datetime = _NEVER, *, cloud: bool = False) -> Postings:
    """Pay a charge by the waterfall: vouchers, cards, cash, then the prepaid balance
    (which may go negative). Settled through a cloud account (``cloud``), the wallet's
    cash is not used and the cloud account takes the rest."""
    splits = waterfall.pay(amount_minor, item, at, instruments, 0 if cloud else cash_minor,
                           rest=waterfall.CLOUD if cloud else waterfall.PREPAID)
    postings: Postings = {REVENUE: amount_minor}
    for split in splits:
        postings[split.source] = postings.get(split.source, 0) - split.amount_minor
    return _balanced(postings)


def refund(amount_minor: int, prepaid_minor: int,
           paid: Mapping[str, tuple[str, int]] | None = None,
           *, cloud: bool = False) -> Postings:
    """A negative correction: pay down arrears first, then back to what paid the
    corrected detail (:func:`waterfall.give_back`); with nothing known, to cash (to the
    cloud account for a cloud-settled line, which never pays arrears)."""
    splits = waterfall.give_back(amount_minor, 0 if cloud else owed_minor(prepaid_minor),
                                 paid or {},
                                 rest=waterfall.CLOUD if cloud else waterfall.CASH)
    postings: Postings = {REVENUE: -amount_minor}
    for split in splits:
        postings[split.source] = postings.get(split.source, 0) + split.amount_minor
    return _balanced(postings)


def recharge(amount_minor: int, prepaid_minor: int) -> Postings:
    """Credit cash from a transfer; a top-up settles arrears first (decisions.md 17)."""
    assert amount_minor > 0
    to_arrears = min(amount_minor, max(-prepaid_minor, 0))
    return _balanced({BANK_CLEARING: -amount_minor, CASH: amount_minor - to_arrears,
                      PREPAID: to_arrears})


def fund(instrument_id: str, amount_minor: int, source: str) -> Postings:
    """Put ``amount_minor`` on a new card or voucher from ``source``: ``cash`` (a card
    bought from the cash balance), ``bank_clearing`` (paid outside, e.g. a partner's
    card) or ``promotions`` (a voucher given away)."""
    assert amount_minor > 0 and instrument_id not in (CASH, PREPAID, source)
    return _balanced({source: -amount_minor, instrument_id: amount_minor})


def write_off(instrument_id: str, balance_minor: int) -> Postings:
    """What is left on an expired card or voucher leaves it, through the ledger."""
    assert balance_minor > 0
    return _balanced({instrument_id: -balance_minor, BREAKAGE: balance_minor})



def cloud_to_wallet(amount_minor: int, cash_minor: int) -> Postings:
    """What a marketplace will not bill (a refused report) leaves the cloud receivable and
    is owed through the wallet: paid from cash, the rest from the prepaid balance (which
    may go negative: arrears)."""
    assert amount_minor > 0
    from_cash = min(amount_minor, max(cash_minor, 0))
    return _balanced({CLOUD_RECEIVABLE: amount_minor, CASH: -from_cash,
                      PREPAID: -(amount_minor - from_cash)})


def wallet_from_cloud(amount_minor: int, prepaid_minor: int) -> Postings:
    """What corrections gave back to a cloud account that can no longer be billed (its
    subscription ended) goes to the wallet instead: arrears first, then cash."""
    assert amount_minor > 0
    to_arrears = min(amount_minor, owed_minor(prepaid_minor))
    return _balanced({CLOUD_RECEIVABLE: -amount_minor, PREPAID: to_arrears,
                      CASH: amount_minor - to_arrears})
