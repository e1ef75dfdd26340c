"""The trusted RPC handlers, sans-I/O: JSON text in, JSON text out, over a real sim enclave."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tocw import __version__
from tocw.enclave.api import Enclave
from tocw.enclave.errors import UnknownShardError
from tocw.enclave.indirect_calls import (
    BlockContext,
    ShardBlockResult,
    ShardContext,
    targets_shard,
)
from tocw.enclave.measurement import sim_backend
from tocw.enclave.trusted_rpc import (
    DIRECT_INVOCATION_UNSUPPORTED,
    MAX_REQUEST_SIZE,
    STATE_ROOT_CODEC,
    TrustedRpcConfig,
    build_trusted_rpc,
    decode_result,
    methods_listing,
    module_rpc_methods,
)
from tocw.primitives.header import Header, extrinsics_root
from tocw.primitives.keys import Keypair
from tocw.primitives.scale import U32, U128, Bytes, Option, Str
from tocw.primitives.shielding import ShieldingPublicKey
from tocw.primitives.trusted import (
    REQUEST_CODEC,
    BalanceSetBalance,
    FreeBalance,
    IndirectCall,
    NonceGetter,
    PublicGetterOp,
    Request,
    RpcReturnValue,
    SomeValue,
    StatusError,
    StatusOk,
    TrustedGetterOp,
    sign_call,
    sign_getter,
)
from tocw.primitives.types import Balance, BlockHash, BlockNumber, Moment, Nonce, ShardId, to_hex
from tocw.rpc.dispatch import Dispatcher
from tocw.rpc.errors import DuplicateMethodError
from tocw.stf.modules.auction import AUCTION_PAGE, AuctionCreate, list_auctions
from tocw.stf.state import State
from tocw.stf.types import RpcMethodSpec, StfModule
from tocw.tee.attestation import ATTESTATION_CODEC, check_binding
from tocw.tee.base import TeeKind
from tocw.worker.sealed_store import DirectorySealedStore

ALICE = Keypair.from_uri("//Alice")
BOB = Keypair.from_uri("//Bob")
CHARLIE = Keypair.from_uri("//Charlie")
GENESIS = Header(BlockHash(bytes(32)), BlockNumber(0), b"\x11" * 32, extrinsics_root([]))
MU_RA_URL = "127.0.0.1:3443"
UNTRUSTED_URL = "wss://worker.example:2000"


# -- helpers -------------------------------------------------------------------------------------


def shard_of(enclave: Enclave) -> ShardId:
    return ShardId(bytes(enclave.mrenclave()))


def dispatcher_for(enclave: Enclave, **config: Any) -> Dispatcher:
    config.setdefault("shard", shard_of(enclave))
    return build_trusted_rpc(enclave, TrustedRpcConfig(**config))


def raw_call(dispatcher: Dispatcher, text: str | bytes) -> Any:
    answer = asyncio.run(dispatcher.dispatch(text))
    assert answer is not None
    return json.loads(answer)


def call(dispatcher: Dispatcher, method: str, params: Any = None, req_id: int = 1) -> Any:
    request = {"jsonrpc": "2.0", "method": method, "params": params or [], "id": req_id}
    response = raw_call(dispatcher, json.dumps(request))
    assert response["id"] == req_id
    return response


def ok_value(dispatcher: Dispatcher, method: str, params: Any = None) -> bytes:
    """The value of an Ok RpcReturnValue (fails the test for anything else)."""
    response = call(dispatcher, method, params)
    assert "result" in response, response
    rv = decode_result(response["result"])
    assert rv.status == StatusOk(), rv.error_message()
    assert rv.do_watch is False
    return rv.value


def error_message(dispatcher: Dispatcher, method: str, params: Any = None) -> str:
    """The message of an Error RpcReturnValue (fails the test for anything else)."""
    response = call(dispatcher, method, params)
    assert "result" in response, response
    rv = decode_result(response["result"])
    assert rv.status == StatusError()
    message = rv.error_message()
    assert message is not None
    return message


def rpc_error_code(dispatcher: Dispatcher, method: str, params: Any = None) -> int:
    response = call(dispatcher, method, params)
    assert "error" in response, response
    code: int = response["error"]["code"]
    return code


def getter_request(enclave: Enclave, shard: bytes, getter: Any) -> str:
    """hex(SCALE(Request{shard, SCALE(Getter)})), what state_executeGetter takes."""
    encoded = enclave.stf.codecs.getter.encode(getter)
    return to_hex(REQUEST_CODEC.encode(Request(ShardId(shard), encoded)))


class InvokeExecutor:
    """Executes EnclaveBridge.invoke calls through the STF, so tests have real state to read
    (the worker's own executor is another helper's; this is the same minimal hook)."""

    def execute_block(self, block: BlockContext, shard: ShardContext) -> ShardBlockResult:
        outcomes = []
        for xt in block.extrinsics:
            if xt.call.name == "invoke" and targets_shard(xt.call, shard.shard):
                op = shard.stf.decode_operation(
                    shard.decrypt(xt.call.args["request"]["cyphertext"])
                )
                assert isinstance(op, IndirectCall)
                outcomes.append(shard.stf.execute_call(shard.state, op.signed, shard.env))
        return ShardBlockResult(tuple(outcomes), (), bool(outcomes))


def encrypted_call(enclave: Enclave, call_value: Any, nonce: int, signer: Keypair) -> bytes:
    shard = shard_of(enclave)
    signed = sign_call(
        enclave.stf.codecs, call_value, Nonce(nonce), enclave.mrenclave(), shard, signer
    )
    key = ShieldingPublicKey.from_json(enclave.shielding_public_key_json())
    return key.encrypt(enclave.stf.codecs.operation.encode(IndirectCall(signed)))


def executing_enclave(
    data_dir: Path, host: Any, chain: Any, modules: tuple[str, ...]
) -> Iterator[Enclave]:
    e = Enclave.init(
        data_dir, sim_backend(data_dir, modules), modules, host, executor=InvokeExecutor()
    )
    try:
        e.set_parentchain_info(chain.info)
        e.set_nonce(0)
        e.init_parentchain(chain.genesis)
        e.init_shard(shard_of(e), 1)
        yield e
    finally:
        e.close()


@pytest.fixture
def balances_enclave(data_dir: Path, host: Any, chain: Any) -> Iterator[Enclave]:
    yield from executing_enclave(data_dir, host, chain, ("balances",))


@pytest.fixture
def auction_enclave(data_dir: Path, host: Any, chain: Any) -> Iterator[Enclave]:
    yield from executing_enclave(data_dir, host, chain, ("balances", "auction"))


class ReadOnlyHost:
    """OCALLs of an enclave that only answers queries: real sealed files, nothing to submit."""

    def __init__(self, root: Path) -> None:
        self.store = DirectorySealedStore(root)

    def store_sealed(self, name: str, blob: bytes) -> None:
        self.store.store_sealed(name, blob)

    def load_sealed(self, name: str) -> bytes | None:
        return self.store.load_sealed(name)

    def submit_extrinsics(self, extrinsics: Sequence[bytes]) -> None:
        raise AssertionError("a read-only enclave submitted extrinsics")


def shared_enclave(root: Path, modules: tuple[str, ...]) -> Iterator[Enclave]:
    """An enclave at the genesis with its default shard, shared by the read-only tests of this
    file (key generation dominates an enclave's start-up)."""
    e = Enclave.init(root, sim_backend(root, modules), modules, ReadOnlyHost(root / "sealed"))
    try:
        e.init_parentchain(GENESIS)
        e.init_shard(shard_of(e), 1)
        yield e
    finally:
        e.close()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Enclave]:
    yield from shared_enclave(tmp_path_factory.mktemp("shared"), ("balances",))


@pytest.fixture(scope="module")
def shared_auction(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Enclave]:
    yield from shared_enclave(tmp_path_factory.mktemp("auction"), ("balances", "auction"))


@pytest.fixture(scope="module")
def rpc(shared: Enclave) -> Dispatcher:
    return dispatcher_for(shared, mu_ra_url=MU_RA_URL, untrusted_url=UNTRUSTED_URL)


# -- identity and configuration ------------------------------------------------------------------


def test_trusted_rpc_shielding_key_is_the_enclaves(rpc: Dispatcher, shared: Enclave) -> None:
    """author_getShieldingKey: SCALE(String) of the key JSON, usable to encrypt."""
    key_json = Str.decode(ok_value(rpc, "author_getShieldingKey"))
    assert key_json == shared.shielding_public_key_json()
    key = ShieldingPublicKey.from_json(key_json)
    assert len(json.loads(key_json)["n"]) == 384
    assert len(key.encrypt(b"x" * 400)) == 2 * 384


def test_trusted_rpc_shard_and_vault_are_the_shard_bytes(rpc: Dispatcher, shared: Enclave) -> None:
    """author_getShard and author_getShardVault: the 32 shard bytes (the vault is the shard
    id as an account, as the EnclaveBridge pallet pays into it)."""
    assert ok_value(rpc, "author_getShard") == shard_of(shared)
    assert ok_value(rpc, "author_getShardVault") == shard_of(shared)


def test_trusted_rpc_shard_comes_from_config(shared: Enclave) -> None:
    """A worker serving another shard than its MRENCLAVE says so."""
    other = ShardId(b"\x42" * 32)
    assert ok_value(dispatcher_for(shared, shard=other), "author_getShard") == other


def test_trusted_rpc_config_rejects_short_shard() -> None:
    """A 31-byte shard is a configuration error, caught at construction."""
    with pytest.raises(ValueError, match="32 bytes"):
        TrustedRpcConfig(shard=ShardId(b"\x01" * 31))


def test_trusted_rpc_urls_as_configured(rpc: Dispatcher) -> None:
    """author_getMuRaUrl / author_getUntrustedUrl answer SCALE(String) of the configured URLs."""
    assert Str.decode(ok_value(rpc, "author_getMuRaUrl")) == MU_RA_URL
    assert Str.decode(ok_value(rpc, "author_getUntrustedUrl")) == UNTRUSTED_URL


def test_trusted_rpc_unconfigured_urls_are_errors(shared: Enclave) -> None:
    """Without configured URLs the answer is an Error status, never an invented URL."""
    rpc = dispatcher_for(shared)
    assert "mu-ra url" in error_message(rpc, "author_getMuRaUrl")
    assert "untrusted" in error_message(rpc, "author_getUntrustedUrl")


def test_trusted_rpc_mrenclave(rpc: Dispatcher, shared: Enclave) -> None:
    """tocw_getMrenclave: the 32-byte measurement."""
    assert ok_value(rpc, "tocw_getMrenclave") == shared.mrenclave()


def test_trusted_rpc_attestation_binds_served_keys(rpc: Dispatcher, shared: Enclave) -> None:
    """tocw_getAttestation: SCALE(Attestation) binding the signer, the served shielding key and
    the TLS key."""
    attestation = ATTESTATION_CODEC.decode(ok_value(rpc, "tocw_getAttestation"))
    assert attestation.tee_kind == TeeKind.SIM
    assert attestation.mrenclave == shared.mrenclave()
    key_json = Str.decode(ok_value(rpc, "author_getShieldingKey"))
    cert = x509.load_der_x509_certificate(shared.tls_certificate())
    tls_public = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert check_binding(attestation, shared.signer_account(), key_json, tls_public)


def test_trusted_rpc_system_name_and_version(rpc: Dispatcher) -> None:
    """system_name / system_version: "tocw" and the package version."""
    assert Str.decode(ok_value(rpc, "system_name")) == "tocw"
    assert Str.decode(ok_value(rpc, "system_version")) == __version__


def test_trusted_rpc_system_health_says_not_secure(rpc: Dispatcher, shared: Enclave) -> None:
    """system_health: real values, and a sim worker says loudly that it is not secure."""
    health = json.loads(Str.decode(ok_value(rpc, "system_health")))
    assert health["tee"] == "sim"
    assert health["isSecure"] is False
    assert "NOT SECURE" in health["warning"]
    assert health["mrenclave"] == to_hex(shared.mrenclave())
    assert health["shard"] == to_hex(shard_of(shared))
    assert health["shards"] == [to_hex(shard_of(shared))]
    assert health["lastImportedBlock"] == {"number": 0, "hash": to_hex(GENESIS.hash())}


def test_trusted_rpc_system_health_merges_host_fields(shared: Enclave) -> None:
    """Host fields (sync state) appear in system_health but cannot override shared facts."""
    rpc = dispatcher_for(shared, host_health=lambda: {"isSyncing": True, "isSecure": True})
    health = json.loads(Str.decode(ok_value(rpc, "system_health")))
    assert health["isSyncing"] is True
    assert health["isSecure"] is False


def test_trusted_rpc_direct_invocation_refused(rpc: Dispatcher, shared: Enclave) -> None:
    """author_submitExtrinsic / author_submitAndWatchExtrinsic: the off-chain-worker Error."""
    request = getter_request(shared, shard_of(shared), PublicGetterOp(SomeValue()))
    for method in ("author_submitExtrinsic", "author_submitAndWatchExtrinsic"):
        assert error_message(rpc, method, [request]) == DIRECT_INVOCATION_UNSUPPORTED
        assert rpc_error_code(rpc, method, []) == -32602


def test_trusted_rpc_rpc_methods_lists_everything_as_integritee(rpc: Dispatcher) -> None:
    """rpc_methods: a plain JSON string "methods: [a, b]" (Integritee's format) of all methods,
    itself included."""
    response = call(rpc, "rpc_methods")
    assert response["result"] == methods_listing(rpc.method_names())
    listed = response["result"].removeprefix("methods: [").removesuffix("]").split(", ")
    for method in (
        "author_getShieldingKey",
        "state_executeGetter",
        "author_getShard",
        "author_getShardVault",
        "author_getMuRaUrl",
        "author_getUntrustedUrl",
        "author_submitExtrinsic",
        "author_submitAndWatchExtrinsic",
        "rpc_methods",
        "system_health",
        "system_name",
        "system_version",
        "tocw_getMrenclave",
        "tocw_getAttestation",
        "tocw_getStateRoot",
    ):
        assert method in listed


# -- getters ---------------------------------------------------------------------------------------


def test_trusted_rpc_getter_reads_executed_state(balances_enclave: Enclave, chain: Any) -> None:
    """state_executeGetter answers SCALE(Option<Vec<u8>>) of the getter's result on the state
    the executed calls produced."""
    e = balances_enclave
    shard = shard_of(e)
    set_balance = BalanceSetBalance(ALICE.account_id, BOB.account_id, Balance(1234), Balance(0))
    block = chain.block(
        chain.genesis,
        [
            chain.timestamp_xt(6000),
            chain.invoke_xt(CHARLIE, 0, shard, encrypted_call(e, set_balance, 0, ALICE)),
        ],
    )
    e.import_parentchain_blocks([block])
    rpc = dispatcher_for(e)
    codecs = e.stf.codecs
    free = TrustedGetterOp(sign_getter(codecs, FreeBalance(BOB.account_id), BOB))
    value = Option(Bytes).decode(
        ok_value(rpc, "state_executeGetter", [getter_request(e, shard, free)])
    )
    assert value is not None and U128.decode(value) == 1234
    nonce = TrustedGetterOp(sign_getter(codecs, NonceGetter(ALICE.account_id), ALICE))
    value = Option(Bytes).decode(
        ok_value(rpc, "state_executeGetter", [getter_request(e, shard, nonce)])
    )
    assert value is not None and U32.decode(value) == 1
    public = getter_request(e, shard, PublicGetterOp(SomeValue()))
    assert Option(Bytes).decode(ok_value(rpc, "state_executeGetter", [public])) == U32.encode(42)


def test_trusted_rpc_getter_with_bad_signature_is_error(rpc: Dispatcher, shared: Enclave) -> None:
    """A trusted getter signed by another account answers an Error status, no value."""
    forged = TrustedGetterOp(sign_getter(shared.stf.codecs, FreeBalance(BOB.account_id), ALICE))
    message = error_message(
        rpc, "state_executeGetter", [getter_request(shared, shard_of(shared), forged)]
    )
    assert "signature" in message.lower()


@pytest.mark.parametrize(
    ("param", "expected"),
    [
        ("0xzz", "not valid hex"),
        ("0x1234", "could not decode the request"),
        (to_hex(REQUEST_CODEC.encode(Request(ShardId(b"\x01" * 32), b"\x00"))), "unknown shard"),
    ],
)
def test_trusted_rpc_getter_bad_request_is_error(
    rpc: Dispatcher, param: str, expected: str
) -> None:
    """Bad hex, an undecodable Request or an unknown shard: Error status with the reason."""
    assert expected in error_message(rpc, "state_executeGetter", [param]).lower()


def test_trusted_rpc_getter_undecodable_getter_is_error(rpc: Dispatcher, shared: Enclave) -> None:
    """A Request whose payload is no Getter of this STF: Error status."""
    param = to_hex(REQUEST_CODEC.encode(Request(shard_of(shared), b"\x07garbage")))
    assert "getter" in error_message(rpc, "state_executeGetter", [param]).lower()


@pytest.mark.parametrize("params", [[], ["0x00", "0x00"], [42], [None], {"wrong_name": "0x00"}])
def test_trusted_rpc_getter_wrong_params_shape_is_invalid_params(
    rpc: Dispatcher, params: Any
) -> None:
    """Params that are not one hex string: JSON-RPC -32602 (PROTOCOL.md)."""
    assert rpc_error_code(rpc, "state_executeGetter", params) == -32602


def test_trusted_rpc_getter_by_named_param(rpc: Dispatcher, shared: Enclave) -> None:
    """Params may also come as an object, bound by name."""
    public = getter_request(shared, shard_of(shared), PublicGetterOp(SomeValue()))
    value = ok_value(rpc, "state_executeGetter", {"request": public})
    assert Option(Bytes).decode(value) == U32.encode(42)


# -- state root -----------------------------------------------------------------------------------


def test_trusted_rpc_state_root_of_last_block(balances_enclave: Enclave, chain: Any) -> None:
    """tocw_getStateRoot: (number, hash, state root) of the last processed block."""
    e = balances_enclave
    shard = shard_of(e)
    blocks = chain.chain_of(chain.genesis, 2)
    e.import_parentchain_blocks(blocks)
    rpc = dispatcher_for(e)
    number, block_hash, root = STATE_ROOT_CODEC.decode(
        ok_value(rpc, "tocw_getStateRoot", [to_hex(shard)])
    )
    info = e.state_root(shard)
    assert (number, block_hash, root) == (2, blocks[-1].hash(), info.state_root)


@pytest.mark.parametrize(
    ("param", "expected"),
    [("0x1234", "32 bytes"), ("nothex", "not valid hex"), (to_hex(b"\x09" * 32), "unknown shard")],
)
def test_trusted_rpc_state_root_bad_shard_is_error(
    rpc: Dispatcher, param: str, expected: str
) -> None:
    """A shard param that is no hex, not 32 bytes or unknown: Error status."""
    assert expected in error_message(rpc, "tocw_getStateRoot", [param])


def test_trusted_rpc_state_root_needs_one_string(rpc: Dispatcher) -> None:
    """tocw_getStateRoot without a shard, or with a number: -32602."""
    assert rpc_error_code(rpc, "tocw_getStateRoot", []) == -32602
    assert rpc_error_code(rpc, "tocw_getStateRoot", [7]) == -32602


# -- JSON-RPC level errors ------------------------------------------------------------------------


def test_trusted_rpc_malformed_json_is_parse_error(rpc: Dispatcher) -> None:
    """Not JSON: -32700 with a null id."""
    response = raw_call(rpc, '{"jsonrpc": "2.0", "method": ')
    assert response["error"]["code"] == -32700
    assert response["id"] is None


def test_trusted_rpc_invalid_request(rpc: Dispatcher) -> None:
    """JSON that is no request object: -32600."""
    assert raw_call(rpc, '{"jsonrpc": "1.0", "method": "x", "id": 3}')["error"]["code"] == -32600
    assert raw_call(rpc, "[]")["error"]["code"] == -32600


def test_trusted_rpc_unknown_method(rpc: Dispatcher) -> None:
    """A method nobody registered: -32601."""
    assert rpc_error_code(rpc, "author_pendingExtrinsics") == -32601


def test_trusted_rpc_extra_params_to_parameterless_method(rpc: Dispatcher) -> None:
    """A method taking no params given one: -32602, the handler never runs."""
    assert rpc_error_code(rpc, "author_getShard", ["0x00"]) == -32602


def test_trusted_rpc_oversized_request_refused(rpc: Dispatcher) -> None:
    """A message above 1 MiB is refused with -32007 before parsing."""
    padding = "0x" + "00" * (MAX_REQUEST_SIZE // 2)
    text = json.dumps({"jsonrpc": "2.0", "method": "state_executeGetter", "params": [padding]})
    assert len(text) > MAX_REQUEST_SIZE
    assert raw_call(rpc, text)["error"]["code"] == -32007


def test_trusted_rpc_batch_answers_each(rpc: Dispatcher) -> None:
    """A batch gets one answer per request, errors included."""
    batch = [
        {"jsonrpc": "2.0", "method": "system_name", "params": [], "id": 1},
        {"jsonrpc": "2.0", "method": "nope", "params": [], "id": 2},
    ]
    answers = {a["id"]: a for a in raw_call(rpc, json.dumps(batch))}
    assert decode_result(answers[1]["result"]).status == StatusOk()
    assert answers[2]["error"]["code"] == -32601


def test_trusted_rpc_handler_bug_is_internal_error(shared: Enclave) -> None:
    """A host_health callback that raises is a bug: -32603 without details."""

    def broken() -> dict[str, Any]:
        raise RuntimeError("secret internals")

    rpc = dispatcher_for(shared, host_health=broken)
    response = call(rpc, "system_health")
    assert response["error"]["code"] == -32603
    assert "secret" not in json.dumps(response)


# -- extensibility ------------------------------------------------------------------------------


def test_trusted_rpc_deployment_methods_are_served_and_listed(shared: Enclave) -> None:
    """A deployment's registry is served next to the built-ins and shows in rpc_methods."""

    async def ping(payload: str) -> str:
        return to_hex(b"pong:" + payload.encode())

    rpc = build_trusted_rpc(shared, TrustedRpcConfig(shard=shard_of(shared)), {"ops_ping": ping})
    assert call(rpc, "ops_ping", ["x"])["result"] == to_hex(b"pong:x")
    assert "ops_ping" in call(rpc, "rpc_methods")["result"]


def test_trusted_rpc_duplicate_method_refused(shared: Enclave) -> None:
    """A deployment cannot shadow a built-in method: DuplicateMethodError at startup."""
    with pytest.raises(DuplicateMethodError):
        build_trusted_rpc(
            shared, TrustedRpcConfig(shard=shard_of(shared)), {"author_getShard": lambda: "0x"}
        )
    with pytest.raises(DuplicateMethodError):
        build_trusted_rpc(
            shared, TrustedRpcConfig(shard=shard_of(shared)), {"rpc_methods": lambda: "0x"}
        )


def test_trusted_rpc_module_method_absent_without_module(rpc: Dispatcher) -> None:
    """auction_list exists only in a worker built with the auction module."""
    assert rpc_error_code(rpc, "auction_list", ["0x" + "00" * 32]) == -32601


def test_trusted_rpc_auction_list_pages_public_views(auction_enclave: Enclave, chain: Any) -> None:
    """The auction module's auction_list: public views of created auctions, paged by first id."""
    e = auction_enclave
    shard = shard_of(e)
    creates = [
        AuctionCreate(ALICE.account_id, f"item {i}".encode(), Balance(10 + i), Moment(10**9))
        for i in range(3)
    ]
    xts = [chain.timestamp_xt(6000)] + [
        chain.invoke_xt(CHARLIE, i, shard, encrypted_call(e, create, i, ALICE))
        for i, create in enumerate(creates)
    ]
    e.import_parentchain_blocks([chain.block(chain.genesis, xts)])
    rpc = dispatcher_for(e)
    assert "auction_list" in call(rpc, "rpc_methods")["result"]
    page = AUCTION_PAGE.decode(ok_value(rpc, "auction_list", [to_hex(shard)]))
    assert [(i, v.item, v.reserve_price) for i, v in page] == [
        (0, b"item 0", 10),
        (1, b"item 1", 11),
        (2, b"item 2", 12),
    ]
    assert all(v.result is None for _, v in page)
    later = AUCTION_PAGE.decode(
        ok_value(rpc, "auction_list", [to_hex(shard), to_hex(U32.encode(2))])
    )
    assert [i for i, _ in later] == [2]
    assert (
        AUCTION_PAGE.decode(ok_value(rpc, "auction_list", [to_hex(shard), to_hex(U32.encode(9))]))
        == []
    )
    # Same answer as the pure function over the committed state.
    direct = e.query_state(shard, lambda view: list_auctions(view, []))
    assert ok_value(rpc, "auction_list", [to_hex(shard)]) == direct


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (["0x0102"], "shard must be 32 bytes"),
        ([to_hex(b"\x03" * 32)], "unknown shard"),
        (["SHARD", "0x0102"], "auction_list"),  # not a SCALE u32
        (["SHARD", "0x00000000", "0x00000000"], "at most one parameter"),
        (["SHARD", "0xqq"], "not valid hex"),
    ],
)
def test_trusted_rpc_auction_list_bad_params_are_errors(
    shared_auction: Enclave, params: list[str], expected: str
) -> None:
    """Module methods answer bad params with an Error status carrying the module's reason."""
    shard = to_hex(shard_of(shared_auction))
    rpc = dispatcher_for(shared_auction)
    params = [shard if p == "SHARD" else p for p in params]
    assert expected in error_message(rpc, "auction_list", params)


def test_trusted_rpc_auction_list_needs_string_params(shared_auction: Enclave) -> None:
    """Module methods: no shard, or non-string params, are -32602."""
    rpc = dispatcher_for(shared_auction)
    assert rpc_error_code(rpc, "auction_list", []) == -32602
    assert rpc_error_code(rpc, "auction_list", [to_hex(shard_of(shared_auction)), 5]) == -32602


def test_trusted_rpc_query_state_reads_committed_state(
    balances_enclave: Enclave, chain: Any
) -> None:
    """query_state sees exactly what getters see, and refuses unknown shards."""
    e = balances_enclave
    shard = shard_of(e)
    e.import_parentchain_blocks(chain.chain_of(chain.genesis, 1))
    items = e.query_state(shard, lambda view: view.iter_prefix(b""))
    assert State(items).items() == items
    with pytest.raises(UnknownShardError):
        e.query_state(ShardId(b"\x07" * 32), lambda view: None)


def test_trusted_rpc_decode_result_rejects_non_values() -> None:
    """decode_result: ValueError for a result that is not hex of an RpcReturnValue."""
    with pytest.raises(ValueError, match="hex string"):
        decode_result(5)
    with pytest.raises(ValueError, match="RpcReturnValue"):
        decode_result("0x01")
    assert decode_result(to_hex(b"\x00\x00\x00")) == RpcReturnValue.ok(b"")


def test_trusted_rpc_module_method_clash_names_both_modules() -> None:
    """Two modules declaring one method name stop the build, naming both modules."""

    def query(view: Any, params: Sequence[bytes]) -> bytes:
        return b""

    def module(name: str, indices: range) -> StfModule:
        return StfModule(name, indices, (), rpc_methods=(RpcMethodSpec("shared_list", query),))

    stand_in = SimpleNamespace(
        stf=SimpleNamespace(modules=(module("a", range(60, 61)), module("b", range(61, 62))))
    )
    with pytest.raises(DuplicateMethodError, match="'a' and 'b'"):
        module_rpc_methods(stand_in)  # type: ignore[arg-type]
