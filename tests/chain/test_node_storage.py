"""The block and state store: per-block state, restart from disk, pruning, atomicity."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tocw.chain.storage import (
    ChainStore,
    CorruptStoreError,
    OverlayView,
    StateDiscardedError,
    StoredBlock,
    StoreError,
    UnknownBlockError,
    effective_changes,
)
from tocw.primitives.header import Header, extrinsics_root
from tocw.primitives.trie import Trie, verify_proof
from tocw.primitives.types import BlockHash, BlockNumber

WINDOW = 256
GENESIS_STATE = {b"k:a": b"1", b"k:b": b"2", b":code-like": b"x" * 40}


def make_block(parent: StoredBlock, state: Trie, extrinsics: tuple[bytes, ...] = ()) -> StoredBlock:
    header = Header(
        BlockHash(parent.hash),
        BlockNumber(parent.number + 1),
        state.root(),
        extrinsics_root(extrinsics),
    )
    return StoredBlock(header.hash(), parent.number + 1, header, extrinsics)


def genesis_block() -> StoredBlock:
    header = Header(
        BlockHash(bytes(32)),
        BlockNumber(0),
        Trie.from_items(GENESIS_STATE).root(),
        extrinsics_root([]),
    )
    return StoredBlock(header.hash(), 0, header, ())


def append(store: ChainStore, writes: dict[bytes, bytes | None]) -> StoredBlock:
    parent = store.best
    base = store.trie(parent.hash)
    overlay = OverlayView(base)
    for k, v in writes.items():
        if v is None:
            overlay.delete(k)
        else:
            overlay.set(k, v)
    changes = effective_changes(base, overlay.changes)
    overlay.changes = dict(changes)
    state = overlay.apply_to(base)
    block = make_block(parent, state, (b"\x04\x01",))
    store.commit_block(block, state, changes)
    return block


def open_store(path: Path | None) -> ChainStore:
    store = ChainStore(path, state_window=WINDOW)
    if store.is_empty():
        store.initialize(genesis_block(), GENESIS_STATE)
    else:
        store.load()
    return store


def test_storage_state_queryable_at_every_block(tmp_path: Path) -> None:
    """Each block keeps its own state; older blocks see older values."""
    store = open_store(tmp_path / "db")
    b1 = append(store, {b"k:a": b"10"})
    b2 = append(store, {b"k:a": b"20", b"k:b": None, b"k:c": b"new"})
    assert store.state(store.genesis_hash).get(b"k:a") == b"1"
    assert store.state(b1.hash).get(b"k:a") == b"10"
    assert store.state(b2.hash).get(b"k:b") is None
    assert store.state(b2.hash).keys(b"k:") == [b"k:a", b"k:c"]
    assert store.state(b1.hash).keys(b"k:") == [b"k:a", b"k:b"]
    assert store.best == b2 and store.block_hash(1) == b1.hash
    store.close()


def test_storage_restart_continues_with_same_state(tmp_path: Path) -> None:
    """Reopening rebuilds the best state and the window of older states from disk."""
    store = open_store(tmp_path / "db")
    blocks = [append(store, {b"k:a": str(i).encode(), b"n:%d" % i: b"v"}) for i in range(10)]
    store.finalize(blocks[3].hash, b"just")
    store.close()
    again = open_store(tmp_path / "db")
    assert again.best.hash == blocks[-1].hash
    assert again.finalized.hash == blocks[3].hash
    assert again.block(blocks[3].hash).justification == b"just"  # type: ignore[union-attr]
    for i, b in enumerate(blocks):
        assert again.state(b.hash).get(b"k:a") == str(i).encode()
        assert again.state(b.hash).root() == b.header.state_root
    assert again.state(again.genesis_hash).get(b"k:a") == b"1"
    nxt = append(again, {b"k:z": b"z"})
    assert nxt.number == 11
    again.close()


def test_storage_state_discarded_outside_window(tmp_path: Path) -> None:
    """Past the window a block's state is gone with Substrate's wording; its block stays."""
    store = open_store(tmp_path / "db")
    first = append(store, {b"k:a": b"first"})
    for i in range(WINDOW):
        append(store, {b"k:i": str(i).encode()})
    with pytest.raises(StateDiscardedError, match="State already discarded for 0x"):
        store.state(first.hash)
    assert store.block(first.hash) == first
    store.close()
    # The undo log was pruned too, and a restart still rebuilds a full window.
    again = open_store(tmp_path / "db")
    oldest_kept = store.best.number - WINDOW + 1
    assert again.state(again.block_hash(oldest_kept)).get(b"k:a") == b"first"  # type: ignore[arg-type]
    with pytest.raises(StateDiscardedError):
        again.state(first.hash)
    rows = sqlite3.connect(tmp_path / "db").execute("SELECT MIN(number) FROM undo").fetchone()
    assert rows[0] > first.number
    again.close()


def test_storage_unknown_block() -> None:
    """An unknown hash is an UnknownBlockError, not a crash."""
    store = open_store(None)
    with pytest.raises(UnknownBlockError, match="Header was not found"):
        store.state(b"\x01" * 32)
    assert store.block(b"\x01" * 32) is None
    assert store.block_hash(99) is None


def test_storage_rejects_block_not_extending_best() -> None:
    """A block whose parent is not the best block is refused."""
    store = open_store(None)
    b1 = append(store, {b"k:a": b"x"})
    state = store.trie(b1.hash)
    stale = make_block(store.block(store.genesis_hash), state)  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="does not extend"):
        store.commit_block(stale, state, {})


def test_storage_failed_commit_leaves_previous_block(tmp_path: Path) -> None:
    """A failing transaction rolls back: the store still ends at the previous block."""
    store = open_store(tmp_path / "db")
    b1 = append(store, {b"k:a": b"x"})
    dup = StoredBlock(b1.hash, 2, make_block(b1, store.trie(b1.hash)).header, ())
    with pytest.raises(StoreError, match="cannot store block #2"):  # same hash twice
        store.commit_block(dup, store.trie(b1.hash), {b"k:q": b"q"})
    store.close()
    again = open_store(tmp_path / "db")
    assert again.best.hash == b1.hash
    assert again.state(b1.hash).get(b"k:q") is None
    again.close()


def test_storage_detects_state_not_matching_root(tmp_path: Path) -> None:
    """Tampered state on disk is refused at load, not served."""
    store = open_store(tmp_path / "db")
    append(store, {b"k:a": b"x"})
    store.close()
    db = sqlite3.connect(tmp_path / "db")
    db.execute("UPDATE state SET value = ? WHERE key = ?", (b"evil", b"k:a"))
    db.commit()
    db.close()
    with pytest.raises(CorruptStoreError, match="state root"):
        open_store(tmp_path / "db")


def test_storage_read_proof_verifies_against_header_root() -> None:
    """A read proof from a snapshot checks out against that block's state root."""
    store = open_store(None)
    b1 = append(store, {b"k:a": b"v" * 50})
    proof = store.state(b1.hash).read_proof([b"k:a", b"k:missing"])
    values = verify_proof(b1.header.state_root, proof, [b"k:a", b"k:missing"])
    assert values == {b"k:a": b"v" * 50, b"k:missing": None}


def test_storage_overlay_view_merges_changes() -> None:
    """The runtime's view: overlay writes shadow the trie, prefix iteration is merged."""
    base = Trie.from_items({b"p:1": b"a", b"p:2": b"b", b"q": b"c"})
    view = OverlayView(base)
    view.set(b"p:3", b"x")
    view.delete(b"p:1")
    assert view.get(b"p:1") is None and view.get(b"p:3") == b"x" and view.get(b"q") == b"c"
    assert list(view.keys_with_prefix(b"p:")) == [b"p:2", b"p:3"]
    assert base.get(b"p:1") == b"a"  # untouched
    assert effective_changes(base, {b"q": b"c", b"p:9": None, b"p:2": b"z"}) == {b"p:2": b"z"}


def test_storage_keys_paging() -> None:
    """keys() pages after a start key with a limit, in key order."""
    store = open_store(None)
    append(store, {b"m:%02d" % i: b"v" for i in range(10)})
    snap = store.state(store.best.hash)
    assert snap.keys(b"m:", limit=3) == [b"m:00", b"m:01", b"m:02"]
    assert snap.keys(b"m:", start_after=b"m:02", limit=2) == [b"m:03", b"m:04"]
    assert snap.keys(b"m:", start_after=b"m:09") == []
    assert snap.keys(b"m:", limit=0) == []
