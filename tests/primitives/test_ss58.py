"""SS58 addresses: published vectors, network formats, and typed errors for bad input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scalecodec.utils.ss58 import ss58_encode as raw_ss58_encode

from tocw.primitives.errors import InvalidSs58Error
from tocw.primitives.ss58 import parse_account, ss58_decode, ss58_encode

ALICE = bytes.fromhex("d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d")
# //Alice sr25519 on the generic Substrate (42), Polkadot (0) and Kusama (2) networks, as
# subkey and polkadot.js print them.
ALICE_BY_FORMAT = {
    42: "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY",
    0: "15oF4uVJwmo4TdGW7VfQxNLavjCXviqxT9S1MgbjMNHr6Sp5",
    2: "HNZata7iMYWmk5RvZRTiAsSDhV8366zq2YGb3tLH5Upf74F",
}
# A 33-byte (compressed ECDSA key) address: valid SS58, but not a 32-byte account.
ECDSA_33 = bytes.fromhex("02" + "11" * 32)


@pytest.mark.parametrize(("ss58_format", "address"), sorted(ALICE_BY_FORMAT.items()))
def test_ss58_encode_known_addresses(ss58_format: int, address: str) -> None:
    """Alice's key encodes to the addresses every Substrate tool shows."""
    assert ss58_encode(ALICE, ss58_format) == address
    assert ss58_decode(address) == ALICE
    assert ss58_decode(address, valid_ss58_format=ss58_format) == ALICE


def test_ss58_encode_defaults_to_generic_substrate() -> None:
    """Without a format the address is the generic (42) one."""
    assert ss58_encode(ALICE) == ALICE_BY_FORMAT[42]


@pytest.mark.parametrize("ss58_format", [64, 255, 1284, 16383])
def test_ss58_two_byte_formats_round_trip(ss58_format: int) -> None:
    """Formats >= 64 use the two-byte prefix and still decode to the same account."""
    address = ss58_encode(ALICE, ss58_format)
    assert ss58_decode(address, valid_ss58_format=ss58_format) == ALICE


@given(
    st.binary(min_size=32, max_size=32), st.integers(0, 16383).filter(lambda f: f not in (46, 47))
)
@settings(max_examples=100, deadline=None)
def test_ss58_round_trip_any_account(account: bytes, ss58_format: int) -> None:
    """Every 32-byte account round-trips under every valid format."""
    assert ss58_decode(ss58_encode(account, ss58_format), ss58_format) == account


def test_ss58_decode_rejects_other_network() -> None:
    """A Polkadot address is refused where a generic-Substrate one is required."""
    with pytest.raises(InvalidSs58Error):
        ss58_decode(ALICE_BY_FORMAT[0], valid_ss58_format=42)


def test_ss58_decode_rejects_bad_checksum() -> None:
    """Changing one character breaks the checksum."""
    address = ALICE_BY_FORMAT[42]
    broken = address[:-1] + ("Z" if address[-1] != "Z" else "Y")
    with pytest.raises(InvalidSs58Error):
        ss58_decode(broken)


@pytest.mark.parametrize(
    "address",
    [
        "",
        "1",  # decodes to a single byte: shorter than its own prefix
        "z",
        "0OIl" + "1" * 44,  # characters outside the base58 alphabet
        "0x" + ALICE.hex(),  # hex is not SS58
        "5" * 200,  # absurdly long
        "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQ",  # truncated
    ],
)
def test_ss58_decode_rejects_malformed(address: str) -> None:
    """Malformed input is InvalidSs58Error, never IndexError or a base58 error."""
    with pytest.raises(InvalidSs58Error):
        ss58_decode(address)


def test_ss58_decode_rejects_non_account_payload() -> None:
    """A valid 33-byte SS58 address is not an AccountId."""
    address = raw_ss58_encode(ECDSA_33, 42)  # scalecodec itself allows 33-byte payloads
    with pytest.raises(InvalidSs58Error, match="33 bytes"):
        ss58_decode(address)


@pytest.mark.parametrize(
    ("key", "ss58_format"),
    [(ALICE[:31], 42), (ALICE + b"\0", 42), (ALICE, 46), (ALICE, 47), (ALICE, -1), (ALICE, 16384)],
)
def test_ss58_encode_rejects_bad_input(key: bytes, ss58_format: int) -> None:
    """Wrong key length or a reserved/out-of-range format is InvalidSs58Error."""
    with pytest.raises(InvalidSs58Error):
        ss58_encode(key, ss58_format)


def test_parse_account_accepts_ss58_and_hex() -> None:
    """Users may type an address or 0x-hex; surrounding whitespace is ignored."""
    assert parse_account(ALICE_BY_FORMAT[42]) == ALICE
    assert parse_account(ALICE_BY_FORMAT[2]) == ALICE
    assert parse_account("0x" + ALICE.hex()) == ALICE
    assert parse_account(" 0X" + ALICE.hex().upper() + "\n") == ALICE


@pytest.mark.parametrize(
    "text", ["0x" + ALICE.hex()[:-2], "0x" + ALICE.hex() + "00", "0xnothex", "Alice", ""]
)
def test_parse_account_rejects_bad_input(text: str) -> None:
    """Wrong-length hex, non-hex and non-addresses are InvalidSs58Error."""
    with pytest.raises(InvalidSs58Error):
        parse_account(text)


def test_parse_account_enforces_format() -> None:
    """parse_account passes the required network format through to SS58 decoding."""
    with pytest.raises(InvalidSs58Error):
        parse_account(ALICE_BY_FORMAT[0], valid_ss58_format=42)
