"""The STF's vocabulary: the environment a call runs in, its outcome, and what a module is.

Owns `CallEnv` (everything a call may know about the world: it is passed in, never read from a
clock or the host, which is what makes every worker reach the same state), `Origin`,
`CallContext`, the parentchain effects a call can ask the host to carry out (`UnshieldEffect`),
`CallOutcome`, and the declarations an STF module is made of (`CallSpec`, `GetterSpec`,
`RpcMethodSpec`, `StfModule`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from tocw.primitives.scale import Codec, variant_class
from tocw.primitives.types import AccountId, Balance, BlockNumber, Moment, MrEnclave, ShardId
from tocw.stf.errors import InvalidEnvError, StfError
from tocw.stf.state import State, StateView

# The dev chain's root (sudo) account: //Alice, sr25519. Integritee's dev setup uses the same.
DEV_ROOT_ACCOUNT = AccountId(
    bytes.fromhex("d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d")
)

_MAX_U32 = (1 << 32) - 1
_MAX_U64 = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class CallEnv:
    """What a call may know about the world, fixed per parentchain block.

    `timestamp` is the parentchain block's Timestamp.set (ms); `root_account` is the shard's
    configured root, the only account allowed to call balance_set_balance.
    """

    block_number: BlockNumber
    timestamp: Moment
    shard: ShardId
    mrenclave: MrEnclave
    enclave_account: AccountId
    root_account: AccountId

    def __post_init__(self) -> None:
        for name in ("shard", "mrenclave", "enclave_account", "root_account"):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != 32:
                raise InvalidEnvError(f"CallEnv.{name} must be 32 bytes")
        if not (isinstance(self.block_number, int) and 0 <= self.block_number <= _MAX_U32):
            raise InvalidEnvError(f"CallEnv.block_number {self.block_number!r} is not a u32")
        if not (isinstance(self.timestamp, int) and 0 <= self.timestamp <= _MAX_U64):
            raise InvalidEnvError(f"CallEnv.timestamp {self.timestamp!r} is not a u64")


class Origin(enum.Enum):
    """Who created a call: a client (signed, from EnclaveBridge.invoke) or the enclave itself
    (from parentchain events: balance_shield, timestamp_set)."""

    CLIENT = "client"
    ENCLAVE = "enclave"


@dataclass(frozen=True, slots=True)
class CallContext:
    """Per-call facts handed to a module's apply function.

    `call_hash` is blake2_256(SCALE(TrustedCallSigned)) for a signed call (PROTOCOL.md: the
    unshield call_hash and the Merkle leaf) and blake2_256(SCALE(TrustedCall)) for an
    enclave-originated one.
    """

    env: CallEnv
    origin: Origin
    call_hash: bytes


@dataclass(frozen=True, slots=True)
class UnshieldEffect:
    """Ask the host to send EnclaveBridge.unshield_funds(shard, beneficiary, amount, call_hash).

    Every worker of the shard sends it; the pallet pays once per call_hash.
    """

    shard: ShardId
    beneficiary: AccountId
    amount: Balance
    call_hash: bytes


# Parentchain effects a call can produce. The enclave must know how to carry out each kind, so
# a new kind is a change to the enclave too, not only to a module.
Effect: TypeAlias = UnshieldEffect


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """What executing one call did.

    accepted: signature (for client calls) and nonce were valid, so the nonce was bumped; for
        client calls submitted through EnclaveBridge.invoke this makes it a Merkle leaf.
    success: the call itself applied; if False its own writes were rolled back.
    error: why it was rejected or failed (a RejectedOperationError or a DispatchError).
    effects: parentchain effects to carry out, only for successful calls.
    call_hash: blake2_256(SCALE(TrustedCallSigned)) of an accepted signed call, the
        trusted-calls Merkle leaf; None for rejected calls and enclave-originated calls.
    """

    accepted: bool
    success: bool
    error: StfError | None = None
    effects: tuple[Effect, ...] = ()
    call_hash: bytes | None = None


# -- module declarations ------------------------------------------------------------------------

# apply(state, call, ctx) -> effects. Raises a DispatchError to fail the call.
ApplyFn: TypeAlias = Callable[[State, Any, CallContext], Sequence[Effect]]
# getter(state, getter) -> SCALE bytes of the answer, or None ("no such thing").
GetterFn: TypeAlias = Callable[[StateView, Any], bytes | None]
# rpc(state, params) -> SCALE bytes of the answer. Raises ValueError (or an StfError) for params
# it cannot use; the message goes back to the caller.
RpcQueryFn: TypeAlias = Callable[[StateView, Sequence[bytes]], bytes]


@dataclass(frozen=True, slots=True)
class CallSpec:
    """One TrustedCall variant: its index, codec (which names its class) and apply function.

    enclave_only: the enclave creates it from parentchain events; from a client it fails with
    BadOriginError (after the nonce bump, as Integritee).
    """

    index: int
    codec: Codec[Any]
    apply: ApplyFn
    enclave_only: bool = False

    @property
    def cls(self) -> type:
        return variant_class(self.codec)


@dataclass(frozen=True, slots=True)
class GetterSpec:
    """One PublicGetter or TrustedGetter variant: index, codec and getter function."""

    index: int
    codec: Codec[Any]
    get: GetterFn

    @property
    def cls(self) -> type:
        return variant_class(self.codec)


@dataclass(frozen=True, slots=True)
class RpcMethodSpec:
    """A read-only method a module adds to the worker's trusted RPC (ARCHITECTURE.md "Business
    logic"; docs/extending-the-rpc-interface.md).

    Getters answer one SCALE question signed or public; an RPC method can answer what getters are
    awkward for (listings, pages, aggregates). It stays part of the pure STF: `query` reads the
    shard's committed state through a StateView and the params (already hex-decoded by the
    enclave), and returns SCALE bytes; no I/O, no clock, no writes. Everything it returns is
    public to any caller, so it must never reveal what the module keeps private (sealed bids,
    balances: use trusted getters for those).
    """

    name: str
    query: RpcQueryFn


@dataclass(frozen=True, slots=True)
class StfModule:
    """An STF module: everything the executor needs to know about it.

    indices: the module's stable index range, used for its calls, public getters and trusted
        getters alike; ranges of the modules of one STF must not overlap. Changing an index
        breaks every client, so a module keeps its range forever.
    namespaces: the storage namespaces (first key part) the module writes; owned exclusively.
    requires: names of modules it calls into (e.g. balances for reserving funds).
    source_files: the files whose content defines the module's behaviour; they enter the
        MRENCLAVE when the module is enabled.
    rpc_methods: read-only trusted RPC methods the module adds (optional); the enclave serves
        them next to the built-in methods, and a name clash stops the worker from starting.
    """

    name: str
    indices: range
    calls: tuple[CallSpec, ...]
    public_getters: tuple[GetterSpec, ...] = ()
    trusted_getters: tuple[GetterSpec, ...] = ()
    namespaces: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    source_files: tuple[Path, ...] = ()
    rpc_methods: tuple[RpcMethodSpec, ...] = ()
