"""Headers, digests and blocks: real headers and hashes, extrinsics roots, JSON and SCALE forms."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tocw.primitives.errors import ScaleDecodeError, ScaleEncodeError
from tocw.primitives.header import (
    BLOCK,
    DIGEST_ITEM,
    HEADER,
    SIGNED_BLOCK,
    Block,
    DigestConsensus,
    DigestOther,
    DigestPreRuntime,
    DigestRuntimeEnvironmentUpdated,
    DigestSeal,
    Header,
    InvalidHeaderError,
    SignedBlock,
    block_from_json,
    block_to_json,
    extrinsics_root,
    header_from_json,
    header_to_json,
    signed_block_from_json,
    signed_block_to_json,
)
from tocw.primitives.types import BlockHash, BlockNumber

# polkadot-js/api packages/types/src/json/Header.003.json; its spec
# (packages/types/src/rpc/Header.spec.ts) expects this hash and number 1650758.
POLKADOT_JS_HEADER: dict[str, Any] = {
    "parentHash": "0x596b8c3ced242052921135e9b44dba2ba3752b2a92f1cfa361d59b10016cb5b0",
    "number": "0x193046",
    "stateRoot": "0xd9d32d2f3f4af14c506aa59ff5a3132ca0fe5d7f82cdf1e4967a638042e849a6",
    "extrinsicsRoot": "0x4133a7c2e9ab3d0c75f93bfba8730011668c697036adb2f22916a8731f68c2fa",
    "digest": {
        "logs": [
            "0x0461757261210169c97e0f00000000479c09f7ace12ed3e1af2dba6cca6831e257e80feef56c7474"
            "d6c69bae6f4e8a6e0045a87afe14296992c38b7d55abcbe617c441cd35e8667abbcb1678f31802"
        ]
    },
}
POLKADOT_JS_HEADER_HASH = "464692ad0e225a74274a7ef411e045f1fc7c2639b5f780c7c18f91f4100f5e54"

# paritytech/smoldot lib/src/executor/runtime_call/child-trie-read-basic.json: a block of a
# state-version-1 Substrate node (SCALE header and body); child-trie-destroy.json holds the
# next block, whose parent hash is this header's hash.
NODE_HEADER = bytes.fromhex(
    "980f308438982101fb1dc2d0b7f655a1eac2b7539d39b3cbecc9da5b8cfee1620ced383437511f16f2459c85"
    "d2ee2df1194d937c71a0d2255f40831df70c7a58dcf2149b004c6207a0cfde60cfdcb70e4882382641c0731c"
    "a39c682e25266364e100"
)
NODE_BODY = [
    bytes.fromhex("280402000b903cd8c38801"),
    bytes.fromhex(
        "bd028400d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d016094dfce3e"
        "fc6680b5ae2098476afb50518f92c116f82e1ec86fa11aa7334a7a1137f616aff7df45fa92338bb811c0"
        "d09fd951273e46842a90fcaa4cea93a685000c00070600425f1235520bd97719d8e5d03a9fb5b5aed22c"
        "a71517585e1b7eb238bfaff86b000300684beb02702600006824d2da3054466972737420636f6e74726163"
        "742063616c6c6564"
    ),
]
NEXT_BLOCK_PARENT_HASH = "958cfc161d7a67c535d6883a5948f651261f49e5de37853fe3b40ceb25de10b5"

ALL_DIGEST_ITEMS = (
    DigestPreRuntime(b"BABE", b"\x01\x02"),
    DigestConsensus(b"FRNK", b""),
    DigestOther(b"hello"),
    DigestRuntimeEnvironmentUpdated(),
    DigestSeal(b"aura", bytes(64)),
)


def _header(**changes: Any) -> Header:
    fields: dict[str, Any] = {
        "parent_hash": BlockHash(bytes(range(32))),
        "number": BlockNumber(26),
        "state_root": bytes([1]) * 32,
        "extrinsics_root": bytes([2]) * 32,
        "digest": ALL_DIGEST_ITEMS,
    }
    fields.update(changes)
    return Header(**fields)


def test_header_polkadot_js_fixture_hash() -> None:
    """A real header from polkadot.js's fixtures hashes to the hash its spec expects."""
    header = header_from_json(POLKADOT_JS_HEADER)
    assert header.number == 1650758
    assert len(header.digest) == 1
    assert isinstance(header.digest[0], DigestConsensus) and header.digest[0].engine_id == b"aura"
    assert header.hash().hex() == POLKADOT_JS_HEADER_HASH
    assert header_to_json(header) == POLKADOT_JS_HEADER


def test_header_real_node_header_links_to_next_block() -> None:
    """A real SCALE header decodes, re-encodes identically and its hash is the next parent."""
    header = Header.decode(NODE_HEADER)
    assert header.number == 3 and header.digest == ()
    assert header.encode() == NODE_HEADER
    assert header.hash().hex() == NEXT_BLOCK_PARENT_HASH


def test_extrinsics_root_real_block_uses_state_version_0() -> None:
    """The real block's extrinsics_root is the v0 ordered root, though its state is v1."""
    header = Header.decode(NODE_HEADER)
    assert extrinsics_root(NODE_BODY) == header.extrinsics_root


def test_header_json_uses_substrate_form() -> None:
    """number is a 0x-hex string, digest logs are hex of SCALE DigestItems."""
    header = _header()
    data = header_to_json(header)
    assert data["number"] == "0x1a"
    assert data["parentHash"] == "0x" + bytes(range(32)).hex()
    assert data["digest"]["logs"][0] == "0x06" + b"BABE".hex() + "080102"
    assert data["digest"]["logs"][3] == "0x08"
    assert header_from_json(json.loads(json.dumps(data))) == header
    assert header_to_json(_header(number=BlockNumber(0)))["number"] == "0x0"


def test_header_scale_round_trip_all_digest_items() -> None:
    """Every DigestItem variant survives a SCALE round trip at its Substrate index."""
    header = _header()
    assert Header.decode(header.encode()) == header
    indices = [DIGEST_ITEM.encode(item)[0] for item in ALL_DIGEST_ITEMS]
    assert indices == [6, 4, 0, 8, 5]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes(32),  # stops before the number
        NODE_HEADER[:-1],  # digest cut short
        NODE_HEADER + b"\x00",  # trailing byte
        NODE_HEADER[:-1] + b"\x04\x07",  # unknown digest item index 7
        bytes(32) + b"\x03\x00\x00\x00\x00\x01",  # compact number above u32
    ],
)
def test_header_decode_garbage_raises_scale_error(data: bytes) -> None:
    """Malformed header bytes raise ScaleDecodeError, never an IndexError or similar."""
    with pytest.raises(ScaleDecodeError):
        Header.decode(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_header_decode_random_bytes(data: bytes) -> None:
    """Random bytes decode to a header that re-encodes identically, or raise typed."""
    try:
        header = HEADER.decode(data)
    except ScaleDecodeError:
        return
    assert header.encode() == data


def test_header_encode_rejects_bad_fields() -> None:
    """Numbers above u32 and engine ids of the wrong length cannot be encoded."""
    with pytest.raises(ScaleEncodeError):
        _header(number=BlockNumber(1 << 32)).encode()
    with pytest.raises(ScaleEncodeError):
        _header(digest=(DigestSeal(b"abc", b""),)).encode()
    with pytest.raises(ScaleEncodeError):
        _header(state_root=b"short").encode()


@pytest.mark.parametrize(
    "change",
    [
        {"number": "26"},
        {"number": "0x100000000"},
        {"number": "0xzz"},
        {"number": "0x1_0"},
        {"number": "0x"},
        {"parentHash": "0x" + "00 " * 32},
        {"parentHash": "0x1234"},
        {"stateRoot": None},
        {"extrinsicsRoot": "ab" * 32},
        {"digest": {"logs": ["0x07"]}},
        {"digest": {"logs": "0x00"}},
        {"digest": []},
    ],
)
def test_header_from_json_rejects_malformed(change: dict[str, Any]) -> None:
    """A JSON header with a wrong field raises InvalidHeaderError."""
    data = {**header_to_json(_header()), **change}
    with pytest.raises(InvalidHeaderError):
        header_from_json(data)


def test_header_from_json_accepts_integer_number() -> None:
    """polkadot.js also accepts a plain integer number; so do we."""
    assert header_from_json({**header_to_json(_header()), "number": 26}).number == 26


def test_header_from_json_rejects_non_object() -> None:
    """Not an object at all is an InvalidHeaderError too."""
    with pytest.raises(InvalidHeaderError):
        header_from_json([])  # type: ignore[arg-type]


def test_signed_block_json_matches_substrate_form() -> None:
    """chain_getBlock form: justifications as [[engine bytes], [data bytes]] arrays."""
    block = Block(Header.decode(NODE_HEADER), tuple(NODE_BODY))
    signed = SignedBlock(block, ((b"FRNK", b"\x01\x02\x03"),))
    data = signed_block_to_json(signed)
    assert data["justifications"] == [[[70, 82, 78, 75], [1, 2, 3]]]
    assert data["block"]["extrinsics"] == ["0x" + x.hex() for x in NODE_BODY]
    assert signed_block_from_json(json.loads(json.dumps(data))) == signed
    assert signed.justification(b"FRNK") == b"\x01\x02\x03"
    assert signed.justification(b"BEEF") is None
    hex_form = {**data, "justifications": [["0x46524e4b", "0x010203"]]}
    assert signed_block_from_json(hex_form) == signed
    unjustified = SignedBlock(block, None)
    assert signed_block_to_json(unjustified)["justifications"] is None
    assert signed_block_from_json(signed_block_to_json(unjustified)) == unjustified


def test_block_json_and_scale_round_trip() -> None:
    """A block keeps each extrinsic with its length prefix through JSON and SCALE."""
    block = Block(Header.decode(NODE_HEADER), tuple(NODE_BODY))
    assert block_from_json(block_to_json(block)) == block
    encoded = BLOCK.encode(block)
    assert encoded == NODE_HEADER + b"\x08" + b"".join(NODE_BODY)
    assert BLOCK.decode(encoded) == block
    signed = SignedBlock(block, ((b"FRNK", b"j"),))
    assert SIGNED_BLOCK.decode(SIGNED_BLOCK.encode(signed)) == signed
    assert block.hash().hex() == NEXT_BLOCK_PARENT_HASH


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["block"].update(extrinsics=["0x0c0102"]),  # shorter than its prefix says
        lambda d: d["block"].update(extrinsics="0x00"),
        lambda d: d.update(justifications=[[[70, 82, 78], [1]]]),  # 3-byte engine id
        lambda d: d.update(justifications=[[[70, 82, 78, 75], [256]]]),
        lambda d: d.update(justifications=[[[70, 82, 78, 75]]]),
        lambda d: d.update(block=None),
    ],
)
def test_signed_block_from_json_rejects_malformed(mutate: Any) -> None:
    """Malformed chain_getBlock JSON raises InvalidHeaderError."""
    block = Block(Header.decode(NODE_HEADER), tuple(NODE_BODY))
    data = signed_block_to_json(SignedBlock(block, ((b"FRNK", b"\x01"),)))
    mutate(data)
    with pytest.raises(InvalidHeaderError):
        signed_block_from_json(data)


def test_block_encode_rejects_unprefixed_extrinsic() -> None:
    """An extrinsic without its length prefix cannot be put in a block encoding."""
    block = Block(Header.decode(NODE_HEADER), (b"\x10\x01",))
    with pytest.raises(ScaleEncodeError):
        BLOCK.encode(block)
