"""Indirect invocation end to end inside one process: the dev chain's real runtime produces the
blocks and events (EnclaveBridge.invoke, shield_funds), the enclave imports them with proofs.

Covers PROTOCOL.md's execution rules: only succeeded extrinsics for our shard run, in block
order; bad ciphertexts, signatures and nonces are skipped with a reason and the block still
completes; the confirmation carries the Merkle root of exactly the accepted calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tocw.chain.node import Chain
from tocw.chain.runtime import Runtime
from tocw.chain.storage import ChainStore
from tocw.enclave.api import Enclave, ImportedBlock
from tocw.enclave.errors import IndirectCallError, ParentchainExtrinsicFailedError
from tocw.enclave.extrinsics import ParentchainInfo
from tocw.enclave.light_client import ParentchainBlock
from tocw.enclave.measurement import sim_backend
from tocw.primitives.errors import InvalidCiphertextError
from tocw.primitives.extrinsic import build_signed_extrinsic, decode_extrinsic
from tocw.primitives.hashing import storage_prefix, trusted_calls_merkle_root
from tocw.primitives.keys import Keypair
from tocw.primitives.metadata import RuntimeMetadata, Variant
from tocw.primitives.shielding import ShieldingPublicKey
from tocw.primitives.trusted import (
    BalanceSetBalance,
    BalanceTransfer,
    FreeBalance,
    IndirectCall,
    NonceGetter,
    PublicGetterOp,
    SomeValue,
    TrustedCallSigned,
    sign_call,
)
from tocw.primitives.types import AccountId, Balance, Nonce, ShardId
from tocw.stf.errors import InvalidSignatureError, NonceMismatchError

MODULES = ("balances",)
EVENTS_KEY = storage_prefix("System", "Events")
ALICE = Keypair.from_uri("//Alice")
BOB = Keypair.from_uri("//Bob")
CHARLIE = Keypair.from_uri("//Charlie")


class Host:
    """The host side for these tests: sealed blobs in a dir, submitted extrinsics recorded."""

    def __init__(self, root: Path) -> None:
        from tocw.worker.sealed_store import DirectorySealedStore

        self.store = DirectorySealedStore(root)
        self.submitted: list[bytes] = []

    def store_sealed(self, name: str, blob: bytes) -> None:
        self.store.store_sealed(name, blob)

    def load_sealed(self, name: str) -> bytes | None:
        return self.store.load_sealed(name)

    def submit_extrinsics(self, extrinsics: Any) -> None:
        self.submitted.extend(extrinsics)


class World:
    """A dev chain in memory and an enclave following it."""

    def __init__(self, tmp: Path) -> None:
        self.store = ChainStore(None)
        self.chain = Chain(Runtime(), self.store)
        self.chain.open()
        self.md = RuntimeMetadata.from_bytes(self.chain.runtime.metadata())
        self.host = Host(tmp / "sealed")
        self.enclave = Enclave.init(tmp, sim_backend(tmp, MODULES), MODULES, self.host)
        version = self.chain.runtime.version
        self.enclave.set_parentchain_info(
            ParentchainInfo(
                self.chain.runtime.metadata(),
                self.chain.genesis_hash,
                version.spec_version,
                version.transaction_version,
            )
        )
        self.enclave.set_nonce(0)
        genesis = self.chain.block(self.chain.genesis_hash)
        assert genesis is not None
        self.enclave.init_parentchain(genesis.header)
        self.shard = ShardId(bytes(self.enclave.mrenclave()))
        self.enclave.init_shard(self.shard, 1)
        self.key = ShieldingPublicKey.from_json(self.enclave.shielding_public_key_json())
        self.nonces: dict[bytes, int] = {}
        self.clock = 1_700_000_000_000

    def close(self) -> None:
        self.enclave.close()
        self.store.close()

    def xt(self, signer: Keypair, pallet: str, call: str, args: dict[str, Any]) -> bytes:
        nonce = self.nonces.get(signer.public_key, 0)
        self.nonces[signer.public_key] = nonce + 1
        version = self.chain.runtime.version
        return build_signed_extrinsic(
            self.md,
            self.md.encode_call(pallet, call, args),
            signer,
            nonce=nonce,
            genesis_hash=self.chain.genesis_hash,
            spec_version=version.spec_version,
            transaction_version=version.transaction_version,
        )

    def signed(self, call: Any, nonce: int, signer: Keypair) -> TrustedCallSigned:
        codecs = self.enclave.stf.codecs
        return sign_call(codecs, call, Nonce(nonce), self.enclave.mrenclave(), self.shard, signer)

    def ciphertext(self, signed: TrustedCallSigned) -> bytes:
        return self.key.encrypt(self.enclave.stf.codecs.operation.encode(IndirectCall(signed)))

    def invoke(self, ciphertext: bytes, shard: bytes | None = None) -> bytes:
        request = {"shard": shard or self.shard, "cyphertext": ciphertext}
        return self.xt(CHARLIE, "EnclaveBridge", "invoke", {"request": request})

    def produce(self, *extrinsics: bytes) -> ParentchainBlock:
        for xt in extrinsics:
            self.chain.submit(xt)
        self.clock += 6000
        imported = self.chain.produce_block(self.clock)
        block = imported.block
        state = self.chain.state(block.hash)
        return ParentchainBlock(
            block.signed_block(), state.get(EVENTS_KEY), tuple(state.read_proof([EVENTS_KEY]))
        )

    def import_(self, block: ParentchainBlock) -> ImportedBlock:
        [imported] = self.enclave.import_parentchain_blocks([block])
        return imported

    def getter(self, getter: Any, signer: Keypair) -> int:
        from tocw.primitives.trusted import TrustedGetterOp, sign_getter

        codecs = self.enclave.stf.codecs
        op = TrustedGetterOp(sign_getter(codecs, getter, signer))
        raw = self.enclave.execute_getter(self.shard, codecs.getter.encode(op))
        assert raw is not None
        return int.from_bytes(raw, "little")

    def confirmation(self, imported: ImportedBlock) -> dict[str, Any]:
        calls = [decode_extrinsic(self.md, x).call for x in imported.extrinsics]
        [confirm] = [c for c in calls if c.name == "confirm_processed_parentchain_block"]
        return confirm.args


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    try:
        yield w
    finally:
        w.close()


def test_indirect_calls_execute_in_block_order_and_confirm_root(world: World) -> None:
    """set_balance then transfer in one block run in order; the root covers both."""
    a, b = ALICE.account_id, BOB.account_id
    s1 = world.signed(BalanceSetBalance(a, a, Balance(1000), Balance(0)), 0, ALICE)
    s2 = world.signed(BalanceTransfer(a, b, Balance(300)), 1, ALICE)
    block = world.produce(world.invoke(world.ciphertext(s1)), world.invoke(world.ciphertext(s2)))
    imported = world.import_(block)
    assert [r.executed for _, r in imported.reports] == [True, True]
    assert world.getter(FreeBalance(a), ALICE) == 700
    assert world.getter(FreeBalance(b), BOB) == 300
    assert world.getter(NonceGetter(a), ALICE) == 2
    codecs = world.enclave.stf.codecs
    expected = trusted_calls_merkle_root([codecs.call_signed.encode(s) for s in (s1, s2)])
    confirm = world.confirmation(imported)
    assert confirm["block_hash"] == block.hash()
    assert confirm["trusted_calls_merkle_root"] == expected


def test_indirect_calls_bad_input_is_skipped_and_block_completes(world: World) -> None:
    """Garbage ciphertext, a forged signature and a stale nonce are skipped with reasons;
    the good call after them executes and alone makes the Merkle root."""
    a = ALICE.account_id
    good0 = world.signed(BalanceSetBalance(a, a, Balance(50), Balance(0)), 0, ALICE)
    world.import_(world.produce(world.invoke(world.ciphertext(good0))))
    forged = world.signed(BalanceSetBalance(a, a, Balance(10**9), Balance(0)), 1, BOB)
    forged = TrustedCallSigned(forged.call, forged.nonce, forged.signature)
    stale = world.signed(BalanceSetBalance(a, a, Balance(10**9), Balance(0)), 0, ALICE)
    good1 = world.signed(BalanceTransfer(a, BOB.account_id, Balance(20)), 1, ALICE)
    block = world.produce(
        world.invoke(b"\x00" * 384),
        world.invoke(b"\x01" * 100),
        world.invoke(world.ciphertext(forged)),
        world.invoke(world.ciphertext(stale)),
        world.invoke(world.ciphertext(good1)),
    )
    imported = world.import_(block)
    errors = [type(r.error) for _, r in imported.reports]
    assert errors == [
        InvalidCiphertextError,
        InvalidCiphertextError,
        InvalidSignatureError,
        NonceMismatchError,
        type(None),
    ]
    assert world.getter(FreeBalance(a), ALICE) == 30
    codecs = world.enclave.stf.codecs
    root = trusted_calls_merkle_root([codecs.call_signed.encode(good1)])
    assert world.confirmation(imported)["trusted_calls_merkle_root"] == root


def test_indirect_calls_other_shard_ignored(world: World) -> None:
    """An invoke for another shard is not ours: no report, empty root, still confirmed."""
    a = ALICE.account_id
    signed = world.signed(BalanceSetBalance(a, a, Balance(5), Balance(0)), 0, ALICE)
    imported = world.import_(world.produce(world.invoke(world.ciphertext(signed), b"\x07" * 32)))
    assert imported.reports == ()
    assert world.getter(FreeBalance(a), ALICE) == 0
    assert world.confirmation(imported)["trusted_calls_merkle_root"] == bytes(32)


def test_indirect_calls_shield_funds_credits_beneficiary(world: World) -> None:
    """shield_funds moves L1 funds to the vault; the enclave credits the decrypted account."""
    incognito = Keypair.from_uri("//Incognito").account_id
    xt = world.xt(
        ALICE,
        "EnclaveBridge",
        "shield_funds",
        {
            "shard": world.shard,
            "incognito_account_encrypted": world.key.encrypt(incognito),
            "amount": 6 * 10**12,
        },
    )
    imported = world.import_(world.produce(xt))
    [(_, report)] = imported.reports
    assert report.executed and report.kind == "shield_funds"
    assert world.getter(FreeBalance(AccountId(incognito)), Keypair.from_uri("//Incognito")) == (
        6 * 10**12
    )
    # shielding is enclave-originated: not a Merkle leaf
    assert world.confirmation(imported)["trusted_calls_merkle_root"] == bytes(32)


def test_indirect_calls_failed_extrinsic_is_not_executed(world: World) -> None:
    """A shield_funds whose extrinsic failed on chain (sender too poor) credits nothing."""
    poor = Keypair.from_uri("//Poor")
    fund = world.xt(
        ALICE, "Balances", "transfer", {"dest": Variant("Id", poor.public_key), "value": 10**13}
    )
    world.import_(world.produce(fund))
    xt = world.xt(
        poor,
        "EnclaveBridge",
        "shield_funds",
        {
            "shard": world.shard,
            "incognito_account_encrypted": world.key.encrypt(poor.account_id),
            "amount": 10**18,
        },
    )
    imported = world.import_(world.produce(xt))
    [(_, report)] = imported.reports
    assert not report.executed
    assert isinstance(report.error, ParentchainExtrinsicFailedError)
    assert world.getter(FreeBalance(poor.account_id), poor) == 0


def test_indirect_calls_need_events(world: World) -> None:
    """A block with an operation for our shard but without events is refused, not guessed."""
    a = ALICE.account_id
    signed = world.signed(BalanceSetBalance(a, a, Balance(5), Balance(0)), 0, ALICE)
    block = world.produce(world.invoke(world.ciphertext(signed)))
    before = world.enclave.last_imported_block()
    with pytest.raises(IndirectCallError, match=r"System\.Events"):
        world.import_(ParentchainBlock(block.signed))
    assert world.enclave.last_imported_block() == before
    world.import_(block)
    assert world.getter(FreeBalance(a), ALICE) == 5


def test_indirect_calls_public_getter_through_invoke_not_executed(world: World) -> None:
    """A getter smuggled into invoke is reported and skipped, not executed."""
    from tocw.primitives.trusted import GetOp

    op = GetOp(PublicGetterOp(SomeValue()))
    ct = world.key.encrypt(world.enclave.stf.codecs.operation.encode(op))
    imported = world.import_(world.produce(world.invoke(ct)))
    [(_, report)] = imported.reports
    assert not report.executed
    assert "indirect_call" in str(report.error)


def test_enclave_registers_and_configures_its_shard_on_chain(world: World) -> None:
    """register_sgx_enclave (Skip) and update_shard_config, both composed and signed in the
    enclave, apply on the real runtime and leave the registry and shard config in storage."""
    enclave = world.enclave
    account = bytes(enclave.signer_account())
    fund = world.xt(
        ALICE, "Balances", "transfer", {"dest": Variant("Id", account), "value": 10**15}
    )
    world.import_(world.produce(fund))
    world.enclave.set_nonce(world.chain.account_next_index(account))
    register = enclave.register_enclave_extrinsic("wss://127.0.0.1:2000")
    config = enclave.shard_config_extrinsic(world.shard)
    world.import_(world.produce(register, config))
    state = world.chain.state()
    entry = state.get(world.md.storage_key("Teerex", "SovereignEnclaves", account))
    assert entry is not None
    raw = state.get(world.md.storage_key("EnclaveBridge", "ShardConfigRegistry", world.shard))
    assert raw is not None
    stored = world.md.decode_storage("EnclaveBridge", "ShardConfigRegistry", raw)
    assert stored["active_config"]["enclave_fingerprint"] == bytes(enclave.mrenclave())
