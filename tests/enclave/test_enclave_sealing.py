"""Sealed blobs: round trip, and a typed error for every way a blob can be wrong."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tocw.enclave.errors import (
    EnclaveUsageError,
    ForeignSealingKeyError,
    SealedBlobFormatError,
    SealedBlobVersionError,
    SealedKeyIdError,
    SealingError,
    UnsealError,
)
from tocw.enclave.sealing import MAGIC, NONCE_LEN, Sealer, read_header

KEY = bytes(range(32))
SEALER = Sealer(KEY)


def test_sealing_round_trip() -> None:
    """What is sealed under a key id unseals to the same bytes."""
    blob = SEALER.seal("signer-key", b"secret seed")
    assert SEALER.unseal("signer-key", blob) == b"secret seed"
    assert b"secret seed" not in blob


def test_sealing_fresh_nonce_each_time() -> None:
    """Sealing the same plaintext twice gives different blobs (random nonce)."""
    a = SEALER.seal("state-key", b"x" * 32)
    b = SEALER.seal("state-key", b"x" * 32)
    assert a != b
    assert read_header(a).length == read_header(b).length
    h = read_header(a).length
    assert a[h : h + NONCE_LEN] != b[h : h + NONCE_LEN]


@settings(max_examples=50, deadline=None)
@given(
    payload=st.binary(max_size=512),
    key_id=st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,20}", fullmatch=True),
)
def test_sealing_round_trip_property(payload: bytes, key_id: str) -> None:
    """Any payload under any valid key id survives seal/unseal."""
    assert SEALER.unseal(key_id, SEALER.seal(key_id, payload)) == payload


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_sealing_any_flipped_bit_is_detected(data: st.DataObject) -> None:
    """Flipping any single bit of a blob gives a SealingError, never other bytes."""
    blob = bytearray(SEALER.seal("shielding-key", b"private key der bytes"))
    i = data.draw(st.integers(0, len(blob) - 1))
    bit = data.draw(st.integers(0, 7))
    blob[i] ^= 1 << bit
    with pytest.raises(SealingError):
        SEALER.unseal("shielding-key", bytes(blob))


@settings(max_examples=50, deadline=None)
@given(cut=st.integers(0, 60))
def test_sealing_truncated_blob_is_typed_error(cut: int) -> None:
    """A blob cut anywhere fails with a SealingError (no IndexError)."""
    blob = SEALER.seal("shielding-key", b"abc")
    with pytest.raises(SealingError):
        SEALER.unseal("shielding-key", blob[: len(blob) - 1 - cut])


def test_sealing_tampered_ciphertext_is_unseal_error() -> None:
    """A modified ciphertext byte fails authentication."""
    blob = bytearray(SEALER.seal("signer-key", b"seed" * 8))
    blob[-1] ^= 0x01
    with pytest.raises(UnsealError):
        SEALER.unseal("signer-key", bytes(blob))


def test_sealing_foreign_key_is_named() -> None:
    """A blob sealed under another sealing key is reported as foreign, not as tampered."""
    other = Sealer(os.urandom(32))
    with pytest.raises(ForeignSealingKeyError, match="another sealing key"):
        SEALER.unseal("signer-key", other.seal("signer-key", b"seed"))


def test_sealing_wrong_version_is_named() -> None:
    """A blob of another format version is refused with a version error."""
    blob = bytearray(SEALER.seal("signer-key", b"seed"))
    blob[len(MAGIC)] = 2
    with pytest.raises(SealedBlobVersionError, match="version 2"):
        SEALER.unseal("signer-key", bytes(blob))


def test_sealing_swapped_blob_is_key_id_error() -> None:
    """A blob holding another key than asked for (swapped files) is refused."""
    blob = SEALER.seal("state-key", b"k" * 32)
    with pytest.raises(SealedKeyIdError, match="state-key"):
        SEALER.unseal("signer-key", blob)


def test_sealing_garbage_is_format_error() -> None:
    """Bytes that are not a sealed blob at all are a format error."""
    for junk in (b"", b"TOCWSEA", b"hello world" * 10, MAGIC + b"\x01\xff" + b"a" * 300):
        with pytest.raises(SealedBlobFormatError):
            SEALER.unseal("signer-key", junk)


def test_sealing_rejects_bad_key_id_and_key() -> None:
    """Key ids must be file-name safe; the sealing key must be 32 bytes."""
    with pytest.raises(EnclaveUsageError):
        SEALER.seal("../etc/passwd", b"")
    with pytest.raises(EnclaveUsageError):
        Sealer(b"short")
