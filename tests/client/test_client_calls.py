"""tocw.client.calls: what a client signs and encrypts is what the enclave checks."""

from __future__ import annotations

import pytest

from tocw.client.attestation import WorkerIdentity
from tocw.client.calls import (
    TrustedCallBuilder,
    free_balance_getter,
    nonce_getter,
    reserved_balance_getter,
)
from tocw.primitives.hashing import blake2_256
from tocw.primitives.keys import Keypair
from tocw.primitives.shielding import ShieldingKey
from tocw.primitives.trusted import (
    BASE_CODECS,
    BalanceSetBalance,
    BalanceTransfer,
    BalanceUnshield,
    IndirectCall,
    check_call_signature,
    check_getter_signature,
)
from tocw.primitives.types import AccountId, MrEnclave, ShardId
from tocw.tee.base import TeeKind

ALICE, BOB = Keypair.from_uri("//Alice"), Keypair.from_uri("//Bob")
MRENCLAVE = MrEnclave(b"\x11" * 32)
SHARD = ShardId(b"\x22" * 32)
SHIELDING = ShieldingKey.generate()


def _identity() -> WorkerIdentity:
    return WorkerIdentity(
        url="wss://w:2000",
        mrenclave=MRENCLAVE,
        tee_kind=TeeKind.SIM,
        signer=AccountId(b"\x00" * 32),
        shielding_key=SHIELDING.public_key(),
        shielding_key_json=SHIELDING.public_key().to_json(),
        certificate=b"",
        tcb_status="Simulated",
        advisory_ids=(),
    )


def test_calls_builder_signatures_verify_for_mrenclave_and_shard() -> None:
    """Each built-in call verifies under its mrenclave and shard, and under no other shard."""
    builder = TrustedCallBuilder(MRENCLAVE, SHARD)
    calls = [
        builder.transfer(ALICE, BOB.account_id, 5, 0),
        builder.set_balance(ALICE, BOB.account_id, 7, 3),
        builder.unshield(ALICE, BOB.account_id, 9, 1),
    ]
    assert isinstance(calls[0].call, BalanceTransfer)
    assert isinstance(calls[1].call, BalanceSetBalance) and calls[1].nonce == 3
    assert isinstance(calls[2].call, BalanceUnshield) and calls[2].call.shard == SHARD
    for signed in calls:
        assert check_call_signature(BASE_CODECS, signed, MRENCLAVE, SHARD)
        assert not check_call_signature(BASE_CODECS, signed, MRENCLAVE, ShardId(bytes(32)))


def test_calls_for_worker_defaults_shard_to_mrenclave() -> None:
    """The default shard is the attested MRENCLAVE, as a worker's default shard."""
    builder = TrustedCallBuilder.for_worker(_identity())
    assert bytes(builder.shard) == bytes(MRENCLAVE)
    assert TrustedCallBuilder.for_worker(_identity(), SHARD).shard == SHARD
    with pytest.raises(ValueError, match="32 bytes"):
        TrustedCallBuilder(MRENCLAVE, ShardId(b"\x01"))


def test_calls_encrypt_indirect_decrypts_to_the_operation() -> None:
    """The enclave's private key turns the Request back into indirect_call(signed)."""
    builder = TrustedCallBuilder(MRENCLAVE, SHARD)
    signed = builder.transfer(ALICE, BOB.account_id, 5, 0)
    request = builder.encrypt_indirect(_identity(), signed)
    assert request.shard == SHARD
    operation = BASE_CODECS.operation.decode(SHIELDING.decrypt(request.cyphertext))
    assert operation == IndirectCall(signed)
    assert builder.call_leaf(signed) == blake2_256(BASE_CODECS.call_signed.encode(signed))


def test_calls_getters_are_signed_by_the_account() -> None:
    """Trusted getters carry the asked account's own signature."""
    for getter in (free_balance_getter(BOB), reserved_balance_getter(BOB), nonce_getter(BOB)):
        assert getter.signed.getter.who == BOB.account_id
        assert check_getter_signature(BASE_CODECS, getter.signed)
