"""Extrinsic format v4 and Era: our hand-written codecs against scalecodec's and Substrate's
rules."""

from __future__ import annotations

import pytest
from scalecodec.base import RuntimeConfigurationObject
from scalecodec.type_registry import load_type_registry_preset

from tocw.chain.errors import InvalidTransactionError
from tocw.chain.extrinsic import (
    SignedExtra,
    decode_extrinsic,
    encode_extra,
    encode_signed_extrinsic,
    encode_unsigned_extrinsic,
    extrinsic_hash,
    sign_extrinsic,
    signing_payload,
)
from tocw.chain.pallets.substrate_types import ERA_CODEC, AddressId, Era
from tocw.primitives.errors import ScaleDecodeError
from tocw.primitives.hashing import blake2_256
from tocw.primitives.keys import Keypair, KeyScheme, Sr25519Signature, verify_multi
from tocw.primitives.scale import compact_bytes
from tocw.primitives.types import AccountId

ALICE = Keypair.from_uri("//Alice", KeyScheme.SR25519)
GENESIS = b"\x07" * 32


def scalecodec_era(value: object) -> bytes:
    config = RuntimeConfigurationObject()
    config.update_type_registry(load_type_registry_preset("core"))
    return bytes(config.create_scale_object("Era").encode(value).data)


@pytest.mark.parametrize(
    ("period", "current"),
    [(4, 0), (64, 42), (64, 1_000), (256, 77_777), (4096, 123_456), (65536, 9_999_999), (5, 3)],
)
def test_era_mortal_encoding_matches_scalecodec(period: int, current: int) -> None:
    """Era::mortal and its two-byte encoding agree with scalecodec's implementation."""
    era = Era.mortal(period, current)
    encoded = ERA_CODEC.encode(era)
    assert encoded == scalecodec_era({"period": period, "current": current})
    assert ERA_CODEC.decode(encoded) == era


def test_era_immortal_is_one_zero_byte() -> None:
    """The immortal era is 0x00 and is born at genesis."""
    assert ERA_CODEC.encode(Era()) == b"\x00" == scalecodec_era("00")
    assert Era().birth(1234) == 0


def test_era_birth_and_death_follow_substrate() -> None:
    """birth = (max(current, phase) - phase) // period * period + phase; death = birth + period."""
    era = Era.mortal(64, 42)
    assert (era.period, era.phase) == (64, 42)
    assert era.birth(42) == 42 and era.birth(105) == 42 and era.birth(106) == 106
    assert era.death(50) == 106
    assert Era.mortal(5, 3).period == 8  # rounded up to a power of two


def test_era_decode_rejects_invalid_phase() -> None:
    """A phase beyond its period does not decode (Substrate: "Invalid period and phase")."""
    with pytest.raises(ScaleDecodeError):
        ERA_CODEC.decode(bytes((0xF0 | 1, 0x00)))  # period 4, phase 15


def test_signed_extrinsic_roundtrip() -> None:
    """sign_extrinsic produces bytes that decode back into their parts, signature valid."""
    call = b"\x02\x03" + bytes(33) + b"\x04"
    xt = sign_extrinsic(
        ALICE, call, nonce=5, genesis_hash=GENESIS, spec_version=100, transaction_version=1, tip=9
    )
    decoded = decode_extrinsic(xt)
    assert decoded.is_signed and decoded.raw == xt
    assert decoded.address == AddressId(ALICE.public_key)
    assert decoded.extra == SignedExtra(Era(), 5, 9)
    assert decoded.call_data == call
    assert decoded.extra_data == encode_extra(SignedExtra(Era(), 5, 9))
    payload = call + decoded.extra_data + (100).to_bytes(4, "little") + (1).to_bytes(4, "little")
    payload += GENESIS + GENESIS
    assert decoded.signature is not None
    assert verify_multi(decoded.signature, payload, AccountId(ALICE.public_key))
    assert extrinsic_hash(xt) == blake2_256(xt)


def test_unsigned_extrinsic_roundtrip() -> None:
    """compact(len) ++ 0x04 ++ call."""
    xt = encode_unsigned_extrinsic(b"\x01\x00\x0b")
    assert xt == compact_bytes(4) + b"\x04\x01\x00\x0b"
    decoded = decode_extrinsic(xt)
    assert not decoded.is_signed and decoded.call_data == b"\x01\x00\x0b"


def test_signing_payload_is_hashed_above_256_bytes() -> None:
    """Payloads longer than 256 bytes are signed as their blake2_256."""
    args = {"spec_version": 1, "transaction_version": 1, "genesis_hash": GENESIS}
    short = signing_payload(b"\x00" * 100, b"\x00", birth_hash=GENESIS, **args)
    assert len(short) == 100 + 1 + 8 + 64
    call = b"\x00" * 200
    long = signing_payload(call, b"\x00", birth_hash=GENESIS, **args)
    raw = call + b"\x00" + bytes((1, 0, 0, 0, 1, 0, 0, 0)) + GENESIS + GENESIS
    assert long == blake2_256(raw)


def test_mortal_signing_needs_a_birth_hash() -> None:
    """A mortal era cannot be signed without the hash of its birth block."""
    with pytest.raises(ValueError, match="birth"):
        sign_extrinsic(
            ALICE,
            b"\x00\x00",
            nonce=0,
            genesis_hash=GENESIS,
            spec_version=1,
            transaction_version=1,
            era=Era.mortal(64, 10),
        )


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (compact_bytes(5) + b"\x04\x00", "length prefix"),
        (compact_bytes(1) + b"\x85", "version"),
        (compact_bytes(1) + b"\x84", "too short"),
    ],
)
def test_decode_extrinsic_rejects_malformed(raw: bytes, detail: str) -> None:
    """Malformed bytes are BadFormat with a clear detail."""
    with pytest.raises(InvalidTransactionError) as info:
        decode_extrinsic(raw)
    assert info.value.reason == "BadFormat" and detail in str(info.value)


def test_decode_extrinsic_rejects_nonce_beyond_u32() -> None:
    """CheckNonce's nonce is a u32; a larger compact is BadFormat."""
    extra = SignedExtra(Era(), 1 << 32, 0)
    xt = encode_signed_extrinsic(ALICE.public_key, Sr25519Signature(bytes(64)), extra, b"\x00\x00")
    with pytest.raises(InvalidTransactionError, match="u32"):
        decode_extrinsic(xt)
