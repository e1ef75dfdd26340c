"""tocw.client.attestation: a worker is trusted only if its evidence binds what it presented."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tocw.client.attestation import (
    WorkerIdentity,
    decode_attestation,
    tls_public_key_der,
    verify_worker,
)
from tocw.client.errors import AttestationError, InsecureEvidenceError, MrenclaveMismatchError
from tocw.enclave.keys import TlsIdentity
from tocw.primitives.keys import Keypair, KeyScheme
from tocw.primitives.shielding import ShieldingKey
from tocw.primitives.types import MrEnclave
from tocw.tee.attestation import Attestation, key_binding
from tocw.tee.base import TeeKind
from tocw.tee.sim import SimBackend

# shared/ lies beside the repository checkout (as in CI): ../shared/testdata/dcap
DCAP = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "dcap"
SHIELDING = ShieldingKey.generate()
OTHER_SHIELDING = ShieldingKey.generate()


@dataclass
class FakeWorker:
    """What verify_worker reads from a worker connection, without sockets."""

    url: str
    certificate: bytes
    served_attestation: Attestation
    key_json: str

    async def attestation(self) -> Attestation:
        return self.served_attestation

    async def shielding_key_json(self) -> str:
        return self.key_json


@dataclass(frozen=True)
class Enclave:
    backend: SimBackend
    tls: TlsIdentity
    signer: Keypair


@pytest.fixture(scope="module")
def enclave(tmp_path_factory: pytest.TempPathFactory) -> Enclave:
    root = tmp_path_factory.mktemp("sim")
    (root / "src").mkdir()
    (root / "src" / "stf.py").write_text("X = 1\n")
    backend = SimBackend(root / "data", [root / "src"], root=root / "src")
    return Enclave(backend, TlsIdentity.generate(), Keypair.generate(KeyScheme.ED25519))


def _worker(
    enclave: Enclave, *, key_json: str | None = None, cert: bytes | None = None
) -> FakeWorker:
    """A worker whose evidence binds SHIELDING and its TLS key; the served parts may differ."""
    bound_json = SHIELDING.public_key().to_json()
    certificate = enclave.tls.certificate.public_bytes(Encoding.DER)
    report_data = enclave.signer.public_key + key_binding(
        bound_json, tls_public_key_der(certificate)
    )
    evidence = enclave.backend.report(report_data)
    attestation = Attestation(
        TeeKind.SIM, enclave.backend.measurement(), report_data, evidence.data
    )
    return FakeWorker(
        "wss://worker.test:2000",
        cert if cert is not None else certificate,
        attestation,
        key_json if key_json is not None else bound_json,
    )


def _verify(worker: FakeWorker, **kwargs: object) -> WorkerIdentity:
    return asyncio.run(verify_worker(worker, **kwargs))  # type: ignore[arg-type]


def test_attestation_sim_accepted_only_when_allowed(enclave: Enclave) -> None:
    """Sim evidence is refused by default and accepted, marked insecure, with allow_sim."""
    worker = _worker(enclave)
    with pytest.raises(InsecureEvidenceError, match="--insecure-skip-attestation"):
        _verify(worker)
    identity = _verify(worker, allow_sim=True)
    assert identity.mrenclave == enclave.backend.measurement()
    assert identity.signer == enclave.signer.public_key
    assert identity.shielding_key == SHIELDING.public_key()
    assert identity.tee_kind is TeeKind.SIM and not identity.is_secure


def test_attestation_expected_mrenclave(enclave: Enclave) -> None:
    """A wrong expected MRENCLAVE is MrenclaveMismatchError; the right one passes."""
    worker = _worker(enclave)
    _verify(worker, allow_sim=True, expected_mrenclave=enclave.backend.measurement())
    with pytest.raises(MrenclaveMismatchError, match="mrenclave mismatch"):
        _verify(worker, allow_sim=True, expected_mrenclave=MrEnclave(bytes(32)))


def test_attestation_swapped_shielding_key_refused(enclave: Enclave) -> None:
    """A host serving another shielding key than the one the evidence binds is caught."""
    worker = _worker(enclave, key_json=OTHER_SHIELDING.public_key().to_json())
    with pytest.raises(AttestationError, match="does not bind"):
        _verify(worker, allow_sim=True)


def test_attestation_other_tls_certificate_refused(enclave: Enclave) -> None:
    """A man in the middle with its own certificate is caught by the binding."""
    mitm = TlsIdentity.generate().certificate.public_bytes(Encoding.DER)
    with pytest.raises(AttestationError, match="does not bind"):
        _verify(_worker(enclave, cert=mitm), allow_sim=True)


def test_attestation_whitespace_in_key_json_matters(enclave: Enclave) -> None:
    """The binding is over the JSON exactly as served: a re-serialised key does not pass."""
    served = json.dumps(json.loads(SHIELDING.public_key().to_json()), indent=1)
    with pytest.raises(AttestationError, match="does not bind"):
        _verify(_worker(enclave, key_json=served), allow_sim=True)


def test_attestation_claim_must_match_evidence(enclave: Enclave) -> None:
    """A claimed MRENCLAVE other than the measured one is refused."""
    worker = _worker(enclave)
    worker.served_attestation = dataclasses.replace(
        worker.served_attestation, mrenclave=MrEnclave(bytes(32))
    )
    with pytest.raises(AttestationError, match="claims"):
        _verify(worker, allow_sim=True)


def test_attestation_forged_sim_signature_refused(enclave: Enclave) -> None:
    """A sim statement whose signature does not verify is refused even with allow_sim."""
    worker = _worker(enclave)
    evidence = bytearray(worker.served_attestation.evidence)
    evidence[-1] ^= 1
    worker.served_attestation = dataclasses.replace(
        worker.served_attestation, evidence=bytes(evidence)
    )
    with pytest.raises(AttestationError, match="does not verify"):
        _verify(worker, allow_sim=True)


def test_attestation_dcap_quote_verified_then_binding_checked(enclave: Enclave) -> None:
    """A real SGX quote (Phala dcap-qvl sample) verifies with its collateral at its pinned
    time, and is then refused because it binds other report data than this worker's keys."""
    expected = json.loads((DCAP / "EXPECTED.json").read_text())["sgx_quote"]
    quote = (DCAP / "sgx_quote").read_bytes()
    collateral = (DCAP / "sgx_quote_collateral.json").read_text()
    worker = _worker(enclave)
    worker.served_attestation = Attestation(
        TeeKind.SGX_DCAP,
        MrEnclave(bytes.fromhex(expected["mr_enclave"])),
        bytes.fromhex(expected["report_data"]),
        quote,
    )
    with pytest.raises(AttestationError, match="does not bind"):
        _verify(
            worker,
            collateral=collateral,
            now=expected["verify_at_unix"],
            accepted_statuses=frozenset({expected["expected_status"]}),
        )
    with pytest.raises(AttestationError, match="collateral"):
        _verify(worker, now=expected["verify_at_unix"])


def test_attestation_garbage_is_attestation_error() -> None:
    """Bytes that are no Attestation give AttestationError, not a decoder exception."""
    with pytest.raises(AttestationError, match="does not decode"):
        decode_attestation(b"\x09" + b"\x00" * 10)
    with pytest.raises(AttestationError, match="does not parse"):
        tls_public_key_der(b"not a certificate")
