"""tocw.parentchain against nodes that behave differently from the dev chain.

A small websockets server in front of the dev chain refuses JSON-RPC batches (as some nodes and
proxies do), and a fake node answers with malformed or inconsistent data. Plus the pure parts:
the error mapping and the parsing of statuses and runtime versions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from tocw.chain.node import DevNode, NodeConfig
from tocw.parentchain.client import (
    ExtrinsicStatus,
    ParentchainClient,
    RuntimeVersion,
)
from tocw.parentchain.errors import (
    ExtrinsicRejectedError,
    InvalidNodeResponseError,
    NodeRpcError,
    StateUnavailableError,
    UnknownBlockError,
    node_error,
)
from tocw.primitives.header import Header, header_to_json
from tocw.rpc.client import RpcClient
from tocw.rpc.errors import RpcCallError

TEST_TIMEOUT = 30.0


def run(main: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(TEST_TIMEOUT):
            await main()

    asyncio.run(bounded())


@contextlib.asynccontextmanager
async def serve_handler(
    handler: Callable[[ServerConnection], Awaitable[None]],
) -> AsyncIterator[str]:
    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


def _reply(req_id: Any, result: Any = None, error: dict[str, Any] | None = None) -> str:
    if error is not None:
        return json.dumps({"jsonrpc": "2.0", "error": error, "id": req_id})
    return json.dumps({"jsonrpc": "2.0", "result": result, "id": req_id})


def test_parentchain_blocks_range_without_batch_support() -> None:
    """Through a proxy that refuses batches, catch-up falls back to pipelined calls."""

    async def main() -> None:
        config = NodeConfig(base_path=None, ws_port=0, block_time=3600.0, finality_delay=0.0)
        async with DevNode(config) as node, RpcClient(node.url) as upstream:
            for _ in range(20):
                node.produce_block()
            chain_ = node.require_chain()
            async with asyncio.timeout(10):
                while chain_.finalized_number < chain_.best_number:
                    await asyncio.sleep(0.01)
            refused: list[int] = []

            async def proxy(ws: ServerConnection) -> None:
                async for message in ws:
                    request = json.loads(message)
                    if isinstance(request, list):
                        refused.append(len(request))
                        await ws.send(_reply(None, error={"code": -32600, "message": "no batch"}))
                        continue
                    try:
                        result = await upstream.request(request["method"], request["params"])
                        await ws.send(_reply(request["id"], result))
                    except RpcCallError as e:
                        err = {"code": e.code, "message": e.message}
                        await ws.send(_reply(request["id"], error=err))

            async with (
                serve_handler(proxy) as url,
                await ParentchainClient.connect(url, window=4) as chain,
            ):
                blocks = await chain.blocks_range(1, 20, events_proof=True)
                assert [b.number for b in blocks] == list(range(1, 21))
                assert refused == [12]  # the one probe: 4 blocks x 3 calls
                assert chain.rpc._batch_support is False

    run(main)


def test_parentchain_malformed_answers_are_typed() -> None:
    """Wrong shapes, wrong lengths and blocks that do not hash to what was asked raise
    InvalidNodeResponseError."""
    header = Header(b"\x00" * 32, 5, b"\x01" * 32, b"\x02" * 32)  # type: ignore[arg-type]
    block = {"block": {"header": header_to_json(header), "extrinsics": []}, "justifications": None}
    answers: dict[str, Any] = {
        "chain_getFinalizedHead": "0x1234",
        "chain_getHead": 17,
        "chain_getBlock": block,
        "chain_getHeader": {"number": "0x5"},
        "state_getRuntimeVersion": {"specName": "x"},
        "chain_getBlockHash": ["0x" + "11" * 32],
        "state_getReadProof": {"at": "0x00", "proof": []},
        "state_queryStorageAt": [{"block": "0x00", "changes": [["0xzz", None]]}],
    }

    async def fake_node(ws: ServerConnection) -> None:
        async for message in ws:
            request = json.loads(message)
            await ws.send(_reply(request["id"], answers[request["method"]]))

    async def main() -> None:
        async with serve_handler(fake_node) as url, await ParentchainClient.connect(url) as chain:
            for call in (
                chain.finalized_head(),
                chain.best_head(),
                chain.block(b"\x03" * 32),
                chain.header(),
                chain.runtime_version(),
                chain.block_hash(1),  # a list where a single hash belongs
                chain.block_hashes([1, 2]),  # one hash for two numbers
                chain.read_proof([b"k"]),
                chain.storage_many([b"k"]),
            ):
                with pytest.raises(InvalidNodeResponseError):
                    await call

    run(main)


def test_node_error_mapping() -> None:
    """Substrate's error codes and client-error messages map onto the typed tree."""
    assert isinstance(
        node_error("author_submitExtrinsic", 1010, "Invalid Transaction"), ExtrinsicRejectedError
    )
    assert isinstance(
        node_error("author_submitExtrinsic", 1001, "bad format"), ExtrinsicRejectedError
    )
    discarded = "Client error: UnknownBlock: State already discarded for 0x12"
    assert isinstance(node_error("state_getStorage", 4003, discarded), StateUnavailableError)
    unknown = "Client error: UnknownBlock: Header was not found in the database: 0x12"
    assert isinstance(node_error("state_getStorage", 4003, unknown), UnknownBlockError)
    other = node_error("state_call", 4003, "Client error: Execution failed")
    assert type(other) is NodeRpcError and other.code == 4003
    assert type(node_error("x", -32601, "Method not found")) is NodeRpcError


@pytest.mark.parametrize(
    ("value", "kind", "final"),
    [
        ("future", "future", False),
        ("ready", "ready", False),
        ({"broadcast": ["peer"]}, "broadcast", False),
        ({"inBlock": "0x" + "ab" * 32}, "inBlock", False),
        ({"retracted": "0x" + "ab" * 32}, "retracted", False),
        ({"finalityTimeout": "0x" + "ab" * 32}, "finalityTimeout", True),
        ({"finalized": "0x" + "ab" * 32}, "finalized", True),
        ({"usurped": "0x" + "cd" * 32}, "usurped", True),
        ("dropped", "dropped", True),
        ("invalid", "invalid", True),
    ],
)
def test_extrinsic_status_from_json(value: Any, kind: str, final: bool) -> None:
    """Every TransactionStatus form of Substrate parses, block hashes as bytes."""
    status = ExtrinsicStatus.from_json(value)
    assert status.kind == kind and status.is_final == final
    if kind in ("inBlock", "retracted", "finalityTimeout", "finalized"):
        assert status.block_hash == b"\xab" * 32


@pytest.mark.parametrize("value", ["sideways", {"inBlock": "0x12"}, {"a": 1, "b": 2}, 5, None])
def test_extrinsic_status_malformed(value: Any) -> None:
    """Unknown or malformed statuses raise InvalidNodeResponseError."""
    with pytest.raises(InvalidNodeResponseError):
        ExtrinsicStatus.from_json(value)


def test_runtime_version_from_json() -> None:
    """A Substrate runtime version parses; stateVersion defaults to 0 for old nodes."""
    value = {
        "specName": "integritee-node",
        "implName": "integritee-node",
        "authoringVersion": 2,
        "specVersion": 54,
        "implVersion": 1,
        "apis": [["0xdf6acb689907609b", 4]],
        "transactionVersion": 4,
    }
    version = RuntimeVersion.from_json(value)
    assert version.spec_version == 54 and version.state_version == 0
    assert version.apis == ((bytes.fromhex("df6acb689907609b"), 4),)
    with pytest.raises(InvalidNodeResponseError):
        RuntimeVersion.from_json({**value, "specVersion": -1})
