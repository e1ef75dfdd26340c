"""`tocw` client commands fail with one clear line and a non-zero exit code, never a
traceback: unreachable node or worker, unknown accounts, bad URLs, bad options. No chain runs
here; most cases call main() in-process, one runs the installed console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tocw.cli.main import main


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("TOCW_NODE_URL", "TOCW_WORKER_URL", "TOCW_KEYSTORE_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TOCW_KEYSTORE", str(tmp_path / "ks"))


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "code", "needle"),
    [
        (
            ["--node-url", "ws://127.0.0.1:1", "balance", "//Alice"],
            1,
            "cannot reach the parentchain",
        ),
        (["balance", "//Alice", "--node-url", "ws://127.0.0.1:1"], 1, "ws://127.0.0.1:1"),
        (["balance", "nobody"], 2, "unknown account 'nobody'"),
        (
            ["transfer", "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty", "//Bob", "1"],
            2,
            "no secret key",
        ),
        (
            ["--worker-url", "wss://127.0.0.1:1", "get-shielding-key"],
            1,
            "cannot connect to the worker",
        ),
        (["--worker-url", "ws://127.0.0.1:2000", "verify-worker"], 1, "not a wss:// URL"),
        (["trusted", "--mrenclave", "0x12", "balance", "//Alice"], 2, "must be 32 bytes"),
        (
            ["trusted", "--shard", "zz", "nonce", "//Alice", "--worker-url", "wss://127.0.0.1:1"],
            2,
            "is not hex",
        ),
        (["listen", "--blocks", "0"], 2, "--blocks must be at least 1"),
    ],
)
def test_cli_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], code: int, needle: str
) -> None:
    """Each expected failure is exactly one `error:` line with a non-zero exit code."""
    assert main(argv) == code
    line = _one_error_line(capsys.readouterr().err)
    assert needle in line


def test_cli_errors_keystore_permissions(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A key file others can read is refused with the fix in the message."""
    assert main(["new-account", "--name", "k"]) == 0
    capsys.readouterr()
    (key_file,) = (tmp_path / "ks" / "parentchain").glob("*.json")
    key_file.chmod(0o644)
    assert main(["list-accounts"]) == 1
    assert "chmod 600" in _one_error_line(capsys.readouterr().err)


def test_cli_errors_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    """`tocw` alone prints the help and exits 2."""
    assert main([]) == 2
    assert "usage: tocw" in capsys.readouterr().out


def test_cli_errors_console_script() -> None:
    """The installed `tocw` script fails the same way, as a real process."""
    script = Path(sys.executable).with_name("tocw")
    assert script.exists(), f"console script not installed at {script}"
    result = subprocess.run(
        [str(script), "--node-url", "ws://127.0.0.1:1", "balance", "//Alice"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "cannot reach the parentchain node" in _one_error_line(result.stderr)
