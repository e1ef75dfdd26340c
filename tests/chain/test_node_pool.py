"""The transaction pool: ready/future by tags, replacement, bans, limits, block order."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tocw.chain.pool import (
    AlreadyImportedError,
    ImmediatelyDroppedError,
    StatusChange,
    TemporarilyBannedError,
    TooLowPriorityError,
    TransactionPool,
)
from tocw.primitives.hashing import blake2_256


@dataclass(frozen=True)
class V:
    sender: bytes
    nonce: int
    priority: int = 0
    provides: tuple[bytes, ...] = ()
    requires: tuple[bytes, ...] = ()
    longevity: int = 64


def tag(who: bytes, nonce: int) -> bytes:
    return who + nonce.to_bytes(4, "little")


def signed(who: bytes, nonce: int, state_nonce: int, priority: int = 0) -> V:
    """Validity as CheckNonce computes it: provides (who, n), requires (who, n-1) if ahead."""
    requires = (tag(who, nonce - 1),) if nonce > state_nonce else ()
    return V(who, nonce, priority, (tag(who, nonce),), requires)


ALICE = b"A" * 32
BOB = b"B" * 32


def test_pool_import_ready_when_nothing_required() -> None:
    """A transaction at the account's current nonce is ready at once."""
    pool = TransactionPool()
    tx, changes = pool.import_transaction(b"x1", signed(ALICE, 0, 0), now=0)
    assert changes == [StatusChange(tx.hash, "ready")]
    assert pool.is_ready(tx.hash) and pool.has_ready()


def test_pool_future_promoted_when_gap_filled() -> None:
    """Nonce 1 waits in future until nonce 0 arrives, then both are ready."""
    pool = TransactionPool()
    t1, c1 = pool.import_transaction(b"x1", signed(ALICE, 1, 0), now=0)
    assert c1 == [StatusChange(t1.hash, "future")]
    assert not pool.has_ready()
    t0, c0 = pool.import_transaction(b"x0", signed(ALICE, 0, 0), now=0)
    assert c0 == [StatusChange(t0.hash, "ready"), StatusChange(t1.hash, "ready")]
    assert [t.hash for t in pool.ready_in_order()] == [t0.hash, t1.hash]


def test_pool_duplicate_is_already_imported() -> None:
    """The same bytes twice: 'already imported' (Substrate 1013)."""
    pool = TransactionPool()
    pool.import_transaction(b"x", signed(ALICE, 0, 0), now=0)
    with pytest.raises(AlreadyImportedError):
        pool.check_known(blake2_256(b"x"), now=0)
    with pytest.raises(AlreadyImportedError):
        pool.import_transaction(b"x", signed(ALICE, 0, 0), now=0)


def test_pool_included_transactions_are_banned_for_a_while() -> None:
    """After inclusion a re-submission is 'temporarily banned' until the ban expires."""
    pool = TransactionPool(ban_seconds=10)
    tx, _ = pool.import_transaction(b"x", signed(ALICE, 0, 0), now=0)
    pool.remove_included([tx.hash], now=1)
    assert len(pool) == 0
    with pytest.raises(TemporarilyBannedError):
        pool.check_known(tx.hash, now=5)
    pool.check_known(tx.hash, now=12)  # ban over


def test_pool_replacement_needs_higher_priority() -> None:
    """Same (sender, nonce) tag: lower or equal priority refused, higher usurps."""
    pool = TransactionPool()
    old, _ = pool.import_transaction(b"a", signed(ALICE, 0, 0, priority=5), now=0)
    with pytest.raises(TooLowPriorityError):
        pool.import_transaction(b"b", signed(ALICE, 0, 0, priority=5), now=0)
    new, changes = pool.import_transaction(b"c", signed(ALICE, 0, 0, priority=9), now=0)
    assert StatusChange(old.hash, {"usurped": "0x" + new.hash.hex()}) in changes
    assert old.hash not in pool and new.hash in pool


def test_pool_ready_order_respects_dependencies_and_priority() -> None:
    """Higher priority first, but never before what it requires."""
    pool = TransactionPool()
    a0, _ = pool.import_transaction(b"a0", signed(ALICE, 0, 0, priority=1), now=0)
    a1, _ = pool.import_transaction(b"a1", signed(ALICE, 1, 0, priority=100), now=0)
    b0, _ = pool.import_transaction(b"b0", signed(BOB, 0, 0, priority=50), now=0)
    order = [t.hash for t in pool.ready_in_order()]
    assert order == [b0.hash, a0.hash, a1.hash]
    assert [t.hash for t in pool.ready_in_order(max_count=1)] == [b0.hash]


def test_pool_revalidate_drops_invalid_and_reclassifies() -> None:
    """After a block, stale transactions go ('invalid'), the rest get their new validity."""
    pool = TransactionPool()
    a0, _ = pool.import_transaction(b"a0", signed(ALICE, 0, 0), now=0)
    a1, _ = pool.import_transaction(b"a1", signed(ALICE, 1, 0), now=0)

    def validate(data: bytes) -> V | str:
        return "Transaction is outdated" if data == b"a0" else signed(ALICE, 1, 1)

    changes = pool.revalidate(validate, now=1)
    assert StatusChange(a0.hash, "invalid") in changes
    assert a0.hash not in pool and pool.is_ready(a1.hash)
    with pytest.raises(TemporarilyBannedError):
        pool.check_known(a0.hash, now=2)


def test_pool_full_refuses_newcomer() -> None:
    """Past the count limit a new transaction is 'immediately dropped'."""
    pool = TransactionPool(ready_count=1, future_count=1)
    pool.import_transaction(b"a0", signed(ALICE, 0, 0), now=0)
    pool.import_transaction(b"b0", signed(BOB, 0, 0), now=0)
    with pytest.raises(ImmediatelyDroppedError):
        pool.import_transaction(b"c0", signed(b"C" * 32, 0, 0), now=0)


def test_pool_future_queue_limit() -> None:
    """The future queue has its own, smaller, limit."""
    pool = TransactionPool(ready_count=10, future_count=1)
    pool.import_transaction(b"a5", signed(ALICE, 5, 0), now=0)
    with pytest.raises(ImmediatelyDroppedError):
        pool.import_transaction(b"a6", signed(ALICE, 6, 0), now=0)


def test_pool_pending_in_submission_order() -> None:
    """author_pendingExtrinsics lists the pooled bytes in arrival order."""
    pool = TransactionPool()
    pool.import_transaction(b"2", signed(BOB, 0, 0), now=0)
    pool.import_transaction(b"1", signed(ALICE, 0, 0), now=0)
    assert pool.pending() == [b"2", b"1"]


def test_pool_revalidate_keeps_maybe_valid_and_demotes() -> None:
    """None keeps a transaction untouched; a dependency dropped demotes its dependent."""
    pool = TransactionPool()
    a0, _ = pool.import_transaction(b"a0", signed(ALICE, 0, 0), now=0)
    a1, _ = pool.import_transaction(b"a1", signed(ALICE, 1, 0), now=0)
    b0, _ = pool.import_transaction(b"b0", signed(BOB, 0, 0), now=0)

    verdicts: dict[bytes, V | str] = {
        b"a0": "Transaction has a bad signature",
        b"a1": signed(ALICE, 1, 0),
    }

    def validate(data: bytes) -> V | str | None:
        return verdicts.get(data)

    changes = pool.revalidate(validate, now=1)
    assert changes == [StatusChange(a0.hash, "invalid"), StatusChange(a1.hash, "future")]
    assert pool.is_ready(b0.hash) and not pool.is_ready(a1.hash)
