"""Substrate block headers, digests and blocks: SCALE codecs, hashes and the JSON-RPC form.

Owns `Header` (hash = blake2_256 of its SCALE encoding, as every Substrate client recomputes
it), the `DigestItem` variants a header's digest carries, `Block` / `SignedBlock` as
`chain_getBlock` returns them, and `extrinsics_root`. Both the dev chain (which produces these)
and the enclave's light client (which checks them) use this module, so the JSON form here is
exactly Substrate's: hashes as 0x-hex, `number` as a 0x-hex string, digest logs as the 0x-hex
of each SCALE-encoded DigestItem, and justifications as nested arrays of byte values.

Errors: SCALE problems raise `ScaleDecodeError` / `ScaleEncodeError`; a malformed JSON object
raises `InvalidHeaderError` (a PrimitivesError and ValueError).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from tocw.primitives.errors import PrimitivesError, ScaleDecodeError, ScaleEncodeError
from tocw.primitives.hashing import blake2_256
from tocw.primitives.scale import (
    H256,
    Bytes,
    Codec,
    Enum,
    FixedBytes,
    Mapped,
    Option,
    Reader,
    Tuple,
    Unit,
    Vec,
    encode_compact,
    read_compact,
    struct,
)
from tocw.primitives.trie import ordered_trie_root
from tocw.primitives.types import MAX_U32, BlockHash, BlockNumber, from_hex, to_hex

__all__ = [
    "BLOCK",
    "BLOCK_NUMBER",
    "DIGEST_ITEM",
    "HEADER",
    "JUSTIFICATIONS",
    "SIGNED_BLOCK",
    "Block",
    "DigestConsensus",
    "DigestItem",
    "DigestOther",
    "DigestPreRuntime",
    "DigestRuntimeEnvironmentUpdated",
    "DigestSeal",
    "Header",
    "InvalidHeaderError",
    "Justification",
    "SignedBlock",
    "block_from_json",
    "block_to_json",
    "extrinsics_root",
    "header_from_json",
    "header_to_json",
    "signed_block_from_json",
    "signed_block_to_json",
]


class InvalidHeaderError(PrimitivesError, ValueError):
    """A JSON header or block that does not have Substrate's shape."""


# --- digest items --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DigestOther:
    data: bytes


@dataclass(frozen=True, slots=True)
class DigestConsensus:
    """A message from a consensus engine to the runtime's light clients (e.g. GRANDPA's
    authority set changes under engine id b"FRNK")."""

    engine_id: bytes
    data: bytes


@dataclass(frozen=True, slots=True)
class DigestSeal:
    engine_id: bytes
    data: bytes


@dataclass(frozen=True, slots=True)
class DigestPreRuntime:
    engine_id: bytes
    data: bytes


@dataclass(frozen=True, slots=True)
class DigestRuntimeEnvironmentUpdated:
    """The runtime code or heap pages changed in this block."""


DigestItem: TypeAlias = (
    DigestOther | DigestConsensus | DigestSeal | DigestPreRuntime | DigestRuntimeEnvironmentUpdated
)

_ENGINE_ID = FixedBytes(4)

# sp_runtime::generic::DigestItem; indices 1-3 and 7 are retired variants no chain emits now.
DIGEST_ITEM: Codec[DigestItem] = Enum(
    "DigestItem",
    {
        0: struct(DigestOther, data=Bytes),
        4: struct(DigestConsensus, engine_id=_ENGINE_ID, data=Bytes),
        5: struct(DigestSeal, engine_id=_ENGINE_ID, data=Bytes),
        6: struct(DigestPreRuntime, engine_id=_ENGINE_ID, data=Bytes),
        8: Unit(DigestRuntimeEnvironmentUpdated),
    },
)


class _CompactBlockNumber(Codec[BlockNumber]):
    """Compact<u32>: Substrate block numbers are u32 and decoding rejects anything larger."""

    def encode_into(self, value: BlockNumber, out: bytearray) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_U32:
            raise ScaleEncodeError(f"block number {value!r} does not fit u32")
        encode_compact(value, out)

    def read(self, r: Reader) -> BlockNumber:
        value = read_compact(r)
        if value > MAX_U32:
            raise ScaleDecodeError(f"block number {value} does not fit u32")
        return BlockNumber(value)

    def __repr__(self) -> str:
        return "Compact<BlockNumber>"


BLOCK_NUMBER: Codec[BlockNumber] = _CompactBlockNumber()
_BLOCK_HASH: Codec[BlockHash] = Mapped(H256, BlockHash, bytes)


# --- header --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Header:
    parent_hash: BlockHash
    number: BlockNumber
    state_root: bytes
    extrinsics_root: bytes
    digest: tuple[DigestItem, ...] = ()

    def encode(self) -> bytes:
        return HEADER.encode(self)

    @classmethod
    def decode(cls, data: bytes) -> Header:
        return HEADER.decode(data)

    def hash(self) -> BlockHash:
        """blake2_256 of the SCALE encoding: the block hash."""
        return BlockHash(blake2_256(HEADER.encode(self)))


HEADER: Codec[Header] = struct(
    Header,
    parent_hash=_BLOCK_HASH,
    number=BLOCK_NUMBER,
    state_root=H256,
    extrinsics_root=H256,
    digest=Mapped(Vec(DIGEST_ITEM), tuple, list),
)


# --- blocks --------------------------------------------------------------------------------


class _OpaqueExtrinsic(Codec[bytes]):
    """An extrinsic kept exactly as `chain_getBlock` shows it: compact length ‖ bytes.

    Inside a block the extrinsic's own encoding (with its length prefix) is what is
    concatenated, so encoding checks the prefix matches and decoding keeps it.
    """

    def encode_into(self, value: bytes, out: bytearray) -> None:
        try:
            Bytes.decode(value)
        except ScaleDecodeError as e:
            raise ScaleEncodeError(f"extrinsic is not length-prefixed: {e}") from None
        out += value

    def read(self, r: Reader) -> bytes:
        start = r.pos
        r.read(read_compact(r))
        return r.data[start : r.pos]

    def __repr__(self) -> str:
        return "OpaqueExtrinsic"


@dataclass(frozen=True, slots=True)
class Block:
    """A block; `extrinsics` hold each extrinsic's SCALE encoding, length prefix included."""

    header: Header
    extrinsics: tuple[bytes, ...] = ()

    def hash(self) -> BlockHash:
        return self.header.hash()


# (ConsensusEngineId, EncodedJustification), e.g. (b"FRNK", SCALE(GrandpaJustification)).
Justification: TypeAlias = tuple[bytes, bytes]


@dataclass(frozen=True, slots=True)
class SignedBlock:
    """What `chain_getBlock` returns: the block and the finality proofs the node stored."""

    block: Block
    justifications: tuple[Justification, ...] | None = None

    def justification(self, engine_id: bytes) -> bytes | None:
        """The justification of one consensus engine (b"FRNK" for GRANDPA), if present."""
        for engine, data in self.justifications or ():
            if engine == engine_id:
                return data
        return None


BLOCK: Codec[Block] = struct(
    Block, header=HEADER, extrinsics=Mapped(Vec(_OpaqueExtrinsic()), tuple, list)
)
JUSTIFICATIONS: Codec[tuple[Justification, ...]] = Mapped(
    Vec(Tuple(_ENGINE_ID, Bytes)), tuple, list
)
SIGNED_BLOCK: Codec[SignedBlock] = struct(
    SignedBlock, block=BLOCK, justifications=Option(JUSTIFICATIONS)
)


def extrinsics_root(extrinsics: Sequence[bytes]) -> bytes:
    """The header's extrinsics_root: the ordered trie root over the length-prefixed extrinsics.

    Always state version 0, whatever the runtime's state version: on polkadot-v0.9.42 (the
    line Integritee sdk v0.13 builds on) frame_system hard-codes V0 for it, and later SDKs use
    V1 only for runtimes declaring `system_version >= 2`. Checked against a real block of a
    state-version-1 node (tests/primitives/test_header.py).
    """
    return ordered_trie_root(list(extrinsics), state_version=0)


# --- JSON-RPC form -------------------------------------------------------------------------

_HEX = re.compile(r"0x[0-9a-fA-F]*")


def _hex_field(d: Mapping[str, Any], name: str, size: int | None = None) -> bytes:
    value = d.get(name)
    if not isinstance(value, str) or not _HEX.fullmatch(value) or len(value) % 2:
        raise InvalidHeaderError(f"{name}: expected a 0x-hex string of bytes, got {value!r}")
    raw = from_hex(value)
    if size is not None and len(raw) != size:
        raise InvalidHeaderError(f"{name}: expected {size} bytes, got {len(raw)}")
    return raw


def _as_mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidHeaderError(f"{what}: expected an object, got {type(value).__name__}")
    return value


def _as_list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidHeaderError(f"{what}: expected an array, got {type(value).__name__}")
    return value


def header_to_json(header: Header) -> dict[str, Any]:
    """The header as Substrate's `chain_getHeader` returns it."""
    return {
        "parentHash": to_hex(header.parent_hash),
        "number": hex(header.number),
        "stateRoot": to_hex(header.state_root),
        "extrinsicsRoot": to_hex(header.extrinsics_root),
        "digest": {"logs": [to_hex(DIGEST_ITEM.encode(item)) for item in header.digest]},
    }


def header_from_json(data: Mapping[str, Any]) -> Header:
    """Parse `chain_getHeader` JSON. `number` may be a hex string (Substrate) or an int."""
    d = _as_mapping(data, "header")
    number = d.get("number")
    if isinstance(number, str):
        number = int(number, 16) if _HEX.fullmatch(number) and number != "0x" else None
    if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number <= MAX_U32:
        raise InvalidHeaderError(f"number: expected a u32 as 0x-hex, got {d.get('number')!r}")
    logs = _as_list(_as_mapping(d.get("digest"), "digest").get("logs"), "digest.logs")
    digest = []
    for i, log in enumerate(logs):
        raw = _hex_field({"log": log}, "log")
        try:
            digest.append(DIGEST_ITEM.decode(raw))
        except ScaleDecodeError as e:
            raise InvalidHeaderError(f"digest.logs[{i}]: {e}") from None
    return Header(
        parent_hash=BlockHash(_hex_field(d, "parentHash", 32)),
        number=BlockNumber(number),
        state_root=_hex_field(d, "stateRoot", 32),
        extrinsics_root=_hex_field(d, "extrinsicsRoot", 32),
        digest=tuple(digest),
    )


def block_to_json(block: Block) -> dict[str, Any]:
    return {
        "header": header_to_json(block.header),
        "extrinsics": [to_hex(x) for x in block.extrinsics],
    }


def block_from_json(data: Mapping[str, Any]) -> Block:
    d = _as_mapping(data, "block")
    extrinsics = []
    for i, x in enumerate(_as_list(d.get("extrinsics"), "extrinsics")):
        raw = _hex_field({"x": x}, "x")
        try:
            Bytes.decode(raw)
        except ScaleDecodeError as e:
            raise InvalidHeaderError(f"extrinsics[{i}] is not length-prefixed: {e}") from None
        extrinsics.append(raw)
    return Block(header_from_json(_as_mapping(d.get("header"), "header")), tuple(extrinsics))


def _bytes_from_json(value: object, what: str, size: int | None = None) -> bytes:
    """Bytes given as an array of byte values (Substrate's serde form) or as 0x-hex."""
    if isinstance(value, str):
        return _hex_field({what: value}, what, size)
    items = _as_list(value, what)
    if not all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255 for b in items):
        raise InvalidHeaderError(f"{what}: expected byte values 0..255")
    raw = bytes(items)
    if size is not None and len(raw) != size:
        raise InvalidHeaderError(f"{what}: expected {size} bytes, got {len(raw)}")
    return raw


def signed_block_to_json(signed: SignedBlock) -> dict[str, Any]:
    """The result of `chain_getBlock`. Justifications are [[engine id bytes], [data bytes]]
    pairs of byte-value arrays, as Substrate's serde output (and polkadot.js) has them."""
    justifications = None
    if signed.justifications is not None:
        justifications = [[list(engine), list(data)] for engine, data in signed.justifications]
    return {"block": block_to_json(signed.block), "justifications": justifications}


def signed_block_from_json(data: Mapping[str, Any]) -> SignedBlock:
    """Parse `chain_getBlock` JSON; justification bytes may be arrays or 0x-hex strings."""
    d = _as_mapping(data, "signed block")
    block = block_from_json(_as_mapping(d.get("block"), "block"))
    raw = d.get("justifications")
    if raw is None:
        return SignedBlock(block, None)
    justifications = []
    for i, pair in enumerate(_as_list(raw, "justifications")):
        items = _as_list(pair, f"justifications[{i}]")
        if len(items) != 2:
            raise InvalidHeaderError(f"justifications[{i}]: expected [engine id, data]")
        engine = _bytes_from_json(items[0], f"justifications[{i}][0]", 4)
        justifications.append((engine, _bytes_from_json(items[1], f"justifications[{i}][1]")))
    return SignedBlock(block, tuple(justifications))
