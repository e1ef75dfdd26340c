"""The dev chain's RPC transport: JSON-RPC over WebSocket and HTTP POST on one port.

Substrate nodes serve both on the same port, and clients rely on it (substrate-interface
speaks HTTP for http:// URLs, @polkadot/api and the worker use ws://). The websockets library
cannot see POST bodies, so this module reads each request head itself: POST is answered here
(a few lines of HTTP/1.1 with keep-alive), and an Upgrade request is handed, bytes and all, to
websockets' sans-I/O `ServerProtocol`, which does the handshake, framing, ping/pong, the closing
handshake and the message size limit. This module only moves bytes between the socket, that
protocol object and an `RpcSession`; all JSON-RPC logic is in rpc_methods.

Limits, each with a clear answer and the node staying up: request heads over 64 KiB (431),
HTTP clients silent for 60 s (disconnected),
HTTP bodies over the message limit (413 with a JSON-RPC "Request is too big" error), websocket
messages over the limit (close code 1009), a client that does not read its notifications
(close code 1008 once 64 MiB are queued for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Final

from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import CLOSED, OPEN
from websockets.server import ServerProtocol

from tocw.chain.errors import ChainError
from tocw.chain.rpc_methods import (
    MAX_BATCH_LEN,
    RpcApi,
    RpcSession,
    oversized_request_response,
)
from tocw.rpc.messages import Limits

log = logging.getLogger(__name__)

MAX_MESSAGE_SIZE: Final = 16 * 1024 * 1024  # as Substrate's default --rpc-max-request-size
MAX_HEAD_SIZE: Final = 64 * 1024
MAX_PENDING_WRITE: Final = 64 * 1024 * 1024
CLOSE_TIMEOUT: Final = 2.0
# An HTTP client gets this long to send a request head or body; it also ends idle keep-alive
# connections. Websockets, once open, have no idle limit (subscribers may be quiet for long).
HTTP_TIMEOUT: Final = 60.0
READ_CHUNK: Final = 256 * 1024


class ServerError(ChainError):
    """The RPC server cannot start (e.g. the port is taken); the root of the transport's errors
    (the package's tree is in tocw.chain.errors)."""


@dataclass(frozen=True, slots=True)
class HttpHead:
    method: str
    path: str
    version: str
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "


class BadRequestError(ServerError):
    """A request head that is not HTTP/1.x; answered with 400 and a closed connection."""


def parse_head(raw: bytes) -> HttpHead:
    """Parse an HTTP/1.x request head (request line and headers, up to the blank line)."""
    try:
        text = raw.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        raise BadRequestError("undecodable request head") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        raise BadRequestError(f"invalid request line {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequestError(f"invalid header line {line[:80]!r}")
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return HttpHead(parts[0], parts[1], parts[2], headers)


def http_response(
    status: int,
    reason: str,
    body: bytes,
    *,
    content_type: str = "application/json; charset=utf-8",
    close: bool = False,
    extra: tuple[tuple[str, str], ...] = (),
) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {reason}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Access-Control-Allow-Origin: *",
    ]
    lines.extend(f"{k}: {v}" for k, v in extra)
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class RpcServer:
    """Serves one RpcApi on host:port until closed. An async context manager."""

    def __init__(
        self,
        api: RpcApi,
        host: str,
        port: int,
        *,
        max_message_size: int = MAX_MESSAGE_SIZE,
        max_pending_write: int = MAX_PENDING_WRITE,
        http_timeout: float = HTTP_TIMEOUT,
    ) -> None:
        self.api = api
        self.http_timeout = http_timeout
        self.host = host
        self.requested_port = port
        self.max_message_size = max_message_size
        # Frames reach the JSON-RPC parser already size-checked (Content-Length, websockets'
        # max_size); its own limit is the same one, so both layers give the same answer.
        self.limits = Limits(max_size=max_message_size, max_batch=MAX_BATCH_LEN)
        self.max_pending_write = max_pending_write
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.websockets: set[_WebSocketConnection] = set()  # open sessions, for shutdown

    async def __aenter__(self) -> RpcServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(
                self._on_connection, self.host, self.requested_port, limit=MAX_HEAD_SIZE
            )
        except OSError as e:
            raise ServerError(
                f"cannot listen on {self.host}:{self.requested_port}: {e.strerror or e}"
            ) from None

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was requested)."""
        if self._server is None or not self._server.sockets:
            raise ServerError("the server is not running")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}"

    async def close(self) -> None:
        """Stop listening, tell websocket clients we are going away, drop every connection."""
        if self._server is not None:
            self._server.close()
        for ws in list(self.websockets):
            ws.close(CloseCode.GOING_AWAY, "node shutting down")
        if self._connections:
            _done, pending = await asyncio.wait(self._connections, timeout=CLOSE_TIMEOUT)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    # ---- connections --------------------------------------------------------------------

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve_connection(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the peer went away; nothing to answer
        except Exception:
            log.exception("RPC connection failed")
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            try:
                async with asyncio.timeout(self.http_timeout):
                    raw = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, TimeoutError):
                return  # closed or idle between requests
            except asyncio.LimitOverrunError:
                writer.write(
                    http_response(
                        431,
                        "Request Header Fields Too Large",
                        b"request head too large\n",
                        content_type="text/plain; charset=utf-8",
                        close=True,
                    )
                )
                return
            try:
                head = parse_head(raw[:-4])
            except BadRequestError as e:
                body = f"{e}\n".encode()
                writer.write(
                    http_response(
                        400,
                        "Bad Request",
                        body,
                        content_type="text/plain; charset=utf-8",
                        close=True,
                    )
                )
                return
            if head.method == "GET" and "websocket" in head.headers.get("upgrade", "").lower():
                await _WebSocketConnection(self, reader, writer).run(raw)
                return
            if not await self._serve_http(head, reader, writer):
                return

    async def _serve_http(
        self, head: HttpHead, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one plain HTTP request; returns whether to keep the connection."""
        keep_alive = (
            head.version == "HTTP/1.1" and "close" not in head.headers.get("connection", "").lower()
        )
        if head.method == "OPTIONS":  # CORS preflight, as browsers send before a POST
            writer.write(
                http_response(
                    200,
                    "OK",
                    b"",
                    close=not keep_alive,
                    extra=(
                        ("Access-Control-Allow-Methods", "POST, OPTIONS"),
                        ("Access-Control-Allow-Headers", "content-type"),
                    ),
                )
            )
            await writer.drain()
            return keep_alive
        if head.method != "POST":
            writer.write(
                http_response(
                    405,
                    "Method Not Allowed",
                    b"Used HTTP Method is not allowed. POST or OPTIONS is required\n",
                    content_type="text/plain; charset=utf-8",
                    close=True,
                )
            )
            return False
        if "transfer-encoding" in head.headers:
            writer.write(
                http_response(
                    411,
                    "Length Required",
                    b"send the body with a Content-Length\n",
                    content_type="text/plain; charset=utf-8",
                    close=True,
                )
            )
            return False
        try:
            length = int(head.headers.get("content-length", ""))
            if length < 0:
                raise ValueError
        except ValueError:
            writer.write(
                http_response(
                    411,
                    "Length Required",
                    b"a valid Content-Length is required\n",
                    content_type="text/plain; charset=utf-8",
                    close=True,
                )
            )
            return False
        if length > self.max_message_size:
            body = oversized_request_response(self.max_message_size).encode()
            writer.write(http_response(413, "Payload Too Large", body, close=True))
            return False
        if head.headers.get("expect", "").lower() == "100-continue":  # curl, for big bodies
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            async with asyncio.timeout(self.http_timeout):
                payload = await reader.readexactly(length)
        except TimeoutError:
            return False
        session = self.api.session(None, limits=self.limits)
        replies = session.handle(payload)
        body = replies[0].encode() if replies else b""
        writer.write(http_response(200, "OK", body, close=not keep_alive))
        await writer.drain()
        return keep_alive


class _WebSocketConnection:
    """One websocket client: websockets' sans-I/O protocol between the socket and a session."""

    def __init__(
        self, server: RpcServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.protocol = ServerProtocol(max_size=server.max_message_size)
        self.session: RpcSession | None = None
        self._fragments: list[bytes] = []

    async def run(self, head: bytes) -> None:
        proto = self.protocol
        proto.receive_data(head)
        requests = [e for e in proto.events_received() if isinstance(e, Request)]
        if not requests:  # malformed handshake: the protocol queued a rejection
            self._flush()
            return
        response = proto.accept(requests[0])
        proto.send_response(response)
        self._flush()
        if response.status_code != 101:
            return
        self.server.websockets.add(self)
        self.session = self.server.api.session(self.send_text, limits=self.server.limits)
        try:
            await self._read_loop()
        finally:
            self.server.websockets.discard(self)
            self.session.close()

    async def _read_loop(self) -> None:
        proto = self.protocol
        while proto.state is not CLOSED:
            if proto.eof_sent:
                await self._discard_until_peer_closes()
                return
            data = await self.reader.read(READ_CHUNK)
            if data:
                proto.receive_data(data)
            else:
                proto.receive_eof()
            for event in proto.events_received():
                if isinstance(event, Frame):
                    self._on_frame(event)
            self._flush()
            if not data:
                return
            await self.writer.drain()

    async def _discard_until_peer_closes(self) -> None:
        """After we closed (e.g. a message over the size limit), read and drop what the peer is
        still sending for a moment, so that it gets our close frame and its reason instead of
        a connection reset."""
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                while await self.reader.read(READ_CHUNK):
                    pass

    def _on_frame(self, frame: Frame) -> None:
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            self._fragments = [bytes(frame.data)]
        elif frame.opcode == Opcode.CONT:
            self._fragments.append(bytes(frame.data))
        else:
            return  # control frames are handled by the protocol
        if not frame.fin:
            return
        message = b"".join(self._fragments)
        self._fragments = []
        assert self.session is not None
        for reply in self.session.handle(message):
            self.send_text(reply)

    def send_text(self, text: str) -> None:
        """Queue one frame; used for replies and for pushes from the subscription hub."""
        if self.protocol.state is not OPEN:
            return
        transport = self.writer.transport
        if transport.get_write_buffer_size() > self.server.max_pending_write:
            log.warning("closing an RPC client that does not read its messages")
            self.close(CloseCode.POLICY_VIOLATION, "client too slow to read notifications")
            return
        self.protocol.send_text(text.encode())
        self._flush()

    def close(self, code: int, reason: str) -> None:
        if self.protocol.state is OPEN:
            self.protocol.send_close(code, reason)
            self._flush()

    def _flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                self.writer.write(data)
            elif self.writer.can_write_eof():
                with contextlib.suppress(OSError):
                    self.writer.write_eof()
