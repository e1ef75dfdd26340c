"""`tocw demo` (= `make demo`) as users run it: two workers, passes in time, and leaves nothing
behind, also when interrupted (Ctrl-C, SIGTERM) in the middle of the scenario."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tocw.cli.demo import EXIT_INTERRUPTED, SUCCESS_LINE
from tocw.cli.devnet import tocw_command

pytestmark = pytest.mark.e2e

DEMO_BUDGET = 90.0  # seconds, on a 2-core machine (the requirement)
WAIT = 90.0
POLL = 0.1


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _stopped_pids(out: str) -> list[int]:
    found = re.search(r"stopped the dev chain and the workers \(pids ([\d, ]+)\)", out)
    assert found is not None, out
    return [int(pid) for pid in found.group(1).split(", ")]


def test_demo_passes_in_time_and_cleans_up() -> None:
    """Exit 0 with every check held on both workers, under the time budget; its three
    processes and its directory are gone afterwards."""
    start = time.monotonic()
    result = subprocess.run(
        tocw_command("demo"), capture_output=True, text=True, timeout=180, check=False
    )
    elapsed = time.monotonic() - start
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert SUCCESS_LINE in out
    for needle in (
        "mrenclave 0x",
        "shard     0x",
        "NOT SECURE",
        "worker B provisioned-from (A's mu-ra) = 127.0.0.1:",
        "B serves the shielding key A generated",
        "//Ferdie's L1 gain = 1 TEER",
        "Bob-A's nonce (moved anyway) = 4",
        "Bob-B's nonce (moved anyway) = 4",
        "Bob-A (incognito) balance = 1.2 TEER",
        "Charlie-B (incognito) balance = 0.8 TEER",
        "Bob-A balance via B = 1.2 TEER",
        "Charlie-B balance via A = 0.8 TEER",
        "shard vault on L1 = 10 TEER",
        "A and B report the same state root",
        "final balances in the shard, read through both workers",
    ):
        assert needle in out, f"missing {needle!r}:\n{out}"
    assert out.count("//Ferdie's L1 gain = 1 TEER") == 2
    a = re.search(r"worker A  (wss://\S+)  \(pid \d+, mu-ra (\S+)\)", out)
    b = re.search(r"worker B  (wss://\S+)  \(pid \d+, mu-ra (\S+), provisioned-from (\S+)\)", out)
    assert a is not None and b is not None, out
    assert a.group(1) != b.group(1) and b.group(3) == a.group(2)
    roots = re.findall(r"worker ([AB]): state root (0x[0-9a-f]{64}) after block #(\d+)", out)
    assert len(roots) == 2 and roots[0][1:] == roots[1][1:], roots
    assert elapsed < DEMO_BUDGET, f"the demo took {elapsed:.0f} s"
    pids = _stopped_pids(out)
    assert len(pids) == 3 and all(_gone(pid) for pid in pids)
    workdir = re.search(r"work directory (\S+)", out)
    assert workdir is not None and not Path(workdir.group(1)).exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_demo_interrupted_mid_scenario_stops_everything(tmp_path: Path, signum: int) -> None:
    """Ctrl-C or SIGTERM while the scenario runs against worker A (both workers up): exit 130,
    the chain and both workers gone, the work directory removed."""
    out_path = tmp_path / "demo.out"
    with open(out_path, "wb") as out_file:
        proc = subprocess.Popen(tocw_command("demo"), stdout=out_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + WAIT
        while "> A: shield" not in out_path.read_text("utf-8", "replace"):
            assert proc.poll() is None, out_path.read_text("utf-8", "replace")
            assert time.monotonic() < deadline, "the scenario did not start in time"
            time.sleep(POLL)
        proc.send_signal(signum)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()  # its children die with it (PR_SET_PDEATHSIG)
            proc.wait()
    out = out_path.read_text("utf-8", "replace")
    assert code == EXIT_INTERRUPTED, out
    assert "interrupted" in out and SUCCESS_LINE not in out
    pids = _stopped_pids(out)
    assert len(pids) == 3 and all(_gone(pid) for pid in pids), out
    workdir = re.search(r"work directory (\S+)", out)
    assert workdir is not None and not Path(workdir.group(1)).exists()
