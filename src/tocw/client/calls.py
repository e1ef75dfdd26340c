"""Composing what a client sends a worker: signed trusted calls, signed getters, and the
encrypted `Request` that EnclaveBridge.invoke carries (PROTOCOL.md "Trusted calls").

Owns `TrustedCallBuilder` (bound to one MRENCLAVE and shard, since every call signature covers
both) with the built-in balances calls, `encrypt_indirect` (which takes a WorkerIdentity: only
an attested key is ever encrypted to), the getter builders, and `call_leaf`, the hash a worker
puts into `trusted_calls_merkle_root` for an accepted call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tocw.client.attestation import WorkerIdentity
from tocw.primitives.hashing import blake2_256
from tocw.primitives.keys import Keypair
from tocw.primitives.trusted import (
    BASE_CODECS,
    BalanceSetBalance,
    BalanceTransfer,
    BalanceUnshield,
    FreeBalance,
    IndirectCall,
    NonceGetter,
    PublicGetterOp,
    Request,
    ReservedBalance,
    SomeValue,
    TrustedCallSigned,
    TrustedCodecs,
    TrustedGetterOp,
    sign_call,
    sign_getter,
)
from tocw.primitives.types import AccountId, Balance, MrEnclave, Nonce, ShardId


@dataclass(frozen=True, slots=True)
class TrustedCallBuilder:
    """Signs trusted calls for one MRENCLAVE and shard (`for_worker` defaults the shard to the
    MRENCLAVE, as a worker's default shard is)."""

    mrenclave: MrEnclave
    shard: ShardId
    codecs: TrustedCodecs = BASE_CODECS

    def __post_init__(self) -> None:
        if len(self.mrenclave) != 32 or len(self.shard) != 32:
            raise ValueError("mrenclave and shard must be 32 bytes")

    @classmethod
    def for_worker(
        cls,
        identity: WorkerIdentity,
        shard: ShardId | None = None,
        codecs: TrustedCodecs = BASE_CODECS,
    ) -> TrustedCallBuilder:
        """Calls for the attested MRENCLAVE of `identity`, on `shard` (default: the MRENCLAVE)."""
        return cls(identity.mrenclave, shard or ShardId(bytes(identity.mrenclave)), codecs)

    def sign(self, call: Any, signer: Keypair, nonce: int) -> TrustedCallSigned:
        """Any call variant of the worker's modules, signed by `signer` at `nonce`."""
        return sign_call(self.codecs, call, Nonce(nonce), self.mrenclave, self.shard, signer)

    def transfer(self, signer: Keypair, to: AccountId, value: int, nonce: int) -> TrustedCallSigned:
        """balance_transfer(signer -> to, value)."""
        call = BalanceTransfer(from_=signer.account_id, to=to, value=Balance(value))
        return self.sign(call, signer, nonce)

    def set_balance(
        self, root: Keypair, who: AccountId, free: int, nonce: int, reserved: int = 0
    ) -> TrustedCallSigned:
        """balance_set_balance, signed by the shard's root account (dev: //Alice)."""
        call = BalanceSetBalance(
            root=root.account_id, who=who, free=Balance(free), reserved=Balance(reserved)
        )
        return self.sign(call, root, nonce)

    def unshield(
        self, signer: Keypair, beneficiary: AccountId, value: int, nonce: int
    ) -> TrustedCallSigned:
        """balance_unshield: the workers pay `value` from the shard vault to `beneficiary`."""
        call = BalanceUnshield(
            from_=signer.account_id, beneficiary=beneficiary, value=Balance(value), shard=self.shard
        )
        return self.sign(call, signer, nonce)

    def encrypt_indirect(self, identity: WorkerIdentity, signed: TrustedCallSigned) -> Request:
        """Request{shard, RSA(SCALE(TrustedOperation::indirect_call(signed)))} for invoke."""
        operation = self.codecs.operation.encode(IndirectCall(signed))
        return Request(self.shard, identity.shielding_key.encrypt(operation))

    def call_leaf(self, signed: TrustedCallSigned) -> bytes:
        """blake2_256(SCALE(TrustedCallSigned)): the call's leaf in trusted_calls_merkle_root,
        and the call_hash of an unshielding."""
        return blake2_256(self.codecs.call_signed.encode(signed))


def free_balance_getter(signer: Keypair, codecs: TrustedCodecs = BASE_CODECS) -> TrustedGetterOp:
    """Getter::trusted(free_balance(signer)), signed: only the account may read its balance."""
    return TrustedGetterOp(sign_getter(codecs, FreeBalance(signer.account_id), signer))


def reserved_balance_getter(
    signer: Keypair, codecs: TrustedCodecs = BASE_CODECS
) -> TrustedGetterOp:
    return TrustedGetterOp(sign_getter(codecs, ReservedBalance(signer.account_id), signer))


def nonce_getter(signer: Keypair, codecs: TrustedCodecs = BASE_CODECS) -> TrustedGetterOp:
    return TrustedGetterOp(sign_getter(codecs, NonceGetter(signer.account_id), signer))


def some_value_getter() -> PublicGetterOp:
    """Getter::public(some_value): 42 on every worker, as Integritee."""
    return PublicGetterOp(SomeValue())
