"""The dev chain's headers are real: hashes, parent links, roots, read proofs and GRANDPA
justifications all check out with tocw's own light-client primitives, over plain HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, cast

import pytest

from tocw.chain.testing import rpc_call, start_dev_chain
from tocw.primitives.grandpa import (
    GRANDPA_AUTHORITIES_KEY,
    GrandpaJustification,
    authorities_from_storage,
    verify_justification,
)
from tocw.primitives.hashing import storage_prefix
from tocw.primitives.header import extrinsics_root, signed_block_from_json
from tocw.primitives.trie import verify_proof

pytestmark = pytest.mark.e2e

EVENTS_KEY = storage_prefix("System", "Events")


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with start_dev_chain(tmp_path_factory.mktemp("hdr"), block_time=0.2, finality_delay=0.1) as u:
        yield u


def call(url: str, method: str, *params: Any) -> Any:
    return rpc_call(url, method, list(params))


def wait_finalized(url: str, number: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        head = call(url, "chain_getHeader", call(url, "chain_getFinalizedHead"))
        if int(head["number"], 16) >= number:
            return
        time.sleep(0.05)
    raise AssertionError(f"block #{number} not finalized within {timeout}s")


def test_chain_header_chain_checks_out(url: str) -> None:
    """Each header hashes to its block hash, links to its parent, commits to its body."""
    wait_finalized(url, 4)
    parent: bytes | None = None
    for number in range(5):
        block_hash = bytes.fromhex(call(url, "chain_getBlockHash", number)[2:])
        signed = signed_block_from_json(call(url, "chain_getBlock", "0x" + block_hash.hex()))
        header = signed.block.header
        assert header.hash() == block_hash
        assert header.number == number
        if parent is not None:
            assert header.parent_hash == parent
        else:
            assert header.parent_hash == bytes(32)
        assert extrinsics_root(signed.block.extrinsics) == header.extrinsics_root
        if number > 0:
            assert len(signed.block.extrinsics) >= 1  # the timestamp inherent comes first
        parent = block_hash


def test_chain_read_proof_of_events_verifies(url: str) -> None:
    """state_getReadProof for System.Events verifies against the header's state root."""
    wait_finalized(url, 2)
    block_hash = call(url, "chain_getBlockHash", 2)
    header = call(url, "chain_getHeader", block_hash)
    proof = call(url, "state_getReadProof", ["0x" + EVENTS_KEY.hex()], block_hash)
    assert proof["at"] == block_hash
    nodes = [bytes.fromhex(n[2:]) for n in proof["proof"]]
    root = bytes.fromhex(header["stateRoot"][2:])
    values = verify_proof(root, nodes, [EVENTS_KEY])
    stored = call(url, "state_getStorage", "0x" + EVENTS_KEY.hex(), block_hash)
    assert stored is not None
    assert values[EVENTS_KEY] == bytes.fromhex(stored[2:])


def test_chain_finalized_blocks_carry_valid_grandpa_justifications(url: str) -> None:
    """chain_getBlock of a finalized block has a FRNK justification the authority set signs."""
    wait_finalized(url, 3)
    block_hash = call(url, "chain_getBlockHash", 3)
    signed = signed_block_from_json(call(url, "chain_getBlock", block_hash))
    raw = signed.justification(b"FRNK")
    assert raw is not None
    authorities_hex = call(
        url, "state_getStorage", "0x" + GRANDPA_AUTHORITIES_KEY.hex(), block_hash
    )
    authorities = authorities_from_storage(bytes.fromhex(cast(str, authorities_hex)[2:]))
    justification = GrandpaJustification.decode(raw)
    verify_justification(justification, bytes.fromhex(block_hash[2:]), 3, authorities, set_id=0)


def test_chain_unknown_hashes_are_null_or_errors(url: str) -> None:
    """Unknown block hashes: null for headers and blocks, a JSON-RPC error for state."""
    unknown = "0x" + "ab" * 32
    assert call(url, "chain_getHeader", unknown) is None
    assert call(url, "chain_getBlock", unknown) is None
    assert call(url, "chain_getBlockHash", 10**6) is None
    with pytest.raises(RuntimeError, match="4003"):
        call(url, "state_getStorage", "0x" + EVENTS_KEY.hex(), unknown)
