"""Evidence verification on the real DCAP samples (shared/testdata/dcap), sim evidence, parsers.

The samples come from Phala-Network/dcap-qvl's sample/ folder (MIT); EXPECTED.json pins the
verification time inside the collateral's validity and the expected results.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tocw.primitives.errors import ScaleDecodeError
from tocw.primitives.types import MrEnclave
from tocw.tee import EVIDENCE_CODEC, Evidence, TeeKind, verify_evidence
from tocw.tee.errors import (
    CollateralError,
    DebugEnclaveError,
    EvidenceError,
    EvidenceFormatError,
    EvidenceSignatureError,
    MeasurementMismatchError,
    QuoteVerificationError,
    ReportDataMismatchError,
    SimEvidenceRefusedError,
    TcbStatusError,
    UnsupportedEvidenceError,
)
from tocw.tee.sim import (
    SIM_EVIDENCE_CODEC,
    SimBackend,
    SimEvidence,
    SimStatement,
    sim_signing_payload,
)
from tocw.tee.verify import (
    QUOTE_HEADER_SIZE,
    SIM_TCB_STATUS,
    SgxReportBody,
    TdReportBody,
    is_debug_attributes,
    parse_quote_body,
    parse_snp_report,
    parse_td_report_body,
    tdx_mrenclave,
    validate_debug_policy,
)

DAY = 86400
# shared/ lies beside the repository checkout (as in CI): ../shared/testdata/dcap
_CANDIDATES = [Path(__file__).resolve().parents[3] / "shared" / "testdata" / "dcap"]


def dcap_dir() -> Path:
    for candidate in _CANDIDATES:
        if (candidate / "EXPECTED.json").is_file():
            return candidate
    raise FileNotFoundError(f"DCAP sample quotes not found in any of {_CANDIDATES}")


@dataclass(frozen=True)
class Sample:
    kind: TeeKind
    quote: bytes
    collateral: str
    now: int
    expected: dict[str, Any]


def load_sample(name: str) -> Sample:
    base = dcap_dir()
    expected = json.loads((base / "EXPECTED.json").read_text())[name]
    return Sample(
        kind=TeeKind.SGX_DCAP if name == "sgx_quote" else TeeKind.TDX_DCAP,
        quote=(base / name).read_bytes(),
        collateral=(base / expected["collateral"]).read_text(),
        now=expected["verify_at_unix"],
        expected=expected,
    )


@pytest.fixture(scope="module")
def sgx() -> Sample:
    return load_sample("sgx_quote")


@pytest.fixture(scope="module")
def tdx() -> Sample:
    return load_sample("tdx_quote")


def expected_tdx_mrenclave(quote: bytes) -> bytes:
    """sha256(MRTD ‖ RTMR0..3) computed from raw offsets (quote v4, body after 48-byte header)."""
    body = quote[48 : 48 + 584]
    return hashlib.sha256(body[136:184] + body[328:520]).digest()


def test_verify_evidence_sgx_sample_matches_expected(sgx: Sample) -> None:
    """The real SGX quote verifies with the status, advisories and values of EXPECTED.json."""
    mrenclave = MrEnclave(bytes.fromhex(sgx.expected["mr_enclave"]))
    result = verify_evidence(Evidence(sgx.kind, sgx.quote), mrenclave, sgx.now, sgx.collateral)
    assert result.kind is TeeKind.SGX_DCAP
    assert result.tcb_status == sgx.expected["expected_status"]
    assert list(result.advisory_ids) == sgx.expected["expected_advisory_ids"]
    assert result.mrenclave == mrenclave
    assert result.report_data == bytes.fromhex(sgx.expected["report_data"])
    assert result.is_debug is False


def test_verify_evidence_tdx_sample_matches_expected(tdx: Sample) -> None:
    """The real TDX quote verifies; its MrEnclave is sha256(MRTD ‖ RTMR0..3)."""
    body = parse_quote_body(tdx.quote).body
    assert isinstance(body, TdReportBody)
    assert body.mr_td == bytes.fromhex(tdx.expected["mr_td"])
    mrenclave = MrEnclave(expected_tdx_mrenclave(tdx.quote))
    result = verify_evidence(Evidence(tdx.kind, tdx.quote), mrenclave, tdx.now, tdx.collateral)
    assert result.kind is TeeKind.TDX_DCAP
    assert result.tcb_status == tdx.expected["expected_status"]
    assert list(result.advisory_ids) == tdx.expected["expected_advisory_ids"]
    assert result.report_data == bytes.fromhex(tdx.expected["report_data"])


def test_verify_evidence_collateral_as_bytes(sgx: Sample) -> None:
    """Collateral may be passed as the stored file's bytes."""
    result = verify_evidence(Evidence(sgx.kind, sgx.quote), None, sgx.now, sgx.collateral.encode())
    assert result.tcb_status == sgx.expected["expected_status"]


@pytest.mark.parametrize(
    ("name", "offset"),
    [
        ("sgx_quote", 48 + 64),  # MRENCLAVE
        ("sgx_quote", 48 + 128),  # MRSIGNER
        ("sgx_quote", 48 + 320),  # REPORTDATA
        ("sgx_quote", 48 + 383),  # last body byte
        ("sgx_quote", 10),  # header
        ("tdx_quote", 48 + 136),  # MRTD
        ("tdx_quote", 48 + 472),  # RTMR3
        ("tdx_quote", 48 + 520),  # REPORTDATA
        ("tdx_quote", 48 + 583),  # last body byte
    ],
)
def test_verify_evidence_flipped_byte_rejected(name: str, offset: int) -> None:
    """Any flipped bit in the signed header or report body fails the quote signature."""
    sample = load_sample(name)
    tampered = bytearray(sample.quote)
    tampered[offset] ^= 0x01
    with pytest.raises(QuoteVerificationError):
        verify_evidence(Evidence(sample.kind, bytes(tampered)), None, sample.now, sample.collateral)


def test_verify_evidence_every_body_byte_is_covered(sgx: Sample) -> None:
    """Flipping each byte of the SGX report body in turn: not one tampered quote verifies."""
    for offset in range(QUOTE_HEADER_SIZE, QUOTE_HEADER_SIZE + 384):
        tampered = bytearray(sgx.quote)
        tampered[offset] ^= 0x80
        with pytest.raises(QuoteVerificationError):
            verify_evidence(Evidence(sgx.kind, bytes(tampered)), None, sgx.now, sgx.collateral)


@pytest.mark.parametrize("name", ["sgx_quote", "tdx_quote"])
def test_verify_evidence_wrong_measurement_rejected(name: str) -> None:
    """A valid quote of another enclave is refused by measurement."""
    sample = load_sample(name)
    with pytest.raises(MeasurementMismatchError):
        verify_evidence(
            Evidence(sample.kind, sample.quote), MrEnclave(bytes(32)), sample.now, sample.collateral
        )


@pytest.mark.parametrize(
    ("name", "shift"), [("sgx_quote", 400), ("tdx_quote", 60), ("sgx_quote", -400)]
)
def test_verify_evidence_collateral_outside_validity_rejected(name: str, shift: int) -> None:
    """Expired (or not yet issued) collateral fails verification."""
    sample = load_sample(name)
    with pytest.raises(QuoteVerificationError):
        verify_evidence(
            Evidence(sample.kind, sample.quote), None, sample.now + shift * DAY, sample.collateral
        )


def test_verify_evidence_status_not_accepted_rejected(sgx: Sample) -> None:
    """A verifier that accepts only UpToDate refuses the SGX sample's platform."""
    with pytest.raises(TcbStatusError, match="ConfigurationAndSWHardeningNeeded"):
        verify_evidence(
            Evidence(sgx.kind, sgx.quote),
            None,
            sgx.now,
            sgx.collateral,
            accepted_statuses=frozenset({"UpToDate"}),
        )


def test_verify_evidence_expected_report_data(tdx: Sample) -> None:
    """expected_report_data must equal the quote's REPORTDATA."""
    own = bytes.fromhex(tdx.expected["report_data"])
    evidence = Evidence(tdx.kind, tdx.quote)
    verify_evidence(evidence, None, tdx.now, tdx.collateral, expected_report_data=own)
    with pytest.raises(ReportDataMismatchError):
        verify_evidence(evidence, None, tdx.now, tdx.collateral, expected_report_data=bytes(64))


@pytest.mark.parametrize("collateral", [None, "", "{}", b"\xff\xfe", "not json"])
def test_verify_evidence_bad_collateral_rejected(sgx: Sample, collateral: str | None) -> None:
    """Missing or malformed collateral is a CollateralError."""
    with pytest.raises(CollateralError):
        verify_evidence(Evidence(sgx.kind, sgx.quote), None, sgx.now, collateral)


def test_verify_evidence_collateral_of_other_platform_rejected(sgx: Sample, tdx: Sample) -> None:
    """The TDX collateral does not verify the SGX quote."""
    with pytest.raises(QuoteVerificationError):
        verify_evidence(Evidence(sgx.kind, sgx.quote), None, sgx.now, tdx.collateral)


def test_verify_evidence_declared_kind_must_match(sgx: Sample, tdx: Sample) -> None:
    """An SGX quote offered as TDX evidence (or vice versa) is malformed evidence."""
    with pytest.raises(EvidenceFormatError):
        verify_evidence(Evidence(TeeKind.TDX_DCAP, sgx.quote), None, sgx.now, sgx.collateral)
    with pytest.raises(EvidenceFormatError):
        verify_evidence(Evidence(TeeKind.SGX_DCAP, tdx.quote), None, tdx.now, tdx.collateral)


@pytest.mark.parametrize("size", [0, 10, 48, 300, 1000])
def test_verify_evidence_truncated_quote_rejected(sgx: Sample, size: int) -> None:
    """Truncated quotes give a typed EvidenceError."""
    with pytest.raises(EvidenceError):
        verify_evidence(Evidence(sgx.kind, sgx.quote[:size]), None, sgx.now, sgx.collateral)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_verify_evidence_mutated_quotes_only_raise_evidence_errors(sgx: Sample, data: Any) -> None:
    """Random byte edits, cuts and appends never escape as anything but EvidenceError."""
    quote = bytearray(sgx.quote)
    position = data.draw(st.integers(0, len(quote) - 1))
    action = data.draw(st.sampled_from(["set", "cut", "append"]))
    if action == "set":
        quote[position] = data.draw(st.integers(0, 255))
    elif action == "cut":
        del quote[position:]
    else:
        quote[position:position] = data.draw(st.binary(min_size=1, max_size=64))
    try:
        result = verify_evidence(Evidence(sgx.kind, bytes(quote)), None, sgx.now, sgx.collateral)
    except EvidenceError:
        return
    # Only edits outside the signed header and body (e.g. PEM whitespace) may still verify.
    assert result.mrenclave == bytes.fromhex(sgx.expected["mr_enclave"])
    assert result.report_data == bytes.fromhex(sgx.expected["report_data"])


def test_verify_evidence_argument_errors(sgx: Sample) -> None:
    """A negative time or wrongly sized expectations are caller bugs (ValueError)."""
    evidence = Evidence(sgx.kind, sgx.quote)
    with pytest.raises(ValueError, match="now"):
        verify_evidence(evidence, None, -1, sgx.collateral)
    with pytest.raises(ValueError, match="expected_mrenclave"):
        verify_evidence(evidence, MrEnclave(bytes(31)), sgx.now, sgx.collateral)
    with pytest.raises(ValueError, match="expected_report_data"):
        verify_evidence(evidence, None, sgx.now, sgx.collateral, expected_report_data=b"x")


def test_parse_quote_body_agrees_with_expected(sgx: Sample, tdx: Sample) -> None:
    """The hand-written parser reads the same fields dcap-qvl verified."""
    s = parse_quote_body(sgx.quote)
    assert (s.version, s.kind) == (3, TeeKind.SGX_DCAP)
    assert s.mrenclave == bytes.fromhex(sgx.expected["mr_enclave"])
    assert isinstance(s.body, SgxReportBody)
    assert s.body.mr_signer == bytes.fromhex(sgx.expected["mr_signer"])
    assert s.report_data == bytes.fromhex(sgx.expected["report_data"])
    t = parse_quote_body(tdx.quote)
    assert (t.version, t.kind) == (4, TeeKind.TDX_DCAP)
    assert t.mrenclave == expected_tdx_mrenclave(tdx.quote)
    assert t.report_data == bytes.fromhex(tdx.expected["report_data"])


def test_parse_quote_body_v5_layout(tdx: Sample) -> None:
    """A quote v5 (body type 2 = TDX 1.0, size prefix) parses to the same body."""
    header = bytearray(tdx.quote[:48])
    header[0:2] = (5).to_bytes(2, "little")
    body = tdx.quote[48 : 48 + 584]
    v5 = bytes(header) + (2).to_bytes(2, "little") + (584).to_bytes(4, "little") + body
    parsed = parse_quote_body(v5)
    assert parsed.version == 5
    assert parsed.mrenclave == parse_quote_body(tdx.quote).mrenclave
    with pytest.raises(EvidenceFormatError, match="body type"):
        parse_quote_body(v5[:48] + (9).to_bytes(2, "little") + v5[50:])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda q: q[:47], "header"),
        (lambda q: q[:200], "truncated"),
        (lambda q: (7).to_bytes(2, "little") + q[2:], "version"),
        (lambda q: q[:4] + (0x42).to_bytes(4, "little") + q[8:], "TEE type"),
        (lambda q: q[:4] + (0x81).to_bytes(4, "little") + q[8:], "v3 exists only for SGX"),
    ],
)
def test_parse_quote_body_malformed_raises(sgx: Sample, edit: Any, message: str) -> None:
    """Malformed headers and short quotes raise EvidenceFormatError naming the problem."""
    with pytest.raises(EvidenceFormatError, match=message):
        parse_quote_body(edit(sgx.quote))


def test_parse_td_report_body_wrong_size_raises() -> None:
    """Only the TDX 1.0 and 1.5 body sizes are accepted."""
    with pytest.raises(EvidenceFormatError):
        parse_td_report_body(bytes(600))


def test_is_debug_attributes_reads_each_kinds_debug_bit(sgx: Sample, tdx: Sample) -> None:
    """SGX FLAGS bit 1, TDX TDATTRIBUTES bit 0, SNP POLICY bit 19; the samples are production.

    Neither real sample is a debug enclave (SGX flags 0x05 = INIT|MODE64BIT), and setting the
    bit in a quote breaks its signature, so the debug policy is tested on synthetic attributes.
    """
    assert parse_quote_body(sgx.quote).is_debug is False
    assert parse_quote_body(tdx.quote).is_debug is False
    body = parse_quote_body(sgx.quote).body
    assert isinstance(body, SgxReportBody)
    sgx_attributes = bytearray(body.attributes)
    sgx_attributes[0] |= 0x02
    assert is_debug_attributes(TeeKind.SGX_DCAP, bytes(sgx_attributes))
    assert is_debug_attributes(TeeKind.TDX_DCAP, (1).to_bytes(8, "little"))
    assert not is_debug_attributes(TeeKind.TDX_DCAP, (1 << 28).to_bytes(8, "little"))
    assert is_debug_attributes(TeeKind.SEV_SNP, (0x30000 | 1 << 19).to_bytes(8, "little"))
    assert not is_debug_attributes(TeeKind.SEV_SNP, (0x30000).to_bytes(8, "little"))
    with pytest.raises(EvidenceFormatError):
        is_debug_attributes(TeeKind.SGX_DCAP, bytes(8))
    with pytest.raises(EvidenceFormatError):
        is_debug_attributes(TeeKind.SIM, bytes(8))


def test_validate_debug_policy_refuses_debug_unless_allowed() -> None:
    """A debug enclave is refused by default and accepted only with allow_debug."""
    debug_sgx = (0x07).to_bytes(8, "little") + bytes(8)
    with pytest.raises(DebugEnclaveError):
        validate_debug_policy(TeeKind.SGX_DCAP, debug_sgx, allow_debug=False)
    assert validate_debug_policy(TeeKind.SGX_DCAP, debug_sgx, allow_debug=True) is True
    production = (0x05).to_bytes(8, "little") + bytes(8)
    assert validate_debug_policy(TeeKind.SGX_DCAP, production, allow_debug=False) is False
    with pytest.raises(DebugEnclaveError):
        validate_debug_policy(TeeKind.TDX_DCAP, (1).to_bytes(8, "little"), allow_debug=False)


def test_verify_evidence_debug_bit_set_in_real_quote_rejected(sgx: Sample) -> None:
    """Turning a real quote into a 'debug' one is caught (by its signature)."""
    tampered = bytearray(sgx.quote)
    tampered[48 + 48] |= 0x02
    with pytest.raises(QuoteVerificationError):
        verify_evidence(
            Evidence(sgx.kind, bytes(tampered)), None, sgx.now, sgx.collateral, allow_debug=True
        )


def test_tdx_mrenclave_needs_48_byte_registers() -> None:
    """The TDX measurement is defined only over five 48-byte registers."""
    regs = (bytes(48), bytes(48), bytes(48), bytes(48))
    assert tdx_mrenclave(bytes(48), regs) == hashlib.sha256(bytes(240)).digest()
    with pytest.raises(EvidenceFormatError):
        tdx_mrenclave(bytes(32), regs)


def test_parse_snp_report_fields() -> None:
    """SEV-SNP report fields at their ABI offsets; MrEnclave = sha256(MEASUREMENT)."""
    report = bytearray(0x4A0)
    report[0:4] = (2).to_bytes(4, "little")
    report[0x08:0x10] = (0x30000).to_bytes(8, "little")
    report[0x50:0x90] = bytes(range(64))
    report[0x90:0xC0] = bytes(range(100, 148))
    parsed = parse_snp_report(bytes(report))
    assert parsed.version == 2 and parsed.report_data == bytes(range(64))
    assert parsed.mrenclave == hashlib.sha256(bytes(range(100, 148))).digest()
    assert parsed.is_debug is False
    with pytest.raises(EvidenceFormatError):
        parse_snp_report(bytes(100))


def test_verify_evidence_sev_snp_unsupported() -> None:
    """SEV-SNP evidence says clearly that it cannot be verified here."""
    with pytest.raises(UnsupportedEvidenceError, match="SEV-SNP"):
        verify_evidence(Evidence(TeeKind.SEV_SNP, bytes(0x4A0)), None, 0, None)


@pytest.fixture
def sim_backend(tmp_path: Path) -> SimBackend:
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "m.py").write_text("X = 1\n")
    return SimBackend(tmp_path / "data", [src / "pkg"], root=src)


def test_verify_evidence_sim_accepted_when_allowed(sim_backend: SimBackend) -> None:
    """Sim evidence verifies (signature, measurement) for a verifier in sim mode."""
    report_data = bytes(range(64))
    evidence = sim_backend.report(report_data)
    result = verify_evidence(
        evidence,
        sim_backend.measurement(),
        0,
        None,
        allow_sim=True,
        expected_report_data=report_data,
    )
    assert result.kind is TeeKind.SIM
    assert result.mrenclave == sim_backend.measurement()
    assert result.report_data == report_data
    assert result.tcb_status == SIM_TCB_STATUS


def test_verify_evidence_sim_refused_by_default(sim_backend: SimBackend) -> None:
    """Without allow_sim, sim evidence is refused: it proves nothing."""
    with pytest.raises(SimEvidenceRefusedError):
        verify_evidence(sim_backend.report(bytes(64)), None, 0, None)


def test_verify_evidence_sim_wrong_measurement_rejected(sim_backend: SimBackend) -> None:
    """A genuine sim statement of another measurement is refused."""
    with pytest.raises(MeasurementMismatchError):
        verify_evidence(
            sim_backend.report(bytes(64)), MrEnclave(bytes(32)), 0, None, allow_sim=True
        )


@pytest.mark.parametrize("field_offset", [0, 31, 32, 95, 96, 127, 128, 191])
def test_verify_evidence_sim_tampered_rejected(sim_backend: SimBackend, field_offset: int) -> None:
    """Changing any byte of the statement or signature breaks the signature."""
    data = bytearray(sim_backend.report(bytes(64)).data)
    data[field_offset] ^= 0x01
    with pytest.raises(EvidenceSignatureError):
        verify_evidence(Evidence(TeeKind.SIM, bytes(data)), None, 0, None, allow_sim=True)


def test_verify_evidence_sim_forged_by_other_key_rejected(sim_backend: SimBackend) -> None:
    """A statement naming the platform key but signed by another key is refused."""
    statement = SimStatement(
        measurement=bytes(sim_backend.measurement()),
        report_data=bytes(64),
        platform_key=sim_backend.platform_public_key,
    )
    forger = Ed25519PrivateKey.generate()
    forged = SimEvidence(statement, forger.sign(sim_signing_payload(statement)))
    evidence = Evidence(TeeKind.SIM, SIM_EVIDENCE_CODEC.encode(forged))
    with pytest.raises(EvidenceSignatureError):
        verify_evidence(evidence, sim_backend.measurement(), 0, None, allow_sim=True)
    # What sim cannot prevent (and the docs say): anyone may sign with a key of their own.
    own = SimStatement(
        statement.measurement,
        statement.report_data,
        forger.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
    )
    self_signed = SIM_EVIDENCE_CODEC.encode(SimEvidence(own, forger.sign(sim_signing_payload(own))))
    accepted = verify_evidence(
        Evidence(TeeKind.SIM, self_signed), sim_backend.measurement(), 0, None, allow_sim=True
    )
    assert accepted.kind is TeeKind.SIM


@pytest.mark.parametrize("size", [0, 159, 161])
def test_verify_evidence_sim_malformed_rejected(size: int) -> None:
    """Sim evidence of the wrong length is malformed."""
    with pytest.raises(EvidenceFormatError):
        verify_evidence(Evidence(TeeKind.SIM, bytes(size)), None, 0, None, allow_sim=True)


def test_evidence_codec_roundtrip_and_unknown_kind() -> None:
    """SCALE(Evidence) = u8 kind ‖ Vec<u8>; an unknown kind index is a decode error."""
    evidence = Evidence(TeeKind.TDX_DCAP, b"\x01\x02\x03")
    encoded = EVIDENCE_CODEC.encode(evidence)
    assert encoded == b"\x02\x0c\x01\x02\x03"
    assert EVIDENCE_CODEC.decode(encoded) == evidence
    with pytest.raises(ScaleDecodeError):
        EVIDENCE_CODEC.decode(b"\x09\x00")
