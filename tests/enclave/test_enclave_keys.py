"""Enclave keys: generated once, sealed, the same after re-init, never silently replaced."""

from __future__ import annotations

import os
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from tocw.enclave.errors import (
    CorruptKeyError,
    ForeignSealingKeyError,
    MissingSealedKeyError,
    SealedKeyIdError,
    UnsealError,
)
from tocw.enclave.keys import (
    KEY_IDS,
    MANIFEST_ID,
    SHIELDING_KEY_ID,
    SIGNER_KEY_ID,
    STATE_KEY_ID,
    TLS_IDENTITY_ID,
    load_or_create_keys,
)
from tocw.enclave.sealing import Sealer
from tocw.primitives.keys import KeyScheme

SEALER = Sealer(bytes(range(32)))


def test_keys_created_and_sealed(ocall: Any) -> None:
    """A first load creates every key and seals each under its own name, plus the manifest."""
    keys = load_or_create_keys(ocall, SEALER)
    assert ocall.store.names() == sorted([*KEY_IDS, MANIFEST_ID])
    assert keys.signer.scheme is KeyScheme.ED25519
    assert len(keys.state_key) == 32
    assert keys.shielding.public_key().n.bit_length() == 3072
    cert = x509.load_der_x509_certificate(keys.tls.certificate_der)
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    shown = repr(keys)
    assert keys.state_key.hex() not in shown and repr(keys.state_key) not in shown
    assert keys.signer.export_secret().hex() not in shown


def test_keys_same_after_reload(ocall: Any) -> None:
    """Loading again yields exactly the same keys (nothing regenerated)."""
    a = load_or_create_keys(ocall, SEALER)
    b = load_or_create_keys(ocall, SEALER)
    assert a.shielding.to_der() == b.shielding.to_der()
    assert a.signer.public_key == b.signer.public_key
    assert a.state_key == b.state_key
    assert a.tls.certificate_der == b.tls.certificate_der
    assert a.tls.public_key_der() == b.tls.public_key_der()


def test_keys_missing_blob_after_creation_is_refused(ocall: Any) -> None:
    """A key blob that vanished after creation is an error, not a fresh key."""
    load_or_create_keys(ocall, SEALER)
    ocall.store.path_of(SIGNER_KEY_ID).unlink()
    with pytest.raises(MissingSealedKeyError, match=SIGNER_KEY_ID):
        load_or_create_keys(ocall, SEALER)
    assert ocall.load_sealed(SIGNER_KEY_ID) is None


def test_keys_interrupted_first_init_keeps_existing(ocall: Any) -> None:
    """If a first init stopped before the manifest, existing key blobs are reused."""
    a = load_or_create_keys(ocall, SEALER)
    ocall.store.path_of(MANIFEST_ID).unlink()
    ocall.store.path_of(TLS_IDENTITY_ID).unlink()
    b = load_or_create_keys(ocall, SEALER)
    assert a.shielding.to_der() == b.shielding.to_der()
    assert a.state_key == b.state_key
    assert a.tls.certificate_der != b.tls.certificate_der  # only the absent one is new


def test_keys_corrupted_blob_is_refused(ocall: Any) -> None:
    """A tampered sealed key fails to load; the blob is left as it was."""
    load_or_create_keys(ocall, SEALER)
    path = ocall.store.path_of(SHIELDING_KEY_ID)
    blob = bytearray(path.read_bytes())
    blob[-5] ^= 0x40
    path.write_bytes(bytes(blob))
    with pytest.raises(UnsealError):
        load_or_create_keys(ocall, SEALER)
    assert path.read_bytes() == bytes(blob)


def test_keys_foreign_sealing_key_is_refused(ocall: Any) -> None:
    """Blobs sealed by another enclave (another sealing key) are not opened or replaced."""
    load_or_create_keys(ocall, SEALER)
    with pytest.raises(ForeignSealingKeyError):
        load_or_create_keys(ocall, Sealer(os.urandom(32)))


def test_keys_swapped_blobs_are_refused(ocall: Any) -> None:
    """A host that swaps two sealed files gets a key-id error."""
    load_or_create_keys(ocall, SEALER)
    state_blob = ocall.load_sealed(STATE_KEY_ID)
    ocall.store_sealed(SIGNER_KEY_ID, state_blob)
    with pytest.raises(SealedKeyIdError):
        load_or_create_keys(ocall, SEALER)


def test_keys_sealed_garbage_key_is_corrupt(ocall: Any) -> None:
    """A blob that unseals but does not hold a valid key is a CorruptKeyError."""
    ocall.store_sealed(STATE_KEY_ID, SEALER.seal(STATE_KEY_ID, b"too short"))
    with pytest.raises(CorruptKeyError, match="32 bytes"):
        load_or_create_keys(ocall, SEALER)


def test_keys_tls_context_serves_the_certificate(ocall: Any, tmp_path: Path) -> None:
    """The server context built inside the enclave completes a TLS handshake with its cert."""
    keys = load_or_create_keys(ocall, SEALER)
    server_ctx = keys.tls.server_context()
    client_ctx = ssl.create_default_context(cadata=keys.tls.certificate_pem())
    left, right = socket.socketpair()
    served: list[bytes] = []

    def serve() -> None:
        with server_ctx.wrap_socket(left, server_side=True) as s:
            served.append(s.recv(5))

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_ctx.wrap_socket(right, server_hostname="localhost") as c:
            peer = c.getpeercert(binary_form=True)
            c.sendall(b"hello")
    finally:
        thread.join(timeout=10)
    assert peer == keys.tls.certificate_der
    assert served == [b"hello"]
