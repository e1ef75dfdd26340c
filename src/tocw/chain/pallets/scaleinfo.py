"""Type descriptions that are at once a SCALE codec and a scale-info type (metadata V14).

Each pallet declares the types of its call arguments, events, errors, storage and constants once,
as `TypeInfo` objects. The runtime uses their `codec` (a `tocw.primitives.scale` codec: typed,
fast, no scalecodec at run time) and `tocw.chain.metadata` walks the same objects to build the
portable type registry, so the bytes the runtime writes and the types clients decode them with
cannot drift apart. This mirrors Rust's `scale_info::TypeInfo` derive, written by hand because
no Python library describes a type for both purposes.

Kinds, as scale-info's `TypeDef`: Primitive, CompactOf, SequenceOf, ArrayOf, TupleOf, Composite,
VariantType. `Placeholder` stands for the runtime-wide outer enums (RuntimeCall, RuntimeEvent)
that a pallet refers to before the runtime that defines them exists.

Types that clients recognise by their path (AccountId32, MultiAddress, EventRecord, ...) must be
declared with exactly Substrate's path; see tocw.chain.pallets.substrate_types.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from tocw.primitives.errors import ScaleDecodeError, ScaleEncodeError
from tocw.primitives.scale import (
    U8,
    U16,
    U32,
    U64,
    U128,
    Bool,
    Bytes,
    Codec,
    Compact,
    Enum,
    FixedBytes,
    Option,
    Reader,
    Str,
    Struct,
    Tuple,
    Unit,
    Vec,
)

TypeIdOf = Callable[["TypeInfo"], int]
Param = tuple[str, "TypeInfo | None"]


class TypeInfo(ABC):
    """A type: its codec (may be None for metadata-only types) and its scale-info shape.

    `structural` types (pathless ones and instances of generic std types such as Option<T>) are
    deduplicated by shape in the registry; nominal types are one registry entry per object.
    """

    __slots__ = ("_codec", "docs", "params", "path", "structural")

    def __init__(
        self,
        *,
        path: Sequence[str] = (),
        params: Sequence[Param] = (),
        docs: Sequence[str] = (),
        codec: Codec[Any] | None = None,
        structural: bool | None = None,
    ) -> None:
        self.path = tuple(path)
        self.params = tuple(params)
        self.docs = tuple(docs)
        self._codec = codec
        self.structural = (not self.path) if structural is None else structural

    @property
    def codec(self) -> Codec[Any]:
        if self._codec is None:
            made = self.make_codec()
            if made is None:
                raise TypeError(f"{self!r} is a metadata-only type without a codec")
            self._codec = made
        return self._codec

    def make_codec(self) -> Codec[Any] | None:
        return None

    def children(self) -> tuple[TypeInfo, ...]:
        """Every type this one refers to (params first), for the registry walk."""
        return tuple(t for _, t in self.params if t is not None)

    @abstractmethod
    def type_def(self, type_id: TypeIdOf) -> dict[str, Any]:
        """The scale-info `def` of this type, with referenced types as ids from `type_id`."""

    def __repr__(self) -> str:
        return "::".join(self.path) or type(self).__name__


class Placeholder(TypeInfo):
    """A type the runtime supplies later (RuntimeCall, RuntimeEvent); resolved by identity."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        super().__init__(structural=False)
        self.name = name

    def type_def(self, type_id: TypeIdOf) -> dict[str, Any]:
        raise TypeError(f"placeholder {self.name} was not resolved by the runtime")

    def __repr__(self) -> str:
        return f"<{self.name}>"


class Primitive(TypeInfo):
    __slots__ = ("name",)

    def __init__(self, name: str, codec: Codec[Any]) -> None:
        super().__init__(codec=codec)
        self.name = name

    def type_def(self, type_id: TypeIdOf) -> dict[str, Any]:
        return {"primitive": self.name}

    def __repr__(self) -> str:
        return self.name


class CompactOf(TypeInfo):
    __slots__ = ("inner",)

    def __init__(self, inner: TypeInfo) -> None:
        super().__init__()
        self.inner = inner

    def make_codec(self) -> Codec[Any] | None:
        if isinstance(self.inner, TupleOf) and not self.inner.items:
            return EMPTY_CODEC  # Compact<()> (MultiAddress::Index with AccountIndex = ())
        bits = _PRIMITIVE_BITS.get(getattr(self.inner, "name", ""))
        if bits is None:
            raise TypeError(f"Compact<{self.inner!r}> is not supported")
        return BoundedCompact(bits)

    def children(self) -> tuple[TypeInfo, ...]:
        return (self.inner,)

    def type_def(self, type_id: TypeIdOf) -> dict[str, Any]:
        return {"compact": {"type": type_id(self.inner)}}


class SequenceOf(TypeInfo):
    __slots__ = ("inner",)

    def __init__(self, inner: TypeInfo) -> None:
        super().__init__()
        self.inner = inner

    def make_codec(self) -> Codec[Any] | None:
        if self.inner is U8_T:
            return Bytes
        return Vec(self.inner.codec)

    def children(self) -> tuple[TypeInfo, ...]:
        return (self.inner,)

    def type_def(self, type_id: TypeIdOf) -> dict[str, Any]:
        return {"sequence": {"type": type_id(self.inner)}}


class ArrayOf(TypeInfo):
    __slots__ = ("inner", "length")

    def __init__(self, length: int, inner: TypeInfo) -> None:
        super().__init__()
        self.length = length
        self.inner = inner

    def make_codec(self) -> Codec[Any] | None:
        if self.inner is U8_T:
            return FixedBytes(self.length)
        return Tuple(*([self.inner.codec] * self.length))

    def children(self) -> tuple[TypeInfo, ...]:
        return (self.inner,)

    def type_def(self, type_id: TypeIdOf) -> dict[str, Any]:
        return {"array": {"len": self.length, "type": type_id(self.inner)}}


class TupleOf(TypeInfo):
    __slots__ = ("items",)

    def __init__(self, *items: TypeInfo) -> None:
        super().__init__()
        self.items = items

    def make_codec(self) -> Codec[Any] | None:
        if not self.items:
            return EMPTY_CODEC
        return Tuple(*(i.codec for i in self.items))

    def children(self) -> tuple[TypeInfo, ...]:
        return self.items

    def type_def(self, type_id: TypeIdOf) -> dict[str, Any]:
        return {"tuple": [type_id(i) for i in self.items]}


@dataclass(frozen=True, slots=True)
class Field:
    """A struct field or variant field; `type_name` is the Rust type name shown by explorers."""

    name: str | None
    ty: TypeInfo
    type_name: str | None = None
    docs: tuple[str, ...] = ()

    def to_metadata(self, type_id: TypeIdOf) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": type_id(self.ty),
            "typeName": self.type_name,
            "docs": list(self.docs),
        }


def field(name: str | None, ty: TypeInfo, type_name: str | None = None, *docs: str) -> Field:
    return Field(name, ty, type_name, tuple(docs))


class Composite(TypeInfo):
    """A struct. Python value: an instance of `cls` (a dataclass whose fields are in the same
    order), or without `cls` the single field's value (newtypes such as AccountId32, one-field
    structs such as Digest) or a tuple of the field values."""

    __slots__ = ("cls", "fields")

    def __init__(
        self,
        path: Sequence[str],
        fields: Sequence[Field],
        *,
        cls: type | None = None,
        params: Sequence[Param] = (),
        docs: Sequence[str] = (),
        codec: Codec[Any] | None = None,
        structural: bool | None = None,
    ) -> None:
        super().__init__(path=path, params=params, docs=docs, codec=codec, structural=structural)
        self.fields = tuple(fields)
        self.cls = cls

    def make_codec(self) -> Codec[Any] | None:
        if self.cls is not None:
            return _dataclass_codec(self.cls, [f.ty for f in self.fields])
        if len(self.fields) == 1:
            return self.fields[0].ty.codec
        if not self.fields:
            return EMPTY_CODEC
        return Tuple(*(f.ty.codec for f in self.fields))

    def children(self) -> tuple[TypeInfo, ...]:
        return super().children() + tuple(f.ty for f in self.fields)

    def type_def(self, type_id: TypeIdOf) -> dict[str, Any]:
        return {"composite": {"fields": [f.to_metadata(type_id) for f in self.fields]}}


@dataclass(frozen=True, slots=True)
class VariantDef:
    """One variant of an enum. `cls` is the Python class of its values (dataclass with the
    variant's fields in order, or a payload-less class) when the enum has a derived codec."""

    name: str
    index: int
    fields: tuple[Field, ...] = ()
    docs: tuple[str, ...] = ()
    cls: type | None = None

    def to_metadata(self, type_id: TypeIdOf) -> dict[str, Any]:
        return {
            "name": self.name,
            "fields": [f.to_metadata(type_id) for f in self.fields],
            "index": self.index,
            "docs": list(self.docs),
        }


class VariantType(TypeInfo):
    """A Rust enum. Its codec is, in order of preference: the explicit `codec`; an IntEnum
    codec when `int_enum` is given (payload-less enums); a `scale.Enum` over the variants'
    classes when every variant has one; otherwise none (metadata-only)."""

    __slots__ = ("int_enum", "variants")

    def __init__(
        self,
        path: Sequence[str],
        variants: Sequence[VariantDef],
        *,
        params: Sequence[Param] = (),
        docs: Sequence[str] = (),
        codec: Codec[Any] | None = None,
        int_enum: type[IntEnum] | None = None,
        structural: bool | None = None,
    ) -> None:
        super().__init__(path=path, params=params, docs=docs, codec=codec, structural=structural)
        self.variants = tuple(variants)
        self.int_enum = int_enum
        indices = [v.index for v in self.variants]
        if len(set(indices)) != len(indices):
            raise ValueError(f"{self!r}: duplicate variant indices {indices}")

    def make_codec(self) -> Codec[Any] | None:
        if self.int_enum is not None:
            return IntEnumCodec(self.int_enum)
        if self.variants and all(v.cls is not None for v in self.variants):
            codecs: dict[int, Codec[Any]] = {}
            for v in self.variants:
                assert v.cls is not None
                if v.fields:
                    codecs[v.index] = _dataclass_codec(v.cls, [f.ty for f in v.fields])
                else:
                    codecs[v.index] = Unit(v.cls)
            return Enum("::".join(self.path), codecs)
        return None

    def children(self) -> tuple[TypeInfo, ...]:
        return super().children() + tuple(f.ty for v in self.variants for f in v.fields)

    def type_def(self, type_id: TypeIdOf) -> dict[str, Any]:
        return {"variant": {"variants": [v.to_metadata(type_id) for v in self.variants]}}


def int_enum_type(path: Sequence[str], cls: type[IntEnum], docs: Sequence[str] = ()) -> VariantType:
    """A payload-less Rust enum from a Python IntEnum (member value = variant index)."""
    return VariantType(
        path, [VariantDef(m.name, int(m.value)) for m in cls], int_enum=cls, docs=docs
    )


def _dataclass_codec(cls: type, types: Sequence[TypeInfo]) -> Codec[Any]:
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__name__} must be a dataclass to carry a struct codec")
    names = [f.name for f in dataclasses.fields(cls)]
    if len(names) != len(types):
        raise TypeError(f"{cls.__name__} has {len(names)} fields, the type declares {len(types)}")
    return Struct(cls, [(n, t.codec) for n, t in zip(names, types, strict=True)])


# --- codecs that tocw.primitives.scale does not have -------------------------------------------


class _Empty(Codec[tuple[()]]):
    """(): zero bytes."""

    def encode_into(self, value: tuple[()], out: bytearray) -> None:
        if value not in ((), None):
            raise ScaleEncodeError(f"() takes no value, got {value!r}")

    def read(self, r: Reader) -> tuple[()]:
        return ()

    def __repr__(self) -> str:
        return "()"


EMPTY_CODEC = _Empty()


class BoundedCompact(Codec[int]):
    """Compact<uN>: a compact integer that must fit N bits (Substrate refuses to decode a
    larger one, so e.g. a transfer of 2^200 is malformed, not merely too expensive)."""

    __slots__ = ("bits",)

    def __init__(self, bits: int) -> None:
        self.bits = bits

    def encode_into(self, value: int, out: bytearray) -> None:
        if value >> self.bits:
            raise ScaleEncodeError(f"{value} does not fit Compact<u{self.bits}>")
        Compact.encode_into(value, out)

    def read(self, r: Reader) -> int:
        value = Compact.read(r)
        if value >> self.bits:
            raise ScaleDecodeError(f"compact value does not fit u{self.bits}")
        return value

    def __repr__(self) -> str:
        return f"Compact<u{self.bits}>"


_PRIMITIVE_BITS = {"u8": 8, "u16": 16, "u32": 32, "u64": 64, "u128": 128}


class IntEnumCodec(Codec[IntEnum]):
    """A payload-less enum as a Python IntEnum: one index byte."""

    __slots__ = ("cls",)

    def __init__(self, cls: type[IntEnum]) -> None:
        self.cls = cls

    def encode_into(self, value: IntEnum, out: bytearray) -> None:
        if not isinstance(value, self.cls):
            raise ScaleEncodeError(f"expected {self.cls.__name__}, got {value!r}")
        out.append(int(value))

    def read(self, r: Reader) -> IntEnum:
        b = r.read_byte()
        try:
            return self.cls(b)
        except ValueError:
            raise ScaleDecodeError(f"unknown {self.cls.__name__} variant index {b}") from None

    def __repr__(self) -> str:
        return self.cls.__name__


# --- primitives and generic std types ----------------------------------------------------------

U8_T = Primitive("u8", U8)
U16_T = Primitive("u16", U16)
U32_T = Primitive("u32", U32)
U64_T = Primitive("u64", U64)
U128_T = Primitive("u128", U128)
BOOL_T = Primitive("bool", Bool)
STR_T = Primitive("str", Str)
UNIT_T = TupleOf()
BYTES_T = SequenceOf(U8_T)  # Vec<u8>


def array_u8(length: int) -> ArrayOf:
    return ArrayOf(length, U8_T)


class OptionOf(VariantType):
    """Option<T> exactly as scale-info describes it (clients special-case the path)."""

    __slots__ = ("inner",)

    def __init__(self, inner: TypeInfo) -> None:
        super().__init__(
            ["Option"],
            [VariantDef("None", 0), VariantDef("Some", 1, (Field(None, inner),))],
            params=[("T", inner)],
            structural=True,
        )
        self.inner = inner

    def make_codec(self) -> Codec[Any] | None:
        return Option(self.inner.codec)


class ResultOf(VariantType):
    """Result<T, E>; its codec must be given (Python has no one obvious value shape for it)."""

    __slots__ = ()

    def __init__(self, ok: TypeInfo, err: TypeInfo, codec: Codec[Any] | None = None) -> None:
        super().__init__(
            ["Result"],
            [VariantDef("Ok", 0, (Field(None, ok),)), VariantDef("Err", 1, (Field(None, err),))],
            params=[("T", ok), ("E", err)],
            codec=codec,
            structural=True,
        )


def bounded_vec(inner: TypeInfo) -> Composite:
    """BoundedVec<T, S>: a Vec<T> on the wire; the bound is enforced by the pallet code."""
    return Composite(
        ["bounded_collections", "bounded_vec", "BoundedVec"],
        [Field(None, SequenceOf(inner), "Vec<T>")],
        params=[("T", inner), ("S", None)],
        structural=True,
    )
