"""Dev chain throughput: signed balance transfers imported per second on one core.

Runs the node's real path without sockets: `Chain.submit` (decode, signature check, nonce and
fee validation, pool) for every transfer, then `Chain.produce_block` (the runtime applies each
transfer, the node computes the state root and extrinsics root and commits the block to
SQLite). Prints both phases, the end-to-end rate and its ratio to the 1,000 transfers/s target.
Transfers are signed by tocw.primitives.extrinsic's builder and decoded, twice each (pool and
block), by its metadata-driven decoder: the bench prices the same code the worker runs.

    .venv/bin/python bench/chain.py [--count 1000] [--disk]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tocw.chain.node import Chain
from tocw.chain.runtime import Runtime
from tocw.chain.storage import ChainStore
from tocw.chain.testing import signed_transfer
from tocw.primitives.keys import Keypair, KeyScheme

TARGET_PER_SECOND = 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="transfers in the block")
    parser.add_argument("--disk", action="store_true", help="SQLite file instead of :memory:")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        store = ChainStore(Path(tmp) / "bench.sqlite3" if args.disk else None)
        chain = Chain(Runtime(), store)
        chain.open()
        alice = Keypair.from_uri("//Alice", KeyScheme.SR25519)
        bob = Keypair.from_uri("//Bob", KeyScheme.SR25519).public_key
        print(f"signing {args.count} transfers (not measured) ...")
        xts = [signed_transfer(chain, alice, bob, 1_000 + i, nonce=i) for i in range(args.count)]

        t0 = time.perf_counter()
        for xt in xts:
            chain.submit(xt)
        t1 = time.perf_counter()
        imported = chain.produce_block(1_700_000_000_000)
        t2 = time.perf_counter()
        store.close()

    included = len(imported.block.extrinsics) - 1  # minus the timestamp inherent
    if included != args.count:
        print(f"error: only {included} of {args.count} transfers made it into the block")
        return 1
    validate_s, block_s, total_s = t1 - t0, t2 - t1, t2 - t0
    rate = args.count / total_s
    print(f"validate + pool : {validate_s * 1000:8.1f} ms  ({args.count / validate_s:8.0f} tx/s)")
    print(f"produce block   : {block_s * 1000:8.1f} ms  ({args.count / block_s:8.0f} tx/s)")
    print(f"end to end      : {total_s * 1000:8.1f} ms  ({rate:8.0f} tx/s)")
    print(f"ratio to the {TARGET_PER_SECOND}/s target: {rate / TARGET_PER_SECOND:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
