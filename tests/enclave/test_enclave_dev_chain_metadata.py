"""The enclave against the dev chain's real runtime metadata (tocw.chain), not a test double.

Checks that the call and argument names the enclave composes by name exist on the chain tocw
ships, and that its blocks (Timestamp.set inherent) decode, so a rename on either side fails
here rather than in an end-to-end run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tocw.enclave.api import Enclave
from tocw.enclave.measurement import sim_backend
from tocw.primitives.extrinsic import decode_extrinsic
from tocw.primitives.metadata import RuntimeMetadata, Variant
from tocw.primitives.trusted import ParentchainId
from tocw.primitives.types import ShardId
from tocw.stf.modules.balances import parentchain_now
from tocw.stf.state import State

MODULES = ("balances",)


def dev_metadata() -> bytes:
    from tocw.chain.runtime import Runtime, RuntimeConfig

    metadata: bytes = Runtime(RuntimeConfig()).metadata()
    return metadata


def test_dev_chain_metadata_drives_import_and_extrinsics(
    data_dir: Path, host: Any, make_chain: Any
) -> None:
    """Blocks built with the dev runtime's metadata import; the enclave's extrinsics decode."""
    raw = dev_metadata()
    chain = make_chain(raw, RuntimeMetadata.from_bytes(raw))
    with Enclave.init(data_dir, sim_backend(data_dir, MODULES), MODULES, host) as e:
        e.set_parentchain_info(chain.info)
        e.set_nonce(3)
        e.init_parentchain(chain.genesis)
        shard = ShardId(bytes(e.mrenclave()))
        e.init_shard(shard, 1)
        e.import_parentchain_blocks(chain.chain_of(chain.genesis, 2, start_time=100))
        state = State(e._store.items(shard))
        assert parentchain_now(state, ParentchainId.INTEGRITEE) == 100 + 12_000

        xt = decode_extrinsic(chain.md, e.register_enclave_extrinsic("wss://localhost:2000"))
        # nonces 3 and 4 went to the confirmations of blocks 1 and 2
        assert (xt.call.pallet, xt.call.name, xt.nonce) == ("Teerex", "register_sgx_enclave", 5)
        assert xt.call.args["attestation_method"] == Variant("Skip", {"proxied": False})
        assert xt.signer == e.signer_account()

    for name in ("confirm_processed_parentchain_block", "unshield_funds"):
        call = chain.md.call("EnclaveBridge", name)
        assert call.arg_names[0] == "shard"
    assert chain.md.call("EnclaveBridge", "confirm_processed_parentchain_block").arg_names == (
        "shard",
        "block_hash",
        "block_number",
        "trusted_calls_merkle_root",
    )
    assert chain.md.call("EnclaveBridge", "unshield_funds").arg_names == (
        "shard",
        "beneficiary",
        "amount",
        "call_hash",
    )
