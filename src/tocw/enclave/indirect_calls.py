"""The hook where indirect-call execution plugs into block import.

Owns the contract between the enclave's block import (api.py: light client, timestamp, commit,
confirmation) and the executor of the calls that clients sent through the parentchain
(`EnclaveBridge.invoke`, `EnclaveBridge.shield_funds`): `IndirectCallExecutor.execute_block` is
called once per imported block and active shard, with the shard's state open for writing, and
answers what it executed. The import then commits the state changes together with the block,
and composes the confirmation and unshield extrinsics from the answer, so an executor never
signs or submits anything itself.

`ParentchainIndirectCalls` is the executor of PROTOCOL.md: in block order it takes every
`EnclaveBridge.invoke` and `shield_funds` for the shard whose extrinsic succeeded on chain (per
System.ExtrinsicSuccess in the proven events), decrypts it with the shielding key and executes
it through the STF. Whatever cannot be executed (failed extrinsic, bad ciphertext, undecodable,
wrong signature or nonce) is reported with its reason and skipped; the block still completes,
and every processed block is confirmed.

`RefuseIndirectCalls` is for enclaves that must not execute calls (tests of the import path):
it raises IndirectCallsUnsupportedError on the first block holding an operation for the shard,
because skipping a client's call would silently fork the shard's state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from tocw.enclave.errors import (
    IndirectCallError,
    IndirectCallsUnsupportedError,
    ParentchainExtrinsicFailedError,
)
from tocw.enclave.light_client import ParentchainBlock
from tocw.primitives.errors import InvalidCiphertextError, PrimitivesError
from tocw.primitives.events import EventRecord, decode_events, extrinsic_succeeded
from tocw.primitives.extrinsic import DecodedExtrinsic
from tocw.primitives.metadata import Call, RuntimeMetadata
from tocw.primitives.trusted import ACCOUNT_ID, BalanceShield, IndirectCall, ParentchainId
from tocw.primitives.types import AccountId, Balance, BlockHash, BlockNumber, Moment, ShardId
from tocw.stf.errors import OperationDecodeError, UnsupportedOperationError
from tocw.stf.executor import Stf, trusted_calls_root
from tocw.stf.state import State
from tocw.stf.types import CallEnv, CallOutcome, Effect

logger = logging.getLogger(__name__)

INDIRECT_CALLS = (("EnclaveBridge", "invoke"), ("EnclaveBridge", "shield_funds"))


@dataclass(frozen=True, slots=True)
class BlockContext:
    """The block being imported, already checked by the light client.

    extrinsics: every extrinsic of the block decoded with the chain's metadata, in block order
        (the position is the extrinsic index that events refer to).
    events: SCALE(Vec<EventRecord>) proven against the header's state root, if the host sent
        them (`ParentchainBlock.events`).
    """

    block: ParentchainBlock
    number: BlockNumber
    hash: BlockHash
    timestamp: Moment | None
    metadata: RuntimeMetadata
    extrinsics: tuple[DecodedExtrinsic, ...]

    @property
    def events(self) -> bytes | None:
        return self.block.events


@dataclass(frozen=True, slots=True)
class ShardContext:
    """One shard's side of the block: its open state and the environment its calls run in.

    decrypt: the shielding key's decryption (the key itself never leaves keys.py).
    """

    shard: ShardId
    state: State
    env: CallEnv
    stf: Stf
    decrypt: Callable[[bytes], bytes]


@dataclass(frozen=True, slots=True)
class IndirectCallReport:
    """What became of one indirect call found for a shard, for the host's logs and metrics.

    executed: the call ran and succeeded. Otherwise `error` says why not: the extrinsic failed
    on chain, the ciphertext or operation was bad, the signature or nonce did not match (these
    were skipped, nothing changed), or the call was accepted and then failed (nonce bumped).
    """

    extrinsic_index: int
    kind: str  # "invoke" or "shield_funds"
    executed: bool
    error: BaseException | None = None

    def describe(self) -> str:
        if self.executed:
            return f"extrinsic {self.extrinsic_index} {self.kind}: executed"
        return f"extrinsic {self.extrinsic_index} {self.kind}: skipped: {self.error}"


@dataclass(frozen=True, slots=True)
class ShardBlockResult:
    """What an executor did for one shard in one block.

    outcomes: the outcomes of the client calls found in EnclaveBridge.invoke, in block order;
        the accepted ones are the trusted_calls_merkle_root leaves (PROTOCOL.md).
    effects: parentchain effects to carry out (unshield_funds), in order.
    reports: one per indirect call found for the shard, executed or skipped, in block order.
    confirm: the block held operations for this shard, so the enclave confirms it on chain
        (clients wait for ProcessedParentchainBlock of the block holding their call).
    """

    outcomes: tuple[CallOutcome, ...] = ()
    effects: tuple[Effect, ...] = ()
    confirm: bool = False
    reports: tuple[IndirectCallReport, ...] = ()

    def trusted_calls_merkle_root(self) -> bytes:
        return trusted_calls_root(self.outcomes)


class IndirectCallExecutor(Protocol):
    def execute_block(self, block: BlockContext, shard: ShardContext) -> ShardBlockResult:
        """Execute the block's indirect calls for `shard` against `shard.state`.

        Raise an IndirectCallError to refuse the block (nothing of it is then committed);
        report rejected or failed calls in the outcomes instead of raising.
        """
        ...


def targets_shard(call: Call, shard: ShardId) -> bool:
    """True if `call` is an EnclaveBridge operation addressed to `shard`."""
    if (call.pallet, call.name) == ("EnclaveBridge", "invoke"):
        request: Any = call.args.get("request")
        target = request.get("shard") if isinstance(request, dict) else None
    elif (call.pallet, call.name) == ("EnclaveBridge", "shield_funds"):
        target = call.args.get("shard")
    else:
        return False
    return isinstance(target, bytes | bytearray) and bytes(target) == shard


class RefuseIndirectCalls:
    """The executor of an enclave without indirect-call support: refuses blocks that need it."""

    def execute_block(self, block: BlockContext, shard: ShardContext) -> ShardBlockResult:
        for index, xt in enumerate(block.extrinsics):
            if targets_shard(xt.call, shard.shard):
                raise IndirectCallsUnsupportedError(
                    f"block #{block.number} extrinsic {index} is {xt.call.pallet}."
                    f"{xt.call.name} for shard 0x{shard.shard.hex()}, and this enclave has no "
                    "indirect-call executor: refusing the block rather than skipping the call"
                )
        return ShardBlockResult()


class ParentchainIndirectCalls:
    """PROTOCOL.md's indirect invocation: execute the shard's invoke/shield_funds in block order.

    Confirms every block it processes (clients wait for ProcessedParentchainBlock of the block
    holding their call, and an empty confirmation tells them the worker is live and where it is).
    """

    def execute_block(self, block: BlockContext, shard: ShardContext) -> ShardBlockResult:
        candidates = [
            (index, xt)
            for index, xt in enumerate(block.extrinsics)
            if targets_shard(xt.call, shard.shard)
        ]
        if not candidates:
            return ShardBlockResult(confirm=True)
        events = self._events(block)
        outcomes: list[CallOutcome] = []
        effects: list[Effect] = []
        reports: list[IndirectCallReport] = []
        for index, xt in candidates:
            kind = xt.call.name
            if extrinsic_succeeded(events, index) is not True:
                error = ParentchainExtrinsicFailedError(
                    f"block #{block.number} extrinsic {index} ({kind}) did not succeed on chain"
                )
                reports.append(IndirectCallReport(index, kind, False, error))
                continue
            if kind == "invoke":
                report, outcome = self._invoke(index, xt.call, shard)
                if outcome is not None:
                    outcomes.append(outcome)
                    effects.extend(outcome.effects)
            else:
                report = self._shield(index, xt.call, shard)
            reports.append(report)
        return ShardBlockResult(tuple(outcomes), tuple(effects), True, tuple(reports))

    @staticmethod
    def _events(block: BlockContext) -> list[EventRecord]:
        if block.events is None:
            raise IndirectCallError(
                f"block #{block.number} holds operations for this enclave's shards but came "
                "without its System.Events: the host must send them (with their proof)"
            )
        try:
            return decode_events(block.metadata, block.events)
        except PrimitivesError as e:
            raise IndirectCallError(f"block #{block.number}: events do not decode: {e}") from None

    @staticmethod
    def _invoke(
        index: int, call: Call, shard: ShardContext
    ) -> tuple[IndirectCallReport, CallOutcome | None]:
        request: Any = call.args.get("request")
        ciphertext = request.get("cyphertext") if isinstance(request, dict) else None
        if not isinstance(ciphertext, bytes | bytearray):
            error: Exception = InvalidCiphertextError("invoke without a cyphertext")
            return IndirectCallReport(index, "invoke", False, error), None
        try:
            operation = shard.stf.decode_operation(shard.decrypt(bytes(ciphertext)))
        except (InvalidCiphertextError, OperationDecodeError) as e:
            return IndirectCallReport(index, "invoke", False, e), None
        if not isinstance(operation, IndirectCall):
            error = UnsupportedOperationError(
                f"{type(operation).__name__} sent through EnclaveBridge.invoke: only "
                "indirect_call operations are executed from the parentchain"
            )
            return IndirectCallReport(index, "invoke", False, error), None
        outcome = shard.stf.execute_call(shard.state, operation.signed, shard.env)
        executed = outcome.accepted and outcome.success
        return IndirectCallReport(index, "invoke", executed, outcome.error), outcome

    @staticmethod
    def _shield(index: int, call: Call, shard: ShardContext) -> IndirectCallReport:
        encrypted = call.args.get("incognito_account_encrypted")
        amount = call.args.get("amount")
        if not isinstance(encrypted, bytes | bytearray) or not isinstance(amount, int):
            error = InvalidCiphertextError("shield_funds without an encrypted account or amount")
            return IndirectCallReport(index, "shield_funds", False, error)
        try:
            who = ACCOUNT_ID.decode(shard.decrypt(bytes(encrypted)))
        except (InvalidCiphertextError, PrimitivesError) as e:
            # The funds are in the vault but nobody can be credited: say so loudly.
            logger.error(
                "shield_funds of %d to shard 0x%s in extrinsic %d has an unreadable "
                "beneficiary: %s",
                amount,
                shard.shard.hex(),
                index,
                e,
            )
            return IndirectCallReport(index, "shield_funds", False, e)
        credit = BalanceShield(
            AccountId(shard.env.enclave_account),
            AccountId(who),
            Balance(amount),
            ParentchainId.INTEGRITEE,
        )
        try:
            outcome = shard.stf.execute_enclave_call(shard.state, credit, shard.env)
        except UnsupportedOperationError as e:
            logger.error("shield_funds to shard 0x%s cannot be credited: %s", shard.shard.hex(), e)
            return IndirectCallReport(index, "shield_funds", False, e)
        return IndirectCallReport(index, "shield_funds", outcome.success, outcome.error)
