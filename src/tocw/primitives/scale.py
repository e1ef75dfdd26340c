"""SCALE codec as small declarative, typed definitions.

Written by hand on purpose: scalecodec (which tocw uses for runtime metadata and for talking to
Substrate nodes) describes types by runtime-registry strings and returns untyped dicts. The
trusted types of PROTOCOL.md are fixed at build time, cross the trust boundary and sit on the
hot path of every indirect call, so they are defined here as typed codecs over frozen
dataclasses (the approach of py-scale-codec v2's `Struct(a=U32)`), checked by mypy and fast.

Every decode error is a `ScaleDecodeError`; no IndexError or struct.error leaks out.

    Point = struct(PointCls, x=U32, y=U32)
    Point.encode(PointCls(1, 2)) == b"\\x01\\0\\0\\0\\x02\\0\\0\\0"
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from tocw.primitives.errors import ScaleDecodeError, ScaleEncodeError

T = TypeVar("T")
U = TypeVar("U")

# Bounds decoding of collections so a hostile length prefix cannot make us allocate gigabytes
# before noticing the input is short: every element takes at least one byte (or zero bytes for
# zero-sized elements, which we do not have), so a length above the remaining input is invalid.
MAX_COMPACT_BYTES = 67


class Reader:
    """A cursor over immutable input; the only place that slices decode input."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def read(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.data):
            raise ScaleDecodeError(
                f"input too short: need {n} bytes at offset {self.pos}, "
                f"have {len(self.data) - self.pos}"
            )
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def read_byte(self) -> int:
        if self.pos >= len(self.data):
            raise ScaleDecodeError(f"input too short: need 1 byte at offset {self.pos}")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def remaining(self) -> int:
        return len(self.data) - self.pos


class Codec(ABC, Generic[T]):
    """Encodes values of type T to SCALE bytes and decodes them back."""

    @abstractmethod
    def encode_into(self, value: T, out: bytearray) -> None: ...

    @abstractmethod
    def read(self, r: Reader) -> T: ...

    def encode(self, value: T) -> bytes:
        out = bytearray()
        self.encode_into(value, out)
        return bytes(out)

    def decode(self, data: bytes) -> T:
        """Decode exactly `data`; trailing bytes are an error (as Substrate's DecodeAll)."""
        r = Reader(bytes(data))
        value = self.read(r)
        if r.remaining():
            raise ScaleDecodeError(f"{r.remaining()} trailing bytes after {self!r}")
        return value

    def decode_prefix(self, data: bytes) -> tuple[T, int]:
        """Decode a value from the start of `data`; returns it and the bytes consumed."""
        r = Reader(bytes(data))
        value = self.read(r)
        return value, r.pos


class _Int(Codec[int]):
    __slots__ = ("bits", "name", "size")

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.size = size
        self.bits = size * 8

    def encode_into(self, value: int, out: bytearray) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value >> self.bits:
            raise ScaleEncodeError(f"{value!r} does not fit {self.name}")
        out += value.to_bytes(self.size, "little")

    def read(self, r: Reader) -> int:
        return int.from_bytes(r.read(self.size), "little")

    def __repr__(self) -> str:
        return self.name


U8 = _Int("u8", 1)
U16 = _Int("u16", 2)
U32 = _Int("u32", 4)
U64 = _Int("u64", 8)
U128 = _Int("u128", 16)


class _Bool(Codec[bool]):
    def encode_into(self, value: bool, out: bytearray) -> None:
        out.append(1 if value else 0)

    def read(self, r: Reader) -> bool:
        b = r.read_byte()
        if b > 1:
            raise ScaleDecodeError(f"invalid bool byte 0x{b:02x}")
        return b == 1

    def __repr__(self) -> str:
        return "bool"


Bool = _Bool()


def encode_compact(value: int, out: bytearray) -> None:
    """Append SCALE compact encoding of a non-negative integer."""
    if value < 0:
        raise ScaleEncodeError(f"compact cannot encode negative {value}")
    if value < 1 << 6:
        out.append(value << 2)
    elif value < 1 << 14:
        out += ((value << 2) | 1).to_bytes(2, "little")
    elif value < 1 << 30:
        out += ((value << 2) | 2).to_bytes(4, "little")
    else:
        n = (value.bit_length() + 7) // 8
        if n > MAX_COMPACT_BYTES:
            raise ScaleEncodeError(f"compact value too large: {n} bytes")
        out.append(((n - 4) << 2) | 3)
        out += value.to_bytes(n, "little")


def read_compact(r: Reader) -> int:
    first = r.read_byte()
    mode = first & 3
    if mode == 0:
        return first >> 2
    if mode == 1:
        value = (first | (r.read_byte() << 8)) >> 2
        if value < 1 << 6:
            raise ScaleDecodeError("non-canonical compact encoding")
        return value
    if mode == 2:
        value = int.from_bytes(bytes([first]) + r.read(3), "little") >> 2
        if value < 1 << 14:
            raise ScaleDecodeError("non-canonical compact encoding")
        return value
    n = (first >> 2) + 4
    value = int.from_bytes(r.read(n), "little")
    if value < 1 << 30 or (n > 4 and value >> ((n - 1) * 8) == 0):
        raise ScaleDecodeError("non-canonical compact encoding")
    return value


class _Compact(Codec[int]):
    def encode_into(self, value: int, out: bytearray) -> None:
        encode_compact(value, out)

    def read(self, r: Reader) -> int:
        return read_compact(r)

    def __repr__(self) -> str:
        return "Compact"


Compact = _Compact()


class _Bytes(Codec[bytes]):
    """Vec<u8>: compact length then the raw bytes."""

    def encode_into(self, value: bytes, out: bytearray) -> None:
        encode_compact(len(value), out)
        out += value

    def read(self, r: Reader) -> bytes:
        n = read_compact(r)
        return r.read(n)

    def __repr__(self) -> str:
        return "Bytes"


Bytes = _Bytes()


class _Str(Codec[str]):
    def encode_into(self, value: str, out: bytearray) -> None:
        Bytes.encode_into(value.encode("utf-8"), out)

    def read(self, r: Reader) -> str:
        raw = Bytes.read(r)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ScaleDecodeError(f"invalid utf-8 in string: {e}") from None

    def __repr__(self) -> str:
        return "Str"


Str = _Str()


class FixedBytes(Codec[bytes]):
    """[u8; N]: exactly N raw bytes, no length prefix."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size

    def encode_into(self, value: bytes, out: bytearray) -> None:
        if len(value) != self.size:
            raise ScaleEncodeError(f"expected {self.size} bytes, got {len(value)}")
        out += value

    def read(self, r: Reader) -> bytes:
        return r.read(self.size)

    def __repr__(self) -> str:
        return f"[u8; {self.size}]"


H256 = FixedBytes(32)
H512 = FixedBytes(64)


class Vec(Codec[list[T]]):
    __slots__ = ("item",)

    def __init__(self, item: Codec[T]) -> None:
        self.item = item

    def encode_into(self, value: Sequence[T], out: bytearray) -> None:
        encode_compact(len(value), out)
        for v in value:
            self.item.encode_into(v, out)

    def read(self, r: Reader) -> list[T]:
        n = read_compact(r)
        if n > r.remaining():
            raise ScaleDecodeError(f"vector length {n} exceeds remaining input {r.remaining()}")
        return [self.item.read(r) for _ in range(n)]

    def __repr__(self) -> str:
        return f"Vec<{self.item!r}>"


class Option(Codec[T | None]):
    __slots__ = ("item",)

    def __init__(self, item: Codec[T]) -> None:
        self.item = item

    def encode_into(self, value: T | None, out: bytearray) -> None:
        if value is None:
            out.append(0)
        else:
            out.append(1)
            self.item.encode_into(value, out)

    def read(self, r: Reader) -> T | None:
        tag = r.read_byte()
        if tag == 0:
            return None
        if tag == 1:
            return self.item.read(r)
        raise ScaleDecodeError(f"invalid Option tag 0x{tag:02x}")

    def __repr__(self) -> str:
        return f"Option<{self.item!r}>"


class Tuple(Codec[tuple[Any, ...]]):
    __slots__ = ("items",)

    def __init__(self, *items: Codec[Any]) -> None:
        self.items = items

    def encode_into(self, value: tuple[Any, ...], out: bytearray) -> None:
        if len(value) != len(self.items):
            raise ScaleEncodeError(f"expected a {len(self.items)}-tuple, got {len(value)}")
        for codec, v in zip(self.items, value, strict=True):
            codec.encode_into(v, out)

    def read(self, r: Reader) -> tuple[Any, ...]:
        return tuple(c.read(r) for c in self.items)

    def __repr__(self) -> str:
        return "(" + ", ".join(repr(i) for i in self.items) + ")"


class Struct(Codec[T]):
    """A dataclass encoded as its fields in declaration order."""

    __slots__ = ("cls", "fields")

    def __init__(self, cls: type[T], fields: Sequence[tuple[str, Codec[Any]]]) -> None:
        self.cls = cls
        self.fields = tuple(fields)
        if dataclasses.is_dataclass(cls):
            names = [f.name for f in dataclasses.fields(cls)]
            if names != [n for n, _ in self.fields]:
                raise TypeError(f"{cls.__name__}: codec fields {self.fields} != {names}")

    def encode_into(self, value: T, out: bytearray) -> None:
        if not isinstance(value, self.cls):
            raise ScaleEncodeError(f"expected {self.cls.__name__}, got {type(value).__name__}")
        for name, codec in self.fields:
            codec.encode_into(getattr(value, name), out)

    def read(self, r: Reader) -> T:
        return self.cls(*[codec.read(r) for _, codec in self.fields])

    def __repr__(self) -> str:
        return self.cls.__name__


def struct(cls: type[T], **fields: Codec[Any]) -> Struct[T]:
    """Declare the codec of a dataclass: `struct(Transfer, source=AccountIdCodec, value=U128)`."""
    return Struct(cls, list(fields.items()))


class Enum(Codec[T]):
    """A Rust-style enum: one index byte, then the variant's payload.

    Each variant is a Python class (usually a frozen dataclass) with its own codec; the Python
    value's class picks the index. `extend` returns a new enum with more variants, which is how
    STF modules add their calls to TrustedCall without touching the built-in ones.
    """

    __slots__ = ("by_class", "by_index", "name")

    def __init__(self, name: str, variants: Mapping[int, Codec[Any]]) -> None:
        self.name = name
        self.by_index: dict[int, Codec[Any]] = dict(variants)
        self.by_class: dict[type, tuple[int, Codec[Any]]] = {}
        for index, codec in self.by_index.items():
            if not 0 <= index <= 255:
                raise ValueError(f"{name}: variant index {index} out of range")
            cls = variant_class(codec)
            if cls in self.by_class:
                raise ValueError(f"{name}: {cls.__name__} registered twice")
            self.by_class[cls] = (index, codec)

    def extend(self, variants: Mapping[int, Codec[Any]], name: str | None = None) -> Enum[T]:
        clash = set(variants) & set(self.by_index)
        if clash:
            raise ValueError(f"{self.name}: variant indices {sorted(clash)} already taken")
        return Enum(name or self.name, {**self.by_index, **variants})

    def index_of(self, value: T) -> int:
        try:
            return self.by_class[type(value)][0]
        except KeyError:
            raise ScaleEncodeError(
                f"{type(value).__name__} is not a variant of {self.name}"
            ) from None

    def encode_into(self, value: T, out: bytearray) -> None:
        try:
            index, codec = self.by_class[type(value)]
        except KeyError:
            raise ScaleEncodeError(
                f"{type(value).__name__} is not a variant of {self.name}"
            ) from None
        out.append(index)
        codec.encode_into(value, out)

    def read(self, r: Reader) -> T:
        index = r.read_byte()
        codec = self.by_index.get(index)
        if codec is None:
            raise ScaleDecodeError(f"unknown {self.name} variant index {index}")
        value: T = codec.read(r)
        return value

    def __repr__(self) -> str:
        return self.name


class Unit(Codec[T]):
    """A payload-less enum variant, represented by a singleton instance of `cls`."""

    __slots__ = ("cls", "instance")

    def __init__(self, cls: type[T]) -> None:
        self.cls = cls
        self.instance = cls()

    def encode_into(self, value: T, out: bytearray) -> None:
        pass

    def read(self, r: Reader) -> T:
        return self.instance

    def __repr__(self) -> str:
        return self.cls.__name__


class Mapped(Codec[U]):
    """A codec for U stored as another codec's T (e.g. a NewType or a wrapper class)."""

    __slots__ = ("cls", "inner", "to_inner", "to_outer")

    def __init__(
        self,
        inner: Codec[T],
        to_outer: Callable[[T], U],
        to_inner: Callable[[U], T],
        cls: type | None = None,
    ) -> None:
        self.inner = inner
        self.to_outer = to_outer
        self.to_inner = to_inner
        self.cls = cls

    def encode_into(self, value: U, out: bytearray) -> None:
        self.inner.encode_into(self.to_inner(value), out)

    def read(self, r: Reader) -> U:
        return self.to_outer(self.inner.read(r))

    def __repr__(self) -> str:
        return f"Mapped<{self.inner!r}>"


def variant_class(codec: Codec[Any]) -> type:
    """The Python class a variant codec produces (Struct, Unit or Mapped with cls)."""
    cls = getattr(codec, "cls", None)
    if not isinstance(cls, type):
        raise TypeError(f"enum variant codec {codec!r} must declare the class it produces")
    return cls


def compact_bytes(value: int) -> bytes:
    out = bytearray()
    encode_compact(value, out)
    return bytes(out)
