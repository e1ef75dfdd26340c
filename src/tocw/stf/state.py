"""The STF's view of one shard's state, and typed storage items over it.

Owns `State`: a bytes -> bytes store with nested copy-on-write transactions, so that a failed
call reverts its own writes while the nonce bump made before it stays, and with a diff since a
checkpoint (`changes()`) that the enclave's state store persists once per parentchain block.
The state root is not computed here: the enclave builds the Substrate trie over `items()`
(tocw.primitives.trie), so every worker compares the same thing.

Also owns `StorageValue`, `StorageMap` and `StorageDoubleMap`: declarations of a module's storage
items that lay keys out like Substrate storage (twox128(namespace) ++ twox128(item) ++
hasher(SCALE(key)) ...), so that every module lives under its own namespace and key layout
questions have the same answers as in a Substrate runtime.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from tocw.primitives.errors import ScaleDecodeError
from tocw.primitives.hashing import (
    Hasher,
    blake2_128_concat,
    identity,
    storage_prefix,
    twox64_concat,
)
from tocw.primitives.scale import Codec
from tocw.stf.errors import StateError

K = TypeVar("K")
K2 = TypeVar("K2")
V = TypeVar("V")


class StateView(Protocol):
    """What getters may do with state: read. `State` implements it."""

    def get(self, key: bytes) -> bytes | None: ...

    def iter_prefix(self, prefix: bytes) -> list[tuple[bytes, bytes]]: ...


class State:
    """A shard's key-value state with nested transactions and a diff since a checkpoint.

    Writes go to the innermost open transaction (a dict overlay, where None marks a deletion);
    `commit()` folds it into the one below, `rollback()` drops it. Only writes that reach the
    base (no transaction open) count as `changes()`.
    """

    __slots__ = ("_base", "_layers", "_original")

    def __init__(self, items: Mapping[bytes, bytes] | Iterable[tuple[bytes, bytes]] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        self._base: dict[bytes, bytes] = {}
        for key, value in pairs:
            _check_bytes(key, value)
            self._base[key] = value
        self._layers: list[dict[bytes, bytes | None]] = []
        # Value at the last checkpoint of every base key written since (None: absent then).
        self._original: dict[bytes, bytes | None] = {}

    # -- reads ----------------------------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        for layer in reversed(self._layers):
            if key in layer:
                return layer[key]
        return self._base.get(key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, bytes) and self.get(key) is not None

    def iter_prefix(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        """Every (key, value) whose key starts with `prefix`, sorted by key.

        A linear scan over the base: fine for the state sizes a Python worker holds, and it
        keeps writes O(1).
        """
        merged: dict[bytes, bytes | None] = {
            k: v for k, v in self._base.items() if k.startswith(prefix)
        }
        for layer in self._layers:
            merged.update((k, v) for k, v in layer.items() if k.startswith(prefix))
        return sorted((k, v) for k, v in merged.items() if v is not None)

    def items(self) -> list[tuple[bytes, bytes]]:
        """All entries as seen now (open transactions included), sorted by key."""
        return self.iter_prefix(b"")

    def __len__(self) -> int:
        return len(self.items())

    # -- writes ---------------------------------------------------------------------------------

    def set(self, key: bytes, value: bytes) -> None:
        _check_bytes(key, value)
        self._write(key, value)

    def delete(self, key: bytes) -> None:
        _check_bytes(key, b"")
        self._write(key, None)

    def _write(self, key: bytes, value: bytes | None) -> None:
        if self._layers:
            self._layers[-1][key] = value
        else:
            self._write_base(key, value)

    def _write_base(self, key: bytes, value: bytes | None) -> None:
        if key not in self._original:
            self._original[key] = self._base.get(key)
        if value is None:
            self._base.pop(key, None)
        else:
            self._base[key] = value

    # -- transactions ---------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Number of open transactions."""
        return len(self._layers)

    def begin(self) -> None:
        self._layers.append({})

    def commit(self) -> None:
        if not self._layers:
            raise StateError("commit without an open transaction")
        top = self._layers.pop()
        if self._layers:
            self._layers[-1].update(top)
        else:
            for key, value in top.items():
                self._write_base(key, value)

    def rollback(self) -> None:
        if not self._layers:
            raise StateError("rollback without an open transaction")
        self._layers.pop()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Commit on normal exit, roll back (and re-raise) on any exception."""
        self.begin()
        try:
            yield
        except BaseException:
            self.rollback()
            raise
        self.commit()

    # -- diffs ----------------------------------------------------------------------------------

    def checkpoint(self) -> None:
        """Start a new diff: `changes()` will report writes made after this point."""
        self._require_no_transaction("checkpoint")
        self._original.clear()

    def changes(self) -> dict[bytes, bytes | None]:
        """Keys whose value differs from the last checkpoint: new value, or None if deleted."""
        self._require_no_transaction("changes")
        out: dict[bytes, bytes | None] = {}
        for key in sorted(self._original):
            now = self._base.get(key)
            if now != self._original[key]:
                out[key] = now
        return out

    def apply_changes(self, changes: Mapping[bytes, bytes | None]) -> None:
        """Apply a diff as produced by `changes()` (how a state store replays its log)."""
        for key, value in changes.items():
            if value is None:
                self.delete(key)
            else:
                self.set(key, value)

    def copy(self) -> State:
        """An independent State holding the current view (no transactions, fresh diff)."""
        return State(self.items())

    def _require_no_transaction(self, what: str) -> None:
        if self._layers:
            raise StateError(f"{what}() with {len(self._layers)} open transaction(s)")


def _check_bytes(key: object, value: object) -> None:
    if not isinstance(key, bytes) or not isinstance(value, bytes):
        raise StateError(
            f"state keys and values are bytes, got {type(key).__name__} -> {type(value).__name__}"
        )


# -- typed storage items ------------------------------------------------------------------------

# How many hash bytes precede the SCALE key in a "transparent" hasher's output; maps stored with
# other hashers cannot be iterated back to their keys (as in Substrate).
_TRANSPARENT_HASH_LEN: dict[Hasher, int] = {blake2_128_concat: 16, twox64_concat: 8, identity: 0}


def _decode_stored(codec: Codec[V], key: bytes, raw: bytes) -> V:
    try:
        return codec.decode(raw)
    except ScaleDecodeError as e:
        raise StateError(f"corrupt state value under key 0x{key.hex()}: {e}") from None


def _decode_key(codec: Codec[K], hasher: Hasher, raw: bytes) -> K:
    hash_len = _TRANSPARENT_HASH_LEN.get(hasher)
    if hash_len is None:
        raise StateError("map keys are only recoverable with a *_concat or identity hasher")
    try:
        return codec.decode(raw[hash_len:])
    except ScaleDecodeError as e:
        raise StateError(f"corrupt state key part 0x{raw.hex()}: {e}") from None


@dataclass(frozen=True, slots=True)
class StorageValue(Generic[V]):
    """A single value: key = twox128(namespace) ++ twox128(item)."""

    namespace: str
    item: str
    codec: Codec[V]
    key: bytes = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", storage_prefix(self.namespace, self.item))

    def get(self, state: StateView) -> V | None:
        raw = state.get(self.key)
        return None if raw is None else _decode_stored(self.codec, self.key, raw)

    def get_or(self, state: StateView, default: V) -> V:
        value = self.get(state)
        return default if value is None else value

    def put(self, state: State, value: V) -> None:
        state.set(self.key, self.codec.encode(value))

    def remove(self, state: State) -> None:
        state.delete(self.key)


@dataclass(frozen=True, slots=True)
class StorageMap(Generic[K, V]):
    """A map: key = twox128(namespace) ++ twox128(item) ++ hasher(SCALE(key))."""

    namespace: str
    item: str
    hasher: Hasher
    key_codec: Codec[K]
    codec: Codec[V]
    prefix: bytes = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", storage_prefix(self.namespace, self.item))

    def key(self, k: K) -> bytes:
        return self.prefix + self.hasher(self.key_codec.encode(k))

    def get(self, state: StateView, k: K) -> V | None:
        key = self.key(k)
        raw = state.get(key)
        return None if raw is None else _decode_stored(self.codec, key, raw)

    def get_or(self, state: StateView, k: K, default: V) -> V:
        value = self.get(state, k)
        return default if value is None else value

    def put(self, state: State, k: K, value: V) -> None:
        state.set(self.key(k), self.codec.encode(value))

    def remove(self, state: State, k: K) -> None:
        state.delete(self.key(k))

    def entries(self, state: StateView) -> list[tuple[K, V]]:
        """Every (key, value) of the map, in storage-key order."""
        return [
            (
                _decode_key(self.key_codec, self.hasher, key[len(self.prefix) :]),
                _decode_stored(self.codec, key, raw),
            )
            for key, raw in state.iter_prefix(self.prefix)
        ]


@dataclass(frozen=True, slots=True)
class StorageDoubleMap(Generic[K, K2, V]):
    """A double map: key = prefix ++ hasher1(SCALE(k1)) ++ hasher2(SCALE(k2)).

    Entries sharing k1 sit under one key prefix, so they can be listed or cleared together.
    """

    namespace: str
    item: str
    hasher1: Hasher
    key1_codec: Codec[K]
    hasher2: Hasher
    key2_codec: Codec[K2]
    codec: Codec[V]
    prefix: bytes = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", storage_prefix(self.namespace, self.item))

    def prefix_of(self, k1: K) -> bytes:
        return self.prefix + self.hasher1(self.key1_codec.encode(k1))

    def key(self, k1: K, k2: K2) -> bytes:
        return self.prefix_of(k1) + self.hasher2(self.key2_codec.encode(k2))

    def get(self, state: StateView, k1: K, k2: K2) -> V | None:
        key = self.key(k1, k2)
        raw = state.get(key)
        return None if raw is None else _decode_stored(self.codec, key, raw)

    def put(self, state: State, k1: K, k2: K2, value: V) -> None:
        state.set(self.key(k1, k2), self.codec.encode(value))

    def remove(self, state: State, k1: K, k2: K2) -> None:
        state.delete(self.key(k1, k2))

    def entries_of(self, state: StateView, k1: K) -> list[tuple[K2, V]]:
        """Every (k2, value) under k1, in storage-key order."""
        prefix = self.prefix_of(k1)
        return [
            (
                _decode_key(self.key2_codec, self.hasher2, key[len(prefix) :]),
                _decode_stored(self.codec, key, raw),
            )
            for key, raw in state.iter_prefix(prefix)
        ]

    def clear_prefix(self, state: State, k1: K) -> None:
        for key, _ in state.iter_prefix(self.prefix_of(k1)):
            state.delete(key)
