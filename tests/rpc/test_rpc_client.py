"""tocw.rpc.client against a real websockets server on loopback (port 0), incl. wss pinning.

The server below is written for these tests: a handful of methods that echo, fail, sleep,
never answer, drop the connection, send garbage or open subscriptions, and switches for batch
support and a batch size limit. It answers batches in reverse order so that the client is
seen matching answers by id, not by position.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.asyncio.server import Server, ServerConnection, serve

from tocw.rpc.client import RpcClient, certificate_der, pinned_certificate_context
from tocw.rpc.errors import (
    InvalidCertificateError,
    RpcCallError,
    RpcConnectionError,
    RpcProtocolError,
    RpcTimeoutError,
    SubscriptionOverflowError,
)

TEST_TIMEOUT = 10.0


class JsonRpcTestServer:
    """A small JSON-RPC server for the client tests."""

    def __init__(
        self,
        *,
        batches: bool = True,
        max_batch: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.batches = batches
        self.max_batch = max_batch
        self.ssl_context = ssl_context
        self.frames: list[Any] = []  # every decoded frame received
        self.unsubscribed: list[Any] = []
        self.connections: list[ServerConnection] = []
        self._server: Server | None = None
        self._next_sub = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"{'wss' if self.ssl_context else 'ws'}://127.0.0.1:{port}"

    async def __aenter__(self) -> JsonRpcTestServer:
        self._server = await serve(
            self._handler, "127.0.0.1", 0, ssl=self.ssl_context, compression=None
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def batch_frames(self) -> int:
        return sum(1 for f in self.frames if isinstance(f, list))

    async def _handler(self, ws: ServerConnection) -> None:
        self.connections.append(ws)
        async for message in ws:
            value = json.loads(message)
            self.frames.append(value)
            task = asyncio.create_task(self._serve_frame(ws, value))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _serve_frame(self, ws: ServerConnection, value: Any) -> None:
        if isinstance(value, list):
            if not self.batches:
                await ws.send(_error(None, -32600, "Invalid request"))
                return
            if self.max_batch is not None and len(value) > self.max_batch:
                await ws.send(_error(None, -32010, "The batch request was too large"))
                return
            answers = await asyncio.gather(*(self._answer(ws, v) for v in value))
            await ws.send("[" + ",".join(a for a in reversed(answers) if a) + "]")
            return
        answer = await self._answer(ws, value)
        if answer:
            await ws.send(answer)

    async def _answer(self, ws: ServerConnection, req: dict[str, Any]) -> str | None:
        method, params, req_id = req["method"], req.get("params", []), req.get("id")
        if method == "echo":
            return _ok(req_id, params)
        if method == "add":
            return _ok(req_id, params[0] + params[1])
        if method == "fail":
            return _error(req_id, 1234, "application failure", {"why": "test"})
        if method == "sleep":
            await asyncio.sleep(params[0])
            return _ok(req_id, params[1])
        if method == "never":
            await asyncio.Event().wait()
        if method == "drop":
            ws.transport.abort()
            return None
        if method == "garbage":
            await ws.send("this is not json")
            return None
        if method == "huge":
            return _ok(req_id, "x" * params[0])
        if method == "sub":
            count = params[0]
            self._next_sub += 1
            sub_id = f"s{self._next_sub}"
            await ws.send(_ok(req_id, sub_id))  # the answer, then the notifications right away
            for i in range(count):
                await ws.send(_push(sub_id, i))
            return None
        if method == "unsub":
            self.unsubscribed.append(params[0])
            return _ok(req_id, True)
        return _error(req_id, -32601, "Method not found")


def _ok(req_id: Any, result: Any) -> str:
    return json.dumps({"jsonrpc": "2.0", "result": result, "id": req_id})


def _error(req_id: Any, code: int, message: str, data: Any = None) -> str:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return json.dumps({"jsonrpc": "2.0", "error": err, "id": req_id})


def _push(sub_id: str, result: Any) -> str:
    params = {"subscription": sub_id, "result": result}
    return json.dumps({"jsonrpc": "2.0", "method": "test_notify", "params": params})


def run(main: Callable[[], Awaitable[None]]) -> None:
    """Run one test coroutine with a hard bound, so no test can hang."""

    async def bounded() -> None:
        async with asyncio.timeout(TEST_TIMEOUT):
            await main()

    asyncio.run(bounded())


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


# --- plain calls ---------------------------------------------------------------------------


def test_client_request_result_and_error() -> None:
    """Results come back; error answers raise RpcCallError with code, message and data."""

    async def main() -> None:
        async with JsonRpcTestServer() as server, RpcClient(server.url) as rpc:
            assert await rpc.request("add", [2, 3]) == 5
            assert await rpc.request("echo") == []
            with pytest.raises(RpcCallError) as info:
                await rpc.request("fail", [])
            assert (info.value.code, info.value.message) == (1234, "application failure")
            assert info.value.data == {"why": "test"}

    run(main)


def test_client_notify_sends_request_without_id() -> None:
    """notify() sends a notification: a request object with no id member."""

    async def main() -> None:
        async with JsonRpcTestServer() as server, RpcClient(server.url) as rpc:
            await rpc.notify("echo", {"a": 1})
            await wait_until(lambda: bool(server.frames))
            assert server.frames[0] == {"jsonrpc": "2.0", "method": "echo", "params": {"a": 1}}
            assert await rpc.request("add", [1, 2]) == 3  # the stray answer did not disturb it

    run(main)


def test_client_pipelines_concurrent_requests() -> None:
    """Many calls in flight at once are matched by id even when answered out of order."""

    async def main() -> None:
        async with JsonRpcTestServer() as server, RpcClient(server.url) as rpc:
            start = time.monotonic()
            delays = [0.2 - i * 0.004 for i in range(50)]
            results = await asyncio.gather(
                *(rpc.request("sleep", [d, i]) for i, d in enumerate(delays))
            )
            assert results == list(range(50))
            assert time.monotonic() - start < 2.0  # not 50 round trips of ~0.1 s

    run(main)


def test_client_timeout_is_typed_and_connection_survives() -> None:
    """A call without an answer raises RpcTimeoutError; the connection stays usable."""

    async def main() -> None:
        async with JsonRpcTestServer() as server, RpcClient(server.url, timeout=0.2) as rpc:
            with pytest.raises(RpcTimeoutError):
                await rpc.request("never")
            assert await rpc.request("add", [1, 1], timeout=2.0) == 2
            assert not rpc._pending

    run(main)


def test_client_connection_lost_mid_request_fails_fast() -> None:
    """When the server drops the connection, calls in flight and later calls raise
    RpcConnectionError at once (no waiting for the long timeout)."""

    async def main() -> None:
        async with JsonRpcTestServer() as server, RpcClient(server.url, timeout=60.0) as rpc:
            waiting = asyncio.create_task(rpc.request("never"))
            await asyncio.sleep(0.05)
            start = time.monotonic()
            with pytest.raises(RpcConnectionError):
                await rpc.request("drop")
            with pytest.raises(RpcConnectionError):
                await waiting
            assert time.monotonic() - start < 3.0
            assert not rpc.connected
            with pytest.raises(RpcConnectionError):
                await rpc.request("add", [1, 1])

    run(main)


def test_client_garbage_frame_is_protocol_error() -> None:
    """A frame that is not JSON fails the calls in flight with RpcProtocolError."""

    async def main() -> None:
        async with JsonRpcTestServer() as server, RpcClient(server.url) as rpc:
            with pytest.raises(RpcProtocolError):
                await rpc.request("garbage")

    run(main)


def test_client_frame_over_max_size_closes_with_typed_error() -> None:
    """An answer larger than max_size ends the connection with RpcConnectionError."""

    async def main() -> None:
        async with JsonRpcTestServer() as server, RpcClient(server.url, max_size=1000) as rpc:
            assert await rpc.request("huge", [100]) == "x" * 100
            with pytest.raises(RpcConnectionError):
                await rpc.request("huge", [5000])

    run(main)


def test_client_connect_failures_are_typed() -> None:
    """Nothing listening, a malformed URL, TLS options for ws://: RpcConnectionError."""

    async def main() -> None:
        async with JsonRpcTestServer() as server:
            url = server.url
        with pytest.raises(RpcConnectionError):
            await RpcClient.connect(url, open_timeout=2.0)  # the server is gone now
        with pytest.raises(RpcConnectionError):
            await RpcClient.connect("not a url")
        with pytest.raises(RpcConnectionError):
            await RpcClient.connect(url, ssl_context=ssl.create_default_context())

    run(main)


def test_client_close_fails_pending_and_ends_subscriptions() -> None:
    """close() fails calls in flight and ends subscriptions cleanly."""

    async def main() -> None:
        async with JsonRpcTestServer() as server:
            rpc = await RpcClient.connect(server.url)
            waiting = asyncio.create_task(rpc.request("never"))
            sub = await rpc.subscribe("sub", [0], "unsub")
            await asyncio.sleep(0.05)
            await rpc.close()
            with pytest.raises(RpcConnectionError):
                await waiting
            with pytest.raises(StopAsyncIteration):
                await sub.next(timeout=1.0)
            await rpc.close()  # idempotent

    run(main)


# --- batches -------------------------------------------------------------------------------


def test_client_batch_uses_one_frame_and_matches_ids() -> None:
    """A batch goes out as one JSON-RPC batch; results come back in call order."""

    async def main() -> None:
        async with JsonRpcTestServer() as server, RpcClient(server.url) as rpc:
            calls = [("add", [i, i]) for i in range(20)]
            assert await rpc.batch(calls) == [2 * i for i in range(20)]
            assert server.batch_frames() == 1
            mixed = await rpc.batch(
                [("add", [1, 2]), ("fail", []), ("echo", ["x"])], return_exceptions=True
            )
            assert mixed[0] == 3 and mixed[2] == ["x"]
            assert isinstance(mixed[1], RpcCallError) and mixed[1].code == 1234
            with pytest.raises(RpcCallError):
                await rpc.batch([("add", [1, 2]), ("fail", [])])
            assert await rpc.batch([]) == []

    run(main)


def test_client_batch_splits_into_chunks() -> None:
    """Calls beyond max_batch go out as several pipelined batches."""

    async def main() -> None:
        async with JsonRpcTestServer() as server, RpcClient(server.url, max_batch=8) as rpc:
            assert await rpc.batch([("add", [i, 1]) for i in range(30)]) == [
                i + 1 for i in range(30)
            ]
            assert server.batch_frames() == 4

    run(main)


def test_client_batch_falls_back_to_singles_when_refused() -> None:
    """A server that answers a batch with one error gets pipelined singles instead, from then on."""

    async def main() -> None:
        async with JsonRpcTestServer(batches=False) as server, RpcClient(server.url) as rpc:
            assert await rpc.batch([("add", [i, 0]) for i in range(5)]) == list(range(5))
            assert await rpc.batch([("add", [i, 0]) for i in range(5)]) == list(range(5))
            assert server.batch_frames() == 1  # only the probe
            assert sum(1 for f in server.frames if isinstance(f, dict)) == 10

    run(main)


def test_client_batch_shrinks_after_size_refusal() -> None:
    """If batches worked and then one is refused as too large, it is retried as singles and
    later batches are smaller."""

    async def main() -> None:
        async with (
            JsonRpcTestServer(max_batch=4) as server,
            RpcClient(server.url, max_batch=3) as rpc,
        ):
            assert await rpc.batch([("add", [i, 0]) for i in range(3)]) == [0, 1, 2]
            rpc.max_batch = 8
            assert await rpc.batch([("add", [i, 0]) for i in range(8)]) == list(range(8))
            assert rpc.max_batch == 4
            before = server.batch_frames()
            assert await rpc.batch([("add", [i, 0]) for i in range(8)]) == list(range(8))
            assert server.batch_frames() == before + 2

    run(main)


def test_client_batch_connection_lost() -> None:
    """A batch in flight fails with RpcConnectionError when the connection drops."""

    async def main() -> None:
        async with JsonRpcTestServer() as server, RpcClient(server.url, timeout=60.0) as rpc:
            await rpc.batch([("add", [1, 1]), ("add", [1, 1])])  # batches are known to work
            pending = asyncio.create_task(rpc.batch([("never", []), ("add", [1, 1])]))
            await asyncio.sleep(0.05)
            with pytest.raises(RpcConnectionError):
                await rpc.request("drop")
            with pytest.raises(RpcConnectionError):
                await pending

    run(main)


# --- subscriptions -------------------------------------------------------------------------


def test_client_subscription_receives_and_unsubscribes() -> None:
    """Notifications sent right behind the answer are all delivered; closing unsubscribes."""

    async def main() -> None:
        async with JsonRpcTestServer() as server, RpcClient(server.url) as rpc:
            async with await rpc.subscribe("sub", [5], "unsub") as sub:
                got = [await sub.next(timeout=2.0) for _ in range(5)]
                assert got == [0, 1, 2, 3, 4]
                other = await rpc.subscribe("sub", [2], "unsub")
                assert [await other.next(timeout=2.0) for _ in range(2)] == [0, 1]
            assert server.unsubscribed == [sub.id]
            await other.close()
            assert server.unsubscribed == [sub.id, other.id]

    run(main)


def test_client_subscription_overflow_is_typed() -> None:
    """A consumer that falls behind the bound gets its buffered items, then
    SubscriptionOverflowError, and the server is told to unsubscribe."""

    async def main() -> None:
        async with JsonRpcTestServer() as server, RpcClient(server.url) as rpc:
            sub = await rpc.subscribe("sub", [10], "unsub", buffer=3)
            await wait_until(lambda: sub.ended)
            assert [await sub.next(timeout=1.0) for _ in range(3)] == [0, 1, 2]
            with pytest.raises(SubscriptionOverflowError):
                await sub.next(timeout=1.0)
            await wait_until(lambda: server.unsubscribed == [sub.id])

    run(main)


def test_client_subscription_ends_on_connection_loss() -> None:
    """A subscription raises RpcConnectionError when the connection is lost."""

    async def main() -> None:
        async with JsonRpcTestServer() as server, RpcClient(server.url) as rpc:
            sub = await rpc.subscribe("sub", [1], "unsub")
            assert await sub.next(timeout=2.0) == 0
            with pytest.raises(RpcConnectionError):
                await rpc.request("drop")
            with pytest.raises(RpcConnectionError):
                async for _ in sub:
                    pass

    run(main)


def test_client_subscribe_error_answer_raises() -> None:
    """A subscribe call answered with an error raises RpcCallError."""

    async def main() -> None:
        async with JsonRpcTestServer() as server, RpcClient(server.url) as rpc:
            with pytest.raises(RpcCallError):
                await rpc.subscribe("fail", [], "unsub")
            assert not rpc._subs

    run(main)


# --- TLS pinning ---------------------------------------------------------------------------


def _self_signed(
    common_name: str = "tocw trusted RPC", *, key_usage: bool = False
) -> tuple[bytes, bytes]:
    """(certificate DER, private key PEM) shaped like the enclave's: P-256, CA:FALSE."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if key_usage:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    cert = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.DER), key_pem


def _server_context(tmp_path: Path, cert_der: bytes, key_pem: bytes) -> ssl.SSLContext:
    cert_file = tmp_path / "cert.pem"
    key_file = tmp_path / "key.pem"
    cert_file.write_text(ssl.DER_cert_to_PEM_cert(cert_der))
    key_file.write_bytes(key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


@pytest.mark.parametrize("key_usage", [False, True])
def test_client_wss_pinned_certificate_accepted(tmp_path: Path, key_usage: bool) -> None:
    """The pinned self-signed certificate (DER or PEM) is accepted, whatever its name."""
    cert, key = _self_signed(key_usage=key_usage)

    async def main() -> None:
        async with JsonRpcTestServer(ssl_context=_server_context(tmp_path, cert, key)) as server:
            for pin in (cert, ssl.DER_cert_to_PEM_cert(cert)):
                async with RpcClient(
                    server.url, ssl_context=pinned_certificate_context(pin)
                ) as rpc:
                    assert await rpc.request("add", [20, 22]) == 42

    run(main)


def test_client_wss_other_certificate_refused(tmp_path: Path) -> None:
    """A server presenting any other certificate, even with the same name, is refused, as
    is an unpinned connection to a self-signed server."""
    cert, key = _self_signed()
    other, _ = _self_signed()

    async def main() -> None:
        async with JsonRpcTestServer(ssl_context=_server_context(tmp_path, cert, key)) as server:
            with pytest.raises(RpcConnectionError):
                await RpcClient.connect(server.url, ssl_context=pinned_certificate_context(other))
            with pytest.raises(RpcConnectionError):
                await RpcClient.connect(server.url)
            assert not server.frames

    run(main)


def test_pinned_certificate_context_refuses_garbage() -> None:
    """Bytes that are no certificate raise InvalidCertificateError."""
    with pytest.raises(InvalidCertificateError):
        pinned_certificate_context(b"not a certificate")
    with pytest.raises(InvalidCertificateError):
        pinned_certificate_context("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----")
    cert, _ = _self_signed()
    assert certificate_der(ssl.DER_cert_to_PEM_cert(cert)) == cert
