"""Attestation binding: what an enclave's evidence vouches for (ARCHITECTURE.md).

Lives in tee (not enclave) because both sides need it: the enclave produces it and clients
(tocw.client, which may not import the enclave) check it.

Owns the 64 bytes of report_data and the `Attestation` wire struct served as
`tocw_getAttestation`:

    report_data[0..32]  = the enclave's ed25519 signer public key (its parentchain account)
    report_data[32..64] = sha256(shielding-key JSON ‖ DER SubjectPublicKeyInfo of the TLS key)

A client that verified the evidence (tocw.tee.verify) and recomputed these bytes from the key
JSON it fetched and the certificate it was served knows that both belong to that enclave.
Integritee leaves these bytes zero, which lets a host swap the shielding key.

    Attestation = { tee_kind: u8 (TeeKind), mrenclave: [u8; 32], report_data: [u8; 64],
                    evidence: Vec<u8> }
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from tocw.primitives.scale import H256, Bytes, Codec, FixedBytes, Mapped, struct
from tocw.primitives.types import MrEnclave
from tocw.tee.base import TEE_KIND_CODEC, Evidence, TeeKind

REPORT_DATA_LEN = 64
SIGNER_PUBLIC_KEY_LEN = 32


@dataclass(frozen=True, slots=True)
class Attestation:
    """The enclave's evidence with what it claims, as served by tocw_getAttestation."""

    tee_kind: TeeKind
    mrenclave: MrEnclave
    report_data: bytes
    evidence: bytes

    @property
    def signer_public_key(self) -> bytes:
        return self.report_data[:SIGNER_PUBLIC_KEY_LEN]

    @property
    def key_binding(self) -> bytes:
        """sha256(shielding-key JSON ‖ TLS public key DER) as the evidence claims it."""
        return self.report_data[SIGNER_PUBLIC_KEY_LEN:]

    def to_evidence(self) -> Evidence:
        return Evidence(self.tee_kind, self.evidence)


ATTESTATION_CODEC: Codec[Attestation] = struct(
    Attestation,
    tee_kind=TEE_KIND_CODEC,
    mrenclave=Mapped(H256, MrEnclave, bytes),
    report_data=FixedBytes(REPORT_DATA_LEN),
    evidence=Bytes,
)


def key_binding(shielding_key_json: str, tls_public_key_der: bytes) -> bytes:
    """sha256(shielding-key JSON (UTF-8, exactly as served) ‖ TLS SubjectPublicKeyInfo DER)."""
    return hashlib.sha256(shielding_key_json.encode("utf-8") + bytes(tls_public_key_der)).digest()


def report_data(
    signer_public_key: bytes, shielding_key_json: str, tls_public_key_der: bytes
) -> bytes:
    """The 64 bytes the enclave asks its TEE to bind."""
    if len(signer_public_key) != SIGNER_PUBLIC_KEY_LEN:
        raise ValueError(f"signer public key must be {SIGNER_PUBLIC_KEY_LEN} bytes")
    return bytes(signer_public_key) + key_binding(shielding_key_json, tls_public_key_der)


def check_binding(
    attestation: Attestation,
    signer_public_key: bytes,
    shielding_key_json: str,
    tls_public_key_der: bytes,
) -> bool:
    """True iff the attestation's report_data binds exactly these keys.

    This checks the claim only; whether the evidence itself is genuine and carries this
    report_data and mrenclave is tocw.tee.verify's job.
    """
    try:
        expected = report_data(signer_public_key, shielding_key_json, tls_public_key_der)
    except ValueError:
        return False
    return attestation.report_data == expected
