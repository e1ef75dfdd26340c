"""`tocw demo` and its DevNet: failures name their step, a joiner is checked, and nothing is left
behind on any exit path.

These run the demo in-process with parts of the dev network replaced so that it fails at a
chosen point, or with the chain and the workers replaced by small programs that announce what
the real ones announce (so the process handling is real and fast); the full successful run is
tests/e2e/test_demo.py.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from tocw.cli import demo, devnet
from tocw.cli.devnet import DevNet, DevNetError
from tocw.cli.main import main

# A stand-in for `tocw chain` / `tocw worker run`: prints `key: value` lines on stdout, then
# either fails (a line on stderr, exit 1) or waits; every SIGTERM it gets is counted in a file.
FAKE = r"""
import json, signal, sys, time
spec = json.loads(sys.argv[1])
def term(*_):
    with open(spec["terms"], "a") as f:
        f.write("TERM\n")
    time.sleep(0.2)
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
for key, value in spec["lines"]:
    print(f"{key}: {value}", flush=True)
if spec.get("fail"):
    print(spec["fail"], file=sys.stderr, flush=True)
    sys.exit(1)
time.sleep(60)
"""
SHARD = "0x" + "ab" * 32


def _worker_lines(
    mu_ra: str, *, shard: str = SHARD, provisioned_from: str | None = None
) -> list[tuple[str, str]]:
    lines = [
        ("mrenclave", SHARD),
        ("shard", shard),
        ("signer", "5Fake 0x" + "01" * 32),
        ("mu-ra", mu_ra),
        ("trusted-rpc", f"wss://127.0.0.1:{mu_ra.rsplit(':', 1)[1]}"),
    ]
    if provisioned_from is not None:
        lines.append(("provisioned-from", provisioned_from))
    return [*lines, ("initialized", "5")]


def _fake_programs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, specs: list[dict[str, Any]]
) -> list[Path]:
    """Replace the `tocw` command lines DevNet runs with FAKE programs, one spec per spawn in
    order; returns the files counting each one's SIGTERMs."""
    queue = list(specs)
    terms: list[Path] = []

    def command(*args: str) -> list[str]:
        spec = dict(queue.pop(0), terms=str(tmp_path / f"terms-{len(terms)}"))
        terms.append(Path(spec["terms"]))
        return [sys.executable, "-c", FAKE, json.dumps(spec)]

    monkeypatch.setattr(devnet, "tocw_command", command)
    return terms


def _console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=200, highlight=False), buffer


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _net(tmp_path: Path) -> DevNet:
    net = DevNet(tmp_path / "net", start_timeout=15.0, join_timeout=15.0)
    net.node_url = "ws://127.0.0.1:9"  # the fake workers never connect
    return net


def test_devnet_join_worker_reports_the_joiner_and_stop_terminates_each_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """join_worker returns what the joiner announced; stop sends every worker one SIGTERM and
    leaves no process behind."""
    terms = _fake_programs(
        monkeypatch,
        tmp_path,
        [
            {"lines": _worker_lines("127.0.0.1:3443")},
            {"lines": _worker_lines("127.0.0.1:3444", provisioned_from="127.0.0.1:3443")},
        ],
    )
    net = _net(tmp_path)
    with net:
        assert net.start_worker() == "wss://127.0.0.1:3443"
        joined = net.join_worker()
        assert joined.name == "worker-b"
        assert joined.url == "wss://127.0.0.1:3444"
        assert joined.mu_ra == "127.0.0.1:3444"
        assert joined.provisioned_from == "127.0.0.1:3443"
        assert joined.shard == SHARD and joined.data_dir == net.workdir / "worker-b-data"
        assert net.worker_infos[0].provisioned_from is None
        assert net.worker_url == "wss://127.0.0.1:3443" and net.mrenclave == SHARD
        assert [p.name for p in net.processes] == ["worker-b", "worker-a"]
        pids = [p.pid for p in net.processes]
    assert all(_gone(pid) for pid in pids)
    assert [t.read_text() for t in terms] == ["TERM\n", "TERM\n"]


def test_devnet_join_worker_refuses_a_worker_that_did_not_get_the_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A second worker that initializes without `provisioned-from` made a key of its own: the
    join fails with that reason."""
    _fake_programs(
        monkeypatch,
        tmp_path,
        [{"lines": _worker_lines("127.0.0.1:3443")}, {"lines": _worker_lines("127.0.0.1:3444")}],
    )
    with _net(tmp_path) as net:
        net.start_worker()
        with pytest.raises(DevNetError, match="did not get the shard's key"):
            net.join_worker()


def test_devnet_join_worker_refuses_another_shard(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A second worker serving another shard did not join the first worker's."""
    other = "0x" + "cd" * 32
    _fake_programs(
        monkeypatch,
        tmp_path,
        [
            {"lines": _worker_lines("127.0.0.1:3443")},
            {"lines": _worker_lines("127.0.0.1:3444", shard=other, provisioned_from="x:1")},
        ],
    )
    with _net(tmp_path) as net:
        net.start_worker()
        with pytest.raises(DevNetError, match=f"serves shard {other}"):
            net.join_worker()


def test_devnet_worker_order_is_enforced(tmp_path: Path) -> None:
    """No worker before the chain, no joiner before the first worker."""
    net = DevNet(tmp_path)
    with pytest.raises(DevNetError, match="start the chain"):
        net.start_worker()
    net.node_url = "ws://127.0.0.1:9"
    with pytest.raises(DevNetError, match="first worker before joining"):
        net.join_worker()


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


def test_cli_demo_failed_join_stops_chain_and_first_worker(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Worker B exiting before it is initialized fails the join step with its log; the chain
    and worker A are stopped, each with one SIGTERM."""
    terms = _fake_programs(
        monkeypatch,
        tmp_path,
        [
            {"lines": [("url", "ws://127.0.0.1:9")]},
            {"lines": _worker_lines("127.0.0.1:3443")},
            {"lines": [("mrenclave", SHARD)], "fail": "no shielding key after 300 s: refused"},
        ],
    )
    console, buffer = _console()
    assert demo.run_demo(console, workdir=tmp_path / "work") == 1
    out = buffer.getvalue()
    assert "demo FAILED at step 'start worker B: it joins the shard" in out
    assert "no shielding key after 300 s: refused" in out
    assert "last lines of the worker-b log (exited with 1)" in out
    assert "last lines of the worker-a log (running)" in out
    assert "worker A  wss://127.0.0.1:3443" in out
    pids = [int(p) for p in out.split("(pids ")[1].split(")")[0].split(", ")]
    assert len(pids) == 3 and all(_gone(pid) for pid in pids)
    assert [t.read_text() for t in terms[:2]] == ["TERM\n", "TERM\n"]


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


@pytest.mark.parametrize("where", ["start_chain", "join_worker"])
def test_cli_demo_interrupt_cleans_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, where: str
) -> None:
    """Ctrl-C (and SIGTERM, which the demo maps to it) exits 130, stops what was started and
    removes the work dir."""
    seen: list[Path] = []
    if where == "join_worker":
        _fake_programs(
            monkeypatch,
            tmp_path,
            [{"lines": [("url", "ws://127.0.0.1:9")]}, {"lines": _worker_lines("127.0.0.1:3443")}],
        )

    def interrupted(self: DevNet) -> Any:
        seen.append(self.workdir)
        raise KeyboardInterrupt

    monkeypatch.setattr(DevNet, where, interrupted)
    before = signal.getsignal(signal.SIGTERM)
    console, buffer = _console()
    assert demo.run_demo(console) == demo.EXIT_INTERRUPTED
    out = buffer.getvalue()
    assert "interrupted" in out
    assert seen and not seen[0].exists()
    assert signal.getsignal(signal.SIGTERM) == before
    if where == "join_worker":
        pids = [int(p) for p in out.split("(pids ")[1].split(")")[0].split(", ")]
        assert len(pids) == 2 and all(_gone(pid) for pid in pids)


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
