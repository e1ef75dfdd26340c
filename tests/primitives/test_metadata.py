"""Metadata V14 compiler: lookups by name, every type kind, round trips, scalecodec cross-checks.

The metadata here is built in the test from tocw's own dataclasses (every scale-info type kind,
including those the dev chain does not use: signed ints, u256, char, bit sequences, recursive
types, nested options), serialised with `to_bytes` and parsed back with `from_bytes`, which is
the same path a node's `state_getMetadata` answer takes. scalecodec decodes the same bytes as
the reference.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scalecodec.base import RuntimeConfigurationObject, ScaleBytes
from scalecodec.type_registry import load_type_registry_preset

from tocw.primitives.errors import ScaleDecodeError, ScaleEncodeError
from tocw.primitives.hashing import blake2_128_concat, blake2_256, twox64_concat, twox128
from tocw.primitives.metadata import (
    IMMORTAL_ERA,
    ArrayDef,
    BitSequenceDef,
    Call,
    CompactDef,
    CompositeDef,
    ConstantMetadata,
    Era,
    Event,
    ExtrinsicMetadata,
    Field,
    MetadataDecodeError,
    PalletMetadata,
    PortableType,
    PrimitiveDef,
    RuntimeMetadata,
    SequenceDef,
    SignedExtensionMetadata,
    StorageEntryMetadata,
    TupleDef,
    TypeDef,
    UnknownNameError,
    UnsupportedMetadataVersionError,
    UnsupportedTypeError,
    Variant,
    VariantDef,
    VariantTypeDef,
)
from tocw.primitives.scale import compact_bytes


class Registry:
    """Builds a portable type registry: each `add` returns the new type id."""

    def __init__(self) -> None:
        self.types: dict[int, PortableType] = {}

    def add(self, definition: TypeDef, path: str = "", params: tuple[Any, ...] = ()) -> int:
        tid = len(self.types)
        self.types[tid] = PortableType(
            tid, tuple(path.split("::")) if path else (), params, definition
        )
        return tid

    def prim(self, name: str) -> int:
        return self.add(PrimitiveDef(name))

    def composite(self, path: str, *fields: tuple[str | None, int]) -> int:
        return self.add(CompositeDef(tuple(Field(n, t, f"Ty{t}") for n, t in fields)), path)

    def enum(
        self, path: str, *variants: tuple[str, int, tuple[tuple[str | None, int], ...]]
    ) -> int:
        return self.add(
            VariantTypeDef(
                tuple(
                    VariantDef(name, index, tuple(Field(n, t, f"Ty{t}") for n, t in fields))
                    for name, index, fields in variants
                )
            ),
            path,
        )

    def option(self, inner: int) -> int:
        return self.add(
            VariantTypeDef(
                (VariantDef("None", 0, ()), VariantDef("Some", 1, (Field(None, inner),)))
            ),
            "Option",
            (("T", inner),),
        )

    def set(
        self, tid: int, definition: TypeDef, path: str = "", params: tuple[Any, ...] = ()
    ) -> None:
        self.types[tid] = PortableType(
            tid, tuple(path.split("::")) if path else (), params, definition
        )


def build_metadata() -> RuntimeMetadata:
    """A small runtime: System, Balances-like transfer, a Demo pallet with every type kind."""
    r = Registry()
    u8, u16, u32, u64, u128 = (r.prim(n) for n in ("u8", "u16", "u32", "u64", "u128"))
    boolean, text, char = r.prim("bool"), r.prim("str"), r.prim("char")
    i8, i32, i128, u256, i256 = (r.prim(n) for n in ("i8", "i32", "i128", "u256", "i256"))
    bytes32 = r.add(ArrayDef(32, u8))
    bytes64 = r.add(ArrayDef(64, u8))
    bytes65 = r.add(ArrayDef(65, u8))
    bytes20 = r.add(ArrayDef(20, u8))
    vec_u8 = r.add(SequenceDef(u8))
    account = r.composite("sp_core::crypto::AccountId32", (None, bytes32))
    h256 = r.composite("primitive_types::H256", (None, bytes32))
    compact_u32 = r.add(CompactDef(u32))
    compact_u128 = r.add(CompactDef(u128))
    unit = r.add(TupleDef(()))
    address = r.enum(
        "sp_runtime::multiaddress::MultiAddress",
        ("Id", 0, ((None, account),)),
        ("Index", 1, ((None, compact_u32),)),
        ("Raw", 2, ((None, vec_u8),)),
        ("Address32", 3, ((None, bytes32),)),
        ("Address20", 4, ((None, bytes20),)),
    )
    sig_ed = r.composite("sp_core::ed25519::Signature", (None, bytes64))
    sig_sr = r.composite("sp_core::sr25519::Signature", (None, bytes64))
    sig_ecdsa = r.composite("sp_core::ecdsa::Signature", (None, bytes65))
    signature = r.enum(
        "sp_runtime::MultiSignature",
        ("Ed25519", 0, ((None, sig_ed),)),
        ("Sr25519", 1, ((None, sig_sr),)),
        ("Ecdsa", 2, ((None, sig_ecdsa),)),
    )
    era = r.enum(
        "sp_runtime::generic::era::Era",
        ("Immortal", 0, ()),
        *((f"Mortal{i}", i, ((None, u8),)) for i in range(1, 256)),
    )
    # Demo types
    point = r.composite("demo::Point", ("x", i32), ("y", i32))
    pair = r.composite("demo::Pair", (None, u8), (None, u16))
    empty = r.composite("demo::Empty")
    opt_u32 = r.option(u32)
    opt_u8 = r.option(u8)
    opt_opt_u8 = r.option(opt_u8)
    tuple_u32_bool = r.add(TupleDef((u32, boolean)))
    arr_u16 = r.add(ArrayDef(3, u16))
    lsb0 = r.composite("bitvec::order::Lsb0")
    msb0 = r.composite("bitvec::order::Msb0")
    bits_u8 = r.add(BitSequenceDef(u8, lsb0))
    bits_u32 = r.add(BitSequenceDef(u32, msb0))
    perbill = r.composite("sp_arithmetic::per_things::Perbill", (None, u32))
    compact_perbill = r.add(CompactDef(perbill))
    # a recursive type: Tree { value: u8, children: Vec<Tree> }
    tree = r.add(TupleDef(()))  # placeholder, set below
    vec_tree = r.add(SequenceDef(tree))
    r.set(tree, CompositeDef((Field("value", u8), Field("children", vec_tree))), "demo::Tree")
    shape = r.enum(
        "demo::Shape",
        ("Dot", 0, ()),
        ("Circle", 1, ((None, u32),)),
        ("Rect", 2, (("w", u32), ("h", u32))),
        ("Line", 5, ((None, u32), (None, u32))),
    )
    runtime_call = r.add(TupleDef(()))  # placeholder: RuntimeCall, set after the pallet calls
    vec_call = r.add(SequenceDef(runtime_call))
    demo_call = r.enum(
        "demo::pallet::Call",
        (
            "all_kinds",
            0,
            (
                ("a", u8),
                ("b", i32),
                ("c", compact_u128),
                ("d", vec_u8),
                ("e", opt_u32),
                ("f", tuple_u32_bool),
                ("g", arr_u16),
                ("h", point),
                ("i", char),
                ("j", text),
                ("k", u256),
                ("l", i256),
                ("m", bits_u8),
                ("n", bits_u32),
                ("o", opt_opt_u8),
                ("p", shape),
                ("q", tree),
                ("r", pair),
                ("s", empty),
                ("t", compact_perbill),
                ("u", i8),
                ("v", i128),
                ("w", h256),
                ("x", unit),
            ),
        ),
        ("batch", 1, (("calls", vec_call),)),
        ("transfer", 2, (("dest", address), ("value", compact_u128))),
    )
    system_call = r.enum("frame_system::pallet::Call", ("remark", 0, (("remark", vec_u8),)))
    r.set(
        runtime_call,
        VariantTypeDef(
            (
                VariantDef("System", 0, (Field(None, system_call),)),
                VariantDef("Demo", 7, (Field(None, demo_call),)),
            )
        ),
        "demo_runtime::RuntimeCall",
    )
    weight = r.composite(
        "sp_weights::weight_v2::Weight",
        ("ref_time", r.add(CompactDef(u64))),
        ("proof_size", r.add(CompactDef(u64))),
    )
    dispatch_class = r.enum(
        "frame_support::dispatch::DispatchClass",
        ("Normal", 0, ()),
        ("Operational", 1, ()),
        ("Mandatory", 2, ()),
    )
    pays = r.enum("frame_support::dispatch::Pays", ("Yes", 0, ()), ("No", 1, ()))
    dispatch_info = r.composite(
        "frame_support::dispatch::DispatchInfo",
        ("weight", weight),
        ("class", dispatch_class),
        ("pays_fee", pays),
    )
    module_error = r.composite(
        "sp_runtime::ModuleError", ("index", u8), ("error", r.add(ArrayDef(4, u8)))
    )
    dispatch_error = r.enum(
        "sp_runtime::DispatchError",
        ("Other", 0, ()),
        ("BadOrigin", 2, ()),
        ("Module", 3, ((None, module_error),)),
    )
    system_event = r.enum(
        "frame_system::pallet::Event",
        ("ExtrinsicSuccess", 0, (("dispatch_info", dispatch_info),)),
        (
            "ExtrinsicFailed",
            1,
            (("dispatch_error", dispatch_error), ("dispatch_info", dispatch_info)),
        ),
        ("Remarked", 7, (("sender", account), ("hash", h256))),
    )
    demo_event = r.enum("demo::pallet::Event", ("Moved", 0, ((None, account), (None, u128))))
    system_error = r.enum(
        "frame_system::pallet::Error", ("InvalidSpecName", 0, ()), ("CallFiltered", 5, ())
    )
    demo_error = r.enum("demo::pallet::Error", ("TooPoor", 0, ()))
    runtime_event = r.enum(
        "demo_runtime::RuntimeEvent",
        ("System", 0, ((None, system_event),)),
        ("Demo", 7, ((None, demo_event),)),
    )
    phase = r.enum(
        "frame_system::Phase",
        ("ApplyExtrinsic", 0, ((None, u32),)),
        ("Finalization", 1, ()),
        ("Initialization", 2, ()),
    )
    record = r.composite(
        "frame_system::EventRecord",
        ("phase", phase),
        ("event", runtime_event),
        ("topics", r.add(SequenceDef(h256))),
    )
    records = r.add(SequenceDef(record))
    account_data = r.composite(
        "pallet_balances::types::AccountData", ("free", u128), ("reserved", u128)
    )
    account_info = r.composite("frame_system::AccountInfo", ("nonce", u32), ("data", account_data))
    key_pair = r.add(TupleDef((u32, account)))
    ext = {
        name: r.composite(f"frame_system::extensions::{name}")
        for name in (
            "CheckNonZeroSender",
            "CheckSpecVersion",
            "CheckTxVersion",
            "CheckGenesis",
            "CheckWeight",
        )
    }
    check_mortality = r.composite(
        "frame_system::extensions::check_mortality::CheckMortality", (None, era)
    )
    check_nonce = r.composite(
        "frame_system::extensions::check_nonce::CheckNonce", (None, compact_u32)
    )
    charge = r.composite(
        "pallet_transaction_payment::ChargeTransactionPayment", (None, compact_u128)
    )
    signed_extensions = (
        SignedExtensionMetadata("CheckNonZeroSender", ext["CheckNonZeroSender"], unit),
        SignedExtensionMetadata("CheckSpecVersion", ext["CheckSpecVersion"], u32),
        SignedExtensionMetadata("CheckTxVersion", ext["CheckTxVersion"], u32),
        SignedExtensionMetadata("CheckGenesis", ext["CheckGenesis"], h256),
        SignedExtensionMetadata("CheckMortality", check_mortality, h256),
        SignedExtensionMetadata("CheckNonce", check_nonce, unit),
        SignedExtensionMetadata("CheckWeight", ext["CheckWeight"], unit),
        SignedExtensionMetadata("ChargeTransactionPayment", charge, unit),
    )
    extra = r.add(TupleDef(tuple(se.extra_type_id for se in signed_extensions)))
    xt = r.composite(
        "sp_runtime::generic::unchecked_extrinsic::UncheckedExtrinsic",
        (None, vec_u8),
    )
    t = r.types[xt]
    r.set(
        xt,
        t.definition,
        t.path_str,
        (("Address", address), ("Call", runtime_call), ("Signature", signature), ("Extra", extra)),
    )
    runtime = r.composite("demo_runtime::Runtime")

    def entry(
        pallet: str,
        name: str,
        hashers: tuple[str, ...],
        keys: tuple[int, ...],
        value: int,
        default: bytes,
        modifier: str = "Default",
        key_type: int | None = None,
    ) -> StorageEntryMetadata:
        return StorageEntryMetadata(
            pallet, pallet, name, modifier, hashers, keys, value, default, (), key_type
        )

    pallets = [
        PalletMetadata(
            "System",
            0,
            system_call,
            system_event,
            system_error,
            "System",
            (
                entry(
                    "System", "Account", ("Blake2_128Concat",), (account,), account_info, bytes(36)
                ),
                entry("System", "Events", (), (), records, b"\x00"),
                entry("System", "Number", (), (), u32, bytes(4)),
            ),
            (
                ConstantMetadata("System", "SS58Prefix", u16, (42).to_bytes(2, "little")),
                ConstantMetadata("System", "BlockHashCount", u32, (2400).to_bytes(4, "little")),
            ),
        ),
        PalletMetadata(
            "Demo",
            7,
            demo_call,
            demo_event,
            demo_error,
            "DemoStore",
            (
                entry(
                    "Demo",
                    "Pairs",
                    ("Twox64Concat", "Blake2_128Concat"),
                    (u32, account),
                    u64,
                    b"",
                    "Optional",
                    key_pair,
                ),
                entry("Demo", "Hashed", ("Blake2_256",), (u32,), u32, bytes(4)),
                entry("Demo", "Trees", ("Identity",), (u8,), tree, b"\x00\x00"),
            ),
            (
                ConstantMetadata(
                    "Demo",
                    "Origin",
                    point,
                    (-1).to_bytes(4, "little", signed=True) + (5).to_bytes(4, "little"),
                ),
            ),
        ),
    ]
    extrinsic = ExtrinsicMetadata(4, xt, address, runtime_call, signature, extra, signed_extensions)
    built = RuntimeMetadata(r.types, pallets, extrinsic, runtime)
    return RuntimeMetadata.from_bytes(built.to_bytes())


MD = build_metadata()
ALICE = bytes(range(32))

ARG_TYPES = dict(
    zip(
        MD.call("Demo", "all_kinds").arg_names,
        MD.call("Demo", "all_kinds").arg_type_ids,
        strict=True,
    )
)

ALL_KINDS_ARGS: dict[str, Any] = {
    "a": 255,
    "b": -(2**31),
    "c": 2**128 - 1,
    "d": b"\x00hello",
    "e": 7,
    "f": (4_000_000_000, True),
    "g": [1, 2, 65535],
    "h": {"x": -5, "y": 6},
    "i": "λ",
    "j": "text ✓",
    "k": 2**256 - 1,
    "l": -(2**255),
    "m": [True, False, True, True, False, False, False, False, True],
    "n": [False] * 31 + [True, True],
    "o": Variant("Some", None),
    "p": Variant("Rect", {"w": 3, "h": 4}),
    "q": {
        "value": 1,
        "children": [
            {"value": 2, "children": []},
            {"value": 3, "children": [{"value": 4, "children": []}]},
        ],
    },
    "r": (9, 513),
    "s": (),
    "t": 1_000_000_000,
    "u": -128,
    "v": -(2**127),
    "w": bytes(range(32)),
    "x": (),
}


# scalecodec 1.2.12 reads every BitVec as if its store were u8 (parity-scale-codec writes whole
# store words), so the u32 bit sequence is left empty where scalecodec is the reference.
SCALECODEC_ARGS = ALL_KINDS_ARGS | {"n": []}


def scalecodec_config(md: RuntimeMetadata) -> tuple[RuntimeConfigurationObject, Any]:
    config = RuntimeConfigurationObject(ss58_format=42)
    config.update_type_registry(load_type_registry_preset("core"))
    # scalecodec 1.2.12 has no `char` primitive; read it as its u32 code point.
    config.update_type_registry({"types": {"char": "u32"}})
    obj = config.create_scale_object("MetadataVersioned", data=ScaleBytes(md.to_bytes()))
    obj.decode()
    config.add_portable_registry(obj)
    return config, obj


def reference_decode(type_id: int, data: bytes) -> Any:
    config, metadata = SCALECODEC
    obj = config.create_scale_object(
        f"scale_info::{type_id}", data=ScaleBytes(data), metadata=metadata
    )
    obj.decode()
    return obj.value


SCALECODEC = scalecodec_config(MD)


# --- loading ---------------------------------------------------------------------------------


def test_metadata_from_bytes_round_trips_exactly() -> None:
    """from_bytes(to_bytes(md)) reproduces the same registry, pallets and extrinsic info."""
    again = RuntimeMetadata.from_bytes(MD.to_bytes())
    assert again.types == MD.types
    assert again.pallets == MD.pallets
    assert again.extrinsic == MD.extrinsic
    assert again.to_bytes() == MD.to_bytes()


def test_metadata_from_bytes_rejects_missing_magic() -> None:
    """Bytes without the 'meta' magic are refused with a typed error."""
    with pytest.raises(MetadataDecodeError, match="magic"):
        RuntimeMetadata.from_bytes(b"nope\x0e")


def test_metadata_from_bytes_rejects_other_versions() -> None:
    """V13 or V15 metadata is refused by version, before any decoding."""
    for version in (13, 15):
        with pytest.raises(UnsupportedMetadataVersionError, match=f"V{version}"):
            RuntimeMetadata.from_bytes(b"meta" + bytes([version]) + b"\x00")


def test_metadata_from_bytes_rejects_truncated_v14() -> None:
    """A truncated V14 blob is a MetadataDecodeError, not a scalecodec exception."""
    data = MD.to_bytes()
    with pytest.raises(MetadataDecodeError):
        RuntimeMetadata.from_bytes(data[: len(data) // 2])


def test_metadata_from_hex_accepts_rpc_form() -> None:
    """The 0x-hex string of state_getMetadata parses like the raw bytes."""
    assert RuntimeMetadata.from_hex("0x" + MD.to_bytes().hex()).pallets == MD.pallets
    with pytest.raises(MetadataDecodeError):
        RuntimeMetadata.from_hex("0xzz")


# --- lookups ---------------------------------------------------------------------------------


def test_metadata_call_index_comes_from_pallet_and_variant_indices() -> None:
    """Demo is pallet 7; transfer is its variant 2."""
    assert MD.call_index("Demo", "transfer") == b"\x07\x02"
    assert MD.call_index("System", "remark") == b"\x00\x00"
    meta = MD.call_by_index(b"\x07\x02")
    assert (meta.pallet, meta.name, meta.arg_names) == ("Demo", "transfer", ("dest", "value"))
    assert MD.pallet_index("Demo") == 7


def test_metadata_unknown_names_raise_unknown_name_error() -> None:
    """Missing pallets, calls, events, storage items and constants are LookupErrors."""
    for lookup in (
        lambda: MD.pallet("Nope"),
        lambda: MD.call("Demo", "nope"),
        lambda: MD.call("Nope", "transfer"),
        lambda: MD.call_by_index(b"\x09\x09"),
        lambda: MD.event("System", "Nope"),
        lambda: MD.storage("System", "Nope"),
        lambda: MD.constant("System", "Nope"),
        lambda: MD.module_error(0, 99),
    ):
        with pytest.raises(UnknownNameError):
            lookup()


def test_metadata_constants_decode_by_declared_type() -> None:
    """Constants decode with their types; SS58 prefix comes from System.SS58Prefix."""
    assert MD.ss58_prefix == 42
    assert MD.constant("System", "BlockHashCount") == 2400
    assert MD.constant("Demo", "Origin") == {"x": -1, "y": 5}


def test_metadata_signed_extensions_and_extrinsic_types() -> None:
    """The extension list and UncheckedExtrinsic's type parameters are exposed in order."""
    names = [se.identifier for se in MD.signed_extensions]
    assert names[0] == "CheckNonZeroSender" and names[-1] == "ChargeTransactionPayment"
    assert (
        MD.type(MD.extrinsic.address_type_id).path_str == "sp_runtime::multiaddress::MultiAddress"
    )
    assert MD.type(MD.extrinsic.signature_type_id).path_str == "sp_runtime::MultiSignature"
    assert [i for i, _ in MD.extra_codecs] == [
        "CheckMortality",
        "CheckNonce",
        "ChargeTransactionPayment",
    ]


def test_metadata_module_error_names_pallet_error() -> None:
    """DispatchError::Module indices resolve to the pallet error's name."""
    err = MD.module_error(7, 0)
    assert (err.pallet, err.name) == ("Demo", "TooPoor")
    assert MD.module_error(0, 5).name == "CallFiltered"


# --- calls -----------------------------------------------------------------------------------


def test_metadata_encode_call_round_trips_every_type_kind() -> None:
    """Every scale-info kind encodes and decodes back to the documented Python shape."""
    data = MD.encode_call("Demo", "all_kinds", ALL_KINDS_ARGS)
    call = MD.decode_call(data)
    assert call == Call("Demo", "all_kinds", ALL_KINDS_ARGS | {"f": (4_000_000_000, True)})
    assert MD.encode_call("Demo", "all_kinds", call.args) == data


def test_metadata_encode_call_matches_scalecodec_decoding() -> None:
    """scalecodec decodes our all_kinds call to the same values (the reference decoder)."""
    data = MD.encode_call("Demo", "all_kinds", SCALECODEC_ARGS)
    ref = reference_decode(MD.extrinsic.call_type_id, data)
    args = {a["name"]: a["value"] for a in ref["call_args"]}
    assert ref["call_module"] == "Demo" and ref["call_function"] == "all_kinds"
    assert args["a"] == 255 and args["b"] == -(2**31) and args["c"] == 2**128 - 1
    assert b"\x00hello" in _scalecodec_bytes_candidates(args["d"])
    assert args["i"] == ord("λ") and args["m"] == "0b100001101" and args["n"] == "0b0"
    assert args["e"] == 7 and args["f"] == (4_000_000_000, True) and args["g"] == [1, 2, 65535]
    assert args["h"] == {"x": -5, "y": 6}
    assert args["j"] == "text ✓"
    assert args["k"] == 2**256 - 1 and args["l"] == -(2**255)
    assert args["p"] == {"Rect": {"w": 3, "h": 4}}
    assert args["q"]["children"][1]["children"][0]["value"] == 4
    assert args["r"] == (9, 513) and args["t"] == 1_000_000_000
    assert args["u"] == -128 and args["v"] == -(2**127)
    assert args["w"] == "0x" + bytes(range(32)).hex()


def test_metadata_nested_runtime_calls_decode_as_calls() -> None:
    """Vec<RuntimeCall> arguments (batch) decode into Call values, not generic variants."""
    inner = [
        Call("System", "remark", {"remark": b"hi"}),
        Call("Demo", "transfer", {"dest": Variant("Index", 3), "value": 5}),
    ]
    data = MD.encode_call("Demo", "batch", {"calls": inner})
    assert data[:2] == b"\x07\x01"
    assert MD.decode_call(data) == Call("Demo", "batch", {"calls": inner})
    ref = reference_decode(MD.extrinsic.call_type_id, data)
    assert ref["call_args"][0]["value"][0]["call_function"] == "remark"


def test_metadata_encode_call_rejects_bad_arguments() -> None:
    """Missing, unknown or ill-typed arguments give ScaleEncodeError naming the call."""
    good = {"dest": Variant("Id", ALICE), "value": 1}
    bad_args: list[dict[str, Any]] = [
        {"dest": Variant("Id", ALICE)},
        good | {"extra": 1},
        good | {"value": -1},
        good | {"value": "1"},
        good | {"dest": Variant("Id", b"short")},
        good | {"dest": Variant("Nope", ALICE)},
        good | {"dest": ALICE},
        good | {"value": True},
    ]
    for args in bad_args:
        with pytest.raises(ScaleEncodeError, match=r"Demo\.transfer"):
            MD.encode_call("Demo", "transfer", args)


def test_metadata_encode_rejects_out_of_range_values() -> None:
    """Each primitive refuses values outside its range with ScaleEncodeError."""
    args = dict(ALL_KINDS_ARGS)
    for key, bad in (
        ("a", 256),
        ("b", 2**31),
        ("k", 2**256),
        ("l", 2**255),
        ("i", "ab"),
        ("m", [1]),
        ("g", [1, 2]),
        ("o", None),
        ("s", 1),
        ("j", b"x"),
    ):
        with pytest.raises(ScaleEncodeError):
            MD.encode_call("Demo", "all_kinds", args | {key: bad})


def test_metadata_decode_call_rejects_garbage() -> None:
    """Unknown call indices, truncation and trailing bytes are ScaleDecodeErrors."""
    good = MD.encode_call("Demo", "transfer", {"dest": Variant("Id", ALICE), "value": 1})
    for data in (b"", b"\x07", b"\x09\x00", good[:-1], good + b"\x00", b"\x07\x02\x09"):
        with pytest.raises(ScaleDecodeError):
            MD.decode_call(data)


def test_metadata_decode_rejects_invalid_values() -> None:
    """Bad bool/option/char/compact encodings and oversized lengths fail as ScaleDecodeError."""
    t = ARG_TYPES
    cases = [
        (t["e"], b"\x02"),  # Option tag
        (t["f"], b"\x00\x00\x00\x00\x02"),  # bool
        (t["i"], (0xD800).to_bytes(4, "little")),  # surrogate char
        (t["j"], b"\x04\xff"),  # invalid utf-8
        (t["d"], b"\xfe\xff\xff\xff"),  # length far past the input
        (t["q"], b"\x01" + compact_bytes(1 << 29)),  # Vec<Tree> length past the input
        (t["p"], b"\x09"),  # unknown variant
        (t["m"], compact_bytes(100) + b"\x00"),  # bit sequence past the input
        (t["c"], b"\x13" + b"\xff" * 17),  # Compact<u128> holding 136 bits
    ]
    for type_id, data in cases:
        with pytest.raises(ScaleDecodeError):
            MD.decode(type_id, data)


@settings(max_examples=60, deadline=None)
@given(
    a=st.integers(0, 255),
    b=st.integers(-(2**31), 2**31 - 1),
    c=st.integers(0, 2**128 - 1),
    d=st.binary(max_size=70),
    e=st.none() | st.integers(0, 2**32 - 1),
    m=st.lists(st.booleans(), max_size=40),
    n=st.lists(st.booleans(), max_size=70),
)
def test_metadata_codecs_agree_with_scalecodec(
    a: int, b: int, c: int, d: bytes, e: int | None, m: list[bool], n: list[bool]
) -> None:
    """Random values round-trip, and scalecodec reads our bytes to the same values."""
    args = ALL_KINDS_ARGS | {"a": a, "b": b, "c": c, "d": d, "e": e, "m": m, "n": n}
    data = MD.encode_call("Demo", "all_kinds", args)
    assert MD.decode_call(data).args == args | {"f": (4_000_000_000, True)}
    data = MD.encode_call("Demo", "all_kinds", args | {"n": []})
    ref = {
        x["name"]: x["value"]
        for x in reference_decode(MD.extrinsic.call_type_id, data)["call_args"]
    }
    assert (ref["a"], ref["b"], ref["c"], ref["e"]) == (a, b, c, e)
    assert d in _scalecodec_bytes_candidates(ref["d"])
    assert ref["m"] == "0b" + "".join("1" if x else "0" for x in reversed(m)) or not m


def _scalecodec_bytes_candidates(value: str) -> set[bytes]:
    """scalecodec shows Vec<u8> as text when it is valid UTF-8 and as 0x-hex otherwise."""
    out = {value.encode()}
    if value.startswith("0x"):
        with contextlib.suppress(ValueError):
            out.add(bytes.fromhex(value[2:]))
    return out


def test_metadata_bit_sequences_follow_store_and_order() -> None:
    """BitVec<u8, Lsb0> puts bit 0 in the low bit; BitVec<u32, Msb0> fills whole u32 words."""
    t = ARG_TYPES
    assert MD.encode(t["m"], [True, False, True]) == compact_bytes(3) + b"\x05"
    assert MD.encode(t["n"], [True, False]) == compact_bytes(2) + (1 << 31).to_bytes(4, "little")
    assert MD.decode(t["n"], compact_bytes(2) + (1 << 31).to_bytes(4, "little")) == [True, False]


def test_metadata_nested_option_keeps_some_none_distinct() -> None:
    """Option<Option<u8>> stays a Variant so Some(None) and None differ; Option<u32> flattens."""
    t = ARG_TYPES
    assert MD.decode(t["o"], b"\x01\x00") == Variant("Some", None)
    assert MD.decode(t["o"], b"\x00") == Variant("None")
    assert MD.decode(t["o"], b"\x01\x01\x05") == Variant("Some", 5)
    assert MD.decode(t["e"], b"\x00") is None
    assert MD.decode(t["e"], b"\x01\x05\x00\x00\x00") == 5


def test_metadata_unsupported_type_is_a_clear_error() -> None:
    """A Compact of a non-integer and a bit store of u128 raise UnsupportedTypeError."""
    r = Registry()
    u8 = r.prim("u8")
    u128 = r.prim("u128")
    text = r.prim("str")
    order = r.composite("bitvec::order::Lsb0")
    bad_compact = r.add(CompactDef(text))
    bad_bits = r.add(BitSequenceDef(u128, order))
    call = r.enum("x::Call", ("f", 0, (("a", bad_compact),)), ("g", 1, (("b", bad_bits),)))
    rc = r.enum("x::RuntimeCall", ("X", 0, ((None, call),)))
    xt = r.add(
        CompositeDef(()),
        "sp_runtime::generic::unchecked_extrinsic::UncheckedExtrinsic",
        (("Address", u8), ("Call", rc), ("Signature", u8)),
    )
    md = RuntimeMetadata(
        r.types,
        [PalletMetadata("X", 0, call, None, None, None, (), ())],
        ExtrinsicMetadata(4, xt, u8, rc, u8, None, ()),
    )
    for name, args in (("f", {"a": "x"}), ("g", {"b": []})):
        with pytest.raises(UnsupportedTypeError):
            md.encode_call("X", name, args)


# --- storage ---------------------------------------------------------------------------------


def test_metadata_storage_key_uses_declared_hashers() -> None:
    """Keys are twox128(prefix) ++ twox128(item) ++ hasher(SCALE(key)) for each key."""
    assert MD.storage_key("System", "Number") == twox128(b"System") + twox128(b"Number")
    account_key = MD.storage_key("System", "Account", ALICE)
    assert account_key == twox128(b"System") + twox128(b"Account") + blake2_128_concat(ALICE)
    pairs = MD.storage_key("Demo", "Pairs", 5, ALICE)
    # the storage prefix of Demo is "DemoStore", not the pallet name
    assert pairs == twox128(b"DemoStore") + twox128(b"Pairs") + twox64_concat(
        b"\x05\0\0\0"
    ) + blake2_128_concat(ALICE)
    assert MD.storage_key("Demo", "Pairs", 5) == pairs[: 32 + 12]
    assert MD.storage_key("Demo", "Hashed", 1).endswith(blake2_256(b"\x01\0\0\0"))
    with pytest.raises(ScaleEncodeError):
        MD.storage_key("Demo", "Pairs", 5, ALICE, 1)
    with pytest.raises(ScaleEncodeError):
        MD.storage_key("Demo", "Pairs", "five")


def test_metadata_storage_key_matches_scalecodec() -> None:
    """scalecodec's StorageKey produces the same bytes for a double map."""
    from scalecodec.types import GenericStorageEntryMetadata  # noqa: F401  (ensures registry)
    from substrateinterface.storage import StorageKey

    config, metadata = SCALECODEC
    key = StorageKey.create_from_storage_function(
        "Demo", "Pairs", [5, "0x" + ALICE.hex()], runtime_config=config, metadata=metadata
    )
    assert bytes(key.data) == MD.storage_key("Demo", "Pairs", 5, ALICE)


def test_metadata_decode_storage_key_recovers_transparent_keys() -> None:
    """Concat and identity hashers give the keys back; opaque hashers refuse."""
    key = MD.storage_key("Demo", "Pairs", 5, ALICE)
    assert MD.decode_storage_key("Demo", "Pairs", key) == (5, ALICE)
    assert MD.decode_storage_key("Demo", "Trees", MD.storage_key("Demo", "Trees", 9)) == (9,)
    with pytest.raises(UnsupportedTypeError):
        MD.decode_storage_key("Demo", "Hashed", MD.storage_key("Demo", "Hashed", 1))
    with pytest.raises(ScaleDecodeError):
        MD.decode_storage_key("Demo", "Pairs", MD.storage_key("System", "Account", ALICE))


def test_metadata_decode_storage_applies_defaults() -> None:
    """Absent values give the declared default (Default) or None (Optional)."""
    assert MD.decode_storage("System", "Account", None) == {
        "nonce": 0,
        "data": {"free": 0, "reserved": 0},
    }
    assert MD.decode_storage("Demo", "Pairs", None) is None
    value = (3).to_bytes(4, "little") + (10).to_bytes(16, "little") + bytes(16)
    assert MD.decode_storage("System", "Account", value) == {
        "nonce": 3,
        "data": {"free": 10, "reserved": 0},
    }
    with pytest.raises(ScaleDecodeError):
        MD.decode_storage("System", "Account", value[:-1])


# --- events and era -------------------------------------------------------------------------


def test_metadata_event_codec_names_unnamed_fields_by_position() -> None:
    """Events decode into Event with attribute keys; unnamed fields use "0", "1", ..."""
    ev = Event("Demo", "Moved", {"0": ALICE, "1": 10})
    data = MD.event_codec.encode(ev)
    assert data[:2] == b"\x07\x00"
    assert MD.event_codec.decode(data) == ev
    assert MD.event("Demo", "Moved").attribute_names == ("0", "1")
    assert MD.event_by_index(0, 7).name == "Remarked"


def test_metadata_era_encoding_matches_substrate() -> None:
    """Era::mortal(64, 1000) = period 64 phase 40 = 0x8502 (sp_runtime's test vector style)."""
    era = Era.mortal(64, 1000)
    assert (era.period, era.phase) == (64, 40)
    era_type = MD.type(MD.signed_extensions[4].extra_type_id).definition
    assert isinstance(era_type, CompositeDef)
    codec = MD.codec_for(era_type.fields[0].type_id)
    assert codec.encode(era) == bytes([0x85, 0x02])
    assert codec.encode(IMMORTAL_ERA) == b"\x00"
    assert codec.decode(b"\x85\x02") == era
    # sp_runtime era tests: mortal(32768, 20000) quantizes the phase by 8
    big = Era.mortal(32768, 20000)
    assert (big.period, big.phase) == (32768, 20000)
    assert codec.decode(codec.encode(big)) == big
    assert Era.mortal(5000, 0).period == 8192
    assert Era.mortal(1, 7).period == 4
    assert era.birth(1000) == 1000 and era.birth(1063) == 1000 and era.birth(1064) == 1064
    assert era.death(1000) == 1064
    assert reference_decode(era_type.fields[0].type_id, b"\x85\x02") == (64, 40)
    with pytest.raises(ScaleDecodeError):
        codec.decode(b"\x00\x00\x01")
    with pytest.raises(ScaleDecodeError):
        codec.decode(bytes([0x41, 0x00]))  # period 4, phase 4: beyond the period


def test_metadata_era_rejects_invalid_parameters() -> None:
    """Eras with a non-power-of-two period, a phase beyond it, or a bad request raise."""
    for period, phase in ((3, 0), (100, 0), (64, 64), (0, 1), (1 << 17, 0)):
        with pytest.raises(ValueError):
            Era(period, phase)
    with pytest.raises(ValueError):
        Era.mortal(0, 5)


def test_metadata_unit_and_empty_composites_are_empty_tuples() -> None:
    """A composite without fields and the unit tuple both decode to () and encode nothing."""
    t = ARG_TYPES
    assert MD.decode(t["s"], b"") == ()
    assert MD.encode(t["x"], ()) == b""
    assert MD.is_zero_sized(t["s"]) and MD.is_zero_sized(t["x"])
    assert not MD.is_zero_sized(t["r"])


def test_metadata_compile_all_compiles_every_type_up_front() -> None:
    """compile_all fills every cache, so a shared metadata needs no compilation later."""
    md = RuntimeMetadata.from_bytes(MD.to_bytes())
    md.compile_all()
    assert set(md.types) <= set(md._codecs)
    data = md.encode_call("Demo", "all_kinds", ALL_KINDS_ARGS)
    assert md.decode_call(data).args["q"] == ALL_KINDS_ARGS["q"]
    assert md.is_call_index(b"\x07\x00") and not md.is_call_index(b"\x07\x09")
