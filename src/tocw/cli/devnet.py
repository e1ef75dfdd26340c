"""A local development network as child processes: `tocw chain --dev` and `tocw worker run`.

Owns `DevNet`, which `tocw demo` and the CLI's end-to-end tests use: it starts a dev chain on a
free port, then the shard's first worker (sim TEE, `--dev` funding) on free ports against it,
and optionally more workers that join that shard (each with its own data dir and ports; they get
the shielding key from a running worker over `--mu-ra-port` and replay the chain, see
docs/multi-worker.md). Every process writes its output to files of the work directory; DevNet
waits (bounded) for what each announces on stdout (the chain's `url:`; a worker's `mrenclave:`,
`shard:`, `signer:`, `mu-ra:`, `trusted-rpc:`, a joiner's `provisioned-from:`, and
`initialized:`), and always stops them: SIGTERM to every worker at once (so each can finish its
block, and two workers cost one grace period, not two), then the chain; SIGKILL after a grace
period. On Linux the children also get PR_SET_PDEATHSIG, so even a SIGKILLed parent leaves no
process behind. Nothing here knows the chain's or the worker's internals: they are run exactly
as a user runs them.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final

START_TIMEOUT: Final = 60.0
JOIN_TIMEOUT: Final = 90.0  # a joiner registers, waits for finality, gets the key, replays
STOP_TIMEOUT: Final = 15.0
POLL: Final = 0.05
_PR_SET_PDEATHSIG: Final = 1


class DevNetError(Exception):
    """A process of the dev network did not start, or died; the message quotes its log."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class ManagedProcess:
    """One child process with its output files; `announced` parses its `key: value` lines."""

    name: str
    proc: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    terminated: bool = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def announced(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for line in _read(self.stdout_path).splitlines():
            key, sep, value = line.partition(": ")
            if sep and key and " " not in key:
                found.setdefault(key, value.strip())
        return found

    def wait_for(self, key: str, deadline: float) -> str:
        """The value of the first `key: value` line, waiting until `deadline` (monotonic)."""
        while True:
            value = self.announced().get(key)
            if value is not None:
                return value
            if self.proc.poll() is not None:
                raise DevNetError(
                    f"{self.name} exited with code {self.proc.returncode} before announcing "
                    f"{key!r}:\n{self.tail()}"
                )
            if time.monotonic() >= deadline:
                raise DevNetError(f"{self.name} did not announce {key!r} in time:\n{self.tail()}")
            time.sleep(POLL)

    def tail(self, lines: int = 20) -> str:
        text = _read(self.stderr_path).splitlines()[-lines:]
        return "\n".join(f"    {line}" for line in text) or "    (no output)"

    def terminate(self) -> None:
        """Send SIGTERM once (a second one could cut the worker's orderly shutdown short)."""
        if not self.terminated and self.proc.poll() is None:
            self.terminated = True
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, wait, SIGKILL: the process is gone (and reaped) when this returns."""
        if self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        return self.proc.returncode


def _read(path: Path) -> str:
    try:
        return path.read_text("utf-8", "replace")
    except OSError:
        return ""


def tocw_command(*args: str) -> list[str]:
    """The command line running `tocw <args>` with this interpreter (works uninstalled too)."""
    return [sys.executable, "-m", "tocw.cli.main", *args]


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """What a started worker announced: enough to reach it and to tell it from the others."""

    name: str
    pid: int
    url: str  # trusted-rpc, wss://
    mrenclave: str  # 0x...
    shard: str  # 0x...
    signer: str  # "<ss58> 0x<hex>": the enclave's parentchain account
    mu_ra: str  # host:port of its provisioning server
    provisioned_from: str | None  # host:port of the giver; None for the shard's first worker
    data_dir: Path


def _worker_name(index: int) -> str:
    """worker-a, worker-b, ...: the log files' and the messages' name of the index-th worker."""
    return f"worker-{chr(ord('a') + index)}" if index < 26 else f"worker-{index + 1}"


@dataclass
class DevNet:
    """A dev chain and its workers: `with DevNet(workdir) as net: net.start(); net.node_url ...`.

    `start_worker` starts the shard's first worker; `join_worker` starts one more that joins its
    shard. `worker`, `worker_url` and `mrenclave` are the first worker's.
    """

    workdir: Path
    block_time: float = 1.0
    finality_delay: float = 0.3
    start_timeout: float = START_TIMEOUT
    join_timeout: float = JOIN_TIMEOUT
    chain: ManagedProcess | None = None
    workers: list[ManagedProcess] = field(default_factory=list)
    worker_infos: list[WorkerInfo] = field(default_factory=list)
    node_url: str = ""
    _env: dict[str, str] = field(default_factory=dict)

    @property
    def worker(self) -> ManagedProcess | None:
        return self.workers[0] if self.workers else None

    @property
    def worker_url(self) -> str:
        return self.worker_infos[0].url if self.worker_infos else ""

    @property
    def mrenclave(self) -> str:
        return self.worker_infos[0].mrenclave if self.worker_infos else ""

    def _spawn(self, name: str, args: list[str]) -> ManagedProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        out_path = self.workdir / f"{name}.out"
        err_path = self.workdir / f"{name}.log"
        env = dict(os.environ, PYTHONUNBUFFERED="1", **self._env)
        preexec = _die_with_parent if sys.platform == "linux" else None
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(
                tocw_command(*args),
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=env,
                preexec_fn=preexec,  # noqa: PLW1509 - no threads exist yet; see _die_with_parent
                # Own process group: a Ctrl-C in the terminal reaches only us, and we stop the
                # children in order (workers first) instead of all dying at once.
                process_group=0,
            )
        return ManagedProcess(name, proc, out_path, err_path)

    def start_chain(self) -> str:
        """Start the dev chain on a free port; its ws:// URL."""
        self.chain = self._spawn(
            "chain",
            [
                "chain",
                "--dev",
                "--tmp",
                "--ws-port",
                "0",
                "--block-time",
                str(self.block_time),
                "--finality-delay",
                str(self.finality_delay),
                "--log-level",
                "WARNING",
            ],
        )
        self.node_url = self.chain.wait_for("url", time.monotonic() + self.start_timeout)
        return self.node_url

    def _spawn_worker(self) -> tuple[ManagedProcess, Path]:
        if not self.node_url:
            raise DevNetError("start the chain before the worker")
        name = _worker_name(len(self.workers))
        data_dir = self.workdir / f"{name}-data"
        process = self._spawn(
            name,
            [
                "worker",
                "run",
                "--dev",
                "--node-url",
                self.node_url,
                "--data-dir",
                str(data_dir),
                "--trusted-port",
                "0",
                "--mu-ra-port",
                "0",
                "--health-port",
                "0",
                "--metrics-port",
                "0",
            ],
        )
        self.workers.append(process)
        return process, data_dir

    def _initialized(self, process: ManagedProcess, data_dir: Path, timeout: float) -> WorkerInfo:
        deadline = time.monotonic() + timeout
        values = {
            key: process.wait_for(key, deadline)
            for key in ("mrenclave", "shard", "signer", "mu-ra", "trusted-rpc", "initialized")
        }
        info = WorkerInfo(
            name=process.name,
            pid=process.pid,
            url=values["trusted-rpc"],
            mrenclave=values["mrenclave"],
            shard=values["shard"],
            signer=values["signer"],
            mu_ra=values["mu-ra"],
            provisioned_from=process.announced().get("provisioned-from"),
            data_dir=data_dir,
        )
        self.worker_infos.append(info)
        return info

    def start_worker(self) -> str:
        """Start the shard's first worker (sim TEE, --dev) against the chain; its wss:// URL
        once it is registered and in sync."""
        if self.workers:
            raise DevNetError("the first worker is running already; use join_worker for more")
        process, data_dir = self._spawn_worker()
        return self._initialized(process, data_dir, self.start_timeout).url

    def join_worker(self) -> WorkerInfo:
        """Start one more worker of the same build, with its own data dir and ports; it joins
        the first worker's shard (shielding key from a running worker, then replay). Returns
        once it is initialized, or raises DevNetError when it did not join that shard."""
        if not self.worker_infos:
            raise DevNetError("start the shard's first worker before joining it")
        first = self.worker_infos[0]
        process, data_dir = self._spawn_worker()
        info = self._initialized(process, data_dir, self.join_timeout)
        if info.shard != first.shard or info.mrenclave != first.mrenclave:
            raise DevNetError(
                f"{info.name} serves shard {info.shard} (mrenclave {info.mrenclave}), not the "
                f"shard {first.shard} of {first.name}:\n{process.tail()}"
            )
        if info.provisioned_from is None:
            raise DevNetError(
                f"{info.name} initialized without announcing 'provisioned-from': it did not get "
                f"the shard's key from another worker:\n{process.tail()}"
            )
        return info

    def start(self) -> None:
        """The chain and the shard's first worker."""
        self.start_chain()
        self.start_worker()

    @property
    def processes(self) -> list[ManagedProcess]:
        """Every process started, in stopping order: the workers (newest first), the chain."""
        chain = [self.chain] if self.chain is not None else []
        return [*reversed(self.workers), *chain]

    def check_alive(self) -> None:
        """DevNetError naming the process (with its log) if one has died."""
        for process in self.processes:
            if process.proc.poll() is not None:
                raise DevNetError(
                    f"the {process.name} exited with code {process.proc.returncode}:\n"
                    f"{process.tail()}"
                )

    def stop(self) -> None:
        """Stop the workers (SIGTERM to all at once), then the chain; all are gone when this
        returns."""
        for process in self.workers:
            process.terminate()
        for process in self.processes:
            process.stop()

    def __enter__(self) -> DevNet:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
