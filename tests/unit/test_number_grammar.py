"""The API's number grammar for decimal strings: ASCII ``-?[0-9]+(\\.[0-9]+)?``, nothing else."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
