"""Runtime metadata V14: the chain's type registry compiled into fast typed codecs.

Owns `RuntimeMetadata`: everything that turns a chain's `state_getMetadata` answer into
by-name knowledge of that chain (pallet, call and event indices, call argument types, storage
keys and hashers, constants, the signed-extension list and the extrinsic's address, call and
signature types) and into codecs for every portable type id. Nothing in tocw hard-codes a
pallet or call index: worker, enclave and CLI look them up here, so they work against any
Substrate chain that has the Teerex and EnclaveBridge pallets.

Written by hand because no maintained library does what the hot path needs: scalecodec decodes
each value through untyped per-call registry lookups (string type names, dicts all the way
down), which is far too slow for every extrinsic and event of every block a worker imports, and
no maintained Python library compiles scale-info portable types into codecs. So the metadata is
decoded ONCE with scalecodec (its "core" preset and `MetadataVersioned`, the reference decoder
the clients use), converted into the frozen dataclasses below, and each type id is then compiled
on first use into a codec built from `tocw.primitives.scale` and cached; scalecodec is never
called per value.

Value representation (stable; encoders accept the same shapes):

    bool -> bool        char -> str of length 1        str -> str
    u8..u256, i8..i256 -> int                           Compact<T> -> int
    [u8; N], Vec<u8> -> bytes (encode also takes bytearray/memoryview)
    [T; N], Vec<T> -> list (encode takes any list or tuple)
    tuple (A, B, ..) -> tuple; the unit tuple () -> ()
    composite, named fields -> dict[str, Any] in declaration order
    composite, one unnamed field -> that field's value (newtypes unwrap: AccountId32 -> bytes)
    composite, several unnamed fields -> tuple; no fields -> ()
    Option<T> -> None or the value of T (a Variant when T itself can be None)
    any other enum -> Variant(name, value); value None for no fields, else the composite rule
                      (encoding also takes the bare name str for a variant without fields)
    BitVec<Store, Order> -> list[bool], bit i of the sequence first
    the outer RuntimeCall -> Call(pallet, name, args)     RuntimeEvent -> Event(pallet, ...)
    sp_runtime::generic::era::Era -> Era(period, phase)

Errors (all under tocw.primitives.errors.PrimitivesError):

    MetadataError
    ├── MetadataDecodeError   not SCALE(MetadataVersioned) with the "meta" magic, or malformed
    │   └── UnsupportedMetadataVersionError   a version other than V14
    ├── UnknownNameError      no pallet/call/event/storage item/constant of that name or index
    └── UnsupportedTypeError  a portable type this compiler cannot represent
    ScaleDecodeError / ScaleEncodeError   a value does not fit its type (from errors.py)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeAlias, TypeVar

from scalecodec.base import RuntimeConfigurationObject, ScaleBytes
from scalecodec.type_registry import load_type_registry_preset

from tocw.primitives.errors import PrimitivesError, ScaleDecodeError, ScaleEncodeError
from tocw.primitives.hashing import STORAGE_HASHERS, twox128
from tocw.primitives.scale import (
    U8,
    U16,
    U32,
    U64,
    U128,
    Bool,
    Codec,
    Reader,
    Str,
    encode_compact,
    read_compact,
)

METADATA_MAGIC = b"meta"
SUPPORTED_METADATA_VERSION = 14
SUPPORTED_EXTRINSIC_VERSION = 4

ERA_PATH = "sp_runtime::generic::era::Era"
OPTION_PATH = "Option"


# --- errors ---------------------------------------------------------------------------------------


class MetadataError(PrimitivesError):
    """Root of the errors of this module."""


class MetadataDecodeError(MetadataError, ValueError):
    pass


class UnsupportedMetadataVersionError(MetadataDecodeError):
    pass


class UnknownNameError(MetadataError, LookupError):
    pass


class UnsupportedTypeError(MetadataError):
    pass


# --- the portable type registry, as typed values ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Field:
    """A field of a composite or enum variant; `name` is None for tuple-like fields."""

    name: str | None
    type_id: int
    type_name: str | None = None
    docs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class VariantDef:
    name: str
    index: int
    fields: tuple[Field, ...]
    docs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CompositeDef:
    fields: tuple[Field, ...]


@dataclass(frozen=True, slots=True)
class VariantTypeDef:
    variants: tuple[VariantDef, ...]


@dataclass(frozen=True, slots=True)
class SequenceDef:
    type_id: int


@dataclass(frozen=True, slots=True)
class ArrayDef:
    length: int
    type_id: int


@dataclass(frozen=True, slots=True)
class TupleDef:
    type_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PrimitiveDef:
    name: str  # bool, char, str, u8..u256, i8..i256


@dataclass(frozen=True, slots=True)
class CompactDef:
    type_id: int


@dataclass(frozen=True, slots=True)
class BitSequenceDef:
    store_type_id: int
    order_type_id: int


TypeDef: TypeAlias = (
    CompositeDef
    | VariantTypeDef
    | SequenceDef
    | ArrayDef
    | TupleDef
    | PrimitiveDef
    | CompactDef
    | BitSequenceDef
)


@dataclass(frozen=True, slots=True)
class PortableType:
    id: int
    path: tuple[str, ...]
    params: tuple[tuple[str, int | None], ...]
    definition: TypeDef
    docs: tuple[str, ...] = ()

    @property
    def path_str(self) -> str:
        return "::".join(self.path)

    def param(self, name: str) -> int | None:
        for pname, ptype in self.params:
            if pname == name:
                return ptype
        return None


# --- pallets, calls, events, storage, constants, extrinsic -----------------------------------


@dataclass(frozen=True, slots=True)
class CallMetadata:
    pallet: str
    pallet_index: int
    name: str
    index: int
    fields: tuple[Field, ...]
    docs: tuple[str, ...] = ()

    @property
    def call_index(self) -> bytes:
        return bytes((self.pallet_index, self.index))

    @property
    def arg_names(self) -> tuple[str, ...]:
        return tuple(_field_key(f, i) for i, f in enumerate(self.fields))

    @property
    def arg_type_ids(self) -> tuple[int, ...]:
        return tuple(f.type_id for f in self.fields)


@dataclass(frozen=True, slots=True)
class EventMetadata:
    pallet: str
    pallet_index: int
    name: str
    index: int
    fields: tuple[Field, ...]
    docs: tuple[str, ...] = ()

    @property
    def attribute_names(self) -> tuple[str, ...]:
        return tuple(_field_key(f, i) for i, f in enumerate(self.fields))


@dataclass(frozen=True, slots=True)
class ErrorMetadata:
    pallet: str
    pallet_index: int
    name: str
    index: int
    docs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StorageEntryMetadata:
    pallet: str
    prefix: str
    name: str
    modifier: str  # "Optional" | "Default"
    hashers: tuple[str, ...]  # empty for a plain value
    key_type_ids: tuple[int, ...]  # one per hasher
    value_type_id: int
    default: bytes
    docs: tuple[str, ...] = ()
    key_type_id: int | None = None  # as declared: the tuple of key_type_ids for n > 1 hashers

    @property
    def is_map(self) -> bool:
        return bool(self.hashers)


@dataclass(frozen=True, slots=True)
class ConstantMetadata:
    pallet: str
    name: str
    type_id: int
    value: bytes
    docs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PalletMetadata:
    name: str
    index: int
    call_type_id: int | None
    event_type_id: int | None
    error_type_id: int | None
    storage_prefix: str | None
    storage: tuple[StorageEntryMetadata, ...]
    constants: tuple[ConstantMetadata, ...]


@dataclass(frozen=True, slots=True)
class SignedExtensionMetadata:
    identifier: str
    extra_type_id: int
    additional_type_id: int


@dataclass(frozen=True, slots=True)
class ExtrinsicMetadata:
    """The UncheckedExtrinsic type and its signed-extension list, in signing order."""

    version: int
    type_id: int
    address_type_id: int
    call_type_id: int
    signature_type_id: int
    extra_type_id: int | None
    signed_extensions: tuple[SignedExtensionMetadata, ...]


# --- decoded values ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Variant:
    """A value of an enum that has no dedicated Python shape: variant name and payload."""

    name: str
    value: Any = None


@dataclass(frozen=True, slots=True)
class Call:
    """A runtime call: `Call("EnclaveBridge", "invoke", {"request": {...}})`."""

    pallet: str
    name: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Event:
    """A runtime event; attributes are keyed by field name ("0", "1", .. for unnamed fields)."""

    pallet: str
    name: str
    attributes: dict[str, Any] = field(default_factory=dict)


_O = TypeVar("_O", Call, Event)

MAX_ERA_PERIOD = 1 << 16
MIN_ERA_PERIOD = 4


@dataclass(frozen=True, slots=True)
class Era:
    """sp_runtime's transaction era: period 0 = immortal, else a mortal (period, phase).

    `Era.mortal(period, current)` follows `Era::mortal`: the period is rounded up to a power of
    two in [4, 65536] and the phase is quantized so that it fits the 12 bits of the encoding.
    """

    period: int = 0
    phase: int = 0

    def __post_init__(self) -> None:
        if self.period == 0:
            if self.phase != 0:
                raise ValueError("an immortal era has no phase")
            return
        if (
            self.period < MIN_ERA_PERIOD
            or self.period > MAX_ERA_PERIOD
            or self.period & (self.period - 1)
            or not 0 <= self.phase < self.period
        ):
            raise ValueError(f"invalid mortal era period={self.period} phase={self.phase}")
        if self.phase % _quantize_factor(self.period):
            raise ValueError(f"era phase {self.phase} is not quantized for period {self.period}")

    @property
    def is_immortal(self) -> bool:
        return self.period == 0

    @classmethod
    def mortal(cls, period: int, current: int) -> Era:
        if period < 1 or current < 0:
            raise ValueError(f"invalid era request period={period} current={current}")
        rounded = 1 << (period - 1).bit_length()
        rounded = min(max(rounded, MIN_ERA_PERIOD), MAX_ERA_PERIOD)
        factor = _quantize_factor(rounded)
        phase = current % rounded // factor * factor
        return cls(rounded, phase)

    def birth(self, current: int) -> int:
        """The first block of the era that contains `current` (0 for immortal)."""
        if self.period == 0:
            return 0
        return (max(current, self.phase) - self.phase) // self.period * self.period + self.phase

    def death(self, current: int) -> int | None:
        """The first block at which the era is over (None for immortal)."""
        if self.period == 0:
            return None
        return self.birth(current) + self.period


IMMORTAL_ERA = Era()


def _quantize_factor(period: int) -> int:
    return max(period >> 12, 1)


class _EraCodec(Codec[Era]):
    """Immortal = 0x00; mortal = u16 LE: low 4 bits log2(period)-1, high 12 bits phase/factor."""

    def encode_into(self, value: Era, out: bytearray) -> None:
        if not isinstance(value, Era):
            raise ScaleEncodeError(f"expected an Era, got {type(value).__name__}")
        if value.period == 0:
            out.append(0)
            return
        factor = _quantize_factor(value.period)
        low = min(15, max(1, value.period.bit_length() - 2))
        encoded = low | ((value.phase // factor) << 4)
        out += encoded.to_bytes(2, "little")

    def read(self, r: Reader) -> Era:
        first = r.read_byte()
        if first == 0:
            return IMMORTAL_ERA
        encoded = first | (r.read_byte() << 8)
        period = 2 << (encoded % 16)
        phase = (encoded >> 4) * _quantize_factor(period)
        if period < MIN_ERA_PERIOD or phase >= period:
            raise ScaleDecodeError(f"invalid mortal era encoding 0x{encoded:04x}")
        return Era(period, phase)

    def __repr__(self) -> str:
        return "Era"


ERA_CODEC = _EraCodec()


# --- compiled codecs --------------------------------------------------------------------------


def _field_key(f: Field, position: int) -> str:
    return f.name if f.name is not None else str(position)


class _Int(Codec[int]):
    """Fixed-width little-endian integer, signed or not (the u256/i* that scale.py lacks)."""

    __slots__ = ("hi", "lo", "name", "signed", "size")

    def __init__(self, name: str, size: int, signed: bool) -> None:
        self.name = name
        self.size = size
        self.signed = signed
        bits = size * 8
        self.lo = -(1 << (bits - 1)) if signed else 0
        self.hi = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1

    def encode_into(self, value: int, out: bytearray) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not self.lo <= value <= self.hi:
            raise ScaleEncodeError(f"{value!r} does not fit {self.name}")
        out += value.to_bytes(self.size, "little", signed=self.signed)

    def read(self, r: Reader) -> int:
        return int.from_bytes(r.read(self.size), "little", signed=self.signed)

    def __repr__(self) -> str:
        return self.name


class _Char(Codec[str]):
    """Rust char: a Unicode scalar value as u32."""

    def encode_into(self, value: str, out: bytearray) -> None:
        if not isinstance(value, str) or len(value) != 1:
            raise ScaleEncodeError(f"expected a single character, got {value!r}")
        out += ord(value).to_bytes(4, "little")

    def read(self, r: Reader) -> str:
        code = int.from_bytes(r.read(4), "little")
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            raise ScaleDecodeError(f"invalid char code point 0x{code:x}")
        return chr(code)

    def __repr__(self) -> str:
        return "char"


class _CheckedStr(Codec[str]):
    def encode_into(self, value: str, out: bytearray) -> None:
        if not isinstance(value, str):
            raise ScaleEncodeError(f"expected str, got {type(value).__name__}")
        Str.encode_into(value, out)

    def read(self, r: Reader) -> str:
        return Str.read(r)

    def __repr__(self) -> str:
        return "str"


class _CheckedBool(Codec[bool]):
    def encode_into(self, value: bool, out: bytearray) -> None:
        if not isinstance(value, bool):
            raise ScaleEncodeError(f"expected bool, got {type(value).__name__}")
        out.append(1 if value else 0)

    def read(self, r: Reader) -> bool:
        return Bool.read(r)

    def __repr__(self) -> str:
        return "bool"


_PRIMITIVES: dict[str, Codec[Any]] = {
    "bool": _CheckedBool(),
    "char": _Char(),
    "str": _CheckedStr(),
    "u8": U8,
    "u16": U16,
    "u32": U32,
    "u64": U64,
    "u128": U128,
    "u256": _Int("u256", 32, signed=False),
    "i8": _Int("i8", 1, signed=True),
    "i16": _Int("i16", 2, signed=True),
    "i32": _Int("i32", 4, signed=True),
    "i64": _Int("i64", 8, signed=True),
    "i128": _Int("i128", 16, signed=True),
    "i256": _Int("i256", 32, signed=True),
}
_UNSIGNED_BITS = {"u8": 8, "u16": 16, "u32": 32, "u64": 64, "u128": 128, "u256": 256}


class _CompactInt(Codec[int]):
    """Compact<uN>: range-checked against N on both encode and decode."""

    __slots__ = ("bits",)

    def __init__(self, bits: int) -> None:
        self.bits = bits

    def encode_into(self, value: int, out: bytearray) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value >> self.bits:
            raise ScaleEncodeError(f"{value!r} does not fit Compact<u{self.bits}>")
        encode_compact(value, out)

    def read(self, r: Reader) -> int:
        value = read_compact(r)
        if value >> self.bits:
            raise ScaleDecodeError(f"compact value {value} exceeds u{self.bits}")
        return value

    def __repr__(self) -> str:
        return f"Compact<u{self.bits}>"


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise ScaleEncodeError(f"expected bytes, got {type(value).__name__}")


class _ByteVec(Codec[bytes]):
    def encode_into(self, value: bytes, out: bytearray) -> None:
        data = _as_bytes(value)
        encode_compact(len(data), out)
        out += data

    def read(self, r: Reader) -> bytes:
        return r.read(read_compact(r))

    def __repr__(self) -> str:
        return "Vec<u8>"


class _ByteArray(Codec[bytes]):
    __slots__ = ("length",)

    def __init__(self, length: int) -> None:
        self.length = length

    def encode_into(self, value: bytes, out: bytearray) -> None:
        data = _as_bytes(value)
        if len(data) != self.length:
            raise ScaleEncodeError(f"expected {self.length} bytes, got {len(data)}")
        out += data

    def read(self, r: Reader) -> bytes:
        return r.read(self.length)

    def __repr__(self) -> str:
        return f"[u8; {self.length}]"


def _as_sequence(value: Any, what: str) -> Sequence[Any]:
    if isinstance(value, list | tuple):
        return value
    raise ScaleEncodeError(f"expected a list or tuple for {what}, got {type(value).__name__}")


class _Sequence(Codec[list[Any]]):
    __slots__ = ("item", "min_item_size")

    def __init__(self, item: Codec[Any], min_item_size: int) -> None:
        self.item = item
        self.min_item_size = min_item_size

    def encode_into(self, value: list[Any], out: bytearray) -> None:
        items = _as_sequence(value, repr(self))
        encode_compact(len(items), out)
        for v in items:
            self.item.encode_into(v, out)

    def read(self, r: Reader) -> list[Any]:
        n = read_compact(r)
        # A hostile length must not make us loop for long before noticing the input is short;
        # zero-sized items cannot be bounded by the input, so cap them separately.
        if n * self.min_item_size > r.remaining() or (self.min_item_size == 0 and n > 1 << 16):
            raise ScaleDecodeError(f"sequence length {n} exceeds remaining input {r.remaining()}")
        item = self.item
        return [item.read(r) for _ in range(n)]

    def __repr__(self) -> str:
        return f"Vec<{self.item!r}>"


class _Array(Codec[list[Any]]):
    __slots__ = ("item", "length")

    def __init__(self, item: Codec[Any], length: int) -> None:
        self.item = item
        self.length = length

    def encode_into(self, value: list[Any], out: bytearray) -> None:
        items = _as_sequence(value, repr(self))
        if len(items) != self.length:
            raise ScaleEncodeError(f"expected {self.length} items, got {len(items)}")
        for v in items:
            self.item.encode_into(v, out)

    def read(self, r: Reader) -> list[Any]:
        item = self.item
        return [item.read(r) for _ in range(self.length)]

    def __repr__(self) -> str:
        return f"[{self.item!r}; {self.length}]"


class _Tuple(Codec[tuple[Any, ...]]):
    __slots__ = ("items",)

    def __init__(self, items: Sequence[Codec[Any]]) -> None:
        self.items = tuple(items)

    def encode_into(self, value: tuple[Any, ...], out: bytearray) -> None:
        values = _as_sequence(value, repr(self))
        if len(values) != len(self.items):
            raise ScaleEncodeError(f"expected {len(self.items)} values, got {len(values)}")
        for codec, v in zip(self.items, values, strict=True):
            codec.encode_into(v, out)

    def read(self, r: Reader) -> tuple[Any, ...]:
        return tuple([c.read(r) for c in self.items])

    def __repr__(self) -> str:
        return "(" + ", ".join(repr(i) for i in self.items) + ")"


class _Record(Codec[dict[str, Any]]):
    """Named fields <-> dict. Encoding requires exactly the declared keys (typos fail loudly)."""

    __slots__ = ("fields", "names")

    def __init__(self, fields: Sequence[tuple[str, Codec[Any]]]) -> None:
        self.fields = tuple(fields)
        self.names = frozenset(n for n, _ in self.fields)

    def encode_into(self, value: dict[str, Any], out: bytearray) -> None:
        if not isinstance(value, Mapping):
            raise ScaleEncodeError(f"expected a mapping for {self!r}, got {type(value).__name__}")
        if value.keys() != self.names:
            missing = sorted(self.names - value.keys())
            extra = sorted(str(k) for k in value.keys() - self.names)
            raise ScaleEncodeError(f"{self!r}: missing fields {missing}, unknown fields {extra}")
        for name, codec in self.fields:
            try:
                codec.encode_into(value[name], out)
            except ScaleEncodeError as e:
                raise ScaleEncodeError(f"field {name!r}: {e}") from None

    def read(self, r: Reader) -> dict[str, Any]:
        return {name: codec.read(r) for name, codec in self.fields}

    def __repr__(self) -> str:
        return "{" + ", ".join(n for n, _ in self.fields) + "}"


class _Nothing(Codec[Any]):
    """The payload of a field-less enum variant: encodes nothing, decodes to None."""

    def encode_into(self, value: Any, out: bytearray) -> None:
        if value is not None:
            raise ScaleEncodeError(f"this variant carries no value, got {value!r}")

    def read(self, r: Reader) -> Any:
        return None

    def __repr__(self) -> str:
        return "-"


_NOTHING = _Nothing()


class _Unit(Codec[tuple[()]]):
    """A composite without fields or the empty tuple: zero bytes, represented as ()."""

    def encode_into(self, value: tuple[()], out: bytearray) -> None:
        if value is not None and (not isinstance(value, tuple | list) or len(value) != 0):
            raise ScaleEncodeError(f"expected (), got {value!r}")

    def read(self, r: Reader) -> tuple[()]:
        return ()

    def __repr__(self) -> str:
        return "()"


_UNIT = _Unit()


class _VariantCodec(Codec[Variant]):
    __slots__ = ("by_index", "by_name", "name")

    def __init__(self, name: str, variants: Sequence[tuple[int, str, Codec[Any]]]) -> None:
        self.name = name
        self.by_index: dict[int, tuple[str, Codec[Any]]] = {}
        self.by_name: dict[str, tuple[int, Codec[Any]]] = {}
        for index, vname, codec in variants:
            self.by_index[index] = (vname, codec)
            self.by_name[vname] = (index, codec)

    def encode_into(self, value: Variant, out: bytearray) -> None:
        if isinstance(value, str):
            value = Variant(value)
        if not isinstance(value, Variant):
            raise ScaleEncodeError(f"expected a Variant of {self.name}, got {value!r}")
        entry = self.by_name.get(value.name)
        if entry is None:
            raise ScaleEncodeError(f"{self.name} has no variant {value.name!r}")
        out.append(entry[0])
        try:
            entry[1].encode_into(value.value, out)
        except ScaleEncodeError as e:
            raise ScaleEncodeError(f"{self.name}::{value.name}: {e}") from None

    def read(self, r: Reader) -> Variant:
        index = r.read_byte()
        entry = self.by_index.get(index)
        if entry is None:
            raise ScaleDecodeError(f"unknown {self.name} variant index {index}")
        return Variant(entry[0], entry[1].read(r))

    def __repr__(self) -> str:
        return self.name


class _OptionCodec(Codec[Any]):
    __slots__ = ("item",)

    def __init__(self, item: Codec[Any]) -> None:
        self.item = item

    def encode_into(self, value: Any, out: bytearray) -> None:
        if value is None:
            out.append(0)
        else:
            out.append(1)
            self.item.encode_into(value, out)

    def read(self, r: Reader) -> Any:
        tag = r.read_byte()
        if tag == 0:
            return None
        if tag == 1:
            return self.item.read(r)
        raise ScaleDecodeError(f"invalid Option tag 0x{tag:02x}")

    def __repr__(self) -> str:
        return f"Option<{self.item!r}>"


# parity-scale-codec refuses longer bit sequences (what a 32-bit machine can hold).
MAX_BITSEQ_BITS = 0x1FFF_FFFF


class _BitSequence(Codec[list[bool]]):
    """bitvec's encoding: Compact<bit count>, then whole store elements (LE), Lsb0 or Msb0."""

    __slots__ = ("lsb0", "store_bits", "store_size")

    def __init__(self, store_size: int, lsb0: bool) -> None:
        self.store_size = store_size
        self.store_bits = store_size * 8
        self.lsb0 = lsb0

    def encode_into(self, value: list[bool], out: bytearray) -> None:
        bits = _as_sequence(value, "a bit sequence")
        if len(bits) > MAX_BITSEQ_BITS:
            raise ScaleEncodeError(f"bit sequence of {len(bits)} bits exceeds the 32-bit limit")
        encode_compact(len(bits), out)
        nstores = -(-len(bits) // self.store_bits)
        for s in range(nstores):
            word = 0
            for i, bit in enumerate(bits[s * self.store_bits : (s + 1) * self.store_bits]):
                if not isinstance(bit, bool):
                    raise ScaleEncodeError(f"bit sequence items must be bool, got {bit!r}")
                if bit:
                    word |= 1 << (i if self.lsb0 else self.store_bits - 1 - i)
            out += word.to_bytes(self.store_size, "little")

    def read(self, r: Reader) -> list[bool]:
        n = read_compact(r)
        if n > MAX_BITSEQ_BITS:
            raise ScaleDecodeError(f"bit sequence of {n} bits exceeds the 32-bit limit")
        nstores = -(-n // self.store_bits)
        if nstores * self.store_size > r.remaining():
            raise ScaleDecodeError(f"bit sequence of {n} bits exceeds remaining input")
        bits: list[bool] = []
        for _ in range(nstores):
            word = int.from_bytes(r.read(self.store_size), "little")
            take = min(self.store_bits, n - len(bits))
            if self.lsb0:
                bits.extend(bool(word >> i & 1) for i in range(take))
            else:
                bits.extend(bool(word >> (self.store_bits - 1 - i) & 1) for i in range(take))
        return bits

    def __repr__(self) -> str:
        return f"BitVec<u{self.store_bits}, {'Lsb0' if self.lsb0 else 'Msb0'}>"


class _Forward(Codec[Any]):
    """Stands for a type that is still being compiled (recursive types)."""

    __slots__ = ("target", "type_id")

    def __init__(self, type_id: int) -> None:
        self.type_id = type_id
        self.target: Codec[Any] | None = None

    def _resolved(self) -> Codec[Any]:
        if self.target is None:
            raise UnsupportedTypeError(f"type {self.type_id} could not be compiled")
        return self.target

    def encode_into(self, value: Any, out: bytearray) -> None:
        self._resolved().encode_into(value, out)

    def read(self, r: Reader) -> Any:
        return self._resolved().read(r)

    def __repr__(self) -> str:
        return f"<type {self.type_id}>"


class _Entry:
    """A call or event with its field codecs, compiled on first use (most are never seen)."""

    __slots__ = ("_codec", "_md", "keys", "meta")

    def __init__(self, md: RuntimeMetadata, meta: CallMetadata | EventMetadata) -> None:
        self._md = md
        self.meta = meta
        self.keys = tuple(_field_key(f, i) for i, f in enumerate(meta.fields))
        self._codec: _Record | None = None

    @property
    def codec(self) -> _Record:
        if self._codec is None:
            self._codec = _Record(
                [
                    (key, self._md.codec_for(f.type_id))
                    for key, f in zip(self.keys, self.meta.fields, strict=True)
                ]
            )
        return self._codec


class _OuterEnumCodec(Codec[_O]):
    """An outer enum (RuntimeCall, RuntimeEvent): pallet index byte, variant index byte, then
    the variant's fields. `cls` is Call or Event; `payload` names its dict of fields."""

    def __init__(
        self,
        name: str,
        cls: type[_O],
        payload: str,
        by_name: Callable[[str, str], _Entry],
        by_index: Mapping[tuple[int, int], _Entry],
    ) -> None:
        self._name = name
        self._cls: type[_O] = cls
        self._payload = payload
        self._by_name = by_name
        self._by_index = by_index

    def encode_into(self, value: _O, out: bytearray) -> None:
        if not isinstance(value, self._cls):
            raise ScaleEncodeError(f"expected a {self._cls.__name__}, got {type(value).__name__}")
        pallet, name = value.pallet, value.name
        entry = self._by_name(pallet, name)
        out += bytes((entry.meta.pallet_index, entry.meta.index))
        try:
            entry.codec.encode_into(getattr(value, self._payload), out)
        except ScaleEncodeError as e:
            raise ScaleEncodeError(f"{pallet}.{name}: {e}") from None

    def read(self, r: Reader) -> _O:
        pallet = r.read_byte()
        index = r.read_byte()
        entry = self._by_index.get((pallet, index))
        if entry is None:
            kind = self._cls.__name__.lower()
            raise ScaleDecodeError(f"unknown {kind} index ({pallet}, {index})")
        fields: dict[str, Any] = entry.codec.read(r)
        return self._cls(entry.meta.pallet, entry.meta.name, fields)

    def __repr__(self) -> str:
        return self._name


# --- the metadata ---------------------------------------------------------------------------


class RuntimeMetadata:
    """One runtime version's metadata: by-name lookups and compiled codecs.

    Build it once per runtime version with `from_bytes` (what `state_getMetadata` returns) and
    share it; it is immutable apart from the codec caches that fill on first use (see
    `compile_all` for sharing between threads).
    """

    def __init__(
        self,
        types: Mapping[int, PortableType],
        pallets: Sequence[PalletMetadata],
        extrinsic: ExtrinsicMetadata,
        runtime_type_id: int = 0,
    ) -> None:
        self.types: dict[int, PortableType] = dict(types)
        self.pallets: tuple[PalletMetadata, ...] = tuple(pallets)
        self.extrinsic = extrinsic
        self.runtime_type_id = runtime_type_id
        self._pallets_by_name = {p.name: p for p in self.pallets}
        self._pallets_by_index = {p.index: p for p in self.pallets}
        self._codecs: dict[int, Codec[Any]] = {}
        self._min_sizes: dict[int, int] = {}
        self._forwards: dict[int, _Forward] = {}
        self._in_progress: set[int] = set()
        self._calls_by_index: dict[tuple[int, int], _Entry] = {}
        self._calls_by_name: dict[tuple[str, str], _Entry] = {}
        self._events_by_index: dict[tuple[int, int], _Entry] = {}
        self._events_by_name: dict[tuple[str, str], _Entry] = {}
        self._errors: dict[tuple[int, int], ErrorMetadata] = {}
        for p in self.pallets:
            for v in self._variants_of(p.call_type_id):
                call = CallMetadata(p.name, p.index, v.name, v.index, v.fields, v.docs)
                entry = _Entry(self, call)
                self._calls_by_index[(p.index, v.index)] = entry
                self._calls_by_name[(p.name, v.name)] = entry
            for v in self._variants_of(p.event_type_id):
                event = EventMetadata(p.name, p.index, v.name, v.index, v.fields, v.docs)
                entry = _Entry(self, event)
                self._events_by_index[(p.index, v.index)] = entry
                self._events_by_name[(p.name, v.name)] = entry
            for v in self._variants_of(p.error_type_id):
                self._errors[(p.index, v.index)] = ErrorMetadata(
                    p.name, p.index, v.name, v.index, v.docs
                )
        self.call_codec: Codec[Call] = _OuterEnumCodec(
            "RuntimeCall", Call, "args", self._call_entry, self._calls_by_index
        )
        self.event_codec: Codec[Event] = _OuterEnumCodec(
            "RuntimeEvent", Event, "attributes", self._event_entry, self._events_by_index
        )
        # The outer enums decode into Call/Event wherever they appear (Utility.batch,
        # Sudo.sudo, EventRecord.event), not into generic Variants.
        self._codecs[extrinsic.call_type_id] = self.call_codec
        self.event_type_id = self._find_event_type_id()
        if self.event_type_id is not None:
            self._codecs[self.event_type_id] = self.event_codec

    # construction

    @classmethod
    def from_bytes(cls, data: bytes) -> RuntimeMetadata:
        """Parse SCALE(MetadataVersioned) as `state_getMetadata` returns it; V14 only."""
        data = bytes(data)
        if len(data) < 5 or data[:4] != METADATA_MAGIC:
            raise MetadataDecodeError("not runtime metadata: missing the 'meta' magic")
        if data[4] != SUPPORTED_METADATA_VERSION:
            raise UnsupportedMetadataVersionError(
                f"metadata V{data[4]} is not supported: tocw needs V{SUPPORTED_METADATA_VERSION}"
                " (a chain on polkadot-sdk v0.9.22 or later serves it via state_getMetadata)"
            )
        value = _decode_with_scalecodec(data)
        try:
            return cls._from_scalecodec(value)
        except MetadataDecodeError:
            raise
        except (LookupError, TypeError, ValueError, AttributeError) as e:
            raise MetadataDecodeError(f"malformed V14 metadata: {e!r}") from None

    @classmethod
    def from_hex(cls, text: str) -> RuntimeMetadata:
        try:
            data = bytes.fromhex(text[2:] if text.startswith(("0x", "0X")) else text)
        except ValueError as e:
            raise MetadataDecodeError(f"metadata is not hex: {e}") from None
        return cls.from_bytes(data)

    def to_bytes(self) -> bytes:
        """SCALE(MetadataVersioned::V14) of this metadata, as a node serves it.

        `from_bytes(md.to_bytes())` gives the same metadata; the dev chain and tests use it to
        serve metadata described in Python.
        """
        return _encode_with_scalecodec(_to_scalecodec(self))

    @classmethod
    def _from_scalecodec(cls, md: Mapping[str, Any]) -> RuntimeMetadata:
        types = {}
        for entry in md["types"]["types"]:
            t = entry["type"]
            types[int(entry["id"])] = PortableType(
                id=int(entry["id"]),
                path=tuple(t["path"]),
                params=tuple((p["name"], p["type"]) for p in t["params"]),
                definition=_type_def(t["def"]),
                docs=tuple(t["docs"]),
            )
        pallets = [_pallet(p, types) for p in md["pallets"]]
        ext = md["extrinsic"]
        xt_type = types[int(ext["ty"])]
        params = {name: tid for name, tid in xt_type.params}
        missing = [n for n in ("Address", "Call", "Signature") if params.get(n) is None]
        if missing:
            raise MetadataDecodeError(
                f"extrinsic type {xt_type.path_str} lacks type parameters {missing}"
            )
        extrinsic = ExtrinsicMetadata(
            version=int(ext["version"]),
            type_id=xt_type.id,
            address_type_id=_must(params["Address"]),
            call_type_id=_must(params["Call"]),
            signature_type_id=_must(params["Signature"]),
            extra_type_id=params.get("Extra"),
            signed_extensions=tuple(
                SignedExtensionMetadata(
                    identifier=se["identifier"],
                    extra_type_id=int(se["ty"]),
                    additional_type_id=int(se["additional_signed"]),
                )
                for se in ext["signed_extensions"]
            ),
        )
        return cls(types, pallets, extrinsic, int(md["runtime_type"]))

    def _variants_of(self, type_id: int | None) -> tuple[VariantDef, ...]:
        if type_id is None:
            return ()
        definition = self.type(type_id).definition
        if not isinstance(definition, VariantTypeDef):
            raise MetadataDecodeError(f"type {type_id} should be an enum, is {definition!r}")
        return definition.variants

    def _find_event_type_id(self) -> int | None:
        """RuntimeEvent is EventRecord.event of System.Events (its path differs per chain)."""
        try:
            entry = self.storage("System", "Events")
        except UnknownNameError:
            return None
        seq = self.type(entry.value_type_id).definition
        if not isinstance(seq, SequenceDef):
            return None
        record = self.type(seq.type_id).definition
        if not isinstance(record, CompositeDef):
            return None
        for f in record.fields:
            if f.name == "event":
                return f.type_id
        return None

    # types and codecs

    def type(self, type_id: int) -> PortableType:
        try:
            return self.types[type_id]
        except KeyError:
            raise UnknownNameError(f"no type with id {type_id} in the registry") from None

    def codec_for(self, type_id: int) -> Codec[Any]:
        """The compiled codec of a portable type id (cached; recursive types supported)."""
        codec = self._codecs.get(type_id)
        if codec is not None:
            return codec
        if type_id in self._in_progress:
            return self._forwards.setdefault(type_id, _Forward(type_id))
        self._in_progress.add(type_id)
        try:
            codec = self._compile(self.type(type_id))
        finally:
            self._in_progress.discard(type_id)
        self._codecs[type_id] = codec
        forward = self._forwards.pop(type_id, None)
        if forward is not None:
            forward.target = codec
        return codec

    def compile_all(self) -> None:
        """Compile every type, call and event now instead of on first use.

        Lazy compilation mutates the caches, so a metadata shared between threads should be
        compiled up front; it takes milliseconds even for a large runtime.
        """
        for type_id in self.types:
            self.codec_for(type_id)
        for entry in (*self._calls_by_index.values(), *self._events_by_index.values()):
            _ = entry.codec
        _ = (self.address_codec, self.signature_codec, self.extra_codecs)

    def encode(self, type_id: int, value: Any) -> bytes:
        """SCALE-encode `value` as type `type_id`; ScaleEncodeError if it does not fit."""
        codec = self.codec_for(type_id)
        try:
            return codec.encode(value)
        except ScaleEncodeError:
            raise
        except (TypeError, ValueError, AttributeError, OverflowError) as e:
            raise ScaleEncodeError(f"cannot encode {value!r} as {codec!r}: {e}") from None

    def decode(self, type_id: int, data: bytes) -> Any:
        """Decode exactly `data` as type `type_id`; ScaleDecodeError on anything else."""
        return self.codec_for(type_id).decode(data)

    def _compile(self, t: PortableType) -> Codec[Any]:
        d = t.definition
        path = t.path_str
        if path == ERA_PATH:
            return ERA_CODEC
        if isinstance(d, PrimitiveDef):
            codec = _PRIMITIVES.get(d.name)
            if codec is None:
                raise UnsupportedTypeError(f"unknown primitive {d.name!r} (type {t.id})")
            return codec
        if isinstance(d, CompositeDef):
            return self._compile_fields(d.fields, composite=True)
        if isinstance(d, VariantTypeDef):
            if path == OPTION_PATH and self._is_option_shape(d):
                inner = d.variants[1].fields[0].type_id
                if not self._can_be_none(inner, set()):
                    return _OptionCodec(self.codec_for(inner))
            return _VariantCodec(
                path or f"enum#{t.id}",
                [
                    (v.index, v.name, self._compile_fields(v.fields, composite=False))
                    for v in d.variants
                ],
            )
        if isinstance(d, SequenceDef):
            if self._is_u8(d.type_id):
                return _ByteVec()
            return _Sequence(self.codec_for(d.type_id), self.min_size(d.type_id))
        if isinstance(d, ArrayDef):
            if self._is_u8(d.type_id):
                return _ByteArray(d.length)
            return _Array(self.codec_for(d.type_id), d.length)
        if isinstance(d, TupleDef):
            if not d.type_ids:
                return _UNIT
            return _Tuple([self.codec_for(i) for i in d.type_ids])
        if isinstance(d, CompactDef):
            # parity-scale-codec encodes Compact<()> as nothing (MultiAddress::Index of a
            # runtime without an indices pallet is Compact<()>).
            if self.is_zero_sized(d.type_id):
                return _UNIT
            return _CompactInt(self._compact_bits(d.type_id, t.id))
        if isinstance(d, BitSequenceDef):
            return self._compile_bitseq(d, t.id)
        raise UnsupportedTypeError(f"type {t.id} has an unknown definition {d!r}")

    def _compile_fields(self, fields: tuple[Field, ...], composite: bool) -> Codec[Any]:
        if not fields:
            return _UNIT if composite else _NOTHING
        if all(f.name is not None for f in fields):
            return _Record([(_must_name(f), self.codec_for(f.type_id)) for f in fields])
        if len(fields) == 1:
            return self.codec_for(fields[0].type_id)
        return _Tuple([self.codec_for(f.type_id) for f in fields])

    def _is_option_shape(self, d: VariantTypeDef) -> bool:
        v = sorted(d.variants, key=lambda v: v.index)
        return (
            len(v) == 2
            and (v[0].name, v[0].index, len(v[0].fields)) == ("None", 0, 0)
            and (v[1].name, v[1].index, len(v[1].fields)) == ("Some", 1, 1)
        )

    def _can_be_none(self, type_id: int, seen: set[int]) -> bool:
        """Whether a value of this type can be represented as None (then Option<it> is not
        flattened, so Some(None) and None stay distinct)."""
        if type_id in seen:
            return False
        seen.add(type_id)
        t = self.type(type_id)
        d = t.definition
        if isinstance(d, VariantTypeDef) and t.path_str == OPTION_PATH:
            return True
        if isinstance(d, CompositeDef) and len(d.fields) == 1 and d.fields[0].name is None:
            return self._can_be_none(d.fields[0].type_id, seen)
        return False

    def _is_u8(self, type_id: int) -> bool:
        d = self.type(type_id).definition
        return isinstance(d, PrimitiveDef) and d.name == "u8"

    def _compact_bits(self, type_id: int, outer: int) -> int:
        seen: set[int] = set()
        while type_id not in seen:
            seen.add(type_id)
            d = self.type(type_id).definition
            if isinstance(d, PrimitiveDef) and d.name in _UNSIGNED_BITS:
                return _UNSIGNED_BITS[d.name]
            if isinstance(d, CompositeDef) and len(d.fields) == 1:
                type_id = d.fields[0].type_id
                continue
            break
        raise UnsupportedTypeError(f"Compact of a non-integer type (type {outer})")

    def _compile_bitseq(self, d: BitSequenceDef, type_id: int) -> Codec[Any]:
        store = self.type(d.store_type_id).definition
        sizes = {"u8": 1, "u16": 2, "u32": 4, "u64": 8}
        if not isinstance(store, PrimitiveDef) or store.name not in sizes:
            raise UnsupportedTypeError(f"bit sequence store type {store!r} (type {type_id})")
        order = self.type(d.order_type_id).path
        if not order or order[-1] not in ("Lsb0", "Msb0"):
            raise UnsupportedTypeError(f"bit sequence order {'::'.join(order)} (type {type_id})")
        return _BitSequence(sizes[store.name], lsb0=order[-1] == "Lsb0")

    def min_size(self, type_id: int) -> int:
        """A lower bound of the encoded size of any value of the type (0 = may be empty)."""
        return self._min_size(type_id, frozenset())

    def _min_size(self, type_id: int, seen: frozenset[int]) -> int:
        # A cycle contributes 0: still a lower bound, which is all callers need, so results
        # computed under a cut cycle may be cached too.
        if type_id in seen:
            return 0
        cached = self._min_sizes.get(type_id)
        if cached is None:
            cached = self._min_size_uncached(type_id, seen | {type_id})
            self._min_sizes[type_id] = cached
        return cached

    def _min_size_uncached(self, type_id: int, seen: frozenset[int]) -> int:
        d = self.type(type_id).definition
        if isinstance(d, PrimitiveDef):
            if d.name in ("str", "bool"):
                return 1
            if d.name == "char":
                return 4
            return int(d.name[1:]) // 8
        if isinstance(d, CompositeDef):
            return sum(self._min_size(f.type_id, seen) for f in d.fields)
        if isinstance(d, TupleDef):
            return sum(self._min_size(i, seen) for i in d.type_ids)
        if isinstance(d, ArrayDef):
            return d.length * self._min_size(d.type_id, seen)
        if isinstance(d, VariantTypeDef):
            if not d.variants:
                return 0
            return 1 + min(
                sum(self._min_size(f.type_id, seen) for f in v.fields) for v in d.variants
            )
        return 1  # sequence, compact, bit sequence: at least the compact length byte

    def is_zero_sized(self, type_id: int) -> bool:
        """True when every value of the type encodes to no bytes (PhantomData-like)."""
        return self._zero_sized(type_id, frozenset())

    def _zero_sized(self, type_id: int, seen: frozenset[int]) -> bool:
        if type_id in seen:
            return False
        seen = seen | {type_id}
        d = self.type(type_id).definition
        if isinstance(d, CompositeDef):
            return all(self._zero_sized(f.type_id, seen) for f in d.fields)
        if isinstance(d, TupleDef):
            return all(self._zero_sized(i, seen) for i in d.type_ids)
        if isinstance(d, ArrayDef):
            return d.length == 0 or self._zero_sized(d.type_id, seen)
        return False

    # pallets

    def pallet(self, name: str) -> PalletMetadata:
        try:
            return self._pallets_by_name[name]
        except KeyError:
            raise UnknownNameError(f"the runtime has no pallet {name!r}") from None

    def pallet_by_index(self, index: int) -> PalletMetadata:
        try:
            return self._pallets_by_index[index]
        except KeyError:
            raise UnknownNameError(f"the runtime has no pallet with index {index}") from None

    def pallet_index(self, name: str) -> int:
        return self.pallet(name).index

    def has_pallet(self, name: str) -> bool:
        return name in self._pallets_by_name

    # calls

    def _call_entry(self, pallet: str, name: str) -> _Entry:
        entry = self._calls_by_name.get((pallet, name))
        if entry is None:
            self.pallet(pallet)  # a clearer error when the pallet itself is missing
            raise UnknownNameError(f"pallet {pallet!r} has no call {name!r}")
        return entry

    def call(self, pallet: str, name: str) -> CallMetadata:
        meta = self._call_entry(pallet, name).meta
        assert isinstance(meta, CallMetadata)
        return meta

    def has_call(self, pallet: str, name: str) -> bool:
        return (pallet, name) in self._calls_by_name

    def call_index(self, pallet: str, name: str) -> bytes:
        """The two bytes (pallet index, call index) that start the call's encoding."""
        return self.call(pallet, name).call_index

    def call_by_index(self, index: bytes | tuple[int, int]) -> CallMetadata:
        key = (index[0], index[1]) if len(index) == 2 else None
        entry = self._calls_by_index.get(key) if key is not None else None
        if entry is None:
            raise UnknownNameError(f"no call with index {tuple(index)!r}")
        meta = entry.meta
        assert isinstance(meta, CallMetadata)
        return meta

    def is_call_index(self, index: bytes) -> bool:
        return len(index) == 2 and (index[0], index[1]) in self._calls_by_index

    def calls(self) -> list[CallMetadata]:
        return [e.meta for e in self._calls_by_index.values() if isinstance(e.meta, CallMetadata)]

    def encode_call(self, pallet: str, name: str, args: Mapping[str, Any]) -> bytes:
        """SCALE(RuntimeCall) of `pallet.name(**args)`; ScaleEncodeError on bad arguments."""
        entry = self._call_entry(pallet, name)
        out = bytearray((entry.meta.pallet_index, entry.meta.index))
        try:
            entry.codec.encode_into(dict(args), out)
        except ScaleEncodeError as e:
            raise ScaleEncodeError(f"{pallet}.{name}: {e}") from None
        except (TypeError, ValueError, AttributeError, OverflowError) as e:
            raise ScaleEncodeError(f"{pallet}.{name}: {e}") from None
        return bytes(out)

    def decode_call(self, data: bytes) -> Call:
        """Decode exactly one RuntimeCall."""
        return self.call_codec.decode(data)

    def decode_call_args(self, call: CallMetadata, r: Reader) -> dict[str, Any]:
        """Read the arguments of a known call (its two index bytes already consumed)."""
        return self._call_entry(call.pallet, call.name).codec.read(r)

    # events and errors

    def _event_entry(self, pallet: str, name: str) -> _Entry:
        entry = self._events_by_name.get((pallet, name))
        if entry is None:
            self.pallet(pallet)
            raise UnknownNameError(f"pallet {pallet!r} has no event {name!r}")
        return entry

    def event(self, pallet: str, name: str) -> EventMetadata:
        meta = self._event_entry(pallet, name).meta
        assert isinstance(meta, EventMetadata)
        return meta

    def has_event(self, pallet: str, name: str) -> bool:
        return (pallet, name) in self._events_by_name

    def event_by_index(self, pallet_index: int, event_index: int) -> EventMetadata:
        entry = self._events_by_index.get((pallet_index, event_index))
        if entry is None:
            raise UnknownNameError(f"no event with index ({pallet_index}, {event_index})")
        meta = entry.meta
        assert isinstance(meta, EventMetadata)
        return meta

    def module_error(self, pallet_index: int, error_index: int) -> ErrorMetadata:
        """The pallet error behind DispatchError::Module{index, error: [error_index, ..]}."""
        try:
            return self._errors[(pallet_index, error_index)]
        except KeyError:
            raise UnknownNameError(f"no error ({pallet_index}, {error_index})") from None

    # storage

    def storage(self, pallet: str, item: str) -> StorageEntryMetadata:
        for entry in self.pallet(pallet).storage:
            if entry.name == item:
                return entry
        raise UnknownNameError(f"pallet {pallet!r} has no storage item {item!r}")

    def storage_key(self, pallet: str, item: str, *keys: Any) -> bytes:
        """twox128(prefix) ++ twox128(item) ++ hasher(SCALE(key)) per given key.

        Fewer keys than the map has give the prefix shared by all matching entries (for
        `state_getKeysPaged`); more is an error.
        """
        entry = self.storage(pallet, item)
        if len(keys) > len(entry.hashers):
            raise ScaleEncodeError(
                f"{pallet}.{item} takes {len(entry.hashers)} keys, got {len(keys)}"
            )
        out = bytearray(twox128(entry.prefix.encode()) + twox128(item.encode()))
        for hasher_name, type_id, key in zip(entry.hashers, entry.key_type_ids, keys, strict=False):
            hasher = STORAGE_HASHERS.get(hasher_name)
            if hasher is None:
                raise UnsupportedTypeError(f"unknown storage hasher {hasher_name!r}")
            out += hasher(self.encode(type_id, key))
        return bytes(out)

    def decode_storage_key(self, pallet: str, item: str, key: bytes) -> tuple[Any, ...]:
        """The map keys inside a full storage key; needs transparent (concat/identity) hashers."""
        entry = self.storage(pallet, item)
        prefix = twox128(entry.prefix.encode()) + twox128(item.encode())
        if not key.startswith(prefix):
            raise ScaleDecodeError(f"key is not under {pallet}.{item}")
        r = Reader(bytes(key), len(prefix))
        values = []
        skips = {"Blake2_128Concat": 16, "Twox64Concat": 8, "Identity": 0}
        for hasher_name, type_id in zip(entry.hashers, entry.key_type_ids, strict=True):
            if hasher_name not in skips:
                raise UnsupportedTypeError(f"{hasher_name} does not reveal the key it hashes")
            r.read(skips[hasher_name])
            values.append(self.codec_for(type_id).read(r))
        if r.remaining():
            raise ScaleDecodeError(f"{r.remaining()} trailing bytes in {pallet}.{item} key")
        return tuple(values)

    def decode_storage(self, pallet: str, item: str, data: bytes | None) -> Any:
        """A storage value; `data=None` (absent) gives the declared default or None."""
        entry = self.storage(pallet, item)
        if data is None:
            if entry.modifier == "Optional":
                return None
            data = entry.default
        return self.decode(entry.value_type_id, data)

    # constants

    def constant_metadata(self, pallet: str, name: str) -> ConstantMetadata:
        for c in self.pallet(pallet).constants:
            if c.name == name:
                return c
        raise UnknownNameError(f"pallet {pallet!r} has no constant {name!r}")

    def constant(self, pallet: str, name: str) -> Any:
        c = self.constant_metadata(pallet, name)
        return self.decode(c.type_id, c.value)

    @property
    def ss58_prefix(self) -> int | None:
        """System.SS58Prefix when the runtime declares it."""
        try:
            value = self.constant("System", "SS58Prefix")
        except UnknownNameError:
            return None
        return value if isinstance(value, int) else None

    # extrinsic

    @property
    def signed_extensions(self) -> tuple[SignedExtensionMetadata, ...]:
        return self.extrinsic.signed_extensions

    @cached_property
    def address_codec(self) -> Codec[Any]:
        return self.codec_for(self.extrinsic.address_type_id)

    @cached_property
    def signature_codec(self) -> Codec[Any]:
        return self.codec_for(self.extrinsic.signature_type_id)

    @cached_property
    def extra_codecs(self) -> tuple[tuple[str, Codec[Any]], ...]:
        """(identifier, codec) of the signed extensions whose extra data is not zero-sized, in
        order: what sits between the signature and the call of a signed extrinsic."""
        return tuple(
            (se.identifier, self.codec_for(se.extra_type_id))
            for se in self.extrinsic.signed_extensions
            if not self.is_zero_sized(se.extra_type_id)
        )

    def __repr__(self) -> str:
        return (
            f"RuntimeMetadata(V14, {len(self.types)} types, {len(self.pallets)} pallets, "
            f"extrinsic v{self.extrinsic.version})"
        )


# --- conversion from scalecodec's decoded value -------------------------------------------------


def _scalecodec_config() -> RuntimeConfigurationObject:
    config = RuntimeConfigurationObject()
    config.update_type_registry(load_type_registry_preset("core"))
    # scalecodec's "Bytes" turns valid UTF-8 into str and the rest into hex, which makes
    # constant values and storage defaults ambiguous; HexBytes always yields hex.
    config.update_type_registry(
        {
            "types": {
                "PalletConstantMetadataV14": {
                    "type": "struct",
                    "type_mapping": [
                        ["name", "String"],
                        ["type", "SiLookupTypeId"],
                        ["value", "HexBytes"],
                        ["documentation", "Vec<String>"],
                    ],
                },
                "StorageEntryMetadataV14": {
                    "type": "struct",
                    "type_mapping": [
                        ["name", "String"],
                        ["modifier", "StorageEntryModifierV13"],
                        ["type", "StorageEntryTypeV14"],
                        ["default", "HexBytes"],
                        ["documentation", "Vec<String>"],
                    ],
                },
            }
        }
    )
    return config


def _decode_with_scalecodec(data: bytes) -> Mapping[str, Any]:
    config = _scalecodec_config()
    try:
        obj = config.create_scale_object("MetadataVersioned", data=ScaleBytes(data))
        obj.decode()
        value = obj.value
    except Exception as e:  # scalecodec raises a zoo of exception types on bad input
        raise MetadataDecodeError(f"cannot decode metadata: {e}") from None
    try:
        md: Mapping[str, Any] = value[1]["V14"]
    except (KeyError, IndexError, TypeError):
        raise MetadataDecodeError("metadata is not V14") from None
    return md


def _encode_with_scalecodec(md: Mapping[str, Any]) -> bytes:
    obj = _scalecodec_config().create_scale_object("MetadataVersioned")
    try:
        data = obj.encode(["0x" + METADATA_MAGIC.hex(), {"V14": md}])
    except Exception as e:  # as above: scalecodec's encoder raises assorted types
        raise MetadataError(f"cannot encode metadata: {e}") from None
    return bytes(data.data)


def _to_scalecodec(md: RuntimeMetadata) -> dict[str, Any]:
    """The value scalecodec's MetadataV14 encoder takes (the inverse of _from_scalecodec)."""

    def fields(fs: Sequence[Field]) -> list[dict[str, Any]]:
        return [
            {"name": f.name, "type": f.type_id, "typeName": f.type_name, "docs": list(f.docs)}
            for f in fs
        ]

    def type_def(d: TypeDef) -> dict[str, Any]:
        if isinstance(d, CompositeDef):
            return {"composite": {"fields": fields(d.fields)}}
        if isinstance(d, VariantTypeDef):
            variants = [
                {"name": v.name, "fields": fields(v.fields), "index": v.index, "docs": list(v.docs)}
                for v in d.variants
            ]
            return {"variant": {"variants": variants}}
        if isinstance(d, SequenceDef):
            return {"sequence": {"type": d.type_id}}
        if isinstance(d, ArrayDef):
            return {"array": {"len": d.length, "type": d.type_id}}
        if isinstance(d, TupleDef):
            return {"tuple": list(d.type_ids)}
        if isinstance(d, PrimitiveDef):
            return {"primitive": d.name}
        if isinstance(d, CompactDef):
            return {"compact": {"type": d.type_id}}
        return {
            "bitsequence": {"bit_store_type": d.store_type_id, "bit_order_type": d.order_type_id}
        }

    def storage_type(e: StorageEntryMetadata) -> dict[str, Any]:
        if not e.hashers:
            return {"Plain": e.value_type_id}
        key = e.key_type_id
        if key is None:
            if len(e.key_type_ids) != 1:
                raise MetadataError(f"{e.pallet}.{e.name}: key_type_id must name the key tuple")
            key = e.key_type_ids[0]
        return {"Map": {"hashers": list(e.hashers), "key": key, "value": e.value_type_id}}

    def pallet(p: PalletMetadata) -> dict[str, Any]:
        storage = None
        if p.storage_prefix is not None:
            storage = {
                "prefix": p.storage_prefix,
                "entries": [
                    {
                        "name": e.name,
                        "modifier": e.modifier,
                        "type": storage_type(e),
                        "default": "0x" + e.default.hex(),
                        "documentation": list(e.docs),
                    }
                    for e in p.storage
                ],
            }
        return {
            "name": p.name,
            "storage": storage,
            "calls": None if p.call_type_id is None else {"ty": p.call_type_id},
            "event": None if p.event_type_id is None else {"ty": p.event_type_id},
            "constants": [
                {
                    "name": c.name,
                    "type": c.type_id,
                    "value": "0x" + c.value.hex(),
                    "documentation": list(c.docs),
                }
                for c in p.constants
            ],
            "error": None if p.error_type_id is None else {"ty": p.error_type_id},
            "index": p.index,
        }

    types = [
        {
            "id": t.id,
            "type": {
                "path": list(t.path),
                "params": [{"name": n, "type": i} for n, i in t.params],
                "def": type_def(t.definition),
                "docs": list(t.docs),
            },
        }
        for t in sorted(md.types.values(), key=lambda t: t.id)
    ]
    x = md.extrinsic
    return {
        "types": {"types": types},
        "pallets": [pallet(p) for p in md.pallets],
        "extrinsic": {
            "ty": x.type_id,
            "version": x.version,
            "signed_extensions": [
                {
                    "identifier": se.identifier,
                    "ty": se.extra_type_id,
                    "additional_signed": se.additional_type_id,
                }
                for se in x.signed_extensions
            ],
        },
        "runtime_type": md.runtime_type_id,
    }


def _must(type_id: int | None) -> int:
    if type_id is None:
        raise MetadataDecodeError("missing type parameter")
    return int(type_id)


def _must_name(f: Field) -> str:
    if f.name is None:
        raise MetadataDecodeError("unnamed field among named fields")
    return f.name


def _map_key_types(n: int, key: int, types: Mapping[int, PortableType]) -> tuple[int, ...]:
    """A map with one hasher has one key type; with several, `key` is the tuple of them."""
    if n == 1:
        return (key,)
    d = types[key].definition
    if not isinstance(d, TupleDef) or len(d.type_ids) != n:
        raise MetadataDecodeError(f"storage map with {n} hashers needs a {n}-tuple key type")
    return d.type_ids


def _hex(text: str) -> bytes:
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


def _fields(raw: Sequence[Mapping[str, Any]]) -> tuple[Field, ...]:
    return tuple(
        Field(f["name"], int(f["type"]), f.get("typeName"), tuple(f.get("docs", ()))) for f in raw
    )


def _type_def(raw: Mapping[str, Any]) -> TypeDef:
    if len(raw) != 1:
        raise MetadataDecodeError(f"malformed type definition {raw!r}")
    ((kind, body),) = raw.items()
    if kind == "composite":
        return CompositeDef(_fields(body["fields"]))
    if kind == "variant":
        return VariantTypeDef(
            tuple(
                VariantDef(v["name"], int(v["index"]), _fields(v["fields"]), tuple(v["docs"]))
                for v in body["variants"]
            )
        )
    if kind == "sequence":
        return SequenceDef(int(body["type"]))
    if kind == "array":
        return ArrayDef(int(body["len"]), int(body["type"]))
    if kind == "tuple":
        return TupleDef(tuple(int(i) for i in body))
    if kind == "primitive":
        return PrimitiveDef(str(body))
    if kind == "compact":
        return CompactDef(int(body["type"]))
    if kind == "bitsequence":
        return BitSequenceDef(int(body["bit_store_type"]), int(body["bit_order_type"]))
    raise MetadataDecodeError(f"unknown type definition kind {kind!r}")


def _pallet(p: Mapping[str, Any], types: Mapping[int, PortableType]) -> PalletMetadata:
    name = p["name"]
    storage: list[StorageEntryMetadata] = []
    prefix = None
    if p["storage"] is not None:
        prefix = p["storage"]["prefix"]
        for e in p["storage"]["entries"]:
            ((kind, body),) = e["type"].items()
            key_type: int | None = None
            if kind == "Plain":
                hashers: tuple[str, ...] = ()
                keys: tuple[int, ...] = ()
                value_type = int(body)
            else:
                hashers = tuple(body["hashers"])
                key_type = int(body["key"])
                keys = _map_key_types(len(hashers), key_type, types)
                value_type = int(body["value"])
            storage.append(
                StorageEntryMetadata(
                    pallet=name,
                    prefix=prefix,
                    name=e["name"],
                    modifier=e["modifier"],
                    hashers=hashers,
                    key_type_ids=keys,
                    value_type_id=value_type,
                    default=_hex(e["default"]),
                    docs=tuple(e["documentation"]),
                    key_type_id=key_type,
                )
            )
    constants = tuple(
        ConstantMetadata(
            name, c["name"], int(c["type"]), _hex(c["value"]), tuple(c["documentation"])
        )
        for c in p["constants"]
    )

    def ty(key: str) -> int | None:
        section = p.get(key)
        return int(section["ty"]) if section is not None else None

    return PalletMetadata(
        name=name,
        index=int(p["index"]),
        call_type_id=ty("calls"),
        event_type_id=ty("event"),
        error_type_id=ty("error"),
        storage_prefix=prefix,
        storage=tuple(storage),
        constants=constants,
    )
