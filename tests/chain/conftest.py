"""Fixtures for the dev chain node's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tocw.chain.testing import RpcHarness, rpc_harness
from tocw.primitives.keys import Keypair, KeyScheme


@pytest.fixture
def rig() -> Iterator[RpcHarness]:
    with rpc_harness() as harness:
        yield harness


@pytest.fixture
def alice() -> Keypair:
    return Keypair.from_uri("//Alice", KeyScheme.SR25519)


@pytest.fixture
def bob() -> Keypair:
    return Keypair.from_uri("//Bob", KeyScheme.SR25519)
