"""tocw.client.amounts: amounts typed by users, exact in both directions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tocw.client.amounts import Token
from tocw.client.errors import InvalidAmountError
from tocw.primitives.types import MAX_U128

TEER = Token("TEER", 12)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1500000000000", 1_500_000_000_000),
        ("0", 0),
        ("1.5 TEER", 1_500_000_000_000),
        ("1.5TEER", 1_500_000_000_000),
        ("1.5 teer", 1_500_000_000_000),
        (" 2 TEER ", 2_000_000_000_000),
        (".2 TEER", 200_000_000_000),
        ("200 mTEER", 200_000_000_000),
        ("3 uTEER", 3_000_000),
        ("3 µTEER", 3_000_000),
        ("0.000000000001 TEER", 1),
        ("1_000 TEER", 1_000_000_000_000_000),
    ],
)
def test_amounts_parse_accepted_forms(text: str, value: int) -> None:
    """Plain integers are base units; decimals carry the token's unit, with m/u prefixes."""
    assert TEER.parse(text) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1.5", "needs its unit"),
        ("-1", "is not an amount"),
        ("abc", "is not an amount"),
        ("", "is not an amount"),
        ("1 DOT", "unknown unit"),
        ("0.0000000000001 TEER", "more decimals"),
        (str(MAX_U128 + 1), "larger than a balance"),
        ("1e3 TEER", "is not an amount"),
    ],
)
def test_amounts_parse_rejects_with_reason(text: str, message: str) -> None:
    """Malformed amounts give InvalidAmountError saying what is wrong, never a rounding."""
    with pytest.raises(InvalidAmountError, match=message):
        TEER.parse(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0 TEER"),
        (1_500_000_000_000, "1.5 TEER"),
        (1, "0.000000000001 TEER"),
        (10**12, "1 TEER"),
    ],
)
def test_amounts_format_exact(value: int, text: str) -> None:
    """format drops trailing zeros and never rounds."""
    assert TEER.format(value) == text


@given(st.integers(min_value=0, max_value=MAX_U128))
def test_amounts_format_parse_roundtrip(value: int) -> None:
    """Whatever format prints, parse reads back exactly."""
    assert TEER.parse(TEER.format(value)) == value


def test_amounts_token_from_properties() -> None:
    """system_properties give symbol and decimals; lists take the first; junk keeps defaults."""
    assert Token.from_properties({"tokenSymbol": "DOT", "tokenDecimals": 10}) == Token("DOT", 10)
    assert Token.from_properties({"tokenSymbol": ["KSM", "X"], "tokenDecimals": [12]}) == Token(
        "KSM", 12
    )
    assert Token.from_properties(None) == Token("TEER", 12)
    assert Token.from_properties({"tokenDecimals": "x", "tokenSymbol": 5}) == Token("TEER", 12)
    assert Token("DOT", 10).parse("1 DOT") == 10**10
