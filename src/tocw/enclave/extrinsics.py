"""The parentchain extrinsics the enclave composes and signs itself.

Owns the three calls an enclave sends (PROTOCOL.md "Parentchain pallets"):
`EnclaveBridge.confirm_processed_parentchain_block`, `EnclaveBridge.unshield_funds` and
`Teerex.register_sgx_enclave`, composed by name from the chain's metadata (indices are never
hard-coded) and signed with the enclave's ed25519 signer through
tocw.primitives.extrinsic. The host provides only chain facts (metadata, genesis hash, runtime
versions, the account nonce); what is signed is decided here from the enclave's own state, so a
host cannot make the enclave sign a call of its choosing.

Extrinsics are immortal with zero tip, as Integritee's enclave sends them: the enclave may sign
while it is far behind the chain's head (catching up), when a mortal era's birth block would be
stale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tocw.enclave.errors import ExtrinsicCompositionError
from tocw.primitives.errors import PrimitivesError
from tocw.primitives.extrinsic import build_signed_extrinsic
from tocw.primitives.keys import Keypair
from tocw.primitives.metadata import RuntimeMetadata, Variant
from tocw.primitives.types import BlockHash, BlockNumber, ShardId
from tocw.stf.types import UnshieldEffect
from tocw.tee.attestation import Attestation
from tocw.tee.base import TeeKind

TEEREX = "Teerex"
ENCLAVE_BRIDGE = "EnclaveBridge"


@dataclass(frozen=True, slots=True)
class ParentchainInfo:
    """Chain facts the host passes in so the enclave can sign for this chain.

    metadata: SCALE(RuntimeMetadataPrefixed) as `state_getMetadata` returns it. The enclave
        trusts it as Integritee's enclave trusts `set_node_metadata`: it names the pallets and
        calls, it grants no authority.
    """

    metadata: bytes
    genesis_hash: BlockHash
    spec_version: int
    transaction_version: int


@dataclass(frozen=True, slots=True)
class ChainCall:
    """A call the enclave decided to send, before it is encoded for a particular runtime."""

    pallet: str
    name: str
    args: dict[str, Any]


def confirm_processed_block_call(
    shard: ShardId, block_hash: BlockHash, block_number: BlockNumber, merkle_root: bytes
) -> ChainCall:
    return ChainCall(
        ENCLAVE_BRIDGE,
        "confirm_processed_parentchain_block",
        {
            "shard": bytes(shard),
            "block_hash": bytes(block_hash),
            "block_number": int(block_number),
            "trusted_calls_merkle_root": bytes(merkle_root),
        },
    )


def unshield_funds_call(effect: UnshieldEffect) -> ChainCall:
    return ChainCall(
        ENCLAVE_BRIDGE,
        "unshield_funds",
        {
            "shard": bytes(effect.shard),
            "beneficiary": bytes(effect.beneficiary),
            "amount": int(effect.amount),
            "call_hash": bytes(effect.call_hash),
        },
    )


def update_shard_config_call(shard: ShardId, mrenclave: bytes) -> ChainCall:
    """EnclaveBridge.update_shard_config making this enclave's MRENCLAVE the shard's
    fingerprint (no instance limit, no authorities, not in maintenance), effective at once."""
    return ChainCall(
        ENCLAVE_BRIDGE,
        "update_shard_config",
        {
            "shard": bytes(shard),
            "shard_config": {
                "enclave_fingerprint": bytes(mrenclave),
                "max_instances": None,
                "authorities": None,
                "maintenance_mode": False,
            },
            "enactment_delay": 0,
        },
    )


def register_enclave_call(attestation: Attestation, worker_url: str | None) -> ChainCall:
    """Teerex.register_sgx_enclave for this enclave's evidence.

    sim registers with Skip{proxied: false} and proof = SCALE(mrenclave) (dev chains only);
    SGX DCAP with Dcap{proxied: false} and the quote as proof. Teerex (sdk v0.13) has no
    registration for TDX or SEV-SNP evidence, so those are refused with a clear error.
    """
    if attestation.tee_kind is TeeKind.SIM:
        proof = bytes(attestation.mrenclave)
        method = Variant("Skip", {"proxied": False})
    elif attestation.tee_kind is TeeKind.SGX_DCAP:
        proof = attestation.evidence
        method = Variant("Dcap", {"proxied": False})
    else:
        raise ExtrinsicCompositionError(
            f"Teerex.register_sgx_enclave cannot register {attestation.tee_kind.name} evidence"
        )
    url = None if worker_url is None else worker_url.encode("utf-8")
    return ChainCall(
        TEEREX,
        "register_sgx_enclave",
        {"proof": proof, "worker_url": url, "attestation_method": method},
    )


def encode_call(metadata: RuntimeMetadata, call: ChainCall) -> bytes:
    try:
        return metadata.encode_call(call.pallet, call.name, call.args)
    except PrimitivesError as e:
        raise ExtrinsicCompositionError(
            f"cannot compose {call.pallet}.{call.name} for this chain: {e}"
        ) from None


def sign_calls(
    metadata: RuntimeMetadata,
    info: ParentchainInfo,
    signer: Keypair,
    first_nonce: int,
    calls: Sequence[ChainCall],
) -> list[bytes]:
    """Signed extrinsics for `calls`, with consecutive nonces from `first_nonce`."""
    out = []
    for offset, call in enumerate(calls):
        encoded = encode_call(metadata, call)
        try:
            out.append(
                build_signed_extrinsic(
                    metadata,
                    encoded,
                    signer,
                    nonce=first_nonce + offset,
                    genesis_hash=bytes(info.genesis_hash),
                    spec_version=info.spec_version,
                    transaction_version=info.transaction_version,
                )
            )
        except PrimitivesError as e:
            raise ExtrinsicCompositionError(
                f"cannot sign {call.pallet}.{call.name} for this chain: {e}"
            ) from None
    return out
