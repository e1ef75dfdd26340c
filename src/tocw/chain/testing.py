"""Start a dev chain for tests: as a subprocess (what users run) or inside this process.

    with start_dev_chain(tmp_path, block_time=0.5) as url:
        substrate = SubstrateInterface(url=url)

`start_dev_chain` runs `python -m tocw.cli.main chain --dev --ws-port 0 ...`, waits (bounded)
for the printed URL and for `system_chain` to answer, yields the ws URL, and always stops the
process (SIGTERM, then SIGKILL). The process's output goes to files under `tmp_path`, quoted
in the error when it fails to start.

`dev_chain_in_thread` runs a `DevNode` on an event loop in a background thread, for tests
that use a synchronous client (substrate-interface) without paying for a process start;
`DevNode` itself is the in-process API for async tests. `RpcHarness` is the cheapest of all:
an in-memory chain with its RPC API and one session, no sockets and no event loop, where a test
produces and finalizes blocks explicitly.

Tests only: nothing in the worker or the CLI imports this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tocw.chain.errors import ChainError
from tocw.chain.node import CHAIN_NAME, Chain, DevNode, ImportedBlock, NodeConfig
from tocw.chain.rpc_methods import NodeInfo, RpcApi, RpcSession, SubscriptionHub
from tocw.chain.runtime import Runtime
from tocw.chain.storage import DEFAULT_STATE_WINDOW, ChainStore
from tocw.primitives.extrinsic import build_signed_extrinsic
from tocw.primitives.keys import Keypair
from tocw.primitives.metadata import Variant

T = TypeVar("T")

START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
_POLL = 0.05


class DevChainStartError(ChainError, RuntimeError):
    """The dev chain did not come up; the message carries its output."""


def http_url(ws_url: str) -> str:
    """The HTTP JSON-RPC URL served on the same port as a ws:// URL."""
    return "http://" + ws_url.removeprefix("ws://")


def rpc_call(
    url: str, method: str, params: list[object] | None = None, timeout: float = 5.0
) -> object:
    """One JSON-RPC call over HTTP POST; returns the result or raises RuntimeError."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
    target = http_url(url) if url.startswith("ws://") else url
    req = urllib.request.Request(
        target, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        reply = json.loads(resp.read())
    if "error" in reply:
        raise RuntimeError(f"{method} failed: {reply['error']}")
    return reply["result"]


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


@dataclass
class DevChainProcess:
    """A running `tocw chain --dev` subprocess and where its output goes."""

    proc: subprocess.Popen[bytes]
    url: str
    stdout_path: Path
    stderr_path: Path

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Send `sig`, wait (bounded), SIGKILL if needed; returns the exit code."""
        return stop_process(self.proc, sig)

    def stdout(self) -> str:
        return _tail(self.stdout_path, 1_000_000)

    def stderr(self) -> str:
        return _tail(self.stderr_path, 1_000_000)


@contextlib.contextmanager
def launch_dev_chain(
    tmp_path: Path,
    *,
    block_time: float = 1.0,
    finality_delay: float = 0.3,
    base_path: Path | None = None,
    timeout: float = START_TIMEOUT,
    name: str = "chain",
) -> Iterator[DevChainProcess]:
    """Run `tocw chain --dev --ws-port 0` as a subprocess until the block exits (always
    stopped, killed if it does not stop). `base_path=None` runs it with --tmp."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    out_path = tmp_path / f"{name}.stdout"
    err_path = tmp_path / f"{name}.stderr"
    cmd = [
        sys.executable,
        "-m",
        "tocw.cli.main",
        "chain",
        "--dev",
        "--ws-port",
        "0",
        "--block-time",
        str(block_time),
        "--finality-delay",
        str(finality_delay),
    ]
    cmd += ["--tmp"] if base_path is None else ["--base-path", str(base_path)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
    try:
        url = _wait_for_url(proc, out_path, err_path, time.monotonic() + timeout)
        _wait_for_rpc(proc, url, err_path, time.monotonic() + timeout)
        yield DevChainProcess(proc, url, out_path, err_path)
    finally:
        stop_process(proc)


@contextlib.contextmanager
def start_dev_chain(
    tmp_path: Path,
    *,
    block_time: float = 1.0,
    finality_delay: float = 0.3,
    base_path: Path | None = None,
    timeout: float = START_TIMEOUT,
    name: str = "chain",
) -> Iterator[str]:
    """Run `tocw chain --dev` as a subprocess; yields its ws URL. `base_path=None` = --tmp."""
    with launch_dev_chain(
        tmp_path,
        block_time=block_time,
        finality_delay=finality_delay,
        base_path=base_path,
        timeout=timeout,
        name=name,
    ) as chain:
        yield chain.url


def stop_process(proc: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGTERM) -> int:
    """Send `sig` (SIGTERM), wait, then SIGKILL: the process is gone when this returns."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)
    return proc.returncode


def _wait_for_url(
    proc: subprocess.Popen[bytes], out_path: Path, err_path: Path, deadline: float
) -> str:
    while time.monotonic() < deadline:
        for line in _tail(out_path, 100_000).splitlines():
            if line.startswith("url: "):
                return line.removeprefix("url: ").strip()
        if proc.poll() is not None:
            raise DevChainStartError(f"dev chain exited with {proc.returncode}:\n{_tail(err_path)}")
        time.sleep(_POLL)
    raise DevChainStartError(f"dev chain printed no URL in time:\n{_tail(err_path)}")


def _wait_for_rpc(proc: subprocess.Popen[bytes], url: str, err_path: Path, deadline: float) -> None:
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DevChainStartError(f"dev chain exited with {proc.returncode}:\n{_tail(err_path)}")
        try:
            rpc_call(url, "system_chain", timeout=2.0)
            return
        except (OSError, urllib.error.URLError, RuntimeError) as e:
            last = e
        time.sleep(_POLL)
    raise DevChainStartError(f"dev chain does not answer RPC ({last}):\n{_tail(err_path)}")


@dataclass(frozen=True)
class ThreadedNode:
    """A DevNode running on an event loop in a background thread."""

    node: DevNode
    loop: asyncio.AbstractEventLoop

    @property
    def url(self) -> str:
        return self.node.url

    def run(self, fn: Callable[[DevNode], T], timeout: float = 30.0) -> T:
        """Call `fn(node)` on the node's loop thread (the node is not thread-safe)."""

        async def call() -> T:
            return fn(self.node)

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(timeout)


@contextlib.contextmanager
def dev_chain_in_thread(
    base_path: Path | None = None,
    *,
    block_time: float = 1.0,
    finality_delay: float = 0.3,
    timeout: float = START_TIMEOUT,
) -> Iterator[ThreadedNode]:
    """Run a DevNode on its own event loop in a daemon thread until the block exits."""
    config = NodeConfig(
        base_path=base_path, ws_port=0, block_time=block_time, finality_delay=finality_delay
    )
    node = DevNode(config)
    started = threading.Event()
    failure: list[BaseException] = []
    loop = asyncio.new_event_loop()

    async def main() -> None:
        try:
            async with node:
                started.set()
                await node.serve_forever()
        except BaseException as e:
            failure.append(e)
            raise
        finally:
            started.set()

    def runner() -> None:
        asyncio.set_event_loop(loop)
        with contextlib.suppress(BaseException):
            loop.run_until_complete(main())
        loop.close()

    thread = threading.Thread(target=runner, name="tocw-dev-chain", daemon=True)
    thread.start()
    try:
        if not started.wait(timeout):
            raise DevChainStartError("in-process dev chain did not start in time")
        if failure:
            raise DevChainStartError(f"in-process dev chain failed: {failure[0]!r}")
        yield ThreadedNode(node, loop)
    finally:
        with contextlib.suppress(RuntimeError):  # the loop already closed: nothing to stop
            loop.call_soon_threadsafe(node.stop)
        thread.join(STOP_TIMEOUT)


@dataclass
class RpcHarness:
    """An in-memory chain, its RPC API and one websocket-like session; what the session would
    push lands in `pushed`. Blocks are produced and finalized only when the test says so."""

    chain: Chain
    api: RpcApi
    session: RpcSession
    pushed: list[dict[str, Any]]
    clock_ms: int = 1_700_000_000_000
    _ids: int = 0

    def call(self, method: str, *params: Any) -> dict[str, Any]:
        """One request; returns the response object and moves the notifications that follow
        it (a new subscription's first value) to `pushed`."""
        self._ids += 1
        frame = json.dumps({"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params})
        replies = self.session.handle(frame)
        if not replies:
            raise AssertionError(f"no reply to {method}")
        response: dict[str, Any] = json.loads(replies[0])
        if response.get("id") != self._ids:
            raise AssertionError(f"reply to {method} is not the response: {response}")
        self.pushed.extend(json.loads(r) for r in replies[1:])
        return response

    def result(self, method: str, *params: Any) -> Any:
        response = self.call(method, *params)
        if "error" in response:
            raise AssertionError(f"{method} failed: {response['error']}")
        return response["result"]

    def error(self, method: str, *params: Any) -> dict[str, Any]:
        response = self.call(method, *params)
        if "error" not in response:
            raise AssertionError(f"{method} unexpectedly succeeded: {response}")
        error: dict[str, Any] = response["error"]
        return error

    def notifications(self, method: str) -> list[dict[str, Any]]:
        return [m for m in self.pushed if m.get("method") == method]

    def produce(self) -> ImportedBlock:
        """Author the next block, one second after the previous one."""
        self.clock_ms += 1000
        return self.chain.produce_block(self.clock_ms)

    def transfer(self, sender: Keypair, dest: bytes, value: int, nonce: int | None = None) -> bytes:
        return signed_transfer(self.chain, sender, dest, value, nonce)


def signed_transfer(
    chain: Chain, sender: Keypair, dest: bytes, value: int, nonce: int | None = None
) -> bytes:
    """A signed (immortal) Balances.transfer for `chain`, as a client would submit it: composed
    and signed from the metadata the chain serves, by the builder the worker uses. The nonce
    defaults to the sender's next index (pool included)."""
    runtime = chain.runtime
    if nonce is None:
        nonce = chain.account_next_index(sender.public_key)
    md = runtime.md
    call = md.encode_call("Balances", "transfer", {"dest": Variant("Id", dest), "value": value})
    return build_signed_extrinsic(
        md,
        call,
        sender,
        nonce=nonce,
        genesis_hash=chain.genesis_hash,
        spec_version=runtime.version.spec_version,
        transaction_version=runtime.version.transaction_version,
    )


@contextlib.contextmanager
def rpc_harness(state_window: int = DEFAULT_STATE_WINDOW) -> Iterator[RpcHarness]:
    store = ChainStore(None, state_window=state_window)
    chain = Chain(Runtime(), store)
    try:
        chain.open()
        hub = SubscriptionHub()
        chain.listeners.append(hub)
        api = RpcApi(chain, NodeInfo(chain_name=CHAIN_NAME), hub)
        pushed: list[dict[str, Any]] = []
        session = api.session(lambda text: pushed.append(json.loads(text)))
        yield RpcHarness(chain, api, session, pushed)
    finally:
        store.close()
