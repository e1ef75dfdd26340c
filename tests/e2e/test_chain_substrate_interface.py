"""`tocw chain --dev` as a real process, driven by an unmodified substrate-interface 1.8.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from substrateinterface import Keypair, SubstrateInterface

from tocw.chain.testing import http_url, start_dev_chain

pytestmark = pytest.mark.e2e

UNIT = 10**12  # TEER has 12 decimals


@pytest.fixture(scope="module")
def chain_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chain")


@pytest.fixture(scope="module")
def chain_url(chain_dir: Path) -> Iterator[str]:
    with start_dev_chain(chain_dir, block_time=0.25, finality_delay=0.2) as url:
        yield url


@pytest.fixture(scope="module")
def substrate(chain_url: str) -> Iterator[SubstrateInterface]:
    client = SubstrateInterface(url=chain_url)
    try:
        yield client
    finally:
        client.close()


def free_balance(substrate: SubstrateInterface, address: str, block_hash: str | None = None) -> int:
    info = substrate.query("System", "Account", [address], block_hash=block_hash)
    return int(info.value["data"]["free"])


def transfer(
    substrate: SubstrateInterface, sender: Keypair, dest: str, value: int, call: str = "transfer"
) -> Any:
    payload = substrate.compose_call("Balances", call, {"dest": dest, "value": value})
    xt = substrate.create_signed_extrinsic(call=payload, keypair=sender)
    return substrate.submit_extrinsic(xt, wait_for_finalization=True)


def test_chain_connect_reports_dev_chain(substrate: SubstrateInterface) -> None:
    """Connect: chain name, SS58 format, token and runtime version come from the node."""
    assert substrate.chain == "Development"
    assert substrate.ss58_format == 42
    assert substrate.token_symbol == "TEER"
    assert substrate.token_decimals == 12
    version = substrate.get_block_runtime_version(substrate.get_chain_head())
    assert version["specVersion"] >= 1
    assert version["stateVersion"] == 1
    pallets = {p.name for p in substrate.get_metadata().pallets}
    assert {"System", "Timestamp", "Balances", "Teerex", "EnclaveBridge", "Sudo"} <= pallets
    assert "TransactionPayment" in pallets


def test_chain_transfer_alice_to_bob_finalized(substrate: SubstrateInterface) -> None:
    """A signed transfer is included, finalized, emits Transfer and moves the balance."""
    alice = Keypair.create_from_uri("//Alice")
    bob = Keypair.create_from_uri("//Bob")
    alice_before = free_balance(substrate, alice.ss58_address)
    bob_before = free_balance(substrate, bob.ss58_address)
    receipt = transfer(substrate, alice, bob.ss58_address, 7 * UNIT)
    assert receipt.is_success, receipt.error_message
    assert receipt.finalized
    names = [(e.value["module_id"], e.value["event_id"]) for e in receipt.triggered_events]
    assert ("Balances", "Transfer") in names
    assert ("System", "ExtrinsicSuccess") in names
    transfer_event = next(e for e in receipt.triggered_events if e.value["event_id"] == "Transfer")
    attrs = transfer_event.value["attributes"]
    assert attrs["from"] == alice.ss58_address and attrs["to"] == bob.ss58_address
    assert attrs["amount"] == 7 * UNIT
    withdrawn = [
        e.value["attributes"]["amount"]
        for e in receipt.triggered_events
        if e.value["event_id"] == "Withdraw" and e.value["attributes"]["who"] == alice.ss58_address
    ]
    fee = sum(withdrawn)
    assert fee > 0
    # substrate-interface reads the fee from TransactionPayment.TransactionFeePaid, as on a
    # polkadot-v0.9.42 chain: exactly what was withdrawn.
    assert ("TransactionPayment", "TransactionFeePaid") in names
    assert receipt.total_fee_amount == fee
    assert free_balance(substrate, bob.ss58_address) == bob_before + 7 * UNIT
    assert free_balance(substrate, alice.ss58_address) == alice_before - 7 * UNIT - fee


def test_chain_query_at_older_block(substrate: SubstrateInterface) -> None:
    """State stays queryable at the block hash before a change."""
    charlie = Keypair.create_from_uri("//Charlie")
    dave = Keypair.create_from_uri("//Dave")
    before_hash = substrate.get_chain_head()
    dave_before = free_balance(substrate, dave.ss58_address, before_hash)
    receipt = transfer(substrate, charlie, dave.ss58_address, UNIT, call="transfer_keep_alive")
    assert receipt.is_success, receipt.error_message
    assert free_balance(substrate, dave.ss58_address) == dave_before + UNIT
    assert free_balance(substrate, dave.ss58_address, before_hash) == dave_before
    nonce_now = substrate.get_account_nonce(charlie.ss58_address)
    old = substrate.query("System", "Account", [charlie.ss58_address], block_hash=before_hash)
    assert old.value["nonce"] == nonce_now - 1


def test_chain_failed_transfer_reports_extrinsic_failed(substrate: SubstrateInterface) -> None:
    """Sending more than one has: ExtrinsicFailed with a module error, fee still paid."""
    poor = Keypair.create_from_uri("//Poor")  # funded just enough to pay fees
    eve = Keypair.create_from_uri("//Eve")
    funded = transfer(substrate, eve, poor.ss58_address, UNIT)
    assert funded.is_success, funded.error_message
    nonce_before = substrate.get_account_nonce(poor.ss58_address)
    receipt = transfer(substrate, poor, eve.ss58_address, 1000 * UNIT)
    assert not receipt.is_success
    failed = [e for e in receipt.triggered_events if e.value["event_id"] == "ExtrinsicFailed"]
    assert len(failed) == 1 and failed[0].value["module_id"] == "System"
    error = failed[0].value["attributes"]["dispatch_error"]
    # polkadot-v0.9.42 Balances reports it as Token(FundsUnavailable); older ones as a module
    # error InsufficientBalance, which substrate-interface names in error_message.
    assert error == {"Token": "FundsUnavailable"} or (
        receipt.error_message is not None and receipt.error_message["name"] == "InsufficientBalance"
    )
    assert substrate.get_account_nonce(poor.ss58_address) == nonce_before + 1
    # The fee was charged, and the receipt reports it (TransactionFeePaid, even on failure).
    assert receipt.total_fee_amount > 0
    assert free_balance(substrate, poor.ss58_address) == UNIT - receipt.total_fee_amount


def test_chain_finalized_heads_subscription(substrate: SubstrateInterface) -> None:
    """subscribe_block_headers(finalized_only) delivers consecutive finalized headers."""
    seen: list[int] = []

    def handler(header: dict[str, Any], update_nr: int, subscription_id: str) -> bool | None:
        seen.append(int(header["header"]["number"]))
        return True if len(seen) >= 3 else None

    substrate.subscribe_block_headers(handler, finalized_only=True)
    assert len(seen) == 3
    assert seen[1] > seen[0] and seen[2] > seen[1]
    finalized = substrate.get_block_header(substrate.get_chain_finalised_head())
    assert finalized["header"]["number"] >= seen[-1]


def test_chain_pending_and_nonce_rpcs(substrate: SubstrateInterface) -> None:
    """account_nextIndex / system_accountNextIndex / payment info answer like a node."""
    ferdie = Keypair.create_from_uri("//Ferdie")
    nonce = substrate.get_account_nonce(ferdie.ss58_address)
    via_rpc = substrate.rpc_request("system_accountNextIndex", [ferdie.ss58_address])["result"]
    assert via_rpc == nonce
    call = substrate.compose_call("Balances", "transfer", {"dest": ferdie.ss58_address, "value": 1})
    info = substrate.get_payment_info(call, ferdie)
    assert info["partialFee"] > 0
    assert substrate.rpc_request("author_pendingExtrinsics", [])["result"] == []


def test_chain_process_logs_blocks(chain_url: str, chain_dir: Path) -> None:
    """The chain writes one log line per imported block (structured, with numbers)."""
    log = (chain_dir / "chain.stderr").read_text()
    assert "imported #1 0x" in log and "finalized #1 0x" in log


def test_chain_mortal_era_http_and_query_map(substrate: SubstrateInterface, chain_url: str) -> None:
    """A mortal-era extrinsic, an HTTP client on the same port, and query_map paging."""
    dave = Keypair.create_from_uri("//Dave")
    call = substrate.compose_call(
        "Balances", "transfer_keep_alive", {"dest": dave.ss58_address, "value": UNIT}
    )
    xt = substrate.create_signed_extrinsic(
        call, Keypair.create_from_uri("//Eve"), era={"period": 64}
    )
    receipt = substrate.submit_extrinsic(xt, wait_for_inclusion=True)
    assert receipt.is_success, receipt.error_message
    http = SubstrateInterface(url=http_url(chain_url))
    try:
        assert http.chain == "Development"
        assert free_balance(http, dave.ss58_address, receipt.block_hash) == free_balance(
            substrate, dave.ss58_address, receipt.block_hash
        )
    finally:
        http.close()
    accounts = {str(k.value) for k, _ in substrate.query_map("System", "Account", page_size=2)}
    assert dave.ss58_address in accounts and len(accounts) >= 6
