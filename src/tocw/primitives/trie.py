"""The Substrate base-16 Patricia Merkle trie (blake2_256): roots, an incremental trie, proofs.

Written by hand because no maintained Python library implements Substrate's trie layout (the
`trie-db` / `sp-trie` node codec with state versions 0 and 1). Both sides of the light client
need it: the dev chain computes its state and extrinsics roots with it and serves
`state_getReadProof`; the enclave checks read proofs against a header's state root with it.

The rules (ARCHITECTURE.md, notes/trie-and-finality.md, Polkadot spec "Merkle radix-16 trie"):
keys are split into nibbles, high nibble first; there are no extension nodes (a branch carries
its shared partial key); a node's header byte packs a 2-bit kind (leaf 01, branch 10, branch
with value 11) and the partial-key length, state version 1 adding "leaf with hashed value" (001)
and "branch with hashed value" (0001) for values of 33 bytes or more, which are then referenced
by their blake2_256 and stored (and proven) separately. A child whose encoding is shorter than
32 bytes is inlined in its parent, otherwise referenced by hash; the root is always hashed.

Nibble paths are held as lowercase hex strings (one character per nibble): slicing, prefix tests
and ordering are then native string operations, which is what keeps this fast enough in Python.

Errors (all under `tocw.primitives.errors.PrimitivesError`):

    TrieError                    misuse of the trie (e.g. a key too long to encode)
    ├── InvalidTrieNodeError     bytes are not a valid node encoding (also a ValueError)
    └── InvalidProofError        a read proof is incomplete or inconsistent with the root
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from tocw.primitives.errors import PrimitivesError, ScaleDecodeError
from tocw.primitives.hashing import blake2_256
from tocw.primitives.scale import Reader, compact_bytes, encode_compact, read_compact

__all__ = [
    "EMPTY_TRIE_ROOT",
    "VALUE_HASH_THRESHOLD",
    "InvalidProofError",
    "InvalidTrieNodeError",
    "NodeKind",
    "Trie",
    "TrieError",
    "TrieNode",
    "decode_node",
    "encode_node",
    "generate_proof",
    "ordered_trie_root",
    "trie_root",
    "verify_proof",
]

# blake2_256(0x00): the root of a trie without any entry.
EMPTY_TRIE_ROOT = bytes.fromhex("03170a2e7597b7b7e3d84c05391d139a62b157e78786d8c082f29dcf4c111314")

# sp_core::storage::TRIE_VALUE_NODE_THRESHOLD: in state version 1, values of at least this many
# bytes are stored in the node as their blake2_256 hash.
VALUE_HASH_THRESHOLD = 33

# trie_constants::NIBBLE_SIZE_BOUND: the largest partial key (in nibbles) a header can announce.
NIBBLE_SIZE_BOUND = 0xFFFF

_HASH_LEN = 32
_EMPTY_NODE = b"\x00"

# Header prefixes and the number of low bits each leaves for the partial-key length.
_LEAF = 0b01 << 6
_BRANCH_NO_VALUE = 0b10 << 6
_BRANCH_WITH_VALUE = 0b11 << 6
_LEAF_HASHED = 0b001 << 5
_BRANCH_HASHED = 0b0001 << 4

_HEX_INDEX = {c: i for i, c in enumerate("0123456789abcdef")}
_HEX_CHARS = "0123456789abcdef"


class TrieError(PrimitivesError):
    """Root of the trie's errors."""


class InvalidTrieNodeError(TrieError, ValueError):
    """Bytes that are not a valid (canonical) trie node encoding."""


class InvalidProofError(TrieError):
    """A read proof misses a node on a key's path, or a node on the path is malformed."""


def _check_version(state_version: int) -> int:
    if state_version not in (0, 1):
        raise TrieError(f"unknown state version {state_version!r} (expected 0 or 1)")
    return state_version


# --- node encoding -------------------------------------------------------------------------


def _encode_header(prefix: int, bits: int, nibbles: int, out: bytearray) -> None:
    if nibbles > NIBBLE_SIZE_BOUND:
        raise TrieError(f"partial key of {nibbles} nibbles exceeds the encodable bound")
    cap = (1 << bits) - 1
    if nibbles < cap:
        out.append(prefix | nibbles)
        return
    out.append(prefix | cap)
    rest = nibbles - cap
    while rest >= 255:
        out.append(255)
        rest -= 255
    out.append(rest)


def _encode_partial(partial: str) -> bytes:
    # An odd-length partial key puts its first nibble alone in the low half of the first byte.
    return bytes.fromhex("0" + partial if len(partial) & 1 else partial)


def _encode_value(value: bytes, state_version: int, out: bytearray) -> None:
    if state_version == 1 and len(value) >= VALUE_HASH_THRESHOLD:
        out += blake2_256(value)
    else:
        encode_compact(len(value), out)
        out += value


def _encode_leaf(partial: str, value: bytes, state_version: int) -> bytes:
    out = bytearray()
    if state_version == 1 and len(value) >= VALUE_HASH_THRESHOLD:
        _encode_header(_LEAF_HASHED, 5, len(partial), out)
    else:
        _encode_header(_LEAF, 6, len(partial), out)
    out += _encode_partial(partial)
    _encode_value(value, state_version, out)
    return bytes(out)


def _encode_branch(
    partial: str, value: bytes | None, refs: Sequence[bytes | None], state_version: int
) -> bytes:
    out = bytearray()
    if value is None:
        _encode_header(_BRANCH_NO_VALUE, 6, len(partial), out)
    elif state_version == 1 and len(value) >= VALUE_HASH_THRESHOLD:
        _encode_header(_BRANCH_HASHED, 4, len(partial), out)
    else:
        _encode_header(_BRANCH_WITH_VALUE, 6, len(partial), out)
    out += _encode_partial(partial)
    bitmap = 0
    for i, ref in enumerate(refs):
        if ref is not None:
            bitmap |= 1 << i
    out += bitmap.to_bytes(2, "little")
    if value is not None:
        _encode_value(value, state_version, out)
    for ref in refs:
        if ref is not None:
            encode_compact(len(ref), out)
            out += ref
    return bytes(out)


# --- decoded nodes (the public, explicit form) ---------------------------------------------


class NodeKind(enum.Enum):
    EMPTY = "empty"
    LEAF = "leaf"
    BRANCH = "branch"


@dataclass(frozen=True, slots=True)
class TrieNode:
    """One decoded node.

    `partial_key` is the node's partial key as a hex string, one character per nibble.
    `value` is the stored value, or its blake2_256 when `value_hashed` (state version 1).
    `children` has 16 entries: None, a child's inline encoding (< 32 bytes) or its hash.
    """

    kind: NodeKind
    partial_key: str = ""
    value: bytes | None = None
    value_hashed: bool = False
    children: tuple[bytes | None, ...] = (None,) * 16


def encode_node(node: TrieNode) -> bytes:
    """The canonical encoding of a decoded node (inverse of `decode_node`)."""
    if node.kind is NodeKind.EMPTY:
        return _EMPTY_NODE
    for c in node.partial_key:
        if c not in _HEX_INDEX:
            raise TrieError(f"partial key must be lowercase hex nibbles, got {node.partial_key!r}")
    out = bytearray()
    n = len(node.partial_key)
    if node.kind is NodeKind.LEAF:
        if node.value is None:
            raise TrieError("a leaf needs a value")
        _encode_header(
            _LEAF_HASHED if node.value_hashed else _LEAF, 5 if node.value_hashed else 6, n, out
        )
    else:
        if len(node.children) != 16 or all(c is None for c in node.children):
            raise TrieError("a branch needs 16 child slots with at least one child")
        if node.value is None:
            _encode_header(_BRANCH_NO_VALUE, 6, n, out)
        elif node.value_hashed:
            _encode_header(_BRANCH_HASHED, 4, n, out)
        else:
            _encode_header(_BRANCH_WITH_VALUE, 6, n, out)
    out += _encode_partial(node.partial_key)
    if node.kind is NodeKind.BRANCH:
        bitmap = sum(1 << i for i, c in enumerate(node.children) if c is not None)
        out += bitmap.to_bytes(2, "little")
    if node.value is not None:
        if node.value_hashed:
            if len(node.value) != _HASH_LEN:
                raise TrieError("a hashed value must be 32 bytes")
            out += node.value
        else:
            encode_compact(len(node.value), out)
            out += node.value
    if node.kind is NodeKind.BRANCH:
        for child in node.children:
            if child is not None:
                if len(child) > _HASH_LEN:
                    raise TrieError("a child reference is at most 32 bytes")
                encode_compact(len(child), out)
                out += child
    return bytes(out)


def _decode_size(first: int, bits: int, r: Reader) -> int:
    cap = (1 << bits) - 1
    size = first & cap
    if size < cap:
        return size
    while size <= NIBBLE_SIZE_BOUND:
        b = r.read_byte()
        size += b
        if b < 255:
            return size
    raise InvalidTrieNodeError("partial key length exceeds the nibble size bound")


def decode_node(data: bytes) -> TrieNode:
    """Decode one node encoding; anything non-canonical raises InvalidTrieNodeError.

    Stricter than sp-trie where that costs nothing: trailing bytes, non-zero padding nibbles,
    branches without children and child references over 32 bytes are all rejected, since
    an honest trie never produces them.
    """
    try:
        return _decode_node(bytes(data))
    except ScaleDecodeError as e:
        raise InvalidTrieNodeError(f"malformed trie node: {e}") from None


def _decode_node(data: bytes) -> TrieNode:
    r = Reader(data)
    first = r.read_byte()
    if first == 0:
        if len(data) != 1:
            raise InvalidTrieNodeError("empty-trie node with trailing bytes")
        return TrieNode(NodeKind.EMPTY)
    kind_bits = first >> 6
    hashed = False
    if kind_bits == 0b01:
        kind, has_value, n = NodeKind.LEAF, True, _decode_size(first, 6, r)
    elif kind_bits == 0b10:
        kind, has_value, n = NodeKind.BRANCH, False, _decode_size(first, 6, r)
    elif kind_bits == 0b11:
        kind, has_value, n = NodeKind.BRANCH, True, _decode_size(first, 6, r)
    elif first >> 5 == 0b001:
        kind, has_value, hashed, n = NodeKind.LEAF, True, True, _decode_size(first, 5, r)
    elif first >> 4 == 0b0001:
        kind, has_value, hashed, n = NodeKind.BRANCH, True, True, _decode_size(first, 4, r)
    else:
        raise InvalidTrieNodeError(f"unknown node header byte 0x{first:02x}")
    raw = r.read((n + 1) // 2).hex()
    if n & 1:
        if raw[0] != "0":
            raise InvalidTrieNodeError("non-zero padding nibble in partial key")
        raw = raw[1:]
    bitmap = 0
    if kind is NodeKind.BRANCH:
        bitmap = int.from_bytes(r.read(2), "little")
        if bitmap == 0:
            raise InvalidTrieNodeError("branch without children")
    value: bytes | None = None
    if has_value:
        value = r.read(_HASH_LEN) if hashed else r.read(read_compact(r))
    children: list[bytes | None] = [None] * 16
    if kind is NodeKind.BRANCH:
        for i in range(16):
            if bitmap >> i & 1:
                size = read_compact(r)
                if size > _HASH_LEN:
                    raise InvalidTrieNodeError(f"child reference of {size} bytes")
                children[i] = r.read(size)
    if r.remaining():
        raise InvalidTrieNodeError(f"{r.remaining()} trailing bytes after trie node")
    return TrieNode(kind, raw, value, hashed, tuple(children))


# --- the incremental trie ------------------------------------------------------------------


class _Leaf:
    __slots__ = ("partial", "ref", "value")

    def __init__(self, partial: str, value: bytes) -> None:
        self.partial = partial
        self.value = value
        self.ref: bytes | None = None  # inline encoding (< 32 bytes) or hash, once computed


class _Branch:
    __slots__ = ("children", "partial", "ref", "value")

    def __init__(self, partial: str, value: bytes | None, children: tuple[_Node | None, ...]):
        self.partial = partial
        self.value = value
        self.children = children
        self.ref: bytes | None = None


_Node = _Leaf | _Branch
_NO_CHILDREN: tuple[_Node | None, ...] = (None,) * 16


def _common_prefix_len(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _with_child(
    children: tuple[_Node | None, ...], i: int, child: _Node | None
) -> tuple[_Node | None, ...]:
    return (*children[:i], child, *children[i + 1 :])


def _key_path(key: bytes) -> str:
    if not isinstance(key, bytes | bytearray | memoryview):
        raise TrieError(f"trie keys are bytes, got {type(key).__name__}")
    if len(key) * 2 > NIBBLE_SIZE_BOUND:
        raise TrieError(f"key of {len(key)} bytes is too long for the trie")
    return bytes(key).hex()


def _check_value(value: bytes) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TrieError(f"trie values are bytes, got {type(value).__name__}")
    return bytes(value)


def _normalize(
    partial: str, value: bytes | None, children: tuple[_Node | None, ...]
) -> _Node | None:
    """Rebuild a branch after a removal: drop it or merge it into its only child if needed."""
    present = [i for i, c in enumerate(children) if c is not None]
    if not present:
        return None if value is None else _Leaf(partial, value)
    if value is None and len(present) == 1:
        i = present[0]
        child = children[i]
        assert child is not None
        merged = partial + _HEX_CHARS[i] + child.partial
        if isinstance(child, _Leaf):
            return _Leaf(merged, child.value)
        return _Branch(merged, child.value, child.children)
    return _Branch(partial, value, children)


class Trie:
    """A persistent (copy-on-write) Substrate trie with cached node hashes.

    Nodes are immutable once built: an update rebuilds only the nodes on the changed key's path
    and shares every other node (and its cached hash) with the previous version. `root()` then
    hashes only the rebuilt nodes, about O(changes * depth), and `copy()` is O(1), so the dev
    chain can keep one trie per block.
    """

    __slots__ = ("_len", "_root", "state_version")

    def __init__(self, state_version: int = 1) -> None:
        self.state_version = _check_version(state_version)
        self._root: _Node | None = None
        self._len = 0

    # -- construction --

    @classmethod
    def from_items(
        cls, items: Iterable[tuple[bytes, bytes]] | Mapping[bytes, bytes], state_version: int = 1
    ) -> Trie:
        """Build a trie in one pass; with repeated keys in an iterable, the last value wins."""
        trie = cls(state_version)
        pairs = items.items() if isinstance(items, Mapping) else items
        entries: dict[str, bytes] = {}
        for key, value in pairs:
            entries[_key_path(key)] = _check_value(value)
        paths = sorted(entries)
        values = [entries[p] for p in paths]
        trie._root = _build(paths, values, 0, len(paths), 0) if paths else None
        trie._len = len(paths)
        return trie

    def copy(self) -> Trie:
        """An independent trie sharing all nodes with this one (O(1))."""
        other = Trie(self.state_version)
        other._root = self._root
        other._len = self._len
        return other

    # -- queries --

    def __len__(self) -> int:
        return self._len

    def __contains__(self, key: object) -> bool:
        return isinstance(key, bytes) and self.get(key) is not None

    def get(self, key: bytes) -> bytes | None:
        path = _key_path(key)
        node = self._root
        while node is not None:
            p = node.partial
            if not path.startswith(p):
                return None
            path = path[len(p) :]
            if not path:
                return node.value
            if isinstance(node, _Leaf):
                return None
            node = node.children[_HEX_INDEX[path[0]]]
            path = path[1:]
        return None

    def items(self, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs in key order, optionally only those under `prefix`."""
        want = _key_path(prefix)
        stack: list[tuple[str, _Node]] = []
        if self._root is not None:
            stack.append(("", self._root))
        while stack:
            base, node = stack.pop()
            path = base + node.partial
            if not (path.startswith(want) or want.startswith(path)):
                continue
            if node.value is not None and path.startswith(want):
                yield bytes.fromhex(path), node.value
            if isinstance(node, _Branch):
                for i in range(15, -1, -1):
                    child = node.children[i]
                    if child is not None:
                        stack.append((path + _HEX_CHARS[i], child))

    def keys(self, prefix: bytes = b"") -> Iterator[bytes]:
        return (k for k, _ in self.items(prefix))

    # -- updates --

    def insert(self, key: bytes, value: bytes) -> None:
        path = _key_path(key)
        value = _check_value(value)
        self._root = self._insert(self._root, path, value)

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.insert(key, value)

    def remove(self, key: bytes) -> bytes | None:
        """Delete `key`; returns the value it had, or None when it was absent."""
        path = _key_path(key)
        old = self.get(key)
        if old is not None:
            self._root = _remove(self._root, path)
            self._len -= 1
        return old

    def _insert(self, node: _Node | None, path: str, value: bytes) -> _Node:
        if node is None:
            self._len += 1
            return _Leaf(path, value)
        p = node.partial
        if path.startswith(p):
            if len(path) == len(p):
                if node.value == value:
                    return node
                if node.value is None:
                    self._len += 1
                if isinstance(node, _Leaf):
                    return _Leaf(p, value)
                return _Branch(p, value, node.children)
            i = _HEX_INDEX[path[len(p)]]
            rest = path[len(p) + 1 :]
            if isinstance(node, _Leaf):
                self._len += 1
                return _Branch(p, node.value, _with_child(_NO_CHILDREN, i, _Leaf(rest, value)))
            child = node.children[i]
            new_child = self._insert(child, rest, value)
            if new_child is child:
                return node
            return _Branch(p, node.value, _with_child(node.children, i, new_child))
        # The new key leaves this node's partial key: split it under a new branch.
        c = _common_prefix_len(p, path)
        moved: _Node
        if isinstance(node, _Leaf):
            moved = _Leaf(p[c + 1 :], node.value)
        else:
            moved = _Branch(p[c + 1 :], node.value, node.children)
        children = _with_child(_NO_CHILDREN, _HEX_INDEX[p[c]], moved)
        self._len += 1
        if c == len(path):
            return _Branch(path, value, children)
        children = _with_child(children, _HEX_INDEX[path[c]], _Leaf(path[c + 1 :], value))
        return _Branch(p[:c], None, children)

    # -- hashing --

    def root(self) -> bytes:
        """The state root: blake2_256 of the root node's encoding (even when it is short)."""
        if self._root is None:
            return EMPTY_TRIE_ROOT
        ref = _ref(self._root, self.state_version)
        return ref if len(ref) == _HASH_LEN else blake2_256(ref)

    def node_encodings(self) -> Iterator[bytes]:
        """Every stored node (root first, inline nodes excluded), as a database would hold it."""
        if self._root is None:
            yield _EMPTY_NODE
            return
        stack: list[tuple[_Node, bool]] = [(self._root, True)]
        while stack:
            node, is_root = stack.pop()
            enc = _encode(node, self.state_version)
            if is_root or len(enc) >= _HASH_LEN:
                yield enc
            if isinstance(node, _Branch):
                stack.extend((c, False) for c in reversed(node.children) if c is not None)

    def __repr__(self) -> str:
        return f"Trie(state_version={self.state_version}, len={self._len})"

    # -- proofs --

    def proof(self, keys: Iterable[bytes]) -> list[bytes]:
        """Read proof for `keys` (present or absent): see `generate_proof`."""
        seen: set[bytes] = set()
        out: list[bytes] = []

        def add(item: bytes) -> None:
            if item not in seen:
                seen.add(item)
                out.append(item)

        if self._root is None:
            add(_EMPTY_NODE)
            return out
        v = self.state_version
        for key in keys:
            path = _key_path(key)
            node: _Node | None = self._root
            is_root = True
            while node is not None:
                enc = _encode(node, v)
                if is_root or len(enc) >= _HASH_LEN:
                    add(enc)
                is_root = False
                p = node.partial
                if not path.startswith(p):
                    break
                path = path[len(p) :]
                if not path:
                    if (
                        node.value is not None
                        and v == 1
                        and len(node.value) >= VALUE_HASH_THRESHOLD
                    ):
                        add(node.value)  # the hashed value itself, as sp-trie records it
                    break
                if isinstance(node, _Leaf):
                    break
                node = node.children[_HEX_INDEX[path[0]]]
                path = path[1:]
        return out


# Remove is a free function: it needs no counters (the caller checked presence first).
def _remove(node: _Node | None, path: str) -> _Node | None:
    if node is None:
        return None
    p = node.partial
    if not path.startswith(p):
        return node
    if isinstance(node, _Leaf):
        return None if len(path) == len(p) else node
    if len(path) == len(p):
        if node.value is None:
            return node
        return _normalize(p, None, node.children)
    i = _HEX_INDEX[path[len(p)]]
    child = node.children[i]
    new_child = _remove(child, path[len(p) + 1 :])
    if new_child is child:
        return node
    return _normalize(p, node.value, _with_child(node.children, i, new_child))


def _build(paths: list[str], values: list[bytes], lo: int, hi: int, depth: int) -> _Node:
    """Build the subtrie of sorted, distinct `paths[lo:hi]`, which share `depth` nibbles."""
    first = paths[lo]
    if hi - lo == 1:
        return _Leaf(first[depth:], values[lo])
    last = paths[hi - 1]
    # In sorted order the common prefix of all entries is that of the first and the last.
    c = depth + _common_prefix_len(first[depth:], last[depth:])
    value = None
    start = lo
    if len(first) == c:
        value = values[lo]
        start = lo + 1
    children: list[_Node | None] = [None] * 16
    i = start
    while i < hi:
        nib = paths[i][c]
        j = i + 1
        while j < hi and paths[j][c] == nib:
            j += 1
        children[_HEX_INDEX[nib]] = _build(paths, values, i, j, c + 1)
        i = j
    return _Branch(first[depth:c], value, tuple(children))


def _encode(node: _Node, state_version: int) -> bytes:
    if isinstance(node, _Leaf):
        return _encode_leaf(node.partial, node.value, state_version)
    refs = [None if c is None else _ref(c, state_version) for c in node.children]
    return _encode_branch(node.partial, node.value, refs, state_version)


def _ref(node: _Node, state_version: int) -> bytes:
    """How a parent refers to `node`: its encoding if shorter than 32 bytes, else its hash.

    Cached on the node; since nodes never change and a node belongs to tries of one state
    version only (copies keep the version), the cache is never stale.
    """
    ref = node.ref
    if ref is None:
        enc = _encode(node, state_version)
        ref = enc if len(enc) < _HASH_LEN else blake2_256(enc)
        node.ref = ref
    return ref


# --- one-shot roots ------------------------------------------------------------------------


def trie_root(
    items: Iterable[tuple[bytes, bytes]] | Mapping[bytes, bytes], state_version: int = 1
) -> bytes:
    """Root of the trie holding `items` (later duplicates overwrite earlier ones)."""
    return Trie.from_items(items, state_version).root()


def ordered_trie_root(values: Sequence[bytes], state_version: int = 0) -> bytes:
    """Root of the trie mapping SCALE compact(i) to values[i]: Substrate's extrinsics_root.

    The default is state version 0 because that is what extrinsics roots use on
    polkadot-v0.9.42 and on every runtime with system_version < 2, even when the state itself
    is version 1 (see `tocw.primitives.header.extrinsics_root`).
    """
    return Trie.from_items(
        ((compact_bytes(i), v) for i, v in enumerate(values)), state_version
    ).root()


# --- read proofs ---------------------------------------------------------------------------


def generate_proof(
    trie_or_items: Trie | Iterable[tuple[bytes, bytes]] | Mapping[bytes, bytes],
    keys: Iterable[bytes],
    state_version: int = 1,
) -> list[bytes]:
    """The node encodings on the paths to `keys`, as `state_getReadProof` returns them.

    Absent keys are proven too (by the nodes up to where their path leaves the trie). In state
    version 1, a key's hashed value (>= 33 bytes) is included as a separate entry holding the
    raw value, the way sp-trie's recorder puts value nodes into a StorageProof. Entries are
    distinct; their order carries no meaning. `state_version` applies only when items are given.
    """
    trie = (
        trie_or_items
        if isinstance(trie_or_items, Trie)
        else Trie.from_items(trie_or_items, state_version)
    )
    return trie.proof(keys)


def verify_proof(
    root: bytes, proof: Sequence[bytes], keys: Sequence[bytes]
) -> dict[bytes, bytes | None]:
    """Look `keys` up in the trie of `root` using only the proof's nodes.

    Returns each key's value, or None where the proof shows the key is absent. Raises
    InvalidProofError when a node needed for a key is missing or malformed. Entries not on any
    asked path are ignored (sp-trie does the same); they may be raw hashed values, which
    need not decode as nodes.
    """
    if len(root) != _HASH_LEN:
        raise InvalidProofError(f"state root must be 32 bytes, got {len(root)}")
    db: dict[bytes, bytes] = {}
    for item in proof:
        if not isinstance(item, bytes | bytearray | memoryview):
            raise InvalidProofError(f"proof entries are bytes, got {type(item).__name__}")
        entry = bytes(item)
        db[blake2_256(entry)] = entry
    decoded: dict[bytes, TrieNode] = {}
    return {bytes(key): _lookup(bytes(root), db, decoded, _key_path(key)) for key in keys}


def _decode_for_proof(enc: bytes, decoded: dict[bytes, TrieNode]) -> TrieNode:
    node = decoded.get(enc)
    if node is None:
        try:
            node = decode_node(enc)
        except InvalidTrieNodeError as e:
            raise InvalidProofError(f"invalid node in proof: {e}") from None
        decoded[enc] = node
    return node


def _lookup(
    root: bytes, db: dict[bytes, bytes], decoded: dict[bytes, TrieNode], path: str
) -> bytes | None:
    enc = db.get(root)
    if enc is None:
        if root == EMPTY_TRIE_ROOT:
            return None
        raise InvalidProofError(f"proof lacks the root node 0x{root.hex()}")
    node = _decode_for_proof(enc, decoded)
    if node.kind is NodeKind.EMPTY:
        return None
    while True:
        p = node.partial_key
        if not path.startswith(p):
            return None
        path = path[len(p) :]
        if not path:
            if node.value is None or not node.value_hashed:
                return node.value
            value = db.get(node.value)
            if value is None:
                raise InvalidProofError(f"proof lacks the hashed value 0x{node.value.hex()}")
            return value
        if node.kind is NodeKind.LEAF:
            return None
        ref = node.children[_HEX_INDEX[path[0]]]
        path = path[1:]
        if ref is None:
            return None
        if len(ref) == _HASH_LEN:
            child_enc = db.get(ref)
            if child_enc is None:
                raise InvalidProofError(f"proof lacks the node 0x{ref.hex()}")
        else:
            child_enc = ref
        node = _decode_for_proof(child_enc, decoded)
        if node.kind is NodeKind.EMPTY:
            raise InvalidProofError("empty node referenced as a child")
