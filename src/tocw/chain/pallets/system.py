"""frame_system: accounts (nonce and reference counts), block bookkeeping, events, limits.

As polkadot-v0.9.42's frame_system, with these deliberate differences: no `set_code`,
`set_code_without_checks` or `set_heap_pages` (the runtime is Python, there is no Wasm blob to
replace), and no `ExtrinsicData` storage (Substrate removes it at the end of every block, so a
finished block's state is the same without it). The block-level logic (initialize, apply,
finalize) lives in tocw.chain.runtime, which reads and writes the storage declared here.
"""

from __future__ import annotations

from typing import Any

from tocw.chain.pallets.framework import (
    CallDef,
    CallEnv,
    ConstantDef,
    ErrorDef,
    EventDef,
    Origin,
    PalletDef,
    RuntimeConfig,
    StorageMap,
    StorageValue,
    StorageView,
    ensure_root,
    ensure_signed,
    ensure_signed_or_root,
)
from tocw.chain.pallets.scaleinfo import (
    BOOL_T,
    BYTES_T,
    U16_T,
    U32_T,
    Field,
    SequenceOf,
    TupleOf,
)
from tocw.chain.pallets.substrate_types import (
    ACCOUNT_ID_T,
    ACCOUNT_INFO_CODEC,
    ACCOUNT_INFO_T,
    BLOCK_LENGTH_T,
    BLOCK_NUMBER_T,
    BLOCK_WEIGHTS_T,
    DIGEST_T,
    DISPATCH_ERROR_T,
    DISPATCH_INFO_T,
    EVENT_RECORD_T,
    H256_T,
    LAST_RUNTIME_UPGRADE_T,
    PHASE_T,
    RUNTIME_DB_WEIGHT_T,
    WEIGHT_T,
    AccountInfo,
    Weight,
    per_dispatch_class,
)
from tocw.primitives.hashing import blake2_256

NAME = "System"

# --- limits (frame_system::limits with node-template's numbers) --------------------------------

WEIGHT_REF_TIME_PER_SECOND = 10**12
U64_MAX = (1 << 64) - 1
MAX_BLOCK_WEIGHT = Weight(2 * WEIGHT_REF_TIME_PER_SECOND, U64_MAX)
NORMAL_DISPATCH_RATIO_PERCENT = 75
BASE_BLOCK_WEIGHT = Weight(5_000_000_000, 0)
BASE_EXTRINSIC_WEIGHT = Weight(86_298_000, 0)
MAX_NORMAL_WEIGHT = Weight(
    MAX_BLOCK_WEIGHT.ref_time * NORMAL_DISPATCH_RATIO_PERCENT // 100,
    MAX_BLOCK_WEIGHT.proof_size * NORMAL_DISPATCH_RATIO_PERCENT // 100,
)
MAX_BLOCK_LENGTH = 5 * 1024 * 1024
MAX_NORMAL_LENGTH = MAX_BLOCK_LENGTH * NORMAL_DISPATCH_RATIO_PERCENT // 100
BLOCK_HASH_COUNT = 2400
DB_READ_WEIGHT = 25_000_000
DB_WRITE_WEIGHT = 100_000_000


def _block_weights(_: RuntimeConfig) -> tuple[Any, ...]:
    normal = (
        BASE_EXTRINSIC_WEIGHT,
        Weight(MAX_NORMAL_WEIGHT.ref_time - BASE_EXTRINSIC_WEIGHT.ref_time, U64_MAX),
        MAX_NORMAL_WEIGHT,
        Weight(0, 0),
    )
    operational = (
        BASE_EXTRINSIC_WEIGHT,
        Weight(MAX_BLOCK_WEIGHT.ref_time - BASE_EXTRINSIC_WEIGHT.ref_time, U64_MAX),
        MAX_BLOCK_WEIGHT,
        Weight(MAX_BLOCK_WEIGHT.ref_time - MAX_NORMAL_WEIGHT.ref_time, U64_MAX),
    )
    mandatory = (BASE_EXTRINSIC_WEIGHT, None, None, None)
    return (BASE_BLOCK_WEIGHT, MAX_BLOCK_WEIGHT, (normal, operational, mandatory))


# --- storage ------------------------------------------------------------------------------------

ACCOUNT: StorageMap[bytes, AccountInfo] = StorageMap(
    NAME,
    "Account",
    "Blake2_128Concat",
    ACCOUNT_ID_T,
    ACCOUNT_INFO_T,
    AccountInfo(),
    docs=(" The full account information for a particular account ID.",),
)
EXTRINSIC_COUNT: StorageValue[int] = StorageValue(
    NAME, "ExtrinsicCount", U32_T, docs=(" Total extrinsics count for the current block.",)
)
BLOCK_WEIGHT: StorageValue[tuple[Weight, Weight, Weight]] = StorageValue(
    NAME,
    "BlockWeight",
    per_dispatch_class(WEIGHT_T),
    (Weight(0), Weight(0), Weight(0)),
    docs=(" The current weight for the block.",),
)
ALL_EXTRINSICS_LEN: StorageValue[int] = StorageValue(
    NAME, "AllExtrinsicsLen", U32_T, docs=(" Total length (in bytes) for all extrinsics.",)
)
BLOCK_HASH: StorageMap[int, bytes] = StorageMap(
    NAME,
    "BlockHash",
    "Twox64Concat",
    BLOCK_NUMBER_T,
    H256_T,
    bytes(32),
    docs=(" Map of block numbers to block hashes.",),
)
NUMBER: StorageValue[int] = StorageValue(
    NAME, "Number", BLOCK_NUMBER_T, 0, docs=(" The current block number being processed.",)
)
PARENT_HASH: StorageValue[bytes] = StorageValue(
    NAME, "ParentHash", H256_T, bytes(32), docs=(" Hash of the previous block.",)
)
DIGEST: StorageValue[list[Any]] = StorageValue(
    NAME, "Digest", DIGEST_T, [], docs=(" Digest of the current block.",)
)
EVENTS: StorageValue[Any] = StorageValue(
    NAME,
    "Events",
    SequenceOf(EVENT_RECORD_T),
    raw_default=b"\x00",
    docs=(" Events deposited for the current block.",),
)
EVENT_COUNT: StorageValue[int] = StorageValue(
    NAME, "EventCount", U32_T, 0, docs=(" The number of events in the `Events<T>` list.",)
)
EVENT_TOPICS: StorageMap[bytes, list[tuple[int, int]]] = StorageMap(
    NAME,
    "EventTopics",
    "Blake2_128Concat",
    H256_T,
    SequenceOf(TupleOf(BLOCK_NUMBER_T, U32_T)),
    [],
    docs=(" Mapping between a topic and (block number, event index) pairs.",),
)
LAST_RUNTIME_UPGRADE: StorageValue[tuple[int, str]] = StorageValue(
    NAME,
    "LastRuntimeUpgrade",
    LAST_RUNTIME_UPGRADE_T,
    docs=(" Stores the `spec_version` and `spec_name` of when the last runtime upgrade happened.",),
)
UPGRADED_TO_U32_REF_COUNT: StorageValue[bool] = StorageValue(
    NAME, "UpgradedToU32RefCount", BOOL_T, False
)
UPGRADED_TO_TRIPLE_REF_COUNT: StorageValue[bool] = StorageValue(
    NAME, "UpgradedToTripleRefCount", BOOL_T, False
)
EXECUTION_PHASE: StorageValue[Any] = StorageValue(
    NAME, "ExecutionPhase", PHASE_T, docs=(" The execution phase of the block.",)
)

# --- events and errors --------------------------------------------------------------------------

EV_EXTRINSIC_SUCCESS = EventDef(
    NAME,
    0,
    "ExtrinsicSuccess",
    (Field("dispatch_info", DISPATCH_INFO_T, "DispatchInfo"),),
    (" An extrinsic completed successfully.",),
)
EV_EXTRINSIC_FAILED = EventDef(
    NAME,
    1,
    "ExtrinsicFailed",
    (
        Field("dispatch_error", DISPATCH_ERROR_T, "DispatchError"),
        Field("dispatch_info", DISPATCH_INFO_T, "DispatchInfo"),
    ),
    (" An extrinsic failed.",),
)
EV_CODE_UPDATED = EventDef(NAME, 2, "CodeUpdated", (), (" `:code` was updated.",))
EV_NEW_ACCOUNT = EventDef(
    NAME,
    3,
    "NewAccount",
    (Field("account", ACCOUNT_ID_T, "T::AccountId"),),
    (" A new account was created.",),
)
EV_KILLED_ACCOUNT = EventDef(
    NAME,
    4,
    "KilledAccount",
    (Field("account", ACCOUNT_ID_T, "T::AccountId"),),
    (" An account was reaped.",),
)
EV_REMARKED = EventDef(
    NAME,
    5,
    "Remarked",
    (Field("sender", ACCOUNT_ID_T, "T::AccountId"), Field("hash", H256_T, "T::Hash")),
    (" On on-chain remark happened.",),
)

ERRORS = tuple(
    ErrorDef(NAME, i, name, (doc,))
    for i, (name, doc) in enumerate(
        [
            ("InvalidSpecName", " The name of specification does not match between the runtimes."),
            (
                "SpecVersionNeedsToIncrease",
                " The specification version is not allowed to decrease.",
            ),
            ("FailedToExtractRuntimeVersion", " Failed to extract the runtime version."),
            ("NonDefaultComposite", " Suicide called when the account has non-default data."),
            ("NonZeroRefCount", " There is a non-zero reference count preventing the account."),
            ("CallFiltered", " The origin filter prevent the call to be dispatched."),
        ]
    )
)

# --- accounts (used by Balances and the executive) ----------------------------------------------


def load_account(state: StorageView, who: bytes) -> AccountInfo:
    """The account's info; a fresh default when it does not exist."""
    raw = state.get(ACCOUNT.key(who))
    if raw is None:
        return AccountInfo()
    return ACCOUNT_INFO_CODEC.decode(raw)


def store_account(state: StorageView, who: bytes, info: AccountInfo) -> None:
    """Write the account, or remove it once nothing provides for it (Substrate reaps the whole
    entry, nonce included, when providers and sufficients both reach zero)."""
    key = ACCOUNT.key(who)
    if info.providers == 0 and info.sufficients == 0:
        state.delete(key)
    else:
        state.set(key, ACCOUNT_INFO_CODEC.encode(info))


def account_nonce(state: StorageView, who: bytes) -> int:
    raw = state.get(ACCOUNT.key(who))
    return 0 if raw is None else int.from_bytes(raw[:4], "little")


# --- calls --------------------------------------------------------------------------------------


def remark(env: CallEnv, origin: Origin, remark: bytes) -> None:
    ensure_signed_or_root(origin)


def set_storage(env: CallEnv, origin: Origin, items: list[tuple[bytes, bytes]]) -> None:
    ensure_root(origin)
    for key, value in items:
        env.state.set(key, value)


def kill_storage(env: CallEnv, origin: Origin, keys: list[bytes]) -> None:
    ensure_root(origin)
    for key in keys:
        env.state.delete(key)


def kill_prefix(env: CallEnv, origin: Origin, prefix: bytes, subkeys: int) -> None:
    ensure_root(origin)
    for key in list(env.state.keys_with_prefix(prefix)):
        env.state.delete(key)


def remark_with_event(env: CallEnv, origin: Origin, remark: bytes) -> None:
    sender = ensure_signed(origin)
    env.deposit_event(EV_REMARKED, sender, blake2_256(remark))


_KEY_VALUE = TupleOf(BYTES_T, BYTES_T)

CALLS = (
    CallDef(
        0,
        "remark",
        (Field("remark", BYTES_T, "Vec<u8>"),),
        remark,
        Weight(10_000_000),
        docs=(" Make some on-chain remark.",),
    ),
    CallDef(
        4,
        "set_storage",
        (Field("items", SequenceOf(_KEY_VALUE), "Vec<KeyValue>"),),
        set_storage,
        Weight(50_000_000),
        docs=(" Set some items of storage.",),
    ),
    CallDef(
        5,
        "kill_storage",
        (Field("keys", SequenceOf(BYTES_T), "Vec<Key>"),),
        kill_storage,
        Weight(50_000_000),
        docs=(" Kill some items from storage.",),
    ),
    CallDef(
        6,
        "kill_prefix",
        (Field("prefix", BYTES_T, "Key"), Field("subkeys", U32_T, "u32")),
        kill_prefix,
        Weight(100_000_000),
        docs=(" Kill all storage items with a key that starts with the given prefix.",),
    ),
    CallDef(
        7,
        "remark_with_event",
        (Field("remark", BYTES_T, "Vec<u8>"),),
        remark_with_event,
        Weight(20_000_000),
        docs=(" Make some on-chain remark and emit event.",),
    ),
)

CONSTANTS = (
    ConstantDef("BlockWeights", BLOCK_WEIGHTS_T, _block_weights, (" Block & extrinsics weights.",)),
    ConstantDef(
        "BlockLength",
        BLOCK_LENGTH_T,
        lambda _: (MAX_NORMAL_LENGTH, MAX_BLOCK_LENGTH, MAX_BLOCK_LENGTH),
        (" The maximum length of a block (in bytes).",),
    ),
    ConstantDef(
        "BlockHashCount",
        BLOCK_NUMBER_T,
        lambda _: BLOCK_HASH_COUNT,
        (" Maximum number of block number to block hash mappings to keep (oldest pruned first).",),
    ),
    ConstantDef(
        "DbWeight",
        RUNTIME_DB_WEIGHT_T,
        lambda _: (DB_READ_WEIGHT, DB_WRITE_WEIGHT),
        (" The weight of runtime database operations the runtime can invoke.",),
    ),
    ConstantDef(
        "SS58Prefix",
        U16_T,
        lambda config: config.ss58_format,
        (" The designated SS58 prefix of this chain.",),
    ),
)

PALLET = PalletDef(
    NAME,
    calls=CALLS,
    events=(
        EV_EXTRINSIC_SUCCESS,
        EV_EXTRINSIC_FAILED,
        EV_CODE_UPDATED,
        EV_NEW_ACCOUNT,
        EV_KILLED_ACCOUNT,
        EV_REMARKED,
    ),
    errors=ERRORS,
    storage=(
        ACCOUNT,
        EXTRINSIC_COUNT,
        BLOCK_WEIGHT,
        ALL_EXTRINSICS_LEN,
        BLOCK_HASH,
        NUMBER,
        PARENT_HASH,
        DIGEST,
        EVENTS,
        EVENT_COUNT,
        EVENT_TOPICS,
        LAST_RUNTIME_UPGRADE,
        UPGRADED_TO_U32_REF_COUNT,
        UPGRADED_TO_TRIPLE_REF_COUNT,
        EXECUTION_PHASE,
    ),
    constants=CONSTANTS,
    crate="frame_system",
)
