"""`tocw worker`: run the off-chain worker, or print its identity and exit.

    tocw worker run --node-url ws://127.0.0.1:9944 --data-dir DIR [--dev] ...
    tocw worker mrenclave --data-dir DIR        the MRENCLAVE (= the default shard), 0x hex
    tocw worker shielding-key --data-dir DIR    the shielding public key, as JSON
    tocw worker signing-key --data-dir DIR      the enclave's account: ss58 and 0x hex

Settings come from flags, then TOCW_* environment variables, then a TOML file (--config FILE
or TOCW_CONFIG), then defaults (tocw.worker.config). `run` prints machine-readable lines on
stdout as it starts (`mrenclave: 0x..`, `shard: 0x..`, `signer: ..`, `tee: ..`, the servers'
addresses, and `initialized: N` once registered and in sync); logs go to stderr. SIGTERM or
Ctrl-C stops taking new blocks, commits the block in progress and exits 0.

The print commands open the enclave in the data dir (creating its keys on first use) without
contacting any node.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tocw.primitives.ss58 import ss58_encode
from tocw.worker import WorkerError
from tocw.worker.config import PARSERS, WorkerConfig, WorkerConfigError, load_config
from tocw.worker.service import (
    WorkerStartupError,
    open_enclave,
    prepare_data_dir,
    run_worker,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="run the off-chain worker, or print its identity",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="worker_command", metavar="SUBCOMMAND", required=True)

    run = sub.add_parser("run", help="run the worker until SIGTERM")
    _common_flags(run)
    run.add_argument("--node-url", help="parentchain node ws(s):// URL (ws://127.0.0.1:9944)")
    run.add_argument("--trusted-host", help="trusted RPC listen address (127.0.0.1)")
    run.add_argument("--trusted-port", type=int, help="trusted RPC wss port (2000; 0 = any)")
    run.add_argument("--mu-ra-port", type=int, help="provisioning port (3443)")
    run.add_argument("--health-port", type=int, help="/is_initialized and /health port (4545)")
    run.add_argument("--metrics-port", type=int, help="Prometheus /metrics port (8787)")
    run.add_argument("--external-url", help="wss:// URL registered on chain for clients")
    run.add_argument("--shard", help="shard to serve, 0x hex (default: the MRENCLAVE)")
    run.add_argument(
        "--dev",
        action="store_true",
        default=None,
        help="development: fund the enclave account from //Alice when it has no balance",
    )
    run.add_argument(
        "--clean-reset",
        action="store_true",
        default=None,
        help="delete this worker's keys and state in the data dir before starting",
    )
    run.add_argument(
        "--block-time", type=float, help="parentchain block time in s (default: from the chain)"
    )
    run.add_argument("--batch-size", type=int, help="blocks per catch-up batch (256)")
    run.set_defaults(func=_run)

    for name, func, text in (
        ("mrenclave", _print_mrenclave, "print the MRENCLAVE (the default shard) and exit"),
        ("shielding-key", _print_shielding_key, "print the shielding public key JSON and exit"),
        ("signing-key", _print_signing_key, "print the enclave's account and exit"),
    ):
        p = sub.add_parser(name, help=text)
        _common_flags(p)
        p.set_defaults(func=func)


def _common_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, help="the worker's data dir (keys, state)")
    p.add_argument("--config", type=Path, metavar="FILE", help="TOML config file")
    p.add_argument("--tee", help="TEE backend: sim (default), gramine-sgx, tsm")
    p.add_argument("--modules", help="comma-separated STF modules (default: balances)")
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def _config(args: argparse.Namespace) -> WorkerConfig:
    # Only the worker's own settings: the client's global options (--json, --keystore, ...)
    # share the namespace but are not worker configuration.
    flags = {key: value for key, value in vars(args).items() if key in PARSERS}
    return load_config(flags, config_file=args.config)


def _setup_logging(level: str) -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=level,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )


def _guarded(action: Callable[[], int]) -> int:
    try:
        return action()
    except WorkerConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except WorkerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def _announce(key: str, value: str) -> None:
    print(f"{key}: {value}", flush=True)


def _run(args: argparse.Namespace) -> int:
    def go() -> int:
        config = _config(args)
        _setup_logging(config.log_level)
        return asyncio.run(run_worker(config, _announce))

    return _guarded(go)


def _print_with_enclave(args: argparse.Namespace, show: Callable[[Any], str]) -> int:
    def go() -> int:
        config = _config(args)
        _setup_logging("WARNING" if args.log_level is None else config.log_level)
        prepare_data_dir(config)
        # Never create a shielding key here: whether this data dir's enclave generates one (a new
        # shard) or receives it (joining a shard) is decided by `worker run` from the chain.
        with open_enclave(config, create_shielding_key=False) as enclave:
            print(show(enclave), flush=True)
        return 0

    return _guarded(go)


def _print_mrenclave(args: argparse.Namespace) -> int:
    return _print_with_enclave(args, lambda e: "0x" + bytes(e.mrenclave()).hex())


def _print_shielding_key(args: argparse.Namespace) -> int:
    def show(e: Any) -> str:
        if not e.has_shielding_key():
            raise WorkerStartupError(
                "this data dir holds no shielding key yet: `tocw worker run` generates it when "
                "it creates a new shard, or receives it from the shard's workers when it joins"
            )
        return str(e.shielding_public_key_json())

    return _print_with_enclave(args, show)


def _print_signing_key(args: argparse.Namespace) -> int:
    def show(e: Any) -> str:
        account = bytes(e.signer_account())
        return f"ss58: {ss58_encode(account)}\npublic: 0x{account.hex()}"

    return _print_with_enclave(args, show)
