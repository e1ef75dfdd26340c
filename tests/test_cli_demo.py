"""`tocw demo`: failures name their step, and nothing is left behind on any exit path.

These run the demo in-process with parts of the dev network replaced so that it fails at a
chosen point; the full successful run is tests/e2e/test_demo.py.
"""

from __future__ import annotations

import io
import os
import signal
from pathlib import Path

import pytest
from rich.console import Console

from tocw.cli import demo
from tocw.cli.devnet import DevNet, DevNetError
from tocw.cli.main import main


def _console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=200, highlight=False), buffer


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_cli_demo_failure_names_the_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """A step that fails makes the demo exit 1, saying which step and why."""

    def boom(self: DevNet) -> str:
        raise DevNetError("no chain today")

    monkeypatch.setattr(DevNet, "start_chain", boom)
    console, buffer = _console()
    assert demo.run_demo(console) == 1
    out = buffer.getvalue()
    assert "demo FAILED at step 'start a dev chain (1 s blocks)': no chain today" in out
    assert demo.SUCCESS_LINE not in out


def test_cli_demo_stops_processes_when_a_later_step_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The real dev chain started by the demo is stopped when the worker step fails, and its
    log tail is shown."""
    started: list[int] = []
    real_start_chain = DevNet.start_chain

    def start_chain(self: DevNet) -> str:
        url = real_start_chain(self)
        assert self.chain is not None
        started.append(self.chain.pid)
        return url

    def no_worker(self: DevNet) -> str:
        raise DevNetError("worker refused to start")

    monkeypatch.setattr(DevNet, "start_chain", start_chain)
    monkeypatch.setattr(DevNet, "start_worker", no_worker)
    console, buffer = _console()
    assert demo.run_demo(console, workdir=tmp_path / "work") == 1
    out = buffer.getvalue()
    assert "worker refused to start" in out
    assert "last lines of the chain log (running)" in out
    assert started and _gone(started[0])
    assert f"pids {started[0]}" in out


def test_cli_demo_interrupt_cleans_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C (and SIGTERM, which the demo maps to it) exits 130 and removes the work dir."""
    seen: list[Path] = []

    def interrupted(self: DevNet) -> str:
        seen.append(self.workdir)
        raise KeyboardInterrupt

    monkeypatch.setattr(DevNet, "start_chain", interrupted)
    before = signal.getsignal(signal.SIGTERM)
    console, buffer = _console()
    assert demo.run_demo(console) == demo.EXIT_INTERRUPTED
    assert "interrupted" in buffer.getvalue()
    assert seen and not seen[0].exists()
    assert signal.getsignal(signal.SIGTERM) == before


def test_cli_demo_keep_keeps_the_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    """--keep leaves the work directory (with the logs) and says where it is."""
    seen: list[Path] = []

    def fail(self: DevNet) -> str:
        seen.append(self.workdir)
        raise DevNetError("stop here")

    monkeypatch.setattr(DevNet, "start_chain", fail)
    console, buffer = _console()
    assert demo.run_demo(console, keep=True) == 1
    try:
        assert seen[0].is_dir()
        assert f"kept the work directory {seen[0]}" in buffer.getvalue()
    finally:
        seen[0].rmdir()


def test_cli_demo_rejects_bad_block_time(capsys: pytest.CaptureFixture[str]) -> None:
    """An unusable --block-time is refused before anything starts."""
    assert main(["demo", "--block-time", "0"]) == 2
    assert "--block-time" in capsys.readouterr().out
