"""tocw's Python SDK: the client workflow of an off-chain worker, in a few typed calls.

    async with await TrustedClient.connect(node_url, worker_url, allow_sim=True) as client:
        alice = Keypair.from_uri("//Alice")
        incognito = Keypair.generate()
        await client.shield(alice, incognito.account_id, 6 * client.token.unit)
        outcome = await client.transfer(incognito, bob, 2 * client.token.unit, xt_signer=alice)
        print(await client.free_balance(incognito))

Owns `TrustedClient`, which ties together what the lower modules provide, in the order of
ARCHITECTURE.md "Data flow of one indirect invocation": it verifies the worker's attestation
(attestation.verify_worker) and only then uses its shielding key; composes and signs the trusted
call (calls.TrustedCallBuilder) with the sender's current nonce, read by a signed getter;
encrypts it into `EnclaveBridge.invoke` (parentchain.Parentchain), waits for the block to be
finalized and for a worker's `ProcessedParentchainBlock` naming that block, and then reads the
sender's nonce again to tell whether the worker accepted the call (`CallOutcome`).

The rest of the SDK is importable from here too: Worker, Parentchain, verify_worker,
WorkerIdentity, TrustedCallBuilder, the getter builders, Token, Keystore, resolve_account and
the ClientError tree.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Final

import dcap_qvl

from tocw.client.accounts import Account, resolve_account
from tocw.client.amounts import Token
from tocw.client.attestation import SIM_WARNING, WorkerIdentity, verify_worker
from tocw.client.calls import (
    TrustedCallBuilder,
    free_balance_getter,
    nonce_getter,
    reserved_balance_getter,
    some_value_getter,
)
from tocw.client.errors import (
    AttestationError,
    CallRejectedError,
    ClientError,
    ClientTimeoutError,
    WorkerRequestError,
)
from tocw.client.keystore import Keystore
from tocw.client.parentchain import (
    DEFAULT_NODE_URL,
    DEFAULT_WAIT,
    FoundEvent,
    Inclusion,
    Parentchain,
    ProcessedBlock,
    Progress,
)
from tocw.client.worker import DEFAULT_WORKER_URL, Worker
from tocw.primitives.errors import PrimitivesError
from tocw.primitives.events import EventRecord
from tocw.primitives.keys import Keypair
from tocw.primitives.scale import U32, U128, Codec
from tocw.primitives.trusted import TrustedCallSigned
from tocw.primitives.types import AccountId, Balance, MrEnclave, Nonce, ShardId
from tocw.tee.attestation import Attestation
from tocw.tee.base import TeeKind

__all__ = [
    "DEFAULT_NODE_URL",
    "DEFAULT_WORKER_URL",
    "SIM_WARNING",
    "Account",
    "CallOutcome",
    "ClientError",
    "Keystore",
    "Parentchain",
    "Token",
    "TrustedCallBuilder",
    "TrustedClient",
    "Worker",
    "WorkerIdentity",
    "chain_collateral",
    "free_balance_getter",
    "nonce_getter",
    "reserved_balance_getter",
    "resolve_account",
    "some_value_getter",
    "verify_worker",
]

_DCAP_KINDS: Final = frozenset({TeeKind.SGX_DCAP, TeeKind.TDX_DCAP})
OWN_WORKER_POLL: Final = 0.1  # seconds between tocw_getStateRoot polls of the client's worker


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """What became of one trusted call sent by indirect invocation.

    The worker accepted the call iff the sender's nonce moved past `nonce` (TrustedCallError
    is raised otherwise). `executed` says whether the call then took effect, as far as the
    client can see it: for transfers and unshieldings, whether the sender's free balance
    dropped by the value (False: the call failed in the STF, e.g. an insufficient balance, and
    only bumped the nonce, as in Integritee); None when unknown or not checked.
    """

    signed: TrustedCallSigned
    nonce: Nonce
    nonce_after: Nonce
    inclusion: Inclusion
    processed: ProcessedBlock
    leaf: bytes
    executed: bool | None = None
    balance_before: Balance | None = None
    balance_after: Balance | None = None


async def chain_collateral(chain: Parentchain, attestation: Attestation) -> bytes | None:
    """The DCAP collateral the parentchain holds for the platform of a DCAP attestation
    (Teerex.SgxDcapCollateral by the quote's FMSPC); None for other evidence or when absent."""
    if attestation.tee_kind not in _DCAP_KINDS:
        return None
    try:
        fmspc = bytes.fromhex(str(dcap_qvl.parse_quote(attestation.evidence).fmspc()))
    except Exception as e:  # dcap-qvl rejects malformed quotes with ValueError (or a panic)
        raise AttestationError(f"the worker's DCAP quote does not parse: {e}") from None
    return await chain.dcap_collateral(fmspc)


class TrustedClient:
    """A verified worker plus its parentchain: everything a client does with a shard.

    Build it with `connect`, which verifies the worker; the constructor takes parts that the
    caller already has (and must have verified: `identity` comes only from verify_worker).
    """

    def __init__(
        self,
        chain: Parentchain,
        worker: Worker,
        identity: WorkerIdentity,
        token: Token,
        shard: ShardId | None = None,
        *,
        timeout: float = DEFAULT_WAIT,
    ) -> None:
        self.chain = chain
        self.worker = worker
        self.identity = identity
        self.token = token
        self.calls = TrustedCallBuilder.for_worker(identity, shard, worker.codecs)
        self.timeout = timeout

    @classmethod
    async def connect(
        cls,
        node_url: str = DEFAULT_NODE_URL,
        worker_url: str = DEFAULT_WORKER_URL,
        *,
        expected_mrenclave: MrEnclave | None = None,
        shard: ShardId | None = None,
        allow_sim: bool = False,
        collateral: bytes | str | None = None,
        timeout: float = DEFAULT_WAIT,
        rpc_timeout: float = 30.0,
        certificate: bytes | None = None,
    ) -> TrustedClient:
        """Connect to both, verify the worker's attestation (see verify_worker; DCAP
        collateral defaults to what the chain stores for the quote's platform)."""
        chain = await Parentchain.connect(node_url, timeout=rpc_timeout)
        worker = Worker(worker_url, timeout=rpc_timeout, certificate=certificate)
        try:
            await worker.open()
            if collateral is None:
                collateral = await chain_collateral(chain, await worker.attestation())
            identity = await verify_worker(
                worker, expected_mrenclave, allow_sim=allow_sim, collateral=collateral
            )
            token = await chain.token()
        except BaseException:
            await worker.close()
            await chain.close()
            raise
        return cls(chain, worker, identity, token, shard, timeout=timeout)

    @property
    def shard(self) -> ShardId:
        return self.calls.shard

    @property
    def mrenclave(self) -> MrEnclave:
        return self.identity.mrenclave

    async def close(self) -> None:
        try:
            await self.worker.close()
        finally:
            await self.chain.close()

    async def __aenter__(self) -> TrustedClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- getters --

    async def free_balance(self, account: Keypair) -> Balance:
        """The account's free balance in the shard (a getter it signs itself)."""
        raw = await self.worker.execute_getter(self.shard, free_balance_getter(account))
        return Balance(_decode_or(U128, raw, 0, "free balance"))

    async def reserved_balance(self, account: Keypair) -> Balance:
        raw = await self.worker.execute_getter(self.shard, reserved_balance_getter(account))
        return Balance(_decode_or(U128, raw, 0, "reserved balance"))

    async def nonce(self, account: Keypair) -> Nonce:
        """The account's next trusted-call nonce in the shard."""
        raw = await self.worker.execute_getter(self.shard, nonce_getter(account))
        return Nonce(_decode_or(U32, raw, 0, "nonce"))

    async def shard_vault(self) -> AccountId:
        return await self.worker.shard_vault()

    # -- the indirect invocation --

    async def invoke(
        self, signed: TrustedCallSigned, xt_signer: Keypair, progress: Progress | None = None
    ) -> tuple[Inclusion, ProcessedBlock]:
        """Encrypt `signed` to the attested shielding key, send EnclaveBridge.invoke signed by
        `xt_signer` (who pays the fee), and wait for a worker to process its block."""
        request = self.calls.encrypt_indirect(self.identity, signed)
        _say(progress, "sending EnclaveBridge.invoke")
        inclusion = await self.chain.send_invoke(xt_signer, request, timeout=self.timeout)
        _say(progress, f"included in finalized block #{inclusion.block_number}")
        return inclusion, await self.wait_processed(inclusion, progress)

    async def execute(
        self,
        sender: Keypair,
        build: Callable[[Nonce], TrustedCallSigned],
        xt_signer: Keypair,
        progress: Progress | None = None,
    ) -> CallOutcome:
        """Sign the call `build(nonce)` of `sender` at its current nonce, invoke it, and check
        the worker accepted it (CallRejectedError when the nonce did not move)."""
        nonce = await self.nonce(sender)
        signed = build(nonce)
        inclusion, processed = await self.invoke(signed, xt_signer, progress)
        nonce_after = await self.nonce(sender)
        if nonce_after <= nonce:
            raise CallRejectedError(
                f"the worker processed block #{processed.block_number} but did not accept the "
                f"call: the nonce of {sender.ss58_address} is still {nonce_after} (a bad "
                "signature, a stale nonce, or a ciphertext it could not decrypt)"
            )
        return CallOutcome(
            signed=signed,
            nonce=nonce,
            nonce_after=nonce_after,
            inclusion=inclusion,
            processed=processed,
            leaf=self.calls.call_leaf(signed),
        )

    async def _with_balance_check(
        self,
        sender: Keypair,
        value: int,
        build: Callable[[Nonce], TrustedCallSigned],
        xt_signer: Keypair,
        progress: Progress | None,
        *,
        moves_funds: bool = True,
    ) -> CallOutcome:
        before = await self.free_balance(sender)
        outcome = await self.execute(sender, build, xt_signer, progress)
        after = await self.free_balance(sender)
        executed: bool | None = None
        if moves_funds:
            if after == before - value:
                executed = True
            elif after == before:
                executed = False
        return CallOutcome(
            signed=outcome.signed,
            nonce=outcome.nonce,
            nonce_after=outcome.nonce_after,
            inclusion=outcome.inclusion,
            processed=outcome.processed,
            leaf=outcome.leaf,
            executed=executed,
            balance_before=before,
            balance_after=after,
        )

    async def transfer(
        self,
        sender: Keypair,
        to: AccountId,
        value: int,
        *,
        xt_signer: Keypair,
        progress: Progress | None = None,
    ) -> CallOutcome:
        """balance_transfer in the shard; `executed` False when it failed in the STF."""
        return await self._with_balance_check(
            sender,
            value,
            lambda nonce: self.calls.transfer(sender, to, value, nonce),
            xt_signer,
            progress,
            moves_funds=sender.account_id != to,
        )

    async def unshield(
        self,
        sender: Keypair,
        beneficiary: AccountId,
        value: int,
        *,
        xt_signer: Keypair,
        progress: Progress | None = None,
    ) -> CallOutcome:
        """balance_unshield: moves `value` out of the shard; the workers then pay it from the
        shard vault on L1 (see `wait_for_payout`)."""
        return await self._with_balance_check(
            sender,
            value,
            lambda nonce: self.calls.unshield(sender, beneficiary, value, nonce),
            xt_signer,
            progress,
        )

    async def set_balance(
        self,
        root: Keypair,
        who: AccountId,
        free: int,
        *,
        xt_signer: Keypair,
        progress: Progress | None = None,
    ) -> CallOutcome:
        """balance_set_balance, signed by the shard's root account (dev: //Alice)."""
        return await self.execute(
            root, lambda nonce: self.calls.set_balance(root, who, free, nonce), xt_signer, progress
        )

    async def wait_for_payout(
        self,
        beneficiary: AccountId,
        value: int,
        *,
        since: int,
        progress: Progress | None = None,
    ) -> FoundEvent:
        """The EnclaveBridge.UnshieldedFunds event paying `value` to `beneficiary` on L1."""

        def match(record: EventRecord) -> bool:
            attrs = record.attributes
            return (
                record.pallet == "EnclaveBridge"
                and record.name == "UnshieldedFunds"
                and bytes(attrs.get("shard", b"")) == bytes(self.shard)
                and bytes(attrs.get("beneficiary", b"")) == bytes(beneficiary)
                and int(attrs.get("amount", -1)) == int(value)
            )

        return await self.chain.wait_for_event(
            match,
            since=since,
            timeout=self.timeout,
            what="the workers to pay out the unshielded funds on L1",
            progress=progress,
        )

    async def shield(
        self,
        sender: Keypair,
        incognito: AccountId,
        amount: int,
        progress: Progress | None = None,
    ) -> tuple[Inclusion, ProcessedBlock]:
        """EnclaveBridge.shield_funds from `sender`'s L1 account to `incognito` in the shard
        (the account travels encrypted to the attested shielding key), and wait for a worker
        to process the block."""
        encrypted = self.identity.shielding_key.encrypt(bytes(incognito))
        _say(progress, "sending EnclaveBridge.shield_funds")
        inclusion = await self.chain.shield_funds(
            sender, self.shard, encrypted, amount, timeout=self.timeout
        )
        _say(progress, f"included in finalized block #{inclusion.block_number}")
        return inclusion, await self.wait_processed(inclusion, progress)

    async def wait_processed(
        self, inclusion: Inclusion, progress: Progress | None = None
    ) -> ProcessedBlock:
        """Wait for the shard's ProcessedParentchainBlock of the inclusion block, then until
        this client's own worker has processed it too: with several workers the first
        confirmation may be another worker's, and getters read this worker's state."""
        processed = await self.chain.wait_for_processed(
            inclusion.block_hash,
            shard=self.shard,
            since=inclusion.block_number,
            timeout=self.timeout,
            progress=progress,
        )
        deadline = time.monotonic() + self.timeout
        while True:
            root = await self.worker.state_root(self.shard)
            if root.block_number >= inclusion.block_number:
                return processed
            if time.monotonic() >= deadline:
                raise ClientTimeoutError(
                    f"the worker {self.worker.url} did not process block "
                    f"#{inclusion.block_number} within {self.timeout:.0f} s "
                    f"(it is at #{root.block_number})"
                )
            await asyncio.sleep(OWN_WORKER_POLL)


def _say(progress: Progress | None, text: str) -> None:
    if progress is not None:
        progress(text)


def _decode_or(codec: Codec[int], raw: bytes | None, default: int, what: str) -> int:
    if raw is None:
        return default
    try:
        return int(codec.decode(raw))
    except PrimitivesError as e:
        raise WorkerRequestError(f"the worker's {what} does not decode: {e}") from None
