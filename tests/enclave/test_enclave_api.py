"""The enclave API end to end (in process): keys, attestation, import, getters, extrinsics."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from tocw.enclave.api import Enclave
from tocw.enclave.errors import (
    BlockNumberMismatchError,
    EnclaveUsageError,
    ExtrinsicCompositionError,
    ExtrinsicsRootMismatchError,
    GetterDecodeError,
    GetterSignatureError,
    IndirectCallsUnsupportedError,
    ParentHashMismatchError,
    ShardExistsError,
    UnknownShardError,
)
from tocw.enclave.indirect_calls import (
    BlockContext,
    RefuseIndirectCalls,
    ShardBlockResult,
    ShardContext,
    targets_shard,
)
from tocw.enclave.measurement import sim_backend, trusted_code_paths
from tocw.primitives.extrinsic import decode_extrinsic
from tocw.primitives.hashing import trusted_calls_merkle_root
from tocw.primitives.header import DigestRuntimeEnvironmentUpdated, Header
from tocw.primitives.keys import Keypair, KeyScheme, verify
from tocw.primitives.metadata import Variant
from tocw.primitives.scale import U32, U128, Reader, read_compact
from tocw.primitives.shielding import ShieldingPublicKey
from tocw.primitives.trusted import (
    BalanceSetBalance,
    BalanceUnshield,
    FreeBalance,
    IndirectCall,
    NonceGetter,
    ParentchainId,
    PublicGetterOp,
    SomeValue,
    TrustedGetterOp,
    sign_call,
    sign_getter,
)
from tocw.primitives.types import AccountId, Balance, BlockHash, BlockNumber, Nonce, ShardId
from tocw.stf.modules.balances import parentchain_now
from tocw.stf.state import State
from tocw.tee.attestation import ATTESTATION_CODEC, check_binding
from tocw.tee.sim import SimBackend
from tocw.tee.verify import verify_evidence

MODULES = ("balances",)
SPEC_VERSION = 7  # as the conftest's Chain.info
TX_VERSION = 2
ALICE = Keypair.from_uri("//Alice")
BOB = Keypair.from_uri("//Bob")
CHARLIE = Keypair.from_uri("//Charlie")


def shard_of(enclave: Enclave) -> ShardId:
    return ShardId(bytes(enclave.mrenclave()))


def shard_state(enclave: Enclave, shard: ShardId) -> State:
    """The committed state of a shard, read straight from the store (test introspection)."""
    return State(enclave._store.items(shard))


class InvokeExecutor:
    """A minimal executor for EnclaveBridge.invoke: decrypt, decode, execute through the STF.

    Stands in for the worker issue's executor so the hook is exercised with real calls.
    """

    def execute_block(self, block: BlockContext, shard: ShardContext) -> ShardBlockResult:
        outcomes = []
        effects: list[Any] = []
        found = False
        for xt in block.extrinsics:
            if xt.call.name == "invoke" and targets_shard(xt.call, shard.shard):
                found = True
                plain = shard.decrypt(xt.call.args["request"]["cyphertext"])
                op = shard.stf.decode_operation(plain)
                assert isinstance(op, IndirectCall)
                outcome = shard.stf.execute_call(shard.state, op.signed, shard.env)
                outcomes.append(outcome)
                effects.extend(outcome.effects)
        return ShardBlockResult(tuple(outcomes), tuple(effects), found)


def encrypted_call(enclave: Enclave, call: Any, nonce: int, signer: Keypair) -> bytes:
    shard = shard_of(enclave)
    signed = sign_call(enclave.stf.codecs, call, Nonce(nonce), enclave.mrenclave(), shard, signer)
    key = ShieldingPublicKey.from_json(enclave.shielding_public_key_json())
    return key.encrypt(enclave.stf.codecs.operation.encode(IndirectCall(signed)))


# -- identity, keys, attestation -----------------------------------------------------------------


def test_api_keys_persist_across_reinit(data_dir: Path, host: Any) -> None:
    """A second init on the same data dir has the same identity, keys and certificate."""
    with Enclave.init(data_dir, sim_backend(data_dir, MODULES), MODULES, host) as a:
        first = (
            a.mrenclave(),
            a.signer_account(),
            a.shielding_public_key_json(),
            a.tls_certificate(),
        )
    with Enclave.init(data_dir, sim_backend(data_dir, MODULES), MODULES, host) as b:
        again = (
            b.mrenclave(),
            b.signer_account(),
            b.shielding_public_key_json(),
            b.tls_certificate(),
        )
    assert first == again
    assert not b.is_secure and b.tee_name == "sim"


def test_api_sim_backend_measuring_other_code_is_refused(data_dir: Path, host: Any) -> None:
    """A sim backend that did not measure this enclave's trusted code is refused."""
    paths = trusted_code_paths(MODULES)[:-1]  # one trusted file missing from the measurement
    with pytest.raises(EnclaveUsageError, match="measured other code"):
        Enclave.init(data_dir, SimBackend(data_dir, paths), MODULES, host)


def test_api_attestation_binds_keys_and_verifies(enclave: Enclave) -> None:
    """The sim evidence verifies and binds signer, shielding key and TLS key."""
    att = enclave.attestation()
    assert ATTESTATION_CODEC.decode(ATTESTATION_CODEC.encode(att)) == att
    assert att.mrenclave == enclave.mrenclave()
    assert att.signer_public_key == enclave.signer_account()
    tls_pub = enclave._keys.tls.public_key_der()
    assert check_binding(
        att, enclave.signer_account(), enclave.shielding_public_key_json(), tls_pub
    )
    assert not check_binding(att, enclave.signer_account(), '{"n":[],"e":[]}', tls_pub)
    verified = verify_evidence(
        att.to_evidence(),
        enclave.mrenclave(),
        int(time.time()),
        None,
        allow_sim=True,
        expected_report_data=att.report_data,
    )
    assert verified.mrenclave == enclave.mrenclave()


def test_api_no_secret_in_clear_in_data_dir(enclave: Enclave, chain: Any, data_dir: Path) -> None:
    """No host-visible file of the data dir holds any of the enclave's secret keys in clear."""
    enclave.init_shard(shard_of(enclave), 1)
    enclave.import_parentchain_blocks(chain.chain_of(chain.genesis, 3))
    keys = enclave._keys
    tls_der = keys.tls.private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    rsa_d = keys.shielding._key.private_numbers().d.to_bytes(384, "big")
    secrets = {
        "shielding key DER": keys.shielding.to_der(),
        "shielding private exponent": rsa_d,
        "signer seed": keys.signer.export_secret(),
        "state key": keys.state_key,
        "TLS key DER": tls_der,
        "TLS private scalar": keys.tls.private_key.private_numbers().private_value.to_bytes(
            32, "big"
        ),
    }
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    assert any(p.name == "state.db" for p in files)
    assert len([p for p in files if p.suffix == ".sealed"]) >= 5
    for path in files:
        content = path.read_bytes()
        for name, secret in secrets.items():
            assert secret not in content, f"{name} in clear in {path}"


# -- parentchain import ---------------------------------------------------------------------------


def test_api_import_applies_timestamp_and_commits(enclave: Enclave, chain: Any) -> None:
    """Imported blocks advance the head, set the shard's clock and change its root."""
    shard = shard_of(enclave)
    enclave.init_shard(shard, 1)
    empty_root = enclave.state_root(shard).state_root
    blocks = chain.chain_of(chain.genesis, 3, start_time=5_000)
    imported = enclave.import_parentchain_blocks(blocks)
    assert [b.number for b in imported] == [1, 2, 3]
    assert enclave.last_imported_block() == (3, blocks[-1].hash())
    info = enclave.state_root(shard)
    assert (info.block_number, info.block_hash) == (3, blocks[-1].hash())
    assert info.state_root != empty_root
    assert imported[-1].state_roots == [(shard, info.state_root)]
    assert parentchain_now(shard_state(enclave, shard), ParentchainId.INTEGRITEE) == 5_000 + 18_000
    # every processed block is confirmed on chain, even without calls for the shard
    assert [len(b.extrinsics) for b in imported] == [1, 1, 1]


def test_api_resumes_after_restart(data_dir: Path, host: Any, chain: Any) -> None:
    """After a restart the enclave continues after its last committed block."""
    blocks = chain.chain_of(chain.genesis, 4)
    with Enclave.init(data_dir, sim_backend(data_dir, MODULES), MODULES, host) as e:
        e.set_parentchain_info(chain.info)
        e.set_nonce(0)
        e.init_shard(shard_of(e), 1)
        e.init_parentchain(chain.genesis)
        e.import_parentchain_blocks(blocks[:2])
        root = e.state_root(shard_of(e))
    with Enclave.init(data_dir, sim_backend(data_dir, MODULES), MODULES, host) as e:
        e.set_parentchain_info(chain.info)
        e.set_nonce(2)
        assert e.init_parentchain(chain.genesis) == (2, blocks[1].hash())
        assert e.state_root(shard_of(e)) == root
        e.init_shard(shard_of(e), 1)  # idempotent
        with pytest.raises(BlockNumberMismatchError):
            e.import_parentchain_blocks(blocks[1:2])
        e.import_parentchain_blocks(blocks[2:])
        assert e.last_imported_block() == (4, blocks[3].hash())


def assert_nothing_committed(enclave: Enclave, shard: ShardId, before: Any, host: Any) -> None:
    assert enclave.last_imported_block() == (before.block_number, before.block_hash)
    assert enclave.state_root(shard) == before
    assert host.submitted == []


@pytest.mark.parametrize("defect", ["parent", "number", "extrinsics_root"])
def test_api_light_client_refuses_bad_block(
    enclave: Enclave, chain: Any, host: Any, defect: str
) -> None:
    """Bad parent hash, number or extrinsics root: a typed error and nothing committed."""
    shard = shard_of(enclave)
    enclave.init_shard(shard, 1)
    [good] = chain.chain_of(chain.genesis, 1)
    enclave.import_parentchain_blocks([good])
    host.submitted.clear()  # the good block's confirmation
    before = enclave.state_root(shard)
    [block] = chain.chain_of(good.header, 1)
    header = block.header
    if defect == "parent":
        header = Header(
            BlockHash(bytes(32)), header.number, header.state_root, header.extrinsics_root
        )
        error: type[Exception] = ParentHashMismatchError
    elif defect == "number":
        header = Header(
            header.parent_hash, BlockNumber(5), header.state_root, header.extrinsics_root
        )
        error = BlockNumberMismatchError
    else:
        header = Header(header.parent_hash, header.number, header.state_root, b"\x01" * 32)
        error = ExtrinsicsRootMismatchError
    signed = block.signed.__class__(block.signed.block.__class__(header, block.extrinsics))
    bad = block.__class__(signed)
    with pytest.raises(error):
        enclave.import_parentchain_blocks([bad])
    assert_nothing_committed(enclave, shard, before, host)
    enclave.import_parentchain_blocks([block])  # the good block still imports afterwards


def test_api_batch_stops_at_first_bad_block(enclave: Enclave, chain: Any) -> None:
    """Blocks before a bad one in a batch are committed; the bad one and later are not."""
    blocks = chain.chain_of(chain.genesis, 3)
    broken = chain.block(chain.genesis)  # number 1 again: does not follow block 1
    with pytest.raises(BlockNumberMismatchError):
        enclave.import_parentchain_blocks([blocks[0], broken, blocks[1]])
    assert enclave.last_imported_block() == (1, blocks[0].hash())


def test_api_refuses_blocks_without_metadata(data_dir: Path, host: Any, chain: Any) -> None:
    """A block with extrinsics cannot be imported before the chain's metadata is known."""
    with Enclave.init(data_dir, sim_backend(data_dir, MODULES), MODULES, host) as e:
        e.init_parentchain(chain.genesis)
        with pytest.raises(EnclaveUsageError, match="metadata"):
            e.import_parentchain_blocks(chain.chain_of(chain.genesis, 1))
        e.import_parentchain_blocks([chain.block(chain.genesis)])  # empty body: fine
        assert e.last_imported_block() is not None
        assert e.last_imported_block()[0] == 1  # type: ignore[index]


def test_api_runtime_upgrade_needs_new_metadata(enclave: Enclave, chain: Any) -> None:
    """After a block that upgrades the runtime, new metadata must be passed in before going on."""
    upgrade = chain.block(
        chain.genesis, [chain.timestamp_xt(6000)], digest=[DigestRuntimeEnvironmentUpdated()]
    )
    enclave.import_parentchain_blocks([upgrade])
    [nxt] = chain.chain_of(upgrade.header, 1)
    with pytest.raises(EnclaveUsageError, match="upgraded"):
        enclave.import_parentchain_blocks([nxt])
    enclave.set_parentchain_info(chain.info)
    enclave.import_parentchain_blocks([nxt])


def test_api_refuse_executor_refuses_indirect_calls(data_dir: Path, chain: Any, host: Any) -> None:
    """With RefuseIndirectCalls, an invoke for our shard is refused (never skipped)."""
    enclave = Enclave.init(
        data_dir, sim_backend(data_dir, MODULES), MODULES, host, executor=RefuseIndirectCalls()
    )
    enclave.set_parentchain_info(chain.info)
    enclave.set_nonce(0)
    enclave.init_parentchain(chain.genesis)
    shard = shard_of(enclave)
    enclave.init_shard(shard, 1)
    before = enclave.state_root(shard)
    other = chain.invoke_xt(CHARLIE, 0, b"\x09" * 32, b"\x00" * 384)
    ours = chain.invoke_xt(CHARLIE, 1, shard, b"\x00" * 384)
    block = chain.block(chain.genesis, [chain.timestamp_xt(6000), ours])
    with pytest.raises(IndirectCallsUnsupportedError, match="invoke"):
        enclave.import_parentchain_blocks([block])
    assert_nothing_committed(enclave, shard, before, host)
    enclave.import_parentchain_blocks(
        [chain.block(chain.genesis, [chain.timestamp_xt(6000), other])]
    )
    enclave.close()


def test_api_init_shard_rules(enclave: Enclave, chain: Any) -> None:
    """A shard created before blocks already imported is refused; re-init must match."""
    shard = shard_of(enclave)
    enclave.import_parentchain_blocks(chain.chain_of(chain.genesis, 2))
    with pytest.raises(EnclaveUsageError, match="already imported"):
        enclave.init_shard(shard, 2)
    enclave.init_shard(shard, 3)
    enclave.init_shard(shard, 3)
    with pytest.raises(ShardExistsError):
        enclave.init_shard(shard, 4)
    assert enclave.shards() == [shard]


# -- indirect calls through the hook, getters, extrinsics ----------------------------------------


@pytest.fixture
def executing_enclave(data_dir: Path, host: Any, chain: Any) -> Any:
    e = Enclave.init(
        data_dir, sim_backend(data_dir, MODULES), MODULES, host, executor=InvokeExecutor()
    )
    try:
        e.set_parentchain_info(chain.info)
        e.set_nonce(7)
        e.init_parentchain(chain.genesis)
        e.init_shard(shard_of(e), 1)
        yield e
    finally:
        e.close()


def signed_payload_of(chain: Any, raw: bytes, call: bytes) -> bytes:
    """Rebuild what an immortal extrinsic signed: call ‖ extra ‖ spec ‖ tx ‖ genesis ‖ genesis."""
    assert raw.endswith(call)
    r = Reader(raw)
    read_compact(r)
    assert r.read_byte() == 0x84
    r.read(1 + 32 + 1 + 64)  # MultiAddress::Id(account), MultiSignature::Ed25519(signature)
    extra = raw[r.pos : len(raw) - len(call)]
    genesis: bytes = chain.genesis.hash()
    additional = U32.encode(SPEC_VERSION) + U32.encode(TX_VERSION) + genesis + genesis
    return call + extra + additional


def test_api_executes_invoke_and_confirms(
    executing_enclave: Enclave, chain: Any, host: Any
) -> None:
    """Invoked calls run through the hook; the enclave confirms with the right Merkle root and
    sends unshield_funds, signed by its own account with consecutive nonces."""
    e = executing_enclave
    shard = shard_of(e)
    set_balance = BalanceSetBalance(ALICE.account_id, BOB.account_id, Balance(1000), Balance(0))
    unshield = BalanceUnshield(BOB.account_id, BOB.account_id, Balance(300), shard)
    block1 = chain.block(
        chain.genesis,
        [
            chain.timestamp_xt(6000),
            chain.invoke_xt(CHARLIE, 0, shard, encrypted_call(e, set_balance, 0, ALICE)),
        ],
    )
    block2 = chain.block(
        block1.header,
        [
            chain.timestamp_xt(12000),
            chain.invoke_xt(CHARLIE, 1, shard, encrypted_call(e, unshield, 0, BOB)),
        ],
    )
    imported = e.import_parentchain_blocks([block1, block2])
    assert [len(b.extrinsics) for b in imported] == [1, 2]
    assert host.submitted == [x for b in imported for x in b.extrinsics]

    decoded = [decode_extrinsic(chain.md, raw) for raw in host.submitted]
    assert [d.nonce for d in decoded] == [7, 8, 9]
    assert all(d.signer == e.signer_account() for d in decoded)
    confirm1, unshield_xt, confirm2 = decoded
    assert (confirm1.call.pallet, confirm1.call.name) == (
        "EnclaveBridge",
        "confirm_processed_parentchain_block",
    )
    assert confirm1.call.args["block_hash"] == block1.hash()
    assert confirm1.call.args["block_number"] == 1
    assert confirm1.call.args["shard"] == shard
    assert confirm1.call.args["trusted_calls_merkle_root"] != bytes(32)  # one accepted call
    assert unshield_xt.call.name == "unshield_funds"
    assert unshield_xt.call.args["beneficiary"] == BOB.account_id
    assert unshield_xt.call.args["amount"] == 300
    assert confirm2.call.args["block_number"] == 2
    for d in decoded:
        call_bytes = chain.md.encode_call(d.call.pallet, d.call.name, d.call.args)
        payload = signed_payload_of(chain, d.raw, call_bytes)
        assert isinstance(d.signature, Variant) and d.signature.name == "Ed25519"
        assert verify(KeyScheme.ED25519, e.signer_account(), payload, d.signature.value)

    getter = sign_getter(e.stf.codecs, FreeBalance(BOB.account_id), BOB)
    answer = e.execute_getter(shard, e.stf.codecs.getter.encode(TrustedGetterOp(getter)))
    assert answer is not None and U128.decode(answer) == 700


def test_api_merkle_root_matches_executed_calls(
    executing_enclave: Enclave, chain: Any, host: Any
) -> None:
    """The confirmed root is the binary Merkle root of blake2_256(SCALE(signed call))."""
    e = executing_enclave
    shard = shard_of(e)
    call = BalanceSetBalance(ALICE.account_id, BOB.account_id, Balance(5), Balance(0))
    signed = sign_call(e.stf.codecs, call, Nonce(0), e.mrenclave(), shard, ALICE)
    key = ShieldingPublicKey.from_json(e.shielding_public_key_json())
    ct = key.encrypt(e.stf.codecs.operation.encode(IndirectCall(signed)))
    block = chain.block(
        chain.genesis, [chain.timestamp_xt(6000), chain.invoke_xt(CHARLIE, 0, shard, ct)]
    )
    [imported] = e.import_parentchain_blocks([block])
    [confirm] = [decode_extrinsic(chain.md, x) for x in imported.extrinsics]
    expected = trusted_calls_merkle_root([e.stf.codecs.call_signed.encode(signed)])
    assert confirm.call.args["trusted_calls_merkle_root"] == expected


def test_api_extrinsics_need_nonce(data_dir: Path, host: Any, chain: Any) -> None:
    """Without a known nonce the enclave cannot sign, so the block is not committed."""
    with Enclave.init(
        data_dir, sim_backend(data_dir, MODULES), MODULES, host, executor=InvokeExecutor()
    ) as e:
        e.set_parentchain_info(chain.info)
        e.init_parentchain(chain.genesis)
        shard = shard_of(e)
        e.init_shard(shard, 1)
        call = BalanceSetBalance(ALICE.account_id, BOB.account_id, Balance(5), Balance(0))
        xt = chain.invoke_xt(CHARLIE, 0, shard, encrypted_call(e, call, 0, ALICE))
        block = chain.block(chain.genesis, [chain.timestamp_xt(6000), xt])
        before = e.state_root(shard)
        with pytest.raises(ExtrinsicCompositionError, match="nonce"):
            e.import_parentchain_blocks([block])
        assert_nothing_committed(e, shard, before, host)
        e.set_nonce(0)
        e.import_parentchain_blocks([block])
        nonce_getter = sign_getter(e.stf.codecs, NonceGetter(ALICE.account_id), ALICE)
        answer = e.execute_getter(shard, e.stf.codecs.getter.encode(TrustedGetterOp(nonce_getter)))
        assert answer == U32.encode(1)  # applied exactly once


def test_api_execute_getter_checks_signature_and_input(enclave: Enclave) -> None:
    """Getters: a real signed getter answers; a forged one, garbage, or unknown shard fail."""
    shard = shard_of(enclave)
    enclave.init_shard(shard, 1)
    codecs = enclave.stf.codecs
    mine = sign_getter(codecs, FreeBalance(BOB.account_id), BOB)
    assert enclave.execute_getter(
        shard, codecs.getter.encode(TrustedGetterOp(mine))
    ) == U128.encode(0)
    forged = sign_getter(codecs, FreeBalance(BOB.account_id), ALICE)
    with pytest.raises(GetterSignatureError):
        enclave.execute_getter(shard, codecs.getter.encode(TrustedGetterOp(forged)))
    public = codecs.getter.encode(PublicGetterOp(SomeValue()))
    assert enclave.execute_getter(shard, public) == U32.encode(42)
    with pytest.raises(GetterDecodeError):
        enclave.execute_getter(shard, b"\x07garbage")
    with pytest.raises(UnknownShardError):
        enclave.execute_getter(ShardId(b"\x05" * 32), public)


def test_api_register_extrinsic(enclave: Enclave, chain: Any) -> None:
    """The enclave composes Teerex.register_sgx_enclave itself: Skip with its mrenclave (sim)."""
    raw = enclave.register_enclave_extrinsic("wss://127.0.0.1:2000")
    xt = decode_extrinsic(chain.md, raw)
    assert (xt.call.pallet, xt.call.name) == ("Teerex", "register_sgx_enclave")
    assert xt.call.args == {
        "proof": bytes(enclave.mrenclave()),
        "worker_url": b"wss://127.0.0.1:2000",
        "attestation_method": Variant("Skip", {"proxied": False}),
    }
    assert xt.signer == enclave.signer_account() and xt.nonce == 0
    assert decode_extrinsic(chain.md, enclave.register_enclave_extrinsic(None)).nonce == 1


def test_api_signer_is_ed25519_account(enclave: Enclave) -> None:
    """The signer account is the ed25519 public key bound in report_data[0..32]."""
    assert len(enclave.signer_account()) == 32
    assert enclave._keys.signer.scheme is KeyScheme.ED25519
    assert AccountId(enclave.attestation().report_data[:32]) == enclave.signer_account()


def test_api_rollback_restores_state_and_light_client(enclave: Enclave, chain: Any) -> None:
    """Rolling back returns shards and light client to a retained block; re-import agrees."""
    shard = shard_of(enclave)
    enclave.init_shard(shard, 1)
    blocks = chain.chain_of(chain.genesis, 4)
    enclave.import_parentchain_blocks(blocks[:2])
    at_two = enclave.state_root(shard)
    enclave.import_parentchain_blocks(blocks[2:])
    final = enclave.state_root(shard)
    assert enclave.rollback(2) == (2, blocks[1].hash())
    assert enclave.state_root(shard) == at_two
    assert enclave.last_imported_block() == (2, blocks[1].hash())
    enclave.import_parentchain_blocks(blocks[2:])
    assert enclave.state_root(shard) == final


def test_api_host_submit_failure_keeps_block(
    executing_enclave: Enclave, chain: Any, host: Any, monkeypatch: Any
) -> None:
    """If the host cannot take the extrinsics, the committed block stays and returns them."""
    e = executing_enclave
    shard = shard_of(e)

    def refuse(extrinsics: Any) -> None:
        raise ConnectionError("node unreachable")

    monkeypatch.setattr(host, "submit_extrinsics", refuse)
    call = BalanceSetBalance(ALICE.account_id, BOB.account_id, Balance(5), Balance(0))
    xt = chain.invoke_xt(CHARLIE, 0, shard, encrypted_call(e, call, 0, ALICE))
    block = chain.block(chain.genesis, [chain.timestamp_xt(6000), xt])
    [imported] = e.import_parentchain_blocks([block])
    assert e.last_imported_block() == (1, block.hash())
    [confirm] = [decode_extrinsic(chain.md, x) for x in imported.extrinsics]
    assert confirm.call.name == "confirm_processed_parentchain_block"


def test_api_query_state_reads_committed_state(enclave: Enclave, chain: Any) -> None:
    """query_state runs a read-only function on the last committed state of a known shard."""
    shard = shard_of(enclave)
    enclave.init_shard(shard, 1)
    enclave.import_parentchain_blocks(chain.chain_of(chain.genesis, 1, start_time=0))
    now = enclave.query_state(shard, lambda s: parentchain_now(s, ParentchainId.INTEGRITEE))
    assert now == 6000
    with pytest.raises(UnknownShardError):
        enclave.query_state(ShardId(b"\x05" * 32), lambda s: None)
