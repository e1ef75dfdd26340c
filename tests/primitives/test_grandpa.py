"""GRANDPA: real justifications verify; each verification rule rejects what it should."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tocw.primitives.errors import PrimitivesError, ScaleDecodeError
from tocw.primitives.grandpa import (
    CONSENSUS_LOG,
    GRANDPA_ENGINE_ID,
    Commit,
    ForcedChange,
    GrandpaError,
    GrandpaJustification,
    InvalidAuthoritySetError,
    InvalidJustificationError,
    OnDisabled,
    Pause,
    Precommit,
    Resume,
    ScheduledChange,
    SignedPrecommit,
    Signer,
    authorities_from_storage,
    authorities_to_storage,
    decode_and_verify_justification,
    grandpa_logs,
    precommit_signing_payload,
    sign_justification,
    sign_precommit,
    supermajority_threshold,
    verify_justification,
)
from tocw.primitives.header import DigestConsensus, DigestItem, DigestSeal, Header
from tocw.primitives.types import BlockHash, BlockNumber

# paritytech/smoldot lib/src/finality/decode.rs, test basic_decode_justification: a real
# justification (round 439559, block #302592, 5 precommits, no ancestries). Its signatures
# verify for set_id 0 (found by checking them; the test only decodes).
REAL_JUSTIFICATION = bytes.fromhex(
    "07b506000000000029f1abec90ac199df06dee3ba0734c08c3fd6df06caa3f78952f8f95164058d2009e0400"
    "1429f1abec90ac199df06dee3ba0734c08c3fd6df06caa3f78952f8f95164058d2009e04000df78178ccaa78"
    "ad29f1d5ea796f1426c15e638b391e47d1ecdea57b468b4741248e270d5ef02cae965595dfa652d267288166"
    "1ad474e7d1a36b3152e5c552081c151c11cb72334d26d70769e3af7bbff3801a4e2dca2b09b7cce0af8dd813"
    "0729f1abec90ac199df06dee3ba0734c08c3fd6df06caa3f78952f8f95164058d2009e04003e25912c15c078"
    "e5ec717a38c1f72dd2b80c3edcfd93468555125aa7c976176bb8bb0368aa841112594d9c91f208b9584a5715"
    "34f765399aa30582140fe60803680d278213f908658a49a1025a7f466c197e8fb6fabb5e62220a7bd75f860c"
    "ab29f1abec90ac199df06dee3ba0734c08c3fd6df06caa3f78952f8f95164058d2009e04007dac4f47012689"
    "80e85f4668d95f073a1c72b6d8ab38e7dac7f4dc7a06e105afac2fc63d542a4b423e5af3123a246ceb846788"
    "26a4a4eda429e1989d92ed180b8e59368700ea89e2bf8922cc9e4b86d6651d1c689a0d57813f9768dbaadecf"
    "7129f1abec90ac199df06dee3ba0734c08c3fd6df06caa3f78952f8f95164058d2009e040044c0d38eef2137"
    "dea57fcb9bd9aa3d5fce4a4a137b3c438e5012af28889c97e0bf9d5bbb27b9f9d49e49c55a36de0d4cb58645"
    "03a5f85ec444ba50da57a2110bdea6f4a727d3b2399275d6ee8817881f10597471dc1d27f144295ad6fb933c"
    "7a29f1abec90ac199df06dee3ba0734c08c3fd6df06caa3f78952f8f95164058d2009e04003abb7b87029d51"
    "c528c8da34fdc17768bef6dde1afc3b1dad1af537762afc430434c3bdf0dca30010a63c8c97b1d59837846a2"
    "eb0bbf60395333d9c72332ae02f72daf2e560e4f0f22fb5cbb04ad1d7fee850aab238fd014c178769e7e3a9b"
    "8400"
)
REAL_TARGET = bytes.fromhex("29f1abec90ac199df06dee3ba0734c08c3fd6df06caa3f78952f8f95164058d2")

# smoldot lib/src/finality/decode.rs, test basic_decode_commit: a real GRANDPA commit message
# (round 3669, set_id 3490, block #5105457); these are its 7 (signature, id) pairs, all
# precommitting the target. A non-zero set_id checks the payload's u64 encoding.
COMMIT_TARGET = bytes.fromhex("b64473230fc998c30cb53bf4e77c22f862fd04b49e46a1544c7697446568bb52")
COMMIT_SIGNATURES_AND_IDS = bytes.fromhex(
    "bdb9d821a30cc968a2ff0bf19c5af4cdfb2c2d8b8175b255814e3aff4ce8c755ec1ee3573222161bf1062189"
    "3705be247a3d70336322772eb99cbc858c67210a2d9aad0c1e0c195fc3c6eb621df82c7949cb8433c48a412a"
    "0331a9b68192f2c1e4d91a09e9ef1ed5670a211b2c0db2ecd8a7be097b978f01c73a4d797ad71613eebed808"
    "3e06d825c57c8d33c4cdcdc11856f63c108b42335da89f934d5a5b08400efc774dd38d171273de0302162a69"
    "55b047e8e68d0c097ccdc2bf5a2fcae9daa150370886dfca04892d0a475aa2fc6313fc11af054bd0510060da"
    "0559fab7a1bce33e6b223f9b1cb08dae71a2e59437274124619fc6eede224cbb28136d014392284bc2d050d0"
    "ddaf97efef7f4127ed9182249a8744693466313e8922bb9f379d58c33174480b2584b04a453c9d43249ca547"
    "a456dcf0f10d287d4f931b38fec6e76cbbd6bb62e57b74a07ec06284f7ce46e4af98d9fc046d62185a75b80b"
    "6b20bad99b2cfdc678afaae5427a8d9e4b446c68b6df5b7ed226548f0a8ee14da90cd7de9e55046fc42f3893"
    "5d01caf789731e7f5ebf1fdfa21049db763428ffbfb74684735bd6bf9cbdcbd098a573407bd199502c868fbc"
    "8ca8a286b2c07a0a8929857f48df1041aa7235adb43bd0be36607bc789d673f04957fd89512442af4c2834d8"
    "6eeadb9ed08e55a82ba4139a157dae99a52d366424c42e5f40c0b29c107005edcf71847d9422846994d894b6"
    "214ad7a1fc2c18434d57065e6d26400ac31cc2a9af0762d29704dd88a1ccabfb653f15f554bd4d3b4b882c11"
    "d977cebfbf897f5137d0e121d13b5379eaa0bf26520166b28c3a1483ce25946a87954a391b54d7002f440108"
    "8bb77da904a5a856dab25f9db9402dd3dd97cdf04585c80fd5aaa27f5de02456742c2a16ff90c123af913eb8"
    "438fc7fd2573179ad58d7a69"
)


# --- helpers ---------------------------------------------------------------------------------


def _voter(seed: int) -> tuple[bytes, Signer]:
    key = Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return public, key.sign


VOTERS = [_voter(i) for i in range(1, 6)]  # the first 4 are the authorities
AUTHORITIES = [(pk, 1) for pk, _ in VOTERS[:4]]
OUTSIDER = VOTERS[4]
SET_ID = 7
ROUND = 42

TARGET = Header(BlockHash(bytes(32)), BlockNumber(10), bytes([1]) * 32, bytes([2]) * 32)
CHILD = Header(TARGET.hash(), BlockNumber(11), bytes([3]) * 32, bytes([4]) * 32)
GRANDCHILD = Header(CHILD.hash(), BlockNumber(12), bytes([5]) * 32, bytes([6]) * 32)


def _precommit(header: Header) -> Precommit:
    return Precommit(header.hash(), header.number)


def _justification(
    votes: Sequence[tuple[tuple[bytes, Signer], Header]],
    ancestries: Sequence[Header] = (),
    target: Header = TARGET,
    round: int = ROUND,
    set_id: int = SET_ID,
) -> GrandpaJustification:
    precommits = tuple(
        sign_precommit(_precommit(header), round, set_id, pk, sign) for (pk, sign), header in votes
    )
    commit = Commit(target.hash(), target.number, precommits)
    return GrandpaJustification(round, commit, tuple(ancestries))


def _verify(
    justification: GrandpaJustification, authorities: Sequence[tuple[bytes, int]] = AUTHORITIES
) -> None:
    verify_justification(justification, TARGET.hash(), TARGET.number, authorities, SET_ID)


# --- real data -------------------------------------------------------------------------------


def test_verify_justification_real_justification() -> None:
    """smoldot's real justification decodes, re-encodes identically and verifies."""
    justification = GrandpaJustification.decode(REAL_JUSTIFICATION)
    assert justification.round == 439559
    assert justification.commit.target_hash == REAL_TARGET
    assert justification.commit.target_number == 302592
    assert justification.encode() == REAL_JUSTIFICATION
    authorities = [(p.id, 1) for p in justification.commit.precommits]
    verify_justification(justification, REAL_TARGET, 302592, authorities, set_id=0)
    with pytest.raises(InvalidJustificationError, match="signature"):
        verify_justification(justification, REAL_TARGET, 302592, authorities, set_id=1)


def test_verify_justification_real_commit_with_nonzero_set_id() -> None:
    """The real commit's signatures verify for set_id 3490 and no other nearby value."""
    pairs = [COMMIT_SIGNATURES_AND_IDS[i : i + 96] for i in range(0, 7 * 96, 96)]
    precommit = Precommit(BlockHash(COMMIT_TARGET), BlockNumber(5_105_457))
    signed = tuple(SignedPrecommit(precommit, p[:64], p[64:]) for p in pairs)
    justification = GrandpaJustification(
        3669, Commit(precommit.target_hash, precommit.target_number, signed)
    )
    authorities = [(s.id, 1) for s in signed]
    verify_justification(justification, COMMIT_TARGET, 5_105_457, authorities, 3490)
    for wrong in (3489, 3491, 3490 << 32):
        with pytest.raises(InvalidJustificationError, match="signature"):
            verify_justification(justification, COMMIT_TARGET, 5_105_457, authorities, wrong)


# --- signing ---------------------------------------------------------------------------------


def test_precommit_signing_payload_layout() -> None:
    """Payload = 0x01 ‖ target_hash ‖ u32 number ‖ u64 round ‖ u64 set_id, little endian."""
    payload = precommit_signing_payload(Precommit(BlockHash(b"\xaa" * 32), BlockNumber(5)), 2, 3)
    assert payload == (
        b"\x01" + b"\xaa" * 32 + b"\x05\0\0\0" + b"\x02" + bytes(7) + b"\x03" + bytes(7)
    )


def test_sign_justification_round_trip_and_verify() -> None:
    """A producer's justification (all voters on the block) encodes, decodes and verifies."""
    justification = sign_justification(ROUND, SET_ID, TARGET.hash(), TARGET.number, VOTERS[:3])
    assert GrandpaJustification.decode(justification.encode()) == justification
    _verify(justification)
    encoded = justification.encode()
    decoded = decode_and_verify_justification(
        encoded, TARGET.hash(), TARGET.number, AUTHORITIES, SET_ID
    )
    assert decoded == justification


def test_sign_precommit_rejects_bad_signer() -> None:
    """A signer that does not return a 64-byte signature is a GrandpaError."""
    with pytest.raises(GrandpaError):
        sign_precommit(_precommit(TARGET), 1, 1, VOTERS[0][0], lambda m: b"short")


# --- verification rules ----------------------------------------------------------------------


def test_verify_justification_threshold() -> None:
    """3 of 4 equal voters are enough; 2 of 4 are not."""
    _verify(_justification([(v, TARGET) for v in VOTERS[:3]]))
    with pytest.raises(InvalidJustificationError, match="weight 2 of 4; 3 needed"):
        _verify(_justification([(v, TARGET) for v in VOTERS[:2]]))


def test_verify_justification_weights() -> None:
    """Weights, not heads, count: 5+1 of 8 passes (threshold 6), 5 alone does not."""
    weighted = [(VOTERS[0][0], 5), *[(pk, 1) for pk, _ in VOTERS[1:4]]]
    _verify(_justification([(VOTERS[0], TARGET), (VOTERS[1], TARGET)]), weighted)
    with pytest.raises(InvalidJustificationError, match="weight 5 of 8; 6 needed"):
        _verify(_justification([(VOTERS[0], TARGET)]), weighted)


@pytest.mark.parametrize(("total", "threshold"), [(1, 1), (3, 3), (4, 3), (7, 5), (100, 67)])
def test_supermajority_threshold(total: int, threshold: int) -> None:
    """More than two thirds, as finality-grandpa's VoterSet computes it."""
    assert supermajority_threshold(total) == threshold
    assert threshold * 3 > total * 2 >= (threshold - 1) * 3


def test_verify_justification_duplicate_voter_counted_once() -> None:
    """The same voter twice adds its weight once."""
    votes = [(VOTERS[0], TARGET), (VOTERS[1], TARGET), (VOTERS[1], TARGET)]
    with pytest.raises(InvalidJustificationError, match="weight 2 of 4"):
        _verify(_justification(votes))


def test_verify_justification_unknown_voter_has_no_weight() -> None:
    """A validly signed precommit from outside the set does not count, nor break validity."""
    with pytest.raises(InvalidJustificationError, match="weight 2 of 4"):
        _verify(_justification([(VOTERS[0], TARGET), (VOTERS[1], TARGET), (OUTSIDER, TARGET)]))
    _verify(_justification([*[(v, TARGET) for v in VOTERS[:3]], (OUTSIDER, TARGET)]))


def test_verify_justification_wrong_set_id() -> None:
    """Signatures made for another authority set id do not verify."""
    justification = _justification([(v, TARGET) for v in VOTERS[:4]], set_id=SET_ID + 1)
    with pytest.raises(InvalidJustificationError, match="signature"):
        _verify(justification)


def test_verify_justification_wrong_round() -> None:
    """A justification whose round differs from the signed one fails its signatures."""
    justification = _justification([(v, TARGET) for v in VOTERS[:4]])
    with pytest.raises(InvalidJustificationError, match="signature"):
        _verify(dataclasses.replace(justification, round=ROUND + 1))


def test_verify_justification_bad_signature() -> None:
    """One corrupted signature invalidates the justification, even with enough others."""
    justification = _justification([(v, TARGET) for v in VOTERS[:4]])
    first = justification.commit.precommits[0]
    corrupted = dataclasses.replace(
        first, signature=bytes([first.signature[0] ^ 1]) + first.signature[1:]
    )
    precommits = (corrupted, *justification.commit.precommits[1:])
    bad = dataclasses.replace(
        justification, commit=dataclasses.replace(justification.commit, precommits=precommits)
    )
    with pytest.raises(InvalidJustificationError, match="signature"):
        _verify(bad)


def test_verify_justification_target_mismatch() -> None:
    """A justification for one block does not finalize another (hash or number differ)."""
    justification = _justification([(v, TARGET) for v in VOTERS[:4]])
    with pytest.raises(InvalidJustificationError, match="targets"):
        verify_justification(justification, CHILD.hash(), TARGET.number, AUTHORITIES, SET_ID)
    with pytest.raises(InvalidJustificationError, match="targets"):
        verify_justification(justification, TARGET.hash(), 11, AUTHORITIES, SET_ID)


def test_verify_justification_descendant_votes_with_ancestry() -> None:
    """Precommits for a descendant count for the target when the ancestry proves it."""
    votes = [(VOTERS[0], TARGET), (VOTERS[1], GRANDCHILD), (VOTERS[2], GRANDCHILD)]
    _verify(_justification(votes, [GRANDCHILD, CHILD]))
    with pytest.raises(InvalidJustificationError, match="lacks header"):
        _verify(_justification(votes, [GRANDCHILD]))
    with pytest.raises(InvalidJustificationError, match="no precommit needs"):
        _verify(
            _justification(
                votes,
                [
                    GRANDCHILD,
                    CHILD,
                    Header(BlockHash(bytes(32)), BlockNumber(99), bytes(32), bytes(32)),
                ],
            )
        )


def test_verify_justification_target_must_be_ghost() -> None:
    """If a descendant has a supermajority itself, the commit's target is not final-most."""
    votes = [(v, CHILD) for v in VOTERS[:3]]
    with pytest.raises(InvalidJustificationError, match="GHOST"):
        _verify(_justification(votes, [CHILD]))


def test_verify_justification_precommit_below_target() -> None:
    """A precommit for a block at or below the target's height is rejected."""
    parent = Header(BlockHash(bytes(32)), BlockNumber(9), bytes(32), bytes(32))
    votes = [(VOTERS[0], parent), (VOTERS[1], TARGET), (VOTERS[2], TARGET), (VOTERS[3], TARGET)]
    with pytest.raises(InvalidJustificationError, match="not a descendant"):
        _verify(_justification(votes))


def test_verify_justification_ancestry_number_mismatch() -> None:
    """Ancestry headers must carry the numbers the precommits claim."""
    pk, sign = VOTERS[1]
    wrong = sign_precommit(Precommit(GRANDCHILD.hash(), BlockNumber(13)), ROUND, SET_ID, pk, sign)
    base = _justification([(v, TARGET) for v in (VOTERS[0], VOTERS[2])], [GRANDCHILD, CHILD])
    commit = dataclasses.replace(base.commit, precommits=(*base.commit.precommits, wrong))
    with pytest.raises(InvalidJustificationError, match="number"):
        _verify(dataclasses.replace(base, commit=commit))
    same_hash_other_number = sign_precommit(
        Precommit(TARGET.hash(), BlockNumber(11)), ROUND, SET_ID, pk, sign
    )
    commit = dataclasses.replace(
        base.commit, precommits=(*base.commit.precommits, same_hash_other_number)
    )
    with pytest.raises(InvalidJustificationError, match="number"):
        _verify(dataclasses.replace(base, commit=commit, votes_ancestries=()))


def test_verify_justification_without_precommits() -> None:
    """An empty commit proves nothing."""
    with pytest.raises(InvalidJustificationError, match="no precommits"):
        _verify(_justification([]))


def test_verify_justification_invalid_authorities() -> None:
    """Empty, zero-weight or malformed authority sets raise InvalidAuthoritySetError."""
    justification = _justification([(v, TARGET) for v in VOTERS[:4]])
    for authorities in ([], [(VOTERS[0][0], 0)], [(b"short", 1)], [(VOTERS[0][0], -1)]):
        with pytest.raises(InvalidAuthoritySetError):
            _verify(justification, authorities)


def test_decode_and_verify_justification_garbage() -> None:
    """Undecodable justification bytes are an InvalidJustificationError."""
    for data in (b"", REAL_JUSTIFICATION[:-1], REAL_JUSTIFICATION + b"\x00"):
        with pytest.raises(InvalidJustificationError, match="undecodable"):
            decode_and_verify_justification(data, REAL_TARGET, 302592, AUTHORITIES, 0)
    with pytest.raises(ScaleDecodeError):
        GrandpaJustification.decode(REAL_JUSTIFICATION[:100])


# --- authority sets and consensus logs -------------------------------------------------------


def test_authorities_storage_round_trip() -> None:
    """:grandpa_authorities = version byte 1 then Vec<(key, u64 weight)>."""
    value = authorities_to_storage(AUTHORITIES)
    assert value[:2] == b"\x01\x10"  # version 1, compact(4)
    assert len(value) == 2 + 4 * 40
    assert authorities_from_storage(value) == tuple(AUTHORITIES)


@pytest.mark.parametrize(
    "value",
    [b"", b"\x02\x00", b"\x01\x04" + bytes(39), b"\x01\x04" + bytes(41), b"\x01"],
)
def test_authorities_from_storage_rejects_malformed(value: bytes) -> None:
    """Unknown versions and malformed lists raise InvalidAuthoritySetError (a PrimitivesError)."""
    with pytest.raises(InvalidAuthoritySetError):
        authorities_from_storage(value)
    assert issubclass(InvalidAuthoritySetError, PrimitivesError)


def test_grandpa_logs_decode_frnk_digests() -> None:
    """Only FRNK consensus digests are read, each as a ConsensusLog variant."""
    change = ScheduledChange(tuple(AUTHORITIES[:2]), BlockNumber(3))
    logs = (
        change,
        ForcedChange(BlockNumber(9), change),
        OnDisabled(2),
        Pause(BlockNumber(1)),
        Resume(BlockNumber(4)),
    )
    digest: tuple[DigestItem, ...] = (
        DigestSeal(GRANDPA_ENGINE_ID, b"not a log"),
        *(DigestConsensus(GRANDPA_ENGINE_ID, CONSENSUS_LOG.encode(log)) for log in logs),
        DigestConsensus(b"BABE", b"\x01"),
    )
    header = dataclasses.replace(TARGET, digest=digest)
    assert grandpa_logs(header) == list(logs)
    assert CONSENSUS_LOG.encode(change)[:2] == b"\x01\x08"  # index 1, two authorities
    bad = dataclasses.replace(TARGET, digest=(DigestConsensus(GRANDPA_ENGINE_ID, b"\x09"),))
    with pytest.raises(ScaleDecodeError):
        grandpa_logs(bad)
