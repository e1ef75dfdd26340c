"""The state store: every shard's key-value state, encrypted in SQLite, one commit per block.

Owns the on-disk state of the enclave (ARCHITECTURE.md "State"): per shard a bytes -> bytes map
whose state root is the Substrate trie root (state version 1, tocw.primitives.trie), plus, per
processed parentchain block, a `BlockRecord` (number, hash, the light-client state and every
shard's state root). One SQLite transaction per block holds the state changes of all shards
and the block's record, so reopening after a crash at any point (kill -9 included) yields the
last committed block's state, never a mix. The database runs in WAL mode with synchronous=FULL,
so a committed block survives power loss too: the enclave confirms a block on chain only after
this commit returned.

The database lives in the host-visible data dir and is opened by the enclave directly (like
Integritee's sealed state files), so everything in it is protected with the state key:

- a state entry is stored under hkey = HMAC-SHA256(index key, shard ‖ key), so the host sees
  neither keys nor values, as AES-256-GCM(nonce, SCALE((key, value)), AAD = "state" ‖ shard ‖
  hkey): an entry moved to another row or shard fails authentication;
- block records are sealed with AAD = "block" ‖ number, shard records with "shard" ‖ shard;
- a key-check row detects a database written under another state key before anything is
  misread (StateKeyMismatchError, never a silent reset);
- each row gets a fresh random 96-bit nonce (Integritee reuses one IV per key).

Mixing rows of different versions (each individually authentic) is caught by recomputing each
shard's trie root on open and comparing it with the authenticated record. Replaying a whole
older database is outside what sealing can prevent (it needs a monotonic counter the TEE does
not offer); the light client then resumes from that older block and re-processes.

History: for the last `history` blocks (default 64) the store keeps their records and an undo
journal (for every entry a block changed, its previous ciphertext), so `rollback(number)`
restores the exact state after any retained block; that is a snapshot per block without
storing every state in full.
"""

from __future__ import annotations

import hmac
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tocw.enclave.errors import (
    BlockOrderError,
    EnclaveUsageError,
    RollbackError,
    ShardExistsError,
    StateCorruptError,
    StateKeyMismatchError,
    UnknownShardError,
)
from tocw.primitives.errors import PrimitivesError
from tocw.primitives.scale import H256, U32, Bytes, Option, Tuple, Vec, struct
from tocw.primitives.trie import Trie
from tocw.primitives.types import AccountId, BlockHash, BlockNumber, ShardId

SCHEMA_VERSION = 1
DEFAULT_HISTORY = 64
NONCE_LEN = 12
STATE_KEY_LEN = 32
MAX_BLOCK_NUMBER = (1 << 32) - 1

_KEY_CHECK_PLAINTEXT = b"tocw state key check v1"
_AEAD_INFO = b"tocw state aead v1"
_INDEX_INFO = b"tocw state index v1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS shards (shard BLOB PRIMARY KEY, record BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (
    shard BLOB NOT NULL, hkey BLOB NOT NULL, entry BLOB NOT NULL, PRIMARY KEY (shard, hkey)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blocks (number INTEGER PRIMARY KEY, record BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS journal (
    number INTEGER NOT NULL, seq INTEGER NOT NULL, shard BLOB NOT NULL, hkey BLOB NOT NULL,
    prev BLOB, PRIMARY KEY (number, seq)
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class BlockRecord:
    """What one committed parentchain block left behind.

    light_client: the light client's state after this block, opaque to the store.
    state_roots: (shard, state root) of every shard that existed after the block, sorted.
    """

    number: BlockNumber
    hash: BlockHash
    light_client: bytes
    state_roots: list[tuple[ShardId, bytes]]

    def state_root(self, shard: ShardId) -> bytes | None:
        for s, root in self.state_roots:
            if s == shard:
                return root
        return None


@dataclass(frozen=True, slots=True)
class ShardRecord:
    """A shard's registration: its parentchain creation block, its config, when we added it.

    root_account: the shard's root (the only account allowed to call balance_set_balance).
    added_after: number of the head block when the shard was added (None if there was none);
        rolling back to before it removes the shard again.
    initial_root: the state root it started with (until a block record carries one).
    """

    shard: ShardId
    creation_block: BlockNumber
    root_account: AccountId
    added_after: BlockNumber | None
    initial_root: bytes


BLOCK_RECORD_CODEC = struct(
    BlockRecord,
    number=U32,
    hash=H256,
    light_client=Bytes,
    state_roots=Vec(Tuple(H256, H256)),
)
SHARD_RECORD_CODEC = struct(
    ShardRecord,
    shard=H256,
    creation_block=U32,
    root_account=H256,
    added_after=Option(U32),
    initial_root=H256,
)
_ENTRY_CODEC = Tuple(Bytes, Bytes)

Changes = Mapping[bytes, bytes | None]

# A shard without a root account: nobody can call balance_set_balance on it.
NO_ROOT_ACCOUNT = AccountId(bytes(32))


def _hkdf(key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)


def _u32(n: int) -> bytes:
    return n.to_bytes(4, "little")


def _check_shard(shard: bytes) -> ShardId:
    if not isinstance(shard, bytes) or len(shard) != 32:
        raise EnclaveUsageError("a shard id is 32 bytes")
    return ShardId(shard)


class StateStore:
    """The encrypted per-shard state database; safe to share between threads (one lock)."""

    def __init__(self, path: Path, state_key: bytes, *, history: int = DEFAULT_HISTORY) -> None:
        """Open (or create) the database at `path`; verify the key and every shard's root."""
        if not isinstance(state_key, bytes) or len(state_key) != STATE_KEY_LEN:
            raise EnclaveUsageError(f"the state key is {STATE_KEY_LEN} bytes")
        if history < 1:
            raise EnclaveUsageError("history must keep at least one block")
        self.path = Path(path)
        self.history = history
        self._aead = AESGCM(_hkdf(state_key, _AEAD_INFO))
        self._index_key = _hkdf(state_key, _INDEX_INFO)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self._check_key()
            self._tries: dict[ShardId, Trie] = {}
            self._shards: dict[ShardId, ShardRecord] = {}
            self._head: BlockRecord | None = None
            self._load()
        except BaseException:
            self._db.close()
            raise

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- encryption -----------------------------------------------------------------------------

    def _seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_LEN)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def _open(self, blob: bytes, aad: bytes, what: str) -> bytes:
        try:
            return self._aead.decrypt(blob[:NONCE_LEN], blob[NONCE_LEN:], aad)
        except (InvalidTag, ValueError):
            raise StateCorruptError(f"{what} fails authentication (modified or moved)") from None

    def _hkey(self, shard: ShardId, key: bytes) -> bytes:
        return hmac.new(self._index_key, shard + key, sha256).digest()

    def _entry_aad(self, shard: ShardId, hkey: bytes) -> bytes:
        return b"state" + shard + hkey

    def _check_key(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE name = 'key-check'").fetchone()
        if row is None:
            used = any(
                self._db.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone()
                for table in ("shards", "state", "blocks", "journal")
            )
            if used:
                raise StateCorruptError("state database has data but no key-check row")
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO meta VALUES ('key-check', ?), ('schema-version', ?)",
                (self._seal(_KEY_CHECK_PLAINTEXT, b"key-check"), _u32(SCHEMA_VERSION)),
            )
            self._db.execute("COMMIT")
            return
        version = self._db.execute(
            "SELECT value FROM meta WHERE name = 'schema-version'"
        ).fetchone()
        if version is None or version[0] != _u32(SCHEMA_VERSION):
            raise StateCorruptError(f"state database schema is not version {SCHEMA_VERSION}")
        blob = bytes(row[0])
        try:
            plain = self._aead.decrypt(blob[:NONCE_LEN], blob[NONCE_LEN:], b"key-check")
        except (InvalidTag, ValueError):
            raise StateKeyMismatchError(
                f"state database {self.path} was written under another state key; refusing to "
                "open it (a fresh key cannot read it and resetting would lose the state)"
            ) from None
        if plain != _KEY_CHECK_PLAINTEXT:
            raise StateKeyMismatchError("state database key check holds unexpected content")

    # -- loading --------------------------------------------------------------------------------

    def _decode_block(self, number: int, blob: bytes) -> BlockRecord:
        plain = self._open(blob, b"block" + _u32(number), f"block record {number}")
        try:
            record = BLOCK_RECORD_CODEC.decode(plain)
        except PrimitivesError as e:
            raise StateCorruptError(f"block record {number} is malformed: {e}") from None
        if record.number != number:
            raise StateCorruptError(f"block record {number} claims number {record.number}")
        return record

    def _decode_entry(self, shard: ShardId, hkey: bytes, blob: bytes) -> tuple[bytes, bytes]:
        plain = self._open(blob, self._entry_aad(shard, hkey), f"state entry of {shard.hex()}")
        try:
            key, value = _ENTRY_CODEC.decode(plain)
        except PrimitivesError as e:
            raise StateCorruptError(f"state entry of {shard.hex()} is malformed: {e}") from None
        if not hmac.compare_digest(self._hkey(shard, key), hkey):
            raise StateCorruptError(f"state entry of {shard.hex()} sits under a foreign index")
        return key, value

    def _load(self) -> None:
        """(Re)load the head, the shards and their tries; verify each root against the record."""
        row = self._db.execute(
            "SELECT number, record FROM blocks ORDER BY number DESC LIMIT 1"
        ).fetchone()
        self._head = None if row is None else self._decode_block(row[0], bytes(row[1]))
        shards: dict[ShardId, ShardRecord] = {}
        for shard_b, blob in self._db.execute("SELECT shard, record FROM shards"):
            shard = ShardId(bytes(shard_b))
            plain = self._open(bytes(blob), b"shard" + shard, f"shard record {shard.hex()}")
            try:
                record = SHARD_RECORD_CODEC.decode(plain)
            except PrimitivesError as e:
                raise StateCorruptError(f"shard record {shard.hex()} is malformed: {e}") from None
            if record.shard != shard:
                raise StateCorruptError(f"shard record {shard.hex()} names {record.shard.hex()}")
            shards[shard] = record
        tries: dict[ShardId, Trie] = {}
        for shard, record in shards.items():
            items = [
                self._decode_entry(shard, bytes(hkey), bytes(entry))
                for hkey, entry in self._db.execute(
                    "SELECT hkey, entry FROM state WHERE shard = ?", (shard,)
                )
            ]
            trie = Trie.from_items(items)
            expected = self._expected_root(record)
            if trie.root() != expected:
                raise StateCorruptError(
                    f"state of shard {shard.hex()} hashes to 0x{trie.root().hex()}, but the "
                    f"committed root is 0x{expected.hex()} (rows of different versions mixed)"
                )
            tries[shard] = trie
        known = {ShardId(bytes(s)) for (s,) in self._db.execute("SELECT DISTINCT shard FROM state")}
        if known - set(shards):
            raise StateCorruptError("state rows exist for a shard without a shard record")
        self._shards = shards
        self._tries = tries

    def _expected_root(self, record: ShardRecord) -> bytes:
        if self._head is not None:
            root = self._head.state_root(record.shard)
            if root is not None:
                return root
            if record.added_after is None or record.added_after < self._head.number:
                raise StateCorruptError(
                    f"head block {self._head.number} has no state root for shard "
                    f"{record.shard.hex()}"
                )
        return record.initial_root

    # -- queries --------------------------------------------------------------------------------

    def head(self) -> BlockRecord | None:
        """The last committed block, or None before the first commit."""
        with self._lock:
            return self._head

    def shards(self) -> list[ShardId]:
        with self._lock:
            return sorted(self._shards)

    def shard_record(self, shard: ShardId) -> ShardRecord:
        with self._lock:
            record = self._shards.get(shard)
            if record is None:
                raise UnknownShardError(f"unknown shard 0x{bytes(shard).hex()}")
            return record

    def has_shard(self, shard: ShardId) -> bool:
        with self._lock:
            return shard in self._shards

    def state_root(self, shard: ShardId) -> bytes:
        """The shard's current state root (after the head block)."""
        with self._lock:
            return self._trie(shard).root()

    def items(self, shard: ShardId) -> Iterator[tuple[bytes, bytes]]:
        """The shard's current state, in key order (a snapshot: later commits do not show)."""
        with self._lock:
            return self._trie(shard).copy().items()

    def get(self, shard: ShardId, key: bytes) -> bytes | None:
        with self._lock:
            return self._trie(shard).get(key)

    def blocks(self) -> list[BlockRecord]:
        """The retained block records, oldest first (the possible rollback targets)."""
        with self._lock:
            return [
                self._decode_block(n, bytes(blob))
                for n, blob in self._db.execute("SELECT number, record FROM blocks ORDER BY number")
            ]

    def _trie(self, shard: ShardId) -> Trie:
        trie = self._tries.get(shard)
        if trie is None:
            raise UnknownShardError(f"unknown shard 0x{bytes(shard).hex()}")
        return trie

    # -- writes ---------------------------------------------------------------------------------

    def add_shard(
        self,
        shard: ShardId,
        creation_block: int,
        initial: Mapping[bytes, bytes] | None = None,
        root_account: AccountId = NO_ROOT_ACCOUNT,
    ) -> ShardRecord:
        """Register a shard with its initial state, in one transaction of its own."""
        shard = _check_shard(shard)
        if not isinstance(root_account, bytes) or len(root_account) != 32:
            raise EnclaveUsageError("a root account is 32 bytes")
        if not 0 <= creation_block <= MAX_BLOCK_NUMBER:
            raise EnclaveUsageError(f"creation block {creation_block} is not a u32")
        with self._lock:
            if shard in self._shards:
                raise ShardExistsError(f"shard 0x{shard.hex()} is already initialised")
            items = dict(initial or {})
            trie = Trie.from_items(items)
            head_number = None if self._head is None else self._head.number
            record = ShardRecord(
                shard, BlockNumber(creation_block), root_account, head_number, trie.root()
            )
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO shards VALUES (?, ?)",
                    (shard, self._seal(SHARD_RECORD_CODEC.encode(record), b"shard" + shard)),
                )
                for key, value in sorted(items.items()):
                    hkey = self._hkey(shard, key)
                    entry = self._seal(
                        _ENTRY_CODEC.encode((key, value)), self._entry_aad(shard, hkey)
                    )
                    self._db.execute("INSERT INTO state VALUES (?, ?, ?)", (shard, hkey, entry))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._shards[shard] = record
            self._tries[shard] = trie
            return record

    def commit_block(
        self,
        number: int,
        block_hash: BlockHash,
        light_client: bytes,
        changes: Mapping[ShardId, Changes],
    ) -> BlockRecord:
        """Persist one processed block atomically: every shard's changes and the block record.

        `changes` maps shard -> key -> new value (None deletes). Returns the committed record,
        whose state roots are what the enclave confirms. Nothing is visible (in memory or on
        disk) unless the whole transaction committed.
        """
        if not 0 <= number <= MAX_BLOCK_NUMBER:
            raise EnclaveUsageError(f"block number {number} is not a u32")
        if not isinstance(block_hash, bytes) or len(block_hash) != 32:
            raise EnclaveUsageError("a block hash is 32 bytes")
        with self._lock:
            if self._head is not None and number <= self._head.number:
                raise BlockOrderError(
                    f"block {number} does not follow the committed head {self._head.number}"
                )
            unknown = set(changes) - set(self._shards)
            if unknown:
                raise UnknownShardError(
                    f"changes for unknown shard(s) {sorted(s.hex() for s in unknown)}"
                )
            new_tries = dict(self._tries)
            for shard, shard_changes in changes.items():
                if shard_changes:
                    trie = self._tries[shard].copy()
                    for key, value in shard_changes.items():
                        if value is None:
                            trie.remove(key)
                        else:
                            trie.insert(key, value)
                    new_tries[shard] = trie
            record = BlockRecord(
                BlockNumber(number),
                BlockHash(bytes(block_hash)),
                bytes(light_client),
                [(s, new_tries[s].root()) for s in sorted(new_tries)],
            )
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._write_changes(number, changes)
                self._db.execute(
                    "INSERT INTO blocks VALUES (?, ?)",
                    (
                        number,
                        self._seal(BLOCK_RECORD_CODEC.encode(record), b"block" + _u32(number)),
                    ),
                )
                self._prune()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._tries = new_tries
            self._head = record
            return record

    def _write_changes(self, number: int, changes: Mapping[ShardId, Changes]) -> None:
        seq = 0
        for shard in sorted(changes):
            for key, value in sorted(changes[shard].items()):
                hkey = self._hkey(shard, key)
                row = self._db.execute(
                    "SELECT entry FROM state WHERE shard = ? AND hkey = ?", (shard, hkey)
                ).fetchone()
                prev = None if row is None else bytes(row[0])
                if value is None and prev is None:
                    continue
                self._db.execute(
                    "INSERT INTO journal VALUES (?, ?, ?, ?, ?)", (number, seq, shard, hkey, prev)
                )
                seq += 1
                if value is None:
                    self._db.execute(
                        "DELETE FROM state WHERE shard = ? AND hkey = ?", (shard, hkey)
                    )
                else:
                    entry = self._seal(
                        _ENTRY_CODEC.encode((key, value)), self._entry_aad(shard, hkey)
                    )
                    self._db.execute(
                        "INSERT OR REPLACE INTO state VALUES (?, ?, ?)", (shard, hkey, entry)
                    )

    def _prune(self) -> None:
        self._db.execute(
            "DELETE FROM blocks WHERE number NOT IN "
            "(SELECT number FROM blocks ORDER BY number DESC LIMIT ?)",
            (self.history,),
        )
        oldest = self._db.execute("SELECT MIN(number) FROM blocks").fetchone()[0]
        self._db.execute("DELETE FROM journal WHERE number <= ?", (oldest,))

    def rollback(self, number: int) -> BlockRecord:
        """Restore the state right after retained block `number` (and forget later blocks).

        Shards added after that block are removed. Returns the restored head record.
        """
        with self._lock:
            target = self._db.execute(
                "SELECT record FROM blocks WHERE number = ?", (number,)
            ).fetchone()
            if target is None:
                retained = [r.number for r in self.blocks()]
                raise RollbackError(
                    f"block {number} is not in the retained history ({retained[0]}..{retained[-1]})"
                    if retained
                    else f"block {number} is not in the retained history (none)"
                )
            self._db.execute("BEGIN IMMEDIATE")
            try:
                undo = self._db.execute(
                    "SELECT shard, hkey, prev FROM journal WHERE number > ? "
                    "ORDER BY number DESC, seq DESC",
                    (number,),
                ).fetchall()
                for shard, hkey, prev in undo:
                    if prev is None:
                        self._db.execute(
                            "DELETE FROM state WHERE shard = ? AND hkey = ?", (shard, hkey)
                        )
                    else:
                        self._db.execute(
                            "INSERT OR REPLACE INTO state VALUES (?, ?, ?)", (shard, hkey, prev)
                        )
                for shard, record in self._shards.items():
                    if record.added_after is not None and record.added_after > number:
                        self._db.execute("DELETE FROM state WHERE shard = ?", (shard,))
                        self._db.execute("DELETE FROM shards WHERE shard = ?", (shard,))
                self._db.execute("DELETE FROM journal WHERE number > ?", (number,))
                self._db.execute("DELETE FROM blocks WHERE number > ?", (number,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._load()
            assert self._head is not None
            return self._head
