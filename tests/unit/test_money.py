"""accrual.money: exact decimals in, integer minor units stored, one rounding point."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accrual.money import (
    InvalidDecimal,
    format_decimal,
    format_minor,
    from_minor,
    parse_amount,
    round_amount,
    to_decimal,
    to_minor,
)

# -- to_decimal ---------------------------------------------------------------


@pytest.mark.parametrize("value", [1.5, 0.1, 13.4, 0.0, float("nan"), float("inf")])
def test_to_decimal_refuses_floats(value: float) -> None:
    with pytest.raises(InvalidDecimal) as caught:
        to_decimal(value)
    assert "float" in caught.value.reason


@pytest.mark.parametrize("value", [True, False])
def test_to_decimal_refuses_bools_although_they_are_ints(value: bool) -> None:
    with pytest.raises(InvalidDecimal):
        to_decimal(value)


@pytest.mark.parametrize("value", [
    "NaN", "nan", "-NaN", "sNaN", "Infinity", "-Infinity", "inf", "-inf",
    Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity"), Decimal("sNaN"),
])
def test_to_decimal_refuses_nan_and_infinity(value: object) -> None:
    with pytest.raises(InvalidDecimal) as caught:
        to_decimal(value)
    assert caught.value.value is value


@pytest.mark.parametrize("value", [
    "1E+999999", "1e999999", "-1E+999999", "1E-999999", Decimal("1E+999999"),
    "1E+31", "1E-31",
])
def test_to_decimal_refuses_huge_exponents_before_any_arithmetic(value: object) -> None:
    with pytest.raises(InvalidDecimal):
        to_decimal(value)


@pytest.mark.parametrize("value", [
    "1" * 40,                       # 40 characters: passes the length check, not the digit check
    "9" * 31,
    10**39,
    10**30,
    -(10**30),
    Decimal("1" * 40),
    Decimal("1" * 31),
    "1" * 41,                       # too long a text altogether
    "0." + "1" * 31,
])
def test_to_decimal_refuses_too_many_digits(value: object) -> None:
    with pytest.raises(InvalidDecimal):
        to_decimal(value)


def test_to_decimal_accepts_the_widest_allowed_values() -> None:
    assert to_decimal("9" * 30) == Decimal("9" * 30)
    assert to_decimal(10**30 - 1) == Decimal(10**30 - 1)
    assert to_decimal("1" + "0" * 29) == Decimal(10**29)
    assert to_decimal("0." + "0" * 29 + "1") == Decimal(1).scaleb(-30)


@pytest.mark.parametrize("value", ["", "   ", "abc", "1,5", "1.2.3", "0x10", "--1", "1 2",
                                   None, [1], {"a": 1}, b"1", object()])
def test_to_decimal_refuses_what_is_not_a_number(value: object) -> None:
    with pytest.raises(InvalidDecimal):
        to_decimal(value)


def test_invalid_decimal_is_a_value_error_that_names_the_value() -> None:
    with pytest.raises(ValueError) as caught:
        to_decimal(1.5)
    assert isinstance(caught.value, InvalidDecimal)
    assert "1.5" in str(caught.value)


@pytest.mark.parametrize("value, expected", [
    ("13.40", Decimal("13.40")),
    ("0", Decimal(0)),
    ("-3", Decimal(-3)),
    (7, Decimal(7)),
    (0, Decimal(0)),
    (-12, Decimal(-12)),
    (Decimal("2.5"), Decimal("2.5")),
])
def test_to_decimal_accepts_strings_ints_and_decimals(value: object, expected: Decimal) -> None:
    result = to_decimal(value)
    assert isinstance(result, Decimal)
    assert result == expected


def test_to_decimal_keeps_the_string_exactly() -> None:
    # Exactness: no float detour, trailing zeros survive.
    assert str(to_decimal("13.40")) == "13.40"
    assert str(to_decimal("0.1")) == "0.1"
    assert to_decimal("0.1") + to_decimal("0.2") == Decimal("0.3")


@pytest.mark.parametrize("value, places", [
    ("1.234", 2), ("0.001", 2), ("1.5", 0), ("0.0000001", 6), (Decimal("13.405"), 2),
    ("1.2301", 3),
])
def test_to_decimal_refuses_more_places_than_allowed(value: object, places: int) -> None:
    with pytest.raises(InvalidDecimal) as caught:
        to_decimal(value, max_places=places)
    assert f"more than {places} decimal places" in caught.value.reason


@pytest.mark.parametrize("value, places, expected", [
    ("1.23", 2, Decimal("1.23")),
    ("1.230", 2, Decimal("1.23")),    # trailing zeros are not significant places
    ("1.500", 1, Decimal("1.5")),
    ("100", 0, Decimal(100)),
    ("1000", 0, Decimal(1000)),
    ("2.0", 0, Decimal(2)),
    (5, 2, Decimal(5)),
])
def test_to_decimal_accepts_values_within_max_places(value: object, places: int,
                                                     expected: Decimal) -> None:
    assert to_decimal(value, max_places=places) == expected


def _refused_or_exact(call, value: str, expected: Fraction) -> None:  # type: ignore[no-untyped-def]
    """A value at the edge of the bounds is either refused with InvalidDecimal or
    converted exactly; any other exception (a decimal signal) is a bug."""
    try:
        result = call(value)
    except InvalidDecimal:
        return
    assert Fraction(result) == expected


@pytest.mark.parametrize("value", [
    "1234567890123456789012345678.91",   # 30 digits, 2 places
    "123456789012345678901234567.891",   # 30 digits, 3 places
])
def test_to_decimal_with_max_places_only_ever_raises_invalid_decimal(value: str) -> None:
    # 30 significant digits pass the range check; the max_places check must not
    # then trip over the default 28-digit decimal context.
    _refused_or_exact(lambda v: to_decimal(v, max_places=2), value, Fraction(value))


# -- round_amount --------------------------------------------------------------


@pytest.mark.parametrize("amount, expected", [
    ("0.005", "0.01"),
    ("0.00499999", "0.00"),
    ("0.015", "0.02"),
    ("0.025", "0.03"),     # banker's rounding would give 0.02
    ("2.675", "2.68"),
    ("1.0049", "1.00"),
    ("1.995", "2.00"),
    ("3", "3.00"),
    ("3.6", "3.60"),
    ("-0.005", "-0.01"),   # half away from zero
    ("-0.0049", "0.00"),
])
@pytest.mark.parametrize("currency", ["CNY", "USD"])
def test_round_amount_is_half_up_to_the_cent(amount: str, expected: str, currency: str) -> None:
    result = round_amount(Decimal(amount), currency)
    assert result == Decimal(expected)
    assert result.as_tuple().exponent == -2


def test_round_amount_is_idempotent_on_whole_cents() -> None:
    for text in ("0.00", "0.01", "13.40", "-7.99", "1000000.00"):
        assert str(round_amount(Decimal(text), "CNY")) == text


# -- minor units -----------------------------------------------------------------


@pytest.mark.parametrize("amount, minor", [
    ("13.40", 1340), ("0.01", 1), ("0", 0), ("0.00", 0), ("-0.05", -5), ("100", 10000),
    ("1E+2", 10000),
])
def test_to_minor(amount: str, minor: int) -> None:
    assert to_minor(Decimal(amount), "CNY") == minor
    assert to_minor(Decimal(amount), "USD") == minor


@pytest.mark.parametrize("amount", ["13.405", "0.001", "-0.999"])
def test_to_minor_refuses_fractions_of_a_cent(amount: str) -> None:
    with pytest.raises(InvalidDecimal):
        to_minor(Decimal(amount), "CNY")


@pytest.mark.parametrize("minor, text", [
    (1340, "13.40"), (5, "0.05"), (0, "0.00"), (100, "1.00"), (-5, "-0.05"), (-340, "-3.40"),
    (123456789, "1234567.89"),
])
def test_from_minor_and_format_minor(minor: int, text: str) -> None:
    assert format_minor(minor, "CNY") == text
    assert from_minor(minor, "USD") == Decimal(text)
    assert str(from_minor(minor, "CNY")) == text
    assert to_minor(from_minor(minor, "CNY"), "CNY") == minor


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_minor_units_round_trip(minor: int) -> None:
    text = format_minor(minor, "CNY")
    assert to_minor(to_decimal(text, max_places=2), "CNY") == minor
    assert Fraction(text) == Fraction(minor, 100)


@st.composite
def amount_strings(draw: st.DrawFn) -> str:
    """Canonical two-place amount strings, as they cross the API."""
    units = draw(st.integers(min_value=0, max_value=10**15))
    cents = draw(st.integers(min_value=0, max_value=99))
    negative = draw(st.booleans()) and (units or cents)
    return f"{'-' if negative else ''}{units}.{cents:02d}"


@given(amount_strings(), st.sampled_from(["CNY", "USD"]))
def test_string_decimal_minor_string_round_trip_is_exact(text: str, currency: str) -> None:
    amount = to_decimal(text, max_places=2)
    assert round_amount(amount, currency) == amount
    minor = to_minor(round_amount(amount, currency), currency)
    assert Fraction(minor, 100) == Fraction(text)
    assert format_minor(minor, currency) == text


# -- parse_amount ------------------------------------------------------------------


@pytest.mark.parametrize("value, minor", [
    ("13.40", 1340), ("0.01", 1), ("5", 500), (5, 500), ("100.00", 10000), ("1.500", 150),
    ("1.5", 150), (Decimal("2.25"), 225), (Decimal("1E+2"), 10000),
])
def test_parse_amount_accepts_positive_amounts(value: object, minor: int) -> None:
    assert parse_amount(value, "CNY") == minor
    assert parse_amount(value, "USD") == minor


@pytest.mark.parametrize("value", ["0", "0.00", "-0.01", "-1", -1, 0, "-0"])
def test_parse_amount_refuses_zero_and_negative(value: object) -> None:
    with pytest.raises(InvalidDecimal) as caught:
        parse_amount(value, "CNY")
    assert "greater than zero" in caught.value.reason


@pytest.mark.parametrize("value", ["0.001", "1.234", "1.005", "13.405", Decimal("0.005")])
def test_parse_amount_refuses_three_decimal_places_instead_of_rounding(value: object) -> None:
    with pytest.raises(InvalidDecimal):
        parse_amount(value, "CNY")


@pytest.mark.parametrize("value", [1.5, True, "NaN", "Infinity", "1E+999999", "abc", None, ""])
def test_parse_amount_refuses_non_numbers(value: object) -> None:
    with pytest.raises(InvalidDecimal):
        parse_amount(value, "USD")


@pytest.mark.parametrize("value", [
    "123456789012345678901234567890",    # 30 digits, the widest to_decimal allows
    "12345678901234567890123456789",
    "1234567890123456789012345678.9",
    "99999999999999999999999999.99",
])
def test_parse_amount_on_the_widest_values_refuses_or_is_exact(value: str) -> None:
    # API input: anything but InvalidDecimal here is an unhandled error (HTTP 500).
    _refused_or_exact(lambda v: parse_amount(v, "CNY"), value, Fraction(value) * 100)


@st.composite
def decimal_texts(draw: st.DrawFn) -> str:
    """Plain decimal strings from one digit up to well past the digit bound."""
    # Any width, with extra weight near the 28-digit precision of the default
    # decimal context and the 30-digit bound of to_decimal.
    width = draw(st.one_of(st.integers(min_value=1, max_value=34),
                           st.integers(min_value=25, max_value=31)))
    whole = draw(st.integers(min_value=10 ** (width - 1) if width > 1 else 0,
                             max_value=10**width - 1))
    places = draw(st.integers(min_value=0, max_value=4))
    fraction = draw(st.integers(min_value=0, max_value=10**places - 1)) if places else 0
    sign = "-" if draw(st.booleans()) else ""
    return f"{sign}{whole}.{fraction:0{places}d}" if places else f"{sign}{whole}"


@given(decimal_texts())
def test_parse_amount_on_any_decimal_text_refuses_or_is_exact(text: str) -> None:
    try:
        minor = parse_amount(text, "CNY")
    except InvalidDecimal:
        value = Fraction(text)
        # Refused: not positive, a fraction of a cent, or beyond any sane amount
        # (whatever upper bound the code picks, a trillion must still pass).
        assert value <= 0 or (value * 100).denominator != 1 or value >= 10**12
        return
    assert minor == Fraction(text) * 100
    assert minor > 0


# -- format_decimal ------------------------------------------------------------------


@pytest.mark.parametrize("value, text", [
    (Decimal("6000"), "6000"), (Decimal("1E+3"), "1000"), (Decimal("0.60"), "0.6"),
    (Decimal("1.50E+1"), "15"), (Decimal("0.007"), "0.007"), (Decimal("1E-7"), "0.0000001"),
    (Decimal("2.0"), "2"),
])
def test_format_decimal_has_no_exponent_and_no_trailing_zeros(value: Decimal, text: str) -> None:
    assert format_decimal(value) == text


def test_format_decimal_is_exact_past_the_context_precision() -> None:
    # The default context keeps 28 digits; a formatted quantity keeps every one.
    long = Decimal("123456789012345678901234567890.5")
    assert format_decimal(long) == "123456789012345678901234567890.5"
    assert format_decimal(Decimal("1234567890123456789012345678901234567890")) == \
        "1234567890123456789012345678901234567890"
    assert format_decimal(Decimal("1.2500E+31")) == "12500000000000000000000000000000"
