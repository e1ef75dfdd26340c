"""The `tocw` command: one argparse parser, one module per command group.

Each command group module exposes `register(subparsers)`, which adds its sub-parser(s) and sets
`func` (returning the exit code). COMMAND_GROUPS lists them explicitly: the client's parentchain
commands (accounts, parentchain) are top-level commands as in Integritee's CLI, `trusted` groups
the shard's commands, `chain` and `worker` run the processes, `demo` runs the whole workflow.
The client's global options (tocw.cli.common) are accepted before or after a client command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from tocw import __version__
from tocw.cli import accounts, chain, demo, parentchain, trusted, worker
from tocw.cli.common import add_global_options

Registrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

COMMAND_GROUPS: dict[str, Registrar] = {
    "accounts": accounts.register,
    "parentchain": parentchain.register,
    "trusted": trusted.register,
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
    add_global_options(parser)
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
