"""What every client command of `tocw` shares: global options, output, errors, connections.

Owns the global options (`--node-url`, `--worker-url`, `--keystore`, `--json`, `--timeout`,
`--insecure-skip-attestation`, `--collateral`), accepted both before the command (`tocw --json
balance //Alice`) and after it (`tocw balance //Alice --json`); `Context`, which a command
handler gets and which opens the node and worker connections it asks for (and closes them);
`Output` (plain lines, rich tables, JSON with `--json`, a progress spinner on stderr while
waiting for blocks); and `command`, which runs an async handler and turns every expected failure
into one line `error: ...` on stderr and exit code 1 (2 for bad usage, 130 for Ctrl-C), never a
traceback.

Defaults come from TOCW_NODE_URL, TOCW_WORKER_URL and TOCW_KEYSTORE when set (the worker reads
TOCW_NODE_URL too, so one variable points both at the same node).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from rich.console import Console
from rich.table import Table

from tocw.client.accounts import Account, resolve_account
from tocw.client.amounts import Token
from tocw.client.attestation import SIM_WARNING, WorkerIdentity, verify_worker
from tocw.client.errors import ClientError, InvalidInputError, UnknownAccountError
from tocw.client.keystore import PARENTCHAIN, TRUSTED, Keystore
from tocw.client.parentchain import DEFAULT_NODE_URL, DEFAULT_WAIT, Parentchain
from tocw.client.sdk import TrustedClient, chain_collateral
from tocw.client.worker import DEFAULT_WORKER_URL, Worker
from tocw.primitives.metadata import Variant
from tocw.primitives.types import MrEnclave, ShardId, to_hex
from tocw.tee.base import TeeKind

DEFAULT_KEYSTORE: Final = "~/.tocw/keystore"
NODE_URL_ENV: Final = "TOCW_NODE_URL"
WORKER_URL_ENV: Final = "TOCW_WORKER_URL"
KEYSTORE_ENV: Final = "TOCW_KEYSTORE"
PIPE_WIDTH: Final = 240
EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130

Handler = Callable[["Context"], Awaitable[None]]
Subparsers = "argparse._SubParsersAction[argparse.ArgumentParser]"


# --- global options ------------------------------------------------------------------------------


def global_defaults() -> dict[str, Any]:
    """The global options' defaults (read when a command runs, so the environment counts)."""
    return {
        "node_url": os.environ.get(NODE_URL_ENV) or DEFAULT_NODE_URL,
        "worker_url": os.environ.get(WORKER_URL_ENV) or DEFAULT_WORKER_URL,
        "keystore": os.environ.get(KEYSTORE_ENV) or DEFAULT_KEYSTORE,
        "json": False,
        "timeout": DEFAULT_WAIT,
        "insecure_skip_attestation": False,
        "collateral": None,
    }


def add_global_options(parser: argparse.ArgumentParser) -> None:
    """The client's global options, on the top-level parser and on every client command.

    They default to SUPPRESS everywhere, so an option given before the command is not reset by
    the command's parser (argparse copies a sub-parser's defaults over its parent's values),
    and `tocw worker ...` sees none of them; `command` fills in `global_defaults()` for the
    ones not given.
    """
    group = parser.add_argument_group("client options")
    group.add_argument(
        "--node-url",
        metavar="URL",
        default=argparse.SUPPRESS,
        help=f"parentchain node ws(s):// URL (default {DEFAULT_NODE_URL}, or ${NODE_URL_ENV})",
    )
    group.add_argument(
        "--worker-url",
        metavar="URL",
        default=argparse.SUPPRESS,
        help=f"worker trusted RPC wss:// URL (default {DEFAULT_WORKER_URL}, or ${WORKER_URL_ENV})",
    )
    group.add_argument(
        "--keystore",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help=f"directory of account keys (default {DEFAULT_KEYSTORE}, or ${KEYSTORE_ENV}); "
        "set TOCW_KEYSTORE_PASSWORD to encrypt new keys",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="machine-readable JSON output",
    )
    group.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        default=argparse.SUPPRESS,
        help=f"how long to wait for inclusion and processing (default {DEFAULT_WAIT:g})",
    )
    group.add_argument(
        "--insecure-skip-attestation",
        action="store_true",
        default=argparse.SUPPRESS,
        help="accept a worker whose attestation proves nothing (the sim TEE); development only",
    )
    group.add_argument(
        "--collateral",
        type=Path,
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="DCAP collateral JSON to verify an SGX/TDX worker's quote (default: the "
        "collateral the parentchain's Teerex holds for the platform)",
    )


def add_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    handler: Handler,
    help_text: str,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """A client command: its parser (with the global options) bound to `handler`."""
    parser = subparsers.add_parser(
        name,
        help=help_text,
        description=description or help_text[:1].upper() + help_text[1:] + ".",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_global_options(parser)
    parser.set_defaults(func=command(handler))
    return parser


def jsonable(value: Any) -> Any:
    """A decoded SCALE value as JSON: bytes as 0x-hex, enum variants as {name: value}."""
    if isinstance(value, bytes | bytearray):
        return to_hex(bytes(value))
    if isinstance(value, Variant):
        return value.name if value.value is None else {value.name: jsonable(value.value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def parse_hex32(text: str, what: str) -> bytes:
    """32 bytes from 0x-hex (64 digits): a MRENCLAVE or shard given on the command line."""
    raw = text.strip().lower().removeprefix("0x")
    try:
        value = bytes.fromhex(raw)
    except ValueError:
        raise InvalidInputError(f"{what} {text!r} is not hex") from None
    if len(value) != 32:
        raise InvalidInputError(f"{what} must be 32 bytes (64 hex digits), got {len(value)}")
    return value


# --- output --------------------------------------------------------------------------------------


class Output:
    """Where a command writes: results on stdout (text or JSON), notes and progress on stderr."""

    def __init__(self, json_mode: bool) -> None:
        self.json_mode = json_mode
        self.console = Console(highlight=False, soft_wrap=True)
        if not self.console.is_terminal:
            # Piped output: wide enough that addresses and hashes are never folded.
            self.console = Console(highlight=False, soft_wrap=True, width=PIPE_WIDTH)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    def line(self, text: str) -> None:
        """A result line in text mode (nothing in JSON mode)."""
        if not self.json_mode:
            self.console.print(text, markup=False)

    def data(self, value: Any) -> None:
        """A result in JSON mode (nothing in text mode)."""
        if self.json_mode:
            sys.stdout.write(json.dumps(value, sort_keys=True) + "\n")
            sys.stdout.flush()

    def result(self, text: str, value: Any) -> None:
        """One result: `text` in text mode, `value` as JSON with --json."""
        self.line(text)
        self.data(value)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        if self.json_mode:
            return
        table = Table(title=title, title_justify="left")
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*row)
        self.console.print(table)

    def note(self, text: str) -> None:
        """A remark for the human (stderr), also in JSON mode."""
        self.err.print(text, markup=False)

    def warn(self, text: str) -> None:
        self.err.print(text, style="bold red", markup=False)

    @contextlib.contextmanager
    def progress(self, text: str) -> Iterator[Callable[[str], None]]:
        """A spinner on stderr while waiting; yields a function that updates its text. Nothing
        is drawn when stderr is not a terminal."""
        if not self.err.is_terminal:
            yield lambda _text: None
            return
        with self.err.status(text) as status:
            yield status.update


# --- the context of one command ------------------------------------------------------------------


@dataclass
class Context:
    """One command's arguments, output and connections (opened on first use, closed after)."""

    args: argparse.Namespace
    out: Output
    stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)
    _chain: Parentchain | None = None
    _worker: Worker | None = None
    _identity: WorkerIdentity | None = None
    _trusted: TrustedClient | None = None

    @property
    def node_url(self) -> str:
        return str(self.args.node_url)

    @property
    def worker_url(self) -> str:
        return str(self.args.worker_url)

    @property
    def timeout(self) -> float:
        value = float(self.args.timeout)
        if value <= 0:
            raise InvalidInputError("--timeout must be positive")
        return value

    def keystore(self, namespace: str = PARENTCHAIN) -> Keystore:
        return Keystore(Path(str(self.args.keystore)), namespace)

    def account(self, text: str, *namespaces: str) -> Account:
        """Resolve an account, looking in the keystore namespaces in order (default: the
        parentchain keys, then the trusted ones); one that holds the secret key wins."""
        order = namespaces or (PARENTCHAIN, TRUSTED)
        found: Account | None = None
        error: UnknownAccountError | None = None
        for namespace in order:
            try:
                account = resolve_account(text, self.keystore(namespace))
            except UnknownAccountError as e:
                error = error or e
                continue
            if account.keypair is not None:
                return account
            found = found or account
        if found is not None:
            return found
        if error is not None and "unknown account" in str(error):
            dirs = " or ".join(str(self.keystore(n).dir) for n in order)
            raise UnknownAccountError(
                f"unknown account {text!r}: not a dev URI (//Alice), SS58 address, 0x-hex "
                f"public key, or a key name in {dirs}"
            )
        assert error is not None
        raise error

    async def chain(self) -> Parentchain:
        if self._chain is None:
            self._chain = await Parentchain.connect(self.node_url)
            self.stack.push_async_callback(self._chain.close)
        return self._chain

    async def token(self) -> Token:
        return await (await self.chain()).token()

    async def worker(self) -> Worker:
        """The worker's trusted RPC, pinned to the certificate it presented (UNVERIFIED until
        `identity()`)."""
        if self._worker is None:
            worker = Worker(self.worker_url)
            await worker.open()
            self.stack.push_async_callback(worker.close)
            self._worker = worker
        return self._worker

    async def collateral(self, worker: Worker) -> bytes | str | None:
        path: Path | None = self.args.collateral
        if path is not None:
            try:
                return path.read_bytes()
            except OSError as e:
                raise InvalidInputError(f"--collateral {path}: {e.strerror}") from None
        attestation = await worker.attestation()
        if attestation.tee_kind is TeeKind.SIM:  # needs no collateral, and no node
            return None
        return await chain_collateral(await self.chain(), attestation)

    async def identity(self, expected_mrenclave: MrEnclave | None = None) -> WorkerIdentity:
        """The worker, verified (see tocw.client.attestation); warns loudly about sim."""
        if self._identity is None:
            worker = await self.worker()
            self._identity = await verify_worker(
                worker,
                expected_mrenclave,
                allow_sim=bool(self.args.insecure_skip_attestation),
                collateral=await self.collateral(worker),
            )
            if not self._identity.is_secure:
                self.out.warn(SIM_WARNING)
        return self._identity

    async def trusted(
        self, expected_mrenclave: MrEnclave | None = None, shard: ShardId | None = None
    ) -> TrustedClient:
        """A TrustedClient over this context's verified worker and node."""
        if self._trusted is None:
            identity = await self.identity(expected_mrenclave)
            chain = await self.chain()
            self._trusted = TrustedClient(
                chain,
                await self.worker(),
                identity,
                await chain.token(),
                shard,
                timeout=self.timeout,
            )
        return self._trusted


def command(handler: Handler) -> Callable[[argparse.Namespace], int]:
    """The argparse `func` of a client command: runs `handler` and maps errors to exit codes."""

    def run(args: argparse.Namespace) -> int:
        for name, value in global_defaults().items():
            if not hasattr(args, name):
                setattr(args, name, value)
        out = Output(bool(args.json))

        async def go() -> None:
            ctx = Context(args, out)
            async with ctx.stack:
                await handler(ctx)

        try:
            asyncio.run(go())
        except InvalidInputError as e:
            out.warn(f"error: {e}")
            return EXIT_USAGE
        except ClientError as e:
            out.warn(f"error: {e}")
            return EXIT_ERROR
        except KeyboardInterrupt:
            out.warn("interrupted")
            return EXIT_INTERRUPTED
        return EXIT_OK

    return run
