"""The dev chain's block and state store: SQLite on disk, one trie per recent block in memory.

On disk (SQLite, WAL, one transaction per imported block, so a crash leaves the previous block
intact):

    blocks(hash, number, header, body, justification)   every block, forever
    state(key, value)                                    the full state of the best block
    undo(number, key, old)                               per block of the retained window: the
                                                         value each changed key had before it
    meta(key, value)                                     best and finalized hash, genesis hash,
                                                         schema and state version

In memory: a `Trie` per retained block (the last `state_window`, >= 256). The trie is
persistent (copy-on-write, structural sharing), so 256 versions cost little more than one, and
every retained block's state can be read and proven. On restart the best block's state is
rebuilt from `state` and checked against its header's state root; the older versions of the
window are rebuilt by applying the undo records backwards. Queries for an older block fail with
Substrate's "State already discarded" error; its header and body stay available.

This choice (full latest state + undo log) keeps restart cost independent of the chain's
length, unlike replaying every block's changes from genesis.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tocw.chain.errors import ChainError
from tocw.primitives.errors import ScaleDecodeError
from tocw.primitives.header import HEADER, Block, Header, SignedBlock
from tocw.primitives.scale import Bytes, Vec
from tocw.primitives.trie import Trie

SCHEMA_VERSION: Final = 1
MIN_STATE_WINDOW: Final = 256
# "archive": keep the state of every block (u32 block numbers never reach it). Workers replay a
# shard from its creation block and need System.Events of every block since, as Integritee's
# workers need an archive node; the dev chain is one by default.
ARCHIVE_STATE_WINDOW: Final = 1 << 32
DEFAULT_STATE_WINDOW: Final = ARCHIVE_STATE_WINDOW
BODY_CODEC: Final = Vec(Bytes)
GRANDPA_ENGINE_ID: Final = b"FRNK"


class StoreError(ChainError):
    """Errors of the block and state store (the package's tree is in tocw.chain.errors)."""


class UnknownBlockError(StoreError):
    """No block with that hash."""


class StateDiscardedError(StoreError):
    """The block is known but its state left the retained window."""


class CorruptStoreError(StoreError):
    """The database contradicts itself (e.g. a state against its state root)."""


@dataclass(frozen=True, slots=True)
class StoredBlock:
    hash: bytes
    number: int
    header: Header
    extrinsics: tuple[bytes, ...]
    justification: bytes | None = None  # SCALE(GrandpaJustification), once finalized

    def signed_block(self) -> SignedBlock:
        """As chain_getBlock returns it: GRANDPA's justification under engine id "FRNK"."""
        justifications = None
        if self.justification is not None:
            justifications = ((GRANDPA_ENGINE_ID, self.justification),)
        return SignedBlock(Block(self.header, self.extrinsics), justifications)


@dataclass(frozen=True, slots=True)
class StateSnapshot:
    """Read access to the state of one block (an immutable trie version)."""

    block_hash: bytes
    trie: Trie

    def get(self, key: bytes) -> bytes | None:
        return self.trie.get(key)

    def keys(
        self, prefix: bytes, start_after: bytes | None = None, limit: int | None = None
    ) -> list[bytes]:
        """Keys under `prefix` in order, only those after `start_after`, at most `limit`."""
        out: list[bytes] = []
        if limit == 0:
            return out
        for key in self.trie.keys(prefix):
            if start_after is not None and key <= start_after:
                continue
            out.append(key)
            if limit is not None and len(out) >= limit:
                break
        return out

    def read_proof(self, keys: list[bytes]) -> list[bytes]:
        return self.trie.proof(keys)

    def root(self) -> bytes:
        return self.trie.root()


class OverlayView:
    """A StorageView over a trie version: reads fall through to the trie, writes are kept in
    `changes` (None = deleted) until the caller applies them. The runtime executes a block
    against one of these, so a failed block leaves nothing behind."""

    __slots__ = ("base", "changes")

    def __init__(self, base: Trie) -> None:
        self.base = base
        self.changes: dict[bytes, bytes | None] = {}

    def get(self, key: bytes) -> bytes | None:
        if key in self.changes:
            return self.changes[key]
        return self.base.get(key)

    def set(self, key: bytes, value: bytes) -> None:
        self.changes[bytes(key)] = bytes(value)

    def delete(self, key: bytes) -> None:
        self.changes[bytes(key)] = None

    def keys_with_prefix(self, prefix: bytes) -> Iterator[bytes]:
        keys = set(self.base.keys(prefix))
        for key, value in self.changes.items():
            if key.startswith(prefix):
                if value is None:
                    keys.discard(key)
                else:
                    keys.add(key)
        return iter(sorted(keys))

    def apply_to(self, trie: Trie) -> Trie:
        """A new trie version: `trie` with this overlay's changes."""
        return with_changes(trie, self.changes)


def with_changes(trie: Trie, changes: Mapping[bytes, bytes | None]) -> Trie:
    """A new trie version (sharing all untouched nodes): `trie` with `changes` applied."""
    new = trie.copy()
    for key, value in changes.items():
        if value is None:
            new.remove(key)
        else:
            new.insert(key, value)
    return new


def effective_changes(
    base: Trie, changes: Mapping[bytes, bytes | None]
) -> dict[bytes, bytes | None]:
    """Only the writes that change something (a write of the same value, or a delete of an
    absent key, is not a change), so undo records and storage notifications stay minimal."""
    return {k: v for k, v in changes.items() if base.get(k) != v}


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    hash BLOB PRIMARY KEY,
    number INTEGER NOT NULL UNIQUE,
    header BLOB NOT NULL,
    body BLOB NOT NULL,
    justification BLOB
);
CREATE TABLE IF NOT EXISTS state (key BLOB PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS undo (
    number INTEGER NOT NULL,
    key BLOB NOT NULL,
    old BLOB,
    PRIMARY KEY (number, key)
);
"""


class ChainStore:
    """Blocks, the canonical chain (one fork: the dev chain has one author) and per-block state.

    Not thread-safe: the node uses it from its event loop only.
    """

    def __init__(
        self,
        path: Path | None,
        *,
        state_version: int = 1,
        state_window: int = DEFAULT_STATE_WINDOW,
    ) -> None:
        if state_window < MIN_STATE_WINDOW:
            raise ValueError(f"state window must be at least {MIN_STATE_WINDOW} blocks")
        self.path = path
        self.state_version = state_version
        self.state_window = state_window
        db = ":memory:" if path is None else str(path)
        self._db = sqlite3.connect(db, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._tries: dict[bytes, Trie] = {}  # block hash -> state, for the retained window
        self._recent: dict[bytes, StoredBlock] = {}  # block hash -> block, same window
        self._hash_by_number: dict[int, bytes] = {}  # same window
        self._best: StoredBlock | None = None
        self._finalized: StoredBlock | None = None
        self._genesis_hash: bytes | None = None

    def close(self) -> None:
        self._db.close()

    # ---- startup ------------------------------------------------------------------------

    def is_empty(self) -> bool:
        row = self._db.execute("SELECT COUNT(*) FROM blocks").fetchone()
        return int(row[0]) == 0

    def initialize(self, genesis: StoredBlock, genesis_state: Mapping[bytes, bytes]) -> None:
        """Write the genesis block and state into an empty store."""
        if not self.is_empty():
            raise StoreError("the store already holds a chain")
        trie = Trie.from_items(genesis_state, self.state_version)
        if trie.root() != genesis.header.state_root:
            raise StoreError("genesis header's state root does not match the genesis state")
        db = self._db
        db.execute("BEGIN")
        try:
            self._insert_block_row(genesis)
            db.executemany("INSERT INTO state (key, value) VALUES (?, ?)", genesis_state.items())
            self._set_meta("schema_version", str(SCHEMA_VERSION).encode())
            self._set_meta("state_version", str(self.state_version).encode())
            self._set_meta("genesis", genesis.hash)
            self._set_meta("best", genesis.hash)
            self._set_meta("finalized", genesis.hash)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._genesis_hash = genesis.hash
        self._remember(genesis, trie)
        self._best = self._finalized = genesis

    def load(self) -> None:
        """Open an existing chain: the best state from `state`, older ones from undo records."""
        schema = self._get_meta("schema_version")
        if schema is None or int(schema) != SCHEMA_VERSION:
            raise CorruptStoreError(f"unsupported store schema {schema!r}")
        version = self._get_meta("state_version")
        if version is None or int(version) != self.state_version:
            raise CorruptStoreError(
                f"store uses state version {version!r}, the runtime {self.state_version}"
            )
        genesis_hash = self._require_meta("genesis")
        best = self._load_block(self._require_meta("best"))
        finalized = self._load_block(self._require_meta("finalized"))
        rows = self._db.execute("SELECT key, value FROM state").fetchall()
        trie = Trie.from_items(((bytes(k), bytes(v)) for k, v in rows), self.state_version)
        if trie.root() != best.header.state_root:
            raise CorruptStoreError(
                f"stored state does not match block #{best.number}'s state root"
            )
        self._genesis_hash = genesis_hash
        self._remember(best, trie)
        current, block = trie, best
        oldest = max(0, best.number - self.state_window + 1)
        while block.number > oldest:
            undo = self._db.execute(
                "SELECT key, old FROM undo WHERE number = ?", (block.number,)
            ).fetchall()
            parent = self._load_block(block.header.parent_hash)
            previous = current.copy()
            for key, old in undo:
                if old is None:
                    previous.remove(bytes(key))
                else:
                    previous.insert(bytes(key), bytes(old))
            if previous.root() != parent.header.state_root:
                raise CorruptStoreError(f"undo records of block #{block.number} are inconsistent")
            self._remember(parent, previous)
            current, block = previous, parent
        self._best = best
        self._finalized = finalized

    # ---- reads --------------------------------------------------------------------------

    @property
    def genesis_hash(self) -> bytes:
        if self._genesis_hash is None:
            raise StoreError("the store is not initialized")
        return self._genesis_hash

    @property
    def best(self) -> StoredBlock:
        if self._best is None:
            raise StoreError("the store is not initialized")
        return self._best

    @property
    def finalized(self) -> StoredBlock:
        if self._finalized is None:
            raise StoreError("the store is not initialized")
        return self._finalized

    def block_hash(self, number: int) -> bytes | None:
        h = self._hash_by_number.get(number)
        if h is not None:
            return h
        row = self._db.execute("SELECT hash FROM blocks WHERE number = ?", (number,)).fetchone()
        return None if row is None else bytes(row[0])

    def block(self, block_hash: bytes) -> StoredBlock | None:
        block = self._recent.get(block_hash)
        if block is not None:
            return block
        row = self._db.execute(
            "SELECT hash, number, header, body, justification FROM blocks WHERE hash = ?",
            (block_hash,),
        ).fetchone()
        return None if row is None else self._row_to_block(row)

    def state(self, block_hash: bytes) -> StateSnapshot:
        trie = self._tries.get(block_hash)
        if trie is not None:
            return StateSnapshot(block_hash, trie)
        if self.block(block_hash) is None:
            raise UnknownBlockError(f"Header was not found in the database: 0x{block_hash.hex()}")
        raise StateDiscardedError(f"State already discarded for 0x{block_hash.hex()}")

    def trie(self, block_hash: bytes) -> Trie:
        return self.state(block_hash).trie

    # ---- writes -------------------------------------------------------------------------

    def commit_block(
        self, block: StoredBlock, state: Trie, changes: Mapping[bytes, bytes | None]
    ) -> None:
        """Append `block` (a child of the best block) with its post-state and the storage
        changes that led to it, in one SQLite transaction."""
        parent = self.best
        if block.header.parent_hash != parent.hash or block.number != parent.number + 1:
            raise StoreError(f"block #{block.number} does not extend the best block")
        parent_trie = self._tries[parent.hash]
        undo = [(block.number, k, parent_trie.get(k)) for k in changes]
        pruned = block.number - self.state_window
        db = self._db
        db.execute("BEGIN")
        try:
            self._insert_block_row(block)
            db.executemany(
                "INSERT INTO state (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [(k, v) for k, v in changes.items() if v is not None],
            )
            db.executemany(
                "DELETE FROM state WHERE key = ?", [(k,) for k, v in changes.items() if v is None]
            )
            db.executemany("INSERT INTO undo (number, key, old) VALUES (?, ?, ?)", undo)
            if pruned >= 0:
                db.execute("DELETE FROM undo WHERE number <= ?", (pruned,))
            self._set_meta("best", block.hash)
            db.execute("COMMIT")
        except sqlite3.Error as e:
            db.execute("ROLLBACK")
            raise StoreError(f"cannot store block #{block.number}: {e}") from e
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._remember(block, state)
        self._best = block
        if pruned >= 0:
            self._forget(pruned)

    def finalize(self, block_hash: bytes, justification: bytes) -> StoredBlock:
        """Mark `block_hash` (a descendant of the finalized block) finalized, storing its
        GRANDPA justification."""
        block = self.block(block_hash)
        if block is None:
            raise UnknownBlockError(f"Header was not found in the database: 0x{block_hash.hex()}")
        if block.number <= self.finalized.number:
            raise StoreError(f"block #{block.number} is not above the finalized block")
        db = self._db
        db.execute("BEGIN")
        try:
            db.execute(
                "UPDATE blocks SET justification = ? WHERE hash = ?", (justification, block_hash)
            )
            self._set_meta("finalized", block_hash)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finalized = StoredBlock(
            block.hash, block.number, block.header, block.extrinsics, justification
        )
        if block_hash in self._recent:
            self._recent[block_hash] = finalized
        if self._best is not None and self._best.hash == block_hash:
            self._best = finalized
        self._finalized = finalized
        return finalized

    # ---- internals ----------------------------------------------------------------------

    def _remember(self, block: StoredBlock, trie: Trie) -> None:
        self._tries[block.hash] = trie
        self._recent[block.hash] = block
        self._hash_by_number[block.number] = block.hash

    def _forget(self, number: int) -> None:
        h = self._hash_by_number.pop(number, None)
        if h is not None:
            self._tries.pop(h, None)
            self._recent.pop(h, None)

    def _insert_block_row(self, block: StoredBlock) -> None:
        self._db.execute(
            "INSERT INTO blocks (hash, number, header, body, justification) VALUES (?, ?, ?, ?, ?)",
            (
                block.hash,
                block.number,
                HEADER.encode(block.header),
                BODY_CODEC.encode(list(block.extrinsics)),
                block.justification,
            ),
        )

    def _row_to_block(self, row: tuple[bytes, int, bytes, bytes, bytes | None]) -> StoredBlock:
        h, number, header, body, justification = row
        try:
            return StoredBlock(
                bytes(h),
                int(number),
                HEADER.decode(bytes(header)),
                tuple(BODY_CODEC.decode(bytes(body))),
                None if justification is None else bytes(justification),
            )
        except ScaleDecodeError as e:
            raise CorruptStoreError(f"block #{number} does not decode: {e}") from None

    def _load_block(self, block_hash: bytes) -> StoredBlock:
        block = self.block(block_hash)
        if block is None:
            raise CorruptStoreError(f"block 0x{block_hash.hex()} is referenced but missing")
        return block

    def _set_meta(self, key: str, value: bytes) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _get_meta(self, key: str) -> bytes | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def _require_meta(self, key: str) -> bytes:
        value = self._get_meta(key)
        if value is None:
            raise CorruptStoreError(f"store lacks its {key!r} record")
        return value
