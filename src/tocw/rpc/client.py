"""An asyncio JSON-RPC 2.0 client over ws:// and wss:// (the `websockets` library).

Owns the client side of one connection: many requests in flight at once, matched to their
answers by id (pipelining, so a catch-up never waits a round trip per call), JSON-RPC batches
(with a fallback to pipelined single calls for servers that refuse batches), subscriptions
routed by subscription id into bounded buffers, timeouts on everything, and TLS pinned to one
self-signed certificate for the worker's trusted RPC.

One reader task owns the socket's receive side and resolves futures; callers only send. When
the connection is lost, every call in flight fails with RpcConnectionError and every
subscription ends with it: nothing waits forever. A subscription whose consumer falls behind its
bound is closed with SubscriptionOverflowError instead of dropping notifications silently (a
worker that missed a finalized head must know).

Batches: the first batch on a connection is sent alone (a probe). If the server answers it with
an array, batches are supported and later ones are pipelined freely; if it answers with a single
error object (what servers without batch support, or with a smaller batch limit, do), that batch
is re-sent as pipelined single calls and the client stops batching (or halves its batch size if
batches had worked before). A rejected batch was not executed, so re-sending it is safe.

The websocket framing is python-websockets'; only the JSON-RPC logic is written here, on
tocw.rpc.messages, because no maintained Python client offers pipelining, batches and
subscriptions over one connection without a framework around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
from collections import deque
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from types import TracebackType
from typing import Any, Final, TypeAlias, TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidURI, WebSocketException

from tocw.rpc.errors import (
    InvalidCertificateError,
    InvalidMessageError,
    RpcCallError,
    RpcClientError,
    RpcConnectionError,
    RpcProtocolError,
    RpcTimeoutError,
    SubscriptionOverflowError,
)
from tocw.rpc.messages import (
    ErrorObject,
    ErrorResponse,
    Notification,
    Params,
    Response,
    SuccessResponse,
    decode_json,
    dumps,
    parse_incoming_entry,
    parse_response_entry,
    request_text,
)

DEFAULT_TIMEOUT: Final = 30.0
DEFAULT_OPEN_TIMEOUT: Final = 10.0
DEFAULT_MAX_SIZE: Final = 16 * 1024 * 1024
DEFAULT_SUBSCRIPTION_BUFFER: Final = 1024
DEFAULT_MAX_BATCH: Final = 256
UNSUBSCRIBE_TIMEOUT: Final = 5.0

SubscriptionId: TypeAlias = str | int
Call: TypeAlias = tuple[str, Params | None]

T = TypeVar("T")


class _Default(Enum):
    TOKEN = 0


DEFAULT: Final = _Default.TOKEN  # "use the client's timeout"; None means no timeout
Timeout: TypeAlias = float | _Default | None
_log = logging.getLogger(__name__)


# --- TLS pinning -------------------------------------------------------------------------------


def certificate_der(certificate: bytes | str) -> bytes:
    """DER bytes of a certificate given as DER, or as PEM text/bytes."""
    if isinstance(certificate, str):
        certificate = certificate.encode("ascii", "replace")
    if b"-----BEGIN CERTIFICATE-----" in certificate:
        try:
            return ssl.PEM_cert_to_DER_cert(certificate.decode("ascii", "replace").strip())
        except ValueError as e:
            raise InvalidCertificateError(f"not a PEM certificate: {e}") from None
    return bytes(certificate)


def pinned_certificate_context(certificate: bytes | str) -> ssl.SSLContext:
    """A client TLS context that accepts exactly one self-signed certificate.

    The certificate is the context's only trust anchor, with the partial-chain flag so that
    OpenSSL accepts it as the peer's whole chain even when it is a leaf (CA:FALSE, no
    keyCertSign), and no system CAs. The handshake itself then refuses any other certificate,
    before a single byte of JSON-RPC is exchanged; checking the DER after the handshake instead
    would already have completed TLS with an unverified peer. The host name is not checked: the
    enclave's certificate is pinned by content, not by name. Validity dates are still checked.
    """
    der = certificate_der(certificate)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    try:
        context.load_verify_locations(cadata=der)
    except (ssl.SSLError, ValueError) as e:
        raise InvalidCertificateError(f"cannot load the pinned certificate: {e}") from None
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    return context


# --- pending calls -----------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class _Batch:
    """One batch in flight: collects its answers, or the error that rejected it whole."""

    ids: dict[int, int]  # request id -> position in the batch
    done: asyncio.Future[list[Response] | ErrorObject]
    responses: list[Response | None] = field(default_factory=list)
    remaining: int = 0

    def take(self, response: Response, position: int) -> None:
        if self.done.done() or self.responses[position] is not None:
            return
        self.responses[position] = response
        self.remaining -= 1
        if self.remaining == 0:
            self.done.set_result([r for r in self.responses if r is not None])


@dataclass(eq=False, slots=True)
class _Single:
    future: asyncio.Future[Response]
    # Set for subscribe calls: the reader turns the answer into a Subscription on the spot, so
    # a notification right behind the answer is never lost.
    subscribe: tuple[str, int] | None = None  # (unsubscribe method, buffer bound)
    subscription: Subscription | None = None


_Slot: TypeAlias = _Single | tuple[_Batch, int]


class Subscription:
    """Notifications of one subscription, as an async iterator of their `result` values.

    Iteration ends (StopAsyncIteration) after `close()` or when the client closes; it raises
    RpcConnectionError when the connection is lost and SubscriptionOverflowError when the
    buffer bound was exceeded, in both cases after the buffered notifications. Closing
    unsubscribes on the server.
    """

    def __init__(
        self, client: RpcClient, sub_id: SubscriptionId, unsubscribe_method: str, bound: int
    ) -> None:
        self.id = sub_id
        self.unsubscribe_method = unsubscribe_method
        self._client = client
        self._bound = bound
        self._items: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False
        self._error: RpcClientError | None = None

    @property
    def ended(self) -> bool:
        return self._ended

    def _push(self, item: Any) -> None:
        if self._ended:
            return
        if len(self._items) >= self._bound:
            self._client._forget(self, unsubscribe=True)
            self._end(
                SubscriptionOverflowError(
                    f"subscription {self.id}: more than {self._bound} notifications unconsumed"
                )
            )
            return
        self._items.append(item)
        self._wake()

    def _end(self, error: RpcClientError | None) -> None:
        if not self._ended:
            self._ended = True
            self._error = error
            self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Any:
        while True:
            if self._items:
                return self._items.popleft()
            if self._ended:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def next(self, timeout: float | None = DEFAULT_TIMEOUT) -> Any:
        """The next notification; RpcTimeoutError if none comes in time, StopAsyncIteration
        when the subscription has ended."""
        try:
            async with asyncio.timeout(timeout):
                return await self.__anext__()
        except TimeoutError:
            raise RpcTimeoutError(f"no notification on subscription {self.id}") from None

    async def close(self) -> None:
        """Stop the subscription and unsubscribe on the server (best effort)."""
        self._end(None)
        self._items.clear()
        await self._client._unsubscribe(self)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


# --- the client --------------------------------------------------------------------------------


class RpcClient:
    """A JSON-RPC 2.0 client over one websocket connection.

    `async with RpcClient(url) as rpc:` or `rpc = await RpcClient.connect(url)`.
    `ssl_context` is for wss:// URLs (None: the system's default verification; for a worker,
    `pinned_certificate_context(cert)`); `timeout` bounds each call (None: unbounded),
    `max_size` each incoming frame; `max_batch` is the largest JSON-RPC batch sent.
    """

    def __init__(
        self,
        url: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        open_timeout: float = DEFAULT_OPEN_TIMEOUT,
        max_size: int = DEFAULT_MAX_SIZE,
        subscription_buffer: int = DEFAULT_SUBSCRIPTION_BUFFER,
        max_batch: int = DEFAULT_MAX_BATCH,
        ping_interval: float | None = 20.0,
        close_timeout: float = 5.0,
    ) -> None:
        if max_batch < 1 or subscription_buffer < 1:
            raise ValueError("max_batch and subscription_buffer must be positive")
        self.url = url
        self.timeout = timeout
        self.subscription_buffer = subscription_buffer
        self.max_batch = max_batch
        self._ssl = ssl_context
        self._open_timeout = open_timeout
        self._max_size = max_size
        self._ping_interval = ping_interval
        self._close_timeout = close_timeout
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, _Slot] = {}
        self._batches: deque[_Batch] = deque()
        self._subs: dict[SubscriptionId, Subscription] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._batch_support: bool | None = None  # unknown until the first batch is answered
        self._probe_lock = asyncio.Lock()
        self._closing = False
        self._lost: RpcClientError | None = None

    # -- lifecycle --

    @classmethod
    async def connect(cls, url: str, **options: Any) -> RpcClient:
        client = cls(url, **options)
        await client.open()
        return client

    async def open(self) -> None:
        """Connect; RpcConnectionError when the server cannot be reached or refuses."""
        if self._ws is not None:
            raise RpcConnectionError("already connected")
        secure = self.url.startswith("wss://")
        options: dict[str, Any] = {}
        if secure and self._ssl is not None:
            options["ssl"] = self._ssl
        elif not secure and self._ssl is not None:
            raise RpcConnectionError(f"a TLS context was given for the plain URL {self.url}")
        try:
            self._ws = await connect(
                self.url,
                open_timeout=self._open_timeout,
                max_size=self._max_size,
                compression=None,  # Substrate nodes do not negotiate it; saves CPU locally
                proxy=None,  # never route a node or worker connection through an env proxy
                ping_interval=self._ping_interval,
                close_timeout=self._close_timeout,
                max_queue=64,
                **options,
            )
        except InvalidURI as e:
            raise RpcConnectionError(f"invalid URL {self.url!r}: {e}") from None
        except (OSError, TimeoutError, WebSocketException, ValueError) as e:
            raise RpcConnectionError(f"cannot connect to {self.url}: {_describe(e)}") from e
        self._reader = asyncio.create_task(self._read_loop(self._ws), name=f"rpc-read {self.url}")

    @property
    def connected(self) -> bool:
        return self._ws is not None and self._lost is None and not self._closing

    async def close(self) -> None:
        """Close the connection; calls in flight fail, subscriptions end."""
        if self._closing:
            if self._reader is not None:
                await asyncio.shield(self._reader)
            return
        self._closing = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader
        self._fail_all(RpcConnectionError(f"connection to {self.url} was closed"), clean=True)
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def __aenter__(self) -> RpcClient:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- calls --

    async def request(
        self, method: str, params: Params | None = None, *, timeout: Timeout = DEFAULT
    ) -> Any:
        """Call `method`; its result, or RpcCallError for an error answer."""
        response = await self._call(method, params, self._timeout(timeout))
        return _result(response)

    async def notify(self, method: str, params: Params | None = None) -> None:
        """Send a notification (no answer, no way to know whether it ran)."""
        message = {"jsonrpc": "2.0", "method": method, "params": [] if params is None else params}
        await self._send(dumps(message))

    async def batch(
        self,
        calls: Sequence[Call],
        *,
        timeout: Timeout = DEFAULT,
        return_exceptions: bool = False,
    ) -> list[Any]:
        """Results of several calls, in order, sent as JSON-RPC batches of at most `max_batch`
        calls (pipelined). An error answer raises RpcCallError, or with `return_exceptions`
        takes the result's place."""
        if not calls:
            return []
        limit = self._timeout(timeout)
        if self._batch_support is False or len(calls) == 1:
            responses = await self._singles(calls, limit)
        else:
            size = self.max_batch
            chunks = [calls[i : i + size] for i in range(0, len(calls), size)]
            parts = await _gather(self._batch_chunk(c, limit) for c in chunks)
            responses = [r for part in parts for r in part]
        results: list[Any] = []
        for response in responses:
            if isinstance(response, ErrorResponse):
                error = _call_error(response.error)
                if not return_exceptions:
                    raise error
                results.append(error)
            else:
                results.append(response.result)
        return results

    async def subscribe(
        self,
        method: str,
        params: Params | None,
        unsubscribe_method: str,
        *,
        buffer: int | None = None,
        timeout: Timeout = DEFAULT,
    ) -> Subscription:
        """Open a subscription; its notifications are routed by the id the server returns."""
        bound = buffer or self.subscription_buffer
        slot = _Single(asyncio.get_running_loop().create_future(), (unsubscribe_method, bound))
        response = await self._call(method, params, self._timeout(timeout), slot)
        if isinstance(response, ErrorResponse):
            raise _call_error(response.error)
        if slot.subscription is None:
            raise RpcProtocolError(f"{method} did not return a subscription id")
        return slot.subscription

    # -- internals: sending --

    def _timeout(self, timeout: Timeout) -> float | None:
        return self.timeout if isinstance(timeout, _Default) else timeout

    def _require_open(self) -> ClientConnection:
        if self._lost is not None:
            raise RpcConnectionError(str(self._lost))
        if self._ws is None or self._closing:
            raise RpcConnectionError(f"not connected to {self.url}")
        return self._ws

    async def _send(self, text: str) -> None:
        ws = self._require_open()
        try:
            await ws.send(text)
        except ConnectionClosed as e:
            raise RpcConnectionError(f"connection to {self.url} lost: {_describe(e)}") from None

    async def _call(
        self,
        method: str,
        params: Params | None,
        timeout: float | None,
        slot: _Single | None = None,
    ) -> Response:
        self._require_open()
        if slot is None:
            slot = _Single(asyncio.get_running_loop().create_future())
        req_id = next(self._ids)
        self._pending[req_id] = slot
        try:
            async with asyncio.timeout(timeout):
                await self._send(request_text(method, params if params is not None else [], req_id))
                return await slot.future
        except BaseException as e:
            if slot.subscription is not None:
                # Abandoned (timeout, cancellation) after the server opened the subscription.
                self._forget(slot.subscription, unsubscribe=True)
            if isinstance(e, TimeoutError):
                raise RpcTimeoutError(
                    f"{method}: no answer from {self.url} in {timeout} s"
                ) from None
            raise
        finally:
            self._pending.pop(req_id, None)

    async def _singles(self, calls: Sequence[Call], timeout: float | None) -> list[Response]:
        return await _gather(self._call(method, params, timeout) for method, params in calls)

    async def _batch_chunk(self, calls: Sequence[Call], timeout: float | None) -> list[Response]:
        if self._batch_support is None:
            async with self._probe_lock:
                if self._batch_support is None:
                    return await self._send_batch(calls, timeout)
        if self._batch_support is False:
            return await self._singles(calls, timeout)
        return await self._send_batch(calls, timeout)

    async def _send_batch(self, calls: Sequence[Call], timeout: float | None) -> list[Response]:
        self._require_open()
        ids = {next(self._ids): position for position in range(len(calls))}
        batch = _Batch(ids, asyncio.get_running_loop().create_future(), [None] * len(calls))
        batch.remaining = len(calls)
        for req_id, position in ids.items():
            self._pending[req_id] = (batch, position)
        self._batches.append(batch)
        text = (
            "["
            + ",".join(
                request_text(method, params if params is not None else [], req_id)
                for req_id, (method, params) in zip(ids, calls, strict=True)
            )
            + "]"
        )
        try:
            async with asyncio.timeout(timeout):
                await self._send(text)
                outcome = await batch.done
        except TimeoutError:
            raise RpcTimeoutError(f"batch of {len(calls)}: no answer in {timeout} s") from None
        finally:
            for req_id in ids:
                self._pending.pop(req_id, None)
            with contextlib.suppress(ValueError):
                self._batches.remove(batch)
        if isinstance(outcome, ErrorObject):
            if self._batch_support:
                self.max_batch = max(1, len(calls) // 2)
                _log.info(
                    "%s refused a batch of %d (%s); batch size now %d",
                    self.url,
                    len(calls),
                    outcome.message,
                    self.max_batch,
                )
            else:
                self._batch_support = False
                _log.info(
                    "%s does not take batches (%s); using pipelined calls",
                    self.url,
                    outcome.message,
                )
            return await self._singles(calls, timeout)
        self._batch_support = True
        return outcome

    # -- internals: receiving --

    async def _read_loop(self, ws: ClientConnection) -> None:
        error: RpcClientError | None = None
        try:
            async for message in ws:
                self._on_message(message)
        except ConnectionClosed as e:
            error = RpcConnectionError(f"connection to {self.url} lost: {_describe(e)}")
        except RpcProtocolError as e:
            error = e
            with contextlib.suppress(Exception):
                await ws.close(1002, "protocol error")
        except Exception as e:  # a bug here must not leave callers waiting
            _log.exception("RPC reader of %s failed", self.url)
            error = RpcConnectionError(f"connection to {self.url} failed: {_describe(e)}")
        if error is None:
            error = RpcConnectionError(f"connection to {self.url} was closed")
        if not self._closing:
            self._lost = error
        self._fail_all(error, clean=self._closing)

    def _on_message(self, message: str | bytes) -> None:
        try:
            value = decode_json(message, None)
        except InvalidMessageError as e:
            raise RpcProtocolError(f"{self.url} sent a frame that is not JSON: {e}") from None
        if isinstance(value, list):
            if not value:
                raise RpcProtocolError(f"{self.url} sent an empty batch response")
            for entry in value:
                self._on_response(entry)
        elif isinstance(value, dict) and "method" in value and "id" not in value:
            self._on_notification(value)
        else:
            self._on_response(value)

    def _on_response(self, value: Any) -> None:
        try:
            response = parse_response_entry(value)
        except InvalidMessageError as e:
            req_id = value.get("id") if isinstance(value, dict) else None
            slot = self._pending.get(req_id) if isinstance(req_id, int) else None
            if slot is None:
                raise RpcProtocolError(f"{self.url} sent an invalid response: {e}") from None
            self._resolve_error(slot, RpcProtocolError(f"invalid response: {e}"))
            return
        slot = self._pending.get(response.id) if isinstance(response.id, int) else None
        if slot is None:
            if isinstance(response, ErrorResponse) and response.id is None:
                self._on_unrouted_error(response.error)
            else:
                _log.debug("%s: answer to unknown id %r (late or abandoned)", self.url, response.id)
            return
        if isinstance(slot, tuple):
            batch, position = slot
            batch.take(response, position)
            return
        if slot.future.done():
            return
        if slot.subscribe is not None and isinstance(response, SuccessResponse):
            sub_id = response.result
            if not isinstance(sub_id, str | int) or isinstance(sub_id, bool):
                slot.future.set_exception(
                    RpcProtocolError(f"subscription id must be a string or integer: {sub_id!r}")
                )
                return
            unsubscribe_method, bound = slot.subscribe
            slot.subscription = Subscription(self, sub_id, unsubscribe_method, bound)
            self._subs[sub_id] = slot.subscription
        slot.future.set_result(response)

    def _on_unrouted_error(self, error: ErrorObject) -> None:
        """An error with id null: the server rejected a whole batch (or could not read a
        request). Batches are answered in order of sending, so it belongs to the oldest."""
        for batch in self._batches:
            if not batch.done.done():
                batch.done.set_result(error)
                return
        _log.warning("%s sent an error not tied to any call: %s", self.url, error)

    def _on_notification(self, value: dict[str, Any]) -> None:
        entry = parse_incoming_entry(value)
        if not isinstance(entry, Notification):
            raise RpcProtocolError(f"{self.url} sent an invalid notification")
        params = entry.params
        if not isinstance(params, dict) or "subscription" not in params:
            _log.debug("%s: notification %s without a subscription", self.url, entry.method)
            return
        sub_id = params["subscription"]
        sub = self._subs.get(sub_id) if isinstance(sub_id, str | int) else None
        if sub is None:
            _log.debug("%s: notification for unknown subscription %r", self.url, sub_id)
            return
        if "error" in params and "result" not in params:
            # jsonrpsee's way of ending a subscription with an error
            sub._end(RpcProtocolError(f"subscription {sub_id} failed: {params['error']}"))
            self._forget(sub, unsubscribe=False)
            return
        sub._push(params.get("result"))

    def _resolve_error(self, slot: _Slot, error: RpcClientError) -> None:
        if isinstance(slot, tuple):
            batch = slot[0]
            if not batch.done.done():
                batch.done.set_exception(error)
        elif not slot.future.done():
            slot.future.set_exception(error)

    def _fail_all(self, error: RpcClientError, *, clean: bool) -> None:
        for slot in list(self._pending.values()):
            self._resolve_error(slot, error)
        self._pending.clear()
        for sub in list(self._subs.values()):
            sub._end(None if clean else error)
        self._subs.clear()

    # -- internals: subscriptions --

    def _forget(self, sub: Subscription, *, unsubscribe: bool) -> None:
        if self._subs.get(sub.id) is sub:
            del self._subs[sub.id]
            if unsubscribe and self.connected:
                task = asyncio.get_running_loop().create_task(self._send_unsubscribe(sub))
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    async def _unsubscribe(self, sub: Subscription) -> None:
        if self._subs.get(sub.id) is sub:
            del self._subs[sub.id]
            if self.connected:
                await self._send_unsubscribe(sub)

    async def _send_unsubscribe(self, sub: Subscription) -> None:
        try:
            await self.request(sub.unsubscribe_method, [sub.id], timeout=UNSUBSCRIBE_TIMEOUT)
        except RpcClientError as e:
            _log.debug("%s(%r) failed: %s", sub.unsubscribe_method, sub.id, e)


# --- helpers -----------------------------------------------------------------------------------


def _result(response: Response) -> Any:
    if isinstance(response, ErrorResponse):
        raise _call_error(response.error)
    return response.result


def _call_error(error: ErrorObject) -> RpcCallError:
    return RpcCallError(error.code, error.message, error.data)


def _describe(e: BaseException) -> str:
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


async def _gather(coros: Iterable[Awaitable[T]]) -> list[T]:
    """gather() that cancels the siblings when one fails, so nothing is left running."""
    tasks: list[asyncio.Future[T]] = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
