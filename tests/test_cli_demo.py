"""`tocw demo` (interim): runs in-process and as the installed console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tocw.cli import demo
from tocw.cli.main import main

ALICE_SS58 = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
BOB_SS58 = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"
KEY_LINES = [
    "public key JSON:",
    "modulus fingerprint sha256(n): 0x",
    f"from //Alice {ALICE_SS58}",
    f"to   //Bob   {BOB_SS58}",
    "[ok] decrypted operation equals what the client sent",
    "[ok] signature verifies for //Alice",
    "[ok] a ciphertext with one flipped bit is rejected",
    "trusted_calls_merkle_root: 0x",
    "all checks held.",
    demo.FINAL_LINE,
]


def _assert_key_lines(output: str) -> None:
    for line in KEY_LINES:
        assert line in output, f"missing {line!r} in demo output:\n{output}"
    assert "FAILED" not in output


def test_cli_demo_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    """`tocw demo` through main() exits 0 and prints every check as held."""
    assert main(["demo"]) == 0
    _assert_key_lines(capsys.readouterr().out)


def test_cli_demo_console_script() -> None:
    """The installed `tocw` console script runs the demo and exits 0."""
    script = Path(sys.executable).with_name("tocw")
    assert script.exists(), f"console script not installed at {script}"
    result = subprocess.run(
        [str(script), "demo"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    _assert_key_lines(result.stdout)


def test_cli_demo_fails_when_a_check_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """If a check does not hold the demo says so and exits 1 (its exit code means something)."""
    monkeypatch.setattr(demo, "check_call_signature", lambda *args: False)
    lines: list[str] = []
    assert demo.run_demo(lines.append) == 1
    output = "\n".join(lines)
    assert "[FAILED] signature verifies for //Alice" in output
    assert "demo FAILED: 1 check(s) did not hold" in output
    assert demo.FINAL_LINE not in output
