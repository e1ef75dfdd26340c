"""Extrinsic format v4 as the runtime checks it: the Era codec against scalecodec's, and
tocw.chain.extrinsic's verifier view over tocw.primitives.extrinsic's decoder."""

from __future__ import annotations

import pytest
from scalecodec.base import RuntimeConfigurationObject
from scalecodec.type_registry import load_type_registry_preset

from tocw.chain.errors import InvalidTransactionError
from tocw.chain.extrinsic import SignedExtra, decode_extrinsic
from tocw.chain.pallets.substrate_types import AddressId
from tocw.chain.runtime import LocalChain
from tocw.primitives.errors import ScaleDecodeError
from tocw.primitives.extrinsic import build_unsigned_extrinsic, signed_payload
from tocw.primitives.keys import EcdsaSignature, Keypair, KeyScheme, verify_multi
from tocw.primitives.metadata import ERA_CODEC, Era
from tocw.primitives.scale import U32, compact_bytes
from tocw.primitives.types import AccountId

ALICE = Keypair.from_uri("//Alice", KeyScheme.SR25519)
BOB = Keypair.from_uri("//Bob", KeyScheme.SR25519)
CHAIN = LocalChain()
MD = CHAIN.runtime.md
TRANSFER = CHAIN.call("Balances", "transfer", AddressId(BOB.public_key), 10**12)


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


def signed(nonce: int = 0, tip: int = 0, call: bytes = TRANSFER) -> bytes:
    return CHAIN.sign(ALICE, call, nonce=nonce, tip=tip)


def relength(body: bytes) -> bytes:
    """An extrinsic body (version byte onwards) with its length prefix."""
    return compact_bytes(len(body)) + body


def test_decode_signed_extrinsic_slices_what_the_signature_covers() -> None:
    """The call and extra slices are the submitted bytes; the signature verifies over them."""
    xt = signed(nonce=5, tip=9)
    decoded = decode_extrinsic(MD, xt)
    assert decoded.is_signed and decoded.raw == xt
    assert decoded.signer == ALICE.public_key and decoded.address_kind == "Id"
    assert decoded.extra == SignedExtra(Era(), 5, 9)
    assert decoded.call_data == TRANSFER and xt.endswith(TRANSFER)
    assert decoded.extra_data == ERA_CODEC.encode(Era()) + compact_bytes(5) + compact_bytes(9)
    version = CHAIN.runtime.version
    additional = U32.encode(version.spec_version) + U32.encode(version.transaction_version)
    additional += CHAIN.genesis_hash + CHAIN.genesis_hash  # immortal: born at genesis
    payload = signed_payload(decoded.call_data, decoded.extra_data, additional)
    assert decoded.signature is not None
    assert verify_multi(decoded.signature, payload, AccountId(ALICE.public_key))


def test_decode_mortal_extrinsic_keeps_its_era() -> None:
    """A mortal era is decoded with its period and phase, and is part of the extra bytes."""
    CHAIN.produce()
    era = Era.mortal(64, CHAIN.number)
    decoded = decode_extrinsic(MD, CHAIN.sign(ALICE, TRANSFER, era=era))
    assert decoded.extra is not None and decoded.extra.era == era
    assert decoded.extra_data.startswith(ERA_CODEC.encode(era))


def test_decode_unsigned_extrinsic() -> None:
    """compact(len) ++ 0x04 ++ call: no signer, the call is everything after the version."""
    remark = CHAIN.call("System", "remark", b"hi")
    xt = build_unsigned_extrinsic(MD, remark)
    assert xt == compact_bytes(len(remark) + 1) + b"\x04" + remark
    decoded = decode_extrinsic(MD, xt)
    assert not decoded.is_signed and decoded.call_data == remark and decoded.signer is None


def test_decode_other_address_kinds_have_no_signer() -> None:
    """MultiAddress::Address32 decodes, but names no AccountId the runtime can look up."""
    xt = bytearray(signed())
    assert xt[2:4] == b"\x84\x00"
    xt[3] = 3  # Address32 with the same 32 bytes
    decoded = decode_extrinsic(MD, bytes(xt))
    assert decoded.signer is None and decoded.address_kind == "Address32"


def test_decode_ecdsa_signature_is_typed() -> None:
    """An Ecdsa MultiSignature (65 bytes) decodes to EcdsaSignature (which never verifies)."""
    xt = signed()
    body = xt[2:]  # after the two-byte length prefix
    assert body[34] == 1  # version, MultiAddress::Id (33 bytes), then MultiSignature::Sr25519
    ecdsa = body[:34] + b"\x02" + body[35:99] + b"\x00" + body[99:]
    decoded = decode_extrinsic(MD, relength(ecdsa))
    assert isinstance(decoded.signature, EcdsaSignature)
    assert decoded.call_data == TRANSFER


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (compact_bytes(5) + b"\x04\x00", "length prefix"),
        (compact_bytes(1) + b"\x85", "version"),
        (compact_bytes(1) + b"\x84", "too short"),
        (relength(b"\x04\x02\x63"), "unknown call index (2, 99)"),
        (relength(b"\x04" + TRANSFER + b"\x00"), "trailing"),
    ],
)
def test_decode_extrinsic_rejects_malformed(raw: bytes, detail: str) -> None:
    """Malformed bytes are BadFormat with a clear detail."""
    with pytest.raises(InvalidTransactionError) as info:
        decode_extrinsic(MD, raw)
    assert info.value.reason == "BadFormat" and detail in str(info.value)


def test_decode_extrinsic_rejects_nonce_beyond_u32() -> None:
    """CheckNonce's nonce is a Compact<u32>; a larger value is BadFormat."""
    body = signed()[2:]
    era_at = 1 + 33 + 65  # version, MultiAddress::Id, MultiSignature::Sr25519
    assert body[era_at : era_at + 3] == b"\x00\x00\x00"  # immortal, nonce 0, tip 0
    big = body[: era_at + 1] + compact_bytes(1 << 32) + body[era_at + 2 :]
    with pytest.raises(InvalidTransactionError, match="u32"):
        decode_extrinsic(MD, relength(big))


def test_decode_extrinsic_rejects_non_canonical_compact() -> None:
    """A nonce in a longer compact form than needed is refused, so the signed bytes are
    always the canonical encoding of what was decoded."""
    body = signed()[2:]
    era_at = 1 + 33 + 65
    padded = body[: era_at + 1] + b"\x01\x00" + body[era_at + 2 :]  # 0 in two-byte mode
    with pytest.raises(InvalidTransactionError, match="non-canonical"):
        decode_extrinsic(MD, relength(padded))


def test_decode_extrinsic_deep_nesting_is_bad_format() -> None:
    """Thousands of nested Sudo.sudo calls are BadFormat, not a RecursionError."""
    call = MD.call_index("Sudo", "sudo") * 3000 + CHAIN.call("System", "remark", b"x")
    with pytest.raises(InvalidTransactionError, match="nested too deeply"):
        decode_extrinsic(MD, build_unsigned_extrinsic(MD, call))
