"""Joining a shard, host side: the creation block from the chain's history, the join record,
and the provisioning retry policy."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tocw.chain.node import Chain
from tocw.chain.testing import rpc_harness
from tocw.enclave.provisioning import PeerMeasurementError, PeerNotRegisteredError
from tocw.parentchain.client import SYSTEM_EVENTS_KEY
from tocw.parentchain.errors import NodeRpcError, UnknownBlockError
from tocw.primitives.extrinsic import build_signed_extrinsic
from tocw.primitives.header import Header
from tocw.primitives.keys import Keypair, KeyScheme
from tocw.primitives.metadata import Variant
from tocw.primitives.types import AccountId, BlockHash, BlockNumber, ShardId
from tocw.worker import joining
from tocw.worker.joining import (
    CreationBlockError,
    JoinError,
    JoinRecord,
    JoinRecordError,
    find_creation_block,
    is_definitive,
    load_join_record,
    provision_with_retry,
    same_code_enclaves,
    save_join_record,
    wait_for_creation_block,
)
from tocw.worker.provisioning import (
    GiverEndpoint,
    ProvisioningFailedError,
    provision_shielding_key,
)

ENCLAVE = Keypair.from_uri("//Dave", KeyScheme.SR25519)  # an endowed dev account as the worker
SHARD = ShardId(b"\x0e" * 32)  # = the worker's MRENCLAVE: the default shard


class ChainHistory:
    """HistorySource over an in-process dev chain; states of blocks below `discarded_below`
    fail as a pruning node's do ("State already discarded")."""

    def __init__(self, chain: Chain, discarded_below: int = 0) -> None:
        self.chain = chain
        self.discarded_below = discarded_below
        self.reads = 0

    async def finalized_header(self) -> Header:
        block = self.chain.block(self.chain.finalized_hash)
        assert block is not None
        return block.header

    async def block_hash(self, number: int) -> BlockHash:
        found = self.chain.block_hash(number)
        if found is None:
            raise UnknownBlockError(f"no block #{number}")
        return BlockHash(found)

    async def storage(self, key: bytes, at: bytes | None = None) -> bytes | None:
        self.reads += 1
        block = self.chain.block(at) if at is not None else None
        if block is not None and block.number < self.discarded_below:
            message = f"State already discarded for 0x{bytes(at or b'').hex()}"
            raise NodeRpcError("state_getStorage", 4003, message)
        return self.chain.state(at).get(key)

    async def events_raw(self, block_hash: bytes) -> bytes:
        return await self.storage(SYSTEM_EVENTS_KEY, block_hash) or b"\x00"


class DevHistory:
    """A dev chain the test writes: blocks, a registered worker, its confirmations."""

    def __init__(self, chain: Chain, clock: list[int]) -> None:
        self.chain = chain
        self.clock = clock
        self.nonce = 0

    def produce(self, *calls: tuple[str, str, dict[str, Any]]) -> int:
        md = self.chain.runtime.md
        for pallet, name, args in calls:
            xt = build_signed_extrinsic(
                md,
                md.encode_call(pallet, name, args),
                ENCLAVE,
                nonce=self.nonce,
                genesis_hash=self.chain.genesis_hash,
                spec_version=self.chain.runtime.version.spec_version,
                transaction_version=self.chain.runtime.version.transaction_version,
            )
            self.chain.submit(xt)
            self.nonce += 1
        self.clock[0] += 1000
        block = self.chain.produce_block(self.clock[0])
        self.chain.finalize(block.block.hash)
        return int(self.chain.best_number)

    def confirm(self, number: int) -> tuple[str, str, dict[str, Any]]:
        block_hash = self.chain.block_hash(number)
        args = {
            "shard": bytes(SHARD),
            "block_hash": block_hash,
            "block_number": number,
            "trusted_calls_merkle_root": bytes(32),
        }
        return ("EnclaveBridge", "confirm_processed_parentchain_block", args)


@pytest.fixture
def history() -> Iterator[DevHistory]:
    with rpc_harness() as harness:
        yield DevHistory(harness.chain, [harness.clock_ms])


def register() -> tuple[str, str, dict[str, Any]]:
    args = {
        "proof": bytes(SHARD),
        "worker_url": b"wss://127.0.0.1:2000",
        "attestation_method": Variant("Skip", {"proxied": False}),
    }
    return ("Teerex", "register_sgx_enclave", args)


def find(history: DevHistory) -> BlockNumber | None:
    source = ChainHistory(history.chain)
    return asyncio.run(find_creation_block(source, history.chain.runtime.md, SHARD))


# -- the creation block ---------------------------------------------------------------------------


def test_find_creation_block_is_the_first_confirmed_block(history: DevHistory) -> None:
    """The shard's first confirmation names its creation block, however long the chain is."""
    history.produce(register())
    for _ in range(20):
        history.produce()
    history.produce(history.confirm(12), history.confirm(13))  # in nonce order, one block
    for number in range(14, 40):
        history.produce(history.confirm(number))
    source = ChainHistory(history.chain)
    found = asyncio.run(find_creation_block(source, history.chain.runtime.md, SHARD))
    assert found == 12
    assert source.reads < 20  # bisected, not read block by block


def test_find_creation_block_none_before_any_confirmation(history: DevHistory) -> None:
    """A shard nobody confirmed yet has no creation block to find (the caller waits)."""
    history.produce(register())
    history.produce()
    assert find(history) is None


def test_find_creation_block_after_a_shard_config(history: DevHistory) -> None:
    """A custom shard's status appears with its config; the first confirmation comes later."""
    history.produce(register())
    config = {
        "enclave_fingerprint": bytes(SHARD),
        "max_instances": None,
        "authorities": None,
        "maintenance_mode": False,
    }
    args = {"shard": bytes(SHARD), "shard_config": config, "enactment_delay": 0}
    history.produce(("EnclaveBridge", "update_shard_config", args))
    for _ in range(3):
        history.produce()
    assert find(history) is None  # configured, not confirmed yet
    history.produce(history.confirm(5))
    history.produce(history.confirm(6))
    assert find(history) == 5


def test_find_creation_block_on_pruned_state_says_so(history: DevHistory) -> None:
    """A node that discarded old states gives a clear error, never a wrong block."""
    history.produce(register())
    for _ in range(6):
        history.produce()
    history.produce(history.confirm(7))
    for _ in range(10):
        history.produce()
    source = ChainHistory(history.chain, discarded_below=12)
    with pytest.raises(CreationBlockError, match="archive node"):
        asyncio.run(find_creation_block(source, history.chain.runtime.md, SHARD))


def test_wait_for_creation_block_polls_then_gives_up() -> None:
    """Polling returns the block once found, and gives up with a JoinError after the timeout."""
    answers: list[BlockNumber | None] = [None, None, BlockNumber(7)]

    async def found() -> BlockNumber | None:
        return answers.pop(0)

    assert asyncio.run(wait_for_creation_block(found, timeout=5, interval=0.01)) == 7

    async def never() -> BlockNumber | None:
        return None

    with pytest.raises(JoinError, match="confirmed a block"):
        asyncio.run(wait_for_creation_block(never, timeout=0.05, interval=0.01))


# -- a shard being created right now -------------------------------------------------------------


class RegistryKeys:
    """RegistryKeysSource over an RPC harness (state_getKeysPaged as the node answers it)."""

    def __init__(self, harness: Any) -> None:
        self.harness = harness

    async def call(self, method: str, params: Any = None) -> Any:
        return self.harness.result(method, *(params or []))

    async def storage_many(self, keys: Any, at: bytes | None = None) -> dict[bytes, bytes | None]:
        state = self.harness.chain.state(at)
        return {bytes(k): state.get(bytes(k)) for k in keys}


def test_same_code_enclaves_lists_other_registrations() -> None:
    """Only enclaves registered with our MRENCLAVE count, and never our own signer."""
    with rpc_harness() as harness:
        history = DevHistory(harness.chain, [harness.clock_ms])
        history.produce(register())  # //Dave, with MRENCLAVE = SHARD
        md = harness.chain.runtime.md
        source = RegistryKeys(harness)
        at = harness.chain.finalized_hash

        def others(mrenclave: bytes, exclude: bytes) -> list[AccountId]:
            return asyncio.run(
                same_code_enclaves(source, md, mrenclave, at, exclude=AccountId(exclude))
            )

        assert others(bytes(SHARD), b"\x00" * 32) == [ENCLAVE.account_id]
        assert others(bytes(SHARD), bytes(ENCLAVE.account_id)) == []
        assert others(b"\x0f" * 32, b"\x00" * 32) == []


# -- the join record ------------------------------------------------------------------------------


def test_join_record_round_trip(tmp_path: Path) -> None:
    """A saved record loads as it was; no file is no record."""
    path = tmp_path / joining.JOIN_FILE
    assert load_join_record(path) is None
    record = JoinRecord(SHARD, BlockNumber(12), BlockNumber(40))
    save_join_record(path, record)
    assert load_join_record(path) == record
    assert not path.with_name(path.name + ".tmp").exists()


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "{}",
        '{"shard": "0x0e", "creation_block": 1, "confirm_from": 2}',
        '{"shard": "0x' + "0e" * 32 + '", "creation_block": "1", "confirm_from": 2}',
    ],
)
def test_join_record_malformed_is_a_typed_error(tmp_path: Path, text: str) -> None:
    """A damaged record is a JoinRecordError naming the file, not a KeyError or ValueError."""
    path = tmp_path / joining.JOIN_FILE
    path.write_text(text)
    with pytest.raises(JoinRecordError, match="join record"):
        load_join_record(path)


# -- provisioning retries -------------------------------------------------------------------------

GIVER = GiverEndpoint("127.0.0.1", 3443)


def failed(*errors: BaseException) -> ProvisioningFailedError:
    return ProvisioningFailedError("no key", [(GIVER, e) for e in errors])


def test_is_definitive_only_for_code_and_key_mismatches() -> None:
    """Another MRENCLAVE never passes later; an unregistered peer or a dead socket may."""
    assert is_definitive(PeerMeasurementError("other code"))
    assert not is_definitive(PeerNotRegisteredError("not yet"))
    assert not is_definitive(ConnectionRefusedError())


def test_provision_failure_keeps_each_candidates_error() -> None:
    """ProvisioningFailedError lists every candidate with its typed error (here: refused
    connections, which are worth retrying)."""
    closed = [GiverEndpoint("127.0.0.1", 1), GiverEndpoint("127.0.0.1", 2)]
    with pytest.raises(ProvisioningFailedError) as raised:
        asyncio.run(
            provision_shielding_key(
                object(),  # type: ignore[arg-type]  # never reached: nobody listens
                closed,
                object(),  # type: ignore[arg-type]
                shard=SHARD,
                connect_timeout=2.0,
            )
        )
    assert [giver for giver, _ in raised.value.failures] == closed
    assert all(isinstance(e, OSError) for _, e in raised.value.failures)
    assert not any(is_definitive(e) for _, e in raised.value.failures)


def run_retry(
    monkeypatch: pytest.MonkeyPatch,
    outcomes: list[BaseException | GiverEndpoint],
    candidates: list[GiverEndpoint],
    timeout: float = 5.0,
) -> tuple[GiverEndpoint, int]:
    calls = 0

    async def fake_provision(*args: Any, **kwargs: Any) -> GiverEndpoint:
        nonlocal calls
        calls += 1
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def discover() -> list[GiverEndpoint]:
        return list(candidates)

    monkeypatch.setattr(joining, "provision_shielding_key", fake_provision)
    giver = asyncio.run(
        provision_with_retry(
            object(),  # type: ignore[arg-type]
            SHARD,
            discover,
            object(),  # type: ignore[arg-type]
            timeout=timeout,
            interval=0.01,
        )
    )
    return giver, calls


def test_provision_with_retry_retries_until_a_giver_sees_us(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A giver that cannot see our registration yet is asked again, and then gives."""
    outcomes: list[BaseException | GiverEndpoint] = [
        failed(PeerNotRegisteredError("registration not visible")),
        GIVER,
    ]
    assert run_retry(monkeypatch, outcomes, [GIVER]) == (GIVER, 2)


def test_provision_with_retry_stops_at_other_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """When every giver runs other code, retrying cannot help: one attempt, a JoinError."""
    outcomes: list[BaseException | GiverEndpoint] = [failed(PeerMeasurementError("mrenclave"))]
    with pytest.raises(JoinError, match="will not change"):
        run_retry(monkeypatch, outcomes, [GIVER])


def test_provision_with_retry_gives_up_after_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """No giver announcing itself ends, after the timeout, with the reason."""
    with pytest.raises(JoinError, match="provisioning address"):
        run_retry(monkeypatch, [], [], timeout=0.05)
