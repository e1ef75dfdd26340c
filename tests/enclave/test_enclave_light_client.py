"""The light client: header linking, body root, events proofs, GRANDPA justifications."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tocw.enclave.api import Enclave
from tocw.enclave.errors import (
    BlockNumberMismatchError,
    EventsProofError,
    ExtrinsicsRootMismatchError,
    JustificationError,
    LightClientError,
    ParentHashMismatchError,
)
from tocw.enclave.light_client import (
    SYSTEM_EVENTS_KEY,
    LightClientState,
    ParentchainBlock,
    validate_block,
)
from tocw.enclave.measurement import sim_backend
from tocw.primitives.grandpa import (
    CONSENSUS_LOG,
    GRANDPA_ENGINE_ID,
    ScheduledChange,
    sign_justification,
)
from tocw.primitives.header import Block, DigestConsensus, Header, SignedBlock, extrinsics_root
from tocw.primitives.keys import Keypair, KeyScheme
from tocw.primitives.trie import generate_proof, trie_root
from tocw.primitives.types import BlockHash, BlockNumber, Moment, ShardId

GENESIS = Header(BlockHash(bytes(32)), BlockNumber(0), b"\x11" * 32, extrinsics_root([]))
VOTERS = [Keypair.from_uri(f"//Voter{i}", KeyScheme.ED25519) for i in range(3)]
NEW_VOTERS = [Keypair.from_uri(f"//NewVoter{i}", KeyScheme.ED25519) for i in range(4)]
AUTHORITIES = tuple((v.public_key, 1) for v in VOTERS)
NEW_AUTHORITIES = tuple((v.public_key, 1) for v in NEW_VOTERS)


def make_block(
    parent: Header,
    extrinsics: tuple[bytes, ...] = (),
    *,
    digest: tuple[Any, ...] = (),
    state_root: bytes = b"\x22" * 32,
    voters: list[Keypair] | None = None,
    set_id: int = 0,
    events: bytes | None = None,
    events_proof: tuple[bytes, ...] = (),
) -> ParentchainBlock:
    header = Header(
        parent.hash(),
        BlockNumber(parent.number + 1),
        state_root,
        extrinsics_root(extrinsics),
        digest,
    )
    justifications = None
    if voters is not None:
        justification = sign_justification(
            1, set_id, header.hash(), header.number, [(v.public_key, v.sign) for v in voters]
        )
        justifications = ((GRANDPA_ENGINE_ID, justification.encode()),)
    return ParentchainBlock(
        SignedBlock(Block(header, extrinsics), justifications), events, events_proof
    )


def with_header(block: ParentchainBlock, header: Header) -> ParentchainBlock:
    return ParentchainBlock(
        SignedBlock(Block(header, block.extrinsics), block.signed.justifications)
    )


def test_light_client_links_blocks() -> None:
    """Each block must follow the last one: number + 1 and the parent hash."""
    state = LightClientState.from_checkpoint(GENESIS)
    b1 = make_block(GENESIS, (b"\x04\x01\x02",))
    state = validate_block(state, b1)
    assert (state.head_number, state.head_hash) == (1, b1.hash())
    b2 = make_block(b1.header)
    h = b2.header
    with pytest.raises(BlockNumberMismatchError):
        validate_block(
            state,
            with_header(b2, Header(h.parent_hash, BlockNumber(3), h.state_root, h.extrinsics_root)),
        )
    with pytest.raises(ParentHashMismatchError):
        validate_block(
            state,
            with_header(b2, Header(GENESIS.hash(), h.number, h.state_root, h.extrinsics_root)),
        )
    with pytest.raises(BlockNumberMismatchError):
        validate_block(state, b1)  # a replay


def test_light_client_checks_extrinsics_root() -> None:
    """A body that does not hash to the header's extrinsics_root is refused."""
    state = LightClientState.from_checkpoint(GENESIS)
    block = make_block(GENESIS, (b"\x04\x01\x02",))
    tampered = ParentchainBlock(SignedBlock(Block(block.header, (b"\x04\x01\x03",))))
    with pytest.raises(ExtrinsicsRootMismatchError):
        validate_block(state, tampered)
    dropped = ParentchainBlock(SignedBlock(Block(block.header, ())))
    with pytest.raises(ExtrinsicsRootMismatchError):
        validate_block(state, dropped)


def test_light_client_events_must_be_proven() -> None:
    """Events handed in with a block must be what its state root holds under System.Events."""
    events = b"\x04" + b"\x01" * 40
    storage = {SYSTEM_EVENTS_KEY: events, b"other": b"x"}
    root = trie_root(storage)
    proof = tuple(generate_proof(storage, [SYSTEM_EVENTS_KEY]))
    state = LightClientState.from_checkpoint(GENESIS)
    ok = make_block(GENESIS, state_root=root, events=events, events_proof=proof)
    validate_block(state, ok)
    with pytest.raises(EventsProofError, match="do not match"):
        validate_block(
            state, make_block(GENESIS, state_root=root, events=events + b"!", events_proof=proof)
        )
    with pytest.raises(EventsProofError):
        validate_block(state, make_block(GENESIS, state_root=root, events=events, events_proof=()))
    with pytest.raises(EventsProofError):
        validate_block(
            state, make_block(GENESIS, state_root=b"\x33" * 32, events=events, events_proof=proof)
        )


def test_light_client_verifies_justifications() -> None:
    """A GRANDPA justification must finalize the block under the current authority set."""
    state = LightClientState.from_checkpoint(GENESIS, authorities=AUTHORITIES)
    good = make_block(GENESIS, voters=VOTERS)
    after = validate_block(state, good)
    assert after.last_justified == 1
    with pytest.raises(JustificationError):
        validate_block(state, make_block(GENESIS, voters=VOTERS[:1]))  # 1 of 3: no supermajority
    with pytest.raises(JustificationError):
        validate_block(state, make_block(GENESIS, voters=NEW_VOTERS))  # strangers
    with pytest.raises(JustificationError):
        validate_block(state, make_block(GENESIS, voters=VOTERS, set_id=1))  # wrong set id
    unjustified = validate_block(state, make_block(GENESIS))
    assert unjustified.last_justified == 0


def test_light_client_enacts_scheduled_authority_change() -> None:
    """A ScheduledChange switches sets after block announce+delay, which the old set justifies."""
    state = LightClientState.from_checkpoint(GENESIS, authorities=AUTHORITIES)
    change = DigestConsensus(
        GRANDPA_ENGINE_ID, CONSENSUS_LOG.encode(ScheduledChange(NEW_AUTHORITIES, BlockNumber(1)))
    )
    b1 = make_block(GENESIS, digest=(change,), voters=VOTERS)
    state = validate_block(state, b1)
    assert state.pending is not None and state.pending.enact_at == 2
    with pytest.raises(JustificationError, match="no justification"):
        validate_block(state, make_block(b1.header))
    b2 = make_block(b1.header, voters=VOTERS)
    state = validate_block(state, b2)
    assert state.grandpa is not None
    assert (state.grandpa.set_id, state.grandpa.authorities) == (1, NEW_AUTHORITIES)
    assert state.pending is None
    with pytest.raises(JustificationError):
        validate_block(state, make_block(b2.header, voters=VOTERS, set_id=1))
    state = validate_block(state, make_block(b2.header, voters=NEW_VOTERS, set_id=1))
    assert state.last_justified == 3


def test_light_client_checkpoint_rules() -> None:
    """A non-genesis checkpoint needs the genesis hash; an empty authority set is refused."""
    later = Header(GENESIS.hash(), BlockNumber(1), b"\x00" * 32, extrinsics_root([]))
    with pytest.raises(LightClientError):
        LightClientState.from_checkpoint(later)
    state = LightClientState.from_checkpoint(later, genesis_hash=GENESIS.hash())
    assert (state.checkpoint, state.genesis_hash) == (1, GENESIS.hash())
    with pytest.raises(LightClientError):
        LightClientState.from_checkpoint(GENESIS, authorities=())


@settings(max_examples=30, deadline=None)
@given(
    number=st.integers(0, 2**32 - 2),
    set_id=st.integers(0, 2**64 - 1),
    stamp=st.integers(0, 2**64 - 1),
    grandpa=st.booleans(),
)
def test_light_client_state_round_trips(
    number: int, set_id: int, stamp: int, grandpa: bool
) -> None:
    """The persisted light-client state decodes to exactly what was encoded."""
    header = Header(BlockHash(b"\x01" * 32), BlockNumber(number), bytes(32), bytes(32))
    state = LightClientState.from_checkpoint(
        header, BlockHash(b"\x02" * 32), AUTHORITIES if grandpa else None, set_id
    )
    state = replace(state, head_timestamp=Moment(stamp))
    assert LightClientState.decode(state.encode()) == state


def test_light_client_bad_justification_commits_nothing(data_dir: Path, host: Any) -> None:
    """Through the API: a block with a forged justification is refused and not committed."""
    modules = ("balances",)
    with Enclave.init(data_dir, sim_backend(data_dir, modules), modules, host) as e:
        e.init_parentchain(GENESIS, AUTHORITIES)
        shard = ShardId(e.mrenclave())
        e.init_shard(shard, 1)
        good = make_block(GENESIS, voters=VOTERS)
        e.import_parentchain_blocks([good])
        before = e.state_root(shard)
        forged = make_block(good.header, voters=NEW_VOTERS)
        with pytest.raises(JustificationError):
            e.import_parentchain_blocks([forged])
        assert e.state_root(shard) == before
        assert e.last_imported_block() == (1, good.hash())
    with Enclave.init(data_dir, sim_backend(data_dir, modules), modules, host) as e:
        assert e.last_imported_block() == (1, good.hash())
        e.import_parentchain_blocks([make_block(good.header, voters=VOTERS)])
