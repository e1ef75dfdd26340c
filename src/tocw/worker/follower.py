"""Following the parentchain's finalized heads and feeding every block to the enclave, in order.

Owns `Follower`, the sync loop of ARCHITECTURE.md "Data flow" steps 5-6 on the host side:

- Heads: a subscription to finalized heads, falling back to polling `finalized_head` when the
  node cannot subscribe. A watchdog reconnects when no new head arrived for
  `watchdog_factor` x the block time (3x by default, with a floor so that a 1 s chain is not
  reconnected on every hiccup). Connection losses reconnect with exponential backoff,
  resubscribe, and catch up from the last imported block: nothing waits forever.
- Blocks: fetched in batches of `batch_size` (headers, bodies, System.Events with their proof:
  `BlockSource.fetch_blocks`), with the next batches fetched while the enclave imports the
  current one (pipelined, `prefetch` batches ahead), and handed to the enclave strictly in
  order. The enclave checks each block against the last one and commits per block; the host
  never decides what is valid.
- Stopping: `stop()` (SIGTERM) lets the block being imported finish and commit, then returns.
  Blocks run in a worker thread (the enclave's work is CPU-bound: RSA decryption), so the
  event loop keeps serving RPC meanwhile; the thread checks the stop flag between blocks.
- Runtime upgrades: after importing a block whose header says the runtime changed, the loop
  calls `on_runtime_upgrade(hash)` so the host hands the enclave the new metadata before the
  next block (the enclave refuses to decode with stale metadata), and fetches the blocks after
  it again (what to fetch with them was decided with the old metadata).
- A block the enclave refuses (another chain, a fork, a body that does not match its header)
  is fatal: FollowerError with the enclave's reason, nothing of that block imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from tocw.enclave.api import EnclaveApi, ImportedBlock
from tocw.enclave.errors import EnclaveError
from tocw.enclave.light_client import ParentchainBlock
from tocw.primitives.header import DigestRuntimeEnvironmentUpdated
from tocw.primitives.types import BlockHash, BlockNumber
from tocw.worker import WorkerError

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE: Final = 256
DEFAULT_PREFETCH: Final = 2
WATCHDOG_FACTOR: Final = 3.0
WATCHDOG_FLOOR: Final = 3.0  # seconds: never reconnect more often than this
MIN_BACKOFF: Final = 0.2
MAX_BACKOFF: Final = 10.0
PROGRESS_EVERY: Final = 5.0  # seconds between progress log lines while catching up


class FollowerError(WorkerError):
    """Following stopped for good: the enclave refused a block (see the message)."""


class SubscriptionUnsupportedError(WorkerError):
    """Raised by a BlockSource whose node cannot subscribe to finalized heads (then: poll)."""


class BlockSource(Protocol):
    """The parentchain as the follower sees it (an adapter over the chain client)."""

    async def finalized_number(self) -> BlockNumber:
        """The number of the current finalized head."""
        ...

    def finalized_heads(self) -> AsyncIterator[BlockNumber]:
        """Numbers of new finalized heads as they come (a subscription). Raises
        SubscriptionUnsupportedError if the node cannot subscribe; ends or raises when the
        connection is lost."""
        ...

    async def fetch_blocks(self, first: BlockNumber, last: BlockNumber) -> list[ParentchainBlock]:
        """Blocks first..last (inclusive) of the finalized chain, in order, each with its
        System.Events and their read proof."""
        ...

    async def reconnect(self) -> None:
        """Drop the connection and open a new one (raises if the node is unreachable)."""
        ...


@dataclass(frozen=True, slots=True)
class SyncProgress:
    """Where the follower is, for logs, /health and /metrics."""

    imported: BlockNumber | None
    finalized: BlockNumber | None
    blocks_per_second: float
    head_age: float  # seconds since the last new finalized head arrived

    @property
    def remaining(self) -> int:
        if self.imported is None or self.finalized is None:
            return 0
        return max(0, self.finalized - self.imported)


class _RateMeter:
    """Blocks per second over a sliding window of recent imports."""

    def __init__(self, window: float = 10.0) -> None:
        self._window = window
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, count: int) -> None:
        now = time.monotonic()
        self._samples.append((now, count))
        while self._samples and now - self._samples[0][0] > self._window:
            self._samples.popleft()

    @property
    def rate(self) -> float:
        if not self._samples:
            return 0.0
        now = time.monotonic()
        total = sum(c for t, c in self._samples if now - t <= self._window)
        span = max(now - self._samples[0][0], 1.0)
        return total / span


class Follower:
    """The host's sync loop: `await follower.run()` until `stop()` (or a fatal error)."""

    def __init__(
        self,
        source: BlockSource,
        enclave: EnclaveApi,
        *,
        block_time: float,
        batch_size: int = DEFAULT_BATCH_SIZE,
        prefetch: int = DEFAULT_PREFETCH,
        watchdog_factor: float = WATCHDOG_FACTOR,
        watchdog_floor: float = WATCHDOG_FLOOR,
        on_imported: Callable[[ImportedBlock], None] | None = None,
        on_progress: Callable[[SyncProgress], None] | None = None,
        on_runtime_upgrade: Callable[[BlockHash], Awaitable[None]] | None = None,
        on_head: Callable[[BlockNumber], None] | None = None,
    ) -> None:
        if batch_size < 1 or prefetch < 1 or block_time <= 0:
            raise ValueError("batch_size, prefetch and block_time must be positive")
        self._source = source
        self._enclave = enclave
        self._block_time = block_time
        self._batch_size = batch_size
        self._prefetch = prefetch
        self.watchdog_timeout = max(watchdog_factor * block_time, watchdog_floor)
        self._on_imported = on_imported
        self._on_progress = on_progress
        self._on_runtime_upgrade = on_runtime_upgrade
        self._on_head = on_head
        self._stop = asyncio.Event()
        self._stop_flag = threading.Event()  # read by the import thread between blocks
        self._head_changed = asyncio.Event()
        self._reconnect_needed = asyncio.Event()
        self._finalized: BlockNumber | None = None
        self._imported: tuple[BlockNumber, BlockHash] | None = enclave.last_imported_block()
        self._last_head_at = time.monotonic()
        self._rate = _RateMeter()
        self._last_progress_log = 0.0
        self.reconnects = 0

    # -- state -----------------------------------------------------------------------------------

    def stop(self) -> None:
        """Finish the block being imported, then return from run() (idempotent)."""
        self._stop.set()
        self._stop_flag.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def progress(self) -> SyncProgress:
        """Where the follower is; never waits for the enclave (whose lock a block import holds),
        so health and metrics stay responsive during a long import."""
        last = self._imported
        return SyncProgress(
            None if last is None else last[0],
            self._finalized,
            self._rate.rate,
            time.monotonic() - self._last_head_at,
        )

    @property
    def in_sync(self) -> bool:
        """True once the enclave imported the finalized head known to us."""
        p = self.progress()
        return p.finalized is not None and p.imported is not None and p.imported >= p.finalized

    # -- the loop --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Follow and import until stop(); FollowerError if the enclave refuses a block."""
        heads = asyncio.create_task(self._follow_heads(), name="follower-heads")
        try:
            await self._import_loop(heads)
        finally:
            heads.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heads

    def _set_finalized(self, number: BlockNumber) -> None:
        if self._finalized is None or number > self._finalized:
            self._finalized = number
            self._last_head_at = time.monotonic()
            self._head_changed.set()
            if self._on_head is not None:
                self._on_head(number)

    async def _follow_heads(self) -> None:
        """Keep `_finalized` current: subscribe (or poll), watchdog, reconnect with backoff."""
        backoff = MIN_BACKOFF
        while not self._stop.is_set():
            try:
                self._set_finalized(await self._source.finalized_number())
                try:
                    await self._consume_subscription()
                except SubscriptionUnsupportedError:
                    logger.warning("node cannot subscribe to finalized heads: polling instead")
                    await self._poll_heads()
                backoff = MIN_BACKOFF
                reason = "the head subscription ended"
            except TimeoutError:
                reason = f"no finalized head for {self.watchdog_timeout:.1f} s (watchdog)"
            except asyncio.CancelledError:
                raise
            except Exception as e:  # connection-level failures of the source: reconnect
                reason = f"{type(e).__name__}: {e}"
            if self._stop.is_set():
                return
            await self._reconnect(reason, backoff)
            backoff = min(MAX_BACKOFF, backoff * 2)

    async def _reconnect(self, reason: str, delay: float) -> None:
        self.reconnects += 1
        logger.warning("parentchain connection: %s; reconnecting in %.1f s", reason, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), delay)
        if self._stop.is_set():
            return
        try:
            await self._source.reconnect()
            logger.info("reconnected to the parentchain node")
            self._last_head_at = time.monotonic()
            self._reconnect_needed.set()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            logger.warning("reconnect failed: %s: %s", type(e).__name__, e)

    async def _consume_subscription(self) -> None:
        heads = self._source.finalized_heads()
        iterator = heads.__aiter__()
        try:
            while not self._stop.is_set():
                remaining = self.watchdog_timeout - (time.monotonic() - self._last_head_at)
                number = await asyncio.wait_for(anext(iterator), max(0.01, remaining))
                self._set_finalized(number)
        except StopAsyncIteration:
            return
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    async def _poll_heads(self) -> None:
        interval = max(0.1, self._block_time / 2)
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), interval)
            self._set_finalized(await self._source.finalized_number())
            if time.monotonic() - self._last_head_at > self.watchdog_timeout:
                raise TimeoutError

    async def _import_loop(self, heads: asyncio.Task[None]) -> None:
        inflight: deque[tuple[BlockNumber, asyncio.Task[list[ParentchainBlock]]]] = deque()
        next_fetch = self._next_to_import()
        fetch_backoff = MIN_BACKOFF
        try:
            while not self._stop.is_set():
                if heads.done():
                    heads.result()  # a bug in the head task must not go unnoticed
                if self._reconnect_needed.is_set():
                    self._reconnect_needed.clear()
                    next_fetch = self._drop_inflight(inflight)
                target = self._finalized
                while (
                    target is not None and len(inflight) < self._prefetch and (next_fetch <= target)
                ):
                    last = BlockNumber(min(next_fetch + self._batch_size - 1, target))
                    task = asyncio.create_task(self._source.fetch_blocks(next_fetch, last))
                    inflight.append((next_fetch, task))
                    next_fetch = BlockNumber(last + 1)
                if not inflight:
                    await self._wait_for_head()
                    continue
                first, task = inflight[0]
                if not await self._fetched_or_stopped(task):
                    return  # stop() while a fetch hangs (node down): do not wait for it
                try:
                    blocks = task.result()
                except asyncio.CancelledError:
                    if self._stop.is_set():
                        return
                    next_fetch = self._drop_inflight(inflight)
                    continue
                except Exception as e:
                    # The head task notices a lost connection and reconnects; here only wait
                    # and fetch again from where the enclave is.
                    logger.warning(
                        "fetching blocks from #%d failed (%s: %s); retrying in %.1f s",
                        first,
                        type(e).__name__,
                        e,
                        fetch_backoff,
                    )
                    next_fetch = self._drop_inflight(inflight)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), fetch_backoff)
                    fetch_backoff = min(MAX_BACKOFF, fetch_backoff * 2)
                    continue
                fetch_backoff = MIN_BACKOFF
                inflight.popleft()
                if blocks and blocks[0].header.number != self._next_to_import():
                    # a reconnect raced this fetch: refetch from where the enclave is
                    next_fetch = self._drop_inflight(inflight)
                    continue
                await self._import(blocks)
                if self._next_to_import() <= (blocks[-1].header.number if blocks else 0):
                    # stopped mid-batch, or a runtime upgrade split it: refetch from there
                    next_fetch = self._drop_inflight(inflight)
        finally:
            for _, task in inflight:
                task.cancel()
            for _, task in inflight:
                with contextlib.suppress(BaseException):
                    await task

    async def _fetched_or_stopped(self, task: asyncio.Task[list[ParentchainBlock]]) -> bool:
        """Wait for the fetch `task`; False if stop() came first."""
        if task.done():
            return True
        stopped = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        return task.done()

    def _next_to_import(self) -> BlockNumber:
        """Asked of the enclave (only between imports: the import thread is idle then)."""
        last = self._enclave.last_imported_block()
        self._imported = last
        if last is None:
            raise FollowerError("the enclave follows no parentchain (init_parentchain first)")
        return BlockNumber(last[0] + 1)

    def _drop_inflight(
        self, inflight: deque[tuple[BlockNumber, asyncio.Task[list[ParentchainBlock]]]]
    ) -> BlockNumber:
        for _, task in inflight:
            task.cancel()
        inflight.clear()
        return self._next_to_import()

    async def _wait_for_head(self) -> None:
        self._head_changed.clear()
        waiters = [
            asyncio.create_task(self._head_changed.wait()),
            asyncio.create_task(self._stop.wait()),
            asyncio.create_task(self._reconnect_needed.wait()),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    async def _import(self, blocks: Sequence[ParentchainBlock]) -> None:
        """Import `blocks` in a thread, one enclave call per block, up to and including the
        first block that upgrades the runtime (the caller fetches the rest again)."""
        upgrade_at = next(
            (
                i
                for i, b in enumerate(blocks)
                if any(isinstance(d, DigestRuntimeEnvironmentUpdated) for d in b.header.digest)
            ),
            None,
        )
        part = list(blocks) if upgrade_at is None else list(blocks[: upgrade_at + 1])
        if not part or self._stop_flag.is_set():
            return
        imported = await asyncio.to_thread(self._import_in_thread, part)
        if imported:
            self._imported = (imported[-1].number, imported[-1].hash)
        self._rate.add(len(imported))
        for block in imported:
            if self._on_imported is not None:
                self._on_imported(block)
        self._report_progress()
        upgraded = upgrade_at is not None and len(imported) == len(part)
        if upgraded and self._on_runtime_upgrade is not None:
            logger.info("runtime upgraded in block #%d: refreshing metadata", imported[-1].number)
            await self._on_runtime_upgrade(imported[-1].hash)

    def _import_in_thread(self, blocks: Sequence[ParentchainBlock]) -> list[ImportedBlock]:
        done: list[ImportedBlock] = []
        for block in blocks:
            if self._stop_flag.is_set():
                break
            try:
                done.extend(self._enclave.import_parentchain_blocks([block]))
            except EnclaveError as e:
                raise FollowerError(
                    f"the enclave refused parentchain block #{block.header.number} "
                    f"0x{bytes(block.hash()).hex()}: {type(e).__name__}: {e}"
                ) from e
        return done

    def _report_progress(self) -> None:
        progress = self.progress()
        if self._on_progress is not None:
            self._on_progress(progress)
        now = time.monotonic()
        if progress.remaining and now - self._last_progress_log >= PROGRESS_EVERY:
            self._last_progress_log = now
            logger.info(
                "sync imported=#%s finalized=#%s remaining=%d rate=%.1f blocks/s",
                progress.imported,
                progress.finalized,
                progress.remaining,
                progress.blocks_per_second,
            )
