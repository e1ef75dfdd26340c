"""tocw.parentchain against `tocw chain --dev` running as its own process, as users run it."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from tocw.chain.testing import start_dev_chain
from tocw.parentchain.client import Backoff, reconnecting


@pytest.mark.e2e
def test_parentchain_follows_dev_chain_process(tmp_path: Path) -> None:
    """Finalized heads of a block-authoring node arrive in order and catch-up fetches every
    block up to them, linked and with events."""
    with start_dev_chain(tmp_path, block_time=0.3, finality_delay=0.1) as url:

        async def main() -> None:
            async with asyncio.timeout(60), reconnecting(url, Backoff(max_attempts=5)) as chain:
                heads = []
                async with contextlib.aclosing(chain.finalized_heads()) as stream:
                    async for header in stream:
                        heads.append(header.number)
                        if header.number >= 4:
                            break
                assert heads == sorted(heads)
                blocks = await chain.run(lambda c: c.blocks_range(1, heads[-1]))
                assert [b.number for b in blocks] == list(range(1, heads[-1] + 1))
                assert all(b.events for b in blocks)
                client = await chain.client()
                assert blocks[0].header.parent_hash == await client.genesis_hash()

        asyncio.run(main())
