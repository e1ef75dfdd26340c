"""`tocw chain --dev`: run the embedded development parentchain until Ctrl-C or SIGTERM.

On start it prints machine-readable lines (tests and scripts parse them; --ws-port 0 picks a
free port and the url line tells which), then logs one line per block on stderr:

    url: ws://127.0.0.1:9944
    genesis: 0x...
    chain: Development
    base path: (temporary directory)

Without --base-path the chain lives in a temporary directory deleted on exit (as `--dev`
implies `--tmp` in Substrate); with it, blocks and state persist and a restart continues.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from tocw.chain.errors import ChainError
from tocw.chain.node import DevNode, NodeConfig
from tocw.chain.storage import ARCHIVE_STATE_WINDOW, MIN_STATE_WINDOW


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "chain",
        help="run the embedded development parentchain (a Substrate-compatible node)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--dev",
        action="store_true",
        help="run the development chain (//Alice is sudo and GRANDPA authority); required",
    )
    p.add_argument("--ws-host", default="127.0.0.1", help="RPC listen address (ws and http)")
    p.add_argument(
        "--ws-port", type=int, default=9944, help="RPC port; 0 picks a free one (default 9944)"
    )
    p.add_argument(
        "--block-time",
        type=float,
        default=6.0,
        metavar="SECONDS",
        help="seconds between blocks; 0 = instant seal, a block as soon as a transaction arrives",
    )
    p.add_argument(
        "--finality-delay",
        type=float,
        default=0.3,
        metavar="SECONDS",
        help="seconds from a block's import to its GRANDPA finality (default 0.3)",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--base-path", type=Path, metavar="DIR", help="keep blocks and state under DIR"
    )
    where.add_argument(
        "--tmp", action="store_true", help="use a temporary directory deleted on exit (default)"
    )
    p.add_argument(
        "--state-pruning",
        type=_state_pruning,
        default=ARCHIVE_STATE_WINDOW,
        metavar="archive|N",
        help="keep the state of every block (archive, the default: workers replay from a "
        f"shard's creation block) or of the last N >= {MIN_STATE_WINDOW} blocks",
    )
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.set_defaults(func=run)


def _state_pruning(text: str) -> int:
    if text == "archive":
        return ARCHIVE_STATE_WINDOW
    try:
        blocks = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'archive' or a number, got {text!r}") from None
    if blocks < MIN_STATE_WINDOW:
        raise argparse.ArgumentTypeError(f"keep at least {MIN_STATE_WINDOW} blocks")
    return blocks


def run(args: argparse.Namespace) -> int:
    if not args.dev:
        print("error: only the development chain exists; run `tocw chain --dev`", file=sys.stderr)
        return 2
    try:
        config = NodeConfig(
            base_path=None if args.tmp else args.base_path,
            ws_host=args.ws_host,
            ws_port=args.ws_port,
            block_time=args.block_time,
            finality_delay=args.finality_delay,
            state_window=args.state_pruning,
        )
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=args.log_level,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        # websockets logs every connection at INFO; a node's log is about blocks.
        logging.getLogger("websockets").setLevel(max(logging.WARNING, logging.root.level))
    try:
        return asyncio.run(_serve(config))
    except ChainError as e:  # a foreign database, a taken port, ...
        print(f"error: {e}", file=sys.stderr)
        return 1


async def _serve(config: NodeConfig) -> int:
    async with DevNode(config) as node:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, node.stop)
        print(f"url: {node.url}")
        print(f"genesis: 0x{node.genesis_hash.hex()}")
        print(f"chain: {node.chain_name}")
        where = config.base_path if config.base_path is not None else "(temporary directory)"
        print(f"base path: {where}", flush=True)
        await node.serve_forever()
    print("stopped", flush=True)
    return 0
