"""`tocw worker` as a user runs it: identity commands, config errors, clean reset, SIGTERM while
starting. No node is needed (the identity commands never contact one; the others point at a
closed port)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tocw.chain.testing import stop_process
from tocw.primitives.shielding import ShieldingPublicKey
from tocw.primitives.ss58 import ss58_decode
from tocw.worker.config import load_config
from tocw.worker.service import open_enclave

pytestmark = pytest.mark.e2e

TIMEOUT = 60.0


def tocw(*args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tocw.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        check=False,
    )


def closed_port_url() -> str:
    """A ws:// URL nobody listens on (the port was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"ws://127.0.0.1:{port}"


def signing_key(data_dir: Path) -> str:
    result = tocw("worker", "signing-key", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_worker_cli_identity_commands_print_and_exit(tmp_path: Path) -> None:
    """mrenclave, shielding-key and signing-key print the enclave's identity, stable across
    runs; a data dir without a shielding key says so instead of creating one."""
    data = tmp_path / "data"
    mrenclave = tocw("worker", "mrenclave", "--data-dir", str(data))
    assert mrenclave.returncode == 0, mrenclave.stderr
    assert re.fullmatch(r"0x[0-9a-f]{64}\n", mrenclave.stdout)

    missing = tocw("worker", "shielding-key", "--data-dir", str(data))
    assert missing.returncode == 1
    assert "no shielding key yet" in missing.stderr  # identity commands never create one
    with open_enclave(load_config({"data_dir": str(data)})) as enclave:  # as `worker run` does
        created = enclave.shielding_public_key_json()
    key = tocw("worker", "shielding-key", "--data-dir", str(data))
    assert key.returncode == 0, key.stderr
    assert key.stdout.strip() == created
    assert len(json.loads(key.stdout)["n"]) == 384
    assert ShieldingPublicKey.from_json(key.stdout.strip()) is not None

    first = signing_key(data)
    ss58 = re.search(r"^ss58: (\S+)$", first, re.M)
    public = re.search(r"^public: 0x([0-9a-f]{64})$", first, re.M)
    assert ss58 is not None and public is not None
    assert ss58_decode(ss58.group(1)) == bytes.fromhex(public.group(1))
    assert signing_key(data) == first  # the keys were sealed, not regenerated
    again = tocw("worker", "mrenclave", "--data-dir", str(data))
    assert again.stdout == mrenclave.stdout


def test_worker_cli_config_errors_exit_2(tmp_path: Path) -> None:
    """A missing data dir or a malformed flag is a clear message and exit code 2."""
    env_free = tocw("worker", "run", "--node-url", closed_port_url())
    assert env_free.returncode == 2
    assert "data_dir is required" in env_free.stderr
    bad_shard = tocw("worker", "run", "--data-dir", str(tmp_path), "--shard", "0x1234")
    assert bad_shard.returncode == 2
    assert "shard" in bad_shard.stderr and "32 bytes" in bad_shard.stderr
    bad_url = tocw("worker", "run", "--data-dir", str(tmp_path), "--node-url", "http://x:1")
    assert bad_url.returncode == 2 and "node_url" in bad_url.stderr


def test_worker_cli_clean_reset_refuses_foreign_dir(tmp_path: Path) -> None:
    """--clean-reset never empties a directory that is not a tocw worker's."""
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"\xff\xd8")
    result = tocw(
        "worker",
        "run",
        "--data-dir",
        str(foreign),
        "--clean-reset",
        "--node-url",
        closed_port_url(),
    )
    assert result.returncode == 1
    assert "not a tocw worker data dir" in result.stderr
    assert (foreign / "holiday.jpg").read_bytes() == b"\xff\xd8"


def test_worker_cli_clean_reset_and_sigterm_while_starting(tmp_path: Path) -> None:
    """--clean-reset wipes a worker's keys (a new signer); SIGTERM while it waits for the node
    stops it cleanly with exit code 0."""
    data = tmp_path / "data"
    before = signing_key(data)
    out = tmp_path / "run.stdout"
    with open(out, "wb") as fo, open(tmp_path / "run.stderr", "wb") as fe:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tocw.cli.main",
                "worker",
                "run",
                "--data-dir",
                str(data),
                "--clean-reset",
                "--node-url",
                closed_port_url(),
                "--health-port",
                "0",
                "--metrics-port",
                "0",
                "--trusted-port",
                "0",
                "--mu-ra-port",
                "0",
            ],
            stdout=fo,
            stderr=fe,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
    try:
        deadline = time.monotonic() + TIMEOUT
        while "signer:" not in out.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "run.stderr").read_text()
            time.sleep(0.05)
        stderr_path = tmp_path / "run.stderr"
        while "cannot connect" not in stderr_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        code = stop_process(proc)
    assert code == 0, (tmp_path / "run.stderr").read_text()
    assert "stopped during startup" in (tmp_path / "run.stderr").read_text()
    assert signing_key(data) != before
