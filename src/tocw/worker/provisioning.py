"""Host side of shielding-key provisioning: the --mu-ra-port listener and the joiner's client.

Owns the transports of tocw.enclave.provisioning, and nothing of its trust: `ProvisioningServer`
accepts TCP connections (default port 3443) and runs one enclave giver session per connection;
`provision_shielding_key` connects a joining worker's enclave to candidate givers in turn until
one hands over the key. In both, the host only moves bytes between the socket and the enclave's
session (TLS terminates inside the enclave, so what passes here is ciphertext) and answers the
session's registry-proof requests with data from the parentchain (`ChainCheck`), which the
enclave verifies itself against headers it trusts.

`discover_givers` finds the shard's workers as Integritee's do: the signers in
EnclaveBridge.ShardStatus (most recently active first), their worker URL from
Teerex.SovereignEnclaves, and from that worker its provisioning address (`author_getMuRaUrl`
over its trusted RPC). Nothing learnt here is trusted: an address that leads to anything but an
attested, registered enclave of the shard fails the handshake and the next candidate is tried.

WorkerError
├── ProvisioningFailedError   no candidate gave the key (each one's reason in the message)
└── ProvisioningServerError   the listener cannot start (address in use, bad host)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Protocol
from urllib.parse import urlsplit

from tocw.enclave.errors import EnclaveError
from tocw.enclave.provisioning import (
    ChainProofRequest,
    ProvisioningProtocolError,
    ProvisioningSession,
    RegistryProof,
)
from tocw.parentchain.client import ReadProof
from tocw.primitives.errors import PrimitivesError
from tocw.primitives.grandpa import GRANDPA_ENGINE_ID
from tocw.primitives.header import Header, SignedBlock
from tocw.primitives.metadata import RuntimeMetadata, Variant
from tocw.primitives.scale import Str
from tocw.primitives.trusted import RPC_RETURN_VALUE_CODEC
from tocw.primitives.types import AccountId, BlockHash, ShardId, from_hex
from tocw.rpc.client import RpcClient
from tocw.rpc.errors import RpcClientError
from tocw.worker import WorkerError

logger = logging.getLogger(__name__)

DEFAULT_MU_RA_PORT: Final = 3443
SESSION_TIMEOUT: Final = 30.0
CONNECT_TIMEOUT: Final = 5.0
MAX_CONNECTIONS: Final = 16
MAX_ANCESTRY: Final = 4096
_READ_SIZE: Final = 64 * 1024


class ProvisioningFailedError(WorkerError):
    """No candidate giver provisioned the shielding key.

    failures: each candidate tried and what ended its attempt (the session's typed error, or
    the OSError/TimeoutError of the connection), so a caller can tell "retry later" (the giver
    cannot see our registration yet, is unreachable) from "never" (it runs other code).
    """

    def __init__(
        self, message: str, failures: Sequence[tuple[GiverEndpoint, BaseException]] = ()
    ) -> None:
        super().__init__(message)
        self.failures = tuple(failures)


class ProvisioningServerError(WorkerError):
    """The provisioning listener cannot start."""


@dataclass(frozen=True, slots=True)
class GiverEndpoint:
    """Where a candidate giver listens, and what the registry says about it (untrusted)."""

    host: str
    port: int
    signer: AccountId | None = None
    last_activity: int = 0
    worker_url: str | None = None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class ProvisioningEnclave(Protocol):
    """What the host needs of the enclave here (a part of tocw.enclave.api.EnclaveApi)."""

    def has_shielding_key(self) -> bool: ...

    def provisioning_server_session(
        self, *, collateral: bytes | str | None = None, now: int | None = None
    ) -> ProvisioningSession: ...

    def provisioning_client_session(
        self, shard: ShardId, *, collateral: bytes | str | None = None, now: int | None = None
    ) -> ProvisioningSession: ...


class ChainCheck(Protocol):
    """Fetches the registry proof an enclave session asks for (state_getReadProof & co)."""

    async def registry_proof(self, request: ChainProofRequest) -> RegistryProof: ...


class ProofSource(Protocol):
    """The parentchain reads NodeChainCheck makes; tocw.parentchain's client has them."""

    async def finalized_head(self) -> BlockHash: ...

    async def block(self, block_hash: bytes) -> SignedBlock: ...

    async def header(self, block_hash: bytes | None = None) -> Header: ...

    async def block_hash(self, number: int) -> BlockHash: ...

    async def read_proof(self, keys: Sequence[bytes], at: bytes | None = None) -> ReadProof: ...


class RegistrySource(Protocol):
    """The parentchain reads discover_givers makes; tocw.parentchain's client has them."""

    async def finalized_head(self) -> BlockHash: ...

    async def storage(self, key: bytes, at: bytes | None = None) -> bytes | None: ...


class NodeChainCheck:
    """ChainCheck over a Substrate node: prove the registry where the enclave accepts it.

    Light client with GRANDPA: at the finalized head with its justification; a node that did
    not keep a justification for that block (real networks justify only some) is answered at
    the enclave's own head instead. Without GRANDPA: at the finalized head with the headers
    linking it to the enclave's head, or at the head itself when more than `max_ancestry`
    headers lie between.
    """

    def __init__(
        self,
        source: ProofSource | Callable[[], Awaitable[ProofSource]],
        *,
        max_ancestry: int = MAX_ANCESTRY,
    ) -> None:
        self._source = source
        self._max_ancestry = max_ancestry

    async def _client(self) -> ProofSource:
        if callable(self._source):
            return await self._source()
        return self._source

    async def registry_proof(self, request: ChainProofRequest) -> RegistryProof:
        source = await self._client()
        head = await source.finalized_head()
        signed = await source.block(head)
        header = signed.block.header
        justification = signed.justification(GRANDPA_ENGINE_ID)
        ancestry: tuple[Header, ...] = ()
        at_anchor = header.number <= request.anchor_number
        if request.grandpa and justification is None:
            at_anchor = True
        gap = header.number - request.anchor_number - 1
        if not request.grandpa and not at_anchor:
            if gap > self._max_ancestry:
                at_anchor = True
            else:
                ancestry = await self._ancestry(source, request.anchor_number, header.number)
        if at_anchor:
            header = await source.header(request.anchor_hash)
            head, justification, ancestry = request.anchor_hash, None, ()
        proof = await source.read_proof(list(request.keys), head)
        return RegistryProof(header, tuple(proof.proof), justification, ancestry)

    @staticmethod
    async def _ancestry(source: ProofSource, anchor: int, target: int) -> tuple[Header, ...]:
        headers = []
        for number in range(anchor + 1, target):
            headers.append(await source.header(await source.block_hash(number)))
        return tuple(headers)


# -- moving bytes ---------------------------------------------------------------------------------


async def _write(writer: asyncio.StreamWriter, data: bytes) -> None:
    if data:
        writer.write(data)
        await writer.drain()


async def drive_session(
    session: ProvisioningSession,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    chain_check: ChainCheck,
) -> None:
    """Shuttle bytes between the socket and the session until it ends (the pump both roles
    share). Enclave calls run in a thread: evidence and block import may take a while."""
    await _write(writer, await asyncio.to_thread(session.start))
    while not session.done:
        request = session.chain_proof_request
        if request is not None:
            try:
                proof = await chain_check.registry_proof(request)
            except Exception as e:  # any failure to fetch the proof ends the session
                logger.warning("provisioning: cannot fetch the registry proof: %s", e)
                await _write(writer, await asyncio.to_thread(session.abort, "no registry proof"))
                return
            await _write(writer, await asyncio.to_thread(session.provide_chain_proof, proof))
            continue
        data = await reader.read(_READ_SIZE)
        if not data:
            session.connection_lost()
            return
        await _write(writer, await asyncio.to_thread(session.receive, data))


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, asyncio.TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), 2.0)


# -- giver ----------------------------------------------------------------------------------------


class ProvisioningServer:
    """The giver's listener: `async with ProvisioningServer(enclave, host, port, check) as s:`.

    One enclave session per connection, each bounded by `timeout` seconds; at most
    `max_connections` at once (more are closed on accept). Port 0 binds a free port
    (`server.port` tells which).
    """

    def __init__(
        self,
        enclave: ProvisioningEnclave,
        host: str,
        port: int,
        chain_check: ChainCheck,
        *,
        collateral: bytes | str | None = None,
        timeout: float = SESSION_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self._enclave = enclave
        self._host = host
        self._port = port
        self._chain_check = chain_check
        self._collateral = collateral
        self._timeout = timeout
        self._max_connections = max_connections
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.given = 0
        self.refused = 0

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise ProvisioningServerError("the provisioning server is not running")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def __aenter__(self) -> ProvisioningServer:
        try:
            self._server = await asyncio.start_server(self._accept, self._host, self._port)
        except OSError as e:
            raise ProvisioningServerError(
                f"cannot listen for provisioning on {self._host}:{self._port}: {e}"
            ) from None
        logger.info("provisioning server listening on %s:%d", self._host, self.port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        peer = writer.get_extra_info("peername")
        if len(self._tasks) >= self._max_connections:
            logger.warning("provisioning: too many connections, closing %s", peer)
            await _close(writer)
            return
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer, peer)
        finally:
            self._tasks.discard(task)
            await _close(writer)

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: object
    ) -> None:
        try:
            session = await asyncio.to_thread(
                self._enclave.provisioning_server_session, collateral=self._collateral
            )
        except EnclaveError as e:
            logger.warning("provisioning: cannot open a session for %s: %s", peer, e)
            return
        try:
            await asyncio.wait_for(
                drive_session(session, reader, writer, self._chain_check), self._timeout
            )
        except TimeoutError:
            session.connection_lost()
            logger.warning("provisioning: session with %s timed out", peer)
        except OSError as e:
            session.connection_lost()
            logger.warning("provisioning: connection with %s failed: %s", peer, e)
        if session.succeeded:
            self.given += 1
            logger.info("provisioning: gave the shielding key to %s (%s)", _account(session), peer)
        else:
            self.refused += 1
            logger.warning("provisioning: refused %s: %s", peer, session.error)


def _account(session: ProvisioningSession) -> str:
    signer = session.peer_signer
    return f"0x{bytes(signer).hex()}" if signer is not None else "unknown signer"


# -- requester ------------------------------------------------------------------------------------


async def provision_shielding_key(
    enclave: ProvisioningEnclave,
    candidates: Sequence[GiverEndpoint],
    chain_check: ChainCheck,
    *,
    shard: ShardId,
    collateral: bytes | str | None = None,
    timeout: float = SESSION_TIMEOUT,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> GiverEndpoint:
    """Get `shard`'s shielding key into `enclave` from the first candidate that gives it.

    Candidates are tried in the order given (discover_givers puts the most recently active
    first). Returns the giver that succeeded; ProvisioningFailedError names every failure.
    """
    failures: list[str] = []
    errors: list[tuple[GiverEndpoint, BaseException]] = []
    for candidate in candidates:
        try:
            session = await _provision_from(
                enclave, candidate, chain_check, shard, collateral, timeout, connect_timeout
            )
        except (OSError, TimeoutError) as e:
            failures.append(f"{candidate}: cannot connect ({e or type(e).__name__})")
            errors.append((candidate, e))
            logger.warning("provisioning: giver %s unreachable: %s", candidate, e)
            continue
        if session.succeeded:
            logger.info("provisioning: shielding key received from %s", candidate)
            return candidate
        error = session.error or ProvisioningProtocolError("the session ended without a result")
        failures.append(f"{candidate}: {error}")
        errors.append((candidate, error))
        logger.warning("provisioning: giver %s failed: %s", candidate, error)
    if not failures:
        raise ProvisioningFailedError(
            f"no worker of shard 0x{bytes(shard).hex()} to get the shielding key from"
        )
    raise ProvisioningFailedError(
        f"no worker of shard 0x{bytes(shard).hex()} gave the shielding key: " + "; ".join(failures),
        errors,
    )


async def _provision_from(
    enclave: ProvisioningEnclave,
    candidate: GiverEndpoint,
    chain_check: ChainCheck,
    shard: ShardId,
    collateral: bytes | str | None,
    timeout: float,
    connect_timeout: float,
) -> ProvisioningSession:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(candidate.host, candidate.port), connect_timeout
    )
    try:
        session = await asyncio.to_thread(
            enclave.provisioning_client_session, shard, collateral=collateral
        )
        try:
            await asyncio.wait_for(drive_session(session, reader, writer, chain_check), timeout)
        except (TimeoutError, OSError) as e:
            session.connection_lost()
            logger.warning("provisioning: session with %s ended: %s", candidate, e)
        return session
    finally:
        await _close(writer)


# -- discovery ------------------------------------------------------------------------------------


def parse_mu_ra_url(url: str) -> tuple[str, int]:
    """(host, port) of a provisioning address: "host:port", "tcp://host:port", "[::1]:3443"."""
    text = url.strip()
    parts = urlsplit(text if "://" in text else f"//{text}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname:
        raise ValueError(f"no host in provisioning address {url!r}")
    return parts.hostname, port if port is not None else DEFAULT_MU_RA_PORT


def _insecure_tls() -> ssl.SSLContext:
    # The worker serves a self-signed certificate we cannot know beforehand; its answer (an
    # address) is not trusted anyway: the provisioning handshake attests whoever is there.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def fetch_mu_ra_url(worker_url: str, timeout: float = CONNECT_TIMEOUT) -> str:
    """author_getMuRaUrl of the worker at `worker_url` (its trusted RPC, ws:// or wss://)."""
    context = _insecure_tls() if worker_url.startswith("wss://") else None
    async with RpcClient(
        worker_url, ssl_context=context, timeout=timeout, open_timeout=timeout
    ) as rpc:
        result = await rpc.request("author_getMuRaUrl", [])
    if not isinstance(result, str):
        raise ValueError("author_getMuRaUrl answered no hex string")
    value = RPC_RETURN_VALUE_CODEC.decode(from_hex(result))
    message = value.error_message()
    if message is not None:
        raise ValueError(f"author_getMuRaUrl refused: {message}")
    url: str = Str.decode(value.value)
    return url


async def discover_givers(
    source: RegistrySource,
    metadata: RuntimeMetadata,
    shard: ShardId,
    *,
    exclude: AccountId | None = None,
    resolve: Callable[[str], Awaitable[str]] = fetch_mu_ra_url,
) -> list[GiverEndpoint]:
    """The shard's workers as provisioning endpoints, most recently active first.

    `exclude`: this worker's own signer. Workers without a URL, or whose URL does not answer
    author_getMuRaUrl, are skipped with a warning.
    """
    at = await source.finalized_head()
    try:
        status_key = metadata.storage_key("EnclaveBridge", "ShardStatus", bytes(shard))
        statuses = metadata.decode_storage(
            "EnclaveBridge", "ShardStatus", await source.storage(status_key, at)
        )
    except PrimitivesError as e:
        raise ProvisioningFailedError(f"cannot read EnclaveBridge.ShardStatus: {e}") from None
    workers: list[tuple[int, bytes]] = []
    for status in statuses or []:
        if isinstance(status, dict):
            signer, activity = status.get("signer"), status.get("last_activity")
            if isinstance(signer, bytes) and isinstance(activity, int):
                workers.append((activity, signer))
    workers.sort(key=lambda w: w[0], reverse=True)
    found: list[GiverEndpoint] = []
    for activity, signer in workers:
        if exclude is not None and signer == bytes(exclude):
            continue
        url = await _worker_url(source, metadata, signer, at)
        if url is None:
            logger.warning("provisioning: worker 0x%s registered no URL", signer.hex())
            continue
        try:
            host, port = parse_mu_ra_url(await resolve(url))
        except (RpcClientError, OSError, TimeoutError, ValueError, PrimitivesError) as e:
            logger.warning("provisioning: no provisioning address from %s: %s", url, e)
            continue
        found.append(GiverEndpoint(host, port, AccountId(signer), activity, url))
    return found


async def _worker_url(
    source: RegistrySource, metadata: RuntimeMetadata, signer: bytes, at: bytes
) -> str | None:
    try:
        key = metadata.storage_key("Teerex", "SovereignEnclaves", signer)
        entry = metadata.decode_storage(
            "Teerex", "SovereignEnclaves", await source.storage(key, at)
        )
    except PrimitivesError as e:
        logger.warning("provisioning: Teerex entry of 0x%s unreadable: %s", signer.hex(), e)
        return None
    if not isinstance(entry, Variant) or not isinstance(entry.value, dict):
        return None
    url = entry.value.get("url")
    if not isinstance(url, bytes):
        return None
    return url.decode("utf-8", "replace")
