"""Our V14 metadata as unmodified Substrate clients see it: scalecodec decodes it, finds every
declared item by name, builds extrinsics from it that our runtime accepts, and decodes what
the runtime writes; substrate-interface composes, signs, queries and estimates fees with it."""

from __future__ import annotations

from typing import Any

import pytest
from scalecodec.base import RuntimeConfigurationObject, ScaleBytes
from scalecodec.type_registry import load_type_registry_preset
from substrateinterface import Keypair as SIKeypair
from substrateinterface import SubstrateInterface
from substrateinterface.transport.base import TransportBase

from tocw.chain.errors import InvalidTransactionError
from tocw.chain.pallets import system
from tocw.chain.pallets.enclave_bridge import ShardConfig
from tocw.chain.pallets.substrate_types import AddressId
from tocw.chain.pallets.teerex import SkipAttestation
from tocw.chain.runtime import PALLETS, LocalChain, Runtime
from tocw.primitives.hashing import blake2_256, storage_prefix
from tocw.primitives.keys import Keypair, KeyScheme

RUNTIME = Runtime()
ALICE = Keypair.from_uri("//Alice", KeyScheme.SR25519)
BOB = Keypair.from_uri("//Bob", KeyScheme.SR25519)


def decode_metadata(raw: bytes) -> tuple[RuntimeConfigurationObject, Any]:
    config = RuntimeConfigurationObject()
    config.update_type_registry(load_type_registry_preset("core"))
    metadata = config.create_scale_object("MetadataVersioned", data=ScaleBytes(raw))
    metadata.decode()
    config.add_portable_registry(metadata)
    return config, metadata


@pytest.fixture(scope="module")
def scale() -> tuple[RuntimeConfigurationObject, Any]:
    return decode_metadata(RUNTIME.metadata())


# --- scalecodec ---------------------------------------------------------------------------------


def test_metadata_decodes_as_v14(scale: tuple[RuntimeConfigurationObject, Any]) -> None:
    """The blob is b"meta" + V14 and scalecodec decodes it completely."""
    _, metadata = scale
    assert RUNTIME.metadata()[:5] == b"meta\x0e"
    assert metadata.value[1] == "V14" or "V14" in metadata.value[1]
    assert [p.name for p in metadata.pallets] == [
        "System",
        "Timestamp",
        "Balances",
        "Teerex",
        "EnclaveBridge",
        "Sudo",
        "TransactionPayment",
    ]


def test_metadata_finds_every_declared_item(scale: tuple[RuntimeConfigurationObject, Any]) -> None:
    """Every call, event, error, storage item and constant of every pallet, by name and index."""
    _, metadata = scale
    for index, pallet in enumerate(PALLETS):
        found = metadata.get_metadata_pallet(pallet.name)
        assert found["index"].value == index
        calls = {c.name: c.value["index"] for c in found.calls or []}
        assert calls == {c.name: c.index for c in pallet.calls}
        events = [e.name for e in found.events or []]
        assert events == [e.name for e in pallet.events]
        errors = [e.name for e in found.errors or []]
        assert errors == [e.name for e in pallet.errors]
        for item in pallet.storage:
            assert found.get_storage_function(item.name) is not None, item.name
        constants = {c.name: bytes(c.value_object["value"].value_object) for c in found.constants}
        for constant in pallet.constants:
            assert constants[constant.name] == constant.encoded(RUNTIME.config)


def test_metadata_registers_substrates_special_paths(
    scale: tuple[RuntimeConfigurationObject, Any],
) -> None:
    """Types clients special-case are spelled exactly as Substrate spells them."""
    _, metadata = scale
    paths = {
        "::".join(t["type"]["path"].value) for t in metadata.portable_registry["types"].value_object
    }
    for path in [
        "sp_core::crypto::AccountId32",
        "primitive_types::H256",
        "sp_runtime::multiaddress::MultiAddress",
        "sp_runtime::MultiSignature",
        "sp_runtime::generic::era::Era",
        "sp_runtime::generic::unchecked_extrinsic::UncheckedExtrinsic",
        "tocw_dev_runtime::RuntimeCall",
        "tocw_dev_runtime::RuntimeEvent",
        "frame_system::EventRecord",
        "frame_system::Phase",
        "sp_runtime::DispatchError",
        "frame_support::dispatch::DispatchInfo",
        "sp_weights::weight_v2::Weight",
        "frame_system::AccountInfo",
        "pallet_balances::types::AccountData",
    ]:
        assert path in paths, path


def test_metadata_declares_the_signed_extensions(
    scale: tuple[RuntimeConfigurationObject, Any],
) -> None:
    """The standard eight signed extensions, in order."""
    _, metadata = scale
    assert list(metadata.get_signed_extensions()) == [
        "CheckNonZeroSender",
        "CheckSpecVersion",
        "CheckTxVersion",
        "CheckGenesis",
        "CheckMortality",
        "CheckNonce",
        "CheckWeight",
        "ChargeTransactionPayment",
    ]


def scalecodec_signed_transfer(
    config: RuntimeConfigurationObject,
    metadata: Any,
    chain: LocalChain,
    era: Any,
    birth_hash: bytes,
) -> bytes:
    """A transfer built entirely by scalecodec from our metadata, signed with
    substrate-interface's Keypair (not with tocw's extrinsic or key code)."""
    call = config.create_scale_object("Call", metadata=metadata)
    call.encode(
        {
            "call_module": "Balances",
            "call_function": "transfer_keep_alive",
            "call_args": {"dest": "0x" + BOB.public_key.hex(), "value": 10**12},
        }
    )
    nonce = chain.runtime.account_nonce(chain.state, ALICE.public_key)

    # The signed payload, assembled from scalecodec encodings in the order of the metadata's
    # signed extensions: call, extra (era, nonce, tip), additional signed.
    def enc(type_string: str, value: Any) -> bytes:
        return bytes(config.create_scale_object(type_string, metadata=metadata).encode(value).data)

    payload_parts = [
        bytes(call.data.data),
        enc("Era", era),
        enc("Compact<u32>", nonce),
        enc("Compact<Balance>", 0),
        enc("u32", chain.runtime.version.spec_version),
        enc("u32", chain.runtime.version.transaction_version),
        chain.genesis_hash,
        birth_hash,
    ]
    data = b"".join(payload_parts)
    signer = SIKeypair.create_from_uri("//Alice")
    signature = signer.sign(data if len(data) <= 256 else blake2_256(data))
    extrinsic = config.create_scale_object("Extrinsic", metadata=metadata)
    extrinsic.encode(
        {
            "account_id": "0x" + ALICE.public_key.hex(),
            "signature_version": 1,
            "signature": "0x" + signature.hex(),
            "call_function": "transfer_keep_alive",
            "call_module": "Balances",
            "call_args": {"dest": "0x" + BOB.public_key.hex(), "value": 10**12},
            "era": era,
            "nonce": nonce,
            "tip": 0,
        }
    )
    return bytes(extrinsic.data.data)


def test_metadata_scalecodec_extrinsic_is_accepted(
    scale: tuple[RuntimeConfigurationObject, Any],
) -> None:
    """An immortal and a mortal transfer made by scalecodec validate and apply here."""
    config, metadata = scale
    chain = LocalChain(RUNTIME)
    for _ in range(3):
        chain.produce()
    immortal = scalecodec_signed_transfer(config, metadata, chain, "00", chain.genesis_hash)
    chain.validate(immortal)
    result = chain.produce(immortal)
    assert result.extrinsics[1:] == [immortal] and result.dispatch_error(1) is None
    mortal_era = {"period": 64, "current": chain.number}
    birth = chain.block_hash(chain.number)
    assert birth is not None
    mortal = scalecodec_signed_transfer(config, metadata, chain, mortal_era, birth)
    assert chain.validate(mortal).longevity <= 64
    assert chain.produce(mortal).extrinsics[1:] == [mortal]
    tampered = bytearray(mortal)
    tampered[-1] ^= 1
    with pytest.raises(InvalidTransactionError):
        chain.validate(bytes(tampered))


def hex0x(data: bytes) -> str:
    return "0x" + data.hex()


def test_metadata_scalecodec_decodes_state_and_events(
    scale: tuple[RuntimeConfigurationObject, Any],
) -> None:
    """System.Account and System.Events as written by the runtime decode with our metadata,
    including a failed extrinsic's module error."""
    config, metadata = scale
    chain = LocalChain(RUNTIME)
    too_much = chain.call("Balances", "transfer_keep_alive", AddressId(BOB.public_key), 1 << 70)
    chain.produce(chain.sign(ALICE, too_much))
    raw_account = chain.state.get(system.ACCOUNT.key(ALICE.public_key))
    account = config.create_scale_object(
        "frame_system::AccountInfo", data=ScaleBytes(raw_account), metadata=metadata
    ).decode()
    assert account["nonce"] == 1 and account["providers"] == 1
    raw_events = chain.state.get(system.EVENTS.prefix)
    events = config.create_scale_object(
        "Vec<frame_system::EventRecord>", data=ScaleBytes(raw_events), metadata=metadata
    ).decode()
    assert [(e["module_id"], e["event_id"], e["extrinsic_idx"]) for e in events] == [
        ("System", "ExtrinsicSuccess", 0),
        ("Balances", "Withdraw", 1),
        ("TransactionPayment", "TransactionFeePaid", 1),
        ("System", "ExtrinsicFailed", 1),
    ]
    error = events[3]["attributes"]["dispatch_error"]["Module"]
    module_error = metadata.get_module_error(error["index"], int(error["error"][2:4], 16))
    assert module_error.name == "InsufficientBalance"


# --- substrate-interface ------------------------------------------------------------------------


class InProcessNode(TransportBase):  # type: ignore[misc]  # substrate-interface is untyped
    """Answers substrate-interface's JSON-RPC from a LocalChain: just the methods it uses to
    compose, sign, submit and query. Each submitted extrinsic gets its own block."""

    def __init__(self, chain: LocalChain) -> None:
        super().__init__()
        self.chain = chain

    def rpc_request(self, payload: dict[str, Any], result_handler: Any = None) -> dict[str, Any]:
        method, params = payload["method"], payload["params"]
        chain = self.chain
        result: Any
        if method == "rpc_methods":
            result = {"methods": ["state_call", "state_getStorageAt", "author_submitExtrinsic"]}
        elif method in ("chain_getHead", "chain_getFinalizedHead"):
            result = hex0x(chain.head)
        elif method == "chain_getBlockHash":
            number = params[0] if params and params[0] is not None else chain.number
            result = hex0x(chain.hashes[number])
        elif method == "chain_getHeader":
            number = chain.hashes.index(bytes.fromhex(params[0][2:]))
            parent = chain.hashes[number - 1] if number else bytes(32)
            result = {
                "parentHash": hex0x(parent),
                "number": hex(number),
                "stateRoot": hex0x(bytes(32)),
                "extrinsicsRoot": hex0x(bytes(32)),
                "digest": {"logs": []},
            }
        elif method in ("state_getRuntimeVersion", "chain_getRuntimeVersion"):
            result = chain.runtime.runtime_version_json()
        elif method == "state_getMetadata":
            result = hex0x(chain.runtime.metadata())
        elif method == "system_properties":
            result = chain.runtime.properties()
        elif method == "state_getStorageAt":
            value = chain.state.get(bytes.fromhex(params[0][2:]))
            result = None if value is None else hex0x(value)
        elif method == "state_call":
            out = chain.runtime.call_api(chain.state, params[0], bytes.fromhex(params[1][2:]))
            result = hex0x(out)
        elif method == "author_submitExtrinsic":
            xt = bytes.fromhex(params[0][2:])
            chain.validate(xt)
            block = chain.produce(xt)
            assert block.extrinsics[1:] == [xt], block.dropped
            result = hex0x(blake2_256(xt))
        else:
            raise AssertionError(f"unexpected RPC {method}")
        return {"jsonrpc": "2.0", "id": payload["id"], "result": result}


@pytest.fixture
def substrate() -> SubstrateInterface:
    client = SubstrateInterface(url="http://127.0.0.1:9", ss58_format=42, auto_discover=False)
    client.transport = InProcessNode(LocalChain(RUNTIME))
    return client


def test_substrate_interface_transfers_and_queries(substrate: SubstrateInterface) -> None:
    """compose_call, create_signed_extrinsic (immortal and mortal), submit, query, fees."""
    alice = SIKeypair.create_from_uri("//Alice")
    bob = SIKeypair.create_from_uri("//Bob")
    call = substrate.compose_call(
        "Balances", "transfer_keep_alive", {"dest": bob.ss58_address, "value": 10**12}
    )
    info = substrate.get_payment_info(call, alice)
    assert info["class"] == "Normal" and info["partialFee"] > 0
    bob_before = substrate.query("System", "Account", [bob.ss58_address])["data"]["free"].value
    substrate.submit_extrinsic(substrate.create_signed_extrinsic(call, alice))
    mortal = substrate.create_signed_extrinsic(call, alice, era={"period": 64})
    substrate.submit_extrinsic(mortal)
    account = substrate.query("System", "Account", [bob.ss58_address])
    assert account["data"]["free"].value == bob_before + 2 * 10**12
    assert substrate.query("System", "Account", [alice.ss58_address])["nonce"].value == 2
    assert substrate.get_constant("Balances", "ExistentialDeposit").value == (
        RUNTIME.config.existential_deposit
    )
    assert substrate.query("Teerex", "AllowSkippingAttestation").value is True
    events = [(e.value["module_id"], e.value["event_id"]) for e in substrate.get_events()]
    assert ("Balances", "Transfer") in events


def test_substrate_interface_decodes_enclave_registry(substrate: SubstrateInterface) -> None:
    """A Teerex registration and an EnclaveBridge shard status read back through the client."""
    alice = SIKeypair.create_from_uri("//Alice")
    mrenclave = "0x" + "ab" * 32
    register = substrate.compose_call(
        "Teerex",
        "register_sgx_enclave",
        {
            "proof": mrenclave,
            "worker_url": "wss://127.0.0.1:2000",
            "attestation_method": {"Skip": {"proxied": False}},
        },
    )
    substrate.submit_extrinsic(substrate.create_signed_extrinsic(register, alice))
    enclave = substrate.query("Teerex", "SovereignEnclaves", [alice.ss58_address]).value
    assert enclave["Sgx"]["mr_enclave"] == mrenclave
    assert enclave["Sgx"]["attestation_method"] == {"Skip": {"proxied": False}}
    confirm = substrate.compose_call(
        "EnclaveBridge",
        "confirm_processed_parentchain_block",
        {
            "shard": mrenclave,
            "block_hash": "0x" + "11" * 32,
            "block_number": 1,
            "trusted_calls_merkle_root": "0x" + "00" * 32,
        },
    )
    substrate.submit_extrinsic(substrate.create_signed_extrinsic(confirm, alice))
    status = substrate.query("EnclaveBridge", "ShardStatus", [mrenclave]).value
    assert status[0]["signer"] == alice.ss58_address
    assert status[0]["fingerprint"] == mrenclave


def exercised_chain() -> LocalChain:
    """A chain where every pallet has written its storage: transfers, an enclave, a shard with
    config, status, shielded and unshielded funds, a published hash, DCAP-free Teerex state."""
    c = LocalChain(RUNTIME)
    shard = b"\x0e" * 32

    def run(who: Keypair, pallet: str, name: str, *args: Any) -> None:
        result = c.produce(c.sign(who, c.call(pallet, name, *args)))
        assert result.dispatch_error(1) is None, (pallet, name, result.dispatch_error(1))

    run(ALICE, "Balances", "transfer_allow_death", AddressId(b"\x05" * 32), 10**12)
    run(BOB, "Teerex", "register_sgx_enclave", shard, b"wss://w", SkipAttestation(False))
    run(ALICE, "Teerex", "register_sgx_enclave", shard, None, SkipAttestation(True))
    run(
        BOB, "EnclaveBridge", "update_shard_config", shard, ShardConfig(shard, 2, [b"\x01" * 32]), 5
    )
    run(BOB, "EnclaveBridge", "update_shard_config", shard, ShardConfig(shard), 5)
    run(ALICE, "EnclaveBridge", "shield_funds", shard, b"\x00" * 384, 10**13)
    run(BOB, "EnclaveBridge", "unshield_funds", shard, ALICE.public_key, 10**12, b"\x03" * 32)
    run(BOB, "EnclaveBridge", "publish_hash", b"\x04" * 32, [b"\x06" * 32], b"data")
    return c


def test_metadata_types_every_stored_value(scale: tuple[RuntimeConfigurationObject, Any]) -> None:
    """Each value the runtime has written decodes, exactly and completely, as the type the
    metadata declares for its storage item (and no key is left without a declaration)."""
    config, metadata = scale
    chain = exercised_chain()
    entries = {}
    for pallet in metadata.pallets:
        for item in pallet.storage or []:
            key = storage_prefix(pallet.name, item.name)
            entries[key] = (pallet.name, item.name, item.get_value_type_string())
    seen = set()
    for key, value in chain.state.data.items():
        if key.startswith(b":"):
            continue  # well-known keys (:grandpa_authorities) are not pallet storage
        pallet_name, item_name, type_string = entries[key[:32]]
        obj = config.create_scale_object(type_string, data=ScaleBytes(value), metadata=metadata)
        obj.decode(check_remaining=True)
        seen.add(f"{pallet_name}.{item_name}")
    assert {
        "System.Account",
        "System.Events",
        "System.EventTopics",
        "System.BlockHash",
        "System.LastRuntimeUpgrade",
        "Balances.TotalIssuance",
        "Teerex.SovereignEnclaves",
        "Teerex.ProxiedEnclaves",
        "EnclaveBridge.ShardStatus",
        "EnclaveBridge.ShardConfigRegistry",
        "EnclaveBridge.ExecutedUnshieldCalls",
        "Sudo.Key",
        "Timestamp.Now",
    } <= seen
