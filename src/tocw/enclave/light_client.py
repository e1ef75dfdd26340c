"""The parentchain light client: which blocks the enclave accepts, and in which order.

Owns `LightClientState` (the last imported header, the GRANDPA authority set and any pending
set change; persisted with every block commit by the state store) and `validate_block`, a pure
function from (state, block) to the next state that raises a LightClientError naming the first
check that failed:

1. the header's number is the last imported number + 1 (BlockNumberMismatchError);
2. its parent hash is the last imported block's hash (ParentHashMismatchError);
3. the body hashes to the header's extrinsics_root (ExtrinsicsRootMismatchError);
4. events handed in with the block are proven against its state root (EventsProofError);
5. a GRANDPA justification, if present, finalizes this block under the current authority set,
   and a block that enacts an authority set change must carry one (JustificationError).

What it trusts: the first header (the checkpoint handed to `init_parentchain`, normally the
genesis, as Integritee's light client does) and, if given, the authority set at that header.
Without an authority set, headers are only linked, not proven final (justifications are then
not checked): the host could feed a fork, which is why a worker on a real network should pass
the set. With a set, blocks between justifications are executed on the strength of their link
to the last justified one, as Integritee's light client imports unjustified headers.

Authority set changes announced in header digests (ScheduledChange / ForcedChange under engine
b"FRNK") are enacted when the announcing block + delay is imported: that block is still
justified by the old set, blocks after it by the new set (set_id + 1), as in Substrate.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tocw.enclave.errors import (
    BlockNumberMismatchError,
    EventsProofError,
    ExtrinsicsRootMismatchError,
    JustificationError,
    LightClientError,
    ParentHashMismatchError,
)
from tocw.primitives.errors import PrimitivesError
from tocw.primitives.grandpa import (
    AUTHORITY_LIST,
    GRANDPA_ENGINE_ID,
    AuthorityList,
    ForcedChange,
    ScheduledChange,
    decode_and_verify_justification,
    grandpa_logs,
)
from tocw.primitives.hashing import storage_prefix
from tocw.primitives.header import Header, SignedBlock, extrinsics_root
from tocw.primitives.scale import H256, U32, U64, Codec, Mapped, Option, struct
from tocw.primitives.trie import verify_proof
from tocw.primitives.types import MAX_U32, BlockHash, BlockNumber, Moment, to_hex

SYSTEM_EVENTS_KEY = storage_prefix("System", "Events")
NO_TIMESTAMP = Moment(0)  # before the first Timestamp.set


@dataclass(frozen=True, slots=True)
class AuthoritySet:
    """A GRANDPA voter set and its id (the set_id precommits are signed under)."""

    set_id: int
    authorities: AuthorityList


@dataclass(frozen=True, slots=True)
class PendingChange:
    """An announced authority set change, enacted once block `enact_at` is imported."""

    enact_at: BlockNumber
    authorities: AuthorityList


@dataclass(frozen=True, slots=True)
class LightClientState:
    """Everything the light client knows; what `validate_block` maps to the next state.

    checkpoint: number of the trusted header the client started from (its own extrinsics are
        never executed: start from the genesis, or before any shard's creation block).
    last_justified: the last block a verified justification proved final (checkpoint before).
    head_timestamp: the parentchain time (ms) of the latest block that carried Timestamp.set,
        which calls in blocks without one run at; set by the block import, not checked here.
    """

    genesis_hash: BlockHash
    checkpoint: BlockNumber
    head_hash: BlockHash
    head_number: BlockNumber
    grandpa: AuthoritySet | None
    pending: PendingChange | None
    last_justified: BlockNumber
    head_timestamp: Moment = NO_TIMESTAMP

    @staticmethod
    def from_checkpoint(
        header: Header,
        genesis_hash: BlockHash | None = None,
        authorities: AuthorityList | None = None,
        set_id: int = 0,
    ) -> LightClientState:
        """Trust `header` (the genesis unless `genesis_hash` says otherwise) as the start."""
        head = header.hash()
        if genesis_hash is None:
            if header.number != 0:
                raise LightClientError("a checkpoint other than block 0 needs the genesis hash")
            genesis_hash = head
        grandpa = None
        if authorities is not None:
            if not authorities:
                raise LightClientError("an empty GRANDPA authority set cannot finalize anything")
            grandpa = AuthoritySet(set_id, tuple((bytes(k), int(w)) for k, w in authorities))
        return LightClientState(
            BlockHash(bytes(genesis_hash)),
            header.number,
            head,
            header.number,
            grandpa,
            None,
            header.number,
        )

    def encode(self) -> bytes:
        return LIGHT_CLIENT_STATE_CODEC.encode(self)

    @staticmethod
    def decode(data: bytes) -> LightClientState:
        return LIGHT_CLIENT_STATE_CODEC.decode(data)


_HASH: Codec[BlockHash] = Mapped(H256, BlockHash, bytes)
_NUMBER: Codec[BlockNumber] = Mapped(U32, BlockNumber, int)
_AUTHORITIES: Codec[AuthorityList] = AUTHORITY_LIST
LIGHT_CLIENT_STATE_CODEC: Codec[LightClientState] = struct(
    LightClientState,
    genesis_hash=_HASH,
    checkpoint=_NUMBER,
    head_hash=_HASH,
    head_number=_NUMBER,
    grandpa=Option(struct(AuthoritySet, set_id=U64, authorities=_AUTHORITIES)),
    pending=Option(struct(PendingChange, enact_at=_NUMBER, authorities=_AUTHORITIES)),
    last_justified=_NUMBER,
    head_timestamp=Mapped(U64, Moment, int),
)


@dataclass(frozen=True, slots=True)
class ParentchainBlock:
    """One block as the host hands it to the enclave.

    signed: the block with its justifications, as `chain_getBlock` returns it.
    events: SCALE(Vec<EventRecord>) of System.Events at this block, when the indirect-call
        executor needs them (to see which extrinsics succeeded); then `events_proof` must be
        the `state_getReadProof` nodes proving them against the header's state root.
    """

    signed: SignedBlock
    events: bytes | None = None
    events_proof: tuple[bytes, ...] = ()

    @property
    def header(self) -> Header:
        return self.signed.block.header

    @property
    def extrinsics(self) -> tuple[bytes, ...]:
        return self.signed.block.extrinsics

    def hash(self) -> BlockHash:
        return self.header.hash()


def validate_block(state: LightClientState, block: ParentchainBlock) -> LightClientState:
    """The next light-client state after `block`; LightClientError if it must be refused."""
    header = block.header
    if header.number != state.head_number + 1:
        raise BlockNumberMismatchError(
            f"block #{header.number} does not follow the last imported block #{state.head_number}"
        )
    if header.parent_hash != state.head_hash:
        raise ParentHashMismatchError(
            f"block #{header.number} has parent {to_hex(header.parent_hash)}, but the last "
            f"imported block is {to_hex(state.head_hash)}"
        )
    computed = extrinsics_root(block.extrinsics)
    if computed != header.extrinsics_root:
        raise ExtrinsicsRootMismatchError(
            f"block #{header.number}: body hashes to {to_hex(computed)}, header says "
            f"{to_hex(header.extrinsics_root)}"
        )
    validate_events(block)
    block_hash = header.hash()
    return _apply_finality(state, block, block_hash)


def validate_events(block: ParentchainBlock) -> None:
    """Events handed in with a block must be exactly what its state root holds."""
    if block.events is None:
        if block.events_proof:
            raise EventsProofError("an events proof was given without events")
        return
    try:
        proven = verify_proof(block.header.state_root, block.events_proof, [SYSTEM_EVENTS_KEY])
    except PrimitivesError as e:
        raise EventsProofError(f"block #{block.header.number}: events proof invalid: {e}") from None
    if proven.get(SYSTEM_EVENTS_KEY) != block.events:
        raise EventsProofError(
            f"block #{block.header.number}: the events do not match the proven System.Events"
        )


def _apply_finality(
    state: LightClientState, block: ParentchainBlock, block_hash: BlockHash
) -> LightClientState:
    header = block.header
    number = header.number
    justification = block.signed.justification(GRANDPA_ENGINE_ID)
    grandpa = state.grandpa
    pending = state.pending
    last_justified = state.last_justified

    if grandpa is not None and justification is not None:
        try:
            decode_and_verify_justification(
                justification, block_hash, number, grandpa.authorities, grandpa.set_id
            )
        except PrimitivesError as e:
            raise JustificationError(
                f"block #{number}: GRANDPA justification does not verify against set "
                f"{grandpa.set_id}: {e}"
            ) from None
        last_justified = number

    if grandpa is not None:
        try:
            logs = grandpa_logs(header)
        except PrimitivesError as e:
            raise JustificationError(f"block #{number}: unreadable GRANDPA digest: {e}") from None
        for log in logs:
            change = log.change if isinstance(log, ForcedChange) else log
            if isinstance(change, ScheduledChange):
                if pending is not None:
                    raise JustificationError(
                        f"block #{number} announces an authority set change while the one "
                        f"enacted at #{pending.enact_at} is still pending"
                    )
                enact_at = number + change.delay
                if enact_at > MAX_U32:
                    raise JustificationError(f"block #{number}: change delay out of range")
                pending = PendingChange(BlockNumber(enact_at), change.next_authorities)
        if pending is not None and pending.enact_at == number:
            if justification is None:
                raise JustificationError(
                    f"block #{number} enacts a GRANDPA authority set change and carries no "
                    "justification: refusing to switch sets on an unproven block"
                )
            grandpa = AuthoritySet(grandpa.set_id + 1, pending.authorities)
            pending = None

    return replace(
        state,
        head_hash=block_hash,
        head_number=number,
        grandpa=grandpa,
        pending=pending,
        last_justified=last_justified,
    )
