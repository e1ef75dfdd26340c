"""A dev chain restarted on the same --base-path continues at the same height and state."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from substrateinterface import Keypair, SubstrateInterface

from tocw.chain.testing import launch_dev_chain, rpc_call, start_dev_chain

pytestmark = pytest.mark.e2e


def best_number(url: str) -> int:
    header = rpc_call(url, "chain_getHeader")
    assert isinstance(header, dict)
    return int(header["number"], 16)


def finalized_number(url: str) -> int:
    header = rpc_call(url, "chain_getHeader", [rpc_call(url, "chain_getFinalizedHead")])
    assert isinstance(header, dict)
    return int(header["number"], 16)


def wait_for(predicate: object, timeout: float = 20.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_chain_restart_continues_same_chain(tmp_path: Path) -> None:
    """Blocks, state and genesis survive a SIGTERM; the new process keeps authoring on top."""
    base = tmp_path / "base"
    bob = Keypair.create_from_uri("//Bob")
    with start_dev_chain(tmp_path / "run1", block_time=0.2, base_path=base) as url:
        genesis = rpc_call(url, "chain_getBlockHash", [0])
        substrate = SubstrateInterface(url=url)
        try:
            call = substrate.compose_call(
                "Balances", "transfer", {"dest": bob.ss58_address, "value": 12345}
            )
            xt = substrate.create_signed_extrinsic(call, Keypair.create_from_uri("//Alice"))
            receipt = substrate.submit_extrinsic(xt, wait_for_inclusion=True)
            assert receipt.is_success, receipt.error_message
            bob_after = substrate.query("System", "Account", [bob.ss58_address]).value
        finally:
            substrate.close()
        wait_for(lambda: best_number(url) >= 3)
        stop_number = best_number(url)
        stop_hash = rpc_call(url, "chain_getBlockHash", [stop_number])
        tx_block = receipt.block_hash
    assert (base / "chain.sqlite3").exists()

    with start_dev_chain(tmp_path / "run2", block_time=0.2, base_path=base) as url:
        assert rpc_call(url, "chain_getBlockHash", [0]) == genesis
        assert best_number(url) >= stop_number
        # The stored chain is the same up to where the first run stopped (it may have
        # authored a block between our last look and its shutdown).
        assert rpc_call(url, "chain_getBlockHash", [stop_number]) == stop_hash
        substrate = SubstrateInterface(url=url)
        try:
            bob_now = substrate.query("System", "Account", [bob.ss58_address], block_hash=tx_block)
            assert bob_now.value == bob_after
            block = substrate.get_block(block_hash=tx_block)
            assert any(x.value["call"]["call_function"] == "transfer" for x in block["extrinsics"])
        finally:
            substrate.close()
        wait_for(lambda: best_number(url) >= stop_number + 3)
        # Blocks left unfinalized by the first run get finalized by the second.
        wait_for(lambda: finalized_number(url) >= stop_number)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_chain_signal_stops_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    """SIGTERM and Ctrl-C (SIGINT) end the process with exit code 0 after a clean shutdown."""
    with launch_dev_chain(tmp_path, block_time=0.1, base_path=tmp_path / "base") as chain:
        wait_for(lambda: best_number(chain.url) >= 1)
        assert chain.stop(sig) == 0
        assert chain.stdout().rstrip().endswith("stopped")
        assert "Traceback" not in chain.stderr()
