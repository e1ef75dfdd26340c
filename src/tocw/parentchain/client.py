"""The Substrate client glue shared by the worker and the CLI: a parentchain over JSON-RPC.

Owns `ParentchainClient` (typed, async calls of the standard Substrate JSON-RPC API: heads,
headers, blocks, storage, read proofs, runtime version and metadata, nonces, submission and
watching of extrinsics, finalized-head subscriptions), the catch-up fetcher `iter_blocks` /
`blocks_range`, and `ReconnectingClient` (reconnect with capped exponential backoff, retry of
idempotent calls, and a finalized-head stream that resubscribes by itself).

Only standard RPC methods are used, in the forms every Substrate node since polkadot-v0.9.x
serves, so the worker works against any node with the Teerex and EnclaveBridge pallets; the
dev chain gets no special case. Every failure surfaces as a ParentchainError (errors.py).

Catch-up is the hot path (target >= 500 finalized blocks/s from a local node). Blocks are
fetched in windows: one `chain_getBlockHash([n..])` call (the list form) for a window's hashes,
then one JSON-RPC batch with `chain_getBlock`, `state_getStorage(System.Events)` and, when
asked, `state_getReadProof([System.Events])` for each of its blocks. Several windows are in
flight at once on the one connection (pipelining), and blocks are yielded in order as soon as
their window is complete. Each block is checked against the hash it was asked for and against
its predecessor, so a reorganisation during the fetch or a confused node is an error here
rather than a surprise in the enclave's light client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, TypeVar

from tocw.parentchain.errors import (
    ExtrinsicWatchError,
    InvalidNodeResponseError,
    ParentchainConnectionError,
    ParentchainError,
    ParentchainTimeoutError,
    SubscriptionLaggedError,
    UnknownBlockError,
    node_error,
)
from tocw.primitives.errors import PrimitivesError
from tocw.primitives.events import EventRecord, decode_events
from tocw.primitives.extrinsic import ExtrinsicSigner, build_signed_extrinsic, extrinsic_hash
from tocw.primitives.hashing import storage_prefix
from tocw.primitives.header import Header, SignedBlock, header_from_json, signed_block_from_json
from tocw.primitives.metadata import IMMORTAL_ERA, Era, RuntimeMetadata
from tocw.primitives.ss58 import ss58_encode
from tocw.primitives.types import AccountId, BlockHash, BlockNumber, Nonce, to_hex
from tocw.rpc.client import DEFAULT, RpcClient, Subscription, Timeout
from tocw.rpc.errors import (
    RpcCallError,
    RpcConnectionError,
    RpcProtocolError,
    RpcTimeoutError,
    SubscriptionOverflowError,
)
from tocw.rpc.messages import Params

SYSTEM_EVENTS_KEY: Final = storage_prefix("System", "Events")
_SYSTEM_EVENTS_HEX: Final = to_hex(SYSTEM_EVENTS_KEY)
EMPTY_EVENTS: Final = b"\x00"  # SCALE of an empty Vec<EventRecord>: what "no value" means
DEFAULT_WINDOW: Final = 64  # blocks per fetch window
DEFAULT_DEPTH: Final = 4  # windows in flight at once
MAX_HASHES_PER_CALL: Final = 1024

T = TypeVar("T")
_log = logging.getLogger(__name__)


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuntimeVersion:
    """`state_getRuntimeVersion`."""

    spec_name: str
    impl_name: str
    authoring_version: int
    spec_version: int
    impl_version: int
    transaction_version: int
    state_version: int
    apis: tuple[tuple[bytes, int], ...]

    @classmethod
    def from_json(cls, value: Any) -> RuntimeVersion:
        try:
            apis = tuple((_hex(api_id, "api id", 8), int(ver)) for api_id, ver in value["apis"])
            return cls(
                spec_name=str(value["specName"]),
                impl_name=str(value["implName"]),
                authoring_version=_uint(value["authoringVersion"], "authoringVersion"),
                spec_version=_uint(value["specVersion"], "specVersion"),
                impl_version=_uint(value["implVersion"], "implVersion"),
                transaction_version=_uint(value["transactionVersion"], "transactionVersion"),
                state_version=_uint(value.get("stateVersion", 0), "stateVersion"),
                apis=apis,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidNodeResponseError(f"malformed runtime version: {e!r}") from None


@dataclass(frozen=True, slots=True)
class ReadProof:
    """`state_getReadProof`: trie nodes proving values against the state root of `at`."""

    at: BlockHash
    proof: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class ParentchainBlock:
    """A block as catch-up fetches it: what the enclave's block import takes.

    `events` is the raw System.Events value (SCALE Vec<EventRecord>; an empty Vec when the
    block stores none) or None when not fetched; `events_proof` proves it against the header's
    state root when fetched.
    """

    hash: BlockHash
    signed: SignedBlock
    events: bytes | None = None
    events_proof: tuple[bytes, ...] = ()

    @property
    def header(self) -> Header:
        return self.signed.block.header

    @property
    def number(self) -> BlockNumber:
        return self.signed.block.header.number

    @property
    def extrinsics(self) -> tuple[bytes, ...]:
        return self.signed.block.extrinsics


FINAL_STATUSES: Final = frozenset({"finalized", "usurped", "dropped", "invalid", "finalityTimeout"})
_HASH_STATUSES: Final = frozenset({"inBlock", "retracted", "finalityTimeout", "finalized"})
_PLAIN_STATUSES: Final = frozenset({"future", "ready", "dropped", "invalid"})
_DETAIL_STATUSES: Final = frozenset({"broadcast", "usurped"})


@dataclass(frozen=True, slots=True)
class ExtrinsicStatus:
    """One `author_extrinsicUpdate` (Substrate's TransactionStatus).

    kind: future, ready, broadcast, inBlock, retracted, finalityTimeout, finalized, usurped,
    dropped or invalid. `block_hash` for the block-bound kinds; `detail` carries broadcast's
    peers or usurped's replacing transaction hash.
    """

    kind: str
    block_hash: BlockHash | None = None
    detail: Any = None

    @property
    def is_final(self) -> bool:
        return self.kind in FINAL_STATUSES

    @classmethod
    def from_json(cls, value: Any) -> ExtrinsicStatus:
        if isinstance(value, str) and value in _PLAIN_STATUSES:
            return cls(value)
        if isinstance(value, dict) and len(value) == 1:
            ((kind, payload),) = value.items()
            if kind in _HASH_STATUSES:
                return cls(kind, BlockHash(_hex(payload, kind, 32)))
            if kind in _DETAIL_STATUSES:
                return cls(kind, None, payload)
        raise InvalidNodeResponseError(f"unknown extrinsic status {value!r}")


# --- the client --------------------------------------------------------------------------------


class ParentchainClient:
    """Typed access to one Substrate node over one JSON-RPC connection.

    `async with await ParentchainClient.connect(url) as chain:`. Metadata is cached per spec
    version and decoded off the event loop; the genesis hash is cached.
    """

    def __init__(
        self,
        rpc: RpcClient,
        *,
        window: int = DEFAULT_WINDOW,
        depth: int = DEFAULT_DEPTH,
    ) -> None:
        if window < 1 or depth < 1:
            raise ValueError("window and depth must be positive")
        self.rpc = rpc
        self.window = window
        self.depth = depth
        self._genesis: BlockHash | None = None
        self._metadata: dict[int, RuntimeMetadata] = {}
        self._metadata_lock = asyncio.Lock()

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        window: int = DEFAULT_WINDOW,
        depth: int = DEFAULT_DEPTH,
        **rpc_options: Any,
    ) -> ParentchainClient:
        """Connect to a node; `rpc_options` go to RpcClient (timeout, ssl_context, ...)."""
        try:
            rpc = await RpcClient.connect(url, **rpc_options)
        except RpcConnectionError as e:
            raise ParentchainConnectionError(str(e)) from e
        return cls(rpc, window=window, depth=depth)

    @property
    def url(self) -> str:
        return self.rpc.url

    @property
    def connected(self) -> bool:
        return self.rpc.connected

    async def close(self) -> None:
        await self.rpc.close()

    async def __aenter__(self) -> ParentchainClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- raw calls with typed errors --

    async def call(
        self, method: str, params: Params | None = None, timeout: Timeout = DEFAULT
    ) -> Any:
        """Any JSON-RPC method of the node, with errors mapped onto ParentchainError."""
        with _mapped_errors(method):
            return await self.rpc.request(method, params, timeout=timeout)

    async def _batch(self, calls: Sequence[tuple[str, Params | None]]) -> list[Any]:
        """Results in order; an error answer takes its place as a ParentchainError."""
        with _mapped_errors(calls[0][0] if calls else "batch"):
            results = await self.rpc.batch(calls, return_exceptions=True)
        return [
            node_error(method, r.code, r.message, r.data) if isinstance(r, RpcCallError) else r
            for (method, _), r in zip(calls, results, strict=True)
        ]

    # -- chain facts --

    async def chain_name(self) -> str:
        return str(await self.call("system_chain"))

    async def genesis_hash(self) -> BlockHash:
        if self._genesis is None:
            self._genesis = await self.block_hash(BlockNumber(0))
        return self._genesis

    async def runtime_version(self, at: bytes | None = None) -> RuntimeVersion:
        return RuntimeVersion.from_json(await self.call("state_getRuntimeVersion", _at(at)))

    async def metadata(self, at: bytes | None = None) -> RuntimeMetadata:
        """The runtime metadata at `at` (best block when None), cached per spec version."""
        version = await self.runtime_version(at)
        cached = self._metadata.get(version.spec_version)
        if cached is not None:
            return cached
        async with self._metadata_lock:
            cached = self._metadata.get(version.spec_version)
            if cached is not None:
                return cached
            raw = _hex(await self.call("state_getMetadata", _at(at)), "metadata")
            try:
                # Decoding takes a while on a real chain: keep the loop (pings, other calls) free.
                md = await asyncio.to_thread(RuntimeMetadata.from_bytes, raw)
            except PrimitivesError as e:
                raise InvalidNodeResponseError(f"cannot use the node's metadata: {e}") from None
            self._metadata[version.spec_version] = md
            return md

    # -- heads, headers, blocks --

    async def finalized_head(self) -> BlockHash:
        return BlockHash(_hex(await self.call("chain_getFinalizedHead"), "finalized head", 32))

    async def best_head(self) -> BlockHash:
        return BlockHash(_hex(await self.call("chain_getHead"), "best head", 32))

    async def block_hash(self, number: int) -> BlockHash:
        """The hash of block `number` on the node's best chain; UnknownBlockError if none."""
        value = await self.call("chain_getBlockHash", [number])
        if value is None:
            raise UnknownBlockError(f"the node has no block #{number}")
        return BlockHash(_hex(value, f"hash of #{number}", 32))

    async def header(self, block_hash: bytes | None = None) -> Header:
        """The header of `block_hash` (best block when None)."""
        value = await self.call("chain_getHeader", _at(block_hash))
        if value is None:
            raise UnknownBlockError(f"the node has no block {_show(block_hash)}")
        return _parse(header_from_json, value, "header")

    async def finalized_header(self) -> Header:
        return await self.header(await self.finalized_head())

    async def block(self, block_hash: bytes) -> SignedBlock:
        """The block with its justifications, checked against `block_hash`."""
        value = await self.call("chain_getBlock", [to_hex(block_hash)])
        return _check_block(value, block_hash)

    async def events_raw(self, block_hash: bytes) -> bytes:
        """SCALE(Vec<EventRecord>) of System.Events at `block_hash`."""
        value = await self.storage(SYSTEM_EVENTS_KEY, block_hash)
        return EMPTY_EVENTS if value is None else value

    async def events(self, block_hash: bytes) -> list[EventRecord]:
        """The decoded events of a block, by the metadata of its runtime."""
        md = await self.metadata(block_hash)
        raw = await self.events_raw(block_hash)
        return _parse(lambda data: decode_events(md, data), raw, "System.Events")

    # -- catch-up --

    async def blocks_range(
        self, first: int, last: int, *, events: bool = True, events_proof: bool = False
    ) -> list[ParentchainBlock]:
        """Blocks first..last (both included) with their events; see iter_blocks."""
        return [
            b async for b in self.iter_blocks(first, last, events=events, events_proof=events_proof)
        ]

    async def iter_blocks(
        self,
        first: int,
        last: int,
        *,
        events: bool = True,
        events_proof: bool = False,
        parent: bytes | None = None,
    ) -> AsyncGenerator[ParentchainBlock, None]:
        """Blocks first..last in order, fetched in pipelined windows.

        `parent`, when given, is the hash the first block must build on (the last block the
        caller already has). Close the iterator (`contextlib.aclosing`) when leaving early, so
        the windows in flight are cancelled at once.
        """
        if first < 0 or last < first - 1:
            raise ValueError(f"invalid block range {first}..{last}")
        windows = (
            range(n, min(n + self.window, last + 1)) for n in range(first, last + 1, self.window)
        )
        in_flight: deque[asyncio.Task[list[ParentchainBlock]]] = deque()
        loop = asyncio.get_running_loop()
        previous = parent
        try:
            for numbers in windows:
                in_flight.append(
                    loop.create_task(self._fetch_window(numbers, events, events_proof))
                )
                if len(in_flight) < self.depth:
                    continue
                for block in await in_flight.popleft():
                    _check_parent(block, previous)
                    previous = block.hash
                    yield block
            while in_flight:
                for block in await in_flight.popleft():
                    _check_parent(block, previous)
                    previous = block.hash
                    yield block
        finally:
            for task in in_flight:
                task.cancel()
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)

    async def block_hashes(self, numbers: Sequence[int]) -> list[BlockHash]:
        """Hashes of several blocks with one call per 1024 (chain_getBlockHash's list form)."""
        out: list[BlockHash] = []
        for i in range(0, len(numbers), MAX_HASHES_PER_CALL):
            chunk = list(numbers[i : i + MAX_HASHES_PER_CALL])
            value = await self.call("chain_getBlockHash", [chunk])
            if not isinstance(value, list) or len(value) != len(chunk):
                raise InvalidNodeResponseError("chain_getBlockHash([..]) did not answer a list")
            for number, h in zip(chunk, value, strict=True):
                if h is None:
                    raise UnknownBlockError(f"the node has no block #{number}")
                out.append(BlockHash(_hex(h, f"hash of #{number}", 32)))
        return out

    async def _fetch_window(
        self, numbers: range, events: bool, events_proof: bool
    ) -> list[ParentchainBlock]:
        hashes = await self.block_hashes(numbers)
        per_block = 1 + int(events) + int(events_proof)
        calls: list[tuple[str, Params | None]] = []
        for h in hashes:
            hx = to_hex(h)
            calls.append(("chain_getBlock", [hx]))
            if events:
                calls.append(("state_getStorage", [_SYSTEM_EVENTS_HEX, hx]))
            if events_proof:
                calls.append(("state_getReadProof", [[_SYSTEM_EVENTS_HEX], hx]))
        results = await self._batch(calls)
        blocks: list[ParentchainBlock] = []
        for i, (number, h) in enumerate(zip(numbers, hashes, strict=True)):
            answers = results[i * per_block : (i + 1) * per_block]
            for answer in answers:
                if isinstance(answer, ParentchainError):
                    raise answer
            signed = _check_block(answers[0], h, number)
            raw_events: bytes | None = None
            proof: tuple[bytes, ...] = ()
            if events:
                value = answers[1]
                raw_events = EMPTY_EVENTS if value is None else _hex(value, "System.Events")
            if events_proof:
                proof = _read_proof(answers[-1]).proof
            blocks.append(ParentchainBlock(h, signed, raw_events, proof))
        return blocks

    # -- storage --

    async def storage(self, key: bytes, at: bytes | None = None) -> bytes | None:
        """The raw value under `key` at `at` (best block when None); None when absent."""
        value = await self.call("state_getStorage", [to_hex(key), *_at(at)])
        return None if value is None else _hex(value, "storage value")

    async def storage_many(
        self, keys: Sequence[bytes], at: bytes | None = None
    ) -> dict[bytes, bytes | None]:
        """Several values at one block with one call (state_queryStorageAt)."""
        out: dict[bytes, bytes | None] = {bytes(k): None for k in keys}
        if not keys:
            return out
        value = await self.call("state_queryStorageAt", [[to_hex(k) for k in keys], *_at(at)])
        try:
            for change_set in value:
                for key_hex, value_hex in change_set["changes"]:
                    key = _hex(key_hex, "storage key")
                    if key in out:
                        out[key] = None if value_hex is None else _hex(value_hex, "storage value")
        except (TypeError, KeyError, ValueError) as e:
            raise InvalidNodeResponseError(
                f"malformed state_queryStorageAt answer: {e!r}"
            ) from None
        return out

    async def read_proof(self, keys: Sequence[bytes], at: bytes | None = None) -> ReadProof:
        value = await self.call("state_getReadProof", [[to_hex(k) for k in keys], *_at(at)])
        return _read_proof(value)

    async def runtime_call(self, method: str, data: bytes, at: bytes | None = None) -> bytes:
        """A runtime API call (state_call), e.g. "AccountNonceApi_account_nonce"."""
        return _hex(await self.call("state_call", [method, to_hex(data), *_at(at)]), method)

    # -- transactions --

    async def account_next_index(self, account: AccountId) -> Nonce:
        """The next nonce of `account`, counting its transactions in the node's pool."""
        value = await self.call("system_accountNextIndex", [ss58_encode(account)])
        return Nonce(_uint(value, "account nonce"))

    async def sign(
        self,
        call: bytes,
        signer: ExtrinsicSigner,
        *,
        nonce: int | None = None,
        mortal_period: int | None = None,
        tip: int = 0,
    ) -> bytes:
        """A signed extrinsic of `call` (SCALE RuntimeCall) for this chain's current runtime.

        The nonce defaults to the signer's next index; the era is immortal unless
        `mortal_period` is given, then it is born at the finalized head (which cannot be
        reorganised away, so the extrinsic cannot become invalid for that reason).
        """
        md = await self.metadata()
        version = await self.runtime_version()
        genesis = await self.genesis_hash()
        if nonce is None:
            nonce = await self.account_next_index(AccountId(bytes(signer.public_key)))
        era, birth_hash = IMMORTAL_ERA, None
        if mortal_period is not None:
            current = (await self.finalized_header()).number
            era = Era.mortal(mortal_period, current)
            birth_hash = await self.block_hash(era.birth(current))
        try:
            return build_signed_extrinsic(
                md,
                call,
                signer,
                nonce=nonce,
                genesis_hash=genesis,
                spec_version=version.spec_version,
                transaction_version=version.transaction_version,
                era=era,
                birth_hash=birth_hash,
                tip=tip,
            )
        except PrimitivesError as e:
            raise ParentchainError(f"cannot build the extrinsic for this chain: {e}") from e

    async def submit(self, extrinsic: bytes) -> bytes:
        """Submit; the transaction hash. ExtrinsicRejectedError when the pool refuses it."""
        value = await self.call("author_submitExtrinsic", [to_hex(extrinsic)])
        return _hex(value, "transaction hash", 32)

    async def submit_and_watch(self, extrinsic: bytes) -> ExtrinsicWatch:
        """Submit and follow the status updates (ready, inBlock, finalized, ...)."""
        method = "author_submitAndWatchExtrinsic"
        with _mapped_errors(method):
            sub = await self.rpc.subscribe(method, [to_hex(extrinsic)], "author_unwatchExtrinsic")
        return ExtrinsicWatch(extrinsic_hash(extrinsic), sub)

    # -- subscriptions --

    async def subscribe_finalized_heads(self) -> HeadSubscription:
        """Finalized headers as the node announces them (the first is the current one)."""
        return await self._subscribe_heads(
            "chain_subscribeFinalizedHeads", "chain_unsubscribeFinalizedHeads"
        )

    async def subscribe_new_heads(self) -> HeadSubscription:
        """Best-chain headers as the node imports them."""
        return await self._subscribe_heads("chain_subscribeNewHeads", "chain_unsubscribeNewHeads")

    async def _subscribe_heads(self, method: str, unsubscribe: str) -> HeadSubscription:
        with _mapped_errors(method):
            return HeadSubscription(await self.rpc.subscribe(method, [], unsubscribe))


# --- subscriptions -----------------------------------------------------------------------------


class HeadSubscription:
    """An async iterator of Headers; `close()` unsubscribes. Connection loss raises
    ParentchainConnectionError, a consumer too slow for the buffer SubscriptionLaggedError."""

    def __init__(self, subscription: Subscription) -> None:
        self._sub = subscription

    def __aiter__(self) -> HeadSubscription:
        return self

    async def __anext__(self) -> Header:
        with _mapped_errors("head subscription"):
            value = await self._sub.__anext__()
        return _parse(header_from_json, value, "header")

    async def next(self, timeout: float | None = None) -> Header:
        """The next header; ParentchainTimeoutError if none comes in time."""
        with _mapped_errors("head subscription"):
            value = await self._sub.next(timeout)
        return _parse(header_from_json, value, "header")

    async def close(self) -> None:
        await self._sub.close()

    async def __aenter__(self) -> HeadSubscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class ExtrinsicWatch:
    """The status updates of one submitted extrinsic; iteration ends after a final status."""

    def __init__(self, tx_hash: bytes, subscription: Subscription) -> None:
        self.tx_hash = tx_hash
        self._sub = subscription
        self._done = False

    def __aiter__(self) -> ExtrinsicWatch:
        return self

    async def __anext__(self) -> ExtrinsicStatus:
        if self._done:
            raise StopAsyncIteration
        with _mapped_errors("author_extrinsicUpdate"):
            value = await self._sub.__anext__()
        status = ExtrinsicStatus.from_json(value)
        if status.is_final:
            self._done = True
            await self._sub.close()
        return status

    async def wait_for(
        self, kind: str = "inBlock", timeout: float | None = None
    ) -> ExtrinsicStatus:
        """Follow the updates until `kind` ("inBlock" or "finalized") is reached.

        ExtrinsicWatchError when the extrinsic ends otherwise (invalid, dropped, usurped,
        finality timeout) first; ParentchainTimeoutError after `timeout` seconds.
        """
        try:
            async with asyncio.timeout(timeout):
                async for status in self:
                    if status.kind == kind or (kind == "inBlock" and status.kind == "finalized"):
                        return status
                    if status.is_final:
                        raise ExtrinsicWatchError(status.kind, status.detail)
        except TimeoutError:
            raise ParentchainTimeoutError(f"extrinsic not {kind} within {timeout} s") from None
        raise ExtrinsicWatchError("ended", "the node stopped sending status updates")

    async def close(self) -> None:
        self._done = True
        await self._sub.close()

    async def __aenter__(self) -> ExtrinsicWatch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# --- reconnecting ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff between connection attempts.

    `max_attempts` consecutive failures (None: never give up) end in
    ParentchainConnectionError. A connection that stayed up `stable_after` seconds resets the
    delay; one that drops sooner makes the next attempt wait, so a node that accepts and then
    drops connections is not hammered.
    """

    initial: float = 0.5
    factor: float = 2.0
    cap: float = 30.0
    max_attempts: int | None = None
    stable_after: float = 10.0

    def __post_init__(self) -> None:
        if self.initial < 0 or self.factor < 1 or self.cap < self.initial:
            raise ValueError("backoff needs 0 <= initial <= cap and factor >= 1")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be positive")

    def delays(self) -> Iterator[float]:
        delay = self.initial
        while True:
            yield delay
            delay = min(self.cap, delay * self.factor)


class ReconnectingClient:
    """A ParentchainClient that comes back after connection loss.

        async with reconnecting(url, Backoff()) as chain:
            async for header in chain.finalized_heads():   # resubscribes on reconnect
                blocks = await chain.run(lambda c: c.blocks_range(a, header.number))

    `run` retries an operation on a fresh connection after ParentchainConnectionError; use it
    for idempotent reads, not for submissions (a resubmitted extrinsic may be a duplicate).
    """

    def __init__(self, url: str, backoff: Backoff | None = None, **options: Any) -> None:
        self.url = url
        self.backoff = backoff or Backoff()
        self.reconnects = 0  # successful connections after the first (for metrics)
        self._options = options
        self._client: ParentchainClient | None = None
        self._connected_at = 0.0
        self._delays = self.backoff.delays()
        self._wait_before_connect = False
        self._lock = asyncio.Lock()
        self._closed = False
        self._connections = 0

    async def client(self) -> ParentchainClient:
        """The current connection, (re)connecting with backoff when there is none."""
        if self._client is not None and self._client.connected:
            return self._client
        async with self._lock:
            if self._client is not None and self._client.connected:
                return self._client
            if self._client is not None:
                await self._drop(self._client)
            self._client = await self._connect()
            return self._client

    async def _connect(self) -> ParentchainClient:
        failures = 0
        while True:
            if self._closed:
                raise ParentchainConnectionError("the reconnecting client was closed")
            if self._wait_before_connect:
                await asyncio.sleep(next(self._delays))
            try:
                client = await ParentchainClient.connect(self.url, **self._options)
            except ParentchainConnectionError as e:
                failures += 1
                self._wait_before_connect = True
                if self.backoff.max_attempts is not None and failures >= self.backoff.max_attempts:
                    raise ParentchainConnectionError(
                        f"gave up on {self.url} after {failures} attempts: {e}"
                    ) from e
                _log.warning("cannot connect to %s (%s); retrying", self.url, e)
                continue
            self._wait_before_connect = False
            self._connected_at = time.monotonic()
            self._connections += 1
            if self._connections > 1:
                self.reconnects += 1
                _log.info("reconnected to %s", self.url)
            return client

    async def _drop(self, client: ParentchainClient) -> None:
        if client is self._client:
            self._client = None
            if time.monotonic() - self._connected_at >= self.backoff.stable_after:
                self._delays = self.backoff.delays()
                self._wait_before_connect = False
            else:
                self._wait_before_connect = True
        with contextlib.suppress(Exception):
            await client.close()

    async def run(self, operation: Callable[[ParentchainClient], Awaitable[T]]) -> T:
        """`operation(client)`, retried on a new connection after a connection error."""
        while True:
            client = await self.client()
            try:
                return await operation(client)
            except ParentchainConnectionError as e:
                if self._closed:
                    raise
                _log.warning("lost %s (%s); reconnecting", self.url, e)
                await self._drop(client)

    async def finalized_heads(self) -> AsyncGenerator[Header, None]:
        """Finalized headers for as long as the caller iterates, across reconnects.

        After a reconnect the node first sends its current finalized head, which may be
        several blocks beyond the last one yielded: callers catch up by number.
        """
        while True:
            client = await self.client()
            try:
                async with await client.subscribe_finalized_heads() as heads:
                    async for header in heads:
                        yield header
                raise ParentchainConnectionError("the finalized-head subscription ended")
            except ParentchainConnectionError as e:
                if self._closed:
                    raise
                _log.warning("finalized heads of %s interrupted (%s); resubscribing", self.url, e)
                if not isinstance(e, SubscriptionLaggedError):
                    await self._drop(client)

    async def close(self) -> None:
        self._closed = True
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    async def __aenter__(self) -> ReconnectingClient:
        await self.client()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def reconnecting(url: str, backoff: Backoff | None = None, **options: Any) -> ReconnectingClient:
    """A ReconnectingClient for `url`; `options` go to ParentchainClient.connect."""
    return ReconnectingClient(url, backoff, **options)


# --- helpers -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _mapped_errors(method: str) -> Iterator[None]:
    """tocw.rpc's errors as ParentchainErrors: callers of this package see only those."""
    try:
        yield
    except RpcCallError as e:
        raise node_error(method, e.code, e.message, e.data) from e
    except RpcTimeoutError as e:
        raise ParentchainTimeoutError(f"{method}: {e}") from e
    except SubscriptionOverflowError as e:
        raise SubscriptionLaggedError(f"{method}: {e}") from e
    except RpcConnectionError as e:
        raise ParentchainConnectionError(str(e)) from e
    except RpcProtocolError as e:
        raise InvalidNodeResponseError(f"{method}: {e}") from e


def _at(at: bytes | None) -> list[Any]:
    return [] if at is None else [to_hex(at)]


def _show(block_hash: bytes | None) -> str:
    return "best" if block_hash is None else to_hex(block_hash)


def _hex(value: Any, what: str, size: int | None = None) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise InvalidNodeResponseError(f"{what}: expected 0x-hex, got {str(value)[:80]!r}")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError:
        raise InvalidNodeResponseError(f"{what}: invalid hex") from None
    if size is not None and len(raw) != size:
        raise InvalidNodeResponseError(f"{what}: expected {size} bytes, got {len(raw)}")
    return raw


def _uint(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidNodeResponseError(f"{what}: expected a non-negative integer, got {value!r}")
    return value


def _parse(parser: Callable[[Any], T], value: Any, what: str) -> T:
    try:
        return parser(value)
    except (PrimitivesError, ValueError, TypeError, KeyError) as e:
        raise InvalidNodeResponseError(f"malformed {what}: {e}") from None


def _check_block(value: Any, block_hash: bytes, number: int | None = None) -> SignedBlock:
    if value is None:
        raise UnknownBlockError(f"the node has no block {to_hex(block_hash)}")
    signed = _parse(signed_block_from_json, value, "block")
    header = signed.block.header
    if number is not None and header.number != number:
        raise InvalidNodeResponseError(f"asked for block #{number}, got #{header.number}")
    if header.hash() != block_hash:
        raise InvalidNodeResponseError(f"block {to_hex(block_hash)}: the header hashes otherwise")
    return signed


def _check_parent(block: ParentchainBlock, parent: bytes | None) -> None:
    if parent is not None and block.header.parent_hash != parent:
        raise InvalidNodeResponseError(
            f"block #{block.number} does not build on {to_hex(parent)}: the chain was "
            "reorganised during the fetch (fetch only finalized blocks)"
        )


def _read_proof(value: Any) -> ReadProof:
    if not isinstance(value, dict) or not isinstance(value.get("proof"), list):
        raise InvalidNodeResponseError("malformed state_getReadProof answer")
    return ReadProof(
        BlockHash(_hex(value.get("at"), "proof block", 32)),
        tuple(_hex(node, "proof node") for node in value["proof"]),
    )
