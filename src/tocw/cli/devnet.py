"""A local development network as child processes: `tocw chain --dev` and `tocw worker run`.

Owns `DevNet`, which `tocw demo` and the CLI's end-to-end tests use: it starts a dev chain on a
free port, then a worker (sim TEE, `--dev` funding) on free ports against it, each with its
output in files of a work directory, waits (bounded) for what each announces on stdout (the
chain's `url:`, the worker's `trusted-rpc:`, `mrenclave:` and `initialized:`), and always stops
them: SIGTERM (the worker first, so it can finish its block), then SIGKILL after a grace period.
On Linux the children also get PR_SET_PDEATHSIG, so even a SIGKILLed parent leaves no process
behind. Nothing here knows the chain's or the worker's internals: they are run exactly as a user
runs them.
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

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, wait, SIGKILL: the process is gone (and reaped) when this returns."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
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


@dataclass
class DevNet:
    """A dev chain and one worker: `with DevNet(workdir) as net: net.node_url ...`."""

    workdir: Path
    block_time: float = 1.0
    finality_delay: float = 0.3
    start_timeout: float = START_TIMEOUT
    chain: ManagedProcess | None = None
    worker: ManagedProcess | None = None
    node_url: str = ""
    worker_url: str = ""
    mrenclave: str = ""
    _env: dict[str, str] = field(default_factory=dict)

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

    def start_worker(self) -> str:
        """Start one worker (sim TEE, --dev) against the chain; its wss:// URL once it is
        registered and in sync."""
        if not self.node_url:
            raise DevNetError("start the chain before the worker")
        self.worker = self._spawn(
            "worker",
            [
                "worker",
                "run",
                "--dev",
                "--node-url",
                self.node_url,
                "--data-dir",
                str(self.workdir / "worker-data"),
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
        deadline = time.monotonic() + self.start_timeout
        self.mrenclave = self.worker.wait_for("mrenclave", deadline)
        self.worker_url = self.worker.wait_for("trusted-rpc", deadline)
        self.worker.wait_for("initialized", deadline)
        return self.worker_url

    def start(self) -> None:
        self.start_chain()
        self.start_worker()

    @property
    def processes(self) -> list[ManagedProcess]:
        return [p for p in (self.worker, self.chain) if p is not None]

    def check_alive(self) -> None:
        """DevNetError naming the process (with its log) if one has died."""
        for process in self.processes:
            if process.proc.poll() is not None:
                raise DevNetError(
                    f"the {process.name} exited with code {process.proc.returncode}:\n"
                    f"{process.tail()}"
                )

    def stop(self) -> None:
        """Stop the worker, then the chain; both are gone when this returns."""
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
