"""GRANDPA finality proofs: justifications, their signing and their verification.

Owns the SCALE shapes of sp-consensus-grandpa / finality-grandpa that a light client needs:
`GrandpaJustification` (what `chain_getBlock` returns under engine id b"FRNK"), the signed
precommits inside it, the `:grandpa_authorities` storage value, and the GRANDPA consensus logs
(authority set changes) that headers carry in their digests. The dev chain produces
justifications with `sign_justification`; the enclave's light client checks them with
`verify_justification` before trusting a finalized header.

Verification follows sc-consensus-grandpa's `GrandpaJustification::verify_with_voters` and
finality-grandpa's `validate_commit`: every precommit signature must be valid for
(Precommit, round, set_id); every precommit must be for the commit target or a descendant of it,
proven by `votes_ancestries` (and every ancestry header must be used); the distinct known voters
must reach the supermajority threshold; and no descendant of the target may itself reach it
(the target must be the precommit GHOST). Unknown voters carry no weight but must still sign
correctly. Ed25519 is verified with `cryptography` (OpenSSL), which is stricter than Substrate's
ed25519-zebra only on malformed signatures that honest voters never produce.

Errors (all under `tocw.primitives.errors.PrimitivesError`):

    GrandpaError
    ├── InvalidJustificationError   a justification that does not finalize the given block
    └── InvalidAuthoritySetError    a malformed authority list or :grandpa_authorities value
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tocw.primitives.errors import PrimitivesError, ScaleDecodeError
from tocw.primitives.header import HEADER, DigestConsensus, Header
from tocw.primitives.scale import (
    H256,
    H512,
    U8,
    U32,
    U64,
    Codec,
    Enum,
    Mapped,
    Tuple,
    Vec,
    struct,
)
from tocw.primitives.types import MAX_U64, BlockHash, BlockNumber, to_hex

__all__ = [
    "AUTHORITIES_VERSION",
    "AUTHORITY_LIST",
    "CONSENSUS_LOG",
    "GRANDPA_AUTHORITIES_KEY",
    "GRANDPA_ENGINE_ID",
    "GRANDPA_JUSTIFICATION",
    "AuthorityList",
    "Commit",
    "ConsensusLog",
    "ForcedChange",
    "GrandpaError",
    "GrandpaJustification",
    "InvalidAuthoritySetError",
    "InvalidJustificationError",
    "OnDisabled",
    "Pause",
    "Precommit",
    "Resume",
    "ScheduledChange",
    "SignedPrecommit",
    "Signer",
    "authorities_from_storage",
    "authorities_to_storage",
    "decode_and_verify_justification",
    "grandpa_logs",
    "precommit_signing_payload",
    "sign_justification",
    "sign_precommit",
    "supermajority_threshold",
    "verify_justification",
]

GRANDPA_ENGINE_ID = b"FRNK"
GRANDPA_AUTHORITIES_KEY = b":grandpa_authorities"
# sp_consensus_grandpa::AUTHORITIES_VERSION: the u8 that prefixes the stored authority list.
AUTHORITIES_VERSION = 1

# finality_grandpa::Message variant index of a precommit (Prevote 0, Precommit 1, Propose 2).
_MESSAGE_PRECOMMIT = 1

# (ed25519 public key, weight) pairs, as sp_consensus_grandpa::AuthorityList.
AuthorityList: TypeAlias = tuple[tuple[bytes, int], ...]
# Signs a message with one authority's ed25519 key, returning the 64-byte signature.
Signer: TypeAlias = Callable[[bytes], bytes]


class GrandpaError(PrimitivesError):
    """Root of the GRANDPA errors."""


class InvalidJustificationError(GrandpaError):
    """The justification does not prove the given block final under the given authority set."""


class InvalidAuthoritySetError(GrandpaError, ValueError):
    """An authority list that is malformed, empty, or stored with an unknown version."""


# --- wire types ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Precommit:
    target_hash: BlockHash
    target_number: BlockNumber


@dataclass(frozen=True, slots=True)
class SignedPrecommit:
    precommit: Precommit
    signature: bytes  # ed25519, 64 bytes
    id: bytes  # the voter's ed25519 public key, 32 bytes


@dataclass(frozen=True, slots=True)
class Commit:
    target_hash: BlockHash
    target_number: BlockNumber
    precommits: tuple[SignedPrecommit, ...]


@dataclass(frozen=True, slots=True)
class GrandpaJustification:
    round: int
    commit: Commit
    votes_ancestries: tuple[Header, ...] = ()

    def encode(self) -> bytes:
        return GRANDPA_JUSTIFICATION.encode(self)

    @classmethod
    def decode(cls, data: bytes) -> GrandpaJustification:
        return GRANDPA_JUSTIFICATION.decode(data)


_BLOCK_HASH: Codec[BlockHash] = Mapped(H256, BlockHash, bytes)
# Inside GRANDPA messages the block number is a plain u32, not Compact.
_BLOCK_NUMBER: Codec[BlockNumber] = Mapped(U32, BlockNumber, int)

PRECOMMIT: Codec[Precommit] = struct(
    Precommit, target_hash=_BLOCK_HASH, target_number=_BLOCK_NUMBER
)
SIGNED_PRECOMMIT: Codec[SignedPrecommit] = struct(
    SignedPrecommit, precommit=PRECOMMIT, signature=H512, id=H256
)
COMMIT: Codec[Commit] = struct(
    Commit,
    target_hash=_BLOCK_HASH,
    target_number=_BLOCK_NUMBER,
    precommits=Mapped(Vec(SIGNED_PRECOMMIT), tuple, list),
)
GRANDPA_JUSTIFICATION: Codec[GrandpaJustification] = struct(
    GrandpaJustification,
    round=U64,
    commit=COMMIT,
    votes_ancestries=Mapped(Vec(HEADER), tuple, list),
)
AUTHORITY_LIST: Codec[AuthorityList] = Mapped(Vec(Tuple(H256, U64)), tuple, list)


# --- consensus logs (header digests under engine b"FRNK") ----------------------------------


@dataclass(frozen=True, slots=True)
class ScheduledChange:
    """The next authority set, enacted `delay` blocks after the announcing block is final."""

    next_authorities: AuthorityList
    delay: BlockNumber


@dataclass(frozen=True, slots=True)
class ForcedChange:
    """A change enacted `change.delay` blocks after the announcing block is imported (not
    finalized), built on `best_finalized` (used when finality has stalled)."""

    best_finalized: BlockNumber
    change: ScheduledChange


@dataclass(frozen=True, slots=True)
class OnDisabled:
    authority_index: int


@dataclass(frozen=True, slots=True)
class Pause:
    delay: BlockNumber


@dataclass(frozen=True, slots=True)
class Resume:
    delay: BlockNumber


ConsensusLog: TypeAlias = ScheduledChange | ForcedChange | OnDisabled | Pause | Resume

_SCHEDULED_CHANGE: Codec[ScheduledChange] = struct(
    ScheduledChange, next_authorities=AUTHORITY_LIST, delay=_BLOCK_NUMBER
)
# sp_consensus_grandpa::ConsensusLog (codec indices 1..5).
CONSENSUS_LOG: Codec[ConsensusLog] = Enum(
    "GrandpaConsensusLog",
    {
        1: _SCHEDULED_CHANGE,
        2: struct(ForcedChange, best_finalized=_BLOCK_NUMBER, change=_SCHEDULED_CHANGE),
        3: struct(OnDisabled, authority_index=U64),
        4: struct(Pause, delay=_BLOCK_NUMBER),
        5: struct(Resume, delay=_BLOCK_NUMBER),
    },
)


def grandpa_logs(header: Header) -> list[ConsensusLog]:
    """The GRANDPA consensus logs in a header's digest, in order (ScheduledChange, ...).

    A FRNK log that does not decode raises ScaleDecodeError: a light client must not skip an
    authority set change it cannot read.
    """
    return [
        CONSENSUS_LOG.decode(item.data)
        for item in header.digest
        if isinstance(item, DigestConsensus) and item.engine_id == GRANDPA_ENGINE_ID
    ]


# --- authority sets ------------------------------------------------------------------------


def _validated(authorities: Iterable[tuple[bytes, int]]) -> AuthorityList:
    out = []
    for entry in authorities:
        try:
            key, weight = entry
        except (TypeError, ValueError):
            raise InvalidAuthoritySetError(
                f"authority must be (key, weight), got {entry!r}"
            ) from None
        if not isinstance(key, bytes) or len(key) != 32:
            raise InvalidAuthoritySetError(f"authority key must be 32 bytes, got {key!r}")
        if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= MAX_U64:
            raise InvalidAuthoritySetError(f"authority weight must be a u64, got {weight!r}")
        out.append((key, weight))
    return tuple(out)


def authorities_from_storage(value: bytes) -> AuthorityList:
    """Decode the `:grandpa_authorities` value: SCALE((version u8 = 1, AuthorityList))."""
    try:
        version, authorities = Tuple(U8, AUTHORITY_LIST).decode(value)
    except ScaleDecodeError as e:
        raise InvalidAuthoritySetError(f"malformed :grandpa_authorities value: {e}") from None
    if version != AUTHORITIES_VERSION:
        raise InvalidAuthoritySetError(
            f":grandpa_authorities version {version}, expected {AUTHORITIES_VERSION}"
        )
    return _validated(authorities)


def authorities_to_storage(authorities: Iterable[tuple[bytes, int]]) -> bytes:
    """The `:grandpa_authorities` value for an authority list (what a chain's genesis holds)."""
    return Tuple(U8, AUTHORITY_LIST).encode((AUTHORITIES_VERSION, _validated(authorities)))


def supermajority_threshold(total_weight: int) -> int:
    """The least weight that is more than 2/3 of `total_weight` (finality-grandpa's
    VoterSet threshold: total - (total - 1) / 3)."""
    return total_weight - (total_weight - 1) // 3


# --- signing -------------------------------------------------------------------------------


def precommit_signing_payload(precommit: Precommit, round: int, set_id: int) -> bytes:
    """What a voter signs: SCALE((Message::Precommit(precommit), round: u64, set_id: u64))."""
    return (
        bytes([_MESSAGE_PRECOMMIT])
        + PRECOMMIT.encode(precommit)
        + U64.encode(round)
        + U64.encode(set_id)
    )


def sign_precommit(
    precommit: Precommit, round: int, set_id: int, public_key: bytes, sign: Signer
) -> SignedPrecommit:
    signature = sign(precommit_signing_payload(precommit, round, set_id))
    if len(signature) != 64:
        raise GrandpaError(f"signer returned {len(signature)} bytes, expected a 64-byte signature")
    return SignedPrecommit(precommit, signature, public_key)


def sign_justification(
    round: int,
    set_id: int,
    block_hash: bytes,
    block_number: int,
    signers: Sequence[tuple[bytes, Signer]],
) -> GrandpaJustification:
    """A justification in which each (public key, sign) voter precommits the block itself.

    This is what a producer that finalizes every block directly (the dev chain) emits; no
    ancestry headers are needed since no precommit targets a descendant.
    """
    precommit = Precommit(BlockHash(block_hash), BlockNumber(block_number))
    signed = tuple(sign_precommit(precommit, round, set_id, pk, sign) for pk, sign in signers)
    return GrandpaJustification(
        round, Commit(precommit.target_hash, precommit.target_number, signed)
    )


# --- verification --------------------------------------------------------------------------


def _signature_valid(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def _route_to_target(
    precommit: Precommit, commit: Commit, headers: dict[bytes, Header]
) -> list[bytes]:
    """Hashes from the precommit's target down to (excluding) the commit target, proving the
    former descends from the latter through `votes_ancestries`."""
    if precommit.target_hash == commit.target_hash:
        if precommit.target_number != commit.target_number:
            raise InvalidJustificationError(
                f"precommit for the target names number {precommit.target_number}, "
                f"not {commit.target_number}"
            )
        return []
    if precommit.target_number <= commit.target_number:
        raise InvalidJustificationError(
            f"precommit for #{precommit.target_number} {to_hex(precommit.target_hash)} is not "
            f"a descendant of the target #{commit.target_number}"
        )
    route: list[bytes] = []
    current = bytes(precommit.target_hash)
    number: int = precommit.target_number
    while current != commit.target_hash:
        if number <= commit.target_number:
            raise InvalidJustificationError(
                f"precommit for {to_hex(precommit.target_hash)} does not descend from the target"
            )
        header = headers.get(current)
        if header is None:
            raise InvalidJustificationError(
                f"votes_ancestries lacks header {to_hex(current)} needed to link the precommit "
                f"for #{precommit.target_number} to the target"
            )
        if header.number != number:
            raise InvalidJustificationError(
                f"ancestry header {to_hex(current)} has number {header.number}, expected {number}"
            )
        route.append(current)
        current = bytes(header.parent_hash)
        number -= 1
    if number != commit.target_number:
        raise InvalidJustificationError("ancestry reaches the target at the wrong height")
    return route


def verify_justification(
    justification: GrandpaJustification,
    block_hash: bytes,
    block_number: int,
    authorities: Sequence[tuple[bytes, int]],
    set_id: int,
) -> None:
    """Check that `justification` finalizes block (`block_hash`, `block_number`) under the
    authority set `set_id` with the given (ed25519 key, weight) authorities.

    Raises InvalidJustificationError naming the first rule broken, or InvalidAuthoritySetError
    when the authority set itself is unusable (empty, zero weight, malformed); returns None
    when the justification is valid.
    """
    commit = justification.commit
    if commit.target_hash != block_hash or commit.target_number != block_number:
        raise InvalidJustificationError(
            f"justification targets #{commit.target_number} {to_hex(commit.target_hash)}, "
            f"not #{block_number} {to_hex(block_hash)}"
        )
    weights: dict[bytes, int] = {}
    for key, weight in _validated(authorities):
        weights[key] = weights.get(key, 0) + weight  # repeated ids add up, as in VoterSet
    total = sum(weights.values())
    if total == 0 or total > MAX_U64:
        raise InvalidAuthoritySetError(f"authority set has invalid total weight {total}")
    threshold = supermajority_threshold(total)
    if not commit.precommits:
        raise InvalidJustificationError("commit has no precommits")

    headers = {bytes(h.hash()): h for h in justification.votes_ancestries}
    used: set[bytes] = set()
    voters: set[bytes] = set()
    # For each strict descendant of the target, the voters whose precommit is at or below it.
    below: dict[bytes, set[bytes]] = {}
    for signed in commit.precommits:
        payload = precommit_signing_payload(signed.precommit, justification.round, set_id)
        if not _signature_valid(signed.id, signed.signature, payload):
            raise InvalidJustificationError(
                f"invalid precommit signature by {to_hex(signed.id)} "
                f"(round {justification.round}, set_id {set_id})"
            )
        route = _route_to_target(signed.precommit, commit, headers)
        used.update(route)
        if signed.id in weights:
            voters.add(signed.id)
            for h in route:
                below.setdefault(h, set()).add(signed.id)

    weight = sum(weights[v] for v in voters)
    if weight < threshold:
        raise InvalidJustificationError(
            f"precommits carry weight {weight} of {total}; {threshold} needed"
        )
    for h, vs in below.items():
        if sum(weights[v] for v in vs) >= threshold:
            raise InvalidJustificationError(
                f"descendant {to_hex(h)} of the target also has a supermajority: "
                "the commit target is not the precommit GHOST"
            )
    unused = set(headers) - used
    if unused:
        raise InvalidJustificationError(
            f"votes_ancestries holds {len(unused)} header(s) no precommit needs"
        )


def decode_and_verify_justification(
    data: bytes,
    block_hash: bytes,
    block_number: int,
    authorities: Sequence[tuple[bytes, int]],
    set_id: int,
) -> GrandpaJustification:
    """Decode an encoded justification (as found under b"FRNK" in `chain_getBlock`) and
    verify it; undecodable bytes are an InvalidJustificationError too."""
    try:
        justification = GRANDPA_JUSTIFICATION.decode(data)
    except ScaleDecodeError as e:
        raise InvalidJustificationError(f"undecodable justification: {e}") from None
    verify_justification(justification, block_hash, block_number, authorities, set_id)
    return justification
