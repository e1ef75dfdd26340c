"""The encrypted state store: commits, roots, rollback, tampering, and kill -9 at any point."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tocw.enclave.errors import (
    BlockOrderError,
    RollbackError,
    ShardExistsError,
    StateCorruptError,
    StateKeyMismatchError,
    UnknownShardError,
)
from tocw.enclave.state_store import StateStore
from tocw.primitives.trie import EMPTY_TRIE_ROOT, trie_root
from tocw.primitives.types import BlockHash, BlockNumber, ShardId

KEY = bytes(range(32))
SHARD_A = ShardId(b"\xaa" * 32)
SHARD_B = ShardId(b"\xbb" * 32)


def bh(n: int) -> BlockHash:
    return BlockHash(n.to_bytes(4, "little") * 8)


def open_store(path: Path, history: int = 64) -> StateStore:
    return StateStore(path / "state.db", KEY, history=history)


def test_state_store_commit_and_reopen(tmp_path: Path) -> None:
    """Committed changes, roots and the head survive closing and reopening."""
    with open_store(tmp_path) as store:
        store.add_shard(SHARD_A, 5, {b"genesis": b"1"})
        assert store.state_root(SHARD_A) == trie_root({b"genesis": b"1"})
        record = store.commit_block(BlockNumber(1), bh(1), b"lc1", {SHARD_A: {b"k": b"v" * 50}})
        assert record.state_root(SHARD_A) == trie_root({b"genesis": b"1", b"k": b"v" * 50})
    with open_store(tmp_path) as store:
        head = store.head()
        assert head is not None and head.number == 1 and head.hash == bh(1)
        assert head.light_client == b"lc1"
        assert dict(store.items(SHARD_A)) == {b"genesis": b"1", b"k": b"v" * 50}
        assert store.shard_record(SHARD_A).creation_block == 5


def test_state_store_deletes_and_empty_root(tmp_path: Path) -> None:
    """Deleting every key gives the empty-trie root; deleting an absent key is a no-op."""
    with open_store(tmp_path) as store:
        store.add_shard(SHARD_A, 0, {b"a": b"1"})
        store.commit_block(BlockNumber(1), bh(1), b"", {SHARD_A: {b"a": None, b"zz": None}})
        assert store.state_root(SHARD_A) == EMPTY_TRIE_ROOT
        assert store.get(SHARD_A, b"a") is None


def test_state_store_block_order_enforced(tmp_path: Path) -> None:
    """A block at or below the head is refused and changes nothing."""
    with open_store(tmp_path) as store:
        store.add_shard(SHARD_A, 0)
        store.commit_block(BlockNumber(3), bh(3), b"", {SHARD_A: {b"a": b"1"}})
        with pytest.raises(BlockOrderError):
            store.commit_block(BlockNumber(3), bh(9), b"", {SHARD_A: {b"a": b"2"}})
        assert store.get(SHARD_A, b"a") == b"1"
        with pytest.raises(UnknownShardError):
            store.commit_block(BlockNumber(4), bh(4), b"", {SHARD_B: {b"a": b"2"}})
        head = store.head()
        assert head is not None and head.number == 3


def test_state_store_shard_exists_and_unknown(tmp_path: Path) -> None:
    """Adding a shard twice and reading an unknown shard are typed errors."""
    with open_store(tmp_path) as store:
        store.add_shard(SHARD_A, 0)
        with pytest.raises(ShardExistsError):
            store.add_shard(SHARD_A, 0)
        with pytest.raises(UnknownShardError):
            store.state_root(SHARD_B)


def test_state_store_wrong_key_refused(tmp_path: Path) -> None:
    """A database written under another state key is refused, not reset."""
    with open_store(tmp_path) as store:
        store.add_shard(SHARD_A, 0, {b"a": b"1"})
    with pytest.raises(StateKeyMismatchError):
        StateStore(tmp_path / "state.db", os.urandom(32))
    with open_store(tmp_path) as store:
        assert store.get(SHARD_A, b"a") == b"1"


def test_state_store_swapped_rows_detected(tmp_path: Path) -> None:
    """Moving an encrypted entry to another row fails authentication on open."""
    with open_store(tmp_path) as store:
        store.add_shard(SHARD_A, 0, {b"a": b"1", b"b": b"2"})
    db = sqlite3.connect(tmp_path / "state.db")
    (h1, e1), (h2, e2) = db.execute("SELECT hkey, entry FROM state ORDER BY hkey").fetchall()
    db.execute("UPDATE state SET entry = ? WHERE hkey = ?", (e2, h1))
    db.execute("UPDATE state SET entry = ? WHERE hkey = ?", (e1, h2))
    db.commit()
    db.close()
    with pytest.raises(StateCorruptError, match="authentication"):
        open_store(tmp_path)


def test_state_store_mixed_versions_detected(tmp_path: Path) -> None:
    """An old (authentic) entry put back in place is caught by the state-root check."""
    with open_store(tmp_path) as store:
        store.add_shard(SHARD_A, 0, {b"a": b"1"})
    db = sqlite3.connect(tmp_path / "state.db")
    old = db.execute("SELECT hkey, entry FROM state").fetchone()
    db.close()
    with open_store(tmp_path) as store:
        store.commit_block(BlockNumber(1), bh(1), b"", {SHARD_A: {b"a": b"2"}})
    db = sqlite3.connect(tmp_path / "state.db")
    db.execute("UPDATE state SET entry = ? WHERE hkey = ?", (old[1], old[0]))
    db.commit()
    db.close()
    with pytest.raises(StateCorruptError, match="committed root"):
        open_store(tmp_path)


def test_state_store_nothing_in_clear(tmp_path: Path) -> None:
    """Neither state keys nor values appear in the database files."""
    key, value = b"secret-key-material-0123", b"secret-value-material-4567"
    with open_store(tmp_path) as store:
        store.add_shard(SHARD_A, 0)
        store.commit_block(BlockNumber(1), bh(1), b"", {SHARD_A: {key: value}})
        store.commit_block(BlockNumber(2), bh(2), b"", {SHARD_A: {key: value + b"!"}})
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert key not in blob and value not in blob


def test_state_store_rollback(tmp_path: Path) -> None:
    """Rolling back restores the exact state, head and roots of a retained block."""
    with open_store(tmp_path, history=4) as store:
        store.add_shard(SHARD_A, 0, {b"x": b"0"})
        roots = {}
        for n in range(1, 8):
            store.commit_block(
                BlockNumber(n), bh(n), b"lc%d" % n, {SHARD_A: {b"x": b"%d" % n, b"n%d" % n: b"1"}}
            )
            roots[n] = store.state_root(SHARD_A)
        assert [r.number for r in store.blocks()] == [4, 5, 6, 7]
        with pytest.raises(RollbackError, match="retained"):
            store.rollback(BlockNumber(3))
        head = store.rollback(BlockNumber(5))
        assert head.number == 5 and head.light_client == b"lc5"
        assert store.state_root(SHARD_A) == roots[5]
        assert store.get(SHARD_A, b"x") == b"5" and store.get(SHARD_A, b"n6") is None
        store.commit_block(BlockNumber(6), bh(66), b"", {SHARD_A: {b"y": b"1"}})
    with open_store(tmp_path, history=4) as store:
        reopened = store.head()
        assert reopened is not None and reopened.hash == bh(66)
        assert store.get(SHARD_A, b"y") == b"1"


def test_state_store_rollback_removes_later_shards(tmp_path: Path) -> None:
    """A shard added after the rollback target is removed; one added at it keeps its genesis."""
    with open_store(tmp_path) as store:
        store.add_shard(SHARD_A, 0)
        store.commit_block(BlockNumber(1), bh(1), b"", {})
        store.add_shard(SHARD_B, 1, {b"b": b"0"})
        store.commit_block(BlockNumber(2), bh(2), b"", {SHARD_B: {b"b": b"2"}})
        store.rollback(BlockNumber(1))
        assert store.shards() == [SHARD_A, SHARD_B]
        assert store.get(SHARD_B, b"b") == b"0"
        store.commit_block(BlockNumber(2), bh(2), b"", {})
        store.add_shard(ShardId(b"\xcc" * 32), 2)
        store.rollback(BlockNumber(1))
        assert store.shards() == [SHARD_A, SHARD_B]


@settings(max_examples=25, deadline=None)
@given(
    blocks=st.lists(
        st.dictionaries(
            st.sampled_from([b"a", b"b", b"c", b"d" * 40, b""]),
            st.one_of(st.none(), st.binary(max_size=70)),
            max_size=4,
        ),
        min_size=1,
        max_size=10,
    ),
    target=st.integers(0, 9),
)
def test_state_store_rollback_matches_model(
    tmp_path_factory: pytest.TempPathFactory, blocks: list[dict[bytes, bytes | None]], target: int
) -> None:
    """For random block sequences, rollback to any retained block equals replaying up to it."""
    path = tmp_path_factory.mktemp("model")
    models: list[dict[bytes, bytes]] = [{}]
    with open_store(path, history=64) as store:
        store.add_shard(SHARD_A, 0)
        store.commit_block(BlockNumber(0), bh(0), b"", {})
        for n, changes in enumerate(blocks, start=1):
            store.commit_block(BlockNumber(n), bh(n), b"", {SHARD_A: changes})
            model = dict(models[-1])
            for k, v in changes.items():
                if v is None:
                    model.pop(k, None)
                else:
                    model[k] = v
            models.append(model)
            assert dict(store.items(SHARD_A)) == model
        target = min(target, len(blocks))
        store.rollback(BlockNumber(target))
        assert dict(store.items(SHARD_A)) == models[target]
        assert store.state_root(SHARD_A) == trie_root(models[target])


# -- kill -9 ---------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import random, sys
    from pathlib import Path
    from tocw.enclave.state_store import StateStore

    path, key, shard = Path(sys.argv[1]), bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3])

    def changes(n):
        rng = random.Random(n)
        out = {}
        for _ in range(rng.randint(1, 12)):
            k = b"k%d" % rng.randint(0, 60)
            out[k] = None if rng.random() < 0.2 else rng.randbytes(rng.randint(0, 80))
        return out

    store = StateStore(path, key, history=8)
    if not store.has_shard(shard):
        store.add_shard(shard, 0)
    while True:
        head = store.head()
        n = 0 if head is None else head.number + 1
        store.commit_block(n, n.to_bytes(32, "little"), b"lc%d" % n, {shard: changes(n)})
        print(n, flush=True)
    """
)


def model_state(upto: int) -> dict[bytes, bytes]:
    """The state the child reaches after committing blocks 0..upto (its changes replayed)."""
    state: dict[bytes, bytes] = {}
    for n in range(upto + 1):
        rng = random.Random(n)
        for _ in range(rng.randint(1, 12)):
            k = b"k%d" % rng.randint(0, 60)
            if rng.random() < 0.2:
                state.pop(k, None)
            else:
                state[k] = rng.randbytes(rng.randint(0, 80))
    return state


def test_state_store_survives_kill_9(tmp_path: Path) -> None:
    """SIGKILL at random points: reopening gives the last committed block, never a mix."""
    db = tmp_path / "state.db"
    rng = random.Random(1234)
    last_seen = -1
    for _round in range(6):
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(db), KEY.hex(), SHARD_A.hex()],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            wanted = rng.randint(1, 25)
            deadline = time.monotonic() + 60
            seen = 0
            while seen < wanted:
                line = proc.stdout.readline()
                assert line, f"child exited early: {proc.stderr.read() if proc.stderr else ''}"
                last_seen = int(line)
                seen += 1
                assert time.monotonic() < deadline, "child too slow"
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait(timeout=10)
            if proc.stdout:
                proc.stdout.close()
            if proc.stderr:
                proc.stderr.close()
        with StateStore(db, KEY, history=8) as store:  # verifies every root on open
            head = store.head()
            assert head is not None
            assert head.number >= last_seen  # a printed block is committed
            assert head.hash == head.number.to_bytes(32, "little")
            assert head.light_client == b"lc%d" % head.number
            expected = model_state(head.number)
            assert dict(store.items(SHARD_A)) == expected
            assert head.state_root(SHARD_A) == trie_root(expected)
            assert len(store.blocks()) == min(8, head.number + 1)
        last_seen = head.number
