"""The `tocw` command: one argparse parser, one module per command group.

Each command group module exposes `register(subparsers)`, which adds its sub-parser and sets
`func` (returning the exit code). COMMAND_GROUPS lists them explicitly.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from tocw import __version__
from tocw.cli import chain, demo, worker

Registrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

COMMAND_GROUPS: dict[str, Registrar] = {
    "chain": chain.register,
    "demo": demo.register,
    "worker": worker.register,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tocw",
        description="tocw: a TEE off-chain worker for Substrate parentchains.",
    )
    parser.add_argument("--version", action="version", version=f"tocw {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in COMMAND_GROUPS.values():
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    code: int = func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
