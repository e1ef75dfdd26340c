"""pallet_enclave_bridge (Integritee sdk-v0.13.0-polkadot-v0.9.42): the chain side of a shard.

Clients `invoke` encrypted trusted calls and `shield_funds` into a shard's vault (the account
whose 32 bytes are the shard id); registered enclaves of the shard confirm processed blocks and
pay out unshielded funds, each `call_hash` at most once. Calls, events, errors, storage and
types follow Integritee's pallet, with its shard-status bookkeeping (`touch_shard`) and
scheduled shard-config upgrades. No deliberate differences.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tocw.chain.pallets import balances, teerex
from tocw.chain.pallets.framework import (
    CallDef,
    CallEnv,
    ErrorDef,
    EventDef,
    Origin,
    PalletDef,
    StorageMap,
    ensure_root,
    ensure_signed,
    ensure_signed_or_root,
)
from tocw.chain.pallets.scaleinfo import (
    BOOL_T,
    BYTES_T,
    U32_T,
    U64_T,
    Composite,
    Field,
    OptionOf,
    SequenceOf,
    bounded_vec,
)
from tocw.chain.pallets.substrate_types import (
    ACCOUNT_ID_T,
    BALANCE_T,
    BLOCK_NUMBER_T,
    H256_T,
    Weight,
)
from tocw.primitives.trusted import REQUEST_CODEC, Request

NAME = "EnclaveBridge"
MAX_SHARD_STATUS_SIGNER_COUNT = 10
TOPICS_LIMIT = 5
DATA_LENGTH_LIMIT = 100

# --- types (enclave_bridge_primitives) ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShardSignerStatus:
    signer: bytes
    fingerprint: bytes
    last_activity: int


@dataclass(frozen=True, slots=True)
class ShardConfig:
    enclave_fingerprint: bytes
    max_instances: int | None = None
    authorities: list[bytes] | None = None
    maintenance_mode: bool = False


@dataclass(frozen=True, slots=True)
class UpgradableShardConfig:
    active_config: ShardConfig
    pending_upgrade: ShardConfig | None = None
    upgrade_at: int | None = None


REQUEST_T = Composite(
    ["enclave_bridge_primitives", "Request"],
    [
        Field("shard", H256_T, "ShardIdentifier"),
        Field("cyphertext", BYTES_T, "Vec<u8>"),
    ],
    codec=REQUEST_CODEC,
)
SHARD_SIGNER_STATUS_T = Composite(
    ["enclave_bridge_primitives", "ShardSignerStatus"],
    [
        Field("signer", ACCOUNT_ID_T, "AccountId"),
        Field("fingerprint", H256_T, "EnclaveFingerprint"),
        Field("last_activity", BLOCK_NUMBER_T, "BlockNumber"),
    ],
    cls=ShardSignerStatus,
    params=[("AccountId", ACCOUNT_ID_T), ("BlockNumber", BLOCK_NUMBER_T)],
)
SHARD_CONFIG_T = Composite(
    ["enclave_bridge_primitives", "ShardConfig"],
    [
        Field("enclave_fingerprint", H256_T, "EnclaveFingerprint"),
        Field("max_instances", OptionOf(U32_T), "Option<u32>"),
        Field("authorities", OptionOf(SequenceOf(ACCOUNT_ID_T)), "Option<Vec<AccountId>>"),
        Field("maintenance_mode", BOOL_T, "bool"),
    ],
    cls=ShardConfig,
    params=[("AccountId", ACCOUNT_ID_T)],
)
UPGRADABLE_SHARD_CONFIG_T = Composite(
    ["enclave_bridge_primitives", "UpgradableShardConfig"],
    [
        Field("active_config", SHARD_CONFIG_T, "ShardConfig<AccountId>"),
        Field("pending_upgrade", OptionOf(SHARD_CONFIG_T), "Option<ShardConfig<AccountId>>"),
        Field("upgrade_at", OptionOf(BLOCK_NUMBER_T), "Option<BlockNumber>"),
    ],
    cls=UpgradableShardConfig,
    params=[("AccountId", ACCOUNT_ID_T), ("BlockNumber", BLOCK_NUMBER_T)],
)

# --- storage ------------------------------------------------------------------------------------

SHARD_STATUS: StorageMap[bytes, list[ShardSignerStatus]] = StorageMap(
    NAME,
    "ShardStatus",
    "Blake2_128Concat",
    H256_T,
    bounded_vec(SHARD_SIGNER_STATUS_T),
)
SHARD_CONFIG_REGISTRY: StorageMap[bytes, UpgradableShardConfig] = StorageMap(
    NAME,
    "ShardConfigRegistry",
    "Blake2_128Concat",
    H256_T,
    UPGRADABLE_SHARD_CONFIG_T,
    docs=(" this registry holds shard configurations as well as pending updates thereof.",),
)
EXECUTED_UNSHIELD_CALLS: StorageMap[bytes, int] = StorageMap(
    NAME, "ExecutedUnshieldCalls", "Blake2_128Concat", H256_T, U64_T, 0
)

# --- events -------------------------------------------------------------------------------------

_SHARD = Field("shard", H256_T, "ShardIdentifier")

EV_INDIRECT_INVOCATION_REGISTERED = EventDef(
    NAME,
    0,
    "IndirectInvocationRegistered",
    (Field(None, H256_T, "ShardIdentifier"),),
    (" an indirect invocation has been registered for execution on L2",),
)
EV_SHIELD_FUNDS = EventDef(
    NAME,
    1,
    "ShieldFunds",
    (
        _SHARD,
        Field("encrypted_beneficiary", BYTES_T, "Vec<u8>"),
        Field("amount", BALANCE_T, "BalanceOf<T>"),
    ),
    (" funds have been shielded to L2",),
)
EV_UNSHIELDED_FUNDS = EventDef(
    NAME,
    2,
    "UnshieldedFunds",
    (
        _SHARD,
        Field("beneficiary", ACCOUNT_ID_T, "T::AccountId"),
        Field("amount", BALANCE_T, "BalanceOf<T>"),
    ),
    (" funds have been unshielded from L2 back to L1",),
)
EV_PROCESSED_PARENTCHAIN_BLOCK = EventDef(
    NAME,
    3,
    "ProcessedParentchainBlock",
    (
        _SHARD,
        Field("block_hash", H256_T, "H256"),
        Field("trusted_calls_merkle_root", H256_T, "H256"),
        Field("block_number", BLOCK_NUMBER_T, "T::BlockNumber"),
    ),
    (" L2 confirmed processing of a parentchain block",),
)
EV_PUBLISHED_HASH = EventDef(
    NAME,
    4,
    "PublishedHash",
    (
        Field("enclave_fingerprint", H256_T, "EnclaveFingerprint"),
        Field("hash", H256_T, "H256"),
        Field("data", BYTES_T, "Vec<u8>"),
    ),
    (" An enclave has published some [hash] with some metadata [data].",),
)
EV_SHARD_CONFIG_UPDATED = EventDef(
    NAME, 5, "ShardConfigUpdated", (Field(None, H256_T, "ShardIdentifier"),)
)
EV_PURGED_ENCLAVE_FROM_SHARD_CONFIG = EventDef(
    NAME,
    6,
    "PurgedEnclaveFromShardConfig",
    (_SHARD, Field("subject", ACCOUNT_ID_T, "T::AccountId")),
    (" An enclave has been purged from a shard status. Most likely due to inactivity",),
)

# --- errors -------------------------------------------------------------------------------------

ERR_WRONG_FINGERPRINT_FOR_SHARD = ErrorDef(
    NAME, 0, "WrongFingerprintForShard", (" The shard doesn't match the enclave.",)
)
ERR_TOO_MANY_TOPICS = ErrorDef(
    NAME,
    1,
    "TooManyTopics",
    (" The number of `extra_topics` passed to `publish_hash` exceeds the limit.",),
)
ERR_DATA_TOO_LONG = ErrorDef(
    NAME,
    2,
    "DataTooLong",
    (" The length of the `data` passed to `publish_hash` exceeds the limit.",),
)
ERR_TOO_MANY_ENCLAVES = ErrorDef(NAME, 3, "TooManyEnclaves", (" Too many enclaves in ShardStatus",))
ERR_ENCLAVE_NOT_FOUND_IN_SHARD_STATUS = ErrorDef(
    NAME, 4, "EnclaveNotFoundInShardStatus", (" No such enclave was found in shard status",)
)
ERR_SHARD_NOT_FOUND = ErrorDef(NAME, 5, "ShardNotFound", (" Shard not found",))

# --- shard bookkeeping --------------------------------------------------------------------------


def vault_account(shard: bytes) -> bytes:
    """The account that holds a shard's shielded funds: the shard id's 32 bytes."""
    return shard


def maybe_updated_shard_config(
    env: CallEnv, shard: bytes, apply_due_update: bool
) -> ShardConfig | None:
    """The config in force at this block, enacting a due pending upgrade if asked to."""
    current = SHARD_CONFIG_REGISTRY.get(env.state, shard)
    if current is None:
        return None
    if current.upgrade_at is None or current.upgrade_at > env.block_number:
        return current.active_config
    if current.pending_upgrade is None:
        return current.active_config
    if apply_due_update:
        SHARD_CONFIG_REGISTRY.insert(
            env.state, shard, UpgradableShardConfig(current.pending_upgrade)
        )
    return current.pending_upgrade


def touch_shard(env: CallEnv, shard: bytes, signer: bytes, fingerprint: bytes) -> None:
    """Record `signer`'s activity on `shard` at this block (at most 10 signers per shard)."""
    status = ShardSignerStatus(signer, fingerprint, env.block_number)
    statuses = list(SHARD_STATUS.get(env.state, shard) or [])
    for i, existing in enumerate(statuses):
        if existing.signer == signer:
            statuses[i] = status
            break
    else:
        statuses.append(status)
    if len(statuses) > MAX_SHARD_STATUS_SIGNER_COUNT:
        raise ERR_TOO_MANY_ENCLAVES.error(f"at most {MAX_SHARD_STATUS_SIGNER_COUNT} per shard")
    SHARD_STATUS.insert(env.state, shard, statuses)


def sovereign_enclave_of_shard(env: CallEnv, signer: bytes, shard: bytes) -> teerex.SgxEnclave:
    """The registered enclave `signer`, if its fingerprint may serve `shard` (touching it)."""
    enclave = teerex.sovereign_enclave(env.state, signer)
    config = maybe_updated_shard_config(env, shard, apply_due_update=True)
    expected = config.enclave_fingerprint if config is not None else shard
    if enclave.mr_enclave != expected:
        raise ERR_WRONG_FINGERPRINT_FOR_SHARD.error(
            f"enclave 0x{enclave.mr_enclave.hex()} may not serve shard 0x{shard.hex()}"
        )
    touch_shard(env, shard, signer, enclave.mr_enclave)
    return enclave


# --- calls --------------------------------------------------------------------------------------


def invoke(env: CallEnv, origin: Origin, request: Request) -> None:
    ensure_signed(origin)
    env.deposit_event(EV_INDIRECT_INVOCATION_REGISTERED, bytes(request.shard))


def confirm_processed_parentchain_block(
    env: CallEnv,
    origin: Origin,
    shard: bytes,
    block_hash: bytes,
    block_number: int,
    trusted_calls_merkle_root: bytes,
) -> None:
    sender = ensure_signed(origin)
    sovereign_enclave_of_shard(env, sender, shard)
    env.deposit_event(
        EV_PROCESSED_PARENTCHAIN_BLOCK, shard, block_hash, trusted_calls_merkle_root, block_number
    )


def shield_funds(
    env: CallEnv, origin: Origin, shard: bytes, incognito_account_encrypted: bytes, amount: int
) -> None:
    sender = ensure_signed(origin)
    balances.transfer(env, sender, vault_account(shard), amount, keep_alive=False)
    env.deposit_event(EV_SHIELD_FUNDS, shard, incognito_account_encrypted, amount)


def unshield_funds(
    env: CallEnv,
    origin: Origin,
    shard: bytes,
    beneficiary: bytes,
    amount: int,
    call_hash: bytes,
) -> None:
    sender = ensure_signed(origin)
    sovereign_enclave_of_shard(env, sender, shard)
    if not EXECUTED_UNSHIELD_CALLS.contains(env.state, call_hash):
        balances.transfer(env, vault_account(shard), beneficiary, amount, keep_alive=False)
        EXECUTED_UNSHIELD_CALLS.insert(env.state, call_hash, 0)
        env.deposit_event(EV_UNSHIELDED_FUNDS, shard, beneficiary, amount)
    confirmations = EXECUTED_UNSHIELD_CALLS.value(env.state, call_hash)
    EXECUTED_UNSHIELD_CALLS.insert(env.state, call_hash, confirmations + 1)


def publish_hash(
    env: CallEnv, origin: Origin, hash: bytes, extra_topics: list[bytes], data: bytes
) -> None:
    sender = ensure_signed(origin)
    enclave = teerex.sovereign_enclave(env.state, sender)
    fingerprint = enclave.mr_enclave
    touch_shard(env, fingerprint, sender, fingerprint)
    if len(extra_topics) > TOPICS_LIMIT:
        raise ERR_TOO_MANY_TOPICS.error(f"{len(extra_topics)} > {TOPICS_LIMIT}")
    if len(data) > DATA_LENGTH_LIMIT:
        raise ERR_DATA_TOO_LONG.error(f"{len(data)} > {DATA_LENGTH_LIMIT} bytes")
    env.deposit_event(
        EV_PUBLISHED_HASH, fingerprint, hash, data, topics=[*extra_topics, fingerprint]
    )


def update_shard_config(
    env: CallEnv, origin: Origin, shard: bytes, shard_config: ShardConfig, enactment_delay: int
) -> None:
    sender = ensure_signed_or_root(origin)
    old = maybe_updated_shard_config(env, shard, apply_due_update=False)
    if sender is not None:
        enclave = teerex.sovereign_enclave(env.state, sender)
        if old is not None and old.enclave_fingerprint != enclave.mr_enclave:
            raise ERR_WRONG_FINGERPRINT_FOR_SHARD.error(
                f"shard 0x{shard.hex()} is served by 0x{old.enclave_fingerprint.hex()}"
            )
        touch_shard(env, shard, sender, enclave.mr_enclave)
    if old is None:
        new = UpgradableShardConfig(shard_config)
    else:
        upgrade_at = min(env.block_number + enactment_delay, (1 << 32) - 1)
        new = replace(
            UpgradableShardConfig(old), pending_upgrade=shard_config, upgrade_at=upgrade_at
        )
    SHARD_CONFIG_REGISTRY.insert(env.state, shard, new)
    env.deposit_event(EV_SHARD_CONFIG_UPDATED, shard)


def purge_enclave_from_shard_status(
    env: CallEnv, origin: Origin, shard: bytes, subject: bytes
) -> None:
    ensure_root(origin)
    statuses = SHARD_STATUS.get(env.state, shard)
    if statuses is None:
        raise ERR_SHARD_NOT_FOUND.error(f"0x{shard.hex()}")
    SHARD_STATUS.insert(env.state, shard, [s for s in statuses if s.signer != subject])
    env.deposit_event(EV_PURGED_ENCLAVE_FROM_SHARD_CONFIG, shard, subject)


_SHARD_ARG = Field("shard", H256_T, "ShardIdentifier")

PALLET = PalletDef(
    NAME,
    calls=(
        CallDef(
            0,
            "invoke",
            (Field("request", REQUEST_T, "Request"),),
            invoke,
            Weight(50_000_000, 0),
        ),
        CallDef(
            1,
            "confirm_processed_parentchain_block",
            (
                _SHARD_ARG,
                Field("block_hash", H256_T, "H256"),
                Field("block_number", BLOCK_NUMBER_T, "T::BlockNumber"),
                Field("trusted_calls_merkle_root", H256_T, "H256"),
            ),
            confirm_processed_parentchain_block,
            Weight(100_000_000, 3_500),
            docs=(" The worker confirms every processed parentchain block.",),
        ),
        CallDef(
            2,
            "shield_funds",
            (
                _SHARD_ARG,
                Field("incognito_account_encrypted", BYTES_T, "Vec<u8>"),
                Field("amount", BALANCE_T, "BalanceOf<T>"),
            ),
            shield_funds,
            Weight(150_000_000, 3_600),
            docs=(" Move funds into the shard's vault (the shard id as an account).",),
        ),
        CallDef(
            3,
            "unshield_funds",
            (
                _SHARD_ARG,
                Field("beneficiary", ACCOUNT_ID_T, "T::AccountId"),
                Field("amount", BALANCE_T, "BalanceOf<T>"),
                Field("call_hash", H256_T, "H256"),
            ),
            unshield_funds,
            Weight(200_000_000, 7_000),
            docs=(" Sent by enclaves only; pays out of the vault once per call_hash.",),
        ),
        CallDef(
            4,
            "publish_hash",
            (
                Field("hash", H256_T, "H256"),
                Field("extra_topics", SequenceOf(H256_T), "Vec<T::Hash>"),
                Field("data", BYTES_T, "Vec<u8>"),
            ),
            publish_hash,
            Weight(60_000_000, 3_500),
        ),
        CallDef(
            5,
            "update_shard_config",
            (
                _SHARD_ARG,
                Field("shard_config", SHARD_CONFIG_T, "ShardConfig<T::AccountId>"),
                Field("enactment_delay", BLOCK_NUMBER_T, "T::BlockNumber"),
            ),
            update_shard_config,
            Weight(60_000_000, 3_500),
        ),
        CallDef(
            6,
            "purge_enclave_from_shard_status",
            (_SHARD_ARG, Field("subject", ACCOUNT_ID_T, "T::AccountId")),
            purge_enclave_from_shard_status,
            Weight(50_000_000, 3_500),
        ),
    ),
    events=(
        EV_INDIRECT_INVOCATION_REGISTERED,
        EV_SHIELD_FUNDS,
        EV_UNSHIELDED_FUNDS,
        EV_PROCESSED_PARENTCHAIN_BLOCK,
        EV_PUBLISHED_HASH,
        EV_SHARD_CONFIG_UPDATED,
        EV_PURGED_ENCLAVE_FROM_SHARD_CONFIG,
    ),
    errors=(
        ERR_WRONG_FINGERPRINT_FOR_SHARD,
        ERR_TOO_MANY_TOPICS,
        ERR_DATA_TOO_LONG,
        ERR_TOO_MANY_ENCLAVES,
        ERR_ENCLAVE_NOT_FOUND_IN_SHARD_STATUS,
        ERR_SHARD_NOT_FOUND,
    ),
    storage=(SHARD_STATUS, SHARD_CONFIG_REGISTRY, EXECUTED_UNSHIELD_CALLS),
    crate="pallet_enclave_bridge",
)
