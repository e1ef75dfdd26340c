"""docs/cli.md is the generated command reference and must match the parser."""

from __future__ import annotations

from pathlib import Path

from tocw.cli.docs import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_cli_reference_is_current() -> None:
    """The committed reference equals `python -m tocw.cli.docs` (regenerate it if not)."""
    assert DOC.read_text() == render(), (
        "docs/cli.md is stale: run `.venv/bin/python -m tocw.cli.docs > docs/cli.md`"
    )


def test_cli_reference_lists_every_client_command() -> None:
    """Every client command of the issue appears with its own section."""
    text = render()
    for command in (
        "new-account", "list-accounts", "balance", "transfer", "faucet", "list-workers",
        "shield-funds", "listen", "print-metadata", "get-shielding-key", "verify-worker",
        "trusted transfer", "trusted set-balance", "trusted balance", "trusted nonce",
        "trusted unshield-funds", "trusted get-shard", "trusted get-shard-vault", "demo",
    ):  # fmt: skip
        assert f"\n## tocw {command}\n" in text, command
