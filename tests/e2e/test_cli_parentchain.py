"""The parentchain commands of `tocw`, run as subprocesses against a dev chain and a worker."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tocw.cli.devnet import DevNet, tocw_command

pytestmark = pytest.mark.e2e

UNIT = 10**12
CLI_TIMEOUT = 90.0


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevNet]:
    with DevNet(tmp_path_factory.mktemp("cli-parentchain")) as devnet:
        devnet.start()
        yield devnet


@pytest.fixture(scope="module")
def keystore(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keystore")


def tocw(net: DevNet, keystore: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `tocw <args>` against the dev network; expected failures never print tracebacks."""
    env = dict(
        os.environ,
        TOCW_NODE_URL=net.node_url,
        TOCW_WORKER_URL=net.worker_url,
        TOCW_KEYSTORE=str(keystore),
    )
    env.pop("TOCW_KEYSTORE_PASSWORD", None)
    result = subprocess.run(
        tocw_command(*args),
        capture_output=True,
        text=True,
        env=env,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    net.check_alive()  # a failure caused by a dead chain or worker shows its log
    return result


def ok_json(net: DevNet, keystore: Path, *args: str) -> Any:
    result = tocw(net, keystore, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_cli_balance_text_and_json(net: DevNet, keystore: Path) -> None:
    """`balance` prints base units (Integritee-compatible), --json the account's details."""
    result = tocw(net, keystore, "balance", "//Alice")
    assert result.returncode == 0, result.stderr
    free = int(result.stdout.strip())
    assert free > 0
    data = ok_json(net, keystore, "balance", "//Bob")
    assert data["account"] == "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"
    assert data["formatted"].endswith(" TEER")


def test_cli_accounts_faucet_and_transfer(net: DevNet, keystore: Path) -> None:
    """A keystore account funded by the faucet transfers by name; amounts take units."""
    created = ok_json(net, keystore, "new-account", "--name", "carol")
    listed = ok_json(net, keystore, "list-accounts")
    assert [a["name"] for a in listed] == ["carol"]
    assert listed[0]["address"] == created["address"]
    funded = ok_json(net, keystore, "faucet", "carol", "--amount", "10 TEER")
    assert funded["to_free"] == 10 * UNIT
    sent = ok_json(net, keystore, "transfer", "carol", "//Dave", "1.5 TEER")
    assert sent["amount"] == 1_500_000_000_000 and sent["block_number"] > 0
    assert ok_json(net, keystore, "balance", "carol")["free"] < 10 * UNIT - 1_500_000_000_000


def test_cli_transfer_failure_is_one_line(net: DevNet, keystore: Path) -> None:
    """An on-chain failure is one error line naming the pallet error, exit code 1."""
    ok_json(net, keystore, "new-account", "--name", "poor")
    ok_json(net, keystore, "faucet", "poor", "--amount", "1 TEER")
    result = tocw(net, keystore, "transfer", "poor", "//Alice", "50 TEER")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "InsufficientBalance" in lines[0], result.stderr


def test_cli_list_workers(net: DevNet, keystore: Path) -> None:
    """The worker is in the Teerex registry with its MRENCLAVE and URL; the table shows it."""
    workers = ok_json(net, keystore, "list-workers")
    assert len(workers) == 1
    assert workers[0]["mrenclave"] == net.mrenclave
    assert workers[0]["url"] == net.worker_url
    table = tocw(net, keystore, "list-workers")
    assert net.worker_url in table.stdout and "mrenclave" in table.stdout


def test_cli_worker_attestation_commands(net: DevNet, keystore: Path) -> None:
    """Sim workers are refused unless acknowledged; then verified, bound and registered."""
    refused = tocw(net, keystore, "get-shielding-key")
    assert refused.returncode == 1
    assert "--insecure-skip-attestation" in refused.stderr
    key = ok_json(net, keystore, "get-shielding-key", "--insecure-skip-attestation")
    assert len(key["shielding_key"]["n"]) == 384
    assert (
        "NOT SECURE" in tocw(net, keystore, "--insecure-skip-attestation", "verify-worker").stderr
    )
    report = ok_json(net, keystore, "verify-worker", "--insecure-skip-attestation")
    assert report["mrenclave"] == net.mrenclave
    assert report["registered"] is True and report["secure"] is False
    wrong = tocw(
        net,
        keystore,
        "verify-worker",
        "--insecure-skip-attestation",
        "--mrenclave",
        "0x" + "00" * 32,
    )
    assert wrong.returncode == 1 and "mrenclave mismatch" in wrong.stderr


def test_cli_print_metadata_and_listen(net: DevNet, keystore: Path) -> None:
    """print-metadata lists the bridge's calls; listen prints events of finalized blocks."""
    pallets = {p["name"]: p for p in ok_json(net, keystore, "print-metadata")}
    calls = {c["name"] for c in pallets["EnclaveBridge"]["calls"]}
    assert {"invoke", "shield_funds", "confirm_processed_parentchain_block"} <= calls
    text = tocw(net, keystore, "print-metadata").stdout
    assert "Teerex (index" in text
    result = tocw(net, keystore, "listen", "--blocks", "2", "--json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events and {"block_number", "pallet", "event", "attributes"} <= set(events[0])
    assert len({e["block_number"] for e in events}) <= 2


def test_cli_shield_funds(net: DevNet, keystore: Path) -> None:
    """shield-funds credits the incognito account once a worker processed the block."""
    ok_json(net, keystore, "trusted", "new-account", "--name", "inc")
    data = ok_json(
        net, keystore, "--insecure-skip-attestation", "shield-funds", "//Alice", "inc", "2 TEER"
    )
    assert data["incognito_free"] == 2 * UNIT
    assert data["shard"] == net.mrenclave
    assert data["processed_in"] > data["block_number"]
