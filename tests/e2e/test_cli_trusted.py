"""`tocw trusted ...` as subprocesses: incognito accounts and indirect invocations end to end.

One dev chain and one worker for the module; the tests run in file order and build on each
other's accounts (as Integritee's demo script does), each checking its own deltas.
"""

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
INSECURE = "--insecure-skip-attestation"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevNet]:
    with DevNet(tmp_path_factory.mktemp("cli-trusted")) as devnet:
        devnet.start()
        yield devnet


@pytest.fixture(scope="module")
def keystore(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keystore")


def tocw(net: DevNet, keystore: Path, *args: str) -> subprocess.CompletedProcess[str]:
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


def trusted(net: DevNet, keystore: Path, *args: str) -> Any:
    """`tocw trusted --json <args>` that must succeed; its JSON."""
    result = tocw(net, keystore, "trusted", "--json", INSECURE, *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_cli_trusted_accounts_and_shard(net: DevNet, keystore: Path) -> None:
    """Incognito accounts live in the keystore's trusted part; shard = MRENCLAVE by default."""
    bob = trusted(net, keystore, "new-account", "--name", "bob")
    trusted(net, keystore, "new-account", "--name", "charlie")
    names = [a["name"] for a in trusted(net, keystore, "list-accounts")]
    assert names == ["bob", "charlie"]
    assert bob["address"].startswith("5")
    assert trusted(net, keystore, "get-shard")["shard"] == net.mrenclave
    vault = trusted(net, keystore, "get-shard-vault")
    assert vault["public"] == net.mrenclave


def test_cli_trusted_shield_and_transfer(net: DevNet, keystore: Path) -> None:
    """Shielded funds can be sent inside the shard; balances and nonces move exactly."""
    result = tocw(net, keystore, INSECURE, "shield-funds", "//Alice", "bob", "3 TEER")
    assert result.returncode == 0, result.stderr
    assert tocw(net, keystore, "trusted", INSECURE, "balance", "bob").stdout.strip() == str(
        3 * UNIT
    )
    sent = trusted(net, keystore, "transfer", "bob", "charlie", "1.25 TEER")
    assert sent["executed"] is True
    assert (sent["nonce"], sent["nonce_after"]) == (0, 1)
    assert sent["confirmed_in"] > sent["block_number"]
    assert trusted(net, keystore, "balance", "charlie")["free"] == 1_250_000_000_000
    assert trusted(net, keystore, "nonce", "bob")["nonce"] == 1


def test_cli_trusted_failed_transfer_still_bumps_nonce(net: DevNet, keystore: Path) -> None:
    """A transfer beyond the balance fails with one error line and exit 1; nonce moves."""
    result = tocw(net, keystore, "trusted", INSECURE, "transfer", "bob", "charlie", "100 TEER")
    assert result.returncode == 1
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "FAILED in the worker" in error[0], result.stderr
    assert trusted(net, keystore, "nonce", "bob")["nonce"] == 2
    assert trusted(net, keystore, "balance", "bob")["free"] == 1_750_000_000_000


def test_cli_trusted_unshield_pays_on_l1(net: DevNet, keystore: Path) -> None:
    """unshield-funds waits for the payout and reports the L1 balance of the beneficiary."""
    result = tocw(net, keystore, "new-account", "--name", "dest", "--json")
    assert result.returncode == 0, result.stderr
    result = tocw(net, keystore, "trusted", INSECURE, "unshield-funds", "charlie", "dest", "1 TEER")
    assert result.returncode == 0, result.stderr
    assert "paid out on L1" in result.stdout and "dest now has 1 TEER" in result.stdout
    assert json.loads(tocw(net, keystore, "balance", "dest", "--json").stdout)["free"] == UNIT


def test_cli_trusted_set_balance_by_root(net: DevNet, keystore: Path) -> None:
    """set-balance signed by the dev root //Alice sets the balance; options go anywhere."""
    done = tocw(net, keystore, "trusted", "set-balance", "charlie", "7 TEER", INSECURE, "--json")
    assert done.returncode == 0, done.stderr
    assert trusted(net, keystore, "balance", "charlie")["free"] == 7 * UNIT


def test_cli_trusted_refusals(net: DevNet, keystore: Path) -> None:
    """Wrong MRENCLAVE, unattested worker, public-only accounts: one error line each."""
    wrong = tocw(
        net, keystore, "trusted", INSECURE, "--mrenclave", "0x" + "11" * 32, "balance", "bob"
    )
    assert wrong.returncode == 1 and "mrenclave mismatch" in wrong.stderr
    unattested = tocw(net, keystore, "trusted", "balance", "bob")
    assert unattested.returncode == 1 and "simulated TEE" in unattested.stderr
    no_key = tocw(
        net,
        keystore,
        "trusted",
        INSECURE,
        "balance",
        "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty",
    )
    assert no_key.returncode == 2 and "no secret key" in no_key.stderr
