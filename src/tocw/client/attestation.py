"""Checking a worker before trusting it: its attestation must bind what it presented.

Owns `verify_worker` and what it establishes (`WorkerIdentity`), plus the client's decoder of the
`tocw_getAttestation` answer. A client may encrypt a trusted call only to a key it got from a
`WorkerIdentity`, so "refuse to encrypt to an unattested key" is enforced by the types of the
SDK, not by a flag checked somewhere.

What is verified (ARCHITECTURE.md "Attestation binding"):

1. the evidence itself, by tocw.tee.verify.verify_evidence: a DCAP quote against collateral at
   a given time, or a sim statement, which proves NOTHING and is accepted only when the caller
   passes `allow_sim=True` (the CLI's `--insecure-skip-attestation`, which says so loudly);
2. the measurement, against the expected MRENCLAVE when one is given;
3. report_data[32..64] == sha256(shielding-key JSON exactly as served ‖ DER SubjectPublicKeyInfo
   of the TLS certificate this connection was pinned to). A host that swapped the shielding key,
   or a man in the middle with its own certificate, fails here;
4. report_data[0..32] is the enclave's signer (its parentchain account), returned so that a
   caller can match it with the Teerex registry.

The Attestation wire struct is the enclave's (tocw.tee.attestation); the client layer may
not import the enclave, so its decoder is declared again here, field for field, and a test
checks that both agree.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Final, Protocol

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tocw.client.errors import (
    AttestationError,
    InsecureEvidenceError,
    MrenclaveMismatchError,
)
from tocw.primitives.errors import PrimitivesError
from tocw.primitives.shielding import ShieldingPublicKey
from tocw.primitives.types import AccountId, MrEnclave
from tocw.tee.attestation import (
    ATTESTATION_CODEC,
    SIGNER_PUBLIC_KEY_LEN,
    Attestation,
    key_binding,
)
from tocw.tee.base import TeeKind
from tocw.tee.errors import (
    EvidenceError,
    MeasurementMismatchError,
    SimEvidenceRefusedError,
)
from tocw.tee.verify import DEFAULT_ACCEPTED_STATUSES, verify_evidence

SIM_WARNING: Final = (
    "WARNING: NOT SECURE: the worker runs the simulated TEE (sim); its attestation proves "
    "nothing, anyone could have produced it. Accepted only because attestation checks were "
    "explicitly skipped (--insecure-skip-attestation): use this for development only."
)


class AttestedEndpoint(Protocol):
    """What verify_worker needs of a worker connection (tocw.client.worker.Worker has it)."""

    @property
    def url(self) -> str: ...

    @property
    def certificate(self) -> bytes:
        """DER of the TLS certificate the connection is pinned to."""
        ...

    async def attestation(self) -> Attestation: ...

    async def shielding_key_json(self) -> str: ...


@dataclass(frozen=True, slots=True)
class WorkerIdentity:
    """What a verified attestation establishes about a worker: the only source of a shielding
    key the SDK encrypts to."""

    url: str
    mrenclave: MrEnclave
    tee_kind: TeeKind
    signer: AccountId  # the enclave's parentchain account (report_data[0..32])
    shielding_key: ShieldingPublicKey
    shielding_key_json: str
    certificate: bytes  # DER, pinned for every further connection
    tcb_status: str
    advisory_ids: tuple[str, ...]

    @property
    def is_secure(self) -> bool:
        """False for sim evidence, which anyone can produce."""
        return self.tee_kind is not TeeKind.SIM


def tls_public_key_der(certificate_der: bytes) -> bytes:
    """DER SubjectPublicKeyInfo of a certificate's key: what report_data binds."""
    try:
        cert = x509.load_der_x509_certificate(bytes(certificate_der))
    except ValueError as e:
        raise AttestationError(f"the worker's TLS certificate does not parse: {e}") from None
    return cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def decode_attestation(raw: bytes) -> Attestation:
    try:
        return ATTESTATION_CODEC.decode(raw)
    except PrimitivesError as e:
        raise AttestationError(f"the worker's attestation does not decode: {e}") from None


async def verify_worker(
    worker: AttestedEndpoint,
    expected_mrenclave: MrEnclave | None = None,
    *,
    allow_sim: bool = False,
    collateral: bytes | str | None = None,
    now: int | None = None,
    allow_debug: bool = False,
    accepted_statuses: frozenset[str] = DEFAULT_ACCEPTED_STATUSES,
) -> WorkerIdentity:
    """Fetch the worker's attestation and shielding key and check that the evidence binds that
    key and the TLS certificate the connection is pinned to.

    expected_mrenclave: None accepts any measurement (the caller shows it to the user).
    allow_sim: accept sim evidence, which proves nothing (development only).
    collateral: dcap-qvl QuoteCollateralV3 JSON for SGX/TDX quotes; `now` (unix seconds, default
        the current time) is when certificates and collateral must be valid.
    """
    attestation = await worker.attestation()
    key_json = await worker.shielding_key_json()
    try:
        shielding_key = ShieldingPublicKey.from_json(key_json)
    except PrimitivesError as e:
        raise AttestationError(f"the worker's shielding key is malformed: {e}") from None
    when = int(time.time()) if now is None else now
    if attestation.tee_kind in (TeeKind.SGX_DCAP, TeeKind.TDX_DCAP) and collateral is None:
        raise AttestationError(
            f"the worker at {worker.url} offers a {attestation.tee_kind.name} quote, which needs "
            "DCAP collateral to verify: pass --collateral FILE (QuoteCollateralV3 JSON for the "
            "worker's platform), or use a chain whose Teerex stores it"
        )
    try:
        verified = await asyncio.to_thread(
            verify_evidence,
            attestation.to_evidence(),
            expected_mrenclave,
            when,
            collateral,
            allow_debug=allow_debug,
            accepted_statuses=accepted_statuses,
            allow_sim=allow_sim,
        )
    except SimEvidenceRefusedError:
        raise InsecureEvidenceError(
            f"the worker at {worker.url} runs the simulated TEE (sim): its attestation proves "
            "nothing and is refused; pass --insecure-skip-attestation to use it anyway "
            "(development only)"
        ) from None
    except MeasurementMismatchError:
        assert expected_mrenclave is not None
        raise MrenclaveMismatchError(
            f"mrenclave mismatch: the worker at {worker.url} is attested with "
            f"0x{bytes(attestation.mrenclave).hex()}, expected 0x{bytes(expected_mrenclave).hex()}"
        ) from None
    except EvidenceError as e:
        raise AttestationError(f"the worker's attestation does not verify: {e}") from None
    if verified.mrenclave != bytes(attestation.mrenclave):
        raise AttestationError(
            "the worker claims MRENCLAVE 0x"
            f"{bytes(attestation.mrenclave).hex()} but its evidence measures "
            f"0x{verified.mrenclave.hex()}"
        )
    report_data = verified.report_data
    expected = key_binding(key_json, tls_public_key_der(worker.certificate))
    if report_data[SIGNER_PUBLIC_KEY_LEN:] != expected:
        raise AttestationError(
            f"the attestation of {worker.url} does not bind the shielding key and TLS "
            "certificate it presented (a swapped key or a man in the middle): refusing it"
        )
    return WorkerIdentity(
        url=worker.url,
        mrenclave=MrEnclave(verified.mrenclave),
        tee_kind=verified.kind,
        signer=AccountId(report_data[:SIGNER_PUBLIC_KEY_LEN]),
        shielding_key=shielding_key,
        shielding_key_json=key_json,
        certificate=bytes(worker.certificate),
        tcb_status=verified.tcb_status,
        advisory_ids=verified.advisory_ids,
    )
