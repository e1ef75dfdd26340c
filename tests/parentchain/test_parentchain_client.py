"""tocw.parentchain.client against the real dev chain (tocw.chain's DevNode on a free port).

The node runs in the test's event loop (DevNode is the chain's in-process service API) and is
driven explicitly: `block_time` is an hour unless a test wants instant seal, and blocks are
authored with `node.produce_block()`, so every test sees exactly the blocks it made. The client
talks to it only through the standard JSON-RPC, as it would to any Substrate node.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tocw.chain.node import DevNode, NodeConfig
from tocw.parentchain.client import (
    SYSTEM_EVENTS_KEY,
    Backoff,
    ParentchainClient,
    reconnecting,
)
from tocw.parentchain.errors import (
    ExtrinsicRejectedError,
    InvalidNodeResponseError,
    ParentchainConnectionError,
    ParentchainTimeoutError,
    StateUnavailableError,
    UnknownBlockError,
)
from tocw.primitives.events import decode_events, find_events
from tocw.primitives.header import Header
from tocw.primitives.keys import Keypair
from tocw.primitives.metadata import Variant
from tocw.primitives.scale import U32
from tocw.primitives.trie import verify_proof
from tocw.primitives.types import AccountId

TEST_TIMEOUT = 60.0


def run(main: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(TEST_TIMEOUT):
            await main()

    asyncio.run(bounded())


@contextlib.asynccontextmanager
async def dev_node(**options: Any) -> AsyncIterator[DevNode]:
    config: dict[str, Any] = {"base_path": None, "ws_port": 0, "block_time": 3600.0}
    config["finality_delay"] = 0.0
    config.update(options)
    async with DevNode(NodeConfig(**config)) as node:
        yield node


@contextlib.asynccontextmanager
async def instant_chain() -> AsyncIterator[ParentchainClient]:
    """A client of a node with instant seal (a block as soon as a transaction is ready)."""
    async with (
        dev_node(block_time=0.0, finality_delay=0.05) as node,
        await ParentchainClient.connect(node.url) as chain,
    ):
        yield chain


async def produce_finalized(node: DevNode, count: int) -> int:
    """Author `count` blocks and wait (bounded) until they are final; the last number."""
    for _ in range(count):
        node.produce_block()
    chain = node.require_chain()
    async with asyncio.timeout(10):
        while chain.finalized_number < chain.best_number:
            await asyncio.sleep(0.01)
    return chain.best_number


def test_parentchain_chain_facts() -> None:
    """Genesis hash, runtime version and metadata come from the node; metadata is cached."""

    async def main() -> None:
        async with dev_node() as node, await ParentchainClient.connect(node.url) as chain:
            assert await chain.genesis_hash() == node.genesis_hash
            assert await chain.chain_name() == node.chain_name
            version = await chain.runtime_version()
            assert version.spec_version > 0 and version.transaction_version > 0
            md = await chain.metadata()
            assert md.has_pallet("Teerex") and md.has_pallet("EnclaveBridge")
            assert await chain.metadata() is md

    run(main)


def test_parentchain_heads_headers_blocks() -> None:
    """Finalized head, header, block hash and block agree with each other and the node."""

    async def main() -> None:
        async with dev_node() as node, await ParentchainClient.connect(node.url) as chain:
            last = await produce_finalized(node, 3)
            head = await chain.finalized_head()
            header = await chain.header(head)
            assert header.number == last and header.hash() == head
            assert await chain.block_hash(last) == head
            assert (await chain.finalized_header()).hash() == head
            assert (await chain.header()).number == last  # best block
            assert await chain.best_head() == head
            signed = await chain.block(head)
            assert signed.block.header == header
            assert len(signed.block.extrinsics) >= 1  # the timestamp inherent

    run(main)


def test_parentchain_unknown_blocks_are_typed() -> None:
    """Unknown hashes and numbers raise UnknownBlockError, not a crash or None."""

    async def main() -> None:
        async with dev_node() as node, await ParentchainClient.connect(node.url) as chain:
            with pytest.raises(UnknownBlockError):
                await chain.block_hash(10**6)
            with pytest.raises(UnknownBlockError):
                await chain.header(b"\x01" * 32)
            with pytest.raises(UnknownBlockError):
                await chain.block(b"\x01" * 32)
            with pytest.raises(UnknownBlockError):
                await chain.storage(SYSTEM_EVENTS_KEY, b"\x01" * 32)
            with pytest.raises(UnknownBlockError):
                await chain.blocks_range(0, 5)

    run(main)


def test_parentchain_blocks_range_pipelined_windows() -> None:
    """A range over several windows comes back complete, in order, linked, with events and
    event proofs that verify against each header's state root."""

    async def main() -> None:
        async with dev_node() as node:
            last = await produce_finalized(node, 70)
            async with await ParentchainClient.connect(node.url, window=8, depth=3) as chain:
                md = await chain.metadata()
                blocks = await chain.blocks_range(1, last, events_proof=True)
                assert [b.number for b in blocks] == list(range(1, last + 1))
                genesis = await chain.genesis_hash()
                for parent, block in zip(
                    [genesis, *(b.hash for b in blocks)], blocks, strict=False
                ):
                    assert block.header.parent_hash == parent
                    assert block.header.hash() == block.hash
                    assert block.events is not None
                    records = decode_events(md, block.events)
                    assert find_events(records, "System", "ExtrinsicSuccess")
                    proven = verify_proof(
                        block.header.state_root, block.events_proof, [SYSTEM_EVENTS_KEY]
                    )
                    assert proven[SYSTEM_EVENTS_KEY] == block.events
                assert await chain.blocks_range(5, 4) == []
                plain = await chain.blocks_range(2, 3, events=False)
                assert [b.events for b in plain] == [None, None]

    run(main)


def test_parentchain_iter_blocks_checks_parent() -> None:
    """A range that does not build on the given parent is refused."""

    async def main() -> None:
        async with dev_node() as node, await ParentchainClient.connect(node.url) as chain:
            await produce_finalized(node, 3)
            with pytest.raises(InvalidNodeResponseError):
                async with contextlib.aclosing(chain.iter_blocks(2, 3, parent=b"\x07" * 32)) as it:
                    async for _ in it:
                        pass
            good = await chain.block_hash(1)
            got = [b.number async for b in chain.iter_blocks(2, 3, parent=good)]
            assert got == [2, 3]

    run(main)


def test_parentchain_storage_reads_and_proofs() -> None:
    """storage, storage_many and read_proof read the state of a given block."""

    async def main() -> None:
        async with dev_node() as node, await ParentchainClient.connect(node.url) as chain:
            await produce_finalized(node, 4)
            md = await chain.metadata()
            number_key = md.storage_key("System", "Number")
            at2 = await chain.block_hash(2)
            assert U32.decode(await chain.storage(number_key, at2) or b"") == 2
            assert await chain.storage(b"\x00nothing-here") is None
            values = await chain.storage_many([number_key, b"\x00nothing-here"], at2)
            assert values == {number_key: U32.encode(2), b"\x00nothing-here": None}
            assert await chain.storage_many([]) == {}
            proof = await chain.read_proof([number_key], at2)
            header = await chain.header(at2)
            assert proof.at == at2
            assert verify_proof(header.state_root, proof.proof, [number_key]) == {
                number_key: U32.encode(2)
            }
            records = await chain.events(at2)
            assert records and all(r.pallet for r in records)

    run(main)


def test_parentchain_pruned_state_is_typed() -> None:
    """Reading state the node has discarded raises StateUnavailableError."""

    async def main() -> None:
        async with dev_node(state_window=256) as node:
            await produce_finalized(node, 270)
            async with await ParentchainClient.connect(node.url) as chain:
                old = await chain.block_hash(1)
                with pytest.raises(StateUnavailableError):
                    await chain.events_raw(old)
                with pytest.raises(StateUnavailableError):
                    await chain.blocks_range(1, 2)
                assert len(await chain.blocks_range(1, 2, events=False)) == 2

    run(main)


def test_parentchain_sign_submit_and_watch_transfer() -> None:
    """A signed transfer goes ready -> inBlock -> finalized; the nonce advances and the
    block's events show the transfer."""

    async def main() -> None:
        async with instant_chain() as chain:
            alice = Keypair.from_uri("//Alice")
            bob = Keypair.from_uri("//Bob")
            md = await chain.metadata()
            assert await chain.account_next_index(AccountId(alice.public_key)) == 0
            call = md.encode_call(
                "Balances",
                "transfer_keep_alive",
                {"dest": Variant("Id", bob.public_key), "value": 10**12},
            )
            xt = await chain.sign(call, alice, mortal_period=64)
            watch = await chain.submit_and_watch(xt)
            statuses = [s async for s in watch]
            assert [s.kind for s in statuses] == ["ready", "inBlock", "finalized"]
            in_block = statuses[1].block_hash
            assert in_block is not None and statuses[2].block_hash == in_block
            assert await chain.account_next_index(AccountId(alice.public_key)) == 1
            transfers = find_events(await chain.events(in_block), "Balances", "Transfer")
            assert len(transfers) == 1

            xt2 = await chain.sign(call, alice)
            tx_hash = await chain.submit(xt2)
            assert len(tx_hash) == 32
            with pytest.raises(ExtrinsicRejectedError) as info:
                await chain.submit(xt2)  # already in the pool or already included
            assert 1001 <= info.value.code < 1020

    run(main)


def test_parentchain_submit_and_watch_wait_for() -> None:
    """wait_for() returns the finalized status; a garbage extrinsic is rejected at once."""

    async def main() -> None:
        async with instant_chain() as chain:
            alice = Keypair.from_uri("//Alice")
            md = await chain.metadata()
            call = md.encode_call("System", "remark", {"remark": b"tocw"})
            async with await chain.submit_and_watch(await chain.sign(call, alice)) as watch:
                status = await watch.wait_for("finalized", timeout=10)
            assert status.kind == "finalized"
            with pytest.raises(ExtrinsicRejectedError):
                await chain.submit(b"\x10garbage")
            with pytest.raises(ExtrinsicRejectedError):
                await chain.submit_and_watch(b"\x10garbage")

    run(main)


def test_parentchain_finalized_head_subscription() -> None:
    """Finalized heads arrive in order as blocks are finalized; close() unsubscribes."""

    async def main() -> None:
        async with dev_node() as node, await ParentchainClient.connect(node.url) as chain:
            async with await chain.subscribe_finalized_heads() as heads:
                first = await heads.next(timeout=5)
                assert first.number == 0
                await produce_finalized(node, 3)
                numbers = [(await heads.next(timeout=5)).number for _ in range(3)]
                assert numbers == [1, 2, 3]
                with pytest.raises(ParentchainTimeoutError):
                    await heads.next(timeout=0.1)
            best = await chain.subscribe_new_heads()
            assert (await best.next(timeout=5)).number == 3
            await best.close()

    run(main)


def test_parentchain_connection_loss_is_typed() -> None:
    """Calls and subscriptions fail with ParentchainConnectionError when the node goes away."""

    async def main() -> None:
        async with dev_node() as node:
            chain = await ParentchainClient.connect(node.url)
            heads = await chain.subscribe_finalized_heads()
            await heads.next(timeout=5)
        # the node has shut down
        with pytest.raises(ParentchainConnectionError):
            await heads.next(timeout=5)
        with pytest.raises(ParentchainConnectionError):
            await chain.finalized_head()
        assert not chain.connected
        await chain.close()
        with pytest.raises(ParentchainConnectionError):
            await ParentchainClient.connect(node_url_gone, open_timeout=2)

    node_url_gone = "ws://127.0.0.1:9"  # discard port: nothing listens there
    run(main)


def test_parentchain_reconnecting_resubscribes_after_restart(tmp_path: Path) -> None:
    """ReconnectingClient keeps yielding finalized heads across a node restart and retries
    calls on the new connection."""

    async def main() -> None:
        received: list[Header] = []
        backoff = Backoff(initial=0.05, cap=0.2, stable_after=60)
        async with dev_node(base_path=tmp_path / "chain") as node:
            port = node.port
            url = node.url
            await produce_finalized(node, 2)
            chain = reconnecting(url, backoff)
            await chain.client()

            async def follow() -> None:
                async for header in chain.finalized_heads():
                    received.append(header)

            follower = asyncio.create_task(follow())
            async with asyncio.timeout(10):
                while not received or received[-1].number < 2:
                    await asyncio.sleep(0.01)
        try:
            async with dev_node(base_path=tmp_path / "chain", ws_port=port) as node2:
                await produce_finalized(node2, 2)
                async with asyncio.timeout(10):
                    while received[-1].number < 4:
                        await asyncio.sleep(0.01)
                assert await chain.run(lambda c: c.block_hash(4)) == await chain.run(
                    lambda c: c.finalized_head()
                )
                assert chain.reconnects >= 1
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
            await chain.close()
        numbers = [h.number for h in received]
        assert numbers == sorted(numbers) and numbers[-1] == 4

    run(main)


def test_parentchain_reconnecting_gives_up_after_max_attempts() -> None:
    """With max_attempts, a node that never comes back ends in ParentchainConnectionError."""

    async def main() -> None:
        backoff = Backoff(initial=0.01, cap=0.02, max_attempts=3)
        chain = reconnecting("ws://127.0.0.1:9", backoff, open_timeout=1)
        with pytest.raises(ParentchainConnectionError):
            await chain.client()
        await chain.close()

    run(main)
