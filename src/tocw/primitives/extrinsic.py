"""Substrate extrinsics (format v4), driven by the chain's metadata.

Owns decoding any extrinsic of a block (`decode_extrinsic`), the cheap path the worker uses to
skip extrinsics it does not care about (`call_index_of`, then `decode_call_args` only for the
matching ones), and building signed and unsigned extrinsics (`build_signed_extrinsic`,
`build_unsigned_extrinsic`).

Signing follows the chain's own signed-extension list from the metadata, never a hard-coded
one: each extension contributes its "extra" (sent in the extrinsic) and "additional signed"
data (only signed) as the metadata's types say. The extensions whose meaning tocw knows are in
`SIGNED_EXTENSIONS`; any other extension is accepted when both its parts are zero-sized, and
refused with UnsupportedSignedExtensionError otherwise, because guessing its data would make
the chain reject the signature.

Wire format (sp_runtime UncheckedExtrinsic v4):

    compact(len) ++ version byte (0x84 signed, 0x04 unsigned)
                 ++ [address ++ signature ++ extra]   (signed only)
                 ++ call
    signed payload = call ++ extra ++ additional signed; blake2_256 of it when > 256 bytes
    extrinsic hash = blake2_256 of the whole encoding, length prefix included

Written by hand for the same reason as tocw.primitives.metadata: scalecodec's Extrinsic type
works through its untyped registry per extrinsic, which is too slow for the block import path.

Errors:

    ExtrinsicDecodeError (ScaleDecodeError)   bytes are not an extrinsic of this runtime
    ExtrinsicBuildError (PrimitivesError)     cannot build: bad parameters or signer
    └── UnsupportedSignedExtensionError       the chain requires an extension tocw cannot fill
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from tocw.primitives.errors import PrimitivesError, ScaleDecodeError, ScaleEncodeError
from tocw.primitives.hashing import blake2_256
from tocw.primitives.keys import KeyScheme
from tocw.primitives.metadata import (
    IMMORTAL_ERA,
    SUPPORTED_EXTRINSIC_VERSION,
    Call,
    Era,
    RuntimeMetadata,
    Variant,
    VariantTypeDef,
)
from tocw.primitives.scale import Reader, encode_compact, read_compact

__all__ = [
    "IMMORTAL_ERA",
    "SIGNED_EXTENSIONS",
    "DecodedExtrinsic",
    "Era",
    "ExtrinsicBuildError",
    "ExtrinsicDecodeError",
    "ExtrinsicSigner",
    "TransactionContext",
    "UnsupportedSignedExtensionError",
    "build_signed_extrinsic",
    "build_unsigned_extrinsic",
    "call_index_of",
    "decode_call_args",
    "decode_extrinsic",
    "extrinsic_hash",
    "signed_payload",
]

SIGNED_BIT = 0x80
VERSION_MASK = 0x7F
# sp_runtime: payloads longer than this are hashed with blake2_256 before signing.
MAX_UNHASHED_PAYLOAD = 256

# MultiSignature variant names per key scheme.
_SIGNATURE_VARIANTS = {KeyScheme.SR25519: "Sr25519", KeyScheme.ED25519: "Ed25519"}


class ExtrinsicDecodeError(ScaleDecodeError):
    """The bytes are not a v4 extrinsic of this runtime (garbage, truncated, unknown call)."""


class ExtrinsicBuildError(PrimitivesError, ValueError):
    pass


class UnsupportedSignedExtensionError(ExtrinsicBuildError):
    pass


class ExtrinsicSigner(Protocol):
    """What signing needs (tocw.primitives.keys.Keypair is one)."""

    @property
    def public_key(self) -> bytes: ...

    @property
    def scheme(self) -> KeyScheme: ...

    def sign(self, message: bytes) -> bytes: ...


@dataclass(frozen=True, slots=True)
class DecodedExtrinsic:
    """One extrinsic of a block.

    `signer` is the AccountId (bytes) for MultiAddress::Id or a plain AccountId address, and
    the address Variant otherwise; `extra` maps each signed extension that carries data to its
    decoded value (CheckMortality -> Era, CheckNonce -> int, ChargeTransactionPayment -> int).
    """

    version: int
    signed: bool
    signer: Any  # bytes (AccountId) | Variant (other address kinds) | None (unsigned)
    signature: Any
    extra: dict[str, Any]
    call: Call
    raw: bytes
    hash: bytes

    @property
    def nonce(self) -> int | None:
        value = self.extra.get("CheckNonce")
        return value if isinstance(value, int) else None

    @property
    def era(self) -> Era | None:
        value = self.extra.get("CheckMortality", self.extra.get("CheckEra"))
        return value if isinstance(value, Era) else None

    @property
    def tip(self) -> int | None:
        value = self.extra.get("ChargeTransactionPayment")
        if isinstance(value, int):
            return value
        asset = self.extra.get("ChargeAssetTxPayment")
        if isinstance(asset, dict) and isinstance(asset.get("tip"), int):
            tip: int = asset["tip"]
            return tip
        return None


def extrinsic_hash(xt: bytes) -> bytes:
    """blake2_256 over the extrinsic as blocks carry it (length prefix included)."""
    return blake2_256(xt)


# --- decoding ----------------------------------------------------------------------------------


def _open(md: RuntimeMetadata, data: bytes) -> tuple[Reader, int, bool]:
    """Check the length prefix and version byte; return a reader positioned after them."""
    r = Reader(data)
    length = read_compact(r)
    if length != r.remaining():
        raise ExtrinsicDecodeError(f"length prefix says {length} bytes, {r.remaining()} follow it")
    version_byte = r.read_byte()
    version = version_byte & VERSION_MASK
    if version != md.extrinsic.version or version != SUPPORTED_EXTRINSIC_VERSION:
        raise ExtrinsicDecodeError(f"unsupported extrinsic version {version}")
    return r, version, bool(version_byte & SIGNED_BIT)


def _call_reader(md: RuntimeMetadata, data: bytes) -> Reader:
    """A reader positioned at the call: the signature part is read past, not kept."""
    r, _, signed = _open(md, data)
    if signed:
        md.address_codec.read(r)
        md.signature_codec.read(r)
        for _, codec in md.extra_codecs:
            codec.read(r)
    return r


def call_index_of(md: RuntimeMetadata, xt: bytes) -> bytes:
    """The (pallet, call) index bytes of an extrinsic's call, without decoding its arguments.

    Compare with `md.call_index("EnclaveBridge", "invoke")` to skip the rest cheaply. The
    index is checked against the runtime's calls; the arguments are not read.
    """
    try:
        r = _call_reader(md, xt)
        index = r.read(2)
    except ExtrinsicDecodeError:
        raise
    except ScaleDecodeError as e:
        raise ExtrinsicDecodeError(f"malformed extrinsic: {e}") from None
    if not md.is_call_index(index):
        raise ExtrinsicDecodeError(f"unknown call index ({index[0]}, {index[1]})")
    return index


def decode_call_args(md: RuntimeMetadata, xt: bytes) -> Call:
    """Only the call of an extrinsic (pallet, name, arguments); the signature part is skipped."""
    try:
        r = _call_reader(md, xt)
        call = md.call_codec.read(r)
    except ExtrinsicDecodeError:
        raise
    except ScaleDecodeError as e:
        raise ExtrinsicDecodeError(f"malformed extrinsic: {e}") from None
    if r.remaining():
        raise ExtrinsicDecodeError(f"{r.remaining()} trailing bytes after the call")
    return call


def decode_extrinsic(md: RuntimeMetadata, xt: bytes) -> DecodedExtrinsic:
    """Decode one extrinsic as `chain_getBlock` returns it (with its length prefix)."""
    data = bytes(xt)
    try:
        r, version, signed = _open(md, data)
        signer: Any = None
        signature: Any = None
        extra: dict[str, Any] = {}
        if signed:
            address = md.address_codec.read(r)
            signature = md.signature_codec.read(r)
            for identifier, codec in md.extra_codecs:
                extra[identifier] = codec.read(r)
            signer = (
                address.value if isinstance(address, Variant) and address.name == "Id" else address
            )
        call = md.call_codec.read(r)
    except ExtrinsicDecodeError:
        raise
    except ScaleDecodeError as e:
        raise ExtrinsicDecodeError(f"malformed extrinsic: {e}") from None
    if r.remaining():
        raise ExtrinsicDecodeError(f"{r.remaining()} trailing bytes after the call")
    return DecodedExtrinsic(
        version=version,
        signed=signed,
        signer=signer,
        signature=signature,
        extra=extra,
        call=call,
        raw=data,
        hash=blake2_256(data),
    )


# --- building ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TransactionContext:
    """Everything the known signed extensions draw their data from."""

    nonce: int
    genesis_hash: bytes
    spec_version: int
    transaction_version: int
    era: Era = IMMORTAL_ERA
    birth_hash: bytes | None = None
    tip: int = 0


class _Absent:
    """Marks an extension part tocw knows carries no data."""

    def __repr__(self) -> str:
        return "<absent>"


ABSENT = _Absent()

ExtensionData = tuple[Any, Any]  # (extra value | ABSENT, additional signed value | ABSENT)


def _no_data(ctx: TransactionContext) -> ExtensionData:
    return ABSENT, ABSENT


def _spec_version(ctx: TransactionContext) -> ExtensionData:
    return ABSENT, ctx.spec_version


def _tx_version(ctx: TransactionContext) -> ExtensionData:
    return ABSENT, ctx.transaction_version


def _genesis(ctx: TransactionContext) -> ExtensionData:
    return ABSENT, ctx.genesis_hash


def _mortality(ctx: TransactionContext) -> ExtensionData:
    # The era's birth block hash is signed; an immortal era's "birth" is the genesis block.
    if ctx.era.is_immortal:
        return ctx.era, ctx.genesis_hash
    if ctx.birth_hash is None:
        raise ExtrinsicBuildError(
            "a mortal era needs birth_hash: the hash of block era.birth(current)"
        )
    return ctx.era, ctx.birth_hash


def _nonce(ctx: TransactionContext) -> ExtensionData:
    return ctx.nonce, ABSENT


def _tip(ctx: TransactionContext) -> ExtensionData:
    return ctx.tip, ABSENT


def _asset_tip(ctx: TransactionContext) -> ExtensionData:
    # Pay fees in the native asset (asset_id None), as substrate-interface does.
    return {"tip": ctx.tip, "asset_id": None}, ABSENT


SIGNED_EXTENSIONS: dict[str, Callable[[TransactionContext], ExtensionData]] = {
    "CheckNonZeroSender": _no_data,
    "CheckSpecVersion": _spec_version,
    "CheckTxVersion": _tx_version,
    "CheckGenesis": _genesis,
    "CheckMortality": _mortality,
    "CheckEra": _mortality,
    "CheckNonce": _nonce,
    "CheckWeight": _no_data,
    "ChargeTransactionPayment": _tip,
    "ChargeAssetTxPayment": _asset_tip,
}


def _encode_extensions(md: RuntimeMetadata, ctx: TransactionContext) -> tuple[bytes, bytes]:
    """(extra, additional signed) bytes for the chain's extension list, in its order."""
    extra = bytearray()
    additional = bytearray()
    for se in md.signed_extensions:
        handler = SIGNED_EXTENSIONS.get(se.identifier)
        extra_zero = md.is_zero_sized(se.extra_type_id)
        additional_zero = md.is_zero_sized(se.additional_type_id)
        if handler is None:
            if extra_zero and additional_zero:
                continue
            raise UnsupportedSignedExtensionError(
                f"the chain requires signed extension {se.identifier!r}, which carries data "
                "tocw does not know how to fill"
            )
        extra_value, additional_value = handler(ctx)
        for part, type_id, value, zero, out in (
            ("extra", se.extra_type_id, extra_value, extra_zero, extra),
            (
                "additional signed",
                se.additional_type_id,
                additional_value,
                additional_zero,
                additional,
            ),
        ):
            if zero:
                continue
            if value is ABSENT:
                raise UnsupportedSignedExtensionError(
                    f"signed extension {se.identifier!r} carries {part} data of type "
                    f"{md.codec_for(type_id)!r} on this chain, which tocw does not know"
                )
            try:
                out.extend(md.encode(type_id, value))
            except ScaleEncodeError as e:
                raise ExtrinsicBuildError(f"{se.identifier} {part}: {e}") from None
    return bytes(extra), bytes(additional)


def signed_payload(call: bytes, extra: bytes, additional: bytes) -> bytes:
    """The bytes a signer signs: call ++ extra ++ additional, hashed when longer than 256."""
    payload = call + extra + additional
    if len(payload) > MAX_UNHASHED_PAYLOAD:
        return blake2_256(payload)
    return payload


def _address(md: RuntimeMetadata, public_key: bytes) -> Any:
    d = md.type(md.extrinsic.address_type_id).definition
    if isinstance(d, VariantTypeDef):
        if not any(v.name == "Id" for v in d.variants):
            raise ExtrinsicBuildError("the chain's address type has no Id variant")
        return Variant("Id", public_key)
    return public_key


def _signature(md: RuntimeMetadata, scheme: KeyScheme, signature: bytes) -> Any:
    d = md.type(md.extrinsic.signature_type_id).definition
    if isinstance(d, VariantTypeDef):
        name = _SIGNATURE_VARIANTS.get(scheme)
        if name is None or not any(v.name == name for v in d.variants):
            raise ExtrinsicBuildError(f"the chain's signature type has no variant for {scheme}")
        return Variant(name, signature)
    return signature


def build_signed_extrinsic(
    md: RuntimeMetadata,
    call: bytes,
    signer: ExtrinsicSigner,
    *,
    nonce: int,
    genesis_hash: bytes,
    spec_version: int,
    transaction_version: int,
    era: Era = IMMORTAL_ERA,
    birth_hash: bytes | None = None,
    tip: int = 0,
) -> bytes:
    """A signed v4 extrinsic (length prefix included), ready for author_submitExtrinsic.

    `call` is SCALE(RuntimeCall), e.g. from `md.encode_call(...)`. For a mortal era
    (`Era.mortal(period, current_block)`) pass `birth_hash` = the hash of block
    `era.birth(current_block)`; an immortal era signs the genesis hash instead.
    """
    if md.extrinsic.version != SUPPORTED_EXTRINSIC_VERSION:
        raise ExtrinsicBuildError(f"extrinsic version {md.extrinsic.version} is not supported")
    ctx = TransactionContext(
        nonce=nonce,
        genesis_hash=genesis_hash,
        spec_version=spec_version,
        transaction_version=transaction_version,
        era=era,
        birth_hash=birth_hash,
        tip=tip,
    )
    extra, additional = _encode_extensions(md, ctx)
    signature = signer.sign(signed_payload(call, extra, additional))
    body = bytearray([SIGNED_BIT | SUPPORTED_EXTRINSIC_VERSION])
    try:
        md.address_codec.encode_into(_address(md, bytes(signer.public_key)), body)
        md.signature_codec.encode_into(_signature(md, signer.scheme, bytes(signature)), body)
    except ScaleEncodeError as e:
        raise ExtrinsicBuildError(f"signer does not fit the chain's types: {e}") from None
    body += extra
    body += call
    out = bytearray()
    encode_compact(len(body), out)
    return bytes(out + body)


def build_unsigned_extrinsic(md: RuntimeMetadata, call: bytes) -> bytes:
    """An unsigned v4 extrinsic (inherents such as Timestamp.set, or unsigned-validated calls)."""
    if md.extrinsic.version != SUPPORTED_EXTRINSIC_VERSION:
        raise ExtrinsicBuildError(f"extrinsic version {md.extrinsic.version} is not supported")
    body = bytes([SUPPORTED_EXTRINSIC_VERSION]) + call
    out = bytearray()
    encode_compact(len(body), out)
    return bytes(out) + body
