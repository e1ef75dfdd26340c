"""The enclave's ECALL-like API: the one narrow surface the untrusted host drives it through.

Owns `EnclaveApi` (the Protocol the worker codes against, as Integritee's `enclave-api`
traits) and `Enclave`, its implementation: keys and sealing (keys.py), attestation
(attestation.py), the encrypted state store (state_store.py), the parentchain light client
(light_client.py), the indirect-call hook (indirect_calls.py), the extrinsics the enclave
signs (extrinsics.py) and shielding-key provisioning between workers (provisioning.py), wired
together. Everything the enclave needs from the outside world
comes through `OCallApi` (ocall.py); nothing secret is returned by any method here.

Block import, per block, reads top-down:

    import_parentchain_blocks
      validate_block            light client: number, parent, extrinsics root, events, GRANDPA
      decode extrinsics         with the chain's metadata; Timestamp.set -> the STF clock
      per active shard          timestamp_set, then the indirect-call executor (the hook)
      compose + sign            confirm_processed_parentchain_block, unshield_funds
      commit_block              state changes + block record + light client, one transaction
      submit_extrinsics         OCALL, only after the commit (tocw confirms executed blocks)

A block that fails any step raises a typed EnclaveError and leaves nothing of itself behind
(neither on disk nor in memory); earlier blocks of the same batch stay committed.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, TypeVar

from tocw.enclave.errors import (
    EnclaveError,
    EnclaveUsageError,
    ExtrinsicCompositionError,
    GetterDecodeError,
    GetterError,
    GetterSignatureError,
    IndirectCallError,
    ParentchainDecodeError,
    ShardExistsError,
    UnknownShardError,
)
from tocw.enclave.extrinsics import (
    ChainCall,
    ParentchainInfo,
    confirm_processed_block_call,
    register_enclave_call,
    sign_calls,
    unshield_funds_call,
    update_shard_config_call,
)
from tocw.enclave.indirect_calls import (
    BlockContext,
    IndirectCallExecutor,
    IndirectCallReport,
    ParentchainIndirectCalls,
    ShardContext,
)
from tocw.enclave.keys import (
    EnclaveKeys,
    NoShieldingKeyError,
    create_shielding_key,
    load_or_create_keys,
    store_shielding_key,
)
from tocw.enclave.light_client import LightClientState, ParentchainBlock, validate_block
from tocw.enclave.measurement import trusted_code_paths
from tocw.enclave.ocall import OCallApi
from tocw.enclave.provisioning import (
    ProvisioningSession,
    Role,
    SessionContext,
    new_session,
)
from tocw.enclave.sealing import Sealer
from tocw.enclave.state_store import DEFAULT_HISTORY, BlockRecord, StateStore
from tocw.primitives.errors import PrimitivesError
from tocw.primitives.extrinsic import DecodedExtrinsic, decode_extrinsic
from tocw.primitives.grandpa import AuthorityList
from tocw.primitives.header import DigestRuntimeEnvironmentUpdated, Header
from tocw.primitives.metadata import RuntimeMetadata
from tocw.primitives.shielding import ShieldingKey
from tocw.primitives.trusted import ParentchainId, TimestampSet
from tocw.primitives.types import (
    MAX_U32,
    AccountId,
    BlockHash,
    BlockNumber,
    Moment,
    MrEnclave,
    ShardId,
)
from tocw.stf.errors import (
    InvalidSignatureError,
    OperationDecodeError,
    StfBuildError,
    StfError,
    UnsupportedOperationError,
)
from tocw.stf.executor import Stf
from tocw.stf.registry import build_stf
from tocw.stf.state import State, StateView
from tocw.stf.types import DEV_ROOT_ACCOUNT, CallEnv, UnshieldEffect
from tocw.tee.attestation import Attestation, report_data
from tocw.tee.base import Evidence, TeeBackend
from tocw.tee.errors import TeeError
from tocw.tee.sim import measure_sources

logger = logging.getLogger(__name__)

T = TypeVar("T")

STATE_DB_NAME = "state.db"


@dataclass(frozen=True, slots=True)
class ImportedBlock:
    """What importing one block did: its identity, every shard's new state root, and the
    extrinsics the enclave signed and handed to the host for it (already submitted)."""

    number: BlockNumber
    hash: BlockHash
    state_roots: list[tuple[ShardId, bytes]]
    extrinsics: tuple[bytes, ...]
    reports: tuple[tuple[ShardId, IndirectCallReport], ...] = ()


@dataclass(frozen=True, slots=True)
class StateRootInfo:
    """tocw_getStateRoot: the last processed block and the shard's state root after it."""

    block_number: BlockNumber
    block_hash: BlockHash
    state_root: bytes


class EnclaveApi(Protocol):
    """The ECALL-like surface (what the worker's host may ask of the enclave)."""

    @property
    def tee_name(self) -> str: ...

    @property
    def is_secure(self) -> bool: ...

    def mrenclave(self) -> MrEnclave: ...

    def signer_account(self) -> AccountId: ...

    def shielding_public_key_json(self) -> str: ...

    def has_shielding_key(self) -> bool: ...

    def create_shielding_key(self) -> None: ...

    def attestation(self) -> Attestation: ...

    def tls_certificate(self) -> bytes: ...

    def tls_server_context(self) -> ssl.SSLContext: ...

    def init_parentchain(
        self,
        checkpoint: Header,
        authorities: AuthorityList | None = None,
        set_id: int = 0,
        genesis_hash: BlockHash | None = None,
    ) -> tuple[BlockNumber, BlockHash]: ...

    def set_parentchain_info(self, info: ParentchainInfo) -> None: ...

    def set_nonce(self, nonce: int) -> None: ...

    def init_shard(
        self, shard: ShardId, creation_block: int, root_account: AccountId = ...
    ) -> None: ...

    def set_confirmations_from(self, shard: ShardId, block_number: int) -> None: ...

    def shards(self) -> list[ShardId]: ...

    def last_imported_block(self) -> tuple[BlockNumber, BlockHash] | None: ...

    def import_parentchain_blocks(
        self, blocks: Sequence[ParentchainBlock]
    ) -> list[ImportedBlock]: ...

    def execute_getter(self, shard: ShardId, getter: bytes) -> bytes | None: ...

    def state_root(self, shard: ShardId) -> StateRootInfo: ...

    def register_enclave_extrinsic(self, worker_url: str | None) -> bytes: ...

    def shard_config_extrinsic(self, shard: ShardId) -> bytes: ...

    def provisioning_server_session(
        self, *, collateral: bytes | str | None = None, now: int | None = None
    ) -> ProvisioningSession: ...

    def provisioning_client_session(
        self, shard: ShardId, *, collateral: bytes | str | None = None, now: int | None = None
    ) -> ProvisioningSession: ...

    def rollback(self, block_number: int) -> tuple[BlockNumber, BlockHash]: ...

    def close(self) -> None: ...


def _check_32(value: object, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != 32:
        raise EnclaveUsageError(f"{what} must be 32 bytes")


class Enclave:
    """The trusted side of a worker. Create it with `Enclave.init`; thread-safe (one lock)."""

    def __init__(
        self,
        *,
        backend: TeeBackend,
        ocall: OCallApi,
        stf: Stf,
        keys: EnclaveKeys,
        sealer: Sealer,
        store: StateStore,
        executor: IndirectCallExecutor,
    ) -> None:
        """Use `Enclave.init`; this only wires already-opened parts together."""
        self._backend = backend
        self._ocall = ocall
        self._stf = stf
        self._keys = keys
        self._sealer = sealer
        self._store = store
        self._executor = executor
        self._mrenclave = MrEnclave(bytes(backend.measurement()))
        self._lock = threading.RLock()
        self._attestation: Attestation | None = None
        self._states: dict[ShardId, State] = {}
        self._info: ParentchainInfo | None = None
        self._metadata: RuntimeMetadata | None = None
        self._metadata_stale_after: BlockNumber | None = None
        self._nonce: int | None = None
        self._confirm_from: dict[ShardId, BlockNumber] = {}
        head = store.head()
        self._lc: LightClientState | None = None
        if head is not None:
            try:
                self._lc = LightClientState.decode(head.light_client)
            except PrimitivesError as e:
                raise EnclaveError(f"stored light-client state is malformed: {e}") from None

    @classmethod
    def init(
        cls,
        data_dir: Path,
        backend: TeeBackend,
        modules: Sequence[str],
        ocall: OCallApi,
        *,
        executor: IndirectCallExecutor | None = None,
        history: int = DEFAULT_HISTORY,
        create_shielding_key: bool = True,
    ) -> Enclave:
        """Start the enclave: check the backend measures this code, load or create the keys,
        open the state. `executor` runs indirect calls (ParentchainIndirectCalls if None).

        create_shielding_key=False is for a worker joining a shard that exists: the enclave
        starts without a shielding key (unless it sealed one before) and gets the shard's key
        from another worker (provisioning_client_session).
        """
        try:
            stf = build_stf(modules)
        except StfBuildError as e:
            raise EnclaveUsageError(f"cannot build the STF: {e}") from None
        try:
            if backend.name == "sim":
                expected = measure_sources(trusted_code_paths(modules))
                if backend.measurement() != expected:
                    raise EnclaveUsageError(
                        "the sim backend measured other code than this enclave with modules "
                        f"{list(modules)} (build it with tocw.enclave.measurement.sim_backend)"
                    )
            sealer = Sealer(backend.sealing_key())
        except TeeError as e:
            raise EnclaveError(f"TEE backend {backend.name}: {e}") from e
        keys = load_or_create_keys(ocall, sealer, create_shielding_key=create_shielding_key)
        data_dir = Path(data_dir)
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        store = StateStore(data_dir / STATE_DB_NAME, keys.state_key, history=history)
        try:
            enclave = cls(
                backend=backend,
                ocall=ocall,
                stf=stf,
                keys=keys,
                sealer=sealer,
                store=store,
                executor=executor or ParentchainIndirectCalls(),
            )
        except BaseException:
            store.close()
            raise
        if not backend.is_secure:
            logger.warning("enclave running on the %s backend: NOT SECURE", backend.name)
        logger.info(
            "enclave initialised mrenclave=0x%s signer=%s modules=%s%s",
            enclave._mrenclave.hex(),
            keys.signer.ss58_address,
            ",".join(stf.module_names),
            "" if keys.shielding is not None else " (no shielding key yet)",
        )
        return enclave

    def close(self) -> None:
        with self._lock:
            self._store.close()

    def __enter__(self) -> Enclave:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- identity -------------------------------------------------------------------------------

    @property
    def tee_name(self) -> str:
        return self._backend.name

    @property
    def is_secure(self) -> bool:
        return self._backend.is_secure

    @property
    def stf(self) -> Stf:
        return self._stf

    def mrenclave(self) -> MrEnclave:
        return self._mrenclave

    def signer_account(self) -> AccountId:
        return self._keys.signer.account_id

    def shielding_public_key_json(self) -> str:
        """The shielding key clients encrypt to; NoShieldingKeyError before provisioning."""
        return self._shielding_key().public_key().to_json()

    def has_shielding_key(self) -> bool:
        """False while a joining enclave waits for the shard's key."""
        return self._keys.shielding is not None

    def create_shielding_key(self) -> None:
        """Generate and seal a new shielding key: what the first worker of a new shard does.

        A host opens its enclave without creating one (`create_shielding_key=False`) until it
        knows whether its shard exists on chain: a worker joining an existing shard must get
        that shard's key instead (provisioning), never make its own, or clients' ciphertexts
        would split between two keys. Refuses when the enclave already holds a key.
        """
        with self._lock:
            if self._keys.shielding is not None:
                raise EnclaveUsageError("this enclave already holds a shielding key")
            key = create_shielding_key(self._ocall, self._sealer)
            self._keys = replace(self._keys, shielding=key)
            self._attestation = None  # it binds the shielding key: make it anew
        logger.info("shielding key generated and sealed: %s", key.public_key())

    def _shielding_key(self) -> ShieldingKey:
        key = self._keys.shielding
        if key is None:
            raise NoShieldingKeyError(
                "this enclave holds no shielding key yet: it joins a shard and must get the "
                "key from one of the shard's workers (provisioning)"
            )
        return key

    def tls_certificate(self) -> bytes:
        """DER of the self-signed certificate the trusted RPC serves."""
        return self._keys.tls.certificate_der

    def tls_server_context(self) -> ssl.SSLContext:
        """A TLS server context for the trusted RPC; the key stays inside it."""
        return self._keys.tls.server_context()

    def attestation(self) -> Attestation:
        """Evidence binding the signer, the shielding key and the TLS key (attestation.py).

        An enclave still waiting for its shielding key binds the empty string in its place
        (what registering on chain before provisioning needs); clients cannot use such a
        worker anyway, since it serves no key, and the attestation is renewed once it has one.
        """
        with self._lock:
            if self._attestation is None:
                key = self._keys.shielding
                data = report_data(
                    self._keys.signer.public_key,
                    key.public_key().to_json() if key is not None else "",
                    self._keys.tls.public_key_der(),
                )
                try:
                    evidence = self._backend.report(data)
                except TeeError as e:
                    raise EnclaveError(f"TEE backend {self._backend.name}: {e}") from e
                self._attestation = Attestation(evidence.kind, self._mrenclave, data, evidence.data)
            return self._attestation

    # -- parentchain setup ----------------------------------------------------------------------

    def init_parentchain(
        self,
        checkpoint: Header,
        authorities: AuthorityList | None = None,
        set_id: int = 0,
        genesis_hash: BlockHash | None = None,
    ) -> tuple[BlockNumber, BlockHash]:
        """Start following a parentchain from a trusted header (normally its genesis).

        Idempotent across restarts: if the enclave already follows the chain with this genesis
        it keeps its stored light client and returns the last imported block.
        """
        with self._lock:
            genesis = genesis_hash if genesis_hash is not None else checkpoint.hash()
            if self._lc is not None:
                if self._lc.genesis_hash != genesis:
                    ours = self._lc.genesis_hash.hex()
                    raise EnclaveUsageError(
                        f"the enclave follows the chain with genesis 0x{ours}, "
                        f"not 0x{bytes(genesis).hex()}"
                    )
                return self._lc.head_number, self._lc.head_hash
            try:
                lc = LightClientState.from_checkpoint(checkpoint, genesis_hash, authorities, set_id)
            except PrimitivesError as e:
                raise EnclaveUsageError(f"invalid light-client checkpoint: {e}") from None
            for shard in self._store.shards():
                created = self._store.shard_record(shard).creation_block
                if created < lc.checkpoint:
                    raise EnclaveUsageError(
                        f"shard 0x{shard.hex()} was created at block {created}, before the "
                        f"checkpoint {lc.checkpoint}: its calls would be missed"
                    )
            if self._info is not None and self._info.genesis_hash != lc.genesis_hash:
                raise EnclaveUsageError("parentchain info names another genesis hash")
            self._store.commit_block(lc.head_number, lc.head_hash, lc.encode(), {})
            self._lc = lc
            logger.info(
                "light client initialised at block %d 0x%s (grandpa %s)",
                lc.head_number,
                lc.head_hash.hex(),
                "on" if lc.grandpa else "off",
            )
            return lc.head_number, lc.head_hash

    def set_parentchain_info(self, info: ParentchainInfo) -> None:
        """Chain facts for decoding blocks and signing extrinsics (again after an upgrade)."""
        _check_32(info.genesis_hash, "genesis hash")
        try:
            metadata = RuntimeMetadata.from_bytes(info.metadata)
        except PrimitivesError as e:
            raise EnclaveUsageError(f"parentchain metadata does not decode: {e}") from None
        with self._lock:
            if self._lc is not None and self._lc.genesis_hash != info.genesis_hash:
                raise EnclaveUsageError(
                    f"parentchain info is for genesis 0x{bytes(info.genesis_hash).hex()}, the "
                    f"enclave follows 0x{self._lc.genesis_hash.hex()}"
                )
            self._info = info
            self._metadata = metadata
            self._metadata_stale_after = None

    def set_nonce(self, nonce: int) -> None:
        """The next nonce of the enclave's account on the parentchain (as Integritee's ECALL)."""
        if not isinstance(nonce, int) or not 0 <= nonce <= MAX_U32:
            raise EnclaveUsageError(f"nonce {nonce!r} is not a u32")
        with self._lock:
            self._nonce = nonce

    def init_shard(
        self,
        shard: ShardId,
        creation_block: int,
        root_account: AccountId = DEV_ROOT_ACCOUNT,
    ) -> None:
        """Serve `shard`, executing its calls from parentchain block `creation_block` on.

        Idempotent for the same (creation block, root); the blocks from the creation block on
        must still be ahead of the light client, or the shard's history would be incomplete.
        """
        _check_32(shard, "shard")
        _check_32(root_account, "root account")
        with self._lock:
            if self._store.has_shard(shard):
                record = self._store.shard_record(shard)
                if (record.creation_block, record.root_account) != (creation_block, root_account):
                    raise ShardExistsError(
                        f"shard 0x{shard.hex()} exists with creation block "
                        f"{record.creation_block} and another configuration"
                    )
                return
            lc = self._lc
            if lc is not None and creation_block <= lc.head_number:
                at_checkpoint = lc.head_number == lc.checkpoint and creation_block >= lc.checkpoint
                if not at_checkpoint:
                    raise EnclaveUsageError(
                        f"shard 0x{shard.hex()} was created at block {creation_block}, but the "
                        f"enclave already imported up to block {lc.head_number}; start a fresh "
                        "data dir to replay the shard from its creation block"
                    )
            self._store.add_shard(shard, creation_block, None, root_account)
            logger.info("shard 0x%s initialised (creation block %d)", shard.hex(), creation_block)

    def set_confirmations_from(self, shard: ShardId, block_number: int) -> None:
        """Sign `confirm_processed_parentchain_block` for `shard` only from `block_number` on.

        For a worker that joins a running shard and replays its history: the shard's other
        workers confirmed those blocks long ago, so confirming them again would only be a storm
        of late, fee-paying extrinsics (docs/multi-worker.md "Confirmations"). The blocks are
        still executed and their unshield_funds still sent (the pallet pays each once). Held in
        memory: the host sets it again at every start. The host could withhold confirmations
        anyway (it submits them), so trusting it with this costs nothing.
        """
        _check_32(shard, "shard")
        if not isinstance(block_number, int) or not 0 <= block_number <= MAX_U32:
            raise EnclaveUsageError(f"block number {block_number!r} is not a u32")
        with self._lock:
            self._confirm_from[shard] = BlockNumber(block_number)
        logger.info(
            "shard 0x%s: confirming parentchain blocks from #%d on", shard.hex(), block_number
        )

    def shards(self) -> list[ShardId]:
        return self._store.shards()

    def last_imported_block(self) -> tuple[BlockNumber, BlockHash] | None:
        with self._lock:
            if self._lc is None:
                return None
            return self._lc.head_number, self._lc.head_hash

    # -- block import ---------------------------------------------------------------------------

    def import_parentchain_blocks(self, blocks: Sequence[ParentchainBlock]) -> list[ImportedBlock]:
        """Import blocks in order, each committed on its own; the first bad one raises."""
        imported = []
        for block in blocks:
            with self._lock:
                imported.append(self._import_block(block))
        return imported

    def _import_block(self, block: ParentchainBlock) -> ImportedBlock:
        if self._lc is None:
            raise EnclaveUsageError("import before init_parentchain: no trusted checkpoint")
        lc = validate_block(self._lc, block)
        number = block.header.number
        extrinsics = self._decode_extrinsics(block)
        timestamp = _find_timestamp(extrinsics)
        if timestamp is not None:
            lc = replace(lc, head_timestamp=timestamp)
        context = None
        if self._metadata is not None:
            context = BlockContext(
                block, number, lc.head_hash, timestamp, self._metadata, extrinsics
            )
        calls: list[ChainCall] = []
        reports: list[tuple[ShardId, IndirectCallReport]] = []
        changes = {}
        try:
            for shard in self._store.shards():
                record = self._store.shard_record(shard)
                if record.creation_block > number:
                    continue
                if self._keys.shielding is None:
                    raise NoShieldingKeyError(
                        f"block #{number}: shard 0x{shard.hex()} is active but this enclave "
                        "holds no shielding key to decrypt its calls; provision it first"
                    )
                state = self._working_state(shard)
                env = CallEnv(
                    number,
                    lc.head_timestamp,
                    shard,
                    self._mrenclave,
                    self.signer_account(),
                    record.root_account,
                )
                if timestamp is not None:
                    self._apply_timestamp(state, env, timestamp)
                if context is not None:
                    shard_calls, shard_reports = self._execute_indirect_calls(
                        context, shard, state, env
                    )
                    calls += shard_calls
                    reports += [(shard, r) for r in shard_reports]
                if state.depth:
                    raise IndirectCallError(
                        f"block #{number}: the executor left {state.depth} transaction(s) open"
                    )
                changes[shard] = state.changes()
            signed = self._sign(calls)
            committed = self._store.commit_block(number, lc.head_hash, lc.encode(), changes)
        except BaseException:
            self._states.clear()  # working states are rebuilt from the committed store
            raise
        for state in self._states.values():
            state.checkpoint()
        self._lc = lc
        if signed:
            assert self._nonce is not None
            self._nonce += len(signed)
        if any(isinstance(d, DigestRuntimeEnvironmentUpdated) for d in block.header.digest):
            self._metadata_stale_after = number
        if signed:
            try:
                self._ocall.submit_extrinsics(signed)
            except Exception:
                # The block is committed: raising now would tell the host it failed. The
                # extrinsics are in the returned ImportedBlock for the host to resend.
                logger.exception(
                    "block %d: the host failed to take %d extrinsic(s)", number, len(signed)
                )
        logger.info(
            "imported block %d 0x%s: %d shard(s), %d extrinsic(s) sent",
            number,
            lc.head_hash.hex(),
            len(changes),
            len(signed),
        )
        for shard, report in reports:
            log = logger.info if report.executed else logger.warning
            log("block %d shard 0x%s: %s", number, shard.hex(), report.describe())
        return _imported(committed, tuple(signed), tuple(reports))

    def _decode_extrinsics(self, block: ParentchainBlock) -> tuple[DecodedExtrinsic, ...]:
        if not block.extrinsics:
            return ()
        number = block.header.number
        if self._metadata is None:
            raise EnclaveUsageError(
                f"block #{number} has extrinsics but no parentchain metadata was set "
                "(call set_parentchain_info first)"
            )
        if self._metadata_stale_after is not None:
            raise EnclaveUsageError(
                f"the runtime was upgraded in block #{self._metadata_stale_after}: pass the new "
                f"metadata (set_parentchain_info) before importing block #{number}"
            )
        decoded = []
        for index, raw in enumerate(block.extrinsics):
            try:
                decoded.append(decode_extrinsic(self._metadata, raw))
            except PrimitivesError as e:
                raise ParentchainDecodeError(
                    f"block #{number} extrinsic {index} does not decode with the parentchain "
                    f"metadata: {e}"
                ) from None
        return tuple(decoded)

    def _apply_timestamp(self, state: State, env: CallEnv, now: Moment) -> None:
        """The parentchain's Timestamp.set becomes the shard's clock (PROTOCOL.md
        timestamp_set), if the STF has a module that keeps one."""
        if TimestampSet not in self._stf.calls:
            return
        call = TimestampSet(env.enclave_account, now, ParentchainId.INTEGRITEE)
        outcome = self._stf.execute_enclave_call(state, call, env)
        if not outcome.success:
            logger.warning(
                "block %d shard 0x%s: timestamp_set(%d) failed: %s",
                env.block_number,
                env.shard.hex(),
                now,
                outcome.error,
            )

    def _execute_indirect_calls(
        self, context: BlockContext, shard: ShardId, state: State, env: CallEnv
    ) -> tuple[list[ChainCall], tuple[IndirectCallReport, ...]]:
        shard_context = ShardContext(shard, state, env, self._stf, self._shielding_key().decrypt)
        try:
            result = self._executor.execute_block(context, shard_context)
        except EnclaveError:
            raise
        except (StfError, PrimitivesError, ValueError, TypeError, KeyError) as e:
            raise IndirectCallError(
                f"block #{context.number} shard 0x{shard.hex()}: indirect-call execution "
                f"failed: {e}"
            ) from e
        calls = []
        for effect in result.effects:
            if not isinstance(effect, UnshieldEffect) or effect.shard != shard:
                raise IndirectCallError(
                    f"block #{context.number}: executor returned an effect for another shard"
                )
            calls.append(unshield_funds_call(effect))
        if result.confirm and context.number >= self._confirm_from.get(shard, 0):
            calls.append(
                confirm_processed_block_call(
                    shard, context.hash, context.number, result.trusted_calls_merkle_root()
                )
            )
        return calls, result.reports

    def _working_state(self, shard: ShardId) -> State:
        state = self._states.get(shard)
        if state is None:
            state = State(self._store.items(shard))
            self._states[shard] = state
        return state

    def _sign(self, calls: Sequence[ChainCall]) -> list[bytes]:
        if not calls:
            return []
        if self._info is None or self._metadata is None:
            raise ExtrinsicCompositionError("no parentchain info: call set_parentchain_info")
        if self._nonce is None:
            raise ExtrinsicCompositionError("the enclave account's nonce is unknown: set_nonce")
        return sign_calls(self._metadata, self._info, self._keys.signer, self._nonce, calls)

    # -- queries --------------------------------------------------------------------------------

    def execute_getter(self, shard: ShardId, getter: bytes) -> bytes | None:
        """SCALE of the getter's answer on the shard's last committed state, None for none."""
        with self._lock:
            if not self._store.has_shard(shard):
                raise UnknownShardError(f"unknown shard 0x{bytes(shard).hex()}")
            try:
                decoded = self._stf.decode_getter(getter)
            except OperationDecodeError as e:
                raise GetterDecodeError(str(e)) from None
            try:
                return self._stf.execute_getter(self._working_state(shard), decoded)
            except InvalidSignatureError as e:
                raise GetterSignatureError(str(e)) from None
            except UnsupportedOperationError as e:
                raise GetterError(str(e)) from None

    def query_state(self, shard: ShardId, query: Callable[[StateView], T]) -> T:
        """Run a read-only `query` on the shard's last committed state, under the lock.

        For trusted code inside the enclave package (the trusted RPC's module-defined methods);
        deliberately not part of EnclaveApi: the query sees the state in clear, so it must
        never be a function the host supplies.
        """
        with self._lock:
            if not self._store.has_shard(shard):
                raise UnknownShardError(f"unknown shard 0x{bytes(shard).hex()}")
            return query(self._working_state(shard))

    def state_root(self, shard: ShardId) -> StateRootInfo:
        with self._lock:
            head = self._store.head()
            if head is None:
                raise EnclaveUsageError("no parentchain block imported yet")
            return StateRootInfo(head.number, head.hash, self._store.state_root(shard))

    # -- shielding-key provisioning (provisioning.py) ---------------------------------------

    def provisioning_server_session(
        self, *, collateral: bytes | str | None = None, now: int | None = None
    ) -> ProvisioningSession:
        """A giver's side of one provisioning connection (the host's listener makes one per
        accepted connection). `collateral`: DCAP collateral to verify a hardware peer's quote
        (None in sim); `now`: unix seconds it must be valid at (None: the clock at the check).
        """
        return new_session(self._session_context(collateral, now), Role.GIVER)

    def provisioning_client_session(
        self, shard: ShardId, *, collateral: bytes | str | None = None, now: int | None = None
    ) -> ProvisioningSession:
        """A requester's side: get `shard`'s shielding key from a giver, seal it here."""
        _check_32(shard, "shard")
        if self._keys.shielding is not None:
            raise EnclaveUsageError("this enclave already holds a shielding key")
        return new_session(self._session_context(collateral, now), Role.REQUESTER, shard)

    def _session_context(self, collateral: bytes | str | None, now: int | None) -> SessionContext:
        def chain_view() -> tuple[LightClientState | None, RuntimeMetadata | None]:
            with self._lock:
                return self._lc, self._metadata

        def serves_shard(shard: ShardId) -> bool:
            with self._lock:
                return self._store.has_shard(shard)

        def report(data: bytes) -> Evidence:
            return self._backend.report(data)

        return SessionContext(
            mrenclave=self._mrenclave,
            signer_public_key=bytes(self._keys.signer.public_key),
            tls=self._keys.tls,
            report=report,
            allow_sim=self._backend.name == "sim",
            collateral=collateral,
            now=(lambda: now) if now is not None else (lambda: int(time.time())),
            serves_shard=serves_shard,
            shielding_key=lambda: self._keys.shielding,
            import_shielding_key=self._import_provisioned_shielding_key,
            chain_view=chain_view,
        )

    def _import_provisioned_shielding_key(self, key: ShieldingKey) -> None:
        """Seal the shard's key received from a giver; from now on this enclave serves it."""
        with self._lock:
            store_shielding_key(self._ocall, self._sealer, key)
            self._keys = replace(self._keys, shielding=key)
            self._attestation = None  # it binds the shielding key: make it anew
        logger.info("shielding key provisioned and sealed: %s", key.public_key())

    def rollback(self, block_number: int) -> tuple[BlockNumber, BlockHash]:
        """Return every shard and the light client to their state after a retained block.

        For recovering from a bad parentchain feed or an STF bug: the host then re-imports from
        the block after it. Re-imports reach the same states (the STF is deterministic), and any
        repeated confirmation or unshield is harmless on chain (unshield pays once per call).
        """
        with self._lock:
            record = self._store.rollback(block_number)
            self._states.clear()
            try:
                self._lc = LightClientState.decode(record.light_client)
            except PrimitivesError as e:
                raise EnclaveError(f"stored light-client state is malformed: {e}") from None
            logger.warning("rolled back to block %d 0x%s", record.number, record.hash.hex())
            return record.number, record.hash

    # -- extrinsics the host asks for -----------------------------------------------------------

    def register_enclave_extrinsic(self, worker_url: str | None) -> bytes:
        """Teerex.register_sgx_enclave for this enclave, signed with the next nonce."""
        attestation = self.attestation()
        with self._lock:
            [extrinsic] = self._sign([register_enclave_call(attestation, worker_url)])
            assert self._nonce is not None
            self._nonce += 1
            return extrinsic

    def shard_config_extrinsic(self, shard: ShardId) -> bytes:
        """EnclaveBridge.update_shard_config declaring this enclave's MRENCLAVE as the shard's
        fingerprint, signed with the next nonce (the first worker of a shard sends it)."""
        with self._lock:
            [extrinsic] = self._sign([update_shard_config_call(shard, self._mrenclave)])
            assert self._nonce is not None
            self._nonce += 1
            return extrinsic


def _find_timestamp(extrinsics: Sequence[DecodedExtrinsic]) -> Moment | None:
    """The `now` of the block's Timestamp.set inherent, if it has one."""
    for xt in extrinsics:
        if not xt.signed and (xt.call.pallet, xt.call.name) == ("Timestamp", "set"):
            now = xt.call.args.get("now")
            if isinstance(now, int):
                return Moment(now)
    return None


def _imported(
    record: BlockRecord,
    extrinsics: tuple[bytes, ...],
    reports: tuple[tuple[ShardId, IndirectCallReport], ...],
) -> ImportedBlock:
    return ImportedBlock(record.number, record.hash, list(record.state_roots), extrinsics, reports)
