"""The host side of provisioning over real loopback sockets (tocw.worker.provisioning).

Real enclaves on sim backends in temp dirs, a real ProvisioningServer on a free port, the
joiner's provision_shielding_key connecting to it, and NodeChainCheck reading registry proofs
from the dev chain's runtime in memory (an async adapter over tocw.chain.node.Chain with the
method names of tocw.parentchain's client). Discovery asks a real TrustedRpcServer for its
author_getMuRaUrl.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from tocw.chain.node import Chain
from tocw.chain.runtime import Runtime
from tocw.chain.storage import ChainStore
from tocw.chain.testing import signed_transfer
from tocw.enclave.api import Enclave
from tocw.enclave.errors import EnclaveUsageError
from tocw.enclave.extrinsics import ParentchainInfo
from tocw.enclave.light_client import ParentchainBlock
from tocw.enclave.measurement import sim_backend
from tocw.enclave.provisioning import ChainProofRequest, RegistryProof
from tocw.enclave.trusted_rpc import TrustedRpcConfig, build_trusted_rpc
from tocw.parentchain.client import ReadProof
from tocw.primitives.grandpa import GRANDPA_AUTHORITIES_KEY, authorities_from_storage
from tocw.primitives.header import Header, SignedBlock
from tocw.primitives.keys import Keypair, KeyScheme
from tocw.primitives.metadata import RuntimeMetadata
from tocw.primitives.types import BlockHash, ShardId
from tocw.worker.provisioning import (
    GiverEndpoint,
    NodeChainCheck,
    ProvisioningFailedError,
    ProvisioningServer,
    ProvisioningServerError,
    discover_givers,
    parse_mu_ra_url,
    provision_shielding_key,
)
from tocw.worker.sealed_store import DirectorySealedStore
from tocw.worker.servers import TrustedRpcServer

MODULES = ("balances",)
ALICE = Keypair.from_uri("//Alice", KeyScheme.SR25519)
TIMEOUT = 20.0


class Host:
    def __init__(self, root: Path) -> None:
        self.store = DirectorySealedStore(root)

    def store_sealed(self, name: str, blob: bytes) -> None:
        self.store.store_sealed(name, blob)

    def load_sealed(self, name: str) -> bytes | None:
        return self.store.load_sealed(name)

    def submit_extrinsics(self, extrinsics: Sequence[bytes]) -> None:
        pass


class MemoryNode:
    """The dev chain's runtime in memory, read through the parentchain client's method names."""

    def __init__(self) -> None:
        self.chain = Chain(Runtime(), ChainStore(None))
        self.chain.open()
        runtime = self.chain.runtime
        raw = runtime.metadata()
        self.md = RuntimeMetadata.from_bytes(raw)
        self.info = ParentchainInfo(
            raw,
            BlockHash(self.chain.genesis_hash),
            runtime.version.spec_version,
            runtime.version.transaction_version,
        )
        self.now_ms = int(time.time() * 1000)
        self.keep_justifications = True
        self.requests: list[ChainProofRequest] = []

    # -- what NodeChainCheck and discover_givers call --

    async def finalized_head(self) -> BlockHash:
        return BlockHash(self.chain.finalized_hash)

    async def block(self, block_hash: bytes) -> SignedBlock:
        stored = self.chain.block(block_hash)
        assert stored is not None
        signed = stored.signed_block()
        return signed if self.keep_justifications else replace(signed, justifications=None)

    async def header(self, block_hash: bytes | None = None) -> Header:
        stored = self.chain.block(block_hash or self.chain.best_hash)
        assert stored is not None
        return stored.header

    async def block_hash(self, number: int) -> BlockHash:
        found = self.chain.block_hash(number)
        assert found is not None
        return BlockHash(found)

    async def read_proof(self, keys: Sequence[bytes], at: bytes | None = None) -> ReadProof:
        at = at or self.chain.best_hash
        return ReadProof(BlockHash(at), tuple(self.chain.state(at).read_proof(list(keys))))

    async def storage(self, key: bytes, at: bytes | None = None) -> bytes | None:
        return self.chain.state(at).get(key)

    # -- building the scene --

    def produce(self, extrinsics: Sequence[bytes] = ()) -> None:
        for xt in extrinsics:
            self.chain.submit(xt)
        self.now_ms += 6000
        self.chain.produce_block(self.now_ms)
        while self.chain.finalize_next() is not None:
            pass

    def enclave(
        self, root: Path, name: str, modules: Sequence[str] = MODULES, *, key: bool = True
    ) -> Enclave:
        data = root / name
        enclave = Enclave.init(
            data,
            sim_backend(data, modules),
            modules,
            Host(data / "sealed"),
            create_shielding_key=key,
        )
        genesis = self.chain.block(self.chain.genesis_hash)
        assert genesis is not None
        raw = self.chain.state(self.chain.genesis_hash).get(GRANDPA_AUTHORITIES_KEY)
        assert raw is not None
        enclave.set_parentchain_info(self.info)
        enclave.init_parentchain(
            genesis.header, authorities_from_storage(raw), 0, BlockHash(self.chain.genesis_hash)
        )
        return enclave

    def register(self, enclave: Enclave, url: str = "wss://127.0.0.1:2000") -> None:
        self.produce([signed_transfer(self.chain, ALICE, enclave.signer_account(), 10**15)])
        enclave.set_nonce(self.chain.account_next_index(enclave.signer_account()))
        self.produce([enclave.register_enclave_extrinsic(url)])

    def serve_shard(self, enclave: Enclave) -> None:
        """The enclave serves its default shard and confirms blocks (ShardStatus lists it)."""
        enclave.init_shard(ShardId(bytes(enclave.mrenclave())), self.chain.finalized_number)
        self.produce()
        last = enclave.last_imported_block()
        assert last is not None
        blocks = []
        for number in range(last[0] + 1, self.chain.finalized_number + 1):
            stored = self.chain.block(self.chain.block_hash(number) or b"")
            assert stored is not None
            blocks.append(ParentchainBlock(stored.signed_block()))
        self.produce([xt for b in enclave.import_parentchain_blocks(blocks) for xt in b.extrinsics])


class RecordingCheck(NodeChainCheck):
    def __init__(self, node: MemoryNode) -> None:
        super().__init__(node)
        self.requests: list[ChainProofRequest] = []

    async def registry_proof(self, request: ChainProofRequest) -> RegistryProof:
        self.requests.append(request)
        return await super().registry_proof(request)


@pytest.fixture
def node() -> Iterator[MemoryNode]:
    yield MemoryNode()


def shard_of(enclave: Enclave) -> ShardId:
    return ShardId(bytes(enclave.mrenclave()))


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait (bounded) for a server-side counter the client cannot wait on directly."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def recording_proxy(target_port: int, wire: list[bytes]) -> AsyncIterator[int]:
    """A TCP relay to 127.0.0.1:target_port that keeps every byte it relays."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                wire.append(data)
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


def test_provision_over_loopback_gives_the_key(node: MemoryNode, tmp_path: Path) -> None:
    """A joiner gets the giver's key through the listener; the relayed bytes hold no key."""
    giver = node.enclave(tmp_path, "giver")
    node.register(giver)
    node.serve_shard(giver)
    joiner = node.enclave(tmp_path, "joiner", key=False)
    node.register(joiner)
    wire: list[bytes] = []

    async def main() -> GiverEndpoint:
        check = RecordingCheck(node)
        async with ProvisioningServer(giver, "127.0.0.1", 0, check) as server:
            async with recording_proxy(server.port, wire) as proxy_port:
                endpoint = GiverEndpoint("127.0.0.1", proxy_port)
                got = await provision_shielding_key(
                    joiner, [endpoint], NodeChainCheck(node), shard=shard_of(giver)
                )
            await until(lambda: server.given == 1)  # counted once the Ack arrived
            assert server.given == 1 and server.refused == 0
            assert [r.peer_signer for r in check.requests] == [joiner.signer_account()]
            return got

    got = asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    assert got.host == "127.0.0.1"
    assert joiner.shielding_public_key_json() == giver.shielding_public_key_json()
    key = giver._keys.shielding
    assert key is not None
    relayed = b"".join(wire)
    assert len(relayed) > 1000
    assert key.to_der() not in relayed and key.to_der()[-48:] not in relayed


def test_provision_falls_back_to_the_next_giver(node: MemoryNode, tmp_path: Path) -> None:
    """Unreachable and refusing candidates are skipped; the first good one gives the key."""
    giver = node.enclave(tmp_path, "giver")
    node.register(giver)
    node.serve_shard(giver)
    stranger = node.enclave(tmp_path, "stranger", ("balances", "auction"))
    node.register(stranger)
    node.serve_shard(stranger)
    joiner = node.enclave(tmp_path, "joiner", key=False)
    node.register(joiner)

    async def main() -> tuple[GiverEndpoint, GiverEndpoint, int]:
        check = NodeChainCheck(node)
        async with (
            ProvisioningServer(stranger, "127.0.0.1", 0, check) as other,
            ProvisioningServer(giver, "127.0.0.1", 0, check) as good,
        ):
            candidates = [
                GiverEndpoint("127.0.0.1", closed_port()),
                GiverEndpoint("127.0.0.1", other.port),
                GiverEndpoint("127.0.0.1", good.port),
            ]
            got = await provision_shielding_key(
                joiner, candidates, check, shard=shard_of(giver), connect_timeout=2.0
            )
            await until(lambda: other.refused == 1)
            return got, candidates[2], other.refused

    got, expected, refused_by_stranger = asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    assert got == expected
    assert refused_by_stranger == 1
    assert joiner.shielding_public_key_json() == giver.shielding_public_key_json()


def test_provision_reports_every_failure(node: MemoryNode, tmp_path: Path) -> None:
    """When no candidate gives the key, the error names each candidate's reason."""
    giver = node.enclave(tmp_path, "giver")
    node.register(giver)
    node.serve_shard(giver)
    joiner = node.enclave(tmp_path, "joiner", key=False)  # never registered

    async def main() -> None:
        check = NodeChainCheck(node)
        async with ProvisioningServer(giver, "127.0.0.1", 0, check) as server:
            unreachable = GiverEndpoint("127.0.0.1", closed_port())
            await provision_shielding_key(
                joiner,
                [unreachable, GiverEndpoint("127.0.0.1", server.port)],
                check,
                shard=shard_of(giver),
            )

    with pytest.raises(ProvisioningFailedError) as info:
        asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    message = str(info.value)
    assert "cannot connect" in message and "not a registered enclave" in message
    assert not joiner.has_shielding_key()
    with pytest.raises(ProvisioningFailedError, match="no worker"):
        asyncio.run(
            provision_shielding_key(joiner, [], NodeChainCheck(node), shard=shard_of(giver))
        )


def test_provisioning_server_survives_refusals_and_silence(
    node: MemoryNode, tmp_path: Path
) -> None:
    """A silent client times out, an unregistered one is refused; a good one still succeeds."""
    giver = node.enclave(tmp_path, "giver")
    node.register(giver)
    node.serve_shard(giver)
    intruder = node.enclave(tmp_path, "intruder", key=False)
    joiner = node.enclave(tmp_path, "joiner", key=False)
    node.register(joiner)

    async def main() -> tuple[int, int]:
        check = NodeChainCheck(node)
        async with ProvisioningServer(giver, "127.0.0.1", 0, check, timeout=1.0) as server:
            endpoint = GiverEndpoint("127.0.0.1", server.port)
            _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            with pytest.raises(ProvisioningFailedError):
                await provision_shielding_key(intruder, [endpoint], check, shard=shard_of(giver))
            await provision_shielding_key(joiner, [endpoint], check, shard=shard_of(giver))
            await until(lambda: (server.refused, server.given) == (2, 1))  # silent: 1 s
            writer.close()
            return server.given, server.refused

    given, refused = asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    assert joiner.has_shielding_key() and not intruder.has_shielding_key()
    assert (refused, given) == (2, 1)


class FailingCheck:
    async def registry_proof(self, request: ChainProofRequest) -> RegistryProof:
        raise ConnectionError("node unreachable")


def test_provision_host_without_proof_aborts_both_sides(node: MemoryNode, tmp_path: Path) -> None:
    """A giver host that cannot fetch the registry proof ends the session; no key moves."""
    giver = node.enclave(tmp_path, "giver")
    node.register(giver)
    node.serve_shard(giver)
    joiner = node.enclave(tmp_path, "joiner", key=False)
    node.register(joiner)

    async def main() -> int:
        async with ProvisioningServer(giver, "127.0.0.1", 0, FailingCheck()) as server:
            with pytest.raises(ProvisioningFailedError, match="host aborted"):
                await provision_shielding_key(
                    joiner,
                    [GiverEndpoint("127.0.0.1", server.port)],
                    NodeChainCheck(node),
                    shard=shard_of(giver),
                )
            await until(lambda: server.refused == 1)
            return server.refused

    assert asyncio.run(asyncio.wait_for(main(), TIMEOUT)) == 1
    assert not joiner.has_shielding_key()


def test_discover_givers_through_the_trusted_rpc(node: MemoryNode, tmp_path: Path) -> None:
    """ShardStatus -> Teerex worker URL -> author_getMuRaUrl -> the listener that gives."""
    giver = node.enclave(tmp_path, "giver")
    joiner = node.enclave(tmp_path, "joiner", key=False)
    node.register(joiner)

    async def main() -> list[GiverEndpoint]:
        check = NodeChainCheck(node)
        async with ProvisioningServer(giver, "127.0.0.1", 0, check) as server:
            config = TrustedRpcConfig(shard_of(giver), mu_ra_url=f"127.0.0.1:{server.port}")
            dispatcher = build_trusted_rpc(giver, config)
            async with TrustedRpcServer(
                dispatcher, "127.0.0.1", 0, giver.tls_server_context()
            ) as rpc:
                # the in-memory chain is bound to this thread; the servers idle meanwhile
                node.register(giver, f"wss://127.0.0.1:{rpc.port}")
                node.serve_shard(giver)
                found = await discover_givers(
                    node, node.md, shard_of(giver), exclude=joiner.signer_account()
                )
                assert [g.port for g in found] == [server.port]
                await provision_shielding_key(joiner, found, check, shard=shard_of(giver))
                return found

    found = asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    assert found[0].signer == giver.signer_account()
    assert found[0].worker_url is not None and found[0].worker_url.startswith("wss://")
    assert joiner.shielding_public_key_json() == giver.shielding_public_key_json()


def test_discover_givers_sorts_and_skips(node: MemoryNode, tmp_path: Path) -> None:
    """Most recently active first; this worker and unresolvable URLs are left out."""
    first = node.enclave(tmp_path, "first")
    node.register(first, "wss://first:2000")
    node.serve_shard(first)
    second = node.enclave(tmp_path, "second")
    node.register(second, "wss://second:2000")
    node.serve_shard(second)
    me = node.enclave(tmp_path, "me")
    node.register(me, "wss://me:2000")
    node.serve_shard(me)
    shard = shard_of(first)

    async def resolve(url: str) -> str:
        if "me" in url:
            raise AssertionError("this worker must be excluded before resolving")
        return {"wss://first:2000": "10.0.0.1:3443", "wss://second:2000": "tcp://10.0.0.2"}[url]

    found = asyncio.run(
        discover_givers(node, node.md, shard, exclude=me.signer_account(), resolve=resolve)
    )
    assert [(g.host, g.port) for g in found] == [("10.0.0.2", 3443), ("10.0.0.1", 3443)]
    assert found[0].last_activity >= found[1].last_activity

    async def broken(url: str) -> str:
        raise ValueError("no answer")

    assert asyncio.run(discover_givers(node, node.md, shard, resolve=broken)) == []


def test_node_chain_check_picks_a_header_the_enclave_accepts(
    node: MemoryNode, tmp_path: Path
) -> None:
    """Justified head with GRANDPA, the anchor when no justification, ancestry without GRANDPA."""
    enclave = node.enclave(tmp_path, "e")
    node.register(enclave)
    node.produce()
    lc = enclave._lc
    assert lc is not None
    head = node.chain.block(node.chain.finalized_hash)
    assert head is not None
    request = ChainProofRequest(
        enclave.signer_account(), shard_of(enclave), (b"k",), lc.head_number, lc.head_hash, True
    )
    check = NodeChainCheck(node)
    proof = asyncio.run(check.registry_proof(request))
    assert proof.header.hash() == head.hash and proof.justification == head.justification

    node.keep_justifications = False
    proof = asyncio.run(check.registry_proof(request))
    assert proof.header.hash() == lc.head_hash and proof.justification is None

    linked = asyncio.run(check.registry_proof(replace(request, grandpa=False)))
    assert linked.header.hash() == head.hash
    assert [h.number for h in linked.ancestry] == list(range(1, head.number))
    capped = NodeChainCheck(node, max_ancestry=1)
    at_anchor = asyncio.run(capped.registry_proof(replace(request, grandpa=False)))
    assert at_anchor.header.hash() == lc.head_hash and at_anchor.ancestry == ()


def test_provisioning_server_reports_busy_port(node: MemoryNode, tmp_path: Path) -> None:
    """A port already in use is a ProvisioningServerError, not a bare OSError."""
    giver = node.enclave(tmp_path, "giver")

    async def main() -> None:
        check = NodeChainCheck(node)
        async with ProvisioningServer(giver, "127.0.0.1", 0, check) as server:
            with pytest.raises(ProvisioningServerError, match="cannot listen"):
                async with ProvisioningServer(giver, "127.0.0.1", server.port, check):
                    pass

    asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    with pytest.raises(ProvisioningServerError):
        _ = ProvisioningServer(giver, "127.0.0.1", 0, NodeChainCheck(node)).port


def test_provision_with_a_key_already_is_a_usage_error(node: MemoryNode, tmp_path: Path) -> None:
    """The joiner's host must not ask for a key its enclave already holds."""
    enclave = node.enclave(tmp_path, "has-key")

    async def main() -> None:
        async with ProvisioningServer(enclave, "127.0.0.1", 0, NodeChainCheck(node)) as server:
            await provision_shielding_key(
                enclave,
                [GiverEndpoint("127.0.0.1", server.port)],
                NodeChainCheck(node),
                shard=shard_of(enclave),
            )

    with pytest.raises(EnclaveUsageError):
        asyncio.run(asyncio.wait_for(main(), TIMEOUT))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:3443", ("127.0.0.1", 3443)),
        ("localhost:4000", ("localhost", 4000)),
        ("tcp://10.1.2.3:5000", ("10.1.2.3", 5000)),
        ("[::1]:3443", ("::1", 3443)),
        ("worker.example", ("worker.example", 3443)),
    ],
)
def test_parse_mu_ra_url_forms(text: str, expected: tuple[str, int]) -> None:
    """Integritee's bare host:port and URL forms parse; a missing port means 3443."""
    assert parse_mu_ra_url(text) == expected


def test_parse_mu_ra_url_rejects_no_host() -> None:
    """An address without a host is a ValueError."""
    with pytest.raises(ValueError):
        parse_mu_ra_url(":3443")
    assert str(GiverEndpoint("::1", 3443)) == "[::1]:3443"
