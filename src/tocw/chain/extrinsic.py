"""Substrate extrinsic format v4: decoding, the signed payload, encoding and signing.

    signed:   compact(len) ‖ 0x84 ‖ MultiAddress ‖ MultiSignature ‖ extra ‖ call
    unsigned: compact(len) ‖ 0x04 ‖ call
    extra   = Era ‖ compact(nonce) ‖ compact(tip)        (CheckMortality, CheckNonce,
                                                          ChargeTransactionPayment)
    payload = call ‖ extra ‖ spec_version u32 ‖ transaction_version u32 ‖ genesis hash ‖
              era birth block hash; blake2_256 of it when longer than 256 bytes

Written by hand (with tocw.primitives.scale) because this is the hot path of block production:
scalecodec decodes extrinsics through its type registry at a fraction of the speed. The call
itself is left as bytes here; the runtime decodes it with the codecs its pallets declare.
"""

from __future__ import annotations

from dataclasses import dataclass

from tocw.chain.errors import InvalidTransactionError
from tocw.chain.pallets.substrate_types import (
    ERA_CODEC,
    MULTI_ADDRESS_T,
    AddressId,
    Era,
    MultiAddress,
)
from tocw.primitives.errors import ScaleDecodeError, ScaleEncodeError
from tocw.primitives.hashing import blake2_256
from tocw.primitives.keys import MULTI_SIGNATURE_CODEC, Keypair, MultiSignature
from tocw.primitives.scale import Reader, compact_bytes, encode_compact, read_compact

EXTRINSIC_VERSION = 4
SIGNED_FLAG = 0x80
_SIGNED_V4 = SIGNED_FLAG | EXTRINSIC_VERSION
_UNSIGNED_V4 = EXTRINSIC_VERSION
MAX_NONCE = (1 << 32) - 1
MAX_TIP = (1 << 128) - 1
_HASHED_PAYLOAD_THRESHOLD = 256

# The signed extensions of this runtime, in order (declared in the metadata as such).
SIGNED_EXTENSIONS = (
    "CheckNonZeroSender",
    "CheckSpecVersion",
    "CheckTxVersion",
    "CheckGenesis",
    "CheckMortality",
    "CheckNonce",
    "CheckWeight",
    "ChargeTransactionPayment",
)


@dataclass(frozen=True, slots=True)
class SignedExtra:
    era: Era
    nonce: int
    tip: int


@dataclass(frozen=True, slots=True)
class UncheckedExtrinsic:
    """A decoded extrinsic. `raw` is exactly the submitted bytes (with the length prefix);
    `call_data` and `extra_data` are slices of it, which is what the signature covers."""

    raw: bytes
    call_data: bytes
    address: MultiAddress | None = None
    signature: MultiSignature | None = None
    extra: SignedExtra | None = None
    extra_data: bytes = b""

    @property
    def is_signed(self) -> bool:
        return self.address is not None


def _bad(detail: str) -> InvalidTransactionError:
    return InvalidTransactionError("BadFormat", detail)


def decode_extrinsic(raw: bytes) -> UncheckedExtrinsic:
    """Split an extrinsic into its parts; anything malformed is BadFormat."""
    raw = bytes(raw)
    r = Reader(raw)
    try:
        length = read_compact(r)
        if length != r.remaining():
            raise _bad(f"length prefix says {length} bytes, {r.remaining()} follow")
        version = r.read_byte()
        if version == _UNSIGNED_V4:
            return UncheckedExtrinsic(raw, raw[r.pos :])
        if version != _SIGNED_V4:
            raise _bad(f"unsupported extrinsic version byte 0x{version:02x}")
        if raw[r.pos : r.pos + 1] == b"\x00":  # MultiAddress::Id: the only common case
            r.pos += 1
            address: MultiAddress = AddressId(r.read(32))
        else:
            address = MULTI_ADDRESS_T.codec.read(r)
        signature = MULTI_SIGNATURE_CODEC.read(r)
        extra_start = r.pos
        era = ERA_CODEC.read(r)
        nonce = read_compact(r)
        tip = read_compact(r)
    except ScaleDecodeError as e:
        raise _bad(str(e)) from None
    if nonce > MAX_NONCE:
        raise _bad(f"nonce {nonce} does not fit u32")
    if tip > MAX_TIP:
        raise _bad(f"tip {tip} does not fit u128")
    return UncheckedExtrinsic(
        raw,
        raw[r.pos :],
        address,
        signature,
        SignedExtra(era, nonce, tip),
        raw[extra_start : r.pos],
    )


def encode_extra(extra: SignedExtra) -> bytes:
    out = bytearray()
    ERA_CODEC.encode_into(extra.era, out)
    encode_compact(extra.nonce, out)
    encode_compact(extra.tip, out)
    return bytes(out)


def signing_payload(
    call_data: bytes,
    extra_data: bytes,
    *,
    spec_version: int,
    transaction_version: int,
    genesis_hash: bytes,
    birth_hash: bytes,
) -> bytes:
    """The bytes a signer signs (hashed when longer than 256 bytes, as Substrate)."""
    payload = b"".join(
        (
            call_data,
            extra_data,
            spec_version.to_bytes(4, "little"),
            transaction_version.to_bytes(4, "little"),
            genesis_hash,
            birth_hash,
        )
    )
    if len(payload) > _HASHED_PAYLOAD_THRESHOLD:
        return blake2_256(payload)
    return payload


def encode_signed_extrinsic(
    signer: bytes, signature: MultiSignature, extra: SignedExtra, call_data: bytes
) -> bytes:
    if len(signer) != 32:
        raise ScaleEncodeError("the signer must be a 32-byte account id")
    body = bytearray((_SIGNED_V4, 0))
    body += signer
    MULTI_SIGNATURE_CODEC.encode_into(signature, body)
    body += encode_extra(extra)
    body += call_data
    return compact_bytes(len(body)) + bytes(body)


def encode_unsigned_extrinsic(call_data: bytes) -> bytes:
    body = bytes((_UNSIGNED_V4,)) + call_data
    return compact_bytes(len(body)) + body


def sign_extrinsic(
    keypair: Keypair,
    call_data: bytes,
    *,
    nonce: int,
    genesis_hash: bytes,
    spec_version: int,
    transaction_version: int,
    era: Era | None = None,
    birth_hash: bytes | None = None,
    tip: int = 0,
) -> bytes:
    """A signed extrinsic, as any Substrate client builds it. A mortal `era` needs the hash of
    its birth block (`era.birth(current)`); immortal ones are anchored at genesis."""
    era = era or Era()
    if era.is_immortal:
        birth_hash = genesis_hash
    elif birth_hash is None:
        raise ValueError("a mortal era needs the hash of its birth block")
    extra = SignedExtra(era, nonce, tip)
    payload = signing_payload(
        call_data,
        encode_extra(extra),
        spec_version=spec_version,
        transaction_version=transaction_version,
        genesis_hash=genesis_hash,
        birth_hash=birth_hash,
    )
    return encode_signed_extrinsic(
        keypair.public_key, keypair.multi_sign(payload), extra, call_data
    )


def extrinsic_hash(raw: bytes) -> bytes:
    """What clients call the extrinsic hash: blake2_256 of the bytes with length prefix."""
    return blake2_256(raw)
