"""The runtime's view of a submitted v4 extrinsic: who signed it, and the bytes the signature
covers.

There is one extrinsic decoder and one builder in tocw: tocw.primitives.extrinsic. The runtime
decodes every submission with its `decode_extrinsic`, driven by the runtime's own metadata
(`Runtime.md`, parsed from the very bytes `state_getMetadata` serves), so the dev chain accepts
exactly the format the worker reads blocks with and a metadata mistake shows up on the first
transfer. The signing helpers (`LocalChain.sign`, `tocw.chain.testing.signed_transfer`) build
with `build_signed_extrinsic` from the same metadata, as the worker does.

What this module adds is what only a verifier needs, on top of primitives' `DecodedExtrinsic`:

- the exact bytes of the call and of the signed extensions' "extra": the signature covers the
  submitted bytes, and the call is decoded a second time by the runtime's pallet framework
  (`Runtime.decode_call`), which yields typed arguments and the handler to dispatch, where the
  metadata's `Call` holds names and generic values. DecodedExtrinsic does not say where its parts
  start, so `decode_extrinsic` re-encodes the decoded address, signature and extra with the
  metadata's codecs and checks that they are the submitted bytes: SCALE's encodings of these
  types are canonical (primitives' compact reader refuses non-minimal forms), so the check
  holds for every extrinsic that decodes, and the call is what follows them;
- the signer as an AccountId and the signature as a `MultiSignature` (what `verify_multi` takes);
- Substrate's error vocabulary: anything that does not decode is InvalidTransactionError
  ("BadFormat"), which the node answers with author error 1001.

    signed:   compact(len) ‖ 0x84 ‖ MultiAddress ‖ MultiSignature ‖ extra ‖ call
    unsigned: compact(len) ‖ 0x04 ‖ call
    extra   = Era ‖ compact(nonce) ‖ compact(tip)   (CheckMortality, CheckNonce,
                                                     ChargeTransactionPayment)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from tocw.chain.errors import InvalidTransactionError
from tocw.primitives.errors import ScaleDecodeError, ScaleEncodeError
from tocw.primitives.extrinsic import decode_extrinsic as decode_with_metadata
from tocw.primitives.keys import (
    EcdsaSignature,
    Ed25519Signature,
    MultiSignature,
    Sr25519Signature,
)
from tocw.primitives.metadata import Era, RuntimeMetadata, Variant
from tocw.primitives.scale import Reader, read_compact

__all__ = ["SignedExtra", "UncheckedExtrinsic", "decode_extrinsic"]

# MultiSignature's variants (decoded by the metadata as Variant(name, bytes)) as the typed
# signatures of tocw.primitives.keys.
_SIGNATURES: Final[dict[str, type[Ed25519Signature | Sr25519Signature | EcdsaSignature]]] = {
    "Ed25519": Ed25519Signature,
    "Sr25519": Sr25519Signature,
    "Ecdsa": EcdsaSignature,
}


@dataclass(frozen=True, slots=True)
class SignedExtra:
    """The data the runtime's signed extensions carry in a signed extrinsic."""

    era: Era
    nonce: int
    tip: int


@dataclass(frozen=True, slots=True)
class UncheckedExtrinsic:
    """A decoded extrinsic, as the runtime checks it. `raw` is exactly the submitted bytes (with
    the length prefix); `call_data` and `extra_data` are slices of it, which is what the
    signature covers.

    `signer` is the AccountId of a `MultiAddress::Id` sender; any other address kind leaves it
    None and names the kind in `address_kind` (the runtime cannot look those up).
    """

    raw: bytes
    call_data: bytes
    address_kind: str | None = None
    signer: bytes | None = None
    signature: MultiSignature | None = None
    extra: SignedExtra | None = None
    extra_data: bytes = b""

    @property
    def is_signed(self) -> bool:
        return self.extra is not None


def _bad(detail: str) -> InvalidTransactionError:
    return InvalidTransactionError("BadFormat", detail)


def _address_kind(address: object) -> str:
    """MultiAddress's variant name ("Index", "Raw", "Address32", ...)."""
    return address.name if isinstance(address, Variant) else type(address).__name__


def decode_extrinsic(md: RuntimeMetadata, raw: bytes) -> UncheckedExtrinsic:
    """Decode a submitted extrinsic with the runtime's metadata; anything malformed (including a
    call this runtime does not have) is InvalidTransactionError("BadFormat")."""
    raw = bytes(raw)
    try:
        decoded = decode_with_metadata(md, raw)
    except ScaleDecodeError as e:  # ExtrinsicDecodeError and the codecs' own errors
        raise _bad(str(e)) from None
    except RecursionError:
        raise _bad("calls nested too deeply") from None
    r = Reader(raw)
    read_compact(r)  # cannot fail: decode_with_metadata read it
    body = r.pos + 1  # after the version byte
    if not decoded.signed:
        return UncheckedExtrinsic(raw, raw[body:])
    era, nonce, tip = decoded.era, decoded.nonce, decoded.tip
    if era is None or nonce is None or tip is None:
        raise _bad("the metadata lacks CheckMortality, CheckNonce or ChargeTransactionPayment")
    address = decoded.signer
    signer = address if isinstance(address, bytes) else None
    signature = decoded.signature
    if not isinstance(signature, Variant) or signature.name not in _SIGNATURES:
        raise _bad(f"unsupported signature {signature!r:.80}")
    envelope = bytearray()
    try:
        id_or_other = Variant("Id", signer) if signer is not None else address
        md.address_codec.encode_into(id_or_other, envelope)
        md.signature_codec.encode_into(signature, envelope)
        extra_start = body + len(envelope)
        for identifier, codec in md.extra_codecs:
            codec.encode_into(decoded.extra[identifier], envelope)
    except (ScaleEncodeError, KeyError) as e:
        raise _bad(f"cannot re-encode the signature part: {e}") from None
    call_start = body + len(envelope)
    if raw[body:call_start] != envelope:
        raise _bad("the signature part is not canonically encoded")
    return UncheckedExtrinsic(
        raw,
        raw[call_start:],
        "Id" if signer is not None else _address_kind(address),
        signer,
        _SIGNATURES[signature.name](bytes(signature.value)),
        SignedExtra(era, nonce, tip),
        raw[extra_start:call_start],
    )
