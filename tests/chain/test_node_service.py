"""DevNode as a service in this process: authoring modes, finality timing, the transports on one
port, shutdown, restart, and refusal of a foreign database."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tocw.chain.node import DevNode, NodeConfig, NodeError
from tocw.chain.pallets.framework import GenesisConfig, RuntimeConfig
from tocw.chain.server import BadRequestError, ServerError, parse_head
from tocw.chain.testing import dev_chain_in_thread, rpc_call, signed_transfer
from tocw.cli.main import main as cli_main
from tocw.primitives.keys import Keypair, KeyScheme

T = TypeVar("T")
TIMEOUT = 20.0


def run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(TIMEOUT):
            return await coro_fn()

    return asyncio.run(bounded())


def config(**kw: Any) -> NodeConfig:
    base: dict[str, Any] = {"ws_port": 0, "block_time": 0.0, "finality_delay": 0.05}
    base.update(kw)
    return NodeConfig(**base)


async def ask(ws: ClientConnection, method: str, *params: Any, rid: int = 1) -> Any:
    await ws.send(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}))
    while True:
        msg = json.loads(await ws.recv())
        if msg.get("id") == rid:
            if "error" in msg:
                raise AssertionError(msg["error"])
            return msg["result"]


def alice_to_bob(node: DevNode, nonce: int = 0) -> str:
    """A transfer //Alice -> //Bob built against the node's chain (no sockets needed)."""
    alice = Keypair.from_uri("//Alice", KeyScheme.SR25519)
    bob = Keypair.from_uri("//Bob", KeyScheme.SR25519)
    xt = signed_transfer(node.require_chain(), alice, bob.public_key, 10**12, nonce=nonce)
    return "0x" + xt.hex()


def test_node_instant_seal_watch_statuses_in_order() -> None:
    """Instant seal: ready, inBlock, finalized arrive as separate frames, in that order, and the
    block is authored only because the transaction arrived."""

    async def scenario() -> list[Any]:
        async with DevNode(config(finality_delay=0.05)) as node, connect(node.url) as ws:
            assert node.require_chain().best_number == 0
            sub = await ask(ws, "author_submitAndWatchExtrinsic", alice_to_bob(node))
            updates: list[Any] = []
            while len(updates) < 3:
                msg = json.loads(await ws.recv())
                assert msg["method"] == "author_extrinsicUpdate"
                assert msg["params"]["subscription"] == sub
                updates.append(msg["params"]["result"])
            assert node.require_chain().best_number == 1
            return updates

    ready, in_block, finalized = run(scenario)
    assert ready == "ready"
    assert set(in_block) == {"inBlock"} and finalized == {"finalized": in_block["inBlock"]}


def test_node_block_time_authors_empty_blocks_and_finalizes() -> None:
    """With a block time, blocks come at that pace even without transactions, and finality
    follows each block after the delay."""

    async def scenario() -> tuple[int, int]:
        async with DevNode(config(block_time=0.05, finality_delay=0.02)) as node:
            chain = node.require_chain()
            while chain.finalized_number < 3:
                await asyncio.sleep(0.01)
            return chain.best_number, chain.finalized_number

    best, finalized = run(scenario)
    assert best >= finalized >= 3


def test_node_serves_http_and_ws_on_one_port() -> None:
    """A plain HTTP POST and a websocket reach the same API on the same port."""

    async def scenario() -> tuple[Any, Any]:
        async with DevNode(config()) as node:
            reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
            body = b'{"jsonrpc":"2.0","id":7,"method":"system_chain","params":[]}'
            writer.write(
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            http_reply = json.loads(await reader.readexactly(length))
            writer.close()
            async with connect(node.url) as ws:
                ws_reply = await ask(ws, "system_chain")
            return http_reply, ws_reply

    http_reply, ws_reply = run(scenario)
    assert http_reply == {"jsonrpc": "2.0", "result": "Development", "id": 7}
    assert ws_reply == "Development"


def test_node_shutdown_closes_clients_going_away() -> None:
    """Leaving the context closes websocket clients with 1001 and frees the port."""

    async def scenario() -> int | None:
        node = DevNode(config())
        async with node:
            ws = await connect(node.url)
            await ask(ws, "chain_subscribeNewHeads")
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as e:
            return e.rcvd.code if e.rcvd else None

    assert run(scenario) == 1001


def test_node_port_in_use_is_a_clear_error() -> None:
    """A second node on a taken port fails with ServerError naming the address."""

    async def scenario() -> None:
        async with DevNode(config()) as first:
            with pytest.raises(ServerError, match=f"cannot listen on 127.0.0.1:{first.port}"):
                async with DevNode(config(ws_port=first.port)):
                    pass

    run(scenario)


def test_node_restart_continues_from_base_path(tmp_path: Path) -> None:
    """Same base path: same genesis, same best block and state; authoring goes on from there."""

    async def first_run() -> tuple[bytes, int, bytes]:
        async with DevNode(config(base_path=tmp_path)) as node:
            for _ in range(3):
                node.produce_block()
            chain = node.require_chain()
            return chain.genesis_hash, chain.best_number, chain.best_hash

    async def second_run() -> tuple[bytes, int, bytes, int, int]:
        async with DevNode(config(base_path=tmp_path)) as node:
            chain = node.require_chain()
            facts = (chain.genesis_hash, chain.best_number, chain.best_hash)
            while chain.finalized_number < 3:  # left unfinalized by the first run
                await asyncio.sleep(0.01)
            node.produce_block()
            return (*facts, chain.best_number, chain.finalized_number)

    genesis, best, best_hash = run(first_run)
    genesis2, best2, best_hash2, after, finalized = run(second_run)
    assert (genesis2, best2, best_hash2) == (genesis, best, best_hash)
    assert after == best + 1 and finalized >= 3


def test_node_refuses_a_database_of_another_chain(tmp_path: Path) -> None:
    """A base path holding a different genesis is refused, not silently reused."""
    run(lambda: _start_stop(config(base_path=tmp_path)))
    alice = Keypair.from_uri("//Alice", KeyScheme.SR25519).public_key
    grandpa = Keypair.from_uri("//Alice", KeyScheme.ED25519).public_key
    other = RuntimeConfig(genesis=GenesisConfig(((alice, 10**20),), alice, ((grandpa, 1),)))
    with pytest.raises(NodeError, match="different chain"):
        run(lambda: _start_stop(config(base_path=tmp_path, runtime=other)))


async def _start_stop(cfg: NodeConfig) -> None:
    async with DevNode(cfg):
        pass


def test_node_config_rejects_bad_values() -> None:
    """Negative times and impossible ports are refused up front."""
    for bad in ({"block_time": -1}, {"finality_delay": -0.1}, {"ws_port": 70000}):
        with pytest.raises(ValueError):
            NodeConfig(**bad)


def test_node_in_thread_fixture_serves_sync_clients() -> None:
    """dev_chain_in_thread: a synchronous client talks to a node on a background loop."""
    with dev_chain_in_thread(block_time=0.05, finality_delay=0.01) as handle:
        assert rpc_call(handle.url, "system_chain") == "Development"
        number = handle.run(lambda node: node.require_chain().best_number)
        assert isinstance(number, int)


def test_node_cli_requires_dev_and_sane_values(capsys: pytest.CaptureFixture[str]) -> None:
    """`tocw chain` without --dev, or with a negative block time, exits 2 with a message."""
    assert cli_main(["chain"]) == 2
    assert "tocw chain --dev" in capsys.readouterr().err
    assert cli_main(["chain", "--dev", "--block-time", "-1"]) == 2
    assert "block time" in capsys.readouterr().err


def test_node_http_head_parser() -> None:
    """The HTTP front parses request heads and rejects malformed ones with a typed error."""
    head = parse_head(b"POST /x HTTP/1.1\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2")
    assert (head.method, head.path, head.version) == ("POST", "/x", "HTTP/1.1")
    assert head.headers == {"content-length": "5", "x-a": "1, 2"}
    for bad in (b"GET /", b"GET / HTTP/2\r\n", b"GET / HTTP/1.1\r\nno-colon"):
        with pytest.raises(BadRequestError):
            parse_head(bad)


def test_node_base_path_is_locked(tmp_path: Path) -> None:
    """A second node on the same base path is refused while the first runs."""

    async def scenario() -> None:
        async with DevNode(config(base_path=tmp_path)):
            with pytest.raises(NodeError, match="another node is running"):
                async with DevNode(config(base_path=tmp_path)):
                    pass
        async with DevNode(config(base_path=tmp_path)):  # free again after shutdown
            pass

    run(scenario)
