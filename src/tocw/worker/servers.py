"""The worker's network servers: the trusted RPC over wss, /health and /metrics over HTTP.

Owns the transports only. What the trusted RPC answers is decided by a sans-I/O Dispatcher
(tocw.enclave.trusted_rpc.build_trusted_rpc); `TrustedRpcServer` moves websocket text in and
out of it, with TLS from the enclave's own server context (the key never leaves the context),
and enforces what a public endpoint needs: a frame limit (1 MiB: larger frames close the
connection with 1009 "message too big" before they are buffered), a connection limit (extra
handshakes get HTTP 503, extra connections 1013 "try again later"), a bound on requests in
flight per connection, and a clean shutdown (close code 1001). The websocket framing is
python-websockets'.

`answer_observed` is dispatch with a per-request observation (method, outcome) for the
tocw_rpc_requests_total metric; it is sans-I/O like the dispatcher and tested without sockets.

`HealthServer` (/is_initialized, /health) and `MetricsServer` (/metrics, Prometheus text format
from prometheus-client) are small GET-only HTTP servers on the standard library's
ThreadingHTTPServer, each on its own daemon thread: probes and scrapers keep working even when
the event loop is busy importing blocks. All servers accept port 0 (tests) and report the port
they bound; all are (async) context managers that stop cleanly.

ServerError            a server cannot start (address in use, bad host) or is misused
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Final, TypeAlias
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request as HttpRequest
from websockets.http11 import Response as HttpResponse

from tocw.primitives.trusted import RPC_RETURN_VALUE_CODEC, StatusError
from tocw.primitives.types import from_hex
from tocw.rpc.dispatch import Dispatcher
from tocw.rpc.errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    OVERSIZED_REQUEST,
    PARSE_ERROR,
    TOO_BIG_BATCH,
    InvalidMessageError,
    internal_error,
)
from tocw.rpc.messages import (
    ErrorObject,
    ErrorResponse,
    IncomingEntry,
    InvalidEntry,
    Request,
    Response,
    parse_incoming,
    serialize,
)
from tocw.worker.health import HealthStatusProvider, health_response, is_initialized_response
from tocw.worker.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from tocw.worker.metrics import Metrics

logger = logging.getLogger(__name__)

MAX_FRAME: Final = 1024 * 1024  # as tocw.enclave.trusted_rpc.MAX_REQUEST_SIZE
DEFAULT_MAX_CONNECTIONS: Final = 2048
DEFAULT_MAX_IN_FLIGHT: Final = 16
HTTP_TIMEOUT: Final = 10.0  # seconds a health/metrics client may take to send its request

# (method label, status label) of one answered request; Metrics.rpc_request fits.
RequestObserver: TypeAlias = Callable[[str, str], None]

UNKNOWN_METHOD: Final = "unknown"
INVALID_METHOD: Final = "invalid"

_ERROR_STATUS: Final[dict[int, str]] = {
    PARSE_ERROR: "parse_error",
    INVALID_REQUEST: "invalid_request",
    METHOD_NOT_FOUND: "method_not_found",
    INVALID_PARAMS: "invalid_params",
    INTERNAL_ERROR: "internal_error",
    OVERSIZED_REQUEST: "oversized",
    TOO_BIG_BATCH: "oversized",
}


class ServerError(Exception):
    """A server cannot start or is used out of order."""


class _ConnectionEventsAtDebug(logging.LoggerAdapter[logging.Logger]):
    """python-websockets logs every connection's open and close at INFO: on a public endpoint
    that is two log lines per client. They go to DEBUG; warnings and errors are unchanged."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        super().log(logging.DEBUG if level == logging.INFO else level, msg, *args, **kwargs)


# -- dispatch with observation (sans-I/O) ---------------------------------------------------------


def response_status(response: Response) -> str:
    """The status label of one response: the JSON-RPC error kind, "error_status" for a success
    carrying a trusted-RPC RpcReturnValue with status Error, else "ok"."""
    if isinstance(response, ErrorResponse):
        return _ERROR_STATUS.get(response.error.code, "error")
    result = response.result
    if isinstance(result, str) and result.startswith("0x"):
        try:
            value = RPC_RETURN_VALUE_CODEC.decode(from_hex(result))
        except ValueError:  # not an RpcReturnValue (e.g. a deployment's own method): a success
            return "ok"
        if isinstance(value.status, StatusError):
            return "error_status"
    return "ok"


def method_label(dispatcher: Dispatcher, entry: IncomingEntry) -> str:
    """A bounded label: a registered method name, "unknown" or "invalid" (never client text)."""
    if isinstance(entry, InvalidEntry):
        return INVALID_METHOD
    return entry.method if entry.method in dispatcher.methods else UNKNOWN_METHOD


async def answer_observed(
    dispatcher: Dispatcher, text: str | bytes, observer: RequestObserver | None = None
) -> str | None:
    """`dispatcher.dispatch(text)`, reporting (method, status) of every answered request.

    Notifications are run but neither answered nor observed (JSON-RPC sends nothing back).
    """
    if observer is None:
        return await dispatcher.dispatch(text)
    try:
        incoming = parse_incoming(text, dispatcher.limits)
    except InvalidMessageError as e:
        answer = ErrorResponse(None, ErrorObject.from_error(e.error))
        observer(INVALID_METHOD, response_status(answer))
        return serialize(answer)
    entries = incoming if isinstance(incoming, list) else [incoming]
    responses = await asyncio.gather(*(dispatcher.dispatch_entry(e) for e in entries))
    parts = []
    for entry, response in zip(entries, responses, strict=True):
        if response is None:
            continue
        text_out = _serialize(entry, response)
        observer(method_label(dispatcher, entry), response_status(response))
        parts.append(text_out)
    if isinstance(incoming, list):
        return "[" + ",".join(parts) + "]" if parts else None
    return parts[0] if parts else None


def _serialize(entry: IncomingEntry, response: Response) -> str:
    try:
        return serialize(response)
    except (TypeError, ValueError) as e:
        method = entry.method if isinstance(entry, Request) else "?"
        logger.error("result of %s is not JSON-serializable: %s", method, e)
        return serialize(ErrorResponse(response.id, ErrorObject.from_error(internal_error())))


# -- the trusted RPC over wss ---------------------------------------------------------------------


class TrustedRpcServer:
    """JSON-RPC 2.0 over wss for one dispatcher.

    `async with TrustedRpcServer(dispatcher, "127.0.0.1", 0, ssl_context) as server:` then
    `server.port`. `observer` is told (method, status) for each answered request.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext,
        *,
        max_frame: int = MAX_FRAME,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        observer: RequestObserver | None = None,
        open_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
        close_timeout: float = 5.0,
    ) -> None:
        if not isinstance(ssl_context, ssl.SSLContext):
            raise ServerError("the trusted RPC is served over TLS only: give an SSLContext")
        if max_frame < 1 or max_connections < 1 or max_in_flight < 1:
            raise ServerError("max_frame, max_connections and max_in_flight must be positive")
        self.dispatcher = dispatcher
        self.host = host
        self.requested_port = port
        self.ssl_context = ssl_context
        self.max_frame = max_frame
        self.max_connections = max_connections
        self.max_in_flight = max_in_flight
        self.observer = observer
        self.open_timeout = open_timeout
        self.ping_interval = ping_interval
        self.close_timeout = close_timeout
        self._server: Server | None = None
        self._live: set[ServerConnection] = set()
        self._refused = 0

    # -- lifecycle --

    async def start(self) -> None:
        if self._server is not None:
            raise ServerError("the trusted RPC server is already running")
        try:
            self._server = await serve(
                self._serve_connection,
                self.host,
                self.requested_port,
                ssl=self.ssl_context,
                process_request=self._admit,
                compression=None,
                max_size=self.max_frame,
                max_queue=self.max_in_flight,
                open_timeout=self.open_timeout,
                ping_interval=self.ping_interval,
                close_timeout=self.close_timeout,
                # Enough queued handshakes for a burst of max_connections clients (the
                # kernel caps it at somaxconn).
                backlog=min(max(self.max_connections, 128), 4096),
                server_header=None,
                logger=_ConnectionEventsAtDebug(logging.getLogger(f"{__name__}.ws"), {}),
            )
        except OSError as e:
            raise ServerError(
                f"cannot serve the trusted RPC on {self.host}:{self.requested_port}: {e}"
            ) from e
        logger.info("trusted RPC listening on %s", self.url)

    async def stop(self) -> None:
        """Stop accepting, close open connections with 1001 and wait for their handlers."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
            logger.info("trusted RPC stopped")

    async def __aenter__(self) -> TrustedRpcServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise ServerError("the trusted RPC server is not running")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"wss://{host}:{self.port}"

    @property
    def connection_count(self) -> int:
        return len(self._live)

    @property
    def refused_connections(self) -> int:
        """Connections refused because max_connections were open (since start)."""
        return self._refused

    # -- connections --

    def _admit(self, connection: ServerConnection, request: HttpRequest) -> HttpResponse | None:
        """Refuse the handshake with 503 when the server is full (cheaper than accepting)."""
        if len(self._live) < self.max_connections:
            return None
        self._refused += 1
        response = connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "too many connections\n")
        response.headers["Retry-After"] = "1"
        return response

    async def _serve_connection(self, ws: ServerConnection) -> None:
        if len(self._live) >= self.max_connections:
            # Several handshakes passed _admit at once; the bound holds anyway.
            self._refused += 1
            await ws.close(CloseCode.TRY_AGAIN_LATER, "too many connections")
            return
        self._live.add(ws)
        slots = asyncio.Semaphore(self.max_in_flight)
        replies: set[asyncio.Task[None]] = set()
        try:
            async for message in ws:
                await slots.acquire()
                task = asyncio.create_task(self._reply(ws, message, slots))
                replies.add(task)
                task.add_done_callback(replies.discard)
        except ConnectionClosed:
            pass  # the peer went away, or sent a frame above max_frame (closed with 1009)
        finally:
            self._live.discard(ws)
            for task in list(replies):
                task.cancel()
            if replies:
                await asyncio.gather(*replies, return_exceptions=True)

    async def _reply(
        self, ws: ServerConnection, message: str | bytes, slots: asyncio.Semaphore
    ) -> None:
        try:
            answer = await answer_observed(self.dispatcher, message, self.observer)
            if answer is not None:
                with contextlib.suppress(ConnectionClosed):
                    await ws.send(answer)
        finally:
            slots.release()


# -- HTTP: health and metrics ---------------------------------------------------------------------

# A route answers (HTTP status, content type, body).
Route: TypeAlias = Callable[[], tuple[int, str, bytes]]


class _RoutedHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    routes: Mapping[str, Route]


class _RouteHandler(BaseHTTPRequestHandler):
    """GET/HEAD of a fixed set of paths: other paths 404, other methods 501 (http.server's
    default). No request logging (scrapers and probes would flood the log); errors of a route
    are logged and answered 500."""

    server: _RoutedHttpServer
    timeout = HTTP_TIMEOUT
    server_version = "tocw"
    sys_version = ""

    def do_GET(self) -> None:
        self._respond(with_body=True)

    def do_HEAD(self) -> None:
        self._respond(with_body=False)

    def _respond(self, *, with_body: bool) -> None:
        route = self.server.routes.get(urlsplit(self.path).path)
        if route is None:
            self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found\n", with_body)
            return
        try:
            status, content_type, body = route()
        except Exception:
            logger.exception("HTTP route %s failed", self.path)
            status, content_type, body = 500, "text/plain; charset=utf-8", b"internal error\n"
        self._send(status, content_type, body, with_body)

    def _send(self, status: int, content_type: str, body: bytes, with_body: bool = True) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)


class _HttpServer:
    """A ThreadingHTTPServer with fixed routes on a daemon thread."""

    name: ClassVar[str] = "HTTP"

    def __init__(self, routes: Mapping[str, Route], host: str, port: int) -> None:
        self.host = host
        self.requested_port = port
        self._routes = dict(routes)
        self._httpd: _RoutedHttpServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._httpd is not None:
            raise ServerError(f"the {self.name} server is already running")
        server_class = type(
            "_BoundServer",
            (_RoutedHttpServer,),
            {"address_family": socket.AF_INET6 if ":" in self.host else socket.AF_INET},
        )
        try:
            httpd = server_class((self.host, self.requested_port), _RouteHandler)
        except (OSError, OverflowError) as e:
            raise ServerError(
                f"cannot serve {self.name} on {self.host}:{self.requested_port}: {e}"
            ) from e
        httpd.routes = self._routes
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"tocw-{self.name.lower()}-http",
            daemon=True,
        )
        self._thread.start()
        logger.info("%s listening on http://%s:%d", self.name, self.host, self.port)

    def stop(self) -> None:
        """Stop serving and join the thread (blocking, well under a second)."""
        httpd, self._httpd = self._httpd, None
        thread, self._thread = self._thread, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5.0)

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise ServerError(f"the {self.name} server is not running")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def __enter__(self) -> _HttpServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> _HttpServer:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)


class HealthServer(_HttpServer):
    """GET /is_initialized (200 "I am initialized." once registered and synced, else 503 with
    the reason) and GET /health (JSON, tocw.worker.health.HealthStatus.to_json)."""

    name = "health"

    def __init__(self, status: HealthStatusProvider, host: str, port: int) -> None:
        def text(render: Callable[[Any], tuple[int, str]], content_type: str) -> Route:
            def route() -> tuple[int, str, bytes]:
                code, body = render(status())
                return code, content_type, (body + "\n").encode()

            return route

        super().__init__(
            {
                "/is_initialized": text(is_initialized_response, "text/plain; charset=utf-8"),
                "/health": text(health_response, "application/json"),
            },
            host,
            port,
        )


class MetricsServer(_HttpServer):
    """GET /metrics: the worker's Prometheus metrics (text exposition format)."""

    name = "metrics"

    def __init__(self, metrics: Metrics, host: str, port: int) -> None:
        super().__init__(
            {"/metrics": lambda: (200, METRICS_CONTENT_TYPE, metrics.render())}, host, port
        )
