"""The dev chain node: the chain itself (`Chain`) and the service around it (`DevNode`).

`Chain` is synchronous and does no I/O besides its store: it validates submissions with the
runtime, builds blocks from the pool (the runtime executes them; the node computes the state
and extrinsics roots and the header), commits each block in one store transaction, finalizes
blocks with the GRANDPA voter, and tells its listeners (the RPC subscription hub) what
happened. Tests and the benchmark drive it directly.

`DevNode` is the service: an async context manager that opens the store under the base path,
starts the RPC server, authors a block every `block_time` seconds (or, with block time 0, as
soon as the pool has a ready transaction: instant seal), finalizes each block `finality_delay`
seconds after it was imported, and shuts all of it down on exit. The node, not the runtime,
reads the clock: the timestamp inherent is the wall clock in ms, strictly increasing.

    async with DevNode(NodeConfig(base_path=None, ws_port=0)) as node:
        print(node.url)
        await node.serve_forever()
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Final, Protocol

from tocw.chain.errors import ChainError, InvalidTransactionError
from tocw.chain.finality import GrandpaVoter
from tocw.chain.pool import StatusChange, TransactionPool
from tocw.chain.rpc_methods import NodeInfo, RpcApi, SubscriptionHub
from tocw.chain.runtime import ChainContext, Runtime, RuntimeConfig, ValidTransaction
from tocw.chain.server import RpcServer
from tocw.chain.storage import (
    DEFAULT_STATE_WINDOW,
    ChainStore,
    OverlayView,
    StateSnapshot,
    StoredBlock,
    effective_changes,
    with_changes,
)
from tocw.primitives.grandpa import GRANDPA_AUTHORITIES_KEY
from tocw.primitives.hashing import blake2_256
from tocw.primitives.header import Header, extrinsics_root
from tocw.primitives.scale import U32, U128, Compact, Reader
from tocw.primitives.trie import trie_root
from tocw.primitives.types import BlockHash, BlockNumber

log = logging.getLogger(__name__)

CHAIN_NAME: Final = "Development"
DB_FILE: Final = "chain.sqlite3"
LOCK_FILE: Final = "LOCK"
# Block limits of the builder (the runtime enforces its own weight limits on top).
MAX_BLOCK_EXTRINSICS: Final = 4096
MAX_BLOCK_BYTES: Final = 5 * 1024 * 1024
_DISPATCH_CLASSES: Final = ("normal", "operational", "mandatory")
# Even with --finality-delay 0 a block's "finalized" leaves a little after its "inBlock":
# @polkadot/api drops the InBlock status when both arrive in the same tick.
MIN_FINALITY_GAP: Final = 0.005


class NodeError(ChainError):
    """The node cannot start or continue (bad configuration, a different chain on disk)."""


@dataclass(frozen=True, slots=True)
class ImportedBlock:
    """A block just added to the chain, with what it changed (for subscriptions and logs)."""

    block: StoredBlock
    changes: Mapping[bytes, bytes | None]  # effective storage changes
    included: tuple[bytes, ...]  # hashes of the extrinsics it includes (inherents included)
    dropped: tuple[tuple[bytes, str], ...]  # (extrinsic hash, reason) refused while building
    events: tuple[Any, ...] = ()


class ChainListener(Protocol):
    """Who hears what the chain does: the RPC subscription hub and the authoring service."""

    def block_imported(self, block: ImportedBlock) -> None: ...
    def block_finalized(self, block: StoredBlock) -> None: ...
    def tx_status(self, changes: Iterable[StatusChange]) -> None: ...
    def transaction_pooled(self, tx_hash: bytes) -> None: ...


class Chain:
    """The dev chain's blocks, state, pool and finality, driven synchronously."""

    def __init__(
        self,
        runtime: Runtime,
        store: ChainStore,
        *,
        voter: GrandpaVoter | None = None,
        pool: TransactionPool | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.runtime = runtime
        self.store = store
        self.voter = voter or GrandpaVoter.dev()
        self.pool = pool or TransactionPool()
        self.listeners: list[ChainListener] = []
        self._monotonic = monotonic
        self.state_version = runtime.version.state_version

    # ---- lifecycle ----------------------------------------------------------------------

    def open(self) -> None:
        """Create the genesis block in an empty store, or continue the stored chain."""
        genesis_state = dict(self.runtime.genesis_storage())
        genesis = self.genesis_block(genesis_state)
        if self.store.is_empty():
            self.store.initialize(genesis, genesis_state)
        else:
            self.store.load()
            if self.store.genesis_hash != genesis.hash:
                stored = self.store.genesis_hash.hex()
                raise NodeError(
                    f"the database holds a different chain (genesis 0x{stored}, this runtime's "
                    f"is 0x{genesis.hash.hex()}); use a new --base-path"
                )
        self.voter.check_authority(self.state().get(GRANDPA_AUTHORITIES_KEY))

    def genesis_block(self, genesis_state: Mapping[bytes, bytes]) -> StoredBlock:
        header = Header(
            parent_hash=BlockHash(bytes(32)),
            number=BlockNumber(0),
            state_root=trie_root(genesis_state, self.state_version),
            extrinsics_root=extrinsics_root([]),
        )
        return StoredBlock(header.hash(), 0, header, ())

    # ---- reads --------------------------------------------------------------------------

    @property
    def genesis_hash(self) -> bytes:
        return self.store.genesis_hash

    @property
    def best(self) -> StoredBlock:
        return self.store.best

    @property
    def best_hash(self) -> bytes:
        return self.store.best.hash

    @property
    def best_number(self) -> int:
        return self.store.best.number

    @property
    def finalized_hash(self) -> bytes:
        return self.store.finalized.hash

    @property
    def finalized_number(self) -> int:
        return self.store.finalized.number

    def block_hash(self, number: int) -> bytes | None:
        return self.store.block_hash(number)

    def block(self, block_hash: bytes) -> StoredBlock | None:
        return self.store.block(block_hash)

    def state(self, at: bytes | None = None) -> StateSnapshot:
        """The state of block `at` (default: best); raises UnknownBlockError or
        StateDiscardedError with Substrate's wording."""
        return self.store.state(self.best_hash if at is None else at)

    def context(self) -> ChainContext:
        best = self.store.best
        return ChainContext(
            genesis_hash=self.store.genesis_hash,
            best_number=best.number,
            best_hash=best.hash,
            block_hash=self.store.block_hash,
        )

    def call(self, method: str, data: bytes, at: bytes | None = None) -> bytes:
        """state_call: a runtime API function over the state of `at`. Writes are discarded."""
        view = OverlayView(self.state(at).trie)
        return self.runtime.call_api(view, method, data, self.context())

    def account_next_index(self, account_id: bytes) -> int:
        """The nonce for the account's next transaction: the state's nonce, advanced past the
        consecutive nonces the pool already holds for it (Substrate's system_accountNextIndex)."""
        view = OverlayView(self.state().trie)
        nonce = self.runtime.account_nonce(view, account_id)
        pooled = {
            tx.validity.nonce for tx in self.pool.transactions() if tx.validity.sender == account_id
        }
        while nonce in pooled:
            nonce += 1
        return nonce

    def query_info(self, extrinsic: bytes, at: bytes | None = None) -> dict[str, Any]:
        """payment_queryInfo through TransactionPaymentApi_query_info, as Substrate's RPC."""
        raw = self.call(
            "TransactionPaymentApi_query_info", extrinsic + U32.encode(len(extrinsic)), at
        )
        r = Reader(raw)
        ref_time = Compact.read(r)
        proof_size = Compact.read(r)
        dispatch_class = r.read_byte()
        fee = U128.read(r)
        return {
            "weight": {"ref_time": ref_time, "proof_size": proof_size},
            "class": _DISPATCH_CLASSES[dispatch_class]
            if dispatch_class < len(_DISPATCH_CLASSES)
            else str(dispatch_class),
            "partialFee": str(fee),
        }

    # ---- transactions -------------------------------------------------------------------

    def submit(self, extrinsic: bytes) -> tuple[bytes, StatusChange]:
        """Validate against the best state and pool it. Returns its hash and its own status
        ("ready" or "future"); listeners hear of the transactions it usurped or promoted.
        Raises InvalidTransactionError or a PoolError."""
        tx_hash = blake2_256(extrinsic)
        now = self._monotonic()
        self.pool.check_known(tx_hash, now)
        validity = self._validate(extrinsic)
        _tx, changes = self.pool.import_transaction(extrinsic, validity, now)
        for listener in self.listeners:
            if len(changes) > 1:
                listener.tx_status(changes[1:])
            listener.transaction_pooled(tx_hash)
        return tx_hash, changes[0]

    def _validate(self, extrinsic: bytes) -> ValidTransaction:
        view = OverlayView(self.state().trie)
        return self.runtime.validate_transaction(view, extrinsic, self.context())

    # ---- blocks -------------------------------------------------------------------------

    def produce_block(self, timestamp_ms: int) -> ImportedBlock:
        """Build, execute and import the next block from the ready pool."""
        parent = self.store.best
        parent_trie = self.store.trie(parent.hash)
        candidates = self.pool.ready_in_order(MAX_BLOCK_EXTRINSICS, MAX_BLOCK_BYTES)
        overlay = OverlayView(parent_trie)
        number = parent.number + 1
        result = self.runtime.apply_block(
            overlay,
            number,
            parent.hash,
            timestamp_ms,
            [tx.data for tx in candidates],
            self.context(),
        )
        changes = effective_changes(parent_trie, overlay.changes)
        state = with_changes(parent_trie, changes)
        extrinsics = tuple(result.extrinsics)
        header = Header(
            parent_hash=BlockHash(parent.hash),
            number=BlockNumber(number),
            state_root=state.root(),
            extrinsics_root=extrinsics_root(extrinsics),
        )
        block = StoredBlock(header.hash(), number, header, extrinsics)
        self.store.commit_block(block, state, changes)
        included = tuple(blake2_256(x) for x in extrinsics)
        dropped = tuple((blake2_256(x), reason) for x, reason in result.dropped)
        now = self._monotonic()
        self.pool.remove_included(included, now)
        statuses = self.pool.remove_invalid([h for h, _ in dropped], now)
        statuses += self.pool.revalidate(self._revalidate_one, now)
        imported = ImportedBlock(block, changes, included, dropped, tuple(result.events))
        for listener in self.listeners:
            listener.block_imported(imported)
        if statuses:
            for listener in self.listeners:
                listener.tx_status(statuses)
        return imported

    def _revalidate_one(self, extrinsic: bytes) -> ValidTransaction | str | None:
        try:
            return self._validate(extrinsic)
        except InvalidTransactionError as e:
            # "Future" / "ExhaustsResources" may pass later: keep it as it was.
            return None if e.may_become_valid else str(e)

    def finalize_next(self) -> StoredBlock | None:
        """Finalize the child of the finalized block, if there is one."""
        finalized = self.store.finalized
        if finalized.number >= self.best_number:
            return None
        block_hash = self.store.block_hash(finalized.number + 1)
        if block_hash is None:  # pragma: no cover - the store is linear
            raise NodeError(f"block #{finalized.number + 1} is missing")
        return self.finalize(block_hash)

    def finalize(self, block_hash: bytes) -> StoredBlock:
        """Finalize one block (the finalized block's child) with a signed justification."""
        block = self.store.block(block_hash)
        if block is None:
            raise NodeError(f"cannot finalize unknown block 0x{block_hash.hex()}")
        justification = self.voter.justify(block.hash, block.number)
        finalized = self.store.finalize(block.hash, justification)
        for listener in self.listeners:
            listener.block_finalized(finalized)
        return finalized


# ---- the service ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """`tocw chain --dev` options. `base_path=None` runs in a temporary directory that is
    deleted on exit (--tmp)."""

    base_path: Path | None = None
    ws_host: str = "127.0.0.1"
    ws_port: int = 9944
    block_time: float = 6.0
    finality_delay: float = 0.3
    state_window: int = DEFAULT_STATE_WINDOW
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def __post_init__(self) -> None:
        if not self.block_time >= 0:
            raise ValueError("block time must be >= 0 seconds (0 = instant seal)")
        if not self.finality_delay >= 0:
            raise ValueError("finality delay must be >= 0 seconds")
        if not 0 <= self.ws_port <= 65535:
            raise ValueError(f"invalid port {self.ws_port}")


class DevNode:
    """The dev chain service: store, chain, RPC server, block authoring and finality."""

    def __init__(self, config: NodeConfig, *, wall_clock: Callable[[], float] = time.time):
        self.config = config
        self._wall_clock = wall_clock
        self._tmpdir: str | None = None
        self._lock: BinaryIO | None = None
        self.chain: Chain | None = None
        self.server: RpcServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._pool_changed = asyncio.Event()
        self._stopped = asyncio.Event()
        self._to_finalize: deque[tuple[float, bytes]] = deque()
        self._finality_wakeup = asyncio.Event()

    # -- lifecycle --

    async def __aenter__(self) -> DevNode:
        try:
            self._start()
            assert self.server is not None
            await self.server.start()
        except BaseException:
            await self._shutdown()
            raise
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._author(), name="tocw-chain-author"),
            loop.create_task(self._finalizer(), name="tocw-chain-finality"),
        ]
        log.info(
            "dev chain %s at %s, best #%d 0x%s",
            CHAIN_NAME,
            self.url,
            self.require_chain().best_number,
            self.require_chain().best_hash.hex(),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._shutdown()

    def _start(self) -> None:
        config = self.config
        if config.base_path is None:
            self._tmpdir = tempfile.mkdtemp(prefix="tocw-chain-")
            base = Path(self._tmpdir)
        else:
            base = config.base_path
            base.mkdir(parents=True, exist_ok=True)
        self._lock_base_path(base)
        runtime = Runtime(config.runtime)
        store = ChainStore(
            base / DB_FILE,
            state_version=runtime.version.state_version,
            state_window=config.state_window,
        )
        chain = Chain(runtime, store)
        try:
            chain.open()
        except BaseException:
            store.close()
            raise
        self.chain = chain
        hub = SubscriptionHub()
        chain.listeners.append(hub)
        chain.listeners.append(_AuthorTrigger(self))
        api = RpcApi(chain, NodeInfo(chain_name=CHAIN_NAME), hub)
        self.server = RpcServer(api, config.ws_host, config.ws_port)
        # Blocks imported before a restart but never finalized are finalized now.
        now = asyncio.get_running_loop().time()
        for number in range(chain.finalized_number + 1, chain.best_number + 1):
            block_hash = chain.block_hash(number)
            if block_hash is not None:
                self._to_finalize.append((now + config.finality_delay, block_hash))

    def _lock_base_path(self, base: Path) -> None:
        """One node per base path: two writers would fork one database into nonsense."""
        lock = open(base / LOCK_FILE, "a+b")  # noqa: SIM115 - held until shutdown
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise NodeError(f"another node is running on the base path {base}") from None
        self._lock = lock

    async def _shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self.server is not None:
            await self.server.close()
            self.server = None
        if self.chain is not None:
            self.chain.store.close()
            self.chain = None
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
        self._stopped.set()

    def stop(self) -> None:
        """Ask serve_forever to return (signal handlers call this)."""
        self._stopped.set()

    async def serve_forever(self) -> None:
        await self._stopped.wait()

    # -- facts --

    def require_chain(self) -> Chain:
        if self.chain is None:
            raise NodeError("the node is not running")
        return self.chain

    @property
    def port(self) -> int:
        if self.server is None:
            raise NodeError("the node is not running")
        return self.server.port

    @property
    def url(self) -> str:
        if self.server is None:
            raise NodeError("the node is not running")
        return self.server.url

    @property
    def genesis_hash(self) -> bytes:
        return self.require_chain().genesis_hash

    @property
    def chain_name(self) -> str:
        return CHAIN_NAME

    # -- authoring --

    def produce_block(self) -> ImportedBlock:
        """Author one block now (the authoring loop's step; also used by tests)."""
        chain = self.require_chain()
        # The wall clock in ms; the runtime raises it to the parent's time plus MinimumPeriod
        # when needed, so timestamps strictly increase even if the clock does not.
        imported = chain.produce_block(int(self._wall_clock() * 1000))
        log.info(
            "imported #%d 0x%s (%d extrinsics%s)",
            imported.block.number,
            imported.block.hash.hex(),
            len(imported.block.extrinsics),
            f", {len(imported.dropped)} dropped" if imported.dropped else "",
        )
        for tx_hash, reason in imported.dropped:
            log.info("dropped extrinsic 0x%s: %s", tx_hash.hex(), reason)
        for event in imported.events:
            log.debug("#%d event %s", imported.block.number, event)
        delay = max(self.config.finality_delay, MIN_FINALITY_GAP)
        deadline = asyncio.get_running_loop().time() + delay
        self._to_finalize.append((deadline, imported.block.hash))
        self._finality_wakeup.set()
        return imported

    def pool_changed(self) -> None:
        self._pool_changed.set()

    async def _author(self) -> None:
        loop = asyncio.get_running_loop()
        block_time = self.config.block_time
        if block_time > 0:
            next_at = loop.time() + block_time
            while True:
                await asyncio.sleep(max(0.0, next_at - loop.time()))
                self._safe_produce()
                next_at += block_time
                if next_at < loop.time():  # fell behind (a slow block): do not burst
                    next_at = loop.time() + block_time
        else:
            chain = self.require_chain()
            while True:
                await self._pool_changed.wait()
                self._pool_changed.clear()
                while chain.pool.has_ready():
                    before = len(chain.pool)
                    imported = self._safe_produce()
                    # Let the new block's notifications go out before the next one.
                    await asyncio.sleep(0)
                    if imported is None or len(chain.pool) >= before:
                        break  # nothing from the pool fits; wait for a change

    def _safe_produce(self) -> ImportedBlock | None:
        try:
            return self.produce_block()
        except Exception:
            # A failing block must not kill the node; the pool keeps its transactions.
            log.exception("block production failed")
            return None

    async def _finalizer(self) -> None:
        loop = asyncio.get_running_loop()
        chain = self.require_chain()
        while True:
            if not self._to_finalize:
                self._finality_wakeup.clear()
                await self._finality_wakeup.wait()
                continue
            deadline, block_hash = self._to_finalize[0]
            # Always yield at least once: a block's inBlock and finalized notifications must
            # never leave in the same loop iteration (polkadot.js drops the first then).
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            self._to_finalize.popleft()
            block = chain.block(block_hash)
            if block is None or block.number <= chain.finalized_number:
                continue
            try:
                while chain.finalized_number < block.number:
                    done = chain.finalize_next()
                    if done is None:
                        break
                    log.info("finalized #%d 0x%s", done.number, done.hash.hex())
            except Exception:
                log.exception("finalization failed")


@dataclass(frozen=True)
class _AuthorTrigger:
    """The service's own chain listener: instant seal must hear of every new transaction."""

    node: DevNode

    def block_imported(self, block: ImportedBlock) -> None:
        pass

    def block_finalized(self, block: StoredBlock) -> None:
        pass

    def tx_status(self, changes: Iterable[StatusChange]) -> None:
        pass

    def transaction_pooled(self, tx_hash: bytes) -> None:
        self.node.pool_changed()
