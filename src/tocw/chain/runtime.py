"""The dev chain's runtime: a pure, synchronous state machine over a key-value view.

Owns transaction validity (what may enter the pool) and block execution (what a block does to
the state), Substrate's `frame_executive` in Python, plus the runtime APIs clients reach
through `state_call`. No I/O, no clock, no randomness: the node passes the state view, the
block's timestamp and a `ChainContext`; the same inputs give the same state on every run.

Interface for the node (tocw.chain.node): `Runtime(config)`; `version`,
`runtime_version_json()`, `metadata()`, `properties()`, `genesis_storage()`,
`validate_transaction(state, xt, ctx)`, `apply_block(state, number, parent_hash,
timestamp_ms, extrinsics, ctx)`, `call_api(state, method, params, ctx=None)`,
`account_nonce(state, who)`. Additions to the first draft of that interface:
- `BlockResult.deferred`: extrinsics that were valid but could not go into this block (future
  nonce, block full). Keep them in the pool; `dropped` ones are invalid for good.
- `BlockResult.timestamp_ms`: the time actually set (the node's time, raised to the previous
  block's plus MinimumPeriod if it was smaller).
- `call_api(..., ctx)`: TaggedTransactionQueue_validate_transaction needs the chain context.
- `encode_call(pallet, call, *args)`, `decode_call(data)`: compose/inspect calls by name.
- `md`: the runtime's metadata parsed by tocw.primitives.metadata, as a client sees it; the
  runtime decodes extrinsics with it (tocw.chain.extrinsic) and signing helpers build with it.
- `BlockResult.extrinsic_events(i)`, `.dispatch_error(i)`, `.failure_detail(i)`: what
  happened to extrinsic i (the detail text is for logs; it is not on chain).
- `DictStorage` (a dict-backed StorageView) and `LocalChain` (this runtime block after block on
  a DictStorage, with real headers): for benchmarks and runtime tests.

Pallets are listed in `PALLETS` below; a pallet's index is its position there (as in
construct_runtime!), and every call index, event, error and storage item comes from the pallet
declarations (tocw.chain.pallets), never from a second copy.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from tocw.chain import genesis as genesis_mod
from tocw.chain.errors import (
    BlockExecutionError,
    InvalidTransactionError,
    RuntimeApiError,
    UnknownRuntimeApiError,
)
from tocw.chain.extrinsic import UncheckedExtrinsic, decode_extrinsic
from tocw.chain.metadata import encode_metadata
from tocw.chain.pallets import (
    balances,
    enclave_bridge,
    sudo,
    system,
    teerex,
    timestamp,
    transaction_payment,
)
from tocw.chain.pallets.framework import (
    NONE,
    Call,
    CallDef,
    CallEnv,
    EmittedEvent,
    GenesisConfig,
    Overlay,
    PalletDef,
    RuntimeConfig,
    Signed,
    StorageView,
    describe_encoded_error,
)
from tocw.chain.pallets.substrate_types import (
    ACCOUNT_INFO_CODEC,
    RUNTIME_CALL,
    RUNTIME_DISPATCH_INFO_T,
    DispatchClass,
    DispatchInfo,
    EncodedDispatchError,
    Weight,
    phase_apply_extrinsic,
)
from tocw.primitives.errors import ScaleDecodeError, ScaleEncodeError
from tocw.primitives.extrinsic import (
    build_signed_extrinsic,
    build_unsigned_extrinsic,
    signed_payload,
)
from tocw.primitives.header import Header, extrinsics_root
from tocw.primitives.keys import Keypair, verify_multi
from tocw.primitives.metadata import IMMORTAL_ERA, Era, RuntimeMetadata
from tocw.primitives.scale import (
    U32,
    U64,
    Bytes,
    Codec,
    FixedBytes,
    Reader,
    Str,
    Tuple,
    Vec,
    compact_bytes,
    encode_compact,
    read_compact,
)
from tocw.primitives.trie import trie_root
from tocw.primitives.types import AccountId, BlockHash, BlockNumber

__all__ = [
    "PALLETS",
    "BlockResult",
    "ChainContext",
    "DictStorage",
    "GenesisConfig",
    "LocalChain",
    "Runtime",
    "RuntimeConfig",
    "RuntimeEventRecord",
    "RuntimeVersion",
    "StorageView",
    "ValidTransaction",
]

# construct_runtime!: the pallet index is the position.
PALLETS: tuple[PalletDef, ...] = (
    system.PALLET,
    timestamp.PALLET,
    balances.PALLET,
    teerex.PALLET,
    enclave_bridge.PALLET,
    sudo.PALLET,
    transaction_payment.PALLET,
)

TRANSACTION_LONGEVITY_MAX = (1 << 64) - 1
METADATA_VERSIONS = (14,)


def _api_id(name: str) -> bytes:
    """A runtime API's id: blake2b-64 of its trait name (sp_api)."""
    return hashlib.blake2b(name.encode(), digest_size=8).digest()


# --- interface types ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChainContext:
    """What validation needs from the node: the chain the state belongs to."""

    genesis_hash: bytes
    best_number: int
    best_hash: bytes
    # Hash of block N on the best chain. Validation reads System.BlockHash (as Substrate) and
    # asks this only for a birth block the state no longer remembers.
    block_hash: Callable[[int], bytes | None]


@dataclass(frozen=True, slots=True)
class ValidTransaction:
    """sp_runtime's ValidTransaction: how the pool orders and expires a transaction."""

    sender: bytes
    nonce: int
    priority: int
    provides: tuple[bytes, ...]
    requires: tuple[bytes, ...]
    longevity: int
    propagate: bool = True


@dataclass(frozen=True, slots=True)
class RuntimeEventRecord:
    """An event of a block, decoded enough for logs: phase (extrinsic index) and name."""

    phase: int | None
    pallet: str
    name: str
    args: tuple[Any, ...]

    def __str__(self) -> str:
        return f"{self.pallet}.{self.name}"


@dataclass(frozen=True, slots=True)
class BlockResult:
    extrinsics: list[bytes]  # included, the Timestamp.set inherent first
    dropped: list[tuple[bytes, str]]  # invalid for good: remove from the pool
    deferred: list[tuple[bytes, str]]  # valid later (future nonce, block full): keep
    events: list[RuntimeEventRecord]
    timestamp_ms: int

    def extrinsic_events(self, index: int) -> list[RuntimeEventRecord]:
        """The events of included extrinsic `index` (0 is the timestamp inherent)."""
        return [e for e in self.events if e.phase == index]

    def dispatch_error(self, index: int) -> str | None:
        """Why extrinsic `index` failed, e.g. "Balances.InsufficientBalance"; None if it did not."""
        failed = self._failure(index)
        return None if failed is None else describe_encoded_error(failed, PALLETS)

    def failure_detail(self, index: int) -> str | None:
        """The full text of extrinsic `index`'s failure, for logs (None if it succeeded)."""
        failed = self._failure(index)
        return None if failed is None else failed.message

    def _failure(self, index: int) -> EncodedDispatchError | None:
        for event in self.extrinsic_events(index):
            if event.pallet == system.NAME and event.name == system.EV_EXTRINSIC_FAILED.name:
                error: EncodedDispatchError = event.args[0]
                return error
        return None


@dataclass(frozen=True, slots=True)
class RuntimeVersion:
    spec_name: str
    impl_name: str
    authoring_version: int
    spec_version: int
    impl_version: int
    apis: tuple[tuple[bytes, int], ...]
    transaction_version: int
    state_version: int

    def to_json(self) -> dict[str, Any]:
        """Exactly the JSON of state_getRuntimeVersion."""
        return {
            "specName": self.spec_name,
            "implName": self.impl_name,
            "authoringVersion": self.authoring_version,
            "specVersion": self.spec_version,
            "implVersion": self.impl_version,
            "apis": [["0x" + api.hex(), version] for api, version in self.apis],
            "transactionVersion": self.transaction_version,
            "stateVersion": self.state_version,
        }

    def encode(self) -> bytes:
        """SCALE of sp_version::RuntimeVersion (Core_version)."""
        return (
            Str.encode(self.spec_name)
            + Str.encode(self.impl_name)
            + U32.encode(self.authoring_version)
            + U32.encode(self.spec_version)
            + U32.encode(self.impl_version)
            + _APIS.encode(list(self.apis))
            + U32.encode(self.transaction_version)
            + bytes((self.state_version,))
        )


_APIS = Vec(Tuple(FixedBytes(8), U32))

VERSION = RuntimeVersion(
    spec_name="tocw-dev",
    impl_name="tocw-dev",
    authoring_version=1,
    spec_version=100,
    impl_version=1,
    apis=(
        (_api_id("Core"), 4),
        (_api_id("Metadata"), 2),
        (_api_id("BlockBuilder"), 6),
        (_api_id("TaggedTransactionQueue"), 3),
        (_api_id("AccountNonceApi"), 1),
        (_api_id("TransactionPaymentApi"), 4),
        (_api_id("GrandpaApi"), 3),
    ),
    transaction_version=1,
    state_version=1,
)


# --- an in-memory state view --------------------------------------------------------------------


class DictStorage:
    """A dict-backed StorageView: genesis building, tests, and any caller without a trie."""

    __slots__ = ("data",)

    def __init__(self, data: dict[bytes, bytes] | None = None) -> None:
        self.data: dict[bytes, bytes] = dict(data or {})

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def set(self, key: bytes, value: bytes) -> None:
        self.data[key] = value

    def delete(self, key: bytes) -> None:
        self.data.pop(key, None)

    def keys_with_prefix(self, prefix: bytes) -> Iterator[bytes]:
        return iter(sorted(k for k in self.data if k.startswith(prefix)))

    def copy(self) -> DictStorage:
        return DictStorage(self.data)


# --- calls --------------------------------------------------------------------------------------


class RuntimeCallCodec(Codec[Call]):
    """RuntimeCall: pallet index, call index, the call's arguments (decoded per declaration)."""

    __slots__ = ("_table",)

    def __init__(self, pallets: Sequence[PalletDef]) -> None:
        self._table: dict[tuple[int, int], tuple[PalletDef, CallDef, Codec[tuple[Any, ...]]]] = {}
        for pallet_index, pallet in enumerate(pallets):
            for call in pallet.calls:
                codecs = [self if f.ty is RUNTIME_CALL else f.ty.codec for f in call.fields]
                self._table[(pallet_index, call.index)] = (pallet, call, Tuple(*codecs))

    def encode_into(self, value: Call, out: bytearray) -> None:
        out += value.encoded

    def read(self, r: Reader) -> Call:
        start = r.pos
        pallet_index = r.read_byte()
        call_index = r.read_byte()
        entry = self._table.get((pallet_index, call_index))
        if entry is None:
            raise ScaleDecodeError(f"unknown call index (pallet {pallet_index}, call {call_index})")
        pallet, call, args_codec = entry
        args = args_codec.read(r)
        return Call(pallet, pallet_index, call, args, r.data[start : r.pos])

    def encode_args(self, pallet_index: int, call_index: int, args: tuple[Any, ...]) -> bytes:
        _, _, codec = self._table[(pallet_index, call_index)]
        return bytes((pallet_index, call_index)) + codec.encode(args)

    def __repr__(self) -> str:
        return "RuntimeCall"


def call_weight(call: Call) -> Weight:
    """The declared weight of a call plus that of the calls it dispatches (Sudo)."""
    weight = call.definition.weight
    for arg in call.args:
        if isinstance(arg, Call):
            weight = weight + call_weight(arg)
    return weight


@dataclass(frozen=True, slots=True)
class _Checked:
    """A signed extrinsic that passed every check against some state."""

    xt: UncheckedExtrinsic
    call: Call
    sender: bytes
    nonce: int
    tip: int
    fee: int
    weight: Weight
    longevity: int
    account_nonce: int


@dataclass(slots=True)
class _BlockBuilder:
    """Bookkeeping of one block under construction."""

    state: StorageView
    number: int
    records: bytearray = field(default_factory=bytearray)
    record_count: int = 0
    summaries: list[RuntimeEventRecord] = field(default_factory=list)
    topics: dict[bytes, list[tuple[int, int]]] = field(default_factory=dict)
    burnt_fees: int = 0
    normal_weight: Weight = field(default_factory=lambda: Weight(0, 0))
    mandatory_weight: Weight = field(default_factory=lambda: Weight(0, 0))
    normal_length: int = 0


# --- the runtime --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _metadata(config: RuntimeConfig) -> tuple[bytes, RuntimeMetadata]:
    """The runtime's metadata, encoded and parsed. A pure function of the config (the pallets
    are fixed): encoding and parsing take a few hundred ms, so runtimes with equal configs share
    the result (tests and LocalChain make many). The parsed metadata is compiled up front, so
    runtimes on different threads can share it (RuntimeMetadata.compile_all)."""
    raw = encode_metadata(PALLETS, config)
    md = RuntimeMetadata.from_bytes(raw)
    md.compile_all()
    return raw, md


class Runtime:
    """The dev chain runtime (see the module docstring for the node-facing interface)."""

    def __init__(self, config: RuntimeConfig | None = None) -> None:
        self.config = config or RuntimeConfig()
        self.version = VERSION
        self.pallets = PALLETS
        self.pallet_indices = {p.name: i for i, p in enumerate(self.pallets)}
        self.call_codec = RuntimeCallCodec(self.pallets)
        self._timestamp_index = self.pallet_indices[timestamp.NAME]

    # -- static information --

    def runtime_version_json(self) -> dict[str, Any]:
        return self.version.to_json()

    def metadata(self) -> bytes:
        """SCALE(MetadataVersioned V14): state_getMetadata, Metadata_metadata_at_version(14)."""
        return _metadata(self.config)[0]

    @property
    def md(self) -> RuntimeMetadata:
        """This runtime's metadata as clients see it: `metadata()` parsed by
        tocw.primitives.metadata. The runtime decodes submissions and builds its inherent with
        it (tocw.chain.extrinsic says why)."""
        return _metadata(self.config)[1]

    def properties(self) -> dict[str, Any]:
        return {
            "ss58Format": self.config.ss58_format,
            "tokenDecimals": self.config.token_decimals,
            "tokenSymbol": self.config.token_symbol,
        }

    def genesis_storage(self) -> dict[bytes, bytes]:
        state = DictStorage()
        genesis_mod.write_genesis(
            state, self.config, self.version.spec_name, self.version.spec_version
        )
        return state.data

    # -- calls --

    def encode_call(self, pallet: str, call: str, *args: Any) -> bytes:
        """SCALE of RuntimeCall `pallet.call(*args)`; nested calls are passed as bytes-backed
        `Call` values (see decode_call)."""
        pallet_index = self.pallet_indices[pallet]
        definition = self.pallets[pallet_index].call_named(call)
        try:
            return self.call_codec.encode_args(pallet_index, definition.index, args)
        except ScaleEncodeError as e:
            raise ValueError(f"{pallet}.{call}: {e}") from None

    def decode_call(self, data: bytes) -> Call:
        """Decode a RuntimeCall; InvalidTransactionError(BadFormat) if it is not one."""
        try:
            return self.call_codec.decode(data)
        except ScaleDecodeError as e:
            raise InvalidTransactionError("BadFormat", f"cannot decode the call: {e}") from None
        except RecursionError:
            raise InvalidTransactionError("BadFormat", "calls nested too deeply") from None

    def account_nonce(self, state: StorageView, account_id: bytes) -> int:
        return system.account_nonce(state, account_id)

    def fee(self, length: int) -> int:
        """The fee of a signed extrinsic of `length` bytes, tip excluded."""
        return transaction_payment.inclusion_fee(self.config, length)

    # -- transaction validity --

    def validate_transaction(
        self, state: StorageView, extrinsic: bytes, ctx: ChainContext
    ) -> ValidTransaction:
        """Can `extrinsic` enter the pool on top of `state` (the best block)? Never writes."""
        checked = self._check(Overlay(state), extrinsic, ctx.best_number + 1, ctx, in_block=False)
        requires: tuple[bytes, ...] = ()
        if checked.nonce > checked.account_nonce:
            requires = (checked.sender + (checked.nonce - 1).to_bytes(4, "little"),)
        return ValidTransaction(
            sender=checked.sender,
            nonce=checked.nonce,
            priority=checked.tip,
            provides=(checked.sender + checked.nonce.to_bytes(4, "little"),),
            requires=requires,
            longevity=checked.longevity,
        )

    def _check(
        self,
        state: StorageView,
        raw: bytes,
        current: int,
        ctx: ChainContext,
        *,
        in_block: bool,
    ) -> _Checked:
        if len(raw) > system.MAX_NORMAL_LENGTH:
            raise InvalidTransactionError(
                "ExhaustsResources", f"{len(raw)} bytes exceed the block length limit"
            )
        xt = decode_extrinsic(self.md, raw)
        call = self.decode_call(xt.call_data)
        if call.definition.dispatch_class is DispatchClass.Mandatory:
            raise InvalidTransactionError(
                "MandatoryValidation", f"{call.name} is an inherent, clients cannot send it"
            )
        if not xt.is_signed:
            raise InvalidTransactionError(
                "NoUnsignedValidator", f"unsigned {call.name} is not accepted"
            )
        assert xt.extra is not None and xt.signature is not None
        if xt.signer is None:
            raise InvalidTransactionError(
                "CannotLookup",
                f"MultiAddress::{xt.address_kind}: only MultiAddress::Id is supported",
            )
        sender = xt.signer
        era = xt.extra.era
        birth_hash = self._birth_hash(state, era, current, ctx)
        if birth_hash is None:
            raise InvalidTransactionError(
                "AncientBirthBlock",
                f"era birth block #{era.birth(current)} is unknown or too old",
            )
        if not self._signature_ok(xt, sender, birth_hash, ctx):
            raise InvalidTransactionError(
                "BadProof", self._bad_proof_detail(state, xt, current, ctx)
            )
        if sender == bytes(32):
            raise InvalidTransactionError("BadSigner", "the zero account cannot sign")
        account_nonce = system.account_nonce(state, sender)
        nonce = xt.extra.nonce
        if nonce < account_nonce:
            raise InvalidTransactionError(
                "Stale", f"nonce {nonce} is below the account nonce {account_nonce}"
            )
        if in_block and nonce > account_nonce:
            raise InvalidTransactionError(
                "Future", f"nonce {nonce} is ahead of the account nonce {account_nonce}"
            )
        weight = call_weight(call) + system.BASE_EXTRINSIC_WEIGHT
        if not weight.fits(system.MAX_NORMAL_WEIGHT):
            raise InvalidTransactionError("ExhaustsResources", f"weight {weight} exceeds a block")
        fee = self.fee(len(raw))
        total = fee + xt.extra.tip
        why = balances.can_withdraw_fee(state, sender, total, self.config.existential_deposit)
        if why:
            raise InvalidTransactionError("Payment", why)
        death = era.death(current)
        longevity = TRANSACTION_LONGEVITY_MAX if death is None else death - current
        return _Checked(
            xt, call, sender, nonce, xt.extra.tip, fee, weight, longevity, account_nonce
        )

    def _birth_hash(
        self, state: StorageView, era: Era, current: int, ctx: ChainContext
    ) -> bytes | None:
        if era.is_immortal:
            return ctx.genesis_hash
        birth = era.birth(current)
        if birth == ctx.best_number:
            return ctx.best_hash
        if birth > ctx.best_number or birth + system.BLOCK_HASH_COUNT < current:
            return None
        if birth == 0:
            return ctx.genesis_hash
        stored = state.get(system.BLOCK_HASH.key(birth))
        if stored is not None:
            return stored
        return ctx.block_hash(birth)

    def _signature_ok(
        self, xt: UncheckedExtrinsic, sender: bytes, birth_hash: bytes, ctx: ChainContext
    ) -> bool:
        assert xt.signature is not None
        # The "additional signed" data of this runtime's extensions, in their order:
        # CheckSpecVersion, CheckTxVersion, CheckGenesis, CheckMortality (the others sign none).
        additional = b"".join(
            (
                U32.encode(self.version.spec_version),
                U32.encode(self.version.transaction_version),
                ctx.genesis_hash,
                birth_hash,
            )
        )
        payload = signed_payload(xt.call_data, xt.extra_data, additional)
        return verify_multi(xt.signature, payload, AccountId(sender))

    def _bad_proof_detail(
        self, state: StorageView, xt: UncheckedExtrinsic, current: int, ctx: ChainContext
    ) -> str:
        """Say why a signature failed when we can tell: a mortal era that has expired signs
        an older birth block (Substrate only says "bad signature")."""
        assert xt.extra is not None and xt.signer is not None
        era = xt.extra.era
        if not era.is_immortal:
            birth = era.birth(current)
            for earlier in range(birth - era.period, max(-1, birth - 4 * era.period), -era.period):
                old_hash = self._birth_hash(state, Era(era.period, era.phase), earlier, ctx)
                if old_hash is not None and self._signature_ok(xt, xt.signer, old_hash, ctx):
                    return (
                        f"the mortal era born at #{earlier} expired at "
                        f"#{earlier + era.period} (current block #{current})"
                    )
        return "the signature does not verify for the sender (wrong key, chain or spec)"

    # -- block execution --

    def apply_block(
        self,
        state: StorageView,
        number: int,
        parent_hash: bytes,
        timestamp_ms: int,
        extrinsics: Sequence[bytes],
        ctx: ChainContext,
    ) -> BlockResult:
        """Execute block `number` on top of its parent's state (which `state` holds and which
        is changed in place). Invalid extrinsics are left out and reported, never included."""
        parent_number = system.NUMBER.value(state)
        if number != parent_number + 1:
            raise BlockExecutionError(
                f"block #{number} cannot follow the state of block #{parent_number}"
            )
        block_ctx = ChainContext(ctx.genesis_hash, parent_number, parent_hash, ctx.block_hash)
        block = _BlockBuilder(state, number)
        self._initialize(state, number, parent_hash)
        now = self._apply_inherent(block, timestamp_ms)
        included = [now[0]]
        dropped: list[tuple[bytes, str]] = []
        deferred: list[tuple[bytes, str]] = []
        for raw in extrinsics:
            try:
                checked = self._check(state, raw, number, block_ctx, in_block=True)
            except InvalidTransactionError as e:
                (deferred if e.may_become_valid else dropped).append((bytes(raw), str(e)))
                continue
            if not self._fits(block, checked, len(raw)):
                deferred.append((bytes(raw), "Transaction would exhaust the block limits"))
                continue
            self._apply_signed(block, checked, len(included))
            included.append(bytes(raw))
        self._finalize(block, len(included))
        return BlockResult(included, dropped, deferred, block.summaries, now[1])

    def _initialize(self, state: StorageView, number: int, parent_hash: bytes) -> None:
        system.NUMBER.put(state, number)
        system.PARENT_HASH.put(state, parent_hash)
        system.BLOCK_HASH.insert(state, number - 1, parent_hash)
        system.DIGEST.put(state, [])
        system.EVENTS.kill(state)
        system.EVENT_COUNT.kill(state)
        for key in list(state.keys_with_prefix(system.EVENT_TOPICS.prefix)):
            state.delete(key)
        to_remove = number - system.BLOCK_HASH_COUNT - 1
        if to_remove > 0:
            system.BLOCK_HASH.remove(state, to_remove)

    def _apply_inherent(self, block: _BlockBuilder, timestamp_ms: int) -> tuple[bytes, int]:
        previous = timestamp.NOW.value(block.state)
        now = timestamp_ms
        if previous and now < previous + self.config.minimum_period_ms:
            now = previous + self.config.minimum_period_ms
        call_data = self.encode_call(timestamp.NAME, timestamp.SET.name, now)
        call = self.call_codec.decode(call_data)
        env = CallEnv(block.state, block.number, self.config, self.pallet_indices)
        error = env.dispatch(call, NONE)
        if error is not None:
            raise BlockExecutionError(
                f"the timestamp inherent failed: {describe_encoded_error(error, self.pallets)}"
            )
        weight = call_weight(call) + system.BASE_EXTRINSIC_WEIGHT
        block.mandatory_weight = block.mandatory_weight + weight
        info = DispatchInfo(weight, DispatchClass.Mandatory, call.definition.pays_fee)
        env.deposit_event(system.EV_EXTRINSIC_SUCCESS, info)
        self._record(block, env.events, 0)
        return build_unsigned_extrinsic(self.md, call_data), now

    def _fits(self, block: _BlockBuilder, checked: _Checked, length: int) -> bool:
        if block.normal_length + length > system.MAX_NORMAL_LENGTH:
            return False
        return (block.normal_weight + checked.weight).fits(system.MAX_NORMAL_WEIGHT)

    def _apply_signed(self, block: _BlockBuilder, checked: _Checked, index: int) -> None:
        state = block.state
        sender = checked.sender
        # pre_dispatch: CheckNonce bumps the nonce, ChargeTransactionPayment withdraws the fee
        # (burnt: TotalIssuance is reduced once per block in _finalize).
        key = system.ACCOUNT.key(sender)
        raw_account = state.get(key)
        assert raw_account is not None  # _check made sure the sender can pay
        info = ACCOUNT_INFO_CODEC.decode(raw_account)
        info.nonce += 1
        paid = checked.fee + checked.tip
        info.free -= paid
        state.set(key, ACCOUNT_INFO_CODEC.encode(info))
        block.burnt_fees += paid
        env = CallEnv(state, block.number, self.config, self.pallet_indices)
        if paid:
            env.deposit_event(balances.EV_WITHDRAW, sender, paid)
        error = env.dispatch(checked.call, Signed(sender))
        # ChargeTransactionPayment::post_dispatch, whether the call failed or not.
        env.deposit_event(transaction_payment.EV_TRANSACTION_FEE_PAID, sender, paid, checked.tip)
        definition = checked.call.definition
        dispatch_info = DispatchInfo(checked.weight, definition.dispatch_class, definition.pays_fee)
        if error is None:
            env.deposit_event(system.EV_EXTRINSIC_SUCCESS, dispatch_info)
        else:
            env.deposit_event(system.EV_EXTRINSIC_FAILED, error, dispatch_info)
        block.normal_weight = block.normal_weight + checked.weight
        block.normal_length += len(checked.xt.raw)
        self._record(block, env.events, index)

    def _record(self, block: _BlockBuilder, events: list[EmittedEvent], index: int) -> None:
        phase = phase_apply_extrinsic(index)
        out = block.records
        for event in events:
            out += phase
            out += event.encoded
            encode_compact(len(event.topics), out)
            for topic in event.topics:
                out += topic
                block.topics.setdefault(topic, []).append((block.number, block.record_count))
            block.record_count += 1
            block.summaries.append(
                RuntimeEventRecord(
                    index, event.definition.pallet, event.definition.name, event.args
                )
            )

    def _finalize(self, block: _BlockBuilder, extrinsic_count: int) -> None:
        state = block.state
        timestamp.DID_UPDATE.kill(state)
        state.delete(genesis_mod.EXTRINSIC_INDEX_KEY)
        if block.burnt_fees:
            issuance = balances.TOTAL_ISSUANCE.value(state)
            balances.TOTAL_ISSUANCE.put(state, max(0, issuance - block.burnt_fees))
        system.BLOCK_WEIGHT.put(
            state,
            (
                block.normal_weight,
                Weight(0, 0),
                block.mandatory_weight + system.BASE_BLOCK_WEIGHT,
            ),
        )
        state.set(system.EVENTS.prefix, compact_bytes(block.record_count) + bytes(block.records))
        system.EVENT_COUNT.put(state, block.record_count)
        for topic, entries in block.topics.items():
            existing = system.EVENT_TOPICS.value(state, topic)
            system.EVENT_TOPICS.insert(state, topic, [*existing, *entries])

    # -- runtime APIs (state_call) --

    def call_api(
        self,
        state: StorageView,
        method: str,
        params: bytes,
        ctx: ChainContext | None = None,
    ) -> bytes:
        """Execute runtime API function `method` (e.g. "AccountNonceApi_account_nonce")."""
        handler = self._apis().get(method)
        if handler is None:
            raise UnknownRuntimeApiError(method)
        try:
            return handler(state, bytes(params), ctx)
        except (ScaleDecodeError, InvalidTransactionError) as e:
            raise RuntimeApiError(f"{method}: cannot decode the parameters: {e}") from None

    def _apis(
        self,
    ) -> dict[str, Callable[[StorageView, bytes, ChainContext | None], bytes]]:
        return {
            "Core_version": lambda s, p, c: self._no_params(p, self.version.encode()),
            "Metadata_metadata": lambda s, p, c: self._no_params(p, Bytes.encode(self.metadata())),
            "Metadata_metadata_versions": lambda s, p, c: self._no_params(
                p, Vec(U32).encode(list(METADATA_VERSIONS))
            ),
            "Metadata_metadata_at_version": self._api_metadata_at_version,
            "AccountNonceApi_account_nonce": self._api_account_nonce,
            "TransactionPaymentApi_query_info": self._api_query_info,
            "TransactionPaymentApi_query_fee_details": self._api_query_fee_details,
            "GrandpaApi_grandpa_authorities": self._api_grandpa_authorities,
            "GrandpaApi_current_set_id": lambda s, p, c: self._no_params(
                p, U64.encode(genesis_mod.GRANDPA_SET_ID)
            ),
            "TaggedTransactionQueue_validate_transaction": self._api_validate_transaction,
        }

    @staticmethod
    def _no_params(params: bytes, result: bytes) -> bytes:
        if params:
            raise ScaleDecodeError(f"expected no parameters, got {len(params)} bytes")
        return result

    def _api_metadata_at_version(
        self, state: StorageView, params: bytes, ctx: ChainContext | None
    ) -> bytes:
        version = U32.decode(params)
        if version in METADATA_VERSIONS:
            return b"\x01" + Bytes.encode(self.metadata())
        return b"\x00"

    def _api_account_nonce(
        self, state: StorageView, params: bytes, ctx: ChainContext | None
    ) -> bytes:
        account = FixedBytes(32).decode(params)
        return U32.encode(system.account_nonce(state, account))

    def _split_uxt(self, params: bytes) -> tuple[bytes, int]:
        """(the extrinsic with its length prefix, the `len` argument) of TransactionPaymentApi."""
        r = Reader(params)
        length = read_compact(r)
        r.read(length)
        uxt = params[: r.pos]
        return uxt, U32.decode(params[r.pos :])

    def _api_query_info(self, state: StorageView, params: bytes, ctx: ChainContext | None) -> bytes:
        """RuntimeDispatchInfo of an extrinsic; its signature is not checked (clients estimate
        fees with a dummy one), and unsigned extrinsics pay nothing, as Substrate."""
        uxt, length = self._split_uxt(params)
        xt = decode_extrinsic(self.md, uxt)
        call = self.decode_call(xt.call_data)
        weight = call_weight(call) + system.BASE_EXTRINSIC_WEIGHT
        fee = self.fee(length) if xt.is_signed else 0
        return RUNTIME_DISPATCH_INFO_T.codec.encode((weight, call.definition.dispatch_class, fee))

    def _api_query_fee_details(
        self, state: StorageView, params: bytes, ctx: ChainContext | None
    ) -> bytes:
        """FeeDetails { inclusion_fee: Option<InclusionFee>, tip }."""
        uxt, length = self._split_uxt(params)
        xt = decode_extrinsic(self.md, uxt)
        self.decode_call(xt.call_data)
        if xt.extra is None:
            return b"\x00" + _u128(0)
        tip = xt.extra.tip
        base = self.config.transaction_base_fee
        length_fee = self.config.transaction_byte_fee * length
        return b"\x01" + _u128(base) + _u128(length_fee) + _u128(0) + _u128(tip)

    def _api_grandpa_authorities(
        self, state: StorageView, params: bytes, ctx: ChainContext | None
    ) -> bytes:
        self._no_params(params, b"")
        raw = state.get(genesis_mod.GRANDPA_AUTHORITIES_KEY)
        if raw is None:
            return b"\x00"
        return raw[1:]

    def _api_validate_transaction(
        self, state: StorageView, params: bytes, ctx: ChainContext | None
    ) -> bytes:
        if ctx is None:
            raise RuntimeApiError(
                "TaggedTransactionQueue_validate_transaction needs a chain context"
            )
        r = Reader(params)
        r.read_byte()  # TransactionSource: the pool's business, not the runtime's
        length = read_compact(r)
        r.read(length)
        xt = params[1 : r.pos]
        FixedBytes(32).decode(params[r.pos :])  # the block hash the node validates at
        try:
            valid = self.validate_transaction(state, xt, ctx)
        except InvalidTransactionError as e:
            if e.reason == "BadFormat":
                raise
            return b"\x01" + _encode_validity_error(e)
        out = bytearray(b"\x00")
        out += U64.encode(valid.priority)
        out += Vec(Bytes).encode(list(valid.requires))
        out += Vec(Bytes).encode(list(valid.provides))
        out += U64.encode(valid.longevity)
        out.append(1 if valid.propagate else 0)
        return bytes(out)


def _u128(value: int) -> bytes:
    return value.to_bytes(16, "little")


_INVALID_INDEX = {
    "Call": 0,
    "Payment": 1,
    "Future": 2,
    "Stale": 3,
    "BadProof": 4,
    "AncientBirthBlock": 5,
    "ExhaustsResources": 6,
    "BadMandatory": 8,
    "MandatoryValidation": 9,
    "BadSigner": 10,
}
_UNKNOWN_INDEX = {"CannotLookup": 0, "NoUnsignedValidator": 1}


def _encode_validity_error(error: InvalidTransactionError) -> bytes:
    """SCALE of sp_runtime's TransactionValidityError."""
    if error.reason in _UNKNOWN_INDEX:
        return bytes((1, _UNKNOWN_INDEX[error.reason]))
    return bytes((0, _INVALID_INDEX[error.reason]))


# --- the runtime on its own ---------------------------------------------------------------------


class LocalChain:
    """The runtime alone, block after block, on an in-memory state: for benchmarks and runtime
    tests, where the node's storage, pool and finality are not the subject.

    Headers are real (state root from tocw.primitives.trie, extrinsics root, blake2_256 of the
    SCALE header), so genesis hash, era birth hashes and System.BlockHash are what the node
    would have for the same blocks.
    """

    def __init__(
        self, runtime: Runtime | None = None, *, first_block_ms: int = 1_700_000_000_000
    ) -> None:
        self.runtime = runtime or Runtime()
        self.state = DictStorage(self.runtime.genesis_storage())
        genesis = Header(
            BlockHash(bytes(32)),
            BlockNumber(0),
            trie_root(self.state.data, self.runtime.version.state_version),
            extrinsics_root([]),
        )
        self.hashes: list[bytes] = [genesis.hash()]
        self.next_ms = first_block_ms

    @property
    def number(self) -> int:
        return len(self.hashes) - 1

    @property
    def head(self) -> bytes:
        return self.hashes[-1]

    @property
    def genesis_hash(self) -> bytes:
        return self.hashes[0]

    def block_hash(self, number: int) -> bytes | None:
        return self.hashes[number] if 0 <= number < len(self.hashes) else None

    def ctx(self) -> ChainContext:
        return ChainContext(self.genesis_hash, self.number, self.head, self.block_hash)

    def call(self, pallet: str, name: str, *args: Any) -> bytes:
        return self.runtime.encode_call(pallet, name, *args)

    def sign(
        self,
        keypair: Keypair,
        call: bytes,
        *,
        nonce: int | None = None,
        era: Era | None = None,
        tip: int = 0,
    ) -> bytes:
        """A signed extrinsic for this chain (next nonce by default; a mortal `era` is born
        at the block its phase names)."""
        if nonce is None:
            nonce = self.runtime.account_nonce(self.state, keypair.public_key)
        birth_hash = None
        if era is not None and not era.is_immortal:
            birth_hash = self.block_hash(era.birth(self.number + 1))
        return build_signed_extrinsic(
            self.runtime.md,
            call,
            keypair,
            nonce=nonce,
            genesis_hash=self.genesis_hash,
            spec_version=self.runtime.version.spec_version,
            transaction_version=self.runtime.version.transaction_version,
            era=IMMORTAL_ERA if era is None else era,
            birth_hash=birth_hash,
            tip=tip,
        )

    def validate(self, extrinsic: bytes) -> ValidTransaction:
        return self.runtime.validate_transaction(self.state, extrinsic, self.ctx())

    def produce(self, *extrinsics: bytes, timestamp_ms: int | None = None) -> BlockResult:
        """Apply the next block (6 s after the previous one unless told otherwise)."""
        now = self.next_ms if timestamp_ms is None else timestamp_ms
        number = self.number + 1
        result = self.runtime.apply_block(
            self.state, number, self.head, now, list(extrinsics), self.ctx()
        )
        header = Header(
            BlockHash(self.head),
            BlockNumber(number),
            trie_root(self.state.data, self.runtime.version.state_version),
            extrinsics_root(result.extrinsics),
        )
        self.hashes.append(header.hash())
        self.next_ms = result.timestamp_ms + 6_000
        return result
