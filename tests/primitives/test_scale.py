"""SCALE codec: known encodings from the Substrate codec spec, round trips, typed errors."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tocw.primitives.errors import ScaleDecodeError, ScaleEncodeError
from tocw.primitives.scale import (
    U8,
    U16,
    U32,
    U64,
    U128,
    Bool,
    Bytes,
    Compact,
    Enum,
    FixedBytes,
    Option,
    Str,
    Tuple,
    Unit,
    Vec,
    struct,
)


@dataclass(frozen=True, slots=True)
class Point:
    x: int
    y: int


@dataclass(frozen=True, slots=True)
class Empty:
    pass


POINT = struct(Point, x=U32, y=U16)
SHAPE: Enum[object] = Enum("Shape", {0: Unit(Empty), 7: POINT})


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        # Vectors from the SCALE codec documentation (docs.substrate.io / parity-scale-codec).
        (0, "00"),
        (1, "04"),
        (42, "a8"),
        (69, "1501"),
        (65535, "feff0300"),
        (100000000000000, "0b00407a10f35a"),
        ((1 << 30) - 1, "feffffff"),
        (1 << 30, "0300000040"),
        ((1 << 128) - 1, "33ffffffffffffffffffffffffffffffff"),
    ],
)
def test_compact_known_vectors(value: int, encoded: str) -> None:
    """Compact encodings match the published SCALE examples and decode back."""
    assert Compact.encode(value).hex() == encoded
    assert Compact.decode(bytes.fromhex(encoded)) == value


def test_compact_non_canonical_rejected() -> None:
    """A compact with a longer mode than needed is refused, as parity-scale-codec does."""
    with pytest.raises(ScaleDecodeError):
        Compact.decode(bytes.fromhex("0100"))  # 0 in two-byte mode
    with pytest.raises(ScaleDecodeError):
        Compact.decode(bytes.fromhex("0300000000"))  # 0 in big-integer mode


def test_ints_little_endian_and_bounds() -> None:
    """Fixed-width integers are little endian and refuse out-of-range values."""
    assert U16.encode(42).hex() == "2a00"
    assert U32.encode(16777215).hex() == "ffffff00"
    assert U128.encode(1).hex() == "01" + "00" * 15
    for codec, bad in [(U8, 256), (U32, -1), (U64, 1 << 64), (U128, 1 << 128)]:
        with pytest.raises(ScaleEncodeError):
            codec.encode(bad)
    with pytest.raises(ScaleEncodeError):
        U8.encode(True)


def test_option_bool_vec_string_vectors() -> None:
    """Option, bool, Vec and String match the codec spec examples."""
    assert Option(U32).encode(None).hex() == "00"
    assert Option(U32).encode(1).hex() == "0101000000"
    assert Bool.encode(True).hex() == "01"
    assert Vec(U16).encode([4, 8, 15, 16, 23, 42]).hex() == "18040008000f00100017002a00"
    assert Str.encode("ab").hex() == "086162"
    assert Bytes.encode(b"\x01\x02").hex() == "080102"


def test_struct_and_enum_encode_by_declaration() -> None:
    """Structs are their fields in order; enums an index byte then the payload."""
    assert POINT.encode(Point(1, 2)).hex() == "010000000200"
    assert SHAPE.encode(Point(1, 2)).hex() == "07010000000200"
    assert SHAPE.encode(Empty()).hex() == "00"
    assert SHAPE.decode(bytes.fromhex("00")) == Empty()


@pytest.mark.parametrize(
    ("codec", "data"),
    [
        (U32, "0102"),
        (Bool, "02"),
        (Option(U8), "02"),
        (Vec(U8), "fd"),
        (Vec(U32), "1001"),
        (Bytes, "0c0102"),
        (Str, "04ff"),
        (SHAPE, "05"),
        (SHAPE, ""),
        (FixedBytes(4), "010203"),
        (POINT, "0100000002"),
        (U8, "0102"),  # trailing byte
    ],
)
def test_decode_errors_are_typed(codec: object, data: str) -> None:
    """Short, invalid or trailing input raises ScaleDecodeError, never IndexError & co."""
    with pytest.raises(ScaleDecodeError):
        codec.decode(bytes.fromhex(data))  # type: ignore[attr-defined]


def test_vec_huge_length_prefix_rejected_cheaply() -> None:
    """A length prefix larger than the input fails before allocating anything."""
    with pytest.raises(ScaleDecodeError):
        Vec(U8).decode(Compact.encode(1 << 60))


def test_enum_extend_refuses_taken_index() -> None:
    """Modules cannot take a variant index that is already used."""
    with pytest.raises(ValueError, match="already taken"):
        SHAPE.extend({7: POINT})


@given(st.integers(min_value=0, max_value=(1 << 128) - 1))
def test_compact_roundtrip(value: int) -> None:
    """Every u128 round-trips through Compact."""
    assert Compact.decode(Compact.encode(value)) == value


@given(
    st.lists(st.tuples(st.integers(0, 2**32 - 1), st.binary(max_size=80), st.none() | st.text()))
)
def test_nested_roundtrip(values: list[tuple[int, bytes, str | None]]) -> None:
    """Nested vectors of tuples with options round-trip."""
    codec = Vec(Tuple(U32, Bytes, Option(Str)))
    assert codec.decode(codec.encode(values)) == values


@given(st.binary(max_size=64))
def test_decode_fuzz_never_leaks_untyped_errors(data: bytes) -> None:
    """Arbitrary bytes either decode or raise ScaleDecodeError."""
    codec = Vec(Tuple(SHAPE, Option(Bytes), Compact, Str))
    with contextlib.suppress(ScaleDecodeError):
        codec.decode(data)
