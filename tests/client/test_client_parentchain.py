"""tocw.client.parentchain against a real `tocw chain --dev` process (instant seal)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest

from tocw.client.errors import ClientTimeoutError, ExtrinsicFailedError, NodeConnectionError
from tocw.client.parentchain import Parentchain
from tocw.primitives.events import EventRecord
from tocw.primitives.keys import Keypair

pytestmark = pytest.mark.e2e

ALICE = Keypair.from_uri("//Alice")
UNIT = 10**12


def _run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_parentchain_account_token_and_registry(dev_chain_url: str) -> None:
    """Accounts read as System.Account, the token from system_properties, no workers yet."""

    async def go() -> None:
        with pytest.raises(NodeConnectionError, match="not connected"):
            _ = Parentchain(dev_chain_url).client
        async with Parentchain(dev_chain_url) as chain:
            assert (await chain.account_info(ALICE.account_id)).free > 0
            nobody = await chain.account_info(Keypair.generate().account_id)
            assert (nobody.free, nobody.nonce) == (0, 0)
            token = await chain.token()
            assert (token.symbol, token.decimals) == ("TEER", 12)
            assert await chain.workers() == []

    _run(go())


def test_parentchain_transfer_and_its_event(dev_chain_url: str) -> None:
    """A transfer lands in a finalized block with its events; wait_for_event finds the
    Balances.Transfer event even though it happened before the wait began."""

    async def go() -> None:
        dest = Keypair.generate()
        async with await Parentchain.connect(dev_chain_url) as chain:
            inclusion = await chain.transfer(ALICE, dest.account_id, 3 * UNIT, timeout=30)
            assert await chain.free_balance(dest.account_id) == 3 * UNIT
            names = {(e.pallet, e.name) for e in inclusion.events}
            assert ("Balances", "Transfer") in names

            def is_ours(record: EventRecord) -> bool:
                return record.name == "Transfer" and record.attributes.get("to") == bytes(
                    dest.account_id
                )

            found = await chain.wait_for_event(is_ours, since=0, timeout=10)
            assert found.block_number == inclusion.block_number
            with pytest.raises(ClientTimeoutError, match="a worker to process"):
                await chain.wait_for_processed(inclusion.block_hash, timeout=0.5)

    _run(go())


def test_parentchain_failed_extrinsic_names_the_error(dev_chain_url: str) -> None:
    """A transfer beyond the balance fails on chain with the pallet's error name."""

    async def go() -> None:
        poor = Keypair.generate()
        async with await Parentchain.connect(dev_chain_url) as chain:
            await chain.transfer(ALICE, poor.account_id, 2 * UNIT, timeout=30)
            with pytest.raises(ExtrinsicFailedError, match="InsufficientBalance"):
                await chain.transfer(poor, ALICE.account_id, 100 * UNIT, timeout=30)

    _run(go())


def test_parentchain_wait_is_bounded(dev_chain_url: str) -> None:
    """Waiting for an event that never comes ends with ClientTimeoutError, on time."""

    async def go() -> None:
        async with await Parentchain.connect(dev_chain_url) as chain:
            start = asyncio.get_running_loop().time()
            with pytest.raises(ClientTimeoutError, match=r"timed out after 0\.5 s"):
                await chain.wait_for_event(lambda r: False, since=0, timeout=0.5, what="nothing")
            assert asyncio.get_running_loop().time() - start < 5

    _run(go())


def test_parentchain_unreachable_node() -> None:
    """A node that is not there is NodeConnectionError naming the URL."""

    async def go() -> None:
        with pytest.raises(NodeConnectionError, match=r"ws://127\.0\.0\.1:1"):
            await Parentchain.connect("ws://127.0.0.1:1", timeout=5)

    _run(go())
