"""The dev chain's transaction pool: ready and future queues ordered by tags, as Substrate's.

The runtime's `validate_transaction` says what each extrinsic `provides` and `requires`
(for signed extrinsics: the (sender, nonce) tags). A transaction whose required tags are all
provided by ready transactions, or that requires nothing, is *ready*; otherwise it waits in the
*future* queue until a ready transaction or a new block satisfies it. Block building takes the
ready set in dependency order, higher priority first.

The pool is pure bookkeeping: it never validates (the node asks the runtime and passes the
result in) and never reads a clock (callers pass `now`). Every mutation returns the status
changes it caused, which the node turns into `author_extrinsicUpdate` notifications, so the
pool itself has no subscribers and no I/O.

Differences from Substrate, on purpose: when a queue is full a new transaction is refused
("Immediately Dropped") instead of evicting the lowest-priority one; there is one fork (the dev
chain has one author), so there is no retraction.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tocw.chain.errors import ChainError
from tocw.primitives.hashing import blake2_256

# Substrate's defaults (sc-transaction-pool Options): ready 8192 tx / 20 MiB, future 1/10 of it.
DEFAULT_READY_COUNT = 8192
DEFAULT_READY_BYTES = 20 * 1024 * 1024
DEFAULT_FUTURE_COUNT = 819
DEFAULT_FUTURE_BYTES = 2 * 1024 * 1024
# How long an included or invalid transaction stays banned (Substrate: 30 minutes), so that a
# client re-submitting an already included extrinsic hears "temporarily banned".
DEFAULT_BAN_SECONDS = 30 * 60.0


class Validity(Protocol):
    """What the pool needs from the runtime's ValidTransaction (structural, so the pool does not
    import the runtime)."""

    @property
    def sender(self) -> bytes: ...
    @property
    def nonce(self) -> int: ...
    @property
    def priority(self) -> int: ...
    @property
    def provides(self) -> tuple[bytes, ...]: ...
    @property
    def requires(self) -> tuple[bytes, ...]: ...


class PoolError(ChainError):
    """Root of the pool's refusals; each maps to one Substrate author error code in rpc_methods
    (the package's tree is in tocw.chain.errors)."""


class AlreadyImportedError(PoolError):
    """The same extrinsic (by hash) is already in the pool."""

    def __init__(self, tx_hash: bytes) -> None:
        super().__init__(f"transaction 0x{tx_hash.hex()} is already in the pool")
        self.tx_hash = tx_hash


class TemporarilyBannedError(PoolError):
    """Included or found invalid recently; re-submission is refused for a while."""

    def __init__(self, tx_hash: bytes) -> None:
        super().__init__(f"transaction 0x{tx_hash.hex()} is temporarily banned")
        self.tx_hash = tx_hash


class TooLowPriorityError(PoolError):
    """Another transaction provides the same tag with at least this priority."""

    def __init__(self, old: int, new: int) -> None:
        super().__init__(f"priority is too low: ({old} vs {new})")
        self.old = old
        self.new = new


class ImmediatelyDroppedError(PoolError):
    """The pool is full."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class PoolTransaction:
    hash: bytes
    data: bytes
    validity: Validity
    seq: int  # insertion order, breaks priority ties (first come first served)


# Status values as Substrate's TransactionStatus JSON: "ready", "future", "dropped", "invalid"
# or {"usurped": hash}. In-block and finalized statuses are the node's business.
Status = str | dict[str, str]


@dataclass(frozen=True, slots=True)
class StatusChange:
    tx_hash: bytes
    status: Status

    @property
    def is_final(self) -> bool:
        """After this status the transaction is gone from the pool for good."""
        return isinstance(self.status, dict) or self.status in ("dropped", "invalid")


@dataclass
class TransactionPool:
    ready_count: int = DEFAULT_READY_COUNT
    ready_bytes: int = DEFAULT_READY_BYTES
    future_count: int = DEFAULT_FUTURE_COUNT
    future_bytes: int = DEFAULT_FUTURE_BYTES
    ban_seconds: float = DEFAULT_BAN_SECONDS
    _txs: dict[bytes, PoolTransaction] = field(default_factory=dict)
    _ready: set[bytes] = field(default_factory=set)
    _by_tag: dict[bytes, bytes] = field(default_factory=dict)  # provided tag -> tx hash
    _banned_until: dict[bytes, float] = field(default_factory=dict)
    _seq: int = 0

    # ---- queries -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._txs)

    def __contains__(self, tx_hash: bytes) -> bool:
        return tx_hash in self._txs

    def get(self, tx_hash: bytes) -> PoolTransaction | None:
        return self._txs.get(tx_hash)

    def is_ready(self, tx_hash: bytes) -> bool:
        return tx_hash in self._ready

    def has_ready(self) -> bool:
        return bool(self._ready)

    def transactions(self) -> list[PoolTransaction]:
        return list(self._txs.values())

    def pending(self) -> list[bytes]:
        """All pooled extrinsics in insertion order (author_pendingExtrinsics)."""
        return [tx.data for tx in sorted(self._txs.values(), key=lambda t: t.seq)]

    def ready_in_order(
        self, max_count: int | None = None, max_bytes: int | None = None
    ) -> list[PoolTransaction]:
        """Ready transactions in an order a block can include them: a transaction comes after
        the ones providing what it requires; among those unlocked, higher priority first."""
        ready = [self._txs[h] for h in self._ready]
        providers: dict[bytes, bytes] = {}
        for tx in ready:
            for tag in tx.validity.provides:
                providers[tag] = tx.hash
        waiting: dict[bytes, int] = {}
        dependents: dict[bytes, list[bytes]] = {}
        heap: list[tuple[int, int, bytes]] = []
        for tx in ready:
            deps = {providers[t] for t in tx.validity.requires if t in providers}
            deps.discard(tx.hash)
            waiting[tx.hash] = len(deps)
            for d in deps:
                dependents.setdefault(d, []).append(tx.hash)
            if not deps:
                heapq.heappush(heap, (-tx.validity.priority, tx.seq, tx.hash))
        out: list[PoolTransaction] = []
        size = 0
        while heap:
            _, _, h = heapq.heappop(heap)
            tx = self._txs[h]
            if max_count is not None and len(out) >= max_count:
                break
            if max_bytes is not None and size + len(tx.data) > max_bytes:
                continue
            out.append(tx)
            size += len(tx.data)
            for dep in dependents.get(h, ()):
                waiting[dep] -= 1
                if waiting[dep] == 0:
                    unlocked = self._txs[dep]
                    heapq.heappush(heap, (-unlocked.validity.priority, unlocked.seq, dep))
        return out

    # ---- submission ----------------------------------------------------------------------

    def check_known(self, tx_hash: bytes, now: float) -> None:
        """Refuse a transaction the pool already holds or has banned, before the (costly)
        runtime validation, as Substrate's pool does."""
        if tx_hash in self._txs:
            raise AlreadyImportedError(tx_hash)
        until = self._banned_until.get(tx_hash)
        if until is not None:
            if until > now:
                raise TemporarilyBannedError(tx_hash)
            del self._banned_until[tx_hash]

    def import_transaction(
        self, data: bytes, validity: Validity, now: float
    ) -> tuple[PoolTransaction, list[StatusChange]]:
        """Add a validated transaction; returns it and every status change this caused (its
        own "ready"/"future" first, then usurped or promoted transactions)."""
        tx_hash = blake2_256(data)
        self.check_known(tx_hash, now)
        changes: list[StatusChange] = []
        # A transaction providing a tag that another already provides replaces it only with a
        # strictly higher priority (Substrate's replacement rule).
        replaced: dict[bytes, PoolTransaction] = {}
        for tag in validity.provides:
            other_hash = self._by_tag.get(tag)
            if other_hash is not None:
                other = self._txs[other_hash]
                if validity.priority <= other.validity.priority:
                    raise TooLowPriorityError(other.validity.priority, validity.priority)
                replaced[other_hash] = other
        self._check_limits(len(data), validity, list(replaced.values()))
        for other in replaced.values():
            self._remove(other.hash)
            changes.append(StatusChange(other.hash, {"usurped": "0x" + tx_hash.hex()}))
        self._seq += 1
        tx = PoolTransaction(tx_hash, data, validity, self._seq)
        self._txs[tx_hash] = tx
        for tag in validity.provides:
            self._by_tag[tag] = tx_hash
        promoted = self._reclassify() if replaced else self._promote(tx)
        changes.insert(0, StatusChange(tx_hash, "ready" if tx_hash in self._ready else "future"))
        changes.extend(StatusChange(h, "ready") for h in sorted(promoted) if h != tx_hash)
        return tx, changes

    def _is_satisfied(
        self, requires: Iterable[bytes], excluded: set[bytes] | frozenset[bytes] = frozenset()
    ) -> bool:
        for tag in requires:
            h = self._by_tag.get(tag)
            if h is None or h not in self._ready or h in excluded:
                return False
        return True

    def _promote(self, tx: PoolTransaction) -> set[bytes]:
        """Incremental classification of a newcomer: if its requirements are met it becomes
        ready, and so may future transactions that waited for what it provides."""
        if not self._is_satisfied(tx.validity.requires):
            return set()
        self._ready.add(tx.hash)
        promoted = {tx.hash}
        progress = len(self._txs) > len(self._ready)  # only when there are futures at all
        while progress:
            progress = False
            for h, other in self._txs.items():
                if h not in self._ready and self._is_satisfied(other.validity.requires):
                    self._ready.add(h)
                    promoted.add(h)
                    progress = True
        return promoted

    def _check_limits(
        self, size: int, validity: Validity, replaced: Sequence[PoolTransaction]
    ) -> None:
        freed = {tx.hash for tx in replaced}
        txs = [tx for h, tx in self._txs.items() if h not in freed]
        count, nbytes = len(txs), sum(len(tx.data) for tx in txs)
        # Checked against the whole pool (ready + future budgets): which queue the newcomer
        # lands in is only known after classification, and a full pool must refuse either way.
        if count + 1 > self.ready_count + self.future_count:
            raise ImmediatelyDroppedError("the pool is full (transaction count limit)")
        if nbytes + size > self.ready_bytes + self.future_bytes:
            raise ImmediatelyDroppedError("the pool is full (size limit)")
        future = [tx for tx in txs if tx.hash not in self._ready]
        if validity.requires and not self._is_satisfied(validity.requires, freed):
            if len(future) + 1 > self.future_count:
                raise ImmediatelyDroppedError("the future queue is full (count limit)")
            if sum(len(t.data) for t in future) + size > self.future_bytes:
                raise ImmediatelyDroppedError("the future queue is full (size limit)")

    # ---- after a block -------------------------------------------------------------------

    def remove_included(self, tx_hashes: Iterable[bytes], now: float) -> None:
        """Drop transactions a block included and ban them so a re-submission is refused."""
        for h in tx_hashes:
            self._remove(h)
            self._banned_until[h] = now + self.ban_seconds
        self._reclassify()

    def remove_invalid(self, tx_hashes: Iterable[bytes], now: float) -> list[StatusChange]:
        changes = []
        for h in tx_hashes:
            if h in self._txs:
                self._remove(h)
                changes.append(StatusChange(h, "invalid"))
            self._banned_until[h] = now + self.ban_seconds
        self._reclassify()
        return changes

    def revalidate(
        self, validate: Callable[[bytes], Validity | str | None], now: float
    ) -> list[StatusChange]:
        """Re-check every pooled transaction against the new best state. `validate` returns the
        new validity, a reason string when the transaction became invalid, or None to keep
        the transaction as it is (not valid now, but it may become so)."""
        invalid: list[bytes] = []
        was_ready = set(self._ready)
        for h, tx in list(self._txs.items()):
            result = validate(tx.data)
            if result is None:
                continue
            if isinstance(result, str):
                invalid.append(h)
            else:
                for tag in tx.validity.provides:
                    self._by_tag.pop(tag, None)
                self._txs[h] = PoolTransaction(h, tx.data, result, tx.seq)
                for tag in result.provides:
                    self._by_tag[tag] = h
        changes = self.remove_invalid(invalid, now)
        changes.extend(StatusChange(h, "ready") for h in sorted(self._ready - was_ready))
        demoted = sorted(h for h in was_ready - self._ready if h in self._txs)
        changes.extend(StatusChange(h, "future") for h in demoted)
        self._expire_bans(now)
        return changes

    def _expire_bans(self, now: float) -> None:
        for h in [h for h, until in self._banned_until.items() if until <= now]:
            del self._banned_until[h]

    def _remove(self, tx_hash: bytes) -> None:
        tx = self._txs.pop(tx_hash, None)
        self._ready.discard(tx_hash)
        if tx is not None:
            for tag in tx.validity.provides:
                if self._by_tag.get(tag) == tx_hash:
                    del self._by_tag[tag]

    def _reclassify(self) -> set[bytes]:
        """Recompute the ready set from scratch: a fixpoint over provided tags. Returns the
        hashes that became ready. Pools here are small (a dev chain), so clarity wins over
        Substrate's incremental graph."""
        before = set(self._ready)
        ready: set[bytes] = set()
        provided: set[bytes] = set()
        pending = dict(self._txs)
        progress = True
        while progress:
            progress = False
            for h, tx in list(pending.items()):
                if all(tag in provided for tag in tx.validity.requires):
                    ready.add(h)
                    provided.update(tx.validity.provides)
                    del pending[h]
                    progress = True
        self._ready = ready
        return ready - before
