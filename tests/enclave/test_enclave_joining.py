"""The enclave's part in joining a shard: a key made only when asked, confirmations from a block."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tocw.enclave.api import Enclave
from tocw.enclave.errors import EnclaveUsageError
from tocw.enclave.indirect_calls import BlockContext, ShardBlockResult, ShardContext
from tocw.enclave.keys import NoShieldingKeyError, ShieldingKeyConflictError, create_shielding_key
from tocw.enclave.measurement import sim_backend
from tocw.enclave.sealing import Sealer
from tocw.primitives.extrinsic import decode_extrinsic
from tocw.primitives.shielding import ShieldingPublicKey
from tocw.primitives.types import AccountId, Balance, ShardId
from tocw.stf.types import UnshieldEffect
from tocw.tee.attestation import check_binding

MODULES = ("balances",)


def open_without_key(data_dir: Path, host: Any, **options: Any) -> Enclave:
    return Enclave.init(
        data_dir,
        sim_backend(data_dir, MODULES),
        MODULES,
        host,
        create_shielding_key=False,
        **options,
    )


def test_create_shielding_key_only_when_asked_and_once(data_dir: Path, host: Any) -> None:
    """An enclave opened without a key has none until create_shielding_key; the key survives a
    restart, and a second one is refused."""
    with open_without_key(data_dir, host) as enclave:
        assert not enclave.has_shielding_key()
        with pytest.raises(NoShieldingKeyError):
            enclave.shielding_public_key_json()
        before = enclave.attestation()
        enclave.create_shielding_key()
        assert enclave.has_shielding_key()
        key_json = enclave.shielding_public_key_json()
        ShieldingPublicKey.from_json(key_json)
        after = enclave.attestation()
        assert after.report_data != before.report_data  # it binds the new key now
        tls = enclave._keys.tls.public_key_der()
        assert check_binding(after, bytes(enclave.signer_account()), key_json, tls)
        with pytest.raises(EnclaveUsageError):
            enclave.create_shielding_key()
    with open_without_key(data_dir, host) as again:
        assert again.shielding_public_key_json() == key_json


def test_create_shielding_key_refuses_a_sealed_key(data_dir: Path, host: Any) -> None:
    """The key-store function never replaces a sealed key (provisioned or generated)."""
    backend = sim_backend(data_dir, MODULES)
    with open_without_key(data_dir, host):
        pass
    sealer = Sealer(backend.sealing_key())
    create_shielding_key(host, sealer)
    with pytest.raises(ShieldingKeyConflictError):
        create_shielding_key(host, sealer)


class EveryBlockUnshields:
    """An executor that asks for one unshield in every block and confirms it."""

    def execute_block(self, block: BlockContext, shard: ShardContext) -> ShardBlockResult:
        effect = UnshieldEffect(
            shard.shard, AccountId(b"\x01" * 32), Balance(block.number), bytes([block.number]) * 32
        )
        return ShardBlockResult(effects=(effect,), confirm=True)


def test_set_confirmations_from_skips_replayed_confirmations(
    data_dir: Path, host: Any, chain: Any
) -> None:
    """Blocks before the confirmation start execute and still send their unshields, but only
    blocks from it on are confirmed (a joiner replaying the shard's history)."""
    with open_without_key(data_dir, host, executor=EveryBlockUnshields()) as enclave:
        enclave.create_shielding_key()
        enclave.set_parentchain_info(chain.info)
        enclave.set_nonce(0)
        enclave.init_parentchain(chain.genesis)
        shard = ShardId(bytes(enclave.mrenclave()))
        enclave.init_shard(shard, 1)
        enclave.set_confirmations_from(shard, 3)
        enclave.import_parentchain_blocks(chain.chain_of(chain.genesis, 4))
    calls = [decode_extrinsic(chain.md, raw).call for raw in host.submitted]
    unshielded = [c.args["amount"] for c in calls if c.name == "unshield_funds"]
    confirmed = [
        c.args["block_number"] for c in calls if c.name == "confirm_processed_parentchain_block"
    ]
    assert unshielded == [1, 2, 3, 4]
    assert confirmed == [3, 4]
    nonces = [decode_extrinsic(chain.md, raw).nonce for raw in host.submitted]
    assert nonces == list(range(len(host.submitted)))  # no gap where confirmations were skipped


def test_set_confirmations_from_checks_its_arguments(enclave: Enclave) -> None:
    """A shard of the wrong length or a block number that is no u32 is a usage error."""
    shard = ShardId(bytes(enclave.mrenclave()))
    with pytest.raises(EnclaveUsageError):
        enclave.set_confirmations_from(ShardId(b"\x00" * 31), 1)
    with pytest.raises(EnclaveUsageError):
        enclave.set_confirmations_from(shard, -1)
    with pytest.raises(EnclaveUsageError):
        enclave.set_confirmations_from(shard, 1 << 32)
