"""SS58 addresses of 32-byte accounts, and parsing of user-typed account ids.

The SS58 encoding itself is scalecodec's (`scalecodec.utils.ss58`, the implementation
substrate-interface uses), so addresses match every Substrate tool. This module only narrows it
to what tocw needs: accounts are exactly 32 bytes (sr25519/ed25519 public keys, PROTOCOL.md
"Primitive types"), and every failure is an `InvalidSs58Error` instead of the ValueError,
IndexError or base58 errors that scalecodec lets through for malformed input.
"""

from __future__ import annotations

from scalecodec.utils.ss58 import ss58_decode as _scalecodec_ss58_decode
from scalecodec.utils.ss58 import ss58_encode as _scalecodec_ss58_encode

from tocw.primitives.errors import InvalidSs58Error
from tocw.primitives.types import AccountId

ACCOUNT_ID_LEN = 32
# The generic Substrate prefix ("5..." addresses); dev chains and Integritee's tools use it.
DEFAULT_SS58_FORMAT = 42
# SS58 formats are 14-bit; 46 and 47 are reserved by the registry and never valid.
MAX_SS58_FORMAT = 16383
RESERVED_SS58_FORMATS = frozenset({46, 47})
# A 32-byte account with a two-byte format prefix is at most 36 bytes, i.e. ~50 base58
# characters; anything much longer is not an account address and is refused before decoding.
_MAX_ADDRESS_CHARS = 64


def ss58_encode(public_key: bytes, ss58_format: int = DEFAULT_SS58_FORMAT) -> str:
    """The SS58 address of a 32-byte account under `ss58_format` (42 = generic Substrate)."""
    if len(public_key) != ACCOUNT_ID_LEN:
        raise InvalidSs58Error(
            f"an account id is {ACCOUNT_ID_LEN} bytes, got {len(public_key)} bytes"
        )
    _check_format(ss58_format)
    try:
        address: str = _scalecodec_ss58_encode(bytes(public_key), ss58_format=ss58_format)
    except (ValueError, TypeError) as e:  # defensive: inputs were validated above
        raise InvalidSs58Error(f"cannot SS58-encode: {e}") from None
    return address


def ss58_decode(address: str, valid_ss58_format: int | None = None) -> AccountId:
    """The 32-byte account id of an SS58 address.

    With `valid_ss58_format`, an address of any other network prefix is refused, which stops a
    user from pasting e.g. a Polkadot (0) address where a dev-chain (42) one is expected.
    """
    if not isinstance(address, str) or not address:
        raise InvalidSs58Error("empty SS58 address")
    if len(address) > _MAX_ADDRESS_CHARS:
        raise InvalidSs58Error(f"SS58 address too long ({len(address)} characters)")
    if address.startswith(("0x", "0X")):
        # scalecodec passes hex through unchanged; a hex string is not an SS58 address.
        raise InvalidSs58Error("hex is not an SS58 address (use parse_account for 0x-hex)")
    if valid_ss58_format is not None:
        _check_format(valid_ss58_format)
    try:
        decoded_hex: str = _scalecodec_ss58_decode(address, valid_ss58_format=valid_ss58_format)
    except (ValueError, IndexError, TypeError) as e:
        # base58 raises ValueError for bad characters; scalecodec raises IndexError when the
        # decoded payload is shorter than its own prefix.
        raise InvalidSs58Error(f"invalid SS58 address {address!r}: {e}") from None
    raw = bytes.fromhex(decoded_hex)
    if len(raw) != ACCOUNT_ID_LEN:
        raise InvalidSs58Error(
            f"SS58 address {address!r} holds {len(raw)} bytes, not a {ACCOUNT_ID_LEN}-byte account"
        )
    return AccountId(raw)


def parse_account(text: str, valid_ss58_format: int | None = None) -> AccountId:
    """An account id typed by a user: an SS58 address or 0x-hex of exactly 32 bytes."""
    text = text.strip()
    if text.startswith(("0x", "0X")):
        try:
            raw = bytes.fromhex(text[2:])
        except ValueError:
            raise InvalidSs58Error(f"invalid hex account id {text!r}") from None
        if len(raw) != ACCOUNT_ID_LEN:
            raise InvalidSs58Error(
                f"a hex account id is {ACCOUNT_ID_LEN} bytes, got {len(raw)} bytes"
            )
        return AccountId(raw)
    return ss58_decode(text, valid_ss58_format)


def _check_format(ss58_format: int) -> None:
    if (
        not isinstance(ss58_format, int)
        or isinstance(ss58_format, bool)
        or not 0 <= ss58_format <= MAX_SS58_FORMAT
        or ss58_format in RESERVED_SS58_FORMATS
    ):
        raise InvalidSs58Error(f"invalid SS58 format {ss58_format!r}")
