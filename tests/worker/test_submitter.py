"""The submitter: durable outbox, nonce order, refusal handling, backoff, pruning, re-signing."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import pytest

from tocw.primitives.types import AccountId
from tocw.worker.submitter import (
    POOL_ALREADY_IMPORTED,
    POOL_IMMEDIATELY_DROPPED,
    POOL_INVALID_TX,
    POOL_TEMPORARILY_BANNED,
    POOL_TOO_LOW_PRIORITY,
    NodeRejectedError,
    Outbox,
    OutboxEntry,
    Rejection,
    Submitter,
    classify_rejection,
)

ACCOUNT = AccountId(b"\x07" * 32)


def xt(nonce: int, version: int = 0) -> bytes:
    """A stand-in extrinsic: the nonce and a signature version, as the inspect function reads."""
    return b"XT" + nonce.to_bytes(4, "little") + bytes([version])


def inspect(extrinsic: bytes) -> tuple[int, str]:
    return int.from_bytes(extrinsic[2:6], "little"), f"test call v{extrinsic[6]}"


class FakeNode:
    """A node's pool as the submitter sees it: scripted refusals, a finalized nonce."""

    def __init__(self) -> None:
        self.finalized = 0
        self.accepted: list[bytes] = []
        self.attempts: list[bytes] = []
        self.batches: list[list[bytes]] = []
        self.script: dict[bytes, list[BaseException]] = {}
        self.down = False

    async def submit_extrinsics(
        self, extrinsics: Sequence[bytes]
    ) -> list[NodeRejectedError | None]:
        self.batches.append(list(extrinsics))
        if self.down:
            raise ConnectionError("node unreachable")
        answers: list[NodeRejectedError | None] = []
        for extrinsic in extrinsics:
            self.attempts.append(extrinsic)
            queue = self.script.get(extrinsic)
            if queue:
                error = queue.pop(0)
                if not isinstance(error, NodeRejectedError):
                    raise error  # a connection problem fails the whole batch
                answers.append(error)
            else:
                self.accepted.append(extrinsic)
                answers.append(None)
        return answers

    async def finalized_nonce(self, account: AccountId) -> int:
        assert account == ACCOUNT
        if self.down:
            raise ConnectionError("node unreachable")
        return self.finalized


def asyncio_test(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test on a fresh event loop (no pytest plugin needed)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return wrapper


def stale() -> NodeRejectedError:
    return NodeRejectedError(POOL_INVALID_TX, "Invalid Transaction", "Transaction is outdated")


def bad_proof() -> NodeRejectedError:
    return NodeRejectedError(
        POOL_INVALID_TX, "Invalid Transaction", "Transaction has a bad signature"
    )


def payment() -> NodeRejectedError:
    return NodeRejectedError(
        POOL_INVALID_TX,
        "Invalid Transaction",
        "Inability to pay some fees (e.g. account balance too low)",
    )


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    box = Outbox(tmp_path / "outbox.sqlite3")
    yield box
    box.close()


def make_submitter(outbox: Outbox, node: FakeNode, **options: object) -> Submitter:
    defaults: dict[str, object] = {
        "poll_interval": 0.02,
        "min_backoff": 0.01,
        "max_backoff": 0.05,
        "resend_after": 60.0,
    }
    defaults.update(options)
    return Submitter(outbox, node, ACCOUNT, inspect, **defaults)  # type: ignore[arg-type]


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def with_running(submitter: Submitter, body: Callable[[], Awaitable[None]]) -> None:
    task = asyncio.create_task(submitter.run())
    try:
        await body()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.mark.parametrize(
    ("code", "message", "data", "expected"),
    [
        (POOL_INVALID_TX, "Invalid Transaction", "Transaction is outdated", Rejection.USED),
        (POOL_ALREADY_IMPORTED, "Transaction Already Imported", None, Rejection.IN_POOL),
        (POOL_TOO_LOW_PRIORITY, "Priority is too low: (0 vs 0)", None, Rejection.IN_POOL),
        (POOL_TEMPORARILY_BANNED, "Transaction is temporarily banned", None, Rejection.IN_POOL),
        (
            POOL_INVALID_TX,
            "Invalid Transaction",
            "Transaction will be valid in the future",
            Rejection.RETRY,
        ),
        (POOL_INVALID_TX, "Invalid Transaction", "Inability to pay some fees", Rejection.RETRY),
        (POOL_IMMEDIATELY_DROPPED, "Immediately Dropped", None, Rejection.RETRY),
        (
            POOL_INVALID_TX,
            "Invalid Transaction",
            "Transaction has a bad signature",
            Rejection.INVALID,
        ),
        (
            POOL_INVALID_TX,
            "Invalid Transaction",
            "Transaction has an ancient birth block",
            Rejection.INVALID,
        ),
        (-32603, "Internal error", None, Rejection.RETRY),
    ],
)
def test_submitter_classify_rejection(
    code: int, message: str, data: object, expected: Rejection
) -> None:
    """Substrate's author errors map onto what the submitter does about them."""
    assert classify_rejection(code, message, data) is expected


def test_submitter_outbox_is_durable(tmp_path: Path) -> None:
    """Entries survive closing and reopening; a second entry for a nonce replaces the first."""
    path = tmp_path / "outbox.sqlite3"
    box = Outbox(path)
    box.add([OutboxEntry(5, xt(5), "a"), OutboxEntry(3, xt(3), "b")])
    box.add([OutboxEntry(5, xt(5, 1), "a2")])
    box.close()
    box = Outbox(path)
    try:
        assert [(e.nonce, e.extrinsic, e.label) for e in box.pending()] == [
            (3, xt(3), "b"),
            (5, xt(5, 1), "a2"),
        ]
        assert box.next_nonce() == 6
        assert box.remove_below(5) == 1
        assert len(box) == 1
        assert box.remove_below(100) == 1
        assert box.next_nonce() is None
    finally:
        box.close()


@asyncio_test
async def test_submitter_sends_in_nonce_order(outbox: Outbox) -> None:
    """Extrinsics enqueued out of order reach the node in nonce order."""
    node = FakeNode()
    submitter = make_submitter(outbox, node)
    submitter.enqueue([xt(2), xt(0)])
    submitter.enqueue([xt(1)])

    async def body() -> None:
        await wait_until(lambda: len(node.accepted) == 3)

    await with_running(submitter, body)
    assert node.accepted == [xt(0), xt(1), xt(2)]


@asyncio_test
async def test_submitter_retries_with_backoff_first_refused_first(outbox: Outbox) -> None:
    """A retryable refusal is retried with backoff; what the node took meanwhile is not resent."""
    node = FakeNode()
    node.script[xt(0)] = [payment(), ConnectionError("lost")]
    submitter = make_submitter(outbox, node)
    submitter.enqueue([xt(0), xt(1)])

    async def body() -> None:
        await wait_until(lambda: xt(0) in node.accepted)

    await with_running(submitter, body)
    assert node.batches[0] == [xt(0), xt(1)]  # one batch, in nonce order
    assert node.batches[1][0] == xt(0)  # the refused nonce goes first on the retry
    assert node.accepted.count(xt(1)) == 1  # nonce 1 waited in the pool, never resent
    assert submitter.last_error is None


@asyncio_test
async def test_submitter_batches_a_burst(outbox: Outbox) -> None:
    """A burst of confirmations (catch-up) goes out in batches of batch_size, in order."""
    node = FakeNode()
    submitter = make_submitter(outbox, node, batch_size=4)
    submitter.enqueue([xt(n) for n in range(10)])

    async def body() -> None:
        await wait_until(lambda: len(node.accepted) == 10)

    await with_running(submitter, body)
    assert [len(b) for b in node.batches] == [4, 4, 2]
    assert node.accepted == [xt(n) for n in range(10)]


@asyncio_test
async def test_submitter_used_and_in_pool_count_as_sent(outbox: Outbox) -> None:
    """'Outdated' and 'already imported' mean the nonce is taken care of: no resend loop."""
    node = FakeNode()
    node.script[xt(0)] = [stale()]
    node.script[xt(1)] = [NodeRejectedError(POOL_ALREADY_IMPORTED, "Already Imported")]
    submitter = make_submitter(outbox, node)
    submitter.enqueue([xt(0), xt(1), xt(2)])

    async def body() -> None:
        await wait_until(lambda: node.accepted == [xt(2)])
        await asyncio.sleep(0.1)

    await with_running(submitter, body)
    assert node.attempts == [xt(0), xt(1), xt(2)]
    assert submitter.unsent == 0


@asyncio_test
async def test_submitter_prunes_what_the_finalized_chain_used(outbox: Outbox) -> None:
    """Entries leave the outbox once the finalized nonce passes them, not before."""
    node = FakeNode()
    submitter = make_submitter(outbox, node)
    submitter.enqueue([xt(0), xt(1), xt(2)])

    async def body() -> None:
        await wait_until(lambda: len(node.accepted) == 3)
        assert len(outbox) == 3  # accepted by the pool is not finalized
        node.finalized = 2
        submitter.wake()
        await wait_until(lambda: len(outbox) == 1)

    await with_running(submitter, body)
    assert [e.nonce for e in outbox.pending()] == [2]


@asyncio_test
async def test_submitter_resends_after_pool_loss(outbox: Outbox) -> None:
    """An accepted entry that never gets finalized is sent again after resend_after."""
    node = FakeNode()
    submitter = make_submitter(outbox, node, resend_after=0.1)
    submitter.enqueue([xt(0)])

    async def body() -> None:
        await wait_until(lambda: node.accepted.count(xt(0)) >= 2)

    await with_running(submitter, body)


@asyncio_test
async def test_submitter_pending_entries_are_resent_after_restart(tmp_path: Path) -> None:
    """A new submitter over the same outbox file sends what the old one left behind."""
    path = tmp_path / "outbox.sqlite3"
    first = Outbox(path)
    make_submitter(first, FakeNode()).enqueue([xt(4), xt(5)])
    first.close()
    box = Outbox(path)
    try:
        node = FakeNode()
        node.finalized = 5  # nonce 4 was finalized before the restart
        submitter = make_submitter(box, node)

        async def body() -> None:
            await wait_until(lambda: node.accepted == [xt(5)])

        await with_running(submitter, body)
        assert xt(4) not in node.attempts
    finally:
        box.close()


@asyncio_test
async def test_submitter_resigns_invalid_suffix(outbox: Outbox) -> None:
    """An invalid entry and everything after it are re-signed in place (same nonces), as after
    a runtime upgrade that invalidated what was signed for the old runtime."""
    node = FakeNode()
    node.script[xt(1)] = [bad_proof()]
    node.script[xt(2)] = [bad_proof()]
    calls: list[tuple[list[bytes], int]] = []

    def resign(extrinsics: Sequence[bytes], first_nonce: int) -> list[bytes]:
        calls.append((list(extrinsics), first_nonce))
        return [xt(first_nonce + i, 1) for i in range(len(extrinsics))]

    submitter = make_submitter(outbox, node, resign=resign)
    submitter.enqueue([xt(0), xt(1), xt(2)])

    async def body() -> None:
        await wait_until(lambda: len(node.accepted) == 3)

    await with_running(submitter, body)
    assert calls == [([xt(1), xt(2)], 1)]
    assert node.accepted == [xt(0), xt(1, 1), xt(2, 1)]


@asyncio_test
async def test_submitter_invalid_without_resign_is_retried_not_skipped(outbox: Outbox) -> None:
    """Without re-signing an invalid entry is retried and kept, never dropped (a gap would
    block every later nonce)."""
    node = FakeNode()
    node.script[xt(0)] = [bad_proof() for _ in range(1000)]
    submitter = make_submitter(outbox, node)
    submitter.enqueue([xt(0), xt(1)])

    async def body() -> None:
        await wait_until(lambda: node.attempts.count(xt(0)) >= 2)

    await with_running(submitter, body)
    assert node.attempts.count(xt(1)) == 1  # sent once (it waits in the pool), not resent
    assert [e.nonce for e in outbox.pending()] == [0, 1]
    assert submitter.last_error is not None and "bad signature" in submitter.last_error


@asyncio_test
async def test_submitter_enqueue_from_another_thread_wakes_it(outbox: Outbox) -> None:
    """The enclave's import thread enqueues; the loop sends without waiting for its poll."""
    node = FakeNode()
    submitter = make_submitter(outbox, node, poll_interval=30.0)

    async def body() -> None:
        await asyncio.sleep(0.05)  # the first pass is done; now it sleeps for the poll
        thread = threading.Thread(target=submitter.enqueue, args=([xt(0)],))
        thread.start()
        thread.join()
        await wait_until(lambda: node.accepted == [xt(0)], timeout=2.0)

    await with_running(submitter, body)


@asyncio_test
async def test_submitter_settled_reports_undelivered(outbox: Outbox) -> None:
    """settled() is True once the node took everything, False when it stays unreachable."""
    node = FakeNode()
    submitter = make_submitter(outbox, node)
    submitter.enqueue([xt(0)])

    async def body() -> None:
        assert await submitter.settled(5.0)
        node.down = True
        submitter.enqueue([xt(1)])
        assert not await submitter.settled(0.2)

    await with_running(submitter, body)
    assert submitter.unsent == 1


@asyncio_test
async def test_submitter_reports_results_per_call(outbox: Outbox) -> None:
    """The observer (metrics) hears each call name with accepted or refused."""
    node = FakeNode()
    node.script[xt(0)] = [payment()]
    seen: list[tuple[str, bool]] = []
    submitter = make_submitter(outbox, node, on_result=lambda call, ok: seen.append((call, ok)))
    submitter.enqueue([xt(0)])

    async def body() -> None:
        await wait_until(lambda: node.accepted == [xt(0)])

    await with_running(submitter, body)
    assert seen == [("test call v0", False), ("test call v0", True)]
