"""Shared fixtures of the enclave tests: a host-side OCALL, a parentchain's metadata and blocks.

The parentchain metadata is built here from tocw.primitives.metadata's dataclasses with the
pallets and call signatures of PROTOCOL.md (Integritee's Teerex and EnclaveBridge on
sdk-v0.13.0-polkadot-v0.9.42, plus Timestamp) and the standard signed-extension list, so the
enclave is tested against real V14 metadata bytes without depending on the dev chain.
Pallet indices are deliberately not Integritee's: the enclave must read them from metadata.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tocw.enclave.api import Enclave
from tocw.enclave.extrinsics import ParentchainInfo
from tocw.enclave.light_client import ParentchainBlock
from tocw.enclave.measurement import sim_backend
from tocw.primitives.extrinsic import build_signed_extrinsic, build_unsigned_extrinsic
from tocw.primitives.header import (
    Block,
    DigestItem,
    Header,
    Justification,
    SignedBlock,
    extrinsics_root,
)
from tocw.primitives.keys import Keypair
from tocw.primitives.metadata import (
    ArrayDef,
    CompactDef,
    CompositeDef,
    ExtrinsicMetadata,
    Field,
    PalletMetadata,
    PortableType,
    PrimitiveDef,
    RuntimeMetadata,
    SequenceDef,
    SignedExtensionMetadata,
    TupleDef,
    TypeDef,
    VariantDef,
    VariantTypeDef,
)
from tocw.primitives.types import BlockHash, BlockNumber
from tocw.worker.sealed_store import DirectorySealedStore

MODULES = ("balances",)
SPEC_VERSION = 7
TX_VERSION = 2


class DirOCall:
    """The host side of the OCALL interface for tests: real sealed files, recorded extrinsics.

    Sealed blobs go through the worker's DirectorySealedStore (the real host code); submitted
    extrinsics are kept in a list so tests can decode and check what the enclave signed.
    """

    def __init__(self, root: Path) -> None:
        self.store = DirectorySealedStore(root)
        self.submitted: list[bytes] = []

    def store_sealed(self, name: str, blob: bytes) -> None:
        self.store.store_sealed(name, blob)

    def load_sealed(self, name: str) -> bytes | None:
        return self.store.load_sealed(name)

    def submit_extrinsics(self, extrinsics: Sequence[bytes]) -> None:
        self.submitted.extend(extrinsics)


@pytest.fixture
def ocall(tmp_path: Path) -> DirOCall:
    return DirOCall(tmp_path / "sealed")


@pytest.fixture
def make_ocall() -> type[DirOCall]:
    """The DirOCall class, for tests that need several hosts (conftest is not importable)."""
    return DirOCall


# -- parentchain metadata -----------------------------------------------------------------------


class _Registry:
    def __init__(self) -> None:
        self.types: dict[int, PortableType] = {}

    def add(self, definition: TypeDef, path: str = "", params: tuple[Any, ...] = ()) -> int:
        tid = len(self.types)
        self.types[tid] = PortableType(
            tid, tuple(path.split("::")) if path else (), params, definition
        )
        return tid

    def set(self, tid: int, definition: TypeDef, path: str, params: tuple[Any, ...] = ()) -> None:
        self.types[tid] = PortableType(tid, tuple(path.split("::")), params, definition)

    def composite(self, path: str, *fields: tuple[str | None, int]) -> int:
        return self.add(CompositeDef(tuple(Field(n, t) for n, t in fields)), path)

    def enum(
        self, path: str, *variants: tuple[str, int, tuple[tuple[str | None, int], ...]]
    ) -> int:
        return self.add(
            VariantTypeDef(
                tuple(
                    VariantDef(name, index, tuple(Field(n, t) for n, t in fields))
                    for name, index, fields in variants
                )
            ),
            path,
        )


def build_parentchain_metadata() -> bytes:
    """V14 metadata of a small Integritee-like runtime (System, Timestamp, Teerex, Bridge)."""
    r = _Registry()
    u8, u32, u64, u128 = (r.add(PrimitiveDef(n)) for n in ("u8", "u32", "u64", "u128"))
    boolean = r.add(PrimitiveDef("bool"))
    bytes32 = r.add(ArrayDef(32, u8))
    bytes64 = r.add(ArrayDef(64, u8))
    vec_u8 = r.add(SequenceDef(u8))
    unit = r.add(TupleDef(()))
    account = r.composite("sp_core::crypto::AccountId32", (None, bytes32))
    h256 = r.composite("primitive_types::H256", (None, bytes32))
    compact_u32 = r.add(CompactDef(u32))
    compact_u64 = r.add(CompactDef(u64))
    compact_u128 = r.add(CompactDef(u128))
    opt_vec = r.add(
        VariantTypeDef((VariantDef("None", 0, ()), VariantDef("Some", 1, (Field(None, vec_u8),)))),
        "Option",
        (("T", vec_u8),),
    )
    address = r.enum(
        "sp_runtime::multiaddress::MultiAddress",
        ("Id", 0, ((None, account),)),
        ("Index", 1, ((None, compact_u32),)),
        ("Raw", 2, ((None, vec_u8),)),
    )
    sig_ed = r.composite("sp_core::ed25519::Signature", (None, bytes64))
    sig_sr = r.composite("sp_core::sr25519::Signature", (None, bytes64))
    signature = r.enum(
        "sp_runtime::MultiSignature",
        ("Ed25519", 0, ((None, sig_ed),)),
        ("Sr25519", 1, ((None, sig_sr),)),
    )
    era = r.enum(
        "sp_runtime::generic::era::Era",
        ("Immortal", 0, ()),
        *((f"Mortal{i}", i, ((None, u8),)) for i in range(1, 256)),
    )
    system_call = r.enum("frame_system::pallet::Call", ("remark", 0, (("remark", vec_u8),)))
    timestamp_call = r.enum("pallet_timestamp::pallet::Call", ("set", 0, (("now", compact_u64),)))
    method = r.enum(
        "teerex_primitives::SgxAttestationMethod",
        ("Skip", 0, (("proxied", boolean),)),
        ("Ias", 1, ()),
        ("Dcap", 2, (("proxied", boolean),)),
    )
    teerex_call = r.enum(
        "pallet_teerex::pallet::Call",
        (
            "register_sgx_enclave",
            0,
            (("proof", vec_u8), ("worker_url", opt_vec), ("attestation_method", method)),
        ),
    )
    request = r.composite("teerex_primitives::Request", ("shard", h256), ("cyphertext", vec_u8))
    bridge_call = r.enum(
        "pallet_enclave_bridge::pallet::Call",
        ("invoke", 0, (("request", request),)),
        (
            "confirm_processed_parentchain_block",
            1,
            (
                ("shard", h256),
                ("block_hash", h256),
                ("block_number", u32),
                ("trusted_calls_merkle_root", h256),
            ),
        ),
        (
            "shield_funds",
            2,
            (("shard", h256), ("incognito_account_encrypted", vec_u8), ("amount", u128)),
        ),
        (
            "unshield_funds",
            3,
            (("shard", h256), ("beneficiary", account), ("amount", u128), ("call_hash", h256)),
        ),
    )
    runtime_call = r.enum(
        "test_runtime::RuntimeCall",
        ("System", 0, ((None, system_call),)),
        ("Timestamp", 3, ((None, timestamp_call),)),
        ("Teerex", 61, ((None, teerex_call),)),
        ("EnclaveBridge", 62, ((None, bridge_call),)),
    )
    ext = {
        name: r.composite(f"frame_system::extensions::{name}")
        for name in (
            "CheckNonZeroSender",
            "CheckSpecVersion",
            "CheckTxVersion",
            "CheckGenesis",
            "CheckWeight",
        )
    }
    check_mortality = r.composite(
        "frame_system::extensions::check_mortality::CheckMortality", (None, era)
    )
    check_nonce = r.composite(
        "frame_system::extensions::check_nonce::CheckNonce", (None, compact_u32)
    )
    charge = r.composite(
        "pallet_transaction_payment::ChargeTransactionPayment", (None, compact_u128)
    )
    signed_extensions = (
        SignedExtensionMetadata("CheckNonZeroSender", ext["CheckNonZeroSender"], unit),
        SignedExtensionMetadata("CheckSpecVersion", ext["CheckSpecVersion"], u32),
        SignedExtensionMetadata("CheckTxVersion", ext["CheckTxVersion"], u32),
        SignedExtensionMetadata("CheckGenesis", ext["CheckGenesis"], h256),
        SignedExtensionMetadata("CheckMortality", check_mortality, h256),
        SignedExtensionMetadata("CheckNonce", check_nonce, unit),
        SignedExtensionMetadata("CheckWeight", ext["CheckWeight"], unit),
        SignedExtensionMetadata("ChargeTransactionPayment", charge, unit),
    )
    extra = r.add(TupleDef(tuple(se.extra_type_id for se in signed_extensions)))
    xt = r.composite("sp_runtime::generic::unchecked_extrinsic::UncheckedExtrinsic", (None, vec_u8))
    r.set(
        xt,
        r.types[xt].definition,
        r.types[xt].path_str,
        (("Address", address), ("Call", runtime_call), ("Signature", signature), ("Extra", extra)),
    )
    runtime = r.composite("test_runtime::Runtime")

    def pallet(name: str, index: int, call: int) -> PalletMetadata:
        return PalletMetadata(name, index, call, None, None, None, (), ())

    pallets = [
        pallet("System", 0, system_call),
        pallet("Timestamp", 3, timestamp_call),
        pallet("Teerex", 61, teerex_call),
        pallet("EnclaveBridge", 62, bridge_call),
    ]
    extrinsic = ExtrinsicMetadata(4, xt, address, runtime_call, signature, extra, signed_extensions)
    return RuntimeMetadata(r.types, pallets, extrinsic, runtime).to_bytes()


GENESIS = Header(BlockHash(bytes(32)), BlockNumber(0), b"\x11" * 32, extrinsics_root([]))


@dataclass
class Chain:
    """A parentchain for tests: its metadata, and a builder of linked blocks."""

    metadata_bytes: bytes
    md: RuntimeMetadata
    genesis: Header = GENESIS
    headers: list[Header] = field(default_factory=list)

    @property
    def info(self) -> ParentchainInfo:
        return ParentchainInfo(self.metadata_bytes, self.genesis.hash(), SPEC_VERSION, TX_VERSION)

    def timestamp_xt(self, now: int) -> bytes:
        return build_unsigned_extrinsic(
            self.md, self.md.encode_call("Timestamp", "set", {"now": now})
        )

    def signed_xt(
        self, signer: Keypair, nonce: int, pallet: str, name: str, args: dict[str, Any]
    ) -> bytes:
        return build_signed_extrinsic(
            self.md,
            self.md.encode_call(pallet, name, args),
            signer,
            nonce=nonce,
            genesis_hash=self.genesis.hash(),
            spec_version=SPEC_VERSION,
            transaction_version=TX_VERSION,
        )

    def invoke_xt(self, signer: Keypair, nonce: int, shard: bytes, cyphertext: bytes) -> bytes:
        request = {"shard": shard, "cyphertext": cyphertext}
        return self.signed_xt(signer, nonce, "EnclaveBridge", "invoke", {"request": request})

    def header(
        self,
        parent: Header,
        extrinsics: Sequence[bytes] = (),
        digest: Sequence[DigestItem] = (),
        state_root: bytes = b"\x22" * 32,
    ) -> Header:
        return Header(
            parent.hash(),
            BlockNumber(parent.number + 1),
            state_root,
            extrinsics_root(list(extrinsics)),
            tuple(digest),
        )

    def block(
        self,
        parent: Header,
        extrinsics: Sequence[bytes] = (),
        digest: Sequence[DigestItem] = (),
        justifications: tuple[Justification, ...] | None = None,
        state_root: bytes = b"\x22" * 32,
        events: bytes | None = None,
        events_proof: tuple[bytes, ...] = (),
    ) -> ParentchainBlock:
        header = self.header(parent, extrinsics, digest, state_root)
        signed = SignedBlock(Block(header, tuple(extrinsics)), justifications)
        return ParentchainBlock(signed, events, events_proof)

    def chain_of(
        self, parent: Header, count: int, start_time: int = 1_000
    ) -> list[ParentchainBlock]:
        """`count` linked blocks after `parent`, each with a Timestamp.set inherent."""
        out = []
        for _ in range(count):
            number = parent.number + 1
            block = self.block(parent, [self.timestamp_xt(start_time + 6000 * number)])
            out.append(block)
            parent = block.header
        return out


_METADATA = build_parentchain_metadata()


@pytest.fixture(scope="session")
def chain_metadata() -> bytes:
    return _METADATA


@pytest.fixture
def chain() -> Chain:
    return Chain(_METADATA, RuntimeMetadata.from_bytes(_METADATA))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def host(data_dir: Path) -> DirOCall:
    """The host side of an enclave whose sealed blobs live under the data dir."""
    return DirOCall(data_dir / "sealed")


@pytest.fixture
def enclave(data_dir: Path, host: DirOCall, chain: Chain) -> Any:
    """An initialised sim enclave following `chain` from its genesis, closed after the test."""
    e = Enclave.init(data_dir, sim_backend(data_dir, MODULES), MODULES, host)
    try:
        e.set_parentchain_info(chain.info)
        e.set_nonce(0)
        e.init_parentchain(chain.genesis)
        yield e
    finally:
        e.close()


@pytest.fixture
def make_chain() -> type[Chain]:
    """The Chain class, for tests on another runtime's metadata (conftest is not importable)."""
    return Chain
