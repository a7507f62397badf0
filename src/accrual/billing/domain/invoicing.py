"""What a monthly bill leaves to invoice, and how a request takes it (decisions.md 21,
reference-billing.md §4.8).

Per monthly bill::

    invoiceable = consumption of the bill paid from cash
                + prepaid-card purchases paid with cash in the bill's month
                - what requests not rejected already took from the bill

never below zero. A request takes its amount from the oldest named bill first. Pure:
the service (``billing.services.invoices``) sums the postings and stores the request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from accrual.contract.errors import Conflict, Invalid
from accrual.money import format_minor

MAX_MONTHS = 36  # monthly bills named by one request
MAX_REASON_LENGTH = 500
INVOICE_NUMBER = re.compile(r"[0-9A-Za-z][0-9A-Za-z/_.-]{0,63}")


class RequestStatus(StrEnum):
    REQUESTED = "requested"
    ISSUED = "issued"
    REJECTED = "rejected"


@dataclass(frozen=True)
class BillParts:
    """One monthly bill's parts of the invoiceable amount, in minor units."""

    consumption_paid_in_cash_minor: int
    card_purchases_paid_in_cash_minor: int
    requested_minor: int  # taken by requests not rejected

    @property
    def invoiceable_minor(self) -> int:
        """What is left to invoice: never below zero (a refund of cash, a rejected and
        re-requested amount, never make a bill owe an invoice back)."""
        return max(self.consumption_paid_in_cash_minor + self.card_purchases_paid_in_cash_minor
                   - self.requested_minor, 0)


def check_months(months: Sequence[date]) -> list[date]:
    """The bills one request names, each once in the order given: 1 to MAX_MONTHS."""
    wanted = list(dict.fromkeys(months))
    if not wanted:
        raise Invalid("no_bills", "name at least one monthly bill (YYYY-MM)")
    if len(wanted) > MAX_MONTHS:
        raise Invalid("too_many_bills", f"one invoice covers at most {MAX_MONTHS} monthly bills")
    return wanted


def request_total(asked_minor: int | None, available_minor: int, currency: str) -> int:
    """The amount a request is for: what it asks, or all that is available when it asks
    for no amount. Nothing available, or more asked than available, is 422."""
    if available_minor == 0:
        raise Invalid("nothing_to_invoice", "nothing on these bills is left to invoice")
    total = available_minor if asked_minor is None else asked_minor
    if total > available_minor:
        raise Invalid("amount_exceeds_invoiceable",
                      f"at most {format_minor(available_minor, currency)} of these bills can "
                      "be invoiced")
    return total


def allocate(total_minor: int, available: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Spread a request over its bills, oldest first: ``available`` is (bill id, invoiceable)
    in the bills' order; the answer is (bill id, amount taken) for each bill that gives
    something. The amounts add up to ``total_minor``, which must be at most the sum
    available."""
    taken, left = [], total_minor
    for bill_id, invoiceable_minor in available:
        take = min(left, invoiceable_minor)
        if take > 0:
            taken.append((bill_id, take))
            left -= take
    if left:
        raise ValueError(f"{total_minor} is more than the bills leave to invoice")
    return taken


def check_invoice_number(value: object) -> str:
    """An issued invoice's number, trimmed: 1 to 64 letters, digits, '/', '_', '.' or '-',
    starting with a letter or digit."""
    number = value.strip() if isinstance(value, str) else ""
    if not INVOICE_NUMBER.fullmatch(number):
        raise Invalid("invalid_invoice_number",
                      "the invoice number is 1 to 64 letters, digits, '/', '_', '.' or '-'")
    return number


def check_reject_reason(value: object) -> str:
    reason = value.strip() if isinstance(value, str) else ""
    if not 1 <= len(reason) <= MAX_REASON_LENGTH:
        raise Invalid("invalid_reason", f"the reason must be 1 to {MAX_REASON_LENGTH} characters")
    return reason


def needs_decision(status: str, *, repeated: bool) -> bool:
    """Whether the operator's decision is to be written: yes on a request still
    ``requested``; no (answer it as it is) when the same decision is repeated; 409
    ``invoice_already_decided`` when it was decided otherwise."""
    if status == RequestStatus.REQUESTED:
        return True
    if repeated:
        return False
    raise Conflict("invoice_already_decided", f"the request is already {status}")
