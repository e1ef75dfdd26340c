"""The follower: ordered batched catch-up, following heads, stopping, watchdog, fallbacks.

A scripted in-memory parentchain (FakeChain) and an enclave double that checks each block links
to the last one (as the real light client does) stand in for the node and the enclave; the real
pieces are exercised end to end in tests/e2e/test_worker_*.py.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any

import pytest

from tocw.enclave.api import ImportedBlock
from tocw.enclave.errors import ParentHashMismatchError
from tocw.enclave.light_client import ParentchainBlock
from tocw.primitives.header import (
    Block,
    DigestItem,
    DigestRuntimeEnvironmentUpdated,
    Header,
    SignedBlock,
    extrinsics_root,
)
from tocw.primitives.types import BlockHash, BlockNumber
from tocw.worker.follower import Follower, FollowerError, SubscriptionUnsupportedError

GENESIS = Header(BlockHash(bytes(32)), BlockNumber(0), b"\x01" * 32, extrinsics_root([]))


def asyncio_test(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test on a fresh event loop (no pytest plugin needed)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return wrapper


def make_chain(length: int, salt: bytes = b"\x02", upgrade_at: int | None = None) -> list[Header]:
    headers = [GENESIS]
    for n in range(1, length + 1):
        digest: tuple[DigestItem, ...] = (
            (DigestRuntimeEnvironmentUpdated(),) if n == upgrade_at else ()
        )
        headers.append(
            Header(headers[-1].hash(), BlockNumber(n), salt * 32, extrinsics_root([]), digest)
        )
    return headers


class FakeChain:
    """A node: finalized heads grow on demand; subscriptions, fetches and failures scripted."""

    def __init__(self, headers: list[Header], finalized: int) -> None:
        self.headers = headers
        self.finalized = finalized
        self.fetches: list[tuple[int, int]] = []
        self.fetch_failures = 0
        self.subscribe = True
        self.silent = False  # the subscription stays open but never yields
        self.hang = False  # fetches never answer (a node that went away mid-request)
        self.reconnects = 0
        self._new_head = asyncio.Event()

    def advance(self, to: int) -> None:
        self.finalized = to
        self._new_head.set()

    async def finalized_number(self) -> BlockNumber:
        return BlockNumber(self.finalized)

    async def finalized_heads(self) -> AsyncIterator[BlockNumber]:
        if not self.subscribe:
            raise SubscriptionUnsupportedError("chain_subscribeFinalizedHeads: method not found")
        yield BlockNumber(self.finalized)
        while True:
            self._new_head.clear()
            await self._new_head.wait()
            if not self.silent:
                yield BlockNumber(self.finalized)

    async def fetch_blocks(self, first: BlockNumber, last: BlockNumber) -> list[ParentchainBlock]:
        self.fetches.append((first, last))
        if self.hang:
            await asyncio.Event().wait()
        if self.fetch_failures:
            self.fetch_failures -= 1
            raise ConnectionError("connection reset")
        await asyncio.sleep(0)
        assert last <= self.finalized, "asked for a block beyond the finalized head"
        return [ParentchainBlock(SignedBlock(Block(h, ()))) for h in self.headers[first : last + 1]]

    async def reconnect(self) -> None:
        self.reconnects += 1


class LinkedEnclave:
    """Imports blocks that link to the last one (number and parent hash), like the light client."""

    def __init__(self, delay: float = 0.0) -> None:
        self.head = (BlockNumber(0), GENESIS.hash())
        self.imported: list[int] = []
        self.calls: list[int] = []
        self.delay = delay
        self.threads: set[int] = set()

    def last_imported_block(self) -> tuple[BlockNumber, BlockHash] | None:
        return self.head

    def import_parentchain_blocks(self, blocks: Sequence[ParentchainBlock]) -> list[ImportedBlock]:
        self.threads.add(threading.get_ident())
        self.calls.append(len(blocks))
        out = []
        for block in blocks:
            header = block.header
            if header.number != self.head[0] + 1 or header.parent_hash != self.head[1]:
                raise ParentHashMismatchError(f"block #{header.number} does not link")
            if self.delay:
                time.sleep(self.delay)
            self.head = (header.number, header.hash())
            self.imported.append(header.number)
            out.append(ImportedBlock(header.number, header.hash(), [], ()))
        return out


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def run_until(follower: Follower, predicate: Callable[[], bool]) -> None:
    task = asyncio.create_task(follower.run())
    try:
        await wait_until(lambda: predicate() or task.done())
        if task.done():
            task.result()
    finally:
        follower.stop()
        await asyncio.wait_for(task, 5.0)


@asyncio_test
async def test_follower_catches_up_in_ordered_batches() -> None:
    """A long backlog is fetched in batches and imported block by block, in order."""
    chain = FakeChain(make_chain(100), finalized=100)
    enclave = LinkedEnclave()
    follower = Follower(chain, enclave, block_time=1.0, batch_size=16, prefetch=3)
    await run_until(follower, lambda: enclave.head[0] == 100)
    assert enclave.imported == list(range(1, 101))
    assert chain.fetches[0] == (1, 16)
    assert all(last - first < 16 for first, last in chain.fetches)
    assert set(enclave.calls) == {1}  # one enclave call per block: stop lands between blocks
    assert threading.get_ident() not in enclave.threads  # imports ran off the event loop


@asyncio_test
async def test_follower_follows_new_finalized_heads() -> None:
    """After catching up it imports each new finalized head as it arrives."""
    chain = FakeChain(make_chain(30), finalized=5)
    enclave = LinkedEnclave()
    follower = Follower(chain, enclave, block_time=1.0)
    task = asyncio.create_task(follower.run())
    try:
        await wait_until(lambda: enclave.head[0] == 5)
        assert follower.in_sync
        for n in (6, 9, 30):
            chain.advance(n)
            await wait_until(lambda n=n: enclave.head[0] == n)
    finally:
        follower.stop()
        await asyncio.wait_for(task, 5.0)
    assert enclave.imported == list(range(1, 31))


@asyncio_test
async def test_follower_stop_finishes_the_current_block() -> None:
    """stop() mid-batch lets the block in progress commit and imports nothing after it."""
    chain = FakeChain(make_chain(50), finalized=50)
    enclave = LinkedEnclave(delay=0.02)
    follower = Follower(chain, enclave, block_time=1.0, batch_size=50)
    task = asyncio.create_task(follower.run())
    await wait_until(lambda: len(enclave.imported) >= 3)
    follower.stop()
    await asyncio.wait_for(task, 5.0)
    stopped_at = len(enclave.imported)
    assert stopped_at < 50
    assert enclave.imported == list(range(1, stopped_at + 1))  # no block half-imported
    await asyncio.sleep(0.1)
    assert len(enclave.imported) == stopped_at


@asyncio_test
async def test_follower_stop_does_not_wait_for_a_hanging_fetch() -> None:
    """SIGTERM while the node does not answer a fetch still stops promptly."""
    chain = FakeChain(make_chain(20), finalized=20)
    chain.hang = True
    enclave = LinkedEnclave()
    follower = Follower(chain, enclave, block_time=1.0)
    task = asyncio.create_task(follower.run())
    await wait_until(lambda: len(chain.fetches) >= 1)
    follower.stop()
    await asyncio.wait_for(task, 2.0)
    assert enclave.imported == []


@asyncio_test
async def test_follower_refused_block_is_fatal() -> None:
    """A block that does not link (another chain) stops the follower with FollowerError."""
    headers = make_chain(10)
    forked = make_chain(10, salt=b"\x09")
    chain = FakeChain(headers[:6] + forked[6:], finalized=10)
    enclave = LinkedEnclave()
    follower = Follower(chain, enclave, block_time=1.0)
    with pytest.raises(FollowerError, match=r"refused parentchain block #6.*ParentHashMismatch"):
        await asyncio.wait_for(follower.run(), 5.0)
    assert enclave.head[0] == 5


@asyncio_test
async def test_follower_retries_failed_fetches() -> None:
    """A fetch that fails (connection reset) is retried from where the enclave is."""
    chain = FakeChain(make_chain(20), finalized=20)
    chain.fetch_failures = 2
    enclave = LinkedEnclave()
    follower = Follower(chain, enclave, block_time=1.0, batch_size=8)
    await run_until(follower, lambda: enclave.head[0] == 20)
    assert enclave.imported == list(range(1, 21))
    assert len(chain.fetches) >= 5


@asyncio_test
async def test_follower_polls_when_subscription_unsupported() -> None:
    """A node without the finalized-head subscription is polled instead."""
    chain = FakeChain(make_chain(10), finalized=2)
    chain.subscribe = False
    enclave = LinkedEnclave()
    follower = Follower(chain, enclave, block_time=0.1)
    task = asyncio.create_task(follower.run())
    try:
        await wait_until(lambda: enclave.head[0] == 2)
        chain.finalized = 10  # no notification: only polling can see it
        await wait_until(lambda: enclave.head[0] == 10)
    finally:
        follower.stop()
        await asyncio.wait_for(task, 5.0)


@asyncio_test
async def test_follower_watchdog_reconnects_a_silent_node() -> None:
    """No new head for 3x the block time (floored) makes the follower reconnect, then catch up."""
    chain = FakeChain(make_chain(10), finalized=3)
    chain.silent = True
    enclave = LinkedEnclave()
    follower = Follower(chain, enclave, block_time=0.05, watchdog_floor=0.2)
    assert follower.watchdog_timeout == pytest.approx(0.2)
    task = asyncio.create_task(follower.run())
    try:
        await wait_until(lambda: enclave.head[0] == 3)
        chain.advance(10)  # the silent subscription swallows it
        await wait_until(lambda: chain.reconnects >= 1, timeout=3.0)
        await wait_until(lambda: enclave.head[0] == 10, timeout=3.0)
    finally:
        follower.stop()
        await asyncio.wait_for(task, 5.0)
    assert follower.reconnects >= 1


@asyncio_test
async def test_follower_runtime_upgrade_refreshes_before_next_block() -> None:
    """After a block that upgraded the runtime the host refreshes metadata before going on."""
    chain = FakeChain(make_chain(12, upgrade_at=5), finalized=12)
    enclave = LinkedEnclave()
    seen: list[tuple[BlockHash, int]] = []

    async def refresh(block_hash: BlockHash) -> None:
        seen.append((block_hash, enclave.head[0]))

    follower = Follower(chain, enclave, block_time=1.0, on_runtime_upgrade=refresh)
    await run_until(follower, lambda: enclave.head[0] == 12)
    assert seen == [(chain.headers[5].hash(), 5)]
    assert enclave.imported == list(range(1, 13))


@asyncio_test
async def test_follower_reports_progress() -> None:
    """Progress carries imported, finalized, remaining and a rate; callbacks see each block."""
    chain = FakeChain(make_chain(40), finalized=40)
    enclave = LinkedEnclave()
    imported: list[int] = []
    reports = []
    follower = Follower(
        chain,
        enclave,
        block_time=1.0,
        batch_size=10,
        on_imported=lambda b: imported.append(b.number),
        on_progress=reports.append,
    )
    await run_until(follower, lambda: enclave.head[0] == 40)
    assert imported == list(range(1, 41))
    assert reports[-1].imported == 40 and reports[-1].finalized == 40
    assert reports[-1].remaining == 0
    assert reports[-1].blocks_per_second > 0
    assert any(r.remaining > 0 for r in reports)


def test_follower_rejects_bad_parameters() -> None:
    """Zero batch size or block time are programming errors, refused at construction."""
    chain = FakeChain(make_chain(1), finalized=1)
    with pytest.raises(ValueError):
        Follower(chain, LinkedEnclave(), block_time=0)
    with pytest.raises(ValueError):
        Follower(chain, LinkedEnclave(), block_time=1.0, batch_size=0)
