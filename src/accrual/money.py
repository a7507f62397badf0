"""One policy for money and decimal quantities.

Amounts are ``Decimal`` values built through :func:`to_decimal`, which refuses
floats and bounds digits and exponent *before* any arithmetic, so hostile
input like ``1E+999999`` never reaches the decimal context. Stored amounts are
integer minor units (fen, cents); rounding happens only in
:func:`round_amount` (decisions.md 10: half-up to 0.01, once per detail).
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext

CURRENCIES = ("CNY", "USD")
MINOR_UNITS = {"CNY": 2, "USD": 2}
# Bounds that keep parsing cheap and results exact: no input may carry more
# significant digits or a larger exponent than these.
MAX_DIGITS = 30
MAX_EXPONENT = 30
CENT = Decimal("0.01")
# No single money movement may reach this (it keeps minor units inside 64 bits).
MAX_AMOUNT = Decimal(10**15)
# The API's number grammar for decimal strings: ASCII digits, an optional leading minus,
# an optional fraction. No exponent, no "+", no "_", no spaces, no other scripts' digits
# (all of which Python's Decimal would take).
NUMBER_GRAMMAR = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
# Wide enough that no value to_decimal accepts can overflow a quantize or a
# product of a quantity and a unit price.
_EXACT = Context(prec=2 * (MAX_DIGITS + MAX_EXPONENT), rounding=ROUND_HALF_UP)


class InvalidDecimal(ValueError):
    """A value that is not an acceptable exact decimal (float, NaN, too large, …)."""

    def __init__(self, value: object, reason: str) -> None:
        super().__init__(f"{_shown(value)} is not an acceptable decimal: {reason}")
        self.value = value
        self.reason = reason


def _shown(value: object) -> str:
    """The refused value for a message, short, and never an int too long to print
    (str() of an int past 4,300 digits raises)."""
    if isinstance(value, int) and value.bit_length() > 256:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def to_decimal(value: object, *, max_places: int | None = None) -> Decimal:
    """Build an exact ``Decimal`` from a string, int or Decimal; refuse floats.

    A string must match :data:`NUMBER_GRAMMAR` exactly (ASCII digits, optional "-" and fraction).

    ``max_places`` limits the digits after the point; excess digits are an
    error, never rounded away silently.
    """
    if isinstance(value, (bool, float)):
        raise InvalidDecimal(value, "floats are not accepted; send a decimal string")
    if isinstance(value, int):
        if abs(value) >= 10**MAX_DIGITS:
            raise InvalidDecimal(value, "too many digits")
        result = Decimal(value)
    elif isinstance(value, Decimal):
        result = value
    elif isinstance(value, str):
        if not value or len(value) > MAX_DIGITS + 10:
            raise InvalidDecimal(value, "empty or too long")
        if NUMBER_GRAMMAR.fullmatch(value) is None:
            raise InvalidDecimal(value, "not a number: write ASCII digits with an optional "
                                        "leading '-' and '.' fraction, e.g. '12.50'")
        result = Decimal(value)  # the grammar admits only what Decimal reads exactly
    else:
        raise InvalidDecimal(value, f"unsupported type {type(value).__name__}")
    if not result.is_finite():
        raise InvalidDecimal(value, "NaN and Infinity are not numbers")
    _sign, digits, exponent = result.as_tuple()
    assert isinstance(exponent, int)
    if abs(exponent) > MAX_EXPONENT or len(digits) + max(exponent, 0) > MAX_DIGITS:
        raise InvalidDecimal(value, "out of range")
    if max_places is not None and exponent < 0:
        # Trailing zeros ("1.500") are fine; significant extra places are not.
        with localcontext(_EXACT):
            if result != result.quantize(Decimal(1).scaleb(-max_places)):
                raise InvalidDecimal(value, f"more than {max_places} decimal places")
    return result


def round_amount(amount: Decimal, currency: str) -> Decimal:
    """The one rounding point for billed amounts: half-up to the minor unit."""
    with localcontext(_EXACT):
        return amount.quantize(Decimal(1).scaleb(-MINOR_UNITS[currency]), rounding=ROUND_HALF_UP)


def to_minor(amount: Decimal, currency: str) -> int:
    """Exact conversion of an already rounded amount to integer minor units."""
    with localcontext(_EXACT):
        scaled = amount.scaleb(MINOR_UNITS[currency])
    if scaled != scaled.to_integral_value():
        raise InvalidDecimal(amount, f"not a whole number of {currency} minor units")
    return int(scaled)


def from_minor(amount_minor: int, currency: str) -> Decimal:
    with localcontext(_EXACT):
        return Decimal(amount_minor).scaleb(-MINOR_UNITS[currency]).quantize(
            Decimal(1).scaleb(-MINOR_UNITS[currency]))


def format_minor(amount_minor: int, currency: str) -> str:
    """Minor units as the decimal string that crosses the API ("13.40")."""
    return str(from_minor(amount_minor, currency))


def parse_amount(value: object, currency: str) -> int:
    """A positive money amount from the API, to minor units; no silent rounding."""
    amount = to_decimal(value, max_places=MINOR_UNITS[currency])
    if amount <= 0:
        raise InvalidDecimal(value, "must be greater than zero")
    if amount >= MAX_AMOUNT:
        raise InvalidDecimal(value, f"must be less than {MAX_AMOUNT}")
    return to_minor(round_amount(amount, currency), currency)


def format_decimal(value: Decimal) -> str:
    """A quantity or unit price as a plain decimal string, no exponent; exact at any
    length (the context's precision would round a long value)."""
    _sign, digits, exponent = value.as_tuple()
    with localcontext() as exact:
        widest = len(digits) + (max(exponent, 0) if isinstance(exponent, int) else 0) + 1
        exact.prec = max(exact.prec, widest)
        if value == value.to_integral_value():
            return str(value.quantize(Decimal(1)))
        return format(value.normalize(), "f")
