"""Token amounts as users type and read them: "1.5 TEER" <-> 1_500_000_000_000 base units.

Owns `Token` (symbol and decimals, from the node's `system_properties` when known) with `parse`
and `format`. A plain integer is an amount of base units, as in Integritee's CLI and every
Substrate tool, so scripts keep working; a decimal needs the unit spelled out ("1.5 TEER",
"200 mTEER"), so that "1.5" is never silently read as 1 or as 1.5 units. Amounts are exact:
digits beyond the token's decimals are an error, never rounded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from tocw.client.errors import InvalidAmountError
from tocw.primitives.types import MAX_U128, Balance

DEFAULT_SYMBOL: Final = "TEER"
DEFAULT_DECIMALS: Final = 12
# Prefixes a user may put before the symbol: milli and micro (µ and u).
_PREFIXES: Final[dict[str, int]] = {"": 0, "m": 3, "u": 6, "µ": 6}
_AMOUNT: Final = re.compile(
    r"(?P<number>[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)\s*(?P<unit>\S*)"
)


@dataclass(frozen=True, slots=True)
class Token:
    """The chain's native token: its symbol and the number of decimals of one unit."""

    symbol: str = DEFAULT_SYMBOL
    decimals: int = DEFAULT_DECIMALS

    @classmethod
    def from_properties(cls, properties: Mapping[str, Any] | None) -> Token:
        """From `system_properties` ({"tokenSymbol": "TEER", "tokenDecimals": 12}); lists (as
        multi-token chains send) give their first entry; missing fields keep the defaults."""
        props = properties or {}
        symbol: Any = props.get("tokenSymbol", DEFAULT_SYMBOL)
        decimals: Any = props.get("tokenDecimals", DEFAULT_DECIMALS)
        if isinstance(symbol, list):
            symbol = symbol[0] if symbol else DEFAULT_SYMBOL
        if isinstance(decimals, list):
            decimals = decimals[0] if decimals else DEFAULT_DECIMALS
        if not isinstance(symbol, str) or not symbol:
            symbol = DEFAULT_SYMBOL
        if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= 30:
            decimals = DEFAULT_DECIMALS
        return cls(symbol, decimals)

    @property
    def unit(self) -> int:
        """Base units in one whole token (10**decimals)."""
        return int(10**self.decimals)

    def parse(self, text: str) -> Balance:
        """An amount typed by a user; InvalidAmountError with the accepted forms otherwise."""
        if not isinstance(text, str):
            raise InvalidAmountError(f"an amount is text, got {type(text).__name__}")
        m = _AMOUNT.fullmatch(text.strip())
        if m is None:
            raise InvalidAmountError(f"{text!r} is not an amount ({self._forms()})")
        number, unit = m.group("number").replace("_", ""), m.group("unit")
        if not unit:
            if "." in number:
                raise InvalidAmountError(
                    f"{text!r}: a decimal amount needs its unit, e.g. '{number} {self.symbol}' "
                    f"(a plain integer counts base units; 1 {self.symbol} = 10^{self.decimals})"
                )
            return self._checked(int(number), text)
        scale = self.decimals - self._shift(unit, text)
        whole, _, frac = number.partition(".")
        frac = frac.rstrip("0")
        if len(frac) > scale:
            raise InvalidAmountError(
                f"{text!r} has more decimals than the {self.decimals} of one {self.symbol}"
            )
        value = int(whole or "0") * 10**scale + int(frac.ljust(scale, "0") or "0")
        return self._checked(value, text)

    def format(self, value: int) -> str:
        """`1.5 TEER` for 1_500_000_000_000: exact, trailing zeros dropped."""
        whole, frac = divmod(int(value), self.unit)
        if frac == 0 or self.decimals == 0:
            return f"{whole} {self.symbol}"
        digits = str(frac).rjust(self.decimals, "0").rstrip("0")
        return f"{whole}.{digits} {self.symbol}"

    def _shift(self, unit: str, text: str) -> int:
        """Decimals the unit is below one whole token (0 for TEER, 3 for mTEER)."""
        for prefix, shift in _PREFIXES.items():
            if unit.lower() == (prefix + self.symbol).lower() and shift <= self.decimals:
                return shift
        raise InvalidAmountError(
            f"{text!r}: unknown unit {unit!r}; this chain's token is {self.symbol} "
            f"({self._forms()})"
        )

    def _checked(self, value: int, text: str) -> Balance:
        if value > MAX_U128:
            raise InvalidAmountError(f"{text!r} is larger than a balance can be (u128)")
        return Balance(value)

    def _forms(self) -> str:
        return f"e.g. 1500000000000, '1.5 {self.symbol}' or '200 m{self.symbol}'"
