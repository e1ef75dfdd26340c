"""The worker's servers: trusted RPC over real TLS websockets on loopback, health over HTTP,
and the observed dispatch behind the RPC metrics (sans-I/O)."""

from __future__ import annotations

import asyncio
import http.client
import json
import resource
import socket
import ssl
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from tocw.enclave.api import Enclave
from tocw.enclave.measurement import sim_backend
from tocw.enclave.trusted_rpc import (
    TrustedRpcConfig,
    build_trusted_rpc,
    decode_result,
    error_result,
    ok_result,
)
from tocw.primitives.header import Header, extrinsics_root
from tocw.primitives.trusted import StatusOk
from tocw.primitives.types import BlockHash, BlockNumber, ShardId, to_hex
from tocw.rpc.client import RpcClient, pinned_certificate_context
from tocw.rpc.dispatch import Dispatcher
from tocw.rpc.errors import RpcCallError, RpcConnectionError
from tocw.rpc.messages import ErrorObject, ErrorResponse, SuccessResponse
from tocw.worker.health import HealthStatus
from tocw.worker.metrics import Metrics
from tocw.worker.sealed_store import DirectorySealedStore
from tocw.worker.servers import (
    MAX_FRAME,
    HealthServer,
    ServerError,
    TrustedRpcServer,
    answer_observed,
    response_status,
)

GENESIS = Header(BlockHash(bytes(32)), BlockNumber(0), b"\x11" * 32, extrinsics_root([]))
MODULES = ("balances",)


class ReadOnlyHost:
    """OCALLs of an enclave that only serves RPC: real sealed files, nothing to submit."""

    def __init__(self, root: Path) -> None:
        self.store = DirectorySealedStore(root)

    def store_sealed(self, name: str, blob: bytes) -> None:
        self.store.store_sealed(name, blob)

    def load_sealed(self, name: str) -> bytes | None:
        return self.store.load_sealed(name)

    def submit_extrinsics(self, extrinsics: Sequence[bytes]) -> None:
        raise AssertionError("the RPC server made the enclave submit extrinsics")


@pytest.fixture(scope="module")
def enclave(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Enclave]:
    root = tmp_path_factory.mktemp("worker")
    e = Enclave.init(root, sim_backend(root, MODULES), MODULES, ReadOnlyHost(root / "sealed"))
    try:
        e.init_parentchain(GENESIS)
        e.init_shard(ShardId(bytes(e.mrenclave())), 1)
        yield e
    finally:
        e.close()


@pytest.fixture(scope="module")
def dispatcher(enclave: Enclave) -> Dispatcher:
    return build_trusted_rpc(enclave, TrustedRpcConfig(shard=ShardId(bytes(enclave.mrenclave()))))


@pytest.fixture(scope="module")
def client_tls(enclave: Enclave) -> ssl.SSLContext:
    return pinned_certificate_context(enclave.tls_certificate())


def request(method: str, params: Any = None, req_id: int = 1) -> str:
    return json.dumps({"jsonrpc": "2.0", "method": method, "params": params or [], "id": req_id})


async def ask(ws: ClientConnection, text: str, timeout: float = 10.0) -> Any:
    await ws.send(text)
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def port_is_free(port: int) -> bool:
    """True if a restarted server could listen on `port` now (SO_REUSEADDR, as servers set it,
    so connections in TIME_WAIT do not count; a socket still listening does)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            probe.listen()
        except OSError:
            return False
    return True


def serve(dispatcher: Dispatcher, enclave: Enclave, **options: Any) -> TrustedRpcServer:
    return TrustedRpcServer(dispatcher, "127.0.0.1", 0, enclave.tls_server_context(), **options)


# -- observed dispatch (sans-I/O) -----------------------------------------------------------------


def observe(dispatcher: Dispatcher, text: str) -> tuple[Any, list[tuple[str, str]]]:
    seen: list[tuple[str, str]] = []
    answer = asyncio.run(answer_observed(dispatcher, text, lambda m, s: seen.append((m, s))))
    return (None if answer is None else json.loads(answer)), seen


def test_servers_observed_dispatch_labels_outcomes(dispatcher: Dispatcher) -> None:
    """Each answered request is observed with its method and outcome, the answer unchanged."""
    answer, seen = observe(dispatcher, request("author_getShard"))
    assert decode_result(answer["result"]).status == StatusOk()
    assert seen == [("author_getShard", "ok")]
    assert observe(dispatcher, request("author_getMuRaUrl"))[1] == [
        ("author_getMuRaUrl", "error_status")
    ]
    assert observe(dispatcher, request("tocw_getStateRoot", [1]))[1] == [
        ("tocw_getStateRoot", "invalid_params")
    ]


def test_servers_observed_dispatch_bounds_method_labels(dispatcher: Dispatcher) -> None:
    """Client-chosen method names never become labels: "unknown" / "invalid" instead."""
    answer, seen = observe(dispatcher, request("anything_a_client_invents"))
    assert answer["error"]["code"] == -32601
    assert seen == [("unknown", "method_not_found")]
    answer, seen = observe(dispatcher, "{not json")
    assert answer["error"]["code"] == -32700
    assert seen == [("invalid", "parse_error")]
    answer, seen = observe(dispatcher, '{"jsonrpc": "2.0", "method": 5, "id": 1}')
    assert seen == [("invalid", "invalid_request")]


def test_servers_observed_dispatch_batches_and_notifications(dispatcher: Dispatcher) -> None:
    """A batch is observed per element; notifications are neither answered nor observed."""
    batch = json.dumps(
        [
            {"jsonrpc": "2.0", "method": "system_name", "params": [], "id": 1},
            {"jsonrpc": "2.0", "method": "system_name", "params": []},
            {"jsonrpc": "2.0", "method": "nope", "id": 2},
        ]
    )
    answer, seen = observe(dispatcher, batch)
    assert sorted(a["id"] for a in answer) == [1, 2]
    assert seen == [("system_name", "ok"), ("unknown", "method_not_found")]
    notification = json.dumps({"jsonrpc": "2.0", "method": "system_name", "params": []})
    assert observe(dispatcher, notification) == (None, [])


def test_servers_observed_dispatch_oversized(dispatcher: Dispatcher) -> None:
    """An oversized message is refused with -32007 and observed as "oversized"."""
    answer, seen = observe(dispatcher, request("system_name", ["0x" + "00" * MAX_FRAME]))
    assert answer["error"]["code"] == -32007
    assert seen == [("invalid", "oversized")]


def test_servers_observed_dispatch_without_observer_is_plain_dispatch(
    dispatcher: Dispatcher,
) -> None:
    """With no observer, the answer is exactly the dispatcher's."""
    text = request("author_getShard")
    assert asyncio.run(answer_observed(dispatcher, text)) == asyncio.run(dispatcher.dispatch(text))


def test_servers_response_status_reads_return_value() -> None:
    """Status labels come from the RpcReturnValue status or the JSON-RPC error code."""
    assert response_status(SuccessResponse(1, ok_result(b"\x01"))) == "ok"
    assert response_status(SuccessResponse(1, error_result("no"))) == "error_status"
    assert response_status(SuccessResponse(1, "methods: [a]")) == "ok"
    assert response_status(SuccessResponse(1, "0xzz")) == "ok"
    assert response_status(ErrorResponse(1, ErrorObject(-32603, "Internal error"))) == (
        "internal_error"
    )
    assert response_status(ErrorResponse(1, ErrorObject(-1, "app"))) == "error"


# -- the trusted RPC over wss ---------------------------------------------------------------------


def test_servers_trusted_rpc_over_pinned_tls(
    dispatcher: Dispatcher, enclave: Enclave, client_tls: ssl.SSLContext
) -> None:
    """A client pinning the enclave's certificate gets real answers over wss."""

    async def main() -> None:
        async with serve(dispatcher, enclave) as server:
            assert server.url == f"wss://127.0.0.1:{server.port}"
            async with RpcClient(server.url, ssl_context=client_tls, timeout=10) as rpc:
                shard = decode_result(await rpc.request("author_getShard"))
                assert shard.value == enclave.mrenclave()
                mrenclave = decode_result(await rpc.request("tocw_getMrenclave"))
                assert mrenclave.value == enclave.mrenclave()
                assert "author_getShieldingKey" in await rpc.request("rpc_methods")

    run(main())


def test_servers_trusted_rpc_refuses_unpinned_client(
    dispatcher: Dispatcher, enclave: Enclave
) -> None:
    """A client verifying against the system CAs cannot complete TLS with the enclave's
    self-signed certificate (the pin is what makes the endpoint trustworthy)."""

    async def main() -> None:
        async with serve(dispatcher, enclave) as server:
            with pytest.raises(RpcConnectionError):
                async with RpcClient(server.url, ssl_context=ssl.create_default_context()):
                    pass
            # and it still serves pinned clients
            pinned = pinned_certificate_context(enclave.tls_certificate())
            async with RpcClient(server.url, ssl_context=pinned, timeout=10) as rpc:
                await rpc.request("system_name")

    run(main())


def test_servers_trusted_rpc_malformed_and_unknown_keep_connection(
    dispatcher: Dispatcher, enclave: Enclave, client_tls: ssl.SSLContext
) -> None:
    """Malformed JSON (-32700), an invalid request (-32600) and an unknown method (-32601)
    are answered on the same connection, which keeps working."""

    async def main() -> None:
        async with (
            serve(dispatcher, enclave) as server,
            connect(server.url, ssl=client_tls, compression=None) as ws,
        ):
            assert (await ask(ws, '{"jsonrpc": "2.0", "meth'))["error"]["code"] == -32700
            assert (await ask(ws, "[]"))["error"]["code"] == -32600
            assert (await ask(ws, b"\xff\xfe"))["error"]["code"] == -32700  # binary, not UTF-8
            assert (await ask(ws, request("nope")))["error"]["code"] == -32601
            ok = await ask(ws, request("system_version", req_id=9))
            assert ok["id"] == 9 and decode_result(ok["result"]).status == StatusOk()

    run(main())


def test_servers_trusted_rpc_app_error_is_a_result(
    dispatcher: Dispatcher, enclave: Enclave, client_tls: ssl.SSLContext
) -> None:
    """An application error (bad hex) travels as an Error RpcReturnValue, as Integritee."""

    async def main() -> None:
        async with (
            serve(dispatcher, enclave) as server,
            RpcClient(server.url, ssl_context=client_tls, timeout=10) as rpc,
        ):
            result = decode_result(await rpc.request("state_executeGetter", ["0xzz"]))
            assert "not valid hex" in (result.error_message() or "")
            with pytest.raises(RpcCallError) as info:
                await rpc.request("state_executeGetter", [])
            assert info.value.code == -32602

    run(main())


def test_servers_trusted_rpc_refuses_oversized_frame(
    dispatcher: Dispatcher, enclave: Enclave, client_tls: ssl.SSLContext
) -> None:
    """A frame above 1 MiB closes that connection with 1009; the server keeps serving."""

    async def main() -> None:
        async with serve(dispatcher, enclave) as server:
            async with connect(server.url, ssl=client_tls, compression=None, max_size=None) as big:
                await big.send(request("system_name", ["0x" + "00" * (MAX_FRAME // 2 + 10)]))
                with pytest.raises(ConnectionClosedError) as info:
                    await asyncio.wait_for(big.recv(), 10)
                assert info.value.rcvd is not None and info.value.rcvd.code == 1009
            async with connect(server.url, ssl=client_tls, compression=None) as ws:
                assert "result" in await ask(ws, request("system_name"))
                # just below the limit: parsed and answered (the param is no Request)
                text = request("state_executeGetter", ["0x" + "00" * (MAX_FRAME // 2 - 200)])
                assert len(text) <= MAX_FRAME
                answer = await ask(ws, text)
                message = decode_result(answer["result"]).error_message() or ""
                assert "could not decode" in message

    run(main())


def _raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < needed:
        pytest.skip(f"the process may not open {needed} files")


def test_servers_trusted_rpc_thousand_concurrent_connections(
    dispatcher: Dispatcher, enclave: Enclave, client_tls: ssl.SSLContext
) -> None:
    """1,000 TLS connections open at once each get their answer, and the server still answers
    a new client afterwards, all within a bounded time."""
    count = 1000
    _raise_fd_limit(2 * count + 256)

    async def client(url: str, i: int, all_open: asyncio.Event, opened: list[int]) -> str:
        async with connect(url, ssl=client_tls, compression=None, open_timeout=30) as ws:
            opened.append(i)
            if len(opened) == count:
                all_open.set()
            await asyncio.wait_for(all_open.wait(), 30)  # hold every connection open at once
            answer = await ask(ws, request("author_getShard", req_id=i), timeout=30)
            assert answer["id"] == i
            return str(answer["result"])

    async def main() -> None:
        async with serve(dispatcher, enclave) as server:
            all_open = asyncio.Event()
            opened: list[int] = []
            started = time.monotonic()
            results = await asyncio.gather(
                *(client(server.url, i, all_open, opened) for i in range(count))
            )
            elapsed = time.monotonic() - started
            assert len(set(results)) == 1  # every client got the same shard
            assert decode_result(results[0]).value == enclave.mrenclave()
            assert elapsed < 45, f"{count} connections took {elapsed:.1f}s"
            async with connect(server.url, ssl=client_tls, compression=None) as ws:
                assert "result" in await ask(ws, request("system_name"))

    run(main())


def test_servers_trusted_rpc_connection_limit(
    dispatcher: Dispatcher, enclave: Enclave, client_tls: ssl.SSLContext
) -> None:
    """Above max_connections a handshake is refused with 503; a slot frees up on close."""

    async def main() -> None:
        async with serve(dispatcher, enclave, max_connections=2) as server:
            a = await connect(server.url, ssl=client_tls, compression=None)
            b = await connect(server.url, ssl=client_tls, compression=None)
            await ask(a, request("system_name"))
            await ask(b, request("system_name"))  # both handlers are running
            with pytest.raises(InvalidStatus) as info:
                await connect(server.url, ssl=client_tls, compression=None)
            assert info.value.response.status_code == 503
            assert server.refused_connections == 1
            await a.close()
            deadline = time.monotonic() + 5
            while server.connection_count >= 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            c = await connect(server.url, ssl=client_tls, compression=None)
            assert "result" in await ask(c, request("system_name"))
            await b.close()
            await c.close()

    run(main())


def test_servers_trusted_rpc_pipelined_requests(
    dispatcher: Dispatcher, enclave: Enclave, client_tls: ssl.SSLContext
) -> None:
    """Many requests in flight on one connection are all answered, matched by id."""

    async def main() -> None:
        async with (
            serve(dispatcher, enclave, max_in_flight=4) as server,
            RpcClient(server.url, ssl_context=client_tls, timeout=10) as rpc,
        ):
            answers = await asyncio.gather(*(rpc.request("system_name") for _ in range(50)))
            assert {decode_result(a).status for a in answers} == {StatusOk()}

    run(main())


def test_servers_trusted_rpc_metrics_observer(
    dispatcher: Dispatcher, enclave: Enclave, client_tls: ssl.SSLContext
) -> None:
    """With Metrics as observer, requests over the socket show up by method and status."""
    metrics = Metrics()
    metrics.set_rpc_methods(dispatcher.method_names())

    async def main() -> None:
        async with (
            serve(dispatcher, enclave, observer=metrics.rpc_request) as server,
            connect(server.url, ssl=client_tls, compression=None) as ws,
        ):
            await ask(ws, request("author_getShard"))
            await ask(ws, request("author_getShard", req_id=2))
            await ask(ws, request("made_up"))

    run(main())
    text = metrics.render().decode()
    assert 'tocw_rpc_requests_total{method="author_getShard",status="ok"} 2.0' in text
    assert 'tocw_rpc_requests_total{method="unknown",status="method_not_found"} 1.0' in text


def test_servers_trusted_rpc_stop_closes_connections_and_port(
    dispatcher: Dispatcher, enclave: Enclave, client_tls: ssl.SSLContext
) -> None:
    """Stopping closes open connections with 1001 (going away) and frees the port."""

    async def main() -> None:
        server = serve(dispatcher, enclave)
        await server.start()
        port = server.port
        ws = await connect(server.url, ssl=client_tls, compression=None)
        await ask(ws, request("system_name"))
        await asyncio.wait_for(server.stop(), 10)
        await asyncio.wait_for(ws.wait_closed(), 10)
        assert ws.close_code == 1001
        with pytest.raises(ServerError):
            _ = server.port
        assert port_is_free(port)

    run(main())


def test_servers_trusted_rpc_port_in_use(dispatcher: Dispatcher, enclave: Enclave) -> None:
    """A taken port is a ServerError naming the address, not a bare OSError."""

    async def main() -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            server = TrustedRpcServer(dispatcher, "127.0.0.1", port, enclave.tls_server_context())
            with pytest.raises(ServerError, match=str(port)):
                await server.start()

    run(main())


def test_servers_trusted_rpc_requires_tls(dispatcher: Dispatcher) -> None:
    """The trusted RPC is never served in clear."""
    with pytest.raises(ServerError, match="TLS"):
        TrustedRpcServer(dispatcher, "127.0.0.1", 0, None)  # type: ignore[arg-type]


# -- health ---------------------------------------------------------------------------------------


def http_get(port: int, path: str, method: str = "GET") -> tuple[int, str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read().decode()
    finally:
        conn.close()


class StatusBox:
    """A thread-safe provider: the test swaps the snapshot, the server reads it."""

    def __init__(self, status: HealthStatus) -> None:
        self.status = status

    def __call__(self) -> HealthStatus:
        return self.status


def status(**overrides: Any) -> HealthStatus:
    fields: dict[str, Any] = {
        "registered": False,
        "synced": False,
        "last_imported_block": None,
        "finalized_head": None,
        "tee_kind": "sim",
        "is_secure": False,
    }
    fields.update(overrides)
    return HealthStatus(**fields)


def test_servers_health_is_initialized_follows_status() -> None:
    """/is_initialized: 503 with the reason until registered and synced, then 200."""
    box = StatusBox(status())
    with HealthServer(box, "127.0.0.1", 0) as server:
        code, _, body = http_get(server.port, "/is_initialized")
        assert (code, "not registered" in body) == (503, True)
        box.status = status(registered=True, last_imported_block=5, finalized_head=9)
        code, _, body = http_get(server.port, "/is_initialized")
        assert code == 503 and "4 blocks behind" in body
        box.status = status(registered=True, synced=True, last_imported_block=9, finalized_head=9)
        assert http_get(server.port, "/is_initialized") == (
            200,
            "text/plain; charset=utf-8",
            "I am initialized.\n",
        )


def test_servers_health_json() -> None:
    """/health: JSON with last imported block, lag, TEE kind and is_secure."""
    box = StatusBox(
        status(
            registered=True,
            last_imported_block=7,
            finalized_head=10,
            last_imported_hash=b"\xab" * 32,
            shard=b"\x01" * 32,
        )
    )
    with HealthServer(box, "127.0.0.1", 0) as server:
        code, content_type, body = http_get(server.port, "/health")
    assert (code, content_type) == (200, "application/json")
    health = json.loads(body)
    assert health["lastImportedBlock"] == 7
    assert health["finalizedHead"] == 10
    assert health["lag"] == 3
    assert health["tee"] == "sim"
    assert health["isSecure"] is False
    assert "NOT SECURE" in health["warning"]
    assert health["initialized"] is False
    assert health["lastImportedHash"] == to_hex(b"\xab" * 32)
    assert health["shard"] == to_hex(b"\x01" * 32)


def test_servers_health_unknown_paths_and_methods() -> None:
    """Other paths are 404, other methods 501, HEAD has no body; the server stays up."""
    with HealthServer(StatusBox(status()), "127.0.0.1", 0) as server:
        assert http_get(server.port, "/nope")[0] == 404
        assert http_get(server.port, "/health", "POST")[0] == 501
        assert http_get(server.port, "/health", "HEAD")[::2] == (200, "")
        assert http_get(server.port, "/health?verbose=1")[0] == 200


def test_servers_health_provider_failure_is_500() -> None:
    """A failing provider answers 500 and the next request still works."""
    calls = []

    def flaky() -> HealthStatus:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return status()

    with HealthServer(flaky, "127.0.0.1", 0) as server:
        assert http_get(server.port, "/health")[0] == 500
        assert http_get(server.port, "/health")[0] == 200


def test_servers_health_async_lifecycle_frees_port() -> None:
    """As an async context manager it starts, serves and stops, releasing its port."""

    async def main() -> int:
        async with HealthServer(StatusBox(status()), "127.0.0.1", 0) as server:
            port = server.port
            code = (await asyncio.to_thread(http_get, port, "/health"))[0]
            assert code == 200
        return port

    port = run(main())
    assert port_is_free(port)


def test_servers_health_port_in_use() -> None:
    """A taken port is a ServerError; an unstarted server has no port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = HealthServer(StatusBox(status()), "127.0.0.1", taken.getsockname()[1])
        with pytest.raises(ServerError):
            server.start()
        with pytest.raises(ServerError):
            _ = server.port
