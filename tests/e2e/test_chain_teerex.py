"""The Teerex / EnclaveBridge flow a worker drives, done with substrate-interface against the
dev chain process: register (Skip), invoke, shield, confirm, unshield twice (pays once)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from substrateinterface import Keypair, KeypairType, SubstrateInterface
from substrateinterface.utils.ss58 import ss58_encode

from tocw.chain.testing import start_dev_chain
from tocw.primitives.keys import Keypair as TocwKeypair
from tocw.primitives.keys import KeyScheme

pytestmark = pytest.mark.e2e

UNIT = 10**12


@pytest.fixture(scope="module")
def substrate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SubstrateInterface]:
    with start_dev_chain(
        tmp_path_factory.mktemp("teerex"), block_time=0, finality_delay=0.1
    ) as url:
        client = SubstrateInterface(url=url)
        try:
            yield client
        finally:
            client.close()


def submit(
    substrate: SubstrateInterface, signer: Keypair, pallet: str, call: str, params: dict[str, Any]
) -> Any:
    payload = substrate.compose_call(pallet, call, params)
    xt = substrate.create_signed_extrinsic(call=payload, keypair=signer)
    return substrate.submit_extrinsic(xt, wait_for_inclusion=True)


def events(receipt: Any, pallet: str, name: str) -> list[Any]:
    return [
        e.value["attributes"]
        for e in receipt.triggered_events
        if e.value["module_id"] == pallet and e.value["event_id"] == name
    ]


def free(substrate: SubstrateInterface, address: str) -> int:
    return int(substrate.query("System", "Account", [address]).value["data"]["free"])


def test_chain_teerex_enclave_bridge_flow(substrate: SubstrateInterface) -> None:
    """Each step is checked through its event and the storage it changes."""
    alice = Keypair.create_from_uri("//Alice")
    charlie = Keypair.create_from_uri("//Charlie")
    # substrate-interface cannot derive //Bob for ed25519; tocw's keys can, and give the seed.
    seed = TocwKeypair.from_uri("//Bob", KeyScheme.ED25519).export_secret()
    enclave = Keypair.create_from_seed("0x" + seed.hex(), crypto_type=KeypairType.ED25519)
    mrenclave = secrets.token_bytes(32)
    shard = "0x" + mrenclave.hex()

    funded = submit(
        substrate,
        alice,
        "Balances",
        "transfer",
        {"dest": enclave.ss58_address, "value": 100 * UNIT},
    )
    assert funded.is_success, funded.error_message

    # register_sgx_enclave with Skip: proof = SCALE(mrenclave), allowed on the dev chain
    r = submit(
        substrate,
        enclave,
        "Teerex",
        "register_sgx_enclave",
        {
            "proof": shard,
            "worker_url": "wss://127.0.0.1:2000",
            "attestation_method": {"Skip": {"proxied": False}},
        },
    )
    assert r.is_success, r.error_message
    (added,) = events(r, "Teerex", "AddedSgxEnclave")
    assert added["registered_by"] == enclave.ss58_address
    registered = substrate.query("Teerex", "SovereignEnclaves", [enclave.ss58_address]).value
    sgx = registered["Sgx"]
    assert sgx["mr_enclave"] == shard
    assert sgx["timestamp"] > 0
    assert sgx["attestation_method"] == {"Skip": {"proxied": False}}

    # invoke: an opaque ciphertext for the shard
    r = submit(
        substrate,
        alice,
        "EnclaveBridge",
        "invoke",
        {"request": {"shard": shard, "cyphertext": "0x" + secrets.token_bytes(384).hex()}},
    )
    assert r.is_success, r.error_message
    assert events(r, "EnclaveBridge", "IndirectInvocationRegistered") == [shard]

    # shield_funds: the amount moves to the vault (the shard bytes as an AccountId)
    vault = ss58_encode(mrenclave, 42)
    r = submit(
        substrate,
        alice,
        "EnclaveBridge",
        "shield_funds",
        {
            "shard": shard,
            "incognito_account_encrypted": "0x" + secrets.token_bytes(384).hex(),
            "amount": 5 * UNIT,
        },
    )
    assert r.is_success, r.error_message
    (shielded,) = events(r, "EnclaveBridge", "ShieldFunds")
    assert shielded["shard"] == shard and shielded["amount"] == 5 * UNIT
    assert free(substrate, vault) == 5 * UNIT
    shield_block = substrate.get_block_header(r.block_hash)["header"]

    # confirm_processed_parentchain_block: only the registered enclave of the shard
    root = "0x" + secrets.token_bytes(32).hex()
    confirm = {
        "shard": shard,
        "block_hash": r.block_hash,
        "block_number": shield_block["number"],
        "trusted_calls_merkle_root": root,
    }
    r = submit(substrate, enclave, "EnclaveBridge", "confirm_processed_parentchain_block", confirm)
    assert r.is_success, r.error_message
    (processed,) = events(r, "EnclaveBridge", "ProcessedParentchainBlock")
    assert processed["block_hash"] == confirm["block_hash"]
    assert processed["trusted_calls_merkle_root"] == root
    assert processed["block_number"] == shield_block["number"]
    status = substrate.query("EnclaveBridge", "ShardStatus", [shard]).value
    assert [s["signer"] for s in status] == [enclave.ss58_address]

    r = submit(substrate, alice, "EnclaveBridge", "confirm_processed_parentchain_block", confirm)
    assert not r.is_success  # Alice is no enclave

    # unshield_funds twice with the same call hash: paid once
    call_hash = "0x" + secrets.token_bytes(32).hex()
    unshield = {
        "shard": shard,
        "beneficiary": charlie.ss58_address,
        "amount": 2 * UNIT,
        "call_hash": call_hash,
    }
    charlie_before = free(substrate, charlie.ss58_address)
    r = submit(substrate, enclave, "EnclaveBridge", "unshield_funds", unshield)
    assert r.is_success, r.error_message
    (paid,) = events(r, "EnclaveBridge", "UnshieldedFunds")
    assert paid["beneficiary"] == charlie.ss58_address and paid["amount"] == 2 * UNIT
    assert free(substrate, charlie.ss58_address) == charlie_before + 2 * UNIT
    r = submit(substrate, enclave, "EnclaveBridge", "unshield_funds", unshield)
    assert r.is_success, r.error_message
    assert events(r, "EnclaveBridge", "UnshieldedFunds") == []
    assert free(substrate, charlie.ss58_address) == charlie_before + 2 * UNIT
    assert free(substrate, vault) == 3 * UNIT
    executed = substrate.query("EnclaveBridge", "ExecutedUnshieldCalls", [call_hash]).value
    assert executed == 2

    r = submit(substrate, alice, "EnclaveBridge", "unshield_funds", unshield)
    assert not r.is_success  # only a registered enclave of the shard may unshield
