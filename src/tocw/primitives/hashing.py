"""Substrate hashers, storage keys, Keccak-256 and the trusted-calls binary Merkle root.

blake2 comes from hashlib, xxHash from the `xxhash` package, Keccak-256 from pycryptodome.
The binary Merkle root follows Substrate's current `binary-merkle-tree` crate (PROTOCOL.md):
leaves hashed with Keccak-256, pairs hashed positionally (never sorted), an odd last node moves
up unpaired, and no leaves give 32 zero bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

import xxhash
from Crypto.Hash import keccak

Hasher = Callable[[bytes], bytes]


def blake2_128(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def blake2_256(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


def twox64(data: bytes) -> bytes:
    return xxhash.xxh64_intdigest(data, seed=0).to_bytes(8, "little")


def twox128(data: bytes) -> bytes:
    return b"".join(xxhash.xxh64_intdigest(data, seed=s).to_bytes(8, "little") for s in (0, 1))


def twox256(data: bytes) -> bytes:
    return b"".join(
        xxhash.xxh64_intdigest(data, seed=s).to_bytes(8, "little") for s in (0, 1, 2, 3)
    )


def keccak_256(data: bytes) -> bytes:
    return keccak.new(data=data, digest_bits=256).digest()


def blake2_128_concat(key: bytes) -> bytes:
    return blake2_128(key) + key


def twox64_concat(key: bytes) -> bytes:
    return twox64(key) + key


def identity(key: bytes) -> bytes:
    return key


# Names as they appear in Substrate metadata (StorageHasher enum), for code that reads them.
STORAGE_HASHERS: dict[str, Hasher] = {
    "Blake2_128": blake2_128,
    "Blake2_256": blake2_256,
    "Blake2_128Concat": blake2_128_concat,
    "Twox128": twox128,
    "Twox256": twox256,
    "Twox64Concat": twox64_concat,
    "Identity": identity,
}


def storage_prefix(pallet: str, item: str) -> bytes:
    """twox128(pallet) ++ twox128(item): the key of a plain storage value."""
    return twox128(pallet.encode()) + twox128(item.encode())


def storage_key(pallet: str, item: str, *keys: tuple[Hasher, bytes]) -> bytes:
    """Key of a storage map entry: prefix ++ hasher(SCALE(key)) for each map key in order.

    `storage_key("System", "Account", (blake2_128_concat, account_id))`
    """
    return storage_prefix(pallet, item) + b"".join(h(k) for h, k in keys)


def binary_merkle_root(leaves: Iterable[bytes], hasher: Hasher = keccak_256) -> bytes:
    """Root of Substrate's binary Merkle tree over raw leaf data (each leaf is hashed first)."""
    return merkle_root_of_leaf_hashes([hasher(leaf) for leaf in leaves], hasher)


def merkle_root_of_leaf_hashes(hashes: Sequence[bytes], hasher: Hasher = keccak_256) -> bytes:
    """The same tree over leaves that are hashes already (the crate's `Leaf::Hash`): pairs
    hashed positionally as hasher(left ++ right), an odd last node moves up unpaired."""
    layer = list(hashes)
    if not layer:
        return bytes(32)
    while len(layer) > 1:
        nxt = [hasher(layer[i] + layer[i + 1]) for i in range(0, len(layer) - 1, 2)]
        if len(layer) % 2:
            nxt.append(layer[-1])
        layer = nxt
    return layer[0]


def trusted_calls_merkle_root(signed_calls: Sequence[bytes]) -> bytes:
    """PROTOCOL.md `trusted_calls_merkle_root` from the SCALE bytes of the accepted
    TrustedCallSigned values of one block, in block order: leaves are their blake2_256."""
    return binary_merkle_root(blake2_256(c) for c in signed_calls)
