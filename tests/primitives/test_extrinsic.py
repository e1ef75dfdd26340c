"""Extrinsics by metadata: build, sign, decode; checked against scalecodec and the dev runtime.

The metadata is the dev chain's own (`tocw.chain.runtime`), i.e. exactly what its
`state_getMetadata` serves; variants with other signed-extension lists are derived from it.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sr25519
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st
from scalecodec.base import RuntimeConfigurationObject, ScaleBytes
from scalecodec.type_registry import load_type_registry_preset

from tocw.chain.errors import InvalidTransactionError
from tocw.chain.node import Chain
from tocw.chain.runtime import Runtime, RuntimeConfig
from tocw.chain.storage import ChainStore
from tocw.primitives.extrinsic import (
    IMMORTAL_ERA,
    Era,
    ExtrinsicBuildError,
    ExtrinsicDecodeError,
    UnsupportedSignedExtensionError,
    build_signed_extrinsic,
    build_unsigned_extrinsic,
    call_index_of,
    decode_call_args,
    decode_extrinsic,
    signed_payload,
)
from tocw.primitives.hashing import blake2_256
from tocw.primitives.keys import Keypair, KeyScheme
from tocw.primitives.metadata import (
    OPTION_PATH,
    Call,
    CompactDef,
    CompositeDef,
    Field,
    PortableType,
    PrimitiveDef,
    RuntimeMetadata,
    SignedExtensionMetadata,
    Variant,
    VariantDef,
    VariantTypeDef,
)
from tocw.primitives.scale import U32, compact_bytes

ALICE = Keypair.from_uri("//Alice")
BOB_ED = Keypair.from_uri("//Bob", KeyScheme.ED25519)
SHARD = bytes(range(32))
GENESIS = bytes([0x11]) * 32
BIRTH = bytes([0x22]) * 32
SPEC_VERSION = 7
TX_VERSION = 3


def load_dev_metadata() -> RuntimeMetadata:
    return RuntimeMetadata.from_bytes(Runtime(RuntimeConfig()).metadata())


MD = load_dev_metadata()


def invoke_call(md: RuntimeMetadata, ciphertext: bytes) -> bytes:
    return md.encode_call(
        "EnclaveBridge", "invoke", {"request": {"shard": SHARD, "cyphertext": ciphertext}}
    )


def build(md: RuntimeMetadata, call: bytes, signer: Keypair = ALICE, **kw: Any) -> bytes:
    params: dict[str, Any] = {
        "nonce": 5,
        "genesis_hash": GENESIS,
        "spec_version": SPEC_VERSION,
        "transaction_version": TX_VERSION,
        "tip": 0,
    }
    params.update(kw)
    return build_signed_extrinsic(md, call, signer, **params)


def expected_payload(call: bytes, era: bytes, nonce: int, tip: int, birth: bytes) -> bytes:
    """The standard payload, spelled out from substrate-compat.md independently of the builder."""
    return (
        call
        + era
        + compact_bytes(nonce)
        + compact_bytes(tip)
        + U32.encode(SPEC_VERSION)
        + U32.encode(TX_VERSION)
        + GENESIS
        + birth
    )


def scalecodec_decode(md: RuntimeMetadata, xt: bytes) -> dict[str, Any]:
    config = RuntimeConfigurationObject(ss58_format=42)
    config.update_type_registry(load_type_registry_preset("core"))
    metadata = config.create_scale_object("MetadataVersioned", data=ScaleBytes(md.to_bytes()))
    metadata.decode()
    config.add_portable_registry(metadata)
    obj = config.create_scale_object("Extrinsic", data=ScaleBytes(xt), metadata=metadata)
    obj.decode()
    value: dict[str, Any] = obj.value
    return value


# --- building and signing ---------------------------------------------------------------------


def test_extrinsic_signed_invoke_round_trips() -> None:
    """A signed EnclaveBridge.invoke decodes back to its signer, extras and call."""
    ciphertext = bytes(range(256)) + bytes(128)
    call = invoke_call(MD, ciphertext)
    xt = build(MD, call, nonce=9, tip=3)
    dx = decode_extrinsic(MD, xt)
    assert dx.signed and dx.version == 4
    assert dx.signer == ALICE.public_key
    assert isinstance(dx.signature, Variant) and dx.signature.name == "Sr25519"
    assert (dx.nonce, dx.tip, dx.era) == (9, 3, IMMORTAL_ERA)
    assert dx.call == Call(
        "EnclaveBridge", "invoke", {"request": {"shard": SHARD, "cyphertext": ciphertext}}
    )
    assert dx.raw == xt and dx.hash == blake2_256(xt)


def test_extrinsic_signature_covers_standard_payload() -> None:
    """The sr25519 signature verifies over call ++ extra ++ additional, as Substrate signs."""
    call = MD.encode_call("System", "remark", {"remark": b"hello"})
    era = Era.mortal(64, 1000)
    xt = build(MD, call, nonce=1, tip=2, era=era, birth_hash=BIRTH)
    dx = decode_extrinsic(MD, xt)
    payload = expected_payload(call, bytes([0x85, 0x02]), 1, 2, BIRTH)
    assert len(payload) <= 256
    assert sr25519.verify(dx.signature.value, payload, ALICE.public_key)
    assert dx.era == era


def test_extrinsic_long_payload_is_signed_by_hash() -> None:
    """Payloads over 256 bytes are blake2_256-hashed before signing (384-byte ciphertext)."""
    call = invoke_call(MD, bytes(384))
    xt = build(MD, call)
    dx = decode_extrinsic(MD, xt)
    payload = expected_payload(call, b"\x00", 5, 0, GENESIS)
    assert len(payload) > 256
    assert signed_payload(call, payload[len(call) : len(call) + 3], payload[len(call) + 3 :]) == (
        blake2_256(payload)
    )
    assert sr25519.verify(dx.signature.value, blake2_256(payload), ALICE.public_key)
    assert not sr25519.verify(dx.signature.value, payload, ALICE.public_key)


def test_extrinsic_ed25519_signer_uses_ed25519_variant() -> None:
    """An ed25519 signer (the enclave's account) signs with MultiSignature::Ed25519."""
    call = MD.encode_call("System", "remark", {"remark": b"x"})
    dx = decode_extrinsic(MD, build(MD, call, signer=BOB_ED, nonce=0))
    assert dx.signature.name == "Ed25519" and dx.signer == BOB_ED.public_key
    payload = expected_payload(call, b"\x00", 0, 0, GENESIS)
    Ed25519PublicKey.from_public_bytes(BOB_ED.public_key).verify(dx.signature.value, payload)


def test_extrinsic_scalecodec_reads_built_extrinsic() -> None:
    """scalecodec's Extrinsic decoder (substrate-interface's) reads our bytes identically."""
    call = invoke_call(MD, b"\x01\x02\x03")
    era = Era.mortal(128, 5000)
    xt = build(MD, call, nonce=70, tip=10**12, era=era, birth_hash=BIRTH)
    ref = scalecodec_decode(MD, xt)
    assert ref["extrinsic_hash"] == "0x" + blake2_256(xt).hex()
    assert ref["address"] == ALICE.ss58_address
    assert ref["signature"] == {"Sr25519": "0x" + decode_extrinsic(MD, xt).signature.value.hex()}
    assert ref["era"] == (128, 5000 % 128)
    assert (ref["nonce"], ref["tip"]) == (70, 10**12)
    assert (ref["call"]["call_module"], ref["call"]["call_function"]) == ("EnclaveBridge", "invoke")
    assert ref["call"]["call_index"] == "0x" + MD.call_index("EnclaveBridge", "invoke").hex()


def test_extrinsic_mortal_era_needs_birth_hash() -> None:
    """A mortal era without the birth block's hash is refused before signing."""
    call = MD.encode_call("System", "remark", {"remark": b""})
    with pytest.raises(ExtrinsicBuildError, match="birth_hash"):
        build(MD, call, era=Era.mortal(64, 10))


def test_extrinsic_bad_parameters_are_build_errors() -> None:
    """A short genesis hash or a negative nonce fail as ExtrinsicBuildError naming the extension."""
    call = MD.encode_call("System", "remark", {"remark": b""})
    with pytest.raises(ExtrinsicBuildError, match="CheckGenesis"):
        build(MD, call, genesis_hash=b"\x00" * 31)
    with pytest.raises(ExtrinsicBuildError, match="CheckNonce"):
        build(MD, call, nonce=-1)


def test_extrinsic_unsigned_round_trips() -> None:
    """An unsigned extrinsic is compact(len) ++ 0x04 ++ call."""
    call = MD.encode_call("Timestamp", "set", {"now": 1_700_000_000_000})
    xt = build_unsigned_extrinsic(MD, call)
    assert xt == compact_bytes(len(call) + 1) + b"\x04" + call
    dx = decode_extrinsic(MD, xt)
    assert not dx.signed and dx.signer is None and dx.extra == {}
    assert dx.call == Call("Timestamp", "set", {"now": 1_700_000_000_000})
    assert scalecodec_decode(MD, xt)["call"]["call_function"] == "set"


# --- signed-extension lists other than the dev chain's -------------------------------------


def with_extensions(
    md: RuntimeMetadata,
    extra_types: dict[int, PortableType],
    extensions: list[SignedExtensionMetadata],
) -> RuntimeMetadata:
    types = {**md.types, **extra_types}
    return RuntimeMetadata(
        types,
        md.pallets,
        dataclasses.replace(md.extrinsic, signed_extensions=tuple(extensions)),
        md.runtime_type_id,
    )


def new_type(
    md: RuntimeMetadata, extra: dict[int, PortableType], definition: Any, path: str = ""
) -> int:
    tid = max([*md.types, *extra]) + 1
    extra[tid] = PortableType(tid, tuple(path.split("::")) if path else (), (), definition)
    return tid


def test_extrinsic_unknown_zero_sized_extension_is_accepted() -> None:
    """An extension tocw does not know is fine when it adds no bytes (like CheckWeight)."""
    extra: dict[int, PortableType] = {}
    empty = new_type(MD, extra, CompositeDef(()), "custom::CheckSomething")
    md = with_extensions(
        MD, extra, [*MD.signed_extensions, SignedExtensionMetadata("CheckSomething", empty, empty)]
    )
    call = md.encode_call("System", "remark", {"remark": b"a"})
    assert decode_extrinsic(md, build(md, call)).call.name == "remark"


def test_extrinsic_unknown_extension_with_data_is_refused() -> None:
    """An unknown extension that carries data raises UnsupportedSignedExtensionError naming it."""
    extra: dict[int, PortableType] = {}
    u32 = new_type(MD, extra, PrimitiveDef("u32"))
    with_data = new_type(MD, extra, CompositeDef((Field(None, u32),)), "custom::SetEvmOrigin")
    empty = new_type(MD, extra, CompositeDef(()))
    md = with_extensions(
        MD,
        extra,
        [*MD.signed_extensions, SignedExtensionMetadata("SetEvmOrigin", with_data, empty)],
    )
    call = md.encode_call("System", "remark", {"remark": b"a"})
    with pytest.raises(UnsupportedSignedExtensionError, match="SetEvmOrigin"):
        build(md, call)
    # decoding still works: the extension's extra is read by its type
    xt_body = b"\x84\x00" + ALICE.public_key + b"\x01" + bytes(64)
    xt_body += b"\x00" + compact_bytes(0) + compact_bytes(0) + U32.encode(9) + call
    xt = compact_bytes(len(xt_body)) + xt_body
    assert decode_extrinsic(md, xt).extra["SetEvmOrigin"] == 9


def test_extrinsic_known_extension_with_unexpected_data_is_refused() -> None:
    """CheckWeight that suddenly carries data is refused rather than guessed."""
    extra: dict[int, PortableType] = {}
    u8 = new_type(MD, extra, PrimitiveDef("u8"))
    exts = [
        SignedExtensionMetadata(se.identifier, u8, se.additional_type_id)
        if se.identifier == "CheckWeight"
        else se
        for se in MD.signed_extensions
    ]
    assert any(se.identifier == "CheckWeight" for se in exts)
    md = with_extensions(MD, extra, exts)
    with pytest.raises(UnsupportedSignedExtensionError, match="CheckWeight"):
        build(md, md.encode_call("System", "remark", {"remark": b""}))


def test_extrinsic_charge_asset_tx_payment_pays_native() -> None:
    """ChargeAssetTxPayment gets {tip, asset_id: None}; decode reports the tip."""
    extra: dict[int, PortableType] = {}
    u32 = new_type(MD, extra, PrimitiveDef("u32"))
    u128 = new_type(MD, extra, PrimitiveDef("u128"))
    compact = new_type(MD, extra, CompactDef(u128))
    option = new_type(
        MD,
        extra,
        VariantTypeDef((VariantDef("None", 0, ()), VariantDef("Some", 1, (Field(None, u32),)))),
        OPTION_PATH,
    )
    asset = new_type(
        MD,
        extra,
        CompositeDef((Field("tip", compact), Field("asset_id", option))),
        "pallet_asset_tx_payment::ChargeAssetTxPayment",
    )
    exts = [
        SignedExtensionMetadata("ChargeAssetTxPayment", asset, se.additional_type_id)
        if se.identifier == "ChargeTransactionPayment"
        else se
        for se in MD.signed_extensions
    ]
    md = with_extensions(MD, extra, exts)
    call = md.encode_call("System", "remark", {"remark": b""})
    dx = decode_extrinsic(md, build(md, call, tip=77))
    assert dx.extra["ChargeAssetTxPayment"] == {"tip": 77, "asset_id": None}
    assert dx.tip == 77


# --- fast path and garbage --------------------------------------------------------------------


def test_extrinsic_call_index_fast_path_matches_metadata() -> None:
    """call_index_of finds the call index behind the signature; decode_call_args the call."""
    invoke = invoke_call(MD, bytes(384))
    remark = MD.encode_call("System", "remark", {"remark": b"r"})
    for call in (invoke, remark):
        for xt in (
            build(MD, call),
            build(MD, call, era=Era.mortal(64, 99), birth_hash=BIRTH),
            build_unsigned_extrinsic(MD, call),
        ):
            assert call_index_of(MD, xt) == call[:2]
            assert decode_call_args(MD, xt) == MD.decode_call(call)
    assert call_index_of(MD, build(MD, invoke)) == MD.call_index("EnclaveBridge", "invoke")


def test_extrinsic_decode_rejects_malformed_input() -> None:
    """Wrong length prefix, version, truncation, trailing bytes and unknown calls are typed."""
    good = build(MD, MD.encode_call("System", "remark", {"remark": b"r"}))
    body = good[2:]  # the length prefix of this extrinsic is two bytes
    assert compact_bytes(len(body)) == good[:2]
    framing = [
        b"",
        b"\x00",
        compact_bytes(len(body) + 1) + body,
        good + b"\x00",
        compact_bytes(len(body)) + b"\x85" + body[1:],  # version 5
        compact_bytes(len(body)) + b"\x04" + body[1:],  # unsigned flag on a signed body
        build(MD, b"\xfe\xfe"),  # unknown call index
    ]
    for xt in framing:
        for fn in (decode_extrinsic, call_index_of, decode_call_args):
            with pytest.raises(ExtrinsicDecodeError):
                fn(MD, xt)
    # call_index_of does not read the arguments, so only the decoders see them truncated
    truncated = compact_bytes(len(body) - 1) + body[:-1]
    assert call_index_of(MD, truncated) == MD.call_index("System", "remark")
    for fn in (decode_extrinsic, decode_call_args):
        with pytest.raises(ExtrinsicDecodeError):
            fn(MD, truncated)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_extrinsic_decode_of_random_bytes_raises_only_typed_errors(data: bytes) -> None:
    """Arbitrary bytes either decode or raise ExtrinsicDecodeError, nothing else."""
    for candidate in (data, compact_bytes(len(data)) + data):
        with contextlib.suppress(ExtrinsicDecodeError):
            decode_extrinsic(MD, candidate)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, len(build(MD, invoke_call(MD, bytes(40))))), st.integers(0, 255))
def test_extrinsic_decode_of_corrupted_extrinsic_raises_only_typed_errors(
    pos: int, byte: int
) -> None:
    """Flipping any byte of a valid extrinsic never leaks an untyped exception."""
    xt = bytearray(build(MD, invoke_call(MD, bytes(40))))
    if pos < len(xt):
        xt[pos] = byte
    with contextlib.suppress(ExtrinsicDecodeError):
        decode_extrinsic(MD, bytes(xt))


# --- the dev runtime accepts what we build -----------------------------------------------------


@pytest.fixture
def dev_chain(tmp_path: Path) -> Iterator[Chain]:
    """The dev chain in-process (no sockets): its runtime validates and executes blocks."""
    runtime = Runtime(RuntimeConfig())
    store = ChainStore(tmp_path / "chain.sqlite", state_version=runtime.version.state_version)
    chain = Chain(runtime, store)
    try:
        chain.open()
        yield chain
    finally:
        store.close()


def test_extrinsic_dev_runtime_accepts_and_executes_built_extrinsics(dev_chain: Chain) -> None:
    """validate_transaction accepts immortal and mortal extrinsics from this builder; the block
    includes them and the transfer lands."""
    md = RuntimeMetadata.from_bytes(dev_chain.runtime.metadata())
    version = dev_chain.runtime.version
    common: dict[str, Any] = {
        "genesis_hash": dev_chain.genesis_hash,
        "spec_version": version.spec_version,
        "transaction_version": version.transaction_version,
    }
    dev_chain.produce_block(1_700_000_000_000)  # so that a mortal era has a birth block > 0
    bob = Keypair.from_uri("//Bob")
    transfer = md.encode_call(
        "Balances", "transfer", {"dest": Variant("Id", bob.public_key), "value": 12345}
    )
    immortal = build_signed_extrinsic(md, transfer, ALICE, nonce=0, **common)
    current = dev_chain.best_number
    era = Era.mortal(64, current)
    birth_hash = dev_chain.block_hash(era.birth(current))
    assert birth_hash is not None
    mortal = build_signed_extrinsic(
        md,
        invoke_call(md, bytes(384)),
        ALICE,
        nonce=1,
        era=era,
        birth_hash=birth_hash,
        tip=5,
        **common,
    )
    ed_signed = build_signed_extrinsic(
        md, md.encode_call("System", "remark", {"remark": b"ed"}), BOB_ED, nonce=0, **common
    )
    _, status = dev_chain.submit(immortal)
    assert status is not None
    dev_chain.submit(mortal)
    with pytest.raises(InvalidTransactionError):  # BOB_ED has no funds for the fee
        dev_chain.submit(ed_signed)
    block = dev_chain.produce_block(1_700_000_006_000).block
    assert immortal in block.extrinsics and mortal in block.extrinsics
    account = md.decode_storage(
        "System",
        "Account",
        dev_chain.state(block.hash).get(md.storage_key("System", "Account", bob.public_key)),
    )
    before = md.decode_storage(
        "System",
        "Account",
        dev_chain.state(dev_chain.block_hash(0)).get(
            md.storage_key("System", "Account", bob.public_key)
        ),
    )
    assert account["data"]["free"] == before["data"]["free"] + 12345


def test_extrinsic_dev_runtime_rejects_tampered_signature(dev_chain: Chain) -> None:
    """Changing the signed spec version makes the runtime reject the proof (BadProof)."""
    md = RuntimeMetadata.from_bytes(dev_chain.runtime.metadata())
    version = dev_chain.runtime.version
    xt = build_signed_extrinsic(
        md,
        md.encode_call("System", "remark", {"remark": b"x"}),
        ALICE,
        nonce=0,
        genesis_hash=dev_chain.genesis_hash,
        spec_version=version.spec_version + 1,
        transaction_version=version.transaction_version,
    )
    with pytest.raises(InvalidTransactionError, match=r"(?i)proof|signature"):
        dev_chain.submit(xt)
