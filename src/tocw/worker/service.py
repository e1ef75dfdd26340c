"""The worker service: startup, the main loop and shutdown of `tocw worker run`.

Owns `Worker` (the async context manager `async with Worker(config) as worker: await
worker.serve_forever()`, as uvicorn's Server), the host side of the OCALL interface
(`HostOCall`), `ChainAdapter` (the parentchain as the follower and the submitter see it, over
tocw.parentchain's ReconnectingClient and the standard JSON-RPC only), and `open_enclave`,
which the print-and-exit commands share.

Startup, in order (ARCHITECTURE.md "Data flow", the worker issue's "Startup"):

    prepare the data dir        --clean-reset wipes a tocw worker data dir (and only one)
    open the enclave            keys are generated inside on first start, unsealed after
    health, metrics servers     up from the start: /health tells what the worker waits for
    connect to the node         with backoff; genesis, runtime version and metadata (by name:
                                Teerex and EnclaveBridge must exist, indices are never assumed)
    check the chain             the enclave's light client must follow this genesis, and the
                                block it imported last must be on the node's chain: a data dir
                                never silently moves to another chain or a fork
    provisioning server         --mu-ra-port: gives the shard's shielding key to attested
                                workers of the shard (worker/provisioning.py)
    trusted RPC                 its address is the URL that gets registered
    nonce                       max(chain's next index, outbox) so nothing collides (submitter.py)
    check the shard             ours already (resume), new on chain (create), or on chain and
                                not ours (join); a joiner finds the shard's creation block now
                                -- before any fee is paid
    --dev funding               //Alice tops up the enclave account (the one host-signed call)
    shielding key               create: generated now, so the registration's attestation binds it
    register                    Teerex.register_sgx_enclave with the worker URL, unless a fresh
                                registration with this MRENCLAVE and URL is on chain; renewed
                                before MaxAttestationRenewalPeriod runs out
    create the shard            create: the finalized head is its creation block
    join the shard              join: wait until the registration is finalized, get the key
                                from the shard's workers, init the shard at its creation block
                                and confirm only blocks finalized from now on (worker/joining.py)
    follower, submitter         until SIGTERM (a joiner first replays from the creation block)

The enclave is opened without a shielding key (`create_shielding_key=False`) because only the
chain tells whether this worker creates its shard or joins it, and a joiner must never make a
key of its own (docs/multi-worker.md).

Shutdown (SIGTERM / stop()): the follower finishes and commits the block in progress, the
submitter gets a few seconds to hand what the enclave signed to the node (the rest stays in the
outbox for the next start), servers close, the enclave closes. Exit code 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import shutil
import signal
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Final
from urllib.parse import urlsplit

from tocw import __version__
from tocw.enclave.api import Enclave, EnclaveApi, ImportedBlock
from tocw.enclave.errors import EnclaveError
from tocw.enclave.extrinsics import ENCLAVE_BRIDGE, TEEREX, ParentchainInfo
from tocw.enclave.light_client import ParentchainBlock
from tocw.enclave.measurement import sim_backend
from tocw.enclave.trusted_rpc import TrustedRpcConfig, build_trusted_rpc
from tocw.parentchain.client import (
    SYSTEM_EVENTS_KEY,
    Backoff,
    ParentchainClient,
    ReconnectingClient,
)
from tocw.parentchain.client import ParentchainBlock as FetchedBlock
from tocw.parentchain.errors import (
    ExtrinsicRejectedError,
    NodeRpcError,
    ParentchainConnectionError,
    ParentchainError,
    UnknownBlockError,
)
from tocw.primitives.errors import PrimitivesError
from tocw.primitives.events import decode_events, describe_dispatch_error, dispatch_error
from tocw.primitives.events import extrinsic_succeeded as succeeded_in
from tocw.primitives.extrinsic import call_index_of, decode_extrinsic, extrinsic_hash
from tocw.primitives.grandpa import GRANDPA_AUTHORITIES_KEY, authorities_from_storage
from tocw.primitives.keys import Keypair
from tocw.primitives.metadata import RuntimeMetadata, Variant
from tocw.primitives.ss58 import ss58_encode
from tocw.primitives.types import AccountId, BlockHash, BlockNumber, ShardId
from tocw.rpc.dispatch import Handler
from tocw.rpc.errors import METHOD_NOT_FOUND, RpcCallError, RpcConnectionError, RpcTimeoutError
from tocw.rpc.messages import Params
from tocw.tee import TeeBackend, TeeError, make_backend
from tocw.worker import WorkerError
from tocw.worker.config import WorkerConfig
from tocw.worker.follower import Follower, SubscriptionUnsupportedError, SyncProgress
from tocw.worker.health import HealthStatus
from tocw.worker.joining import (
    JOIN_FILE,
    JoinRecord,
    find_creation_block,
    load_join_record,
    provision_with_retry,
    same_code_enclaves,
    save_join_record,
    wait_for_creation_block,
)
from tocw.worker.metrics import Metrics, failure_reason
from tocw.worker.provisioning import (
    GiverEndpoint,
    NodeChainCheck,
    ProvisioningServer,
    ProvisioningServerError,
    discover_givers,
)
from tocw.worker.sealed_store import DirectorySealedStore, SealedStoreError
from tocw.worker.servers import HealthServer, MetricsServer, ServerError, TrustedRpcServer
from tocw.worker.submitter import OUTBOX_FILE, NodeRejectedError, Outbox, Submitter

logger = logging.getLogger(__name__)

SEALED_DIR: Final = "sealed"
MARKER_FILE: Final = ".tocw-worker"
DEFAULT_BLOCK_TIME: Final = 6.0
MIN_BLOCK_TIME: Final = 0.1  # a chain's first blocks can come faster than its steady pace
INDIRECT_CALLS: Final = ((ENCLAVE_BRIDGE, "invoke"), (ENCLAVE_BRIDGE, "shield_funds"))
# --dev: //Alice tops the enclave account up to DEV_FUNDING when it holds less than DEV_MINIMUM
# (the dev chain's accounts hold 2^60; an enclave pays fees for every confirmation).
DEV_FUNDER_URI: Final = "//Alice"
DEV_FUNDING: Final = 1 << 50
DEV_MINIMUM: Final = 1 << 48
RENEW_AT_FRACTION: Final = 0.75  # re-register after 3/4 of MaxAttestationRenewalPeriod
RENEWAL_CHECK_MAX: Final = 3600.0  # seconds between registration checks, at most
INCLUSION_TIMEOUT: Final = 120.0  # seconds for a startup extrinsic to be included
SHUTDOWN_FLUSH: Final = 5.0  # seconds for the submitter to hand over the last extrinsics
CONNECT_BACKOFF: Final = Backoff(initial=0.5, cap=10.0)
JOIN_TIMEOUT: Final = 300.0  # seconds a joiner waits for its registration and for a giver
JOIN_RETRY_MIN: Final = 1.0  # seconds between joining attempts, at least ...
JOIN_RETRY_MAX: Final = 10.0  # ... and at most (2 block times in between)
CREATION_GRACE_MIN: Final = 5.0  # seconds a new shard waits for a same-code worker's creation,
CREATION_GRACE_MAX: Final = 60.0  # 10 block times within these bounds


class ShardAction(enum.Enum):
    """What startup does with the configured shard (`Worker._check_shard`)."""

    RESUME = "resume"  # the enclave serves it already
    CREATE = "create"  # new on chain: this worker is its first
    JOIN = "join"  # on chain, served by other workers: provision the key, replay


class WorkerStartupError(WorkerError):
    """The worker cannot start; the message says why and what to do."""


class WorkerStoppedError(WorkerError):
    """stop() was called while the worker was still starting."""


Announce = Callable[[str, str], None]  # (key, value) of a machine-readable startup line


# --- the data dir and the enclave -----------------------------------------------------------


def prepare_data_dir(config: WorkerConfig) -> None:
    """Create the data dir (0700); with clean_reset, empty it first, but only if it is a tocw
    worker's (it holds the marker file) or already empty: never wipe a directory by mistake."""
    data_dir = config.data_dir
    if config.clean_reset and data_dir.exists():
        entries = list(data_dir.iterdir())
        if entries and not (data_dir / MARKER_FILE).exists():
            raise WorkerStartupError(
                f"--clean-reset: {data_dir} is not a tocw worker data dir (no {MARKER_FILE}); "
                "refusing to delete its contents"
            )
        for entry in entries:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        logger.warning("clean reset: emptied the data dir %s (keys and state)", data_dir)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    (data_dir / MARKER_FILE).touch()


def make_tee_backend(config: WorkerConfig) -> TeeBackend:
    """The configured TEE backend; sim measures exactly this enclave's trusted code."""
    try:
        if config.tee == "sim" and not config.tee_options:
            return sim_backend(config.data_dir, config.modules)
        return make_backend(config.tee, config.data_dir, **dict(config.tee_options))
    except TeeError as e:
        raise WorkerStartupError(f"TEE backend {config.tee}: {e}") from None


class HostOCall:
    """The host side of OCallApi: sealed blobs in files, extrinsics into the submitter."""

    def __init__(self, store: DirectorySealedStore) -> None:
        self._store = store
        self.sink: Callable[[Sequence[bytes]], None] | None = None

    def store_sealed(self, name: str, blob: bytes) -> None:
        self._store.store_sealed(name, blob)

    def load_sealed(self, name: str) -> bytes | None:
        return self._store.load_sealed(name)

    def submit_extrinsics(self, extrinsics: Sequence[bytes]) -> None:
        if self.sink is None:
            raise WorkerError("this host is not connected to a parentchain: cannot submit")
        self.sink(extrinsics)


def open_enclave(
    config: WorkerConfig, ocall: HostOCall | None = None, *, create_shielding_key: bool = True
) -> Enclave:
    """Initialise the enclave in the data dir (keys created on first use); no node needed.

    create_shielding_key=False leaves a missing shielding key missing: `tocw worker run` opens
    it so, because whether the key is generated here or provisioned by the shard's other
    workers depends on the chain (ShardAction).
    """
    try:
        ocall = ocall or HostOCall(DirectorySealedStore(config.data_dir / SEALED_DIR))
    except (OSError, SealedStoreError) as e:
        raise WorkerStartupError(f"data dir {config.data_dir}: {e}") from None
    backend = make_tee_backend(config)
    try:
        return Enclave.init(
            config.data_dir,
            backend,
            config.modules,
            ocall,
            create_shielding_key=create_shielding_key,
        )
    except EnclaveError as e:
        raise WorkerStartupError(f"cannot open the enclave in {config.data_dir}: {e}") from None


# --- the parentchain as the follower and the submitter see it ----------------------------------


class ChainAdapter:
    """BlockSource (follower.py) and SubmitTransport (submitter.py) over one reconnecting client.

    Catch-up fetches bodies for every block but System.Events (with their read proof, which the
    enclave checks against the state root) only for blocks that carry an EnclaveBridge.invoke
    or shield_funds call, found by call index from the metadata: the enclave needs events only
    to see whether those extrinsics succeeded, and most blocks have none.
    """

    def __init__(self, chain: ReconnectingClient, metadata: RuntimeMetadata) -> None:
        self.chain = chain
        self._metadata = metadata
        self._indirect = _indirect_call_indices(metadata)

    @property
    def metadata(self) -> RuntimeMetadata:
        return self._metadata

    def set_metadata(self, metadata: RuntimeMetadata) -> None:
        self._metadata = metadata
        self._indirect = _indirect_call_indices(metadata)

    async def client(self) -> ParentchainClient:
        return await self.chain.client()

    # BlockSource

    async def finalized_number(self) -> BlockNumber:
        header = await self.chain.run(lambda c: c.finalized_header())
        return header.number

    async def finalized_heads(self) -> AsyncIterator[BlockNumber]:
        client = await self.chain.client()
        try:
            heads = await client.subscribe_finalized_heads()
        except NodeRpcError as e:
            if e.code == METHOD_NOT_FOUND:
                raise SubscriptionUnsupportedError(str(e)) from None
            raise
        async with heads:
            async for header in heads:
                yield header.number

    async def fetch_blocks(self, first: BlockNumber, last: BlockNumber) -> list[ParentchainBlock]:
        fetched = await self.chain.run(lambda c: c.blocks_range(first, last, events=False))
        wanted = [b for b in fetched if self._needs_events(b)]
        events: dict[bytes, tuple[bytes, tuple[bytes, ...]]] = {}
        if wanted:

            async def with_events(c: ParentchainClient) -> None:
                raws = await asyncio.gather(*(c.events_raw(b.hash) for b in wanted))
                proofs = await asyncio.gather(
                    *(c.read_proof([SYSTEM_EVENTS_KEY], b.hash) for b in wanted)
                )
                for b, raw, proof in zip(wanted, raws, proofs, strict=True):
                    events[bytes(b.hash)] = (raw, proof.proof)

            await self.chain.run(with_events)
        out = []
        for b in fetched:
            raw_and_proof = events.get(bytes(b.hash))
            if raw_and_proof is None:
                out.append(ParentchainBlock(b.signed))
            else:
                out.append(ParentchainBlock(b.signed, raw_and_proof[0], raw_and_proof[1]))
        return out

    def _needs_events(self, block: FetchedBlock) -> bool:
        for xt in block.extrinsics:
            try:
                if call_index_of(self._metadata, xt) in self._indirect:
                    return True
            except PrimitivesError:
                return True  # undecodable here: let the enclave see everything and decide
        return False

    async def reconnect(self) -> None:
        client = await self.chain.client()
        await client.close()
        await self.chain.client()

    # SubmitTransport

    async def submit_extrinsics(
        self, extrinsics: Sequence[bytes]
    ) -> list[NodeRejectedError | None]:
        """author_submitExtrinsic for each, as one JSON-RPC batch (the client falls back to
        pipelined single calls for nodes that refuse batches)."""
        calls: list[tuple[str, Params | None]] = [
            ("author_submitExtrinsic", ["0x" + bytes(x).hex()]) for x in extrinsics
        ]

        async def send(c: ParentchainClient) -> list[Any]:
            try:
                return await c.rpc.batch(calls, return_exceptions=True)
            except (RpcConnectionError, RpcTimeoutError) as e:
                raise ParentchainConnectionError(f"author_submitExtrinsic: {e}") from e

        answers = await self.chain.run(send)
        return [
            NodeRejectedError(a.code, a.message, a.data) if isinstance(a, RpcCallError) else None
            for a in answers
        ]

    async def finalized_nonce(self, account: AccountId) -> int:
        info = await self.account_info(account, finalized=True)
        return int(info.get("nonce", 0))

    async def account_info(self, account: AccountId, *, finalized: bool) -> dict[str, Any]:
        md = self._metadata
        key = md.storage_key("System", "Account", bytes(account))

        async def read(c: ParentchainClient) -> bytes | None:
            at = await c.finalized_head() if finalized else None
            return await c.storage(key, at)

        value = md.decode_storage("System", "Account", await self.chain.run(read))
        return value if isinstance(value, dict) else {}


def _indirect_call_indices(md: RuntimeMetadata) -> frozenset[bytes]:
    return frozenset(md.call_index(p, c) for p, c in INDIRECT_CALLS if md.has_call(p, c))


# --- the service --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Registration:
    """The enclave's entry in Teerex.SovereignEnclaves, as far as the worker cares."""

    mrenclave: bytes
    timestamp: int  # ms
    url: str | None


class Worker:
    """One worker: `async with Worker(config) as worker: await worker.serve_forever()`.

    rpc_methods: a deployment's own trusted RPC registries (name -> handler), merged into the
        built-in and STF-module methods through the same explicit registry (docs/
        "Extending the RPC interface"); a name defined twice is refused at startup.
    """

    def __init__(
        self,
        config: WorkerConfig,
        *,
        announce: Announce | None = None,
        rpc_methods: Sequence[Mapping[str, Handler]] = (),
    ) -> None:
        self.config = config
        self._announce = announce or (lambda key, value: logger.info("%s: %s", key, value))
        self._rpc_extra = tuple(rpc_methods)
        self._stop = asyncio.Event()
        self._startup_task: asyncio.Task[Any] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._ocall: HostOCall | None = None
        self._enclave: Enclave | None = None
        self._outbox: Outbox | None = None
        self._chain: ReconnectingClient | None = None
        self._adapter: ChainAdapter | None = None
        self._submitter: Submitter | None = None
        self._follower: Follower | None = None
        self._shard: ShardId | None = None
        self._block_time = config.block_time or DEFAULT_BLOCK_TIME
        self.metrics = Metrics()
        self._rpc: TrustedRpcServer | None = None
        self._provisioning: ProvisioningServer | None = None
        self._http: list[HealthServer | MetricsServer] = []
        self._health = HealthStatus(False, False, None, None, config.tee, False)
        self._synced_once = False
        self.registered = False

    # -- public state (health, metrics, tests) ---------------------------------------------------

    @property
    def enclave(self) -> EnclaveApi:
        if self._enclave is None:
            raise WorkerError("the worker is not started")
        return self._enclave

    @property
    def shard(self) -> ShardId:
        if self._shard is None:
            raise WorkerError("the worker is not started")
        return self._shard

    @property
    def submitter(self) -> Submitter | None:
        return self._submitter

    @property
    def block_time(self) -> float:
        return self._block_time

    @property
    def trusted_rpc_url(self) -> str | None:
        return None if self._rpc is None else self._rpc.url

    @property
    def provisioning_server(self) -> ProvisioningServer | None:
        return self._provisioning

    def progress(self) -> SyncProgress | None:
        return None if self._follower is None else self._follower.progress()

    def health_status(self) -> HealthStatus:
        """The latest snapshot (immutable, replaced by the loop: safe from the HTTP threads)."""
        return self._health

    @property
    def is_initialized(self) -> bool:
        """Registered on chain and caught up with the finalized head at least once."""
        return self._health.initialized

    def _update_health(self, **changes: Any) -> None:
        self._health = replace(self._health, **changes)
        self.metrics.set_registered(self._health.registered)
        self.metrics.set_initialized(self._health.initialized)

    # -- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> Worker:
        self._startup_task = asyncio.current_task()
        try:
            await self._start()
        except asyncio.CancelledError:
            await self._shutdown()
            if self._stop.is_set():
                raise WorkerStoppedError("stopped during startup") from None
            raise
        except (ParentchainError, EnclaveError, OSError) as e:
            await self._shutdown()
            raise WorkerStartupError(f"startup failed: {type(e).__name__}: {e}") from e
        except BaseException:
            await self._shutdown()
            raise
        finally:
            self._startup_task = None
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._shutdown()

    def stop(self) -> None:
        """Stop taking new blocks; the block in progress is committed first (idempotent)."""
        if self._stop.is_set():
            return
        logger.info("stopping: finishing the current block")
        self._stop.set()
        if self._follower is not None:
            self._follower.stop()
        if self._startup_task is not None:
            self._startup_task.cancel()

    async def serve_forever(self) -> None:
        """Run until stop(); raises the error of a task that failed for good."""
        stop = asyncio.create_task(self._stop.wait())
        try:
            waiting: set[asyncio.Future[Any]] = {stop, *self._tasks}
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stop:
                    task.result()  # raises the task's error
                    if not self._stop.is_set():
                        raise WorkerError(f"a worker task ended unexpectedly: {task!r}")
        finally:
            stop.cancel()

    # -- startup ---------------------------------------------------------------------------------

    async def _start(self) -> None:
        config = self.config
        await asyncio.to_thread(prepare_data_dir, config)
        try:
            store = DirectorySealedStore(config.data_dir / SEALED_DIR)
        except (OSError, SealedStoreError) as e:
            raise WorkerStartupError(f"data dir {config.data_dir}: {e}") from None
        self._ocall = HostOCall(store)
        self._enclave = await asyncio.to_thread(
            lambda: open_enclave(config, self._ocall, create_shielding_key=False)
        )
        enclave = self._enclave
        self._shard = config.shard or ShardId(bytes(enclave.mrenclave()))
        signer = enclave.signer_account()
        self._announce("mrenclave", "0x" + bytes(enclave.mrenclave()).hex())
        self._announce("shard", "0x" + bytes(self._shard).hex())
        self._announce("signer", f"{ss58_encode(signer)} 0x{bytes(signer).hex()}")
        secure = "" if enclave.is_secure else " (NOT SECURE: simulated TEE)"
        self._announce("tee", enclave.tee_name + secure)
        self.metrics.set_worker_info(
            version=__version__,
            tee=enclave.tee_name,
            is_secure=enclave.is_secure,
            mrenclave=bytes(enclave.mrenclave()),
            shard=bytes(self._shard),
            signer=ss58_encode(signer),
        )
        self._update_health(tee_kind=enclave.tee_name, is_secure=enclave.is_secure)
        self._update_health(shard=bytes(self._shard))
        await self._start_http_servers()

        self._outbox = Outbox(config.data_dir / OUTBOX_FILE)
        logger.info("connecting to the parentchain node %s", config.node_url)
        self._chain = ReconnectingClient(config.node_url, CONNECT_BACKOFF)
        client = await self._chain.client()
        md = await self._sync_chain_info(client, None)
        self._adapter = ChainAdapter(self._chain, md)
        await self._check_chain(client)
        self._block_time = config.block_time or await _measure_block_time(client, md)
        await self._start_provisioning_server()
        await self._start_trusted_rpc()

        pending = self._outbox.next_nonce()
        next_index = int(await client.account_next_index(signer))
        nonce = max(next_index, pending or 0)
        enclave.set_nonce(nonce)
        logger.info(
            "enclave account nonce=%d (chain next index %d, outbox %s)", nonce, next_index, pending
        )
        submitter = Submitter(
            self._outbox,
            self._adapter,
            signer,
            self._inspect,
            # An enclave that can re-sign its own extrinsics (after a runtime upgrade made them
            # invalid) offers resign_extrinsics(extrinsics, first_nonce); EnclaveApi does not
            # have it yet, so without it an invalid entry is retried and logged (submitter.py).
            resign=getattr(enclave, "resign_extrinsics", None),
            poll_interval=max(0.2, self._block_time),
            on_result=self._on_submission,
        )
        self._submitter = submitter
        self._ocall.sink = submitter.enqueue
        self._tasks.append(asyncio.create_task(submitter.run(), name="submitter"))

        action = await self._check_shard(client)
        creation: BlockNumber | None = None
        if action is ShardAction.JOIN and not enclave.has_shielding_key():
            creation = await self._find_creation_block()
        if config.dev:
            await self._dev_fund(client, signer)
        if action is ShardAction.CREATE and not enclave.has_shielding_key():
            await asyncio.to_thread(enclave.create_shielding_key)
        await self._register(client, startup=True)
        if action is ShardAction.CREATE:
            await self._create_shard(client)
        elif action is ShardAction.JOIN:
            await self._join_shard(client, creation)
        else:
            self._resume_join_policy()

        self._follower = Follower(
            self._adapter,
            enclave,
            block_time=self._block_time,
            batch_size=config.batch_size,
            on_imported=self._on_imported,
            on_progress=self._on_progress,
            on_runtime_upgrade=self._on_runtime_upgrade,
            on_head=self._on_head,
        )
        self._tasks.append(asyncio.create_task(self._follower.run(), name="follower"))
        self._tasks.append(asyncio.create_task(self._renewal_loop(), name="registration"))
        self._tasks.append(asyncio.create_task(self._balance_loop(), name="balance"))
        logger.info(
            "worker started shard=0x%s block_time=%.1fs batch=%d",
            bytes(self._shard).hex(),
            self._block_time,
            config.batch_size,
        )

    async def _start_http_servers(self) -> None:
        config = self.config
        servers: list[tuple[str, HealthServer | MetricsServer]] = [
            ("health", HealthServer(self.health_status, config.trusted_host, config.health_port)),
            ("metrics", MetricsServer(self.metrics, config.trusted_host, config.metrics_port)),
        ]
        for key, server in servers:
            try:
                await asyncio.to_thread(server.start)
            except ServerError as e:
                raise WorkerStartupError(f"{key} server: {e}") from None
            self._http.append(server)
            self._announce(key, server.url)

    async def _start_provisioning_server(self) -> None:
        """The --mu-ra-port listener; every worker runs one (a joiner's refuses to give until it
        holds the key). Registry proofs come from the node, for the enclave to verify."""
        config = self.config
        assert self._chain is not None
        server = ProvisioningServer(
            self.enclave,
            config.trusted_host,
            config.mu_ra_port,
            NodeChainCheck(self._chain.client),
        )
        try:
            await server.__aenter__()
        except ProvisioningServerError as e:
            raise WorkerStartupError(f"provisioning server: {e}") from None
        self._provisioning = server
        self._announce("mu-ra", self._mu_ra_url())

    def _mu_ra_url(self) -> str:
        """host:port of the provisioning server as other workers reach it (author_getMuRaUrl):
        the host of --external-url when there is one, else the listen address."""
        config = self.config
        port = config.mu_ra_port if self._provisioning is None else self._provisioning.port
        host = _url_host(config.trusted_host)
        if config.external_url is not None:
            external = urlsplit(config.external_url).hostname
            if external:
                host = f"[{external}]" if ":" in external else external
        return f"{host}:{port}"

    async def _start_trusted_rpc(self) -> None:
        config = self.config
        enclave = self._enclave
        assert enclave is not None and self._shard is not None
        rpc_config = TrustedRpcConfig(
            shard=self._shard,
            mu_ra_url=self._mu_ra_url(),
            untrusted_url=None,
            host_health=self._host_health,
        )
        try:
            dispatcher = build_trusted_rpc(enclave, rpc_config, *self._rpc_extra)
        except ValueError as e:  # DuplicateMethodError: two registries define one name
            raise WorkerStartupError(f"trusted RPC methods: {e}") from None
        self.metrics.set_rpc_methods(dispatcher.method_names())
        server = TrustedRpcServer(
            dispatcher,
            config.trusted_host,
            config.trusted_port,
            enclave.tls_server_context(),
            observer=self.metrics.rpc_request,
        )
        try:
            await server.start()
        except ServerError as e:
            raise WorkerStartupError(f"trusted RPC: {e}") from None
        self._rpc = server
        self._announce("trusted-rpc", server.url)

    def _host_health(self) -> dict[str, Any]:
        """What the host adds to system_health (thread-safe: reads the snapshot)."""
        status = self._health
        return {
            "registered": status.registered,
            "initialized": status.initialized,
            "finalizedHead": status.finalized_head,
            "lag": status.lag,
        }

    async def _sync_chain_info(
        self, client: ParentchainClient, at: BlockHash | None
    ) -> RuntimeMetadata:
        """Hand the enclave the chain's metadata, genesis and runtime versions (at `at`)."""
        params: list[Any] = [] if at is None else ["0x" + bytes(at).hex()]
        raw_hex = await client.call("state_getMetadata", params)
        try:
            raw = bytes.fromhex(str(raw_hex).removeprefix("0x"))
            md = await asyncio.to_thread(RuntimeMetadata.from_bytes, raw)
        except (ValueError, PrimitivesError) as e:
            raise WorkerStartupError(f"the node's metadata does not decode: {e}") from None
        for pallet in (TEEREX, ENCLAVE_BRIDGE):
            if not md.has_pallet(pallet):
                raise WorkerStartupError(
                    f"the parentchain at {self.config.node_url} has no {pallet} pallet: a worker "
                    "needs a chain with Integritee's Teerex and EnclaveBridge pallets"
                )
        version = await client.runtime_version(at)
        genesis = await client.genesis_hash()
        info = ParentchainInfo(raw, genesis, version.spec_version, version.transaction_version)
        try:
            await asyncio.to_thread(self.enclave.set_parentchain_info, info)
        except EnclaveError as e:
            raise WorkerStartupError(f"the enclave refused the chain's info: {e}") from None
        logger.info(
            "parentchain %s spec_version=%d genesis=0x%s",
            version.spec_name,
            version.spec_version,
            bytes(genesis).hex(),
        )
        return md

    async def _check_chain(self, client: ParentchainClient) -> None:
        """Start the light client at genesis, or check the node serves the chain we follow."""
        enclave = self.enclave
        genesis = await client.genesis_hash()
        genesis_header = await client.header(genesis)
        authorities = None
        raw = await client.storage(GRANDPA_AUTHORITIES_KEY, genesis)
        if raw is not None:
            try:
                authorities = authorities_from_storage(raw)
            except PrimitivesError as e:
                raise WorkerStartupError(f"the chain's GRANDPA authorities: {e}") from None
        try:
            number, head = await asyncio.to_thread(
                enclave.init_parentchain, genesis_header, authorities, 0, genesis
            )
        except EnclaveError as e:
            raise WorkerStartupError(
                f"this data dir follows another parentchain: {e}. Use another --data-dir, or "
                "--clean-reset to start over (losing this worker's keys and state)"
            ) from None
        if number == 0:
            return
        try:
            theirs = await client.block_hash(number)
        except UnknownBlockError:
            theirs = None
        if theirs is None:
            finalized = (await client.finalized_header()).number
            raise WorkerStartupError(
                f"the enclave imported block #{number} 0x{bytes(head).hex()}, but the node at "
                f"{self.config.node_url} is only at finalized #{finalized}: it is another chain "
                "with the same genesis (or still syncing); nothing was imported"
            )
        if bytes(theirs) != bytes(head):
            raise WorkerStartupError(
                f"the enclave imported block #{number} 0x{bytes(head).hex()}, but the node's "
                f"block #{number} is 0x{bytes(theirs).hex()}: another chain or a fork; "
                "refusing to import anything from it"
            )

    def _inspect(self, extrinsic: bytes) -> tuple[int, str]:
        """(nonce, log label) of an enclave-signed extrinsic, decoded with the chain's metadata."""
        assert self._adapter is not None
        try:
            xt = decode_extrinsic(self._adapter.metadata, extrinsic)
        except PrimitivesError as e:
            raise WorkerError(f"the enclave signed an extrinsic the host cannot decode: {e}") from e
        if xt.nonce is None:
            raise WorkerError("the enclave signed an extrinsic without a nonce")
        return xt.nonce, _describe_call(xt.call.pallet, xt.call.name, xt.call.args)

    async def _dev_fund(self, client: ParentchainClient, signer: AccountId) -> None:
        assert self._adapter is not None
        info = await self._adapter.account_info(signer, finalized=False)
        data = info.get("data", {})
        free = int(data.get("free", 0)) if isinstance(data, dict) else 0
        if free >= DEV_MINIMUM:
            return
        md = self._adapter.metadata
        name = next(
            (
                n
                for n in ("transfer_keep_alive", "transfer_allow_death", "transfer")
                if md.has_call("Balances", n)
            ),
            None,
        )
        if name is None:
            raise WorkerStartupError("--dev: the chain's Balances pallet has no transfer call")
        funder = Keypair.from_uri(DEV_FUNDER_URI)
        dest = bytes(signer)
        call = md.encode_call("Balances", name, {"dest": Variant("Id", dest), "value": DEV_FUNDING})
        logger.info(
            "--dev: funding the enclave account from %s with %d", DEV_FUNDER_URI, DEV_FUNDING
        )
        xt = await client.sign(call, funder)
        await self._submit_and_check(client, xt, f"--dev funding (Balances.{name})")

    async def _submit_and_check(self, client: ParentchainClient, xt: bytes, what: str) -> None:
        """Submit, wait until in a block, and check the extrinsic succeeded there."""
        try:
            async with await client.submit_and_watch(xt) as watch:
                status = await watch.wait_for("inBlock", INCLUSION_TIMEOUT)
        except ExtrinsicRejectedError as e:
            raise WorkerStartupError(f"{what}: the node refused it: {e}") from None
        except ParentchainError as e:
            raise WorkerStartupError(f"{what}: {e}") from None
        assert status.block_hash is not None
        block = await client.block(status.block_hash)
        wanted = extrinsic_hash(xt)
        index = next(
            (i for i, x in enumerate(block.block.extrinsics) if extrinsic_hash(x) == wanted), None
        )
        if index is None:
            raise WorkerStartupError(f"{what}: not found in block 0x{status.block_hash.hex()}")
        md = self._adapter.metadata if self._adapter is not None else await client.metadata()
        events = decode_events(md, await client.events_raw(status.block_hash))
        if succeeded_in(events, index) is False:
            reason = describe_dispatch_error(md, dispatch_error(events, index))
            raise WorkerStartupError(f"{what} failed on chain: {reason}")
        logger.info("%s included in block 0x%s", what, status.block_hash.hex())

    # -- registration ----------------------------------------------------------------------------

    async def _registration(self, client: ParentchainClient) -> Registration | None:
        assert self._adapter is not None
        md = self._adapter.metadata
        key = md.storage_key(TEEREX, "SovereignEnclaves", bytes(self.enclave.signer_account()))
        raw = await client.storage(key, await client.finalized_head())
        value = md.decode_storage(TEEREX, "SovereignEnclaves", raw)
        if isinstance(value, Variant):
            value = value.value
        if not isinstance(value, dict):
            return None
        url = value.get("url")
        return Registration(
            bytes(value.get("mr_enclave", b"")),
            int(value.get("timestamp", 0)),
            url.decode("utf-8", "replace") if isinstance(url, bytes) else None,
        )

    async def _chain_now(self, client: ParentchainClient) -> int:
        assert self._adapter is not None
        md = self._adapter.metadata
        raw = await client.storage(
            md.storage_key("Timestamp", "Now"), await client.finalized_head()
        )
        return int(md.decode_storage("Timestamp", "Now", raw) or 0)

    def _renewal_period_ms(self) -> int | None:
        assert self._adapter is not None
        md = self._adapter.metadata
        try:
            return int(md.constant(TEEREX, "MaxAttestationRenewalPeriod"))
        except (PrimitivesError, TypeError, ValueError):
            return None

    async def _needs_registration(self, client: ParentchainClient) -> str | None:
        """Why the enclave must (re-)register now, or None."""
        current = await self._registration(client)
        if current is None:
            return "not registered"
        if current.mrenclave != bytes(self.enclave.mrenclave()):
            return "registered with another MRENCLAVE"
        if current.url != self._worker_url():
            return f"registered with URL {current.url!r}"
        period = self._renewal_period_ms()
        if period is not None:
            age = await self._chain_now(client) - current.timestamp
            if age >= period * RENEW_AT_FRACTION:
                return f"registration is {age // 1000} s old (renewal period {period // 1000} s)"
        return None

    def _worker_url(self) -> str:
        port = self.config.trusted_port if self._rpc is None else self._rpc.port
        return self.config.worker_url(port)

    async def _register(self, client: ParentchainClient, *, startup: bool) -> None:
        reason = await self._needs_registration(client)
        if reason is None:
            if not self.registered:
                logger.info("enclave registration on chain is current")
            self.registered = True
            self._update_health(registered=True)
            return
        url = self._worker_url()
        logger.info("registering the enclave (%s) url=%s", reason, url)
        try:
            xt = await asyncio.to_thread(self.enclave.register_enclave_extrinsic, url)
        except EnclaveError as e:
            raise WorkerStartupError(f"the enclave cannot register: {e}") from None
        if startup:
            await self._submit_and_check(client, xt, "Teerex.register_sgx_enclave")
        else:
            assert self._submitter is not None
            await asyncio.to_thread(self._submitter.enqueue, [xt])
        self.registered = True
        self._update_health(registered=True)

    async def _renewal_loop(self) -> None:
        period = self._renewal_period_ms()
        if period is None:
            logger.info("the chain's Teerex has no MaxAttestationRenewalPeriod: no renewals")
            await self._stop.wait()
            return
        interval = min(RENEWAL_CHECK_MAX, max(self._block_time, period / 1000 / 20))
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), interval)
            if self._stop.is_set():
                return
            try:
                assert self._chain is not None
                await self._register(await self._chain.client(), startup=False)
            except (ParentchainError, WorkerError) as e:
                logger.warning("registration check failed (retrying later): %s", e)

    # -- shard -----------------------------------------------------------------------------------

    async def _check_shard(self, client: ParentchainClient) -> ShardAction:
        """Resume our shard, create a new one, or join one that exists on chain but not here.
        Runs before funding and registration, so a worker that cannot serve never pays fees or
        registers."""
        enclave = self.enclave
        shard = self.shard
        if shard in enclave.shards():
            logger.info("serving shard=0x%s", bytes(shard).hex())
            return ShardAction.RESUME
        on_chain = await self._shard_on_chain(client)
        if not on_chain:
            on_chain = await self._wait_for_pending_creation(client)
        if on_chain:
            if enclave.has_shielding_key() and self._join_record() is None:
                raise WorkerStartupError(
                    f"shard 0x{bytes(shard).hex()} exists on chain ({', '.join(on_chain)}) and "
                    "this worker would join it, but its enclave already holds a shielding key "
                    "of its own (made by an earlier start or a print command on this data "
                    "dir), not the shard's: a shard has one key, provisioned by its workers. "
                    "Join with a fresh --data-dir (or --clean-reset, which also replaces the "
                    "enclave account)"
                )
            logger.info(
                "shard 0x%s exists on chain (%s): joining it",
                bytes(shard).hex(),
                ", ".join(on_chain),
            )
            return ShardAction.JOIN
        if bytes(shard) != bytes(enclave.mrenclave()) and not hasattr(
            enclave, "shard_config_extrinsic"
        ):
            raise WorkerStartupError(
                f"shard 0x{bytes(shard).hex()} is not this enclave's MRENCLAVE: serving it "
                "needs EnclaveBridge.update_shard_config signed by the enclave, which this "
                "enclave build cannot sign; serve the default shard (omit --shard)"
            )
        return ShardAction.CREATE

    async def _create_shard(self, client: ParentchainClient) -> None:
        """Initialise the new shard from the finalized head on (after registration: a custom
        shard's on-chain config must be signed by a registered enclave)."""
        enclave = self.enclave
        shard = self.shard
        if bytes(shard) != bytes(enclave.mrenclave()):
            make = getattr(enclave, "shard_config_extrinsic", None)
            assert make is not None  # _check_shard refused otherwise
            xt = await asyncio.to_thread(make, shard)
            await self._submit_and_check(client, xt, "EnclaveBridge.update_shard_config")
        creation = (await client.finalized_header()).number
        try:
            await asyncio.to_thread(enclave.init_shard, shard, creation)
        except EnclaveError as e:
            raise WorkerStartupError(
                f"cannot initialise shard 0x{bytes(shard).hex()}: {e}"
            ) from None
        logger.info("created shard=0x%s creation_block=#%d", bytes(shard).hex(), creation)

    async def _shard_on_chain(self, client: ParentchainClient) -> list[str]:
        """The EnclaveBridge maps that hold the shard at the finalized head."""
        assert self._adapter is not None
        md = self._adapter.metadata
        head = await client.finalized_head()
        on_chain = []
        for item in ("ShardConfigRegistry", "ShardStatus"):
            try:
                key = md.storage_key(ENCLAVE_BRIDGE, item, bytes(self.shard))
            except PrimitivesError:
                continue  # an older EnclaveBridge without this map
            if await client.storage(key, head) is not None:
                on_chain.append(item)
        return on_chain

    async def _wait_for_pending_creation(self, client: ParentchainClient) -> list[str]:
        """No shard on chain: if another enclave of this code is registered, it may be creating
        the shard right now (it shows on chain only with its first confirmation); give it
        CREATION_GRACE before creating the shard here, with a second key."""
        assert self._adapter is not None
        md = self._adapter.metadata
        others = await same_code_enclaves(
            client,
            md,
            bytes(self.enclave.mrenclave()),
            await client.finalized_head(),
            exclude=self.enclave.signer_account(),
        )
        if not others:
            return []
        grace = min(CREATION_GRACE_MAX, max(CREATION_GRACE_MIN, 10 * self._block_time))
        logger.warning(
            "shard 0x%s is not on chain, but %d other enclave(s) of this code are registered: "
            "waiting up to %.0f s in case one of them is creating it",
            bytes(self.shard).hex(),
            len(others),
            grace,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while loop.time() < deadline:
            await asyncio.sleep(max(0.2, self._block_time / 2))
            on_chain = await self._shard_on_chain(client)
            if on_chain:
                return on_chain
        return []

    def _join_record_path(self) -> Path:
        return self.config.data_dir / JOIN_FILE

    def _join_record(self) -> JoinRecord | None:
        """This data dir's join record for the configured shard, if it joined it."""
        record = load_join_record(self._join_record_path())
        if record is None or bytes(record.shard) != bytes(self.shard):
            return None
        return record

    def _join_retry(self) -> float:
        return min(JOIN_RETRY_MAX, max(JOIN_RETRY_MIN, 2 * self._block_time))

    async def _find_creation_block(self) -> BlockNumber:
        """The shard's creation block from the chain's history (joining.py), before any fee."""
        assert self._chain is not None and self._adapter is not None
        chain, adapter = self._chain, self._adapter

        async def find() -> BlockNumber | None:
            return await find_creation_block(await chain.client(), adapter.metadata, self.shard)

        creation = await wait_for_creation_block(
            find, timeout=JOIN_TIMEOUT, interval=self._join_retry()
        )
        logger.info("shard=0x%s creation_block=#%d", bytes(self.shard).hex(), creation)
        return creation

    async def _wait_registration_final(self, client: ParentchainClient) -> None:
        """Until the finalized head holds our current registration: givers check it there."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + JOIN_TIMEOUT
        while await self._needs_registration(client) is not None:
            if loop.time() > deadline:
                raise WorkerStartupError(
                    f"the enclave's registration was not finalized within {JOIN_TIMEOUT:.0f} s"
                )
            await asyncio.sleep(max(0.2, self._block_time / 2))

    async def _join_shard(self, client: ParentchainClient, creation: BlockNumber | None) -> None:
        """Get the shard's shielding key from its workers, then serve it from its creation block.

        The enclave executes every block from the creation block on but confirms only those
        finalized after it got the key (JoinRecord.confirm_from; docs/multi-worker.md
        "Confirmations"): the shard's other workers confirmed the older ones already.
        """
        enclave = self.enclave
        shard = self.shard
        record = self._join_record()
        if not enclave.has_shielding_key():
            assert creation is not None and self._chain is not None and self._adapter is not None
            chain, adapter = self._chain, self._adapter
            await self._wait_registration_final(client)
            signer = enclave.signer_account()
            path = self._join_record_path()
            # Written before asking, so that a key that arrives just before a crash is known on
            # restart as the shard's (a data dir with a key and no record made its own key).
            head = BlockNumber((await client.finalized_header()).number + 1)
            await asyncio.to_thread(save_join_record, path, JoinRecord(shard, creation, head))

            async def discover() -> list[GiverEndpoint]:
                return await discover_givers(
                    await chain.client(), adapter.metadata, shard, exclude=signer
                )

            giver = await provision_with_retry(
                enclave,
                shard,
                discover,
                NodeChainCheck(chain.client),
                timeout=JOIN_TIMEOUT,
                interval=self._join_retry(),
            )
            live = BlockNumber((await client.finalized_header()).number + 1)
            record = JoinRecord(shard, creation, live)
            await asyncio.to_thread(save_join_record, path, record)
            self._announce("provisioned-from", str(giver))
        assert record is not None  # _check_shard: an enclave with a key joins only with one
        try:
            await asyncio.to_thread(enclave.init_shard, shard, record.creation_block)
            await asyncio.to_thread(enclave.set_confirmations_from, shard, record.confirm_from)
        except EnclaveError as e:
            raise WorkerStartupError(f"cannot join shard 0x{bytes(shard).hex()}: {e}") from None
        logger.info(
            "joined shard=0x%s creation_block=#%d: replaying; confirming from #%d on",
            bytes(shard).hex(),
            record.creation_block,
            record.confirm_from,
        )

    def _resume_join_policy(self) -> None:
        """A joiner restarted: the confirmation start it chose when it joined still holds."""
        record = self._join_record()
        if record is not None:
            self.enclave.set_confirmations_from(self.shard, record.confirm_from)

    # -- follower callbacks ----------------------------------------------------------------------

    def _on_imported(self, block: ImportedBlock) -> None:
        self.metrics.block_imported(block.number)
        self._update_health(last_imported_block=block.number, last_imported_hash=bytes(block.hash))
        for _shard, report in block.reports:  # the enclave logged each one already
            if report.executed:
                self.metrics.indirect_call_executed()
            else:
                self.metrics.indirect_call_failed(failure_reason(report.error))
        if block.extrinsics:
            logger.info(
                "block #%d 0x%s: %d extrinsic(s) signed",
                block.number,
                bytes(block.hash).hex(),
                len(block.extrinsics),
            )

    def _on_head(self, number: BlockNumber) -> None:
        self.metrics.finalized_head(number)
        self._update_health(finalized_head=number)
        if self._submitter is not None:
            self._submitter.wake(new_head=True)

    def _on_progress(self, progress: SyncProgress) -> None:
        self.metrics.sync_progress(progress.blocks_per_second, progress.remaining)
        synced = progress.imported is not None and progress.remaining == 0
        self._update_health(synced=synced)
        if synced and not self._synced_once:
            self._synced_once = True
            logger.info("in sync with the finalized head #%d", progress.imported)
            self._announce("initialized", str(progress.imported))

    def _on_submission(self, call: str, accepted: bool) -> None:
        if accepted:
            self.metrics.extrinsic_submitted(call)
        else:
            self.metrics.extrinsic_submission_failed(call)

    async def _balance_loop(self) -> None:
        """Keep tocw_enclave_account_balance current (every ~10 blocks, at most every 60 s)."""
        interval = min(60.0, max(1.0, 10 * self._block_time))
        while not self._stop.is_set():
            try:
                assert self._adapter is not None
                info = await self._adapter.account_info(
                    self.enclave.signer_account(), finalized=True
                )
                data = info.get("data")
                free = int(data.get("free", 0)) if isinstance(data, dict) else 0
                self.metrics.set_enclave_balance(free)
                if self.config.dev and free < DEV_MINIMUM and self._chain is not None:
                    await self._dev_fund(await self._chain.client(), self.enclave.signer_account())
            except (ParentchainError, PrimitivesError, WorkerStartupError) as e:
                logger.warning("enclave balance check failed: %s", e)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), interval)

    async def _on_runtime_upgrade(self, block_hash: BlockHash) -> None:
        assert self._chain is not None and self._adapter is not None
        client = await self._chain.client()
        md = await self._sync_chain_info(client, block_hash)
        self._adapter.set_metadata(md)

    # -- shutdown --------------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        self._stop.set()
        if self._follower is not None:
            self._follower.stop()
        follower_task = next((t for t in self._tasks if t.get_name() == "follower"), None)
        if follower_task is not None:
            with contextlib.suppress(BaseException):
                await follower_task
        if self._submitter is not None and self._outbox is not None:
            with contextlib.suppress(Exception):
                if not await self._submitter.settled(SHUTDOWN_FLUSH):
                    logger.warning(
                        "%d extrinsic(s) not yet handed to the node; they stay in the outbox",
                        self._submitter.unsent,
                    )
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks.clear()
        if self._rpc is not None:
            with contextlib.suppress(Exception):
                await self._rpc.stop()
            self._rpc = None
        if self._provisioning is not None:
            with contextlib.suppress(Exception):
                await self._provisioning.close()
            self._provisioning = None
        for server in self._http:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(server.stop)
        self._http.clear()
        if self._chain is not None:
            with contextlib.suppress(Exception):
                await self._chain.close()
            self._chain = None
        if self._ocall is not None:
            self._ocall.sink = None
        if self._enclave is not None:
            await asyncio.to_thread(self._enclave.close)
            self._enclave = None
        if self._outbox is not None:
            self._outbox.close()
            self._outbox = None


async def _measure_block_time(client: ParentchainClient, md: RuntimeMetadata) -> float:
    """Seconds per block, for the head watchdog.

    Measured from Timestamp.Now over the last (up to) 10 finalized blocks, but never below
    2 x Timestamp.MinimumPeriod (Aura's slot duration); a chain too young to measure gets that
    slot, or DEFAULT_BLOCK_TIME. Measuring matters: dev chains often declare a MinimumPeriod of
    1 ms whatever their real block time.
    """
    try:
        slot = 2 * int(md.constant("Timestamp", "MinimumPeriod")) / 1000
    except (PrimitivesError, TypeError, ValueError):
        slot = 0.0
    try:
        key = md.storage_key("Timestamp", "Now")
        head = await client.finalized_header()
        span = min(int(head.number) - 1, 10)  # block 0 has no timestamp
        if span < 1:
            return max(slot, DEFAULT_BLOCK_TIME) if slot == 0 else slot
        start_hash = await client.block_hash(int(head.number) - span)
        now = md.decode_storage("Timestamp", "Now", await client.storage(key, head.hash()))
        then = md.decode_storage("Timestamp", "Now", await client.storage(key, start_hash))
        measured = (int(now) - int(then)) / span / 1000
    except (ParentchainError, PrimitivesError, TypeError, ValueError) as e:
        logger.warning("cannot measure the block time (%s); assuming %.1f s", e, DEFAULT_BLOCK_TIME)
        return max(slot, DEFAULT_BLOCK_TIME)
    if measured <= 0:
        return max(slot, DEFAULT_BLOCK_TIME)
    return max(slot, measured, MIN_BLOCK_TIME)


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _describe_call(pallet: str, name: str, args: dict[str, Any]) -> str:
    """A short log label: the call and its small arguments (hashes shortened)."""
    parts = []
    for key, value in args.items():
        if isinstance(value, bytes):
            text = "0x" + value.hex()
            parts.append(f"{key}={text[:18]}" + ("…" if len(text) > 18 else ""))
        elif isinstance(value, int | str | bool):
            parts.append(f"{key}={value}")
    return f"{pallet}.{name}(" + " ".join(parts) + ")"


async def run_worker(config: WorkerConfig, announce: Announce | None = None) -> int:
    """Run a worker until SIGTERM/SIGINT; the process exit code."""
    worker = Worker(config, announce=announce)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, worker.stop)
    try:
        async with worker:
            await worker.serve_forever()
    except WorkerStoppedError:
        logger.info("stopped during startup")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    logger.info("worker stopped")
    return 0
