"""EnclaveBridge: invoke, shielding into the vault, confirmations and unshielding by registered
enclaves of the shard, publish_hash, shard configs and status."""

from __future__ import annotations

from typing import Any

from tocw.chain.pallets import enclave_bridge, system
from tocw.chain.pallets.enclave_bridge import ShardConfig, ShardSignerStatus, UpgradableShardConfig
from tocw.chain.pallets.framework import describe_encoded_error
from tocw.chain.pallets.substrate_types import AddressId
from tocw.chain.pallets.teerex import SkipAttestation
from tocw.chain.runtime import PALLETS, BlockResult, LocalChain, Runtime
from tocw.primitives.keys import Keypair, KeyScheme
from tocw.primitives.trusted import Request
from tocw.primitives.types import ShardId

RUNTIME = Runtime()
ED = RUNTIME.config.existential_deposit
ALICE = Keypair.from_uri("//Alice", KeyScheme.SR25519)
BOB = Keypair.from_uri("//Bob", KeyScheme.SR25519)
CHARLIE = Keypair.from_uri("//Charlie", KeyScheme.SR25519)
ENCLAVE = Keypair.from_uri("//Dave", KeyScheme.SR25519)  # a registered worker (endowed)
OTHER_ENCLAVE = Keypair.from_uri("//Eve", KeyScheme.SR25519)  # registered, other mrenclave
ZOE = Keypair.from_uri("//Zoe", KeyScheme.SR25519)
MRENCLAVE = b"\x0e" * 32
SHARD = MRENCLAVE  # the default shard of an enclave is its mrenclave
OTHER_MRENCLAVE = b"\x0f" * 32


def submit(c: LocalChain, who: Keypair, call: bytes) -> BlockResult:
    xt = c.sign(who, call)
    result = c.produce(xt)
    assert result.extrinsics[1:] == [xt], (result.dropped, result.deferred)
    return result


def events(result: BlockResult) -> list[tuple[str, tuple[Any, ...]]]:
    return [(str(e), e.args) for e in result.extrinsic_events(1)]


def sudo(c: LocalChain, pallet: str, name: str, *args: Any) -> bytes:
    return c.call("Sudo", "sudo", c.runtime.decode_call(c.call(pallet, name, *args)))


def free(c: LocalChain, who: bytes) -> int:
    return system.load_account(c.state, who).free


def with_enclaves() -> LocalChain:
    """ENCLAVE registered with MRENCLAVE, OTHER_ENCLAVE with OTHER_MRENCLAVE (Skip, dev)."""
    c = LocalChain(RUNTIME)
    for who, mrenclave in ((ENCLAVE, MRENCLAVE), (OTHER_ENCLAVE, OTHER_MRENCLAVE)):
        call = c.call("Teerex", "register_sgx_enclave", mrenclave, None, SkipAttestation(False))
        assert submit(c, who, call).dispatch_error(1) is None
    return c


def confirm(c: LocalChain, shard: bytes = SHARD, number: int = 1) -> bytes:
    return c.call(
        "EnclaveBridge",
        "confirm_processed_parentchain_block",
        shard,
        b"\x11" * 32,
        number,
        b"\x22" * 32,
    )


def unshield(c: LocalChain, amount: int, call_hash: bytes) -> bytes:
    return c.call("EnclaveBridge", "unshield_funds", SHARD, BOB.public_key, amount, call_hash)


def test_invoke_registers_the_indirect_invocation() -> None:
    """Anyone may invoke; the event names the shard, the ciphertext stays in the block."""
    c = LocalChain(RUNTIME)
    request = Request(ShardId(SHARD), b"\xaa" * 384)
    result = submit(c, ALICE, c.call("EnclaveBridge", "invoke", request))
    assert ("EnclaveBridge.IndirectInvocationRegistered", (SHARD,)) in events(result)


def test_shield_funds_moves_them_into_the_vault() -> None:
    """The amount goes from the sender to the shard's vault account (the shard's 32 bytes)."""
    c = LocalChain(RUNTIME)
    vault = enclave_bridge.vault_account(SHARD)
    alice_before = free(c, ALICE.public_key)
    xt = c.sign(ALICE, c.call("EnclaveBridge", "shield_funds", SHARD, b"\xbb" * 384, 10 * ED))
    result = c.produce(xt)
    assert (
        "EnclaveBridge.ShieldFunds",
        (SHARD, b"\xbb" * 384, 10 * ED),
    ) in events(result)
    assert ("Balances.Transfer", (ALICE.public_key, vault, 10 * ED)) in events(result)
    assert free(c, vault) == 10 * ED
    assert free(c, ALICE.public_key) == alice_before - 10 * ED - c.runtime.fee(len(xt))


def test_shield_funds_needs_the_funds() -> None:
    """Shielding more than the free balance fails and moves nothing."""
    c = LocalChain(RUNTIME)
    call = c.call("EnclaveBridge", "shield_funds", SHARD, b"", free(c, BOB.public_key))
    assert submit(c, BOB, call).dispatch_error(1) == "Balances.InsufficientBalance"
    assert free(c, enclave_bridge.vault_account(SHARD)) == 0


def test_confirm_by_a_registered_enclave_of_the_shard() -> None:
    """ProcessedParentchainBlock, and the shard status records the enclave's activity."""
    c = with_enclaves()
    result = submit(c, ENCLAVE, confirm(c))
    assert (
        "EnclaveBridge.ProcessedParentchainBlock",
        (SHARD, b"\x11" * 32, b"\x22" * 32, 1),
    ) in events(result)
    assert enclave_bridge.SHARD_STATUS.get(c.state, SHARD) == [
        ShardSignerStatus(ENCLAVE.public_key, MRENCLAVE, c.number)
    ]


def test_confirm_by_an_unregistered_account_fails() -> None:
    """Only registered enclaves confirm: Teerex.EnclaveIsNotRegistered."""
    c = with_enclaves()
    result = submit(c, CHARLIE, confirm(c))
    assert result.dispatch_error(1) == "Teerex.EnclaveIsNotRegistered"
    assert enclave_bridge.SHARD_STATUS.get(c.state, SHARD) is None


def test_confirm_by_an_enclave_of_another_fingerprint_fails() -> None:
    """An enclave whose mrenclave does not serve the shard: WrongFingerprintForShard."""
    c = with_enclaves()
    result = submit(c, OTHER_ENCLAVE, confirm(c))
    assert result.dispatch_error(1) == "EnclaveBridge.WrongFingerprintForShard"


def test_unshield_pays_once_per_call_hash() -> None:
    """The first unshield_funds pays from the vault; a repeat with the same call_hash (another
    worker of the shard) pays nothing and only counts the confirmation."""
    c = with_enclaves()
    submit(c, ALICE, c.call("EnclaveBridge", "shield_funds", SHARD, b"", 20 * ED))
    bob_before = free(c, BOB.public_key)
    call_hash = b"\x33" * 32
    result = submit(c, ENCLAVE, unshield(c, 5 * ED, call_hash))
    assert ("EnclaveBridge.UnshieldedFunds", (SHARD, BOB.public_key, 5 * ED)) in events(result)
    result = submit(c, ENCLAVE, unshield(c, 5 * ED, call_hash))
    assert result.dispatch_error(1) is None
    assert "EnclaveBridge.UnshieldedFunds" not in [n for n, _ in events(result)]
    assert free(c, BOB.public_key) == bob_before + 5 * ED
    assert free(c, enclave_bridge.vault_account(SHARD)) == 15 * ED
    assert enclave_bridge.EXECUTED_UNSHIELD_CALLS.value(c.state, call_hash) == 2


def test_unshield_by_an_unregistered_account_fails() -> None:
    """Only a registered enclave of the shard can pay out of the vault."""
    c = with_enclaves()
    submit(c, ALICE, c.call("EnclaveBridge", "shield_funds", SHARD, b"", 20 * ED))
    result = submit(c, CHARLIE, unshield(c, 5 * ED, b"\x44" * 32))
    assert result.dispatch_error(1) == "Teerex.EnclaveIsNotRegistered"
    assert free(c, enclave_bridge.vault_account(SHARD)) == 20 * ED
    assert not enclave_bridge.EXECUTED_UNSHIELD_CALLS.contains(c.state, b"\x44" * 32)


def test_unshield_more_than_the_vault_holds_fails_and_can_be_retried() -> None:
    """A failing payout is rolled back entirely: the call_hash is not marked as executed."""
    c = with_enclaves()
    result = submit(c, ENCLAVE, unshield(c, 5 * ED, b"\x55" * 32))
    assert result.dispatch_error(1) == "Balances.InsufficientBalance"
    assert not enclave_bridge.EXECUTED_UNSHIELD_CALLS.contains(c.state, b"\x55" * 32)


def test_publish_hash_indexes_the_event_by_topics() -> None:
    """PublishedHash with the enclave's fingerprint; EventTopics lists extra topics + it."""
    c = with_enclaves()
    topic = b"\x66" * 32
    call = c.call("EnclaveBridge", "publish_hash", b"\x77" * 32, [topic], b"hello")
    result = submit(c, ENCLAVE, call)
    assert ("EnclaveBridge.PublishedHash", (MRENCLAVE, b"\x77" * 32, b"hello")) in events(result)
    index = next(i for i, e in enumerate(result.events) if str(e) == "EnclaveBridge.PublishedHash")
    for key in (topic, MRENCLAVE):
        assert system.EVENT_TOPICS.value(c.state, key) == [(c.number, index)]


def test_publish_hash_limits() -> None:
    """At most 5 extra topics and 100 bytes of data; only registered enclaves publish."""
    c = with_enclaves()
    too_many = c.call("EnclaveBridge", "publish_hash", bytes(32), [bytes(32)] * 6, b"")
    assert submit(c, ENCLAVE, too_many).dispatch_error(1) == "EnclaveBridge.TooManyTopics"
    too_long = c.call("EnclaveBridge", "publish_hash", bytes(32), [], b"x" * 101)
    assert submit(c, ENCLAVE, too_long).dispatch_error(1) == "EnclaveBridge.DataTooLong"
    anyone = c.call("EnclaveBridge", "publish_hash", bytes(32), [], b"")
    assert submit(c, CHARLIE, anyone).dispatch_error(1) == "Teerex.EnclaveIsNotRegistered"


def test_update_shard_config_creates_and_schedules_upgrades() -> None:
    """A registered enclave creates a shard's config at once; a later update is pending until
    `enactment_delay` blocks have passed, then the new fingerprint serves the shard."""
    c = with_enclaves()
    shard = b"\x99" * 32
    config = ShardConfig(MRENCLAVE)
    result = submit(c, ENCLAVE, c.call("EnclaveBridge", "update_shard_config", shard, config, 0))
    assert ("EnclaveBridge.ShardConfigUpdated", (shard,)) in events(result)
    assert enclave_bridge.SHARD_CONFIG_REGISTRY.get(c.state, shard) == UpgradableShardConfig(config)
    assert submit(c, ENCLAVE, confirm(c, shard)).dispatch_error(1) is None
    upgrade = ShardConfig(OTHER_MRENCLAVE, max_instances=3, authorities=[BOB.public_key])
    call = c.call("EnclaveBridge", "update_shard_config", shard, upgrade, 2)
    assert submit(c, ENCLAVE, call).dispatch_error(1) is None
    stored = enclave_bridge.SHARD_CONFIG_REGISTRY.get(c.state, shard)
    assert stored == UpgradableShardConfig(config, upgrade, c.number + 2)
    assert submit(c, OTHER_ENCLAVE, confirm(c, shard)).dispatch_error(1) == (
        "EnclaveBridge.WrongFingerprintForShard"
    )
    assert submit(c, OTHER_ENCLAVE, confirm(c, shard)).dispatch_error(1) is None  # enacted
    assert enclave_bridge.SHARD_CONFIG_REGISTRY.get(c.state, shard) == UpgradableShardConfig(
        upgrade
    )
    assert submit(c, ENCLAVE, confirm(c, shard)).dispatch_error(1) == (
        "EnclaveBridge.WrongFingerprintForShard"
    )


def test_update_shard_config_by_a_foreign_enclave_fails() -> None:
    """An enclave of another fingerprint cannot take over an existing shard; root can."""
    c = with_enclaves()
    config = ShardConfig(MRENCLAVE)
    submit(c, ENCLAVE, c.call("EnclaveBridge", "update_shard_config", SHARD, config, 0))
    hijack = c.call("EnclaveBridge", "update_shard_config", SHARD, ShardConfig(OTHER_MRENCLAVE), 0)
    assert submit(c, OTHER_ENCLAVE, hijack).dispatch_error(1) == (
        "EnclaveBridge.WrongFingerprintForShard"
    )
    unregistered = c.call("EnclaveBridge", "update_shard_config", b"\x01" * 32, config, 0)
    assert submit(c, CHARLIE, unregistered).dispatch_error(1) == "Teerex.EnclaveIsNotRegistered"
    result = submit(
        c,
        ALICE,
        sudo(c, "EnclaveBridge", "update_shard_config", SHARD, ShardConfig(OTHER_MRENCLAVE), 0),
    )
    assert ("EnclaveBridge.ShardConfigUpdated", (SHARD,)) in events(result)


def test_purge_enclave_from_shard_status_is_root_only() -> None:
    """Root removes an enclave from a shard's status; unknown shards fail with ShardNotFound."""
    c = with_enclaves()
    submit(c, ENCLAVE, confirm(c))
    purge = ("EnclaveBridge", "purge_enclave_from_shard_status", SHARD, ENCLAVE.public_key)
    assert submit(c, BOB, c.call(*purge)).dispatch_error(1) == "BadOrigin"
    result = submit(c, ALICE, sudo(c, *purge))
    assert (
        "EnclaveBridge.PurgedEnclaveFromShardConfig",
        (SHARD, ENCLAVE.public_key),
    ) in events(result)
    assert enclave_bridge.SHARD_STATUS.get(c.state, SHARD) == []
    missing = ("EnclaveBridge", "purge_enclave_from_shard_status", b"\x02" * 32, ZOE.public_key)
    result = submit(c, ALICE, sudo(c, *missing))
    sudid = next(a for n, a in events(result) if n == "Sudo.Sudid")[0]
    assert describe_encoded_error(sudid, PALLETS) == "EnclaveBridge.ShardNotFound"


def test_shard_status_holds_at_most_ten_enclaves() -> None:
    """Eleven distinct enclaves touching one shard: the eleventh gets TooManyEnclaves."""
    c = with_enclaves()
    workers = [Keypair.from_uri(f"//Worker{i}", KeyScheme.ED25519) for i in range(11)]
    register = c.call("Teerex", "register_sgx_enclave", MRENCLAVE, None, SkipAttestation(False))
    for w in workers:  # fund and register each worker in one block per worker
        c.produce(
            c.sign(
                ALICE, c.call("Balances", "transfer_allow_death", AddressId(w.public_key), 5 * ED)
            )
        )
        assert submit(c, w, register).dispatch_error(1) is None
    errors = [submit(c, w, confirm(c)).dispatch_error(1) for w in workers]
    assert errors == [None] * 10 + ["EnclaveBridge.TooManyEnclaves"]
