"""Sealing: encrypting the enclave's secrets for storage by the untrusted host.

Owns the sealed-blob format. A blob is opaque to the host, which stores it by name through the
OCALL interface; only an enclave holding the same backend sealing key can open it. The format
is ours (SGX's sealed-data format depends on hardware key derivation that no portable library
offers), built from AES-256-GCM of `cryptography`:

    magic "TOCWSEAL" (8) ‖ version u8 ‖ key-id length u8 ‖ key id (ASCII)
    ‖ sealing-key fingerprint (8) ‖ nonce (12) ‖ AES-GCM ciphertext and tag

The whole header is the AEAD associated data, so a flipped header byte fails authentication
like a flipped ciphertext byte. The header fields exist to turn the common failures into clear
errors before decryption is even tried: a file written by another format version, a blob that
holds another key than the one asked for (the host swapped two files), a blob sealed on another
machine or by another enclave (its sealing-key fingerprint differs). None of them leads to a
regenerated key: the caller gets a SealingError and the enclave refuses to start.

The AES key is derived from the backend's sealing key with HKDF (never used directly), and the
fingerprint comes from a second, independent HKDF output, so publishing it reveals nothing
about the key.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tocw.enclave.errors import (
    EnclaveUsageError,
    ForeignSealingKeyError,
    SealedBlobFormatError,
    SealedBlobVersionError,
    SealedKeyIdError,
    UnsealError,
)

MAGIC = b"TOCWSEAL"
VERSION = 1
FINGERPRINT_LEN = 8
NONCE_LEN = 12
TAG_LEN = 16
SEALING_KEY_LEN = 32
MAX_KEY_ID_LEN = 64
# Key ids double as the host's blob names: keep them boring file-name-safe ASCII.
KEY_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]*")

_AEAD_INFO = b"tocw sealing aead v1"
_FINGERPRINT_INFO = b"tocw sealing fingerprint v1"


def check_key_id(key_id: str) -> None:
    """Raise EnclaveUsageError unless `key_id` is a valid blob name."""
    if (
        not isinstance(key_id, str)
        or len(key_id) > MAX_KEY_ID_LEN
        or not KEY_ID_PATTERN.fullmatch(key_id)
    ):
        raise EnclaveUsageError(
            f"invalid sealed key id {key_id!r}: lowercase [a-z0-9_.-], at most {MAX_KEY_ID_LEN}"
        )


def _hkdf(key: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(key)


class Sealer:
    """Seals and unseals blobs under one backend sealing key."""

    __slots__ = ("_aead", "fingerprint")

    def __init__(self, sealing_key: bytes) -> None:
        if not isinstance(sealing_key, bytes) or len(sealing_key) != SEALING_KEY_LEN:
            raise EnclaveUsageError(f"a sealing key is {SEALING_KEY_LEN} bytes")
        self._aead = AESGCM(_hkdf(sealing_key, _AEAD_INFO, 32))
        self.fingerprint = _hkdf(sealing_key, _FINGERPRINT_INFO, FINGERPRINT_LEN)

    def __repr__(self) -> str:
        return f"Sealer(fingerprint={self.fingerprint.hex()})"

    def _header(self, key_id: str) -> bytes:
        name = key_id.encode("ascii")
        return MAGIC + bytes([VERSION, len(name)]) + name + self.fingerprint

    def seal(self, key_id: str, plaintext: bytes) -> bytes:
        """A fresh blob for `plaintext` (random nonce: sealing the same data twice differs)."""
        check_key_id(key_id)
        header = self._header(key_id)
        nonce = os.urandom(NONCE_LEN)
        return header + nonce + self._aead.encrypt(nonce, bytes(plaintext), header)

    def unseal(self, key_id: str, blob: bytes) -> bytes:
        """The plaintext of a blob sealed by `seal(key_id, ...)` under this sealing key."""
        check_key_id(key_id)
        blob = bytes(blob)
        header = read_header(blob)
        if header.key_id != key_id:
            raise SealedKeyIdError(
                f"sealed blob holds key {header.key_id!r}, expected {key_id!r} "
                "(were sealed files swapped or renamed?)"
            )
        if header.fingerprint != self.fingerprint:
            raise ForeignSealingKeyError(
                f"sealed blob {key_id!r} was sealed under another sealing key "
                f"(fingerprint {header.fingerprint.hex()}, ours {self.fingerprint.hex()}): "
                "it belongs to another enclave build or machine"
            )
        nonce = blob[header.length : header.length + NONCE_LEN]
        body = blob[header.length + NONCE_LEN :]
        try:
            return self._aead.decrypt(nonce, body, blob[: header.length])
        except InvalidTag:
            raise UnsealError(
                f"sealed blob {key_id!r} fails authentication: it was modified"
            ) from None


@dataclass(frozen=True, slots=True)
class SealedHeader:
    """The parsed clear header of a sealed blob (what `unseal` checks before decrypting)."""

    version: int
    key_id: str
    fingerprint: bytes
    length: int  # header bytes, i.e. where the nonce starts


def read_header(blob: bytes) -> SealedHeader:
    """Parse a blob's header; typed errors for anything that is not a sealed blob we know."""
    if len(blob) < len(MAGIC) + 2 or not blob.startswith(MAGIC):
        raise SealedBlobFormatError("not a tocw sealed blob (bad magic or too short)")
    version = blob[len(MAGIC)]
    if version != VERSION:
        raise SealedBlobVersionError(
            f"sealed blob format version {version} is not supported (this enclave: {VERSION})"
        )
    name_len = blob[len(MAGIC) + 1]
    start = len(MAGIC) + 2
    end = start + name_len
    if name_len > MAX_KEY_ID_LEN or len(blob) < end + FINGERPRINT_LEN + NONCE_LEN + TAG_LEN:
        raise SealedBlobFormatError("truncated sealed blob")
    try:
        key_id = blob[start:end].decode("ascii")
    except UnicodeDecodeError:
        raise SealedBlobFormatError("sealed blob key id is not ASCII") from None
    if not KEY_ID_PATTERN.fullmatch(key_id):
        raise SealedBlobFormatError(f"sealed blob has an invalid key id {key_id!r}")
    fingerprint = blob[end : end + FINGERPRINT_LEN]
    return SealedHeader(version, key_id, fingerprint, end + FINGERPRINT_LEN)
