"""The API's number grammar for decimal strings: ASCII ``-?[0-9]+(\\.[0-9]+)?``, nothing else."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accrual.console.api.metering import RECORD_SCHEMA
from accrual.console.domain.usage import MAX_QUANTITY, parse_quantity
from accrual.infra.http import JSON_NUMBER_MAX_DIGITS, strict_json
from accrual.money import InvalidDecimal, parse_amount, to_decimal

GRAMMAR = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
DIGITS = st.text(alphabet="0123456789", min_size=1, max_size=15)


@st.composite
def grammar_strings(draw: st.DrawFn) -> str:
    """Strings of the grammar within the digit bounds (at most 30 digits, 15 places)."""
    sign = draw(st.sampled_from(["", "-"]))
    whole = draw(DIGITS)
    fraction = draw(st.none() | DIGITS)
    return sign + whole + ("" if fraction is None else "." + fraction)


@given(grammar_strings())
def test_every_string_of_the_grammar_round_trips_exactly(text: str) -> None:
    result = to_decimal(text)
    assert result.as_tuple() == Decimal(text).as_tuple()  # same digits, same exponent
    assert result == Decimal(text)


# Text near the grammar (digits of other scripts, signs, separators, exponents, spaces) as
# well as arbitrary text: Python's Decimal reads much of the former.
NEAR_NUMBERS = st.text(alphabet="0123456789-+._eE \t\n\u00a0\u200b\u0661\u0662\u0663"
                                "\uff10\uff11\u0967", min_size=1, max_size=20)


@given(st.one_of(NEAR_NUMBERS, st.text(max_size=40)).filter(
    lambda s: GRAMMAR.fullmatch(s) is None))
def test_text_outside_the_grammar_is_refused(text: str) -> None:
    with pytest.raises(InvalidDecimal):
        to_decimal(text)


@given(grammar_strings(), st.sampled_from([" ", "\t", "\n", "\u00a0", "\u3000", "+", "_", "e3",
                                           "E+1", "\u200b", "x"]), st.booleans())
def test_a_grammar_string_with_anything_added_is_refused(text: str, extra: str, before: bool) -> None:
    spoiled = extra + text if before else text + extra
    with pytest.raises(InvalidDecimal):
        to_decimal(spoiled)


@pytest.mark.parametrize("text", [
    "\u0661\u0662\u0663",            # Arabic-Indic digits 123
    "\uff11\uff12\uff13",            # full-width digits 123
    "\u0967\u0968",                  # Devanagari digits 12
    "1_000", "1_0.5", " 7 ", "7 ", " 7", "\t7", "7\n", "+7", "+1.00",
    "1e3", "1E3", "1E+3", "1e-3", "-1e3", "1.5e2",
    ".5", "5.", "-.5", "-", "", "1.", "00x1", "1,000", "١.٥",
    "NaN", "Infinity", "-Infinity", "sNaN",
])
def test_numbers_python_would_read_are_refused(text: str) -> None:
    with pytest.raises(InvalidDecimal) as caught:
        to_decimal(text)
    assert caught.value.value == text


@pytest.mark.parametrize("text", ["\u0661\u0662\u0663", "1_000", " 7 ", "+7", "1e3"])
def test_an_amount_outside_the_grammar_is_refused(text: str) -> None:
    with pytest.raises(InvalidDecimal):
        parse_amount(text, "CNY")


def test_ints_and_decimals_keep_their_checks() -> None:
    # JSON numbers reach to_decimal as int or Decimal (strict_json); the grammar is for text.
    assert to_decimal(1000) == Decimal(1000)
    assert to_decimal(Decimal("1E+3")) == Decimal(1000)
    with pytest.raises(InvalidDecimal):
        to_decimal(Decimal("1E+31"))


def test_an_integer_too_long_to_print_is_refused_with_a_message() -> None:
    # str() of an int past 4,300 digits raises; the refusal must not (it was a 500).
    with pytest.raises(InvalidDecimal) as caught:
        to_decimal(10**5000)
    assert caught.value.reason == "too many digits"
    assert "an integer of" in str(caught.value)


# -- JSON numbers: bounded as they are parsed ----------------------------------------------

@pytest.mark.parametrize("number", [
    "1E+99999999",                      # int() of it runs for minutes
    "1E+9999", "1E-9999", "0E-9999",
    "1" + "0" * 100 + ".0",              # 101 digits
    "1" * 101,                           # an integer of 101 digits
    "-" + "1" * 101,
    "1e" + "0" * 300 + "1",              # 10, spelled in 304 characters
])
def test_a_json_number_past_the_bounds_is_refused_as_it_is_parsed(number: str) -> None:
    with pytest.raises(ValueError, match="out of range"):
        strict_json(b'{"spans": ' + number.encode() + b"}")


@pytest.mark.parametrize(("number", "value"), [
    ("1" * JSON_NUMBER_MAX_DIGITS, int("1" * JSON_NUMBER_MAX_DIGITS)),
    ("1E+100", Decimal("1E+100")), ("1E-100", Decimal("1E-100")),
    ("999999999999999.99", Decimal("999999999999999.99")), ("-0.5", Decimal("-0.5")),
    ("0", 0), ("12", 12),
])
def test_a_json_number_within_the_bounds_is_kept_exactly(number: str, value: object) -> None:
    parsed = strict_json(b'{"n": ' + number.encode() + b"}")["n"]
    assert parsed == value and type(parsed) is type(value)


@given(st.integers(min_value=-(10**30), max_value=10**30), st.integers(min_value=0, max_value=30))
def test_json_numbers_of_the_api_range_parse_exactly(unscaled: int, places: int) -> None:
    number = Decimal(unscaled).scaleb(-places)
    assert strict_json(str(number).encode()) == number


# -- the documented quantity grammar is the server's ---------------------------------------

# JSON Schema patterns are ECMA-262 regexes, where "$" is the end of the text; in Python it
# also matches before a final newline ("0\n"), so it is read here as "\Z".
QUANTITY_PATTERN = re.compile(re.sub(r"\$$", r"\\Z", next(
    choice["pattern"] for choice in RECORD_SCHEMA["properties"]["quantity"]["anyOf"]
    if choice["type"] == "string")))


@given(st.one_of(NEAR_NUMBERS, grammar_strings(), st.sampled_from(["1e6", "1E6", "2e+3", "7.0"])))
def test_the_documented_quantity_pattern_is_what_the_server_takes(text: str) -> None:
    taken = not isinstance(parse_quantity(text), str)
    documented = QUANTITY_PATTERN.search(text) is not None and len(text) <= 40
    if taken:
        assert documented, text
    elif documented:
        # Documented text may still be refused for its value (a fraction, past the maximum).
        value = Decimal(text)
        assert value != value.to_integral_value() or value > MAX_QUANTITY, text
