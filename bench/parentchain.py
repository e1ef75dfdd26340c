"""Catch-up throughput: ParentchainClient.blocks_range against a dev chain in another process.

    .venv/bin/python bench/parentchain.py [--blocks 3000] [--window 64] [--depth 4]

Starts this script again as a subprocess in `--serve` mode: a DevNode on a free port that
authors `--blocks` empty blocks (timestamp inherent only, as an idle chain), finalizes them and
keeps the state of all of them (a pruning node would discard events of old blocks). The client
here then fetches the whole range several ways and prints finalized blocks per second; the
target for the worker's catch-up is >= 500 blocks/s (Integritee's worker does about 230/s).
The chain runs in its own process so that client and node do not share one interpreter.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tocw.chain.node import DevNode, NodeConfig
from tocw.parentchain.client import ParentchainClient

START_TIMEOUT = 60.0


async def serve(blocks: int) -> None:
    config = NodeConfig(
        base_path=None,
        ws_port=0,
        block_time=3600.0,  # no authoring of its own: the blocks below are all there is
        finality_delay=0.0,
        state_window=blocks + 16,
    )
    async with DevNode(config) as node:
        chain = node.require_chain()
        for _ in range(blocks):
            node.produce_block()
            if chain.best_number % 256 == 0:
                await asyncio.sleep(0)  # let the finalizer keep up
        async with asyncio.timeout(START_TIMEOUT):
            while chain.finalized_number < chain.best_number:
                await asyncio.sleep(0.02)
        print(f"url: {node.url}", flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes stdin


@contextlib.contextmanager
def chain_process(blocks: int) -> Iterator[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--serve", "--blocks", str(blocks)]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT
        url = None
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"chain process exited with {proc.wait()}")
            if line.startswith("url: "):
                url = line.removeprefix("url: ").strip()
        if url is None:
            raise RuntimeError("chain process did not start in time")
        yield url
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def measure(url: str, blocks: int, window: int, depth: int) -> None:
    cases = [
        ("blocks only", {"events": False}, True),
        ("blocks + events", {"events": True}, True),
        ("blocks + events + proofs", {"events": True, "events_proof": True}, True),
        ("blocks + events, no batches", {"events": True}, False),
    ]
    for name, options, batches in cases:
        async with await ParentchainClient.connect(url, window=window, depth=depth) as chain:
            if not batches:
                chain.rpc._batch_support = False  # what a node without batch support gets
            last = (await chain.finalized_header()).number
            assert last >= blocks, (last, blocks)
            start = time.perf_counter()
            fetched = await chain.blocks_range(1, blocks, **options)
            elapsed = time.perf_counter() - start
            assert len(fetched) == blocks and fetched[-1].number == blocks
            print(f"{name:30s} {blocks / elapsed:8.0f} blocks/s  ({blocks} in {elapsed:.2f} s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=3000)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.blocks))
        return 0
    with chain_process(args.blocks) as url:
        print(f"dev chain at {url}, {args.blocks} finalized blocks")
        print(f"window {args.window}, depth {args.depth}")
        asyncio.run(measure(url, args.blocks, args.window, args.depth))
    return 0


if __name__ == "__main__":
    sys.exit(main())
