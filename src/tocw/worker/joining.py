"""Joining a running shard: the host's steps between "the shard exists on chain" and replay.

Owns what a worker does when its shard already exists on the parentchain and its enclave does
not serve it yet (docs/multi-worker.md): find the shard's creation block in the chain's
history, get the shard's shielding key from one of its workers (retried while they cannot see
this worker's registration yet), and remember, in `JoinRecord` (a small file in the data dir),
from which block on the enclave confirms blocks, so a restart mid-replay keeps the same policy.

The creation block is the first block any worker of the shard confirmed: the first worker
creates the shard at a block C, confirms every block from C on, and its confirmations are
included in nonce order, so the earliest `ProcessedParentchainBlock` of the shard names C.
`find_creation_block` finds it without reading every block: it bisects the block history for
the first block whose state holds `EnclaveBridge.ShardStatus[shard]` (written by the first
confirmation, or by `update_shard_config` of a custom shard, and never removed), then reads the
events from there on. That needs the node to keep old states (an archive node, or a window that
reaches back to the shard's creation); a pruned node gives a clear error. Trust: the host picks
the creation block, as the first worker's host did; a wrong one makes this worker's state roots
differ from the others', which `tocw_getStateRoot` and the on-chain confirmations show.

Confirmations (the issue's choice, docs/multi-worker.md "Confirmations"): a joiner executes
every block from the creation block on, but confirms only the blocks finalized after it got the
key (`JoinRecord.confirm_from`): the shard's other workers confirmed the older ones long ago,
and confirming them again would be a storm of late, fee-paying extrinsics.

WorkerError
└── JoinError                 the worker cannot join the shard (the message says why)
    ├── CreationBlockError    the node cannot tell the shard's creation block
    └── JoinRecordError       the join record in the data dir is unreadable
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from tocw.enclave.extrinsics import ENCLAVE_BRIDGE, TEEREX
from tocw.enclave.provisioning import PeerAttestationError, ShieldingKeyMismatchError
from tocw.parentchain.errors import NodeRpcError, UnknownBlockError
from tocw.primitives.errors import PrimitivesError
from tocw.primitives.events import decode_events
from tocw.primitives.header import Header
from tocw.primitives.metadata import RuntimeMetadata, Variant
from tocw.primitives.types import AccountId, BlockHash, BlockNumber, ShardId
from tocw.rpc.messages import Params
from tocw.worker import WorkerError
from tocw.worker.provisioning import (
    ChainCheck,
    GiverEndpoint,
    ProvisioningEnclave,
    ProvisioningFailedError,
    provision_shielding_key,
)

logger = logging.getLogger(__name__)

JOIN_FILE: Final = "join.json"
KEYS_PAGE: Final = 1000
PROCESSED_EVENT: Final = "ProcessedParentchainBlock"


class JoinError(WorkerError):
    """The worker cannot join its shard."""


class CreationBlockError(JoinError):
    """The node cannot tell the shard's creation block (pruned state, unreadable storage)."""


class JoinRecordError(JoinError):
    """The join record in the data dir is unreadable or names another shard's data."""


# -- the join record ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JoinRecord:
    """What a joiner decided, kept for its restarts.

    creation_block: the shard's creation block (the replay starts there).
    confirm_from: the first block the enclave confirms: the first one finalized after the key
        was provisioned (the record is written once before asking for the key, with the head
        then, so that a key arriving just before a crash is recognised as the shard's, and
        again after).
    """

    shard: ShardId
    creation_block: BlockNumber
    confirm_from: BlockNumber


def load_join_record(path: Path) -> JoinRecord | None:
    """The record in `path`, None if there is none."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise JoinRecordError(f"cannot read {path}: {e}") from None
    try:
        value = json.loads(text)
        shard = bytes.fromhex(str(value["shard"]).removeprefix("0x"))
        creation, confirm_from = value["creation_block"], value["confirm_from"]
        if len(shard) != 32 or not isinstance(creation, int) or not isinstance(confirm_from, int):
            raise ValueError("bad field types")
    except (ValueError, KeyError, TypeError) as e:
        raise JoinRecordError(f"{path} is not a join record: {e}") from None
    return JoinRecord(ShardId(shard), BlockNumber(creation), BlockNumber(confirm_from))


def save_join_record(path: Path, record: JoinRecord) -> None:
    """Write the record atomically (a crash leaves the old file or the new one, never half)."""
    text = json.dumps(
        {
            "shard": "0x" + bytes(record.shard).hex(),
            "creation_block": int(record.creation_block),
            "confirm_from": int(record.confirm_from),
        }
    )
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise JoinRecordError(f"cannot write {path}: {e}") from None


# -- the creation block ---------------------------------------------------------------------------


class HistorySource(Protocol):
    """The parentchain reads find_creation_block makes; tocw.parentchain's client has them."""

    async def finalized_header(self) -> Header: ...

    async def block_hash(self, number: int) -> BlockHash: ...

    async def storage(self, key: bytes, at: bytes | None = None) -> bytes | None: ...

    async def events_raw(self, block_hash: bytes) -> bytes: ...


async def find_creation_block(
    source: HistorySource, metadata: RuntimeMetadata, shard: ShardId
) -> BlockNumber | None:
    """The first block the shard's workers confirmed, or None while none is finalized yet.

    About log2(head) state reads and then the events of a block or a few (see the module
    docstring for why this finds the creation block).
    """
    try:
        key = metadata.storage_key(ENCLAVE_BRIDGE, "ShardStatus", bytes(shard))
    except PrimitivesError as e:
        raise CreationBlockError(f"the chain has no EnclaveBridge.ShardStatus: {e}") from None
    head = int((await source.finalized_header()).number)

    async def touched(number: int) -> bool:
        try:
            at = await source.block_hash(number)
            return await source.storage(key, at) is not None
        except (NodeRpcError, UnknownBlockError) as e:
            raise CreationBlockError(
                f"cannot read EnclaveBridge.ShardStatus at block #{number} ({e}): finding the "
                "shard's creation block needs a node that keeps the states of old blocks (an "
                "archive node, or a pruning window reaching back to the shard's creation)"
            ) from None

    if not await touched(head):
        return None
    low, high = 0, head  # invariant: not touched at `low` (the genesis), touched at `high`
    while high - low > 1:
        middle = (low + high) // 2
        if await touched(middle):
            high = middle
        else:
            low = middle
    for number in range(high, head + 1):
        confirmed = await _confirmed_in(source, metadata, shard, number)
        if confirmed:
            creation = min(confirmed)
            logger.info(
                "shard 0x%s: creation block #%d (its first confirmation is in block #%d)",
                bytes(shard).hex(),
                creation,
                number,
            )
            return BlockNumber(creation)
    return None


async def _confirmed_in(
    source: HistorySource, metadata: RuntimeMetadata, shard: ShardId, number: int
) -> list[int]:
    """Block numbers that ProcessedParentchainBlock events of `shard` in block `number` name."""
    try:
        raw = await source.events_raw(await source.block_hash(number))
        records = decode_events(metadata, raw)
    except (NodeRpcError, UnknownBlockError, PrimitivesError) as e:
        raise CreationBlockError(f"cannot read the events of block #{number}: {e}") from None
    found = []
    for record in records:
        if not record.is_event(ENCLAVE_BRIDGE, PROCESSED_EVENT):
            continue
        target, confirmed = record.attributes.get("shard"), record.attributes.get("block_number")
        if isinstance(target, bytes) and target == bytes(shard) and isinstance(confirmed, int):
            found.append(confirmed)
    return found


async def wait_for_creation_block(
    find: Callable[[], Awaitable[BlockNumber | None]], *, timeout: float, interval: float
) -> BlockNumber:
    """Poll `find` until it names the creation block (a custom shard configured on chain whose
    first worker has not confirmed a block yet gets `timeout` seconds to do so)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = await find()
        if found is not None:
            return found
        if loop.time() + interval > deadline:
            raise JoinError(
                f"no worker of the shard confirmed a block within {timeout:.0f} s, so its "
                "creation block is unknown: start the shard's first worker, let it confirm a "
                "block, then start this one"
            )
        logger.info("waiting for the shard's first confirmation (retrying in %.1f s)", interval)
        await asyncio.sleep(interval)


# -- a shard being created right now -------------------------------------------------------------


class RegistryKeysSource(Protocol):
    """The reads same_code_enclaves makes; tocw.parentchain's client has them."""

    async def call(self, method: str, params: Params | None = None) -> Any: ...

    async def storage_many(
        self, keys: Sequence[bytes], at: bytes | None = None
    ) -> dict[bytes, bytes | None]: ...


async def same_code_enclaves(
    source: RegistryKeysSource,
    metadata: RuntimeMetadata,
    mrenclave: bytes,
    at: bytes,
    *,
    exclude: AccountId,
) -> list[AccountId]:
    """Signers registered in Teerex.SovereignEnclaves with `mrenclave`, other than `exclude`.

    Why: a shard becomes visible on chain only with its first confirmation, a block or two after
    its first worker registered and created it. A worker that finds no shard but another
    registered enclave of its own code may be looking into that window, and must wait rather
    than create the shard a second time (with a second key).
    """
    try:
        prefix = metadata.storage_key(TEEREX, "SovereignEnclaves")
    except PrimitivesError as e:
        raise JoinError(f"the chain has no Teerex.SovereignEnclaves: {e}") from None
    keys: list[bytes] = []
    start: str | None = None
    while True:
        page = await source.call(
            "state_getKeysPaged", ["0x" + prefix.hex(), KEYS_PAGE, start, "0x" + bytes(at).hex()]
        )
        if not isinstance(page, list):
            raise JoinError("state_getKeysPaged did not answer a list")
        keys += [bytes.fromhex(str(k).removeprefix("0x")) for k in page]
        if len(page) < KEYS_PAGE:
            break
        start = str(page[-1])
    found = []
    values = await source.storage_many(keys, at)
    for key in keys:
        try:
            (account,) = metadata.decode_storage_key(TEEREX, "SovereignEnclaves", key)
            entry = metadata.decode_storage(TEEREX, "SovereignEnclaves", values.get(key))
        except PrimitivesError:
            continue  # not an entry we can read: it cannot be ours either
        if isinstance(entry, Variant):
            entry = entry.value
        if not isinstance(entry, dict) or bytes(entry.get("mr_enclave", b"")) != mrenclave:
            continue
        if bytes(account) != bytes(exclude):
            found.append(AccountId(bytes(account)))
    return found


# -- the shielding key ----------------------------------------------------------------------------


def is_definitive(error: BaseException) -> bool:
    """True for failures that retrying the same giver cannot change: its evidence does not
    verify for this enclave (other MRENCLAVE, bad evidence) or its key is not the one it
    attested. Everything else (unreachable, our registration not visible to it yet, a refusal
    from its side, a timeout) may pass later."""
    return isinstance(error, PeerAttestationError | ShieldingKeyMismatchError)


async def provision_with_retry(
    enclave: ProvisioningEnclave,
    shard: ShardId,
    discover: Callable[[], Awaitable[list[GiverEndpoint]]],
    chain_check: ChainCheck,
    *,
    timeout: float,
    interval: float,
    collateral: bytes | str | None = None,
) -> GiverEndpoint:
    """Get the shard's shielding key from one of `discover()`'s candidates, trying again every
    `interval` seconds for up to `timeout` seconds; JoinError when no candidate will give it.

    Gives up at once when every candidate failed definitively (is_definitive): a shard whose
    workers all run other code than this worker will not change its mind.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        candidates = await discover()
        if candidates:
            try:
                return await provision_shielding_key(
                    enclave, candidates, chain_check, shard=shard, collateral=collateral
                )
            except ProvisioningFailedError as e:
                if e.failures and all(is_definitive(error) for _, error in e.failures):
                    raise JoinError(
                        f"the shard's workers cannot provision this enclave, and trying again "
                        f"will not change that: {e}"
                    ) from None
                last = str(e)
        else:
            last = (
                f"no worker of shard 0x{bytes(shard).hex()} announced a provisioning address "
                "(EnclaveBridge.ShardStatus, Teerex worker URL, author_getMuRaUrl)"
            )
        if loop.time() + interval > deadline:
            raise JoinError(f"no shielding key after {timeout:.0f} s: {last}")
        logger.info("provisioning: trying again in %.1f s (%s)", interval, last)
        await asyncio.sleep(interval)
