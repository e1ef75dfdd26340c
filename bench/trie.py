"""Benchmark of the incremental state trie as the dev chain uses it.

A state of N System.Account-like entries (80-byte keys, 80-byte values, so state version 1
hashes them); each "transfer" rewrites 4 keys; each block copies the trie, applies its
transfers and recomputes the root. Target (task brief): >= 1000 transfers/s over 10k+ keys.

    .venv/bin/python bench/trie.py [--accounts 20000] [--blocks 20] [--per-block 100]
"""

from __future__ import annotations

import argparse
import random
import time

from tocw.primitives.hashing import blake2_128_concat, storage_prefix
from tocw.primitives.trie import Trie, trie_root


def account_key(i: int) -> bytes:
    return storage_prefix("System", "Account") + blake2_128_concat(i.to_bytes(32, "little"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--per-block", type=int, default=100)
    parser.add_argument("--check", action="store_true", help="compare with a one-shot root")
    args = parser.parse_args()
    rng = random.Random(0)

    keys = [account_key(i) for i in range(args.accounts)]
    t0 = time.perf_counter()
    trie = Trie.from_items((k, rng.randbytes(80)) for k in keys)
    trie.root()
    t1 = time.perf_counter()
    print(f"build {args.accounts} entries + root: {t1 - t0:.3f} s")

    transfers = 0
    t0 = time.perf_counter()
    for _ in range(args.blocks):
        trie = trie.copy()
        for _ in range(args.per_block):
            for k in rng.sample(keys, 2):  # sender and receiver accounts
                trie.insert(k, rng.randbytes(80))
            trie.insert(b"\x26\xaa\x39\x4e" + rng.randbytes(28), rng.randbytes(8))  # events
            trie.insert(storage_prefix("System", "ExtrinsicCount"), rng.randbytes(4))
            transfers += 1
        trie.root()
    elapsed = time.perf_counter() - t0
    print(
        f"{transfers} transfers (4 keys each) in {args.blocks} blocks: {elapsed:.3f} s "
        f"= {transfers / elapsed:,.0f} transfers/s"
    )

    t0 = time.perf_counter()
    n = 500
    for _ in range(n):
        trie.insert(rng.choice(keys), rng.randbytes(80))
        trie.root()
    print(f"single change + root: {(time.perf_counter() - t0) / n * 1e6:.0f} us")

    if args.check:
        assert trie.root() == trie_root(dict(trie.items()))
        print("incremental root == one-shot root")


if __name__ == "__main__":
    main()
