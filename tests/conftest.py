"""Fixtures shared by every test package.

`dev_chain_url`: a fresh `tocw chain --dev` process (instant seal, quick finality) for one
test, stopped afterwards; yields its ws:// URL. Tests that need other timings or a persistent
base path use tocw.chain.testing.start_dev_chain / launch_dev_chain directly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tocw.chain.testing import start_dev_chain


@pytest.fixture
def dev_chain_url(tmp_path: Path) -> Iterator[str]:
    with start_dev_chain(tmp_path / "dev-chain", block_time=0, finality_delay=0.1) as url:
        yield url
