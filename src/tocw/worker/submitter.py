"""Sending the extrinsics the enclave signed: a durable outbox, nonce-ordered, retried.

Owns `Outbox` (an SQLite file in the data dir holding every enclave-signed extrinsic until the
chain's finalized nonce of the enclave account has passed it), `classify_rejection` (what a
node's refusal means for us) and `Submitter` (the task that drains the outbox).

Why an outbox, and why this way (the "never confirm twice, never lose a confirmation" design):
- The enclave signs confirmations and unshield_funds calls during block import and hands them
  to the host (OCALL submit_extrinsics) right after it committed the block. `enqueue` commits
  them to the outbox before returning, so a crash of the process after that point loses
  nothing: on restart the pending entries are sent again.
- Re-sending is safe because every entry carries a nonce of the enclave's account, and only
  this enclave holds that account's key: the chain includes at most one extrinsic per nonce.
  Re-sending the same bytes is answered "already imported" (still in the pool), "outdated"
  (included), or is included once. So duplicates are prevented by the chain's nonce rule, not
  by remembering what was sent, and a confirmation is never applied twice after a restart.
- An entry leaves the outbox when the enclave account's nonce at the finalized head is above
  it: then the chain has finalized the extrinsic that used the nonce (which can only be this
  one). Entries the node accepted but that do not get finalized (the node restarted and lost
  its pool) are re-sent after `resend_after` seconds.
- On restart the host sets the enclave's nonce to max(chain's next index, highest outbox nonce
  + 1) (`Outbox.next_nonce`), so fresh extrinsics never reuse a pending entry's nonce.
- The one remaining window: a crash after the enclave committed a block and before the host
  wrote its extrinsics to the outbox loses that block's confirmation; the block's state is
  still correct and later blocks are confirmed. The outbox runs SQLite in WAL mode with
  synchronous=NORMAL: a commit survives the process being killed, while an OS crash or power
  loss may also drop the last few entries, which widens the same window (a lost confirmation,
  never a duplicate). synchronous=FULL would add a second fsync per imported block to the
  enclave's own, a large share of catch-up time (bench/worker.py). Closing the window needs
  the enclave to keep signed extrinsics in its own commit, which the enclave API does not
  offer yet.

Sending: due entries go out in nonce order, up to `batch_size` per JSON-RPC batch (a catch-up
signs one confirmation per block, and one round trip per extrinsic would cost more than the
import itself). Refusals: "outdated"/Stale means the nonce was used (the entry is done);
"already imported", "too low priority" and "temporarily banned" mean an extrinsic with that
nonce is already in the pool or was just included; Future, exhausted resources, inability to
pay fees, an unknown validity, a full pool and lost connections are retried with exponential
backoff, the first refused nonce first (later ones the node accepted wait in its future queue).
An entry the chain calls invalid (bad proof after a runtime upgrade, ancient birth block) can
only be fixed by re-signing it in the enclave: with a `resign` function the suffix of the outbox
from it on is re-signed in place (same nonces); without one it is retried at the longest backoff
with an error in the log, since skipping it would leave a nonce gap that blocks every later
extrinsic.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from tocw.primitives.types import AccountId
from tocw.worker import WorkerError

logger = logging.getLogger(__name__)

OUTBOX_FILE: Final = "outbox.sqlite3"
MIN_BACKOFF: Final = 0.5
MAX_BACKOFF: Final = 30.0
DEFAULT_RESEND_AFTER: Final = 30.0
DEFAULT_POLL_INTERVAL: Final = 2.0
DEFAULT_BATCH_SIZE: Final = 256  # extrinsics per JSON-RPC batch (a catch-up signs one a block)
DEFAULT_COALESCE: Final = 0.05  # seconds to let a burst of queued extrinsics gather

# Substrate author RPC error codes (sc-rpc-api author/error.rs, BASE_ERROR 1000).
POOL_INVALID_TX: Final = 1010
POOL_UNKNOWN_VALIDITY: Final = 1011
POOL_TEMPORARILY_BANNED: Final = 1012
POOL_ALREADY_IMPORTED: Final = 1013
POOL_TOO_LOW_PRIORITY: Final = 1014
POOL_CYCLE_DETECTED: Final = 1015
POOL_IMMEDIATELY_DROPPED: Final = 1016

# sp-runtime TransactionValidityError texts (as nodes put them in the error's data).
_STALE_TEXTS: Final = ("transaction is outdated",)
_RETRY_TEXTS: Final = (
    "transaction will be valid in the future",
    "transaction would exhaust the block limits",
    "inability to pay some fees",
    "could not lookup information",
)


class SubmissionError(WorkerError):
    """The outbox cannot be opened or written (corrupt file, disk full)."""


class NodeRejectedError(WorkerError):
    """A node refused an extrinsic with a JSON-RPC error (raised by the transport)."""

    def __init__(self, code: int, message: str, data: object = None) -> None:
        super().__init__(f"{code}: {message}" + (f" ({data})" if data is not None else ""))
        self.code = code
        self.message = message
        self.data = data


class Rejection(enum.Enum):
    """What a node's refusal means for one outbox entry."""

    USED = "used"  # the nonce is used on chain: the entry (or its twin) was included
    IN_POOL = "in_pool"  # an extrinsic with this nonce is already pending in the pool
    RETRY = "retry"  # may succeed later: back off and send again
    INVALID = "invalid"  # can never succeed as signed: needs re-signing


def classify_rejection(code: int, message: str, data: object = None) -> Rejection:
    """Map a node's author_submitExtrinsic error to what the submitter does about it."""
    text = f"{message} {data if data is not None else ''}".lower()
    if code in (POOL_ALREADY_IMPORTED, POOL_TOO_LOW_PRIORITY, POOL_TEMPORARILY_BANNED):
        return Rejection.IN_POOL
    if code == POOL_INVALID_TX:
        if any(t in text for t in _STALE_TEXTS):
            return Rejection.USED
        if any(t in text for t in _RETRY_TEXTS):
            return Rejection.RETRY
        return Rejection.INVALID
    return Rejection.RETRY


class SubmitTransport(Protocol):
    """What the submitter needs from the parentchain (an adapter over the chain client)."""

    async def submit_extrinsics(
        self, extrinsics: Sequence[bytes]
    ) -> list[NodeRejectedError | None]:
        """author_submitExtrinsic for each, in order (one JSON-RPC batch): None where the node
        accepted it, its refusal where not. Raises (any exception) when the node could not be
        asked at all; the submitter retries after a backoff."""
        ...

    async def finalized_nonce(self, account: AccountId) -> int:
        """The account's nonce in System.Account at the finalized head."""
        ...


Inspect = Callable[[bytes], tuple[int, str]]  # extrinsic -> (nonce, label for the log)
Resign = Callable[[Sequence[bytes], int], Sequence[bytes]]  # (extrinsics, first nonce) -> new


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    nonce: int
    extrinsic: bytes
    label: str


class Outbox:
    """Pending enclave-signed extrinsics by nonce, in an SQLite file (thread-safe).

    Every write is its own transaction (WAL, synchronous=NORMAL: durable against a killed
    process, see the module docstring). A second entry for a nonce replaces the first
    (re-signing in place).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS outbox ("
                " nonce INTEGER PRIMARY KEY, extrinsic BLOB NOT NULL, label TEXT NOT NULL,"
                " created REAL NOT NULL)"
            )
        except sqlite3.Error as e:
            raise SubmissionError(f"cannot open the outbox {self.path}: {e}") from None

    def _write(self, sql: str, rows: Sequence[tuple[object, ...]]) -> int:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                count = 0
                for row in rows:
                    count += self._db.execute(sql, row).rowcount
                self._db.execute("COMMIT")
                return count
            except sqlite3.Error as e:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise SubmissionError(f"cannot write the outbox {self.path}: {e}") from None

    def add(self, entries: Sequence[OutboxEntry]) -> None:
        now = time.time()
        self._write(
            "INSERT OR REPLACE INTO outbox (nonce, extrinsic, label, created) VALUES (?, ?, ?, ?)",
            [(e.nonce, e.extrinsic, e.label, now) for e in entries],
        )

    def pending(self) -> list[OutboxEntry]:
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT nonce, extrinsic, label FROM outbox ORDER BY nonce"
                ).fetchall()
            except sqlite3.Error as e:
                raise SubmissionError(f"cannot read the outbox {self.path}: {e}") from None
        return [OutboxEntry(int(n), bytes(x), str(label)) for n, x, label in rows]

    def remove_below(self, nonce: int) -> int:
        """Drop the entries with a nonce below `nonce` (finalized); how many were dropped."""
        return self._write("DELETE FROM outbox WHERE nonce < ?", [(nonce,)])

    def next_nonce(self) -> int | None:
        """Highest pending nonce + 1, None when the outbox is empty."""
        with self._lock:
            row = self._db.execute("SELECT MAX(nonce) FROM outbox").fetchone()
        return None if row is None or row[0] is None else int(row[0]) + 1

    def __len__(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


@dataclass(slots=True)
class _Sent:
    at: float  # monotonic time the node accepted it


class Submitter:
    """Drains the outbox into the node, in nonce order, until it is closed.

    `enqueue` may be called from any thread (the enclave's block import runs in a worker
    thread); `run` is the task that sends. `settled()` waits until every entry is at least in
    the node's pool (used before a clean shutdown).
    """

    def __init__(
        self,
        outbox: Outbox,
        transport: SubmitTransport,
        account: AccountId,
        inspect: Inspect,
        *,
        resign: Resign | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        resend_after: float = DEFAULT_RESEND_AFTER,
        min_backoff: float = MIN_BACKOFF,
        max_backoff: float = MAX_BACKOFF,
        on_result: Callable[[str, bool], None] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        coalesce: float = DEFAULT_COALESCE,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        self.outbox = outbox
        self._transport = transport
        self._account = account
        self._inspect = inspect
        self._resign = resign
        self._poll_interval = poll_interval
        self._resend_after = resend_after
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._on_result = on_result
        self._batch_size = batch_size
        self._coalesce = coalesce
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._fresh: list[OutboxEntry] = []  # queued since the last pass (any thread appends)
        self._fresh_lock = threading.Lock()
        self._rescan = True  # scan the whole outbox on the next pass (start, after failures)
        self._head_seen = True
        self._last_prune = 0.0
        self._last_scan = 0.0
        self._sent: dict[int, _Sent] = {}
        self._backoff = 0.0
        self._retry_at = 0.0
        self._finalized_nonce: int | None = None
        self.submitted = 0
        self.last_error: str | None = None

    # -- producer side (any thread) ------------------------------------------------------------

    def enqueue(self, extrinsics: Sequence[bytes]) -> None:
        """Durably add enclave-signed extrinsics; returns once they are committed."""
        entries = []
        for xt in extrinsics:
            nonce, label = self._inspect(bytes(xt))
            entries.append(OutboxEntry(nonce, bytes(xt), label))
        if not entries:
            return
        self.outbox.add(entries)
        for e in entries:
            logger.debug("queued extrinsic nonce=%d %s", e.nonce, e.label)
        with self._fresh_lock:
            self._fresh.extend(entries)
        self._wake_threadsafe()

    def _wake_threadsafe(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: run() is over
                loop.call_soon_threadsafe(self._wake.set)

    # -- the sending task ----------------------------------------------------------------------

    async def run(self) -> None:
        """Send until cancelled; connection problems are logged and retried, never raised."""
        self._loop = asyncio.get_running_loop()
        while True:
            try:
                await self.pump()
            except SubmissionError:
                raise
            except Exception as e:  # a transport failure: retry after the backoff
                self._rescan = True
                self._note_failure(f"{type(e).__name__}: {e}")
            self._wake.clear()
            delay = self._poll_interval
            if self._retry_at:
                delay = max(0.0, min(delay, self._retry_at - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            # Let a burst (one confirmation per block while catching up) gather into one batch.
            await asyncio.sleep(self._coalesce)

    def wake(self, *, new_head: bool = False) -> None:
        """Look at the outbox now; `new_head`: a finalized head arrived, so check what the
        chain finalized (and prune) too."""
        if new_head:
            self._head_seen = True
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self.outbox)

    @property
    def unsent(self) -> int:
        """Entries the node has not accepted yet (in this process's lifetime)."""
        return sum(1 for e in self.outbox.pending() if e.nonce not in self._sent)

    async def settled(self, timeout: float) -> bool:
        """Wait (bounded) until every outbox entry was accepted by the node at least once."""
        deadline = time.monotonic() + timeout
        self._rescan = True
        while self.unsent:
            if time.monotonic() >= deadline:
                return False
            self._wake.set()
            await asyncio.sleep(0.05)
        return True

    async def pump(self) -> None:
        """One pass: prune what the finalized chain used, send what is due, in nonce order.

        Cheap when nothing happened: the chain is asked for the finalized nonce only after a
        new head (or once per poll interval), and the outbox is scanned in full only once per
        poll interval, after a failure, or at start; otherwise just the freshly queued entries
        are sent.
        """
        now = time.monotonic()
        if self._head_seen or now - self._last_prune >= self._poll_interval:
            self._head_seen = False
            self._last_prune = now
            await self._prune()
        if self._retry_at and time.monotonic() < self._retry_at:
            return
        self._retry_at = 0.0
        with self._fresh_lock:
            fresh, self._fresh = self._fresh, []
        if self._rescan or now - self._last_scan >= self._poll_interval:
            self._rescan = False
            self._last_scan = now
            candidates = self.outbox.pending()
        else:
            candidates = sorted(fresh, key=lambda e: e.nonce)
        due = [
            e
            for e in candidates
            if e.nonce not in self._sent or now - self._sent[e.nonce].at >= self._resend_after
        ]
        for start in range(0, len(due), self._batch_size):
            chunk = due[start : start + self._batch_size]
            results = await self._transport.submit_extrinsics([e.extrinsic for e in chunk])
            if len(results) != len(chunk):
                raise SubmissionError("the transport answered a batch with the wrong count")
            if not self._settle(chunk, results, due[start:]):
                self._rescan = True  # back off; then the failed entry goes first
                return

    async def _prune(self) -> None:
        nonce = await self._transport.finalized_nonce(self._account)
        if nonce == self._finalized_nonce:
            return
        self._finalized_nonce = nonce
        if self.outbox.remove_below(nonce):
            logger.debug("outbox pruned below finalized nonce %d", nonce)
        for n in [n for n in self._sent if n < nonce]:
            del self._sent[n]

    def _settle(
        self,
        chunk: Sequence[OutboxEntry],
        results: Sequence[NodeRejectedError | None],
        rest: Sequence[OutboxEntry],
    ) -> bool:
        """Book the node's answers to one batch, in nonce order; False if one must be retried.

        Entries after a refused one that the node accepted stay accepted: they wait in the
        pool's future queue until the refused nonce gets in.
        """
        ok = True
        accepted: list[OutboxEntry] = []
        for position, (entry, rejection) in enumerate(zip(chunk, results, strict=True)):
            if rejection is None:
                accepted.append(entry)
                self._accepted(entry)
                continue
            kind = classify_rejection(rejection.code, rejection.message, rejection.data)
            if kind in (Rejection.USED, Rejection.IN_POOL):
                logger.info(
                    "extrinsic nonce=%d %s: %s (%s)",
                    entry.nonce,
                    entry.label,
                    kind.value,
                    rejection,
                )
                self._accepted(entry)
                continue
            self._result(entry, accepted=False)
            if not ok:
                continue  # only the first failure of a batch decides what happens next
            ok = False
            if kind is Rejection.INVALID and self._resign is not None:
                self._resign_suffix(rest[position:], str(rejection))
                continue
            if kind is Rejection.INVALID:
                logger.error(
                    "extrinsic nonce=%d %s is invalid on this chain (%s) and the enclave cannot "
                    "re-sign it: later extrinsics wait behind it; retrying",
                    entry.nonce,
                    entry.label,
                    rejection,
                )
                self._backoff = self._max_backoff / 2
            self._note_failure(f"nonce={entry.nonce} {entry.label}: {rejection}")
        if accepted:
            first, last = accepted[0], accepted[-1]
            if len(accepted) == 1:
                logger.info("submitted extrinsic nonce=%d %s", first.nonce, first.label)
            else:
                logger.info(
                    "submitted %d extrinsics nonce=%d..%d", len(accepted), first.nonce, last.nonce
                )
            for entry in accepted:
                logger.debug("submitted extrinsic nonce=%d %s", entry.nonce, entry.label)
        return ok

    def _accepted(self, entry: OutboxEntry) -> None:
        self._sent[entry.nonce] = _Sent(time.monotonic())
        self._backoff = 0.0
        self.submitted += 1
        self.last_error = None
        self._result(entry, accepted=True)

    def _result(self, entry: OutboxEntry, *, accepted: bool) -> None:
        """Tell the observer (metrics) the call's name and whether the node took it."""
        if self._on_result is not None:
            self._on_result(entry.label.split("(", 1)[0], accepted)

    def _note_failure(self, reason: str) -> None:
        self._backoff = min(self._max_backoff, max(self._min_backoff, self._backoff * 2))
        self._retry_at = time.monotonic() + self._backoff
        self.last_error = reason
        logger.warning("submission failed, retrying in %.1f s: %s", self._backoff, reason)

    def _resign_suffix(self, suffix: Sequence[OutboxEntry], reason: str) -> None:
        assert self._resign is not None
        first = suffix[0].nonce
        logger.warning(
            "extrinsic nonce=%d %s is invalid (%s): re-signing %d extrinsic(s) from nonce %d",
            first,
            suffix[0].label,
            reason,
            len(suffix),
            first,
        )
        fresh = self._resign([e.extrinsic for e in suffix], first)
        entries = []
        for xt in fresh:
            nonce, label = self._inspect(bytes(xt))
            entries.append(OutboxEntry(nonce, bytes(xt), label))
        self.outbox.add(entries)
        for e in entries:
            self._sent.pop(e.nonce, None)
        self._retry_at = 0.0
        self._rescan = True
        self._wake.set()
