"""Rules of prepaid cards and vouchers (reference-billing.md §4.3–4.4, decisions.md 15–16).

Pure: what a card's face value may be, which bonus discount voucher a card
bought with cash brings, how long a card or voucher is valid, what state one
is in at a moment, and the activation codes' format and redemption rule. The
service (``billing.services.instruments``) loads rows, calls these, and writes.
Which items vouchers may pay is the waterfall's rule
(``billing.domain.waterfall.VOUCHER_EXCLUDED_ITEMS``).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from accrual.billing.domain import bounds, waterfall
from accrual.contract.errors import Conflict, Invalid
from accrual.money import format_minor

CARD = waterfall.CARD
VOUCHER_KINDS = (waterfall.STANDARD_VOUCHER, waterfall.DISCOUNT_VOUCHER)

MAX_VALIDITY_DAYS = 3650
MAX_CODES = 1000  # made by one request
MAX_REFERENCE_LENGTH = 128
CODE_REDEEM_WITHIN = timedelta(days=90)
# Activation codes: 16 symbols of Crockford's base 32 (80 bits), shown in groups of four.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 16
_MAX_CODE_INPUT = 64  # what a person may type, dashes and spaces included
# Crockford: I and L read as 1, O as 0; dashes and spaces are only for reading.
_READ_AS = str.maketrans("ILO", "110", "- ")


class Source(StrEnum):
    """How a card or voucher was funded (``instruments.source``)."""

    PURCHASE = "purchase"  # a card bought from the cash balance
    PARTNER = "partner"  # a card sold by a partner, paid outside the center
    OPERATOR = "operator"  # a voucher put on the account by the operator
    BONUS = "bonus"  # the discount voucher a card purchase earned
    CODE = "code"  # a voucher redeemed from an activation code


class Status(StrEnum):
    """What a card or voucher shows: it pays, it is spent, or it can no longer pay."""

    ACTIVE = "active"
    USED_UP = "used_up"
    EXPIRED = "expired"


def status_at(*, written_off: bool, expires_at: datetime, balance_minor: int,
              now: datetime) -> Status:
    """The state shown at ``now``: expired from its expiry on, even before the expiry run
    has written it off; used up when nothing is left on it."""
    if written_off or expires_at <= now:
        return Status.EXPIRED
    if balance_minor == 0:
        return Status.USED_UP
    return Status.ACTIVE


def card_face_minor(face_value: object, currency: str, step_minor: int) -> int:
    """A card's face value in minor units: a movement amount that is a whole multiple of
    the center's card step (so at least one step). Raises ``InvalidDecimal`` (the API's
    422 ``invalid_amount``) or 422 ``invalid_face_value``."""
    face = bounds.movement_minor(face_value, currency)
    if face % step_minor:
        unit = format_minor(step_minor, currency)
        raise Invalid("invalid_face_value",
                      f"a card's face value is a multiple of {unit} (at least {unit})")
    return face


def bonus_for(face_minor: int, bonuses: Iterable[tuple[int, int]]) -> int:
    """The discount voucher (minor units) a card of this face value bought with cash
    earns: the largest bonus among the thresholds it reaches, 0 when it reaches none.

    ``bonuses`` are (purchase at least, voucher) pairs, in minor units."""
    return max((bonus for threshold, bonus in bonuses if face_minor >= threshold), default=0)


def check_affordable(cash_minor: int, face_minor: int, currency: str) -> None:
    """A card is bought from cash only: too little cash is 409 ``insufficient_balance``."""
    if cash_minor < face_minor:
        raise Conflict("insufficient_balance",
                       f"the cash balance ({format_minor(cash_minor, currency)}) is less "
                       f"than the card's face value ({format_minor(face_minor, currency)});"
                       " recharge first")


def validity(days: object, default: timedelta) -> timedelta:
    """How long a card, voucher or code stays valid: ``days`` (1 to MAX_VALIDITY_DAYS, an
    integer, not a boolean) or the default when none is given."""
    if days is None:
        return default
    if isinstance(days, bool) or not isinstance(days, int) \
            or not 1 <= days <= MAX_VALIDITY_DAYS:
        raise Invalid("invalid_validity", f"validity is 1 to {MAX_VALIDITY_DAYS} days")
    return timedelta(days=days)


def check_reference(reference: object) -> str:
    """The caller's reference of a grant (its idempotency): 1 to 128 characters."""
    if not isinstance(reference, str) or not 1 <= len(reference) <= MAX_REFERENCE_LENGTH:
        raise Invalid("invalid_reference",
                      f"reference must be 1 to {MAX_REFERENCE_LENGTH} characters")
    return reference


def check_voucher_kind(kind: object) -> str:
    if not isinstance(kind, str) or kind not in VOUCHER_KINDS:
        raise Invalid("invalid_voucher_kind", "kind is voucher_standard or voucher_discount")
    return kind


def check_code_count(count: object) -> int:
    if not isinstance(count, int) or not 1 <= count <= MAX_CODES:
        raise Invalid("invalid_count", f"count must be 1 to {MAX_CODES}")
    return count


# -- activation codes ------------------------------------------------------------------


def new_code() -> str:
    """A fresh activation code: CODE_LENGTH random symbols of CODE_ALPHABET."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def show_code(code: str) -> str:
    """A code as a person reads it: groups of four joined by dashes."""
    return "-".join(code[n:n + 4] for n in range(0, len(code), 4))


def normalise_code(code: object) -> str:
    """A typed code as stored: upper case, without dashes and spaces, I and L as 1, O as 0.
    Anything that is not a string of 1 to 64 characters is 422 ``invalid_code``."""
    if not isinstance(code, str) or not 1 <= len(code) <= _MAX_CODE_INPUT:
        raise Invalid("invalid_code", "the activation code is 16 letters and digits")
    return code.upper().translate(_READ_AS)


def code_hash(normal_code: str) -> str:
    """What is kept of a code (the code itself is shown once, when made)."""
    return hashlib.sha256(normal_code.encode()).hexdigest()


@dataclass(frozen=True)
class StoredCode:
    """What the center knows of one activation code when someone redeems it."""

    currency: str
    redeem_by: datetime
    redeemed_at: datetime | None
    redeemed_by: str | None
    voucher_id: str | None


def redemption(code: StoredCode, account_id: str, currency: str, now: datetime) -> str | None:
    """Whether ``account_id`` may redeem this code now.

    Answers the voucher it already made when this account redeemed it before (a retry
    gets the same voucher), None when a new voucher is to be made. Refuses (409) a code
    another account used (``code_already_used``), one past its redeem-by time
    (``code_expired``), and one of another billing center (``currency_mismatch``)."""
    if code.redeemed_at is not None:
        if code.redeemed_by == account_id and code.voucher_id is not None:
            return code.voucher_id
        raise Conflict("code_already_used", "this activation code was already used")
    if code.redeem_by <= now:
        raise Conflict("code_expired", "this activation code can no longer be used "
                                       f"(it expired {code.redeem_by.isoformat()})")
    if code.currency != currency:
        raise Conflict("currency_mismatch", "this code is for another billing center")
    return None
