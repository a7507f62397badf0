"""The billing center's bounds: on money it stores and on the dates it takes.

Money. Every stored amount is an integer of minor units that stays far inside
64 bits, so no database ever turns it into a float and no sum of two of them
can overflow:

* ``MAX_MOVEMENT_MINOR``: the largest single amount the billing API takes
  (a recharge, an online order, a card's face value, a voucher): 10^12
  currency units. Larger is 422 ``invalid_amount``.
* ``MAX_POSTING_MINOR``: the largest amount of one posting (and of one billing
  detail a console sends): 10^15 currency units, the bound ``accrual.money``
  already puts on any amount. A detail past it cannot be settled
  (:class:`AmountLimitExceeded`).
* ``MAX_BALANCE_MINOR``: every cached balance of a customer ledger account
  (cash, the prepaid balance whose negative is arrears, each card and voucher)
  stays within ± this, 10^15 currency units. A movement that would take one past
  it is refused before anything is written: 422 ``balance_limit_exceeded`` on the
  API, :class:`BalanceLimitExceeded` from settlement.

Since |balance| and |posting| are at most 10^17 minor units, balance + posting
stays below 2·10^17, well inside the 9.2·10^18 of a signed 64-bit integer. The
same bounds are CHECK constraints on ``ledger_accounts.balance_minor`` and
``postings.amount_minor`` (migration billing_0009), as the last line.

The center's own accounts (revenue, bank clearing, promotions, breakage, cloud
receivable) take every tenant's movements. They have no balance to bound: their
balances are never cached, only summed when read, exactly (PostgreSQL's
``SUM(bigint)`` is ``numeric``; on SQLite an exact aggregate, see
``accrual.infra.db.exact_sum``). Each of their postings is bounded like any
other, so no tenant's volume can make another tenant's settlement fail.

Dates. Every day and month the billing API takes lies in
``FIRST_DAY``…``LAST_DAY`` (2000-01-01 to 2099-12-31); a month is written
``YYYY-MM`` with ASCII digits. Outside is 422 ``date_out_of_range``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date

from accrual.contract.errors import Invalid
from accrual.money import MAX_AMOUNT, InvalidDecimal, format_minor, parse_amount

MINOR_PER_UNIT = 100  # both centers' currencies (CNY, USD) have two decimals
MAX_MOVEMENT_MINOR = 10**12 * MINOR_PER_UNIT
MAX_POSTING_MINOR = int(MAX_AMOUNT) * MINOR_PER_UNIT
MAX_BALANCE_MINOR = 10**15 * MINOR_PER_UNIT

# Idempotency-Key (header): 1 to 255 printable ASCII characters, Stripe's bound; safe to
# log and to store anywhere. A username: the grammar a billing account is registered with.
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,63}$"

FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2099, 12, 31)
MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
_MONTH = re.compile(MONTH_PATTERN)
DATE_WINDOW = f"{FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()}"
MONTH_WINDOW = f"{FIRST_DAY:%Y-%m} to {LAST_DAY:%Y-%m}"


class LedgerLimitExceeded(Invalid):
    """A movement the ledger refuses because a bound would be passed; nothing was written.

    On the API it answers 422 with its code; raised while settling a billing detail it
    fails that detail loudly (never clamped), and the inbox can set the message aside."""

    def __init__(self, code: str, message: str, *, owner: str, account: str,
                 amount_minor: int) -> None:
        super().__init__(code, message)
        self.owner = owner
        self.account = account
        self.amount_minor = amount_minor


class BalanceLimitExceeded(LedgerLimitExceeded):
    """A customer ledger balance would leave ±``MAX_BALANCE_MINOR``."""


class AmountLimitExceeded(LedgerLimitExceeded):
    """One posting would exceed ``MAX_POSTING_MINOR``."""


def movement_minor(value: object, currency: str) -> int:
    """A positive API amount in minor units, at most ``MAX_MOVEMENT_MINOR``.

    Raises ``InvalidDecimal`` (the callers' 422 ``invalid_amount``)."""
    amount_minor = parse_amount(value, currency)
    if amount_minor > MAX_MOVEMENT_MINOR:
        raise InvalidDecimal(value, "must be at most "
                             f"{format_minor(MAX_MOVEMENT_MINOR, currency)}")
    return amount_minor


def check_movement(owner: str, balances: Mapping[str, int], postings: Mapping[str, int],
                   currency: str, *, what: str = "this movement") -> None:
    """Refuse ``postings`` (by account key) when one exceeds ``MAX_POSTING_MINOR`` or would
    take a balance in ``balances`` (the cached ones it moves) past ``MAX_BALANCE_MINOR``.
    Keys missing from ``balances`` are the center's own, uncached accounts."""
    for key, amount in postings.items():
        check_posting(owner, key, amount, currency, what=what)
    for key, amount in postings.items():
        if key in balances:
            check_balance(owner, key, balances[key], amount, currency, what=what)


def check_posting(owner: str, key: str, amount_minor: int, currency: str, *,
                  what: str = "this movement") -> None:
    if abs(amount_minor) > MAX_POSTING_MINOR:
        raise AmountLimitExceeded(
            "amount_limit_exceeded",
            f"{what} moves {format_minor(abs(amount_minor), currency)} {currency} at once; "
            f"one movement is at most {format_minor(MAX_POSTING_MINOR, currency)}",
            owner=owner, account=key, amount_minor=amount_minor)


def check_balance(owner: str, key: str, balance_minor: int, amount_minor: int, currency: str,
                  *, what: str = "this movement") -> None:
    after = balance_minor + amount_minor
    if -MAX_BALANCE_MINOR <= after <= MAX_BALANCE_MINOR:
        return
    limit = format_minor(MAX_BALANCE_MINOR, currency)
    raise BalanceLimitExceeded(
        "balance_limit_exceeded",
        f"{what} would take the {key} balance of {owner} to "
        f"{format_minor(after, currency)} {currency}; a balance stays between -{limit} and "
        f"{limit}. Nothing was credited or charged.",
        owner=owner, account=key, amount_minor=amount_minor)


def check_day(name: str, day: date) -> date:
    """A day the API takes: 422 ``date_out_of_range`` outside the window."""
    if not FIRST_DAY <= day <= LAST_DAY:
        raise Invalid("date_out_of_range",
                      f"{name} must be a day from {DATE_WINDOW}; {day.isoformat()} is not")
    return day


MAX_RANGE_DAYS = 366


def check_range(start: date, end: date) -> None:
    """A period of days the API takes: both in the window, 'from' not after 'to', at most
    ``MAX_RANGE_DAYS`` apart (422 ``date_out_of_range`` / ``invalid_range``)."""
    check_day("from", start)
    check_day("to", end)
    if start > end or (end - start).days > MAX_RANGE_DAYS:
        raise Invalid("invalid_range", "'from' must not be after 'to', and at most 366 days apart")


def parse_month(text: object, name: str = "month") -> date:
    """``YYYY-MM`` (ASCII digits, month 01–12) within the window; its first day."""
    if not isinstance(text, str) or not _MONTH.fullmatch(text):
        raise Invalid("invalid_month",
                      f"{name} is written YYYY-MM (e.g. 2026-10), from {MONTH_WINDOW}")
    year = int(text[:4])  # compared before date(): year 0 is no date at all
    if not FIRST_DAY.year <= year <= LAST_DAY.year:
        raise Invalid("date_out_of_range",
                      f"{name} must be a month from {MONTH_WINDOW}; {text} is not")
    return date(year, int(text[5:7]), 1)


def check_idempotency_key(key: object) -> str:
    """422 ``invalid_idempotency_key`` unless 1 to 255 printable ASCII characters."""
    if not isinstance(key, str) or not _IDEMPOTENCY_KEY.fullmatch(key):
        raise Invalid("invalid_idempotency_key",
                      "Idempotency-Key must be 1 to 255 printable ASCII characters "
                      "(no spaces), e.g. a V4 UUID")
    return key
