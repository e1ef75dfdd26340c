"""Substrate's own types (sp_core, sp_runtime, sp_weights, frame_support, frame_system,
pallet_balances) as `TypeInfo`, with their Python values and fast codecs.

Paths are spelled exactly as in polkadot-v0.9.42 metadata (notes/substrate-compat.md): client
libraries pick special decoders by path (AccountId32, MultiAddress, Era, EventRecord, ...).
Values that sit on the hot path (AccountInfo, DispatchInfo) have hand-written codecs. Era's value
and codec are tocw.primitives.metadata's; only its scale-info shape is declared here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum

from tocw.chain.errors import (
    ArithmeticErrorKind,
    DispatchErrorKind,
    TokenError,
    TransactionalError,
)
from tocw.chain.pallets.scaleinfo import (
    BYTES_T,
    STR_T,
    U8_T,
    U32_T,
    U64_T,
    U128_T,
    UNIT_T,
    CompactOf,
    Composite,
    Field,
    OptionOf,
    Placeholder,
    ResultOf,
    SequenceOf,
    TypeInfo,
    VariantDef,
    VariantType,
    array_u8,
    int_enum_type,
)
from tocw.primitives.errors import ScaleDecodeError, ScaleEncodeError
from tocw.primitives.keys import MULTI_SIGNATURE_CODEC
from tocw.primitives.metadata import ERA_CODEC
from tocw.primitives.scale import Codec, Reader

# The outer enums, supplied by the runtime (tocw.chain.runtime) from its pallet list.
RUNTIME_CALL = Placeholder("RuntimeCall")
RUNTIME_EVENT = Placeholder("RuntimeEvent")

# --- identifiers --------------------------------------------------------------------------------

ACCOUNT_ID_T = Composite(
    ["sp_core", "crypto", "AccountId32"], [Field(None, array_u8(32), "[u8; 32]")]
)
H256_T = Composite(["primitive_types", "H256"], [Field(None, array_u8(32), "[u8; 32]")])
BALANCE_T = U128_T
COMPACT_BALANCE_T = CompactOf(U128_T)
BLOCK_NUMBER_T = U32_T
INDEX_T = U32_T
MOMENT_T = U64_T


@dataclass(frozen=True, slots=True)
class AddressId:
    account: bytes


@dataclass(frozen=True, slots=True)
class AddressIndex:
    index: tuple[()]


@dataclass(frozen=True, slots=True)
class AddressRaw:
    data: bytes


@dataclass(frozen=True, slots=True)
class Address32:
    data: bytes


@dataclass(frozen=True, slots=True)
class Address20:
    data: bytes


MultiAddress = AddressId | AddressIndex | AddressRaw | Address32 | Address20

# MultiAddress<AccountId32, ()>, as node-template and Integritee: only `Id` can be looked up.
MULTI_ADDRESS_T = VariantType(
    ["sp_runtime", "multiaddress", "MultiAddress"],
    [
        VariantDef("Id", 0, (Field(None, ACCOUNT_ID_T, "AccountId"),), cls=AddressId),
        VariantDef("Index", 1, (Field(None, CompactOf(UNIT_T), "AccountIndex"),), cls=AddressIndex),
        VariantDef("Raw", 2, (Field(None, BYTES_T, "Vec<u8>"),), cls=AddressRaw),
        VariantDef("Address32", 3, (Field(None, array_u8(32), "[u8; 32]"),), cls=Address32),
        VariantDef("Address20", 4, (Field(None, array_u8(20), "[u8; 20]"),), cls=Address20),
    ],
    params=[("AccountId", ACCOUNT_ID_T), ("AccountIndex", UNIT_T)],
)

# --- signatures ---------------------------------------------------------------------------------

_ED25519_SIG_T = Composite(["sp_core", "ed25519", "Signature"], [Field(None, array_u8(64))])
_SR25519_SIG_T = Composite(["sp_core", "sr25519", "Signature"], [Field(None, array_u8(64))])
_ECDSA_SIG_T = Composite(["sp_core", "ecdsa", "Signature"], [Field(None, array_u8(65))])
MULTI_SIGNATURE_T = VariantType(
    ["sp_runtime", "MultiSignature"],
    [
        VariantDef("Ed25519", 0, (Field(None, _ED25519_SIG_T, "ed25519::Signature"),)),
        VariantDef("Sr25519", 1, (Field(None, _SR25519_SIG_T, "sr25519::Signature"),)),
        VariantDef("Ecdsa", 2, (Field(None, _ECDSA_SIG_T, "ecdsa::Signature"),)),
    ],
    codec=MULTI_SIGNATURE_CODEC,
)
_ED25519_PUBLIC_T = Composite(["sp_core", "ed25519", "Public"], [Field(None, array_u8(32))])
_SR25519_PUBLIC_T = Composite(["sp_core", "sr25519", "Public"], [Field(None, array_u8(32))])
_ECDSA_PUBLIC_T = Composite(["sp_core", "ecdsa", "Public"], [Field(None, array_u8(33))])


@dataclass(frozen=True, slots=True)
class Ed25519Signer:
    public: bytes


@dataclass(frozen=True, slots=True)
class Sr25519Signer:
    public: bytes


@dataclass(frozen=True, slots=True)
class EcdsaSigner:
    public: bytes


MultiSigner = Ed25519Signer | Sr25519Signer | EcdsaSigner

MULTI_SIGNER_T = VariantType(
    ["sp_runtime", "MultiSigner"],
    [
        VariantDef(
            "Ed25519", 0, (Field(None, _ED25519_PUBLIC_T, "ed25519::Public"),), cls=Ed25519Signer
        ),
        VariantDef(
            "Sr25519", 1, (Field(None, _SR25519_PUBLIC_T, "sr25519::Public"),), cls=Sr25519Signer
        ),
        VariantDef("Ecdsa", 2, (Field(None, _ECDSA_PUBLIC_T, "ecdsa::Public"),), cls=EcdsaSigner),
    ],
)

# --- Era ----------------------------------------------------------------------------------------
# The value and its two-byte codec are tocw.primitives.metadata's (clients and the runtime share
# one implementation of Era::mortal, birth and death); this is only its scale-info shape.

ERA_T = VariantType(
    ["sp_runtime", "generic", "era", "Era"],
    [VariantDef("Immortal", 0)]
    + [VariantDef(f"Mortal{i}", i, (Field(None, U8_T),)) for i in range(1, 256)],
    codec=ERA_CODEC,
)

# --- weights and dispatch info ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Weight:
    ref_time: int
    proof_size: int = 0

    def __add__(self, other: Weight) -> Weight:
        return Weight(self.ref_time + other.ref_time, self.proof_size + other.proof_size)

    def fits(self, limit: Weight) -> bool:
        return self.ref_time <= limit.ref_time and self.proof_size <= limit.proof_size


WEIGHT_T = Composite(
    ["sp_weights", "weight_v2", "Weight"],
    [Field("ref_time", CompactOf(U64_T), "u64"), Field("proof_size", CompactOf(U64_T), "u64")],
    cls=Weight,
)


class DispatchClass(IntEnum):
    Normal = 0
    Operational = 1
    Mandatory = 2


class Pays(IntEnum):
    Yes = 0
    No = 1


DISPATCH_CLASS_T = int_enum_type(["frame_support", "dispatch", "DispatchClass"], DispatchClass)
PAYS_T = int_enum_type(["frame_support", "dispatch", "Pays"], Pays)


@dataclass(frozen=True, slots=True)
class DispatchInfo:
    weight: Weight
    dispatch_class: DispatchClass
    pays_fee: Pays


DISPATCH_INFO_T = Composite(
    ["frame_support", "dispatch", "DispatchInfo"],
    [
        Field("weight", WEIGHT_T, "Weight"),
        Field("class", DISPATCH_CLASS_T, "DispatchClass"),
        Field("pays_fee", PAYS_T, "Pays"),
    ],
    cls=DispatchInfo,
)


def per_dispatch_class(inner: TypeInfo) -> Composite:
    return Composite(
        ["frame_support", "dispatch", "PerDispatchClass"],
        [Field(n, inner, "T") for n in ("normal", "operational", "mandatory")],
        params=[("T", inner)],
        structural=True,
    )


RUNTIME_DISPATCH_INFO_T = Composite(
    ["pallet_transaction_payment", "types", "RuntimeDispatchInfo"],
    [
        Field("weight", WEIGHT_T, "Weight"),
        Field("class", DISPATCH_CLASS_T, "DispatchClass"),
        Field("partial_fee", BALANCE_T, "Balance"),
    ],
    params=[("Balance", BALANCE_T), ("Weight", WEIGHT_T)],
)

# --- DispatchError ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EncodedDispatchError:
    """SCALE of an sp_runtime::DispatchError. The runtime encodes a raised DispatchError once
    it knows the failing pallet's index; events carry this value. `message` is the error's
    text for logs; like Substrate's `#[codec(skip)] message` it is not part of the encoding."""

    data: bytes
    message: str = field(default="", compare=False)


_PAYLOAD_LEN = {
    DispatchErrorKind.Module: 5,
    DispatchErrorKind.Token: 1,
    DispatchErrorKind.Arithmetic: 1,
    DispatchErrorKind.Transactional: 1,
}


class _DispatchErrorCodec(Codec[EncodedDispatchError]):
    def encode_into(self, value: EncodedDispatchError, out: bytearray) -> None:
        if not isinstance(value, EncodedDispatchError):
            raise ScaleEncodeError(f"expected EncodedDispatchError, got {value!r}")
        out += value.data

    def read(self, r: Reader) -> EncodedDispatchError:
        start = r.pos
        index = r.read_byte()
        try:
            kind = DispatchErrorKind(index)
        except ValueError:
            raise ScaleDecodeError(f"unknown DispatchError variant {index}") from None
        r.read(_PAYLOAD_LEN.get(kind, 0))
        return EncodedDispatchError(r.data[start : r.pos])

    def __repr__(self) -> str:
        return "DispatchError"


DISPATCH_ERROR_CODEC = _DispatchErrorCodec()

MODULE_ERROR_T = Composite(
    ["sp_runtime", "ModuleError"],
    [
        Field("index", U8_T, "u8"),
        Field("error", array_u8(4), "[u8; MAX_MODULE_ERROR_ENCODED_SIZE]"),
    ],
)
TOKEN_ERROR_T = int_enum_type(["sp_runtime", "TokenError"], TokenError)
ARITHMETIC_ERROR_T = int_enum_type(["sp_arithmetic", "ArithmeticError"], ArithmeticErrorKind)
TRANSACTIONAL_ERROR_T = int_enum_type(["sp_runtime", "TransactionalError"], TransactionalError)
_DISPATCH_ERROR_PAYLOADS: dict[DispatchErrorKind, Field] = {
    DispatchErrorKind.Module: Field(None, MODULE_ERROR_T, "ModuleError"),
    DispatchErrorKind.Token: Field(None, TOKEN_ERROR_T, "TokenError"),
    DispatchErrorKind.Arithmetic: Field(None, ARITHMETIC_ERROR_T, "ArithmeticError"),
    DispatchErrorKind.Transactional: Field(None, TRANSACTIONAL_ERROR_T, "TransactionalError"),
}
DISPATCH_ERROR_T = VariantType(
    ["sp_runtime", "DispatchError"],
    [
        VariantDef(
            k.name,
            int(k),
            (_DISPATCH_ERROR_PAYLOADS[k],) if k in _DISPATCH_ERROR_PAYLOADS else (),
        )
        for k in DispatchErrorKind
    ],
    codec=DISPATCH_ERROR_CODEC,
)


class _DispatchResultCodec(Codec["EncodedDispatchError | None"]):
    """Result<(), DispatchError> as `None` (Ok) or the error."""

    def encode_into(self, value: EncodedDispatchError | None, out: bytearray) -> None:
        if value is None:
            out.append(0)
        else:
            out.append(1)
            DISPATCH_ERROR_CODEC.encode_into(value, out)

    def read(self, r: Reader) -> EncodedDispatchError | None:
        tag = r.read_byte()
        if tag == 0:
            return None
        if tag == 1:
            return DISPATCH_ERROR_CODEC.read(r)
        raise ScaleDecodeError(f"invalid Result tag {tag}")

    def __repr__(self) -> str:
        return "DispatchResult"


DISPATCH_RESULT_T = ResultOf(UNIT_T, DISPATCH_ERROR_T, _DispatchResultCodec())

# --- accounts -----------------------------------------------------------------------------------

# pallet_balances::types::ExtraFlags: the top bit marks accounts under the new (holds/freezes)
# balance logic; every account created on this chain has it, as on polkadot-v0.9.42 chains.
IS_NEW_LOGIC = 1 << 127


@dataclass(slots=True)
class AccountInfo:
    """frame_system::AccountInfo<Index, pallet_balances::AccountData<Balance>>, flattened.

    Mutable on purpose: it is state, read, changed and written back once per extrinsic.
    """

    nonce: int = 0
    consumers: int = 0
    providers: int = 0
    sufficients: int = 0
    free: int = 0
    reserved: int = 0
    frozen: int = 0
    flags: int = IS_NEW_LOGIC


_REFS = struct.Struct("<4I")


class _AccountInfoCodec(Codec[AccountInfo]):
    def encode_into(self, value: AccountInfo, out: bytearray) -> None:
        try:
            out += _REFS.pack(value.nonce, value.consumers, value.providers, value.sufficients)
            for amount in (value.free, value.reserved, value.frozen, value.flags):
                out += amount.to_bytes(16, "little")
        except (struct.error, OverflowError) as e:
            raise ScaleEncodeError(f"account info out of range: {e}") from None

    def read(self, r: Reader) -> AccountInfo:
        raw = r.read(80)
        nonce, consumers, providers, sufficients = _REFS.unpack_from(raw)
        return AccountInfo(
            nonce,
            consumers,
            providers,
            sufficients,
            int.from_bytes(raw[16:32], "little"),
            int.from_bytes(raw[32:48], "little"),
            int.from_bytes(raw[48:64], "little"),
            int.from_bytes(raw[64:80], "little"),
        )

    def __repr__(self) -> str:
        return "AccountInfo"


ACCOUNT_INFO_CODEC = _AccountInfoCodec()

EXTRA_FLAGS_T = Composite(["pallet_balances", "types", "ExtraFlags"], [Field(None, U128_T, "u128")])
ACCOUNT_DATA_T = Composite(
    ["pallet_balances", "types", "AccountData"],
    [
        Field("free", BALANCE_T, "Balance"),
        Field("reserved", BALANCE_T, "Balance"),
        Field("frozen", BALANCE_T, "Balance"),
        Field("flags", EXTRA_FLAGS_T, "ExtraFlags"),
    ],
    params=[("Balance", BALANCE_T)],
)
ACCOUNT_INFO_T = Composite(
    ["frame_system", "AccountInfo"],
    [
        Field("nonce", INDEX_T, "Index"),
        Field("consumers", U32_T, "RefCount"),
        Field("providers", U32_T, "RefCount"),
        Field("sufficients", U32_T, "RefCount"),
        Field("data", ACCOUNT_DATA_T, "AccountData"),
    ],
    params=[("Index", INDEX_T), ("AccountData", ACCOUNT_DATA_T)],
    codec=ACCOUNT_INFO_CODEC,
)

# --- events, phases, digests --------------------------------------------------------------------

PHASE_T = VariantType(
    ["frame_system", "Phase"],
    [
        VariantDef("ApplyExtrinsic", 0, (Field(None, U32_T, "u32"),)),
        VariantDef("Finalization", 1),
        VariantDef("Initialization", 2),
    ],
)
PHASE_FINALIZATION = b"\x01"
PHASE_INITIALIZATION = b"\x02"


def phase_apply_extrinsic(index: int) -> bytes:
    return b"\x00" + index.to_bytes(4, "little")


EVENT_RECORD_T = Composite(
    ["frame_system", "EventRecord"],
    [
        Field("phase", PHASE_T, "Phase"),
        Field("event", RUNTIME_EVENT, "E"),
        Field("topics", SequenceOf(H256_T), "Vec<T>"),
    ],
    params=[("E", RUNTIME_EVENT), ("T", H256_T)],
)


@dataclass(frozen=True, slots=True)
class DigestPreRuntime:
    engine: bytes
    data: bytes


@dataclass(frozen=True, slots=True)
class DigestConsensus:
    engine: bytes
    data: bytes


@dataclass(frozen=True, slots=True)
class DigestSeal:
    engine: bytes
    data: bytes


@dataclass(frozen=True, slots=True)
class DigestOther:
    data: bytes


@dataclass(frozen=True, slots=True)
class DigestRuntimeEnvironmentUpdated:
    pass


def _engine_fields() -> tuple[Field, Field]:
    return (Field(None, array_u8(4), "ConsensusEngineId"), Field(None, BYTES_T, "Vec<u8>"))


DIGEST_ITEM_T = VariantType(
    ["sp_runtime", "generic", "digest", "DigestItem"],
    [
        VariantDef("PreRuntime", 6, _engine_fields(), cls=DigestPreRuntime),
        VariantDef("Consensus", 4, _engine_fields(), cls=DigestConsensus),
        VariantDef("Seal", 5, _engine_fields(), cls=DigestSeal),
        VariantDef("Other", 0, (Field(None, BYTES_T, "Vec<u8>"),), cls=DigestOther),
        VariantDef("RuntimeEnvironmentUpdated", 8, cls=DigestRuntimeEnvironmentUpdated),
    ],
)
DIGEST_T = Composite(
    ["sp_runtime", "generic", "digest", "Digest"],
    [Field("logs", SequenceOf(DIGEST_ITEM_T), "Vec<DigestItem>")],
)

# --- system limits (constants) ------------------------------------------------------------------

WEIGHTS_PER_CLASS_T = Composite(
    ["frame_system", "limits", "WeightsPerClass"],
    [
        Field("base_extrinsic", WEIGHT_T, "Weight"),
        Field("max_extrinsic", OptionOf(WEIGHT_T), "Option<Weight>"),
        Field("max_total", OptionOf(WEIGHT_T), "Option<Weight>"),
        Field("reserved", OptionOf(WEIGHT_T), "Option<Weight>"),
    ],
)
BLOCK_WEIGHTS_T = Composite(
    ["frame_system", "limits", "BlockWeights"],
    [
        Field("base_block", WEIGHT_T, "Weight"),
        Field("max_block", WEIGHT_T, "Weight"),
        Field(
            "per_class",
            per_dispatch_class(WEIGHTS_PER_CLASS_T),
            "PerDispatchClass<WeightsPerClass>",
        ),
    ],
)
BLOCK_LENGTH_T = Composite(
    ["frame_system", "limits", "BlockLength"],
    [Field("max", per_dispatch_class(U32_T), "PerDispatchClass<u32>")],
)
RUNTIME_DB_WEIGHT_T = Composite(
    ["sp_weights", "RuntimeDbWeight"], [Field("read", U64_T, "u64"), Field("write", U64_T, "u64")]
)
LAST_RUNTIME_UPGRADE_T = Composite(
    ["frame_system", "LastRuntimeUpgradeInfo"],
    [
        Field("spec_version", CompactOf(U32_T), "codec::Compact<u32>"),
        Field("spec_name", STR_T, "sp_runtime::RuntimeString"),
    ],
)
