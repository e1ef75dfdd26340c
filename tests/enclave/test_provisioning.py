"""Shielding-key provisioning between two real enclaves (tocw.enclave.provisioning).

Two `Enclave`s on sim backends in temp dirs run the protocol in-process: real TLS 1.3 through
their MemoryBIO sessions, real sim evidence, and registry proofs read from the dev chain's real
runtime in memory (tocw.chain.node.Chain), where the enclaves register with the extrinsics they
sign themselves. Misbehaving peers are enclaves whose TEE backend misbehaves (tampers with,
drops or replays evidence); nothing cryptographic is mocked.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from tocw.chain.node import Chain
from tocw.chain.runtime import Runtime
from tocw.chain.storage import ChainStore
from tocw.chain.testing import signed_transfer
from tocw.enclave.api import Enclave
from tocw.enclave.errors import EnclaveUsageError, MissingSealedKeyError
from tocw.enclave.extrinsics import ParentchainInfo
from tocw.enclave.keys import (
    NoShieldingKeyError,
    ShieldingKeyConflictError,
    load_or_create_keys,
    store_shielding_key,
)
from tocw.enclave.light_client import LightClientState, ParentchainBlock
from tocw.enclave.measurement import sim_backend
from tocw.enclave.provisioning import (
    MAGIC,
    ChainProofError,
    ChainProofRequest,
    GiverUnavailableError,
    PeerAttestationError,
    PeerMeasurementError,
    PeerNotRegisteredError,
    PeerReportDataError,
    ProvisioningProtocolError,
    ProvisioningRefusedError,
    ProvisioningSession,
    ProvisioningTlsError,
    RegistryProof,
    Role,
    frame,
    provisioning_report_data,
    validate_trusted_header,
)
from tocw.enclave.sealing import Sealer
from tocw.primitives.grandpa import GRANDPA_AUTHORITIES_KEY, authorities_from_storage
from tocw.primitives.header import Header
from tocw.primitives.keys import Keypair, KeyScheme
from tocw.primitives.metadata import RuntimeMetadata
from tocw.primitives.scale import U8, Bytes, FixedBytes, Tuple
from tocw.primitives.shielding import ShieldingKey
from tocw.primitives.types import BlockHash, BlockNumber, MrEnclave, ShardId
from tocw.tee.attestation import check_binding
from tocw.tee.base import Evidence, TeeBackend
from tocw.worker.sealed_store import DirectorySealedStore

MODULES = ("balances",)
OTHER_MODULES = ("balances", "auction")
ALICE = Keypair.from_uri("//Alice", KeyScheme.SR25519)
FUNDING = 10**15
BLOCK_MS = 6000


class Host:
    """The OCALL host: real sealed files (the worker's DirectorySealedStore), kept extrinsics."""

    def __init__(self, root: Path) -> None:
        self.store = DirectorySealedStore(root)
        self.submitted: list[bytes] = []

    def store_sealed(self, name: str, blob: bytes) -> None:
        self.store.store_sealed(name, blob)

    def load_sealed(self, name: str) -> bytes | None:
        return self.store.load_sealed(name)

    def submit_extrinsics(self, extrinsics: Sequence[bytes]) -> None:
        self.submitted.extend(extrinsics)


@dataclass
class Misbehaving:
    """A sim backend whose evidence can be tampered with, dropped or replayed on demand."""

    inner: TeeBackend
    mutate: Callable[[Evidence], Evidence] | None = None
    recorded: list[Evidence] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def is_secure(self) -> bool:
        return self.inner.is_secure

    def measurement(self) -> MrEnclave:
        return self.inner.measurement()

    def sealing_key(self) -> bytes:
        return self.inner.sealing_key()

    def report(self, report_data: bytes) -> Evidence:
        evidence = self.inner.report(report_data)
        self.recorded.append(evidence)
        return self.mutate(evidence) if self.mutate is not None else evidence


class Rig:
    """The dev chain's runtime in memory, and enclaves that follow it and register on it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.chain = Chain(Runtime(), ChainStore(None))
        self.chain.open()
        runtime = self.chain.runtime
        self.metadata_raw = runtime.metadata()
        self.md = RuntimeMetadata.from_bytes(self.metadata_raw)
        self.info = ParentchainInfo(
            self.metadata_raw,
            BlockHash(self.chain.genesis_hash),
            runtime.version.spec_version,
            runtime.version.transaction_version,
        )
        self.now_ms = int(time.time() * 1000)

    def produce(self, extrinsics: Sequence[bytes] = ()) -> None:
        for xt in extrinsics:
            self.chain.submit(xt)
        self.now_ms += BLOCK_MS
        self.chain.produce_block(self.now_ms)
        while self.chain.finalize_next() is not None:
            pass

    def enclave(
        self,
        name: str,
        modules: Sequence[str] = MODULES,
        *,
        key: bool = True,
        grandpa: bool = True,
        backend: Callable[[TeeBackend], TeeBackend] | None = None,
    ) -> Enclave:
        """An enclave following the chain from its genesis, funded for fees."""
        data = self.root / name
        base: TeeBackend = sim_backend(data, modules)
        enclave = Enclave.init(
            data,
            backend(base) if backend is not None else base,
            modules,
            Host(data / "sealed"),
            create_shielding_key=key,
        )
        self.follow(enclave, grandpa=grandpa)
        return enclave

    def follow(self, enclave: Enclave, *, grandpa: bool = True) -> None:
        genesis = self.chain.block(self.chain.genesis_hash)
        assert genesis is not None
        authorities = None
        if grandpa:
            raw = self.chain.state(self.chain.genesis_hash).get(GRANDPA_AUTHORITIES_KEY)
            assert raw is not None
            authorities = authorities_from_storage(raw)
        enclave.set_parentchain_info(self.info)
        enclave.init_parentchain(genesis.header, authorities, 0, BlockHash(self.chain.genesis_hash))

    def register(self, enclave: Enclave) -> None:
        self.produce([signed_transfer(self.chain, ALICE, enclave.signer_account(), FUNDING)])
        enclave.set_nonce(self.chain.account_next_index(enclave.signer_account()))
        self.produce([enclave.register_enclave_extrinsic("wss://localhost:2000")])

    def sync(self, enclave: Enclave) -> None:
        """Import every finalized block the enclave lacks; its extrinsics go on chain."""
        last = enclave.last_imported_block()
        assert last is not None
        blocks = []
        for number in range(last[0] + 1, self.chain.finalized_number + 1):
            block_hash = self.chain.block_hash(number)
            assert block_hash is not None
            stored = self.chain.block(block_hash)
            assert stored is not None
            blocks.append(ParentchainBlock(stored.signed_block()))
        extrinsics = [xt for b in enclave.import_parentchain_blocks(blocks) for xt in b.extrinsics]
        if extrinsics:
            self.produce(extrinsics)

    def giver(self, name: str = "giver") -> Enclave:
        """A registered enclave serving its default shard, listed in ShardStatus."""
        enclave = self.enclave(name)
        self.register(enclave)
        enclave.init_shard(shard_of(enclave), self.chain.finalized_number)
        self.produce()
        self.sync(enclave)  # confirms the shard's blocks: ShardStatus lists it
        return enclave

    def proof(self, request: ChainProofRequest) -> RegistryProof:
        """What a host answers: the finalized head, its justification or ancestry, the nodes."""
        head = self.chain.block(self.chain.finalized_hash)
        assert head is not None
        ancestry: tuple[Header, ...] = ()
        if not request.grandpa:
            hashes = [
                self.chain.block_hash(n) for n in range(request.anchor_number + 1, head.number)
            ]
            ancestry = tuple(self.chain.block(h).header for h in hashes if h is not None)  # type: ignore[union-attr]
        nodes = self.chain.state(head.hash).read_proof(list(request.keys))
        return RegistryProof(head.header, tuple(nodes), head.justification, ancestry)


def shard_of(enclave: Enclave) -> ShardId:
    return ShardId(bytes(enclave.mrenclave()))


@dataclass
class Run:
    giver: ProvisioningSession
    requester: ProvisioningSession
    shuttled: list[bytes]


def run_sessions(
    rig: Rig,
    giver: ProvisioningSession,
    requester: ProvisioningSession,
    *,
    answer_proofs: bool = True,
) -> Run:
    """Shuttle bytes between two sessions as a host would, answering their proof requests."""
    shuttled: list[bytes] = []
    to_giver = requester.start()
    to_requester = giver.start()
    for _ in range(100):
        if to_giver:
            shuttled.append(to_giver)
            to_requester += giver.receive(to_giver)
            to_giver = b""
        if answer_proofs and giver.chain_proof_request is not None:
            to_requester += giver.provide_chain_proof(rig.proof(giver.chain_proof_request))
        if to_requester:
            shuttled.append(to_requester)
            to_giver += requester.receive(to_requester)
            to_requester = b""
        if answer_proofs and requester.chain_proof_request is not None:
            to_giver += requester.provide_chain_proof(rig.proof(requester.chain_proof_request))
        if not to_giver and not to_requester:
            break
    return Run(giver, requester, shuttled)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    yield Rig(tmp_path)


def provision(rig: Rig, giver: Enclave, joiner: Enclave) -> Run:
    return run_sessions(
        rig,
        giver.provisioning_server_session(),
        joiner.provisioning_client_session(shard_of(giver)),
    )


# -- success --------------------------------------------------------------------------------------


def test_provisioning_joiner_receives_giver_key_and_keeps_it(rig: Rig) -> None:
    """The joiner ends with the giver's shielding key, sealed: it survives a re-init."""
    giver = rig.giver()
    joiner = rig.enclave("joiner", key=False)
    assert not joiner.has_shielding_key()
    rig.register(joiner)

    run = provision(rig, giver, joiner)

    assert run.giver.succeeded and run.requester.succeeded, (run.giver.error, run.requester.error)
    run.giver.result()
    run.requester.result()
    assert run.giver.peer_signer == joiner.signer_account()
    assert run.requester.peer_signer == giver.signer_account()
    assert joiner.has_shielding_key()
    assert joiner.shielding_public_key_json() == giver.shielding_public_key_json()
    attestation = joiner.attestation()
    assert check_binding(
        attestation,
        bytes(joiner.signer_account()),
        giver.shielding_public_key_json(),
        joiner._keys.tls.public_key_der(),
    )
    joiner.close()
    data = rig.root / "joiner"
    again = Enclave.init(
        data, sim_backend(data, MODULES), MODULES, Host(data / "sealed"), create_shielding_key=False
    )
    with again:
        assert again.shielding_public_key_json() == giver.shielding_public_key_json()
    giver.close()


def test_provisioning_host_never_sees_the_key(rig: Rig) -> None:
    """Every byte the host shuttled is TLS ciphertext: no trace of the private key."""
    giver = rig.giver()
    joiner = rig.enclave("joiner", key=False)
    rig.register(joiner)
    run = provision(rig, giver, joiner)
    assert run.requester.succeeded
    wire = b"".join(run.shuttled)
    key = giver._keys.shielding
    assert key is not None
    der = key.to_der()
    private_exponent = key._key.private_numbers().d.to_bytes(384, "big").lstrip(b"\0")
    assert der not in wire
    assert private_exponent[:32] not in wire and der[-64:] not in wire


def test_provisioning_without_grandpa_accepts_linked_headers(rig: Rig) -> None:
    """A light client without an authority set checks the registry via linked headers."""
    giver = rig.giver()
    joiner = rig.enclave("joiner", key=False, grandpa=False)
    rig.register(joiner)
    run = provision(rig, giver, joiner)
    assert run.requester.succeeded, run.requester.error
    assert joiner.shielding_public_key_json() == giver.shielding_public_key_json()


# -- refusals -------------------------------------------------------------------------------------


def test_provisioning_refuses_other_mrenclave(rig: Rig) -> None:
    """An enclave built with other STF modules measures differently: both sides refuse."""
    giver = rig.giver()
    other = rig.enclave("other", OTHER_MODULES, key=False)
    assert other.mrenclave() != giver.mrenclave()
    rig.register(other)
    run = provision(rig, giver, other)
    assert isinstance(run.giver.error, PeerMeasurementError)
    assert isinstance(run.requester.error, PeerMeasurementError)
    assert not other.has_shielding_key()
    with pytest.raises(PeerMeasurementError):
        run.giver.result()


def _flip_last_byte(e: Evidence) -> Evidence:
    return Evidence(e.kind, e.data[:-1] + bytes([e.data[-1] ^ 1]))


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(_flip_last_byte, id="tampered"),
        pytest.param(lambda e: Evidence(e.kind, b""), id="missing"),
        pytest.param(lambda e: Evidence(e.kind, e.data[:100]), id="truncated"),
    ],
)
def test_provisioning_refuses_bad_evidence(
    rig: Rig, mutate: Callable[[Evidence], Evidence]
) -> None:
    """Tampered, missing or truncated evidence fails verification; no key is sent."""
    giver = rig.giver()
    backend: list[Misbehaving] = []

    def wrap(inner: TeeBackend) -> TeeBackend:
        backend.append(Misbehaving(inner))
        return backend[0]

    joiner = rig.enclave("joiner", key=False, backend=wrap)
    rig.register(joiner)
    backend[0].mutate = mutate
    run = provision(rig, giver, joiner)
    assert isinstance(run.giver.error, PeerAttestationError), run.giver.error
    assert isinstance(run.requester.error, ProvisioningRefusedError)
    assert "evidence" in str(run.requester.error)
    assert not joiner.has_shielding_key()


def test_provisioning_refuses_unregistered_requester(rig: Rig) -> None:
    """A requester whose signer has no Teerex entry (the proof shows none) is refused."""
    giver = rig.giver()
    joiner = rig.enclave("joiner", key=False)
    run = provision(rig, giver, joiner)
    assert isinstance(run.giver.error, PeerNotRegisteredError)
    assert "not a registered enclave" in str(run.giver.error)
    assert isinstance(run.requester.error, ProvisioningRefusedError)
    assert not joiner.has_shielding_key()


def test_provisioning_requester_refuses_giver_outside_shard_status(rig: Rig) -> None:
    """A registered enclave that never confirmed a block of the shard is no giver for it."""
    giver = rig.enclave("giver")
    rig.register(giver)
    giver.init_shard(shard_of(giver), rig.chain.finalized_number + 1)  # never synced
    joiner = rig.enclave("joiner", key=False)
    rig.register(joiner)
    run = provision(rig, giver, joiner)
    assert isinstance(run.requester.error, PeerNotRegisteredError)
    assert "not an active worker" in str(run.requester.error)
    assert not joiner.has_shielding_key()


def test_provisioning_refuses_replayed_evidence(rig: Rig) -> None:
    """Evidence recorded in one session fails in the next: the challenge differs."""
    giver = rig.giver()
    backend: list[Misbehaving] = []

    def wrap(inner: TeeBackend) -> TeeBackend:
        backend.append(Misbehaving(inner))
        return backend[0]

    joiner = rig.enclave("joiner", key=False, backend=wrap)
    rig.register(joiner)
    first = run_sessions(
        rig,
        giver.provisioning_server_session(),
        joiner.provisioning_client_session(shard_of(giver)),
        answer_proofs=False,
    )
    assert first.giver.chain_proof_request is not None  # evidence exchanged, then cut off
    first.giver.connection_lost()
    first.requester.connection_lost()
    recorded = backend[0].recorded[-1]
    backend[0].mutate = lambda _fresh: recorded

    run = provision(rig, giver, joiner)
    assert isinstance(run.giver.error, PeerReportDataError), run.giver.error
    assert isinstance(run.requester.error, ProvisioningRefusedError)
    assert not joiner.has_shielding_key()


def test_provisioning_giver_without_key_refuses(rig: Rig) -> None:
    """A giver that holds no shielding key itself refuses before sending anything."""
    giver = rig.enclave("giver", key=False)
    rig.register(giver)
    giver.init_shard(shard_of(giver), rig.chain.finalized_number + 1)
    joiner = rig.enclave("joiner", key=False)
    rig.register(joiner)
    run = provision(rig, giver, joiner)
    assert isinstance(run.giver.error, GiverUnavailableError)
    assert isinstance(run.requester.error, ProvisioningRefusedError)
    assert "no shielding key" in str(run.requester.error)


def test_provisioning_giver_refuses_unknown_shard(rig: Rig) -> None:
    """A giver does not hand out its key for a shard it does not serve."""
    giver = rig.giver()
    joiner = rig.enclave("joiner", key=False)
    rig.register(joiner)
    run = run_sessions(
        rig,
        giver.provisioning_server_session(),
        joiner.provisioning_client_session(ShardId(bytes(range(32)))),
    )
    assert isinstance(run.giver.error, GiverUnavailableError)
    assert isinstance(run.requester.error, ProvisioningRefusedError)


def test_provisioning_refuses_garbage_and_other_versions(rig: Rig) -> None:
    """Bytes that are no announcement, or another protocol version, end the session."""
    giver = rig.giver()
    session = giver.provisioning_server_session()
    session.start()
    assert session.receive(frame(b"\x01\x02\x03")) == b""
    assert isinstance(session.error, ProvisioningProtocolError)

    codec = Tuple(FixedBytes(8), U8, U8, Bytes)
    other_version = frame(codec.encode((MAGIC, 2, int(Role.REQUESTER), b"cert")))
    session = giver.provisioning_server_session()
    session.start()
    session.receive(other_version)
    assert isinstance(session.error, ProvisioningProtocolError)
    assert "version 2" in str(session.error)

    session = giver.provisioning_server_session()
    session.start()
    session.receive((1 << 30).to_bytes(4, "little"))
    assert isinstance(session.error, ProvisioningProtocolError)
    assert session.done and not session.succeeded


def test_provisioning_refuses_certificate_other_than_announced(rig: Rig) -> None:
    """The TLS peer must hold the key of the certificate it announced."""
    giver = rig.giver()
    joiner = rig.enclave("joiner", key=False)
    stranger = rig.enclave("stranger")
    requester = joiner.provisioning_client_session(shard_of(giver))
    server = giver.provisioning_server_session()
    server.start()
    requester.start()
    # announce the stranger's certificate, then speak TLS with the joiner's key
    forged = frame(
        Tuple(FixedBytes(8), U8, U8, Bytes).encode(
            (MAGIC, 1, int(Role.REQUESTER), stranger.tls_certificate())
        )
    )
    to_requester = server.receive(forged)
    for _ in range(10):  # the joiner runs its TLS handshake with its own certificate
        to_server = requester.receive(to_requester)
        to_requester = server.receive(to_server)
        if server.done:
            break
    assert isinstance(server.error, ProvisioningTlsError), server.error
    assert not server.succeeded and server.peer_signer is None


def test_provisioning_requester_with_key_is_a_usage_error(rig: Rig) -> None:
    """Asking for a key the enclave already holds is the host's mistake."""
    enclave = rig.enclave("has-key")
    with pytest.raises(EnclaveUsageError):
        enclave.provisioning_client_session(shard_of(enclave))


def test_provisioning_chain_proof_only_when_asked(rig: Rig) -> None:
    """provide_chain_proof before the session asks for one is a usage error."""
    giver = rig.giver()
    session = giver.provisioning_server_session()
    head = rig.chain.block(rig.chain.finalized_hash)
    assert head is not None
    with pytest.raises(EnclaveUsageError):
        session.provide_chain_proof(RegistryProof(head.header, ()))


# -- the registry check ---------------------------------------------------------------------------


def _lc(rig: Rig, grandpa: bool) -> LightClientState:
    enclave = rig.enclave(f"lc-{grandpa}", grandpa=grandpa)
    assert enclave._lc is not None
    return enclave._lc


def test_trusted_header_refuses_unjustified_and_forged(rig: Rig) -> None:
    """Only the head, a justified header (GRANDPA) or a linked one (no GRANDPA) is trusted."""
    rig.produce()
    rig.produce()
    head = rig.chain.block(rig.chain.finalized_hash)
    assert head is not None and head.justification is not None
    with_grandpa = _lc(rig, True)
    validate_trusted_header(with_grandpa, RegistryProof(head.header, (), head.justification))
    with pytest.raises(ChainProofError, match="no GRANDPA justification"):
        validate_trusted_header(with_grandpa, RegistryProof(head.header, ()))
    forged = replace(head.header, state_root=bytes(32))
    with pytest.raises(ChainProofError, match="does not verify"):
        validate_trusted_header(with_grandpa, RegistryProof(forged, (), head.justification))

    without = _lc(rig, False)
    parent = rig.chain.block(head.header.parent_hash)
    assert parent is not None
    validate_trusted_header(without, RegistryProof(head.header, (), None, (parent.header,)))
    with pytest.raises(ChainProofError, match="does not link"):
        validate_trusted_header(without, RegistryProof(head.header, ()))
    orphan = Header(BlockHash(bytes(32)), BlockNumber(1), bytes(32), bytes(32))
    with pytest.raises(ChainProofError, match="does not link"):
        validate_trusted_header(without, RegistryProof(orphan, ()))


def test_trusted_header_refuses_older_than_head(rig: Rig) -> None:
    """A proof from before the light client's head could show a since-removed registration."""
    enclave = rig.giver()
    assert enclave._lc is not None
    genesis = rig.chain.block(rig.chain.genesis_hash)
    assert genesis is not None
    with pytest.raises(ChainProofError, match="older than"):
        validate_trusted_header(enclave._lc, RegistryProof(genesis.header, ()))


def test_provisioning_report_data_binds_every_field() -> None:
    """Changing any bound field changes the 64 bytes; the signer is the first 32."""
    args = (bytes(32), Role.GIVER, ShardId(bytes(32)), bytes(32), b"a", b"b", "{}")
    base = provisioning_report_data(*args)
    assert len(base) == 64 and base[:32] == bytes(32)
    variants = [
        (bytes([1] * 32), *args[1:]),
        (args[0], Role.REQUESTER, *args[2:]),
        (*args[:2], ShardId(bytes([1] * 32)), *args[3:]),
        (*args[:3], bytes([1] * 32), *args[4:]),
        (*args[:4], b"a2", *args[5:]),
        (*args[:5], b"b2", args[6]),
        (*args[:6], None),
        (*args[:4], b"b", b"a", args[6]),
    ]
    for variant in variants:
        assert provisioning_report_data(*variant) != base


# -- keys: the joining mode -----------------------------------------------------------------------


def test_keys_without_shielding_key_then_stored_once(tmp_path: Path) -> None:
    """A joiner's keys lack the shielding key until one is stored; a different one is refused."""
    host = Host(tmp_path / "sealed")
    sealer = Sealer(bytes(range(32)))
    keys = load_or_create_keys(host, sealer, create_shielding_key=False)
    assert keys.shielding is None
    again = load_or_create_keys(host, sealer, create_shielding_key=False)
    assert again.shielding is None and again.signer.public_key == keys.signer.public_key

    key = ShieldingKey.generate()
    store_shielding_key(host, sealer, key)
    store_shielding_key(host, sealer, key)  # the same key again: no-op
    loaded = load_or_create_keys(host, sealer, create_shielding_key=False)
    assert loaded.shielding is not None and loaded.shielding.to_der() == key.to_der()
    with pytest.raises(ShieldingKeyConflictError):
        store_shielding_key(host, sealer, ShieldingKey.generate())


def test_keys_provisioned_key_never_silently_regenerated(tmp_path: Path) -> None:
    """Once stored, a vanished shielding key blob is an error, not a fresh key."""
    host = Host(tmp_path / "sealed")
    sealer = Sealer(bytes(range(32)))
    load_or_create_keys(host, sealer, create_shielding_key=False)
    store_shielding_key(host, sealer, ShieldingKey.generate())
    removed = [p for p in (tmp_path / "sealed").iterdir() if p.name.startswith("shielding-key")]
    assert removed
    for path in removed:
        path.unlink()
    with pytest.raises(MissingSealedKeyError):
        load_or_create_keys(host, sealer, create_shielding_key=True)


def test_keyless_enclave_refuses_to_execute_shard_blocks(rig: Rig) -> None:
    """Without the shielding key an active shard's block is refused, nothing committed."""
    joiner = rig.enclave("joiner", key=False)
    with pytest.raises(NoShieldingKeyError):
        joiner.shielding_public_key_json()
    joiner.init_shard(shard_of(joiner), 1)
    rig.produce()
    with pytest.raises(NoShieldingKeyError):
        rig.sync(joiner)
    assert joiner.last_imported_block() == (0, BlockHash(rig.chain.genesis_hash))
