"""How money moves between a billing account's ledger accounts.

Each function returns the postings of one balanced journal entry as
``{ledger account kind: signed amount in minor units}``; the amounts sum to
zero. Balances are seen from the customer: cash is what they hold, prepaid
below zero is what they owe (arrears, decisions.md 17).
"""

from __future__ import annotations

CASH = "cash"
PREPAID = "prepaid"
# The billing center's own accounts (owner "system").
REVENUE = "revenue"
BANK_CLEARING = "bank_clearing"

Postings = dict[str, int]


def _balanced(postings: Postings) -> Postings:
    postings = {kind: amount for kind, amount in postings.items() if amount != 0}
    assert sum(postings.values()) == 0, postings
    return postings


def charge(amount_minor: int, cash_minor: int) -> Postings:
    """Pay a charge: cash first, the rest on the prepaid balance (which may go negative).

    Vouchers and prepaid cards come before cash in the full waterfall; this
    center has only cash so far.
    """
    assert amount_minor > 0
    from_cash = min(amount_minor, max(cash_minor, 0))
    return _balanced({CASH: -from_cash, PREPAID: -(amount_minor - from_cash),
                      REVENUE: amount_minor})


def refund(amount_minor: int, prepaid_minor: int) -> Postings:
    """A negative adjustment: pay down arrears first, the rest back to cash."""
    assert amount_minor > 0
    to_arrears = min(amount_minor, max(-prepaid_minor, 0))
    return _balanced({PREPAID: to_arrears, CASH: amount_minor - to_arrears,
                      REVENUE: -amount_minor})


def recharge(amount_minor: int, prepaid_minor: int) -> Postings:
    """Credit cash from a transfer; a top-up settles arrears first (decisions.md 17)."""
    assert amount_minor > 0
    to_arrears = min(amount_minor, max(-prepaid_minor, 0))
    return _balanced({BANK_CLEARING: -amount_minor, CASH: amount_minor - to_arrears,
                      PREPAID: to_arrears})


def arrears(prepaid_minor: int) -> int:
    return max(-prepaid_minor, 0)
