"""Verification of evidence of every TeeKind, and the byte layouts of the reports inside it.

`verify_evidence` is the one entry point: a worker checks a peer's evidence before handing it
the shielding key, a client checks a worker's before encrypting to it. DCAP quotes (SGX, TDX)
are verified by the dcap-qvl package (signature chain to Intel's root, CRLs, TCB info, QE
identity) against collateral the caller stores, at a time the caller passes in: collateral
expires after about a month, so "now" is an argument, never the wall clock read here.

The fixed-offset parsers (`parse_quote_body`, `parse_sgx_report_body`, `parse_td_report_body`,
`parse_snp_report`) are written by hand because they must work with no collateral and no
signature check: a backend reads the measurement and report_data of the quote it just produced
(to catch stale or foreign reports), and the policy checks are testable on synthetic values.
Verification itself never relies on them for a verified quote: it takes every field from
dcap-qvl's own parse of the bytes it verified.

Measurement (MrEnclave, 32 bytes) per kind; tsm.py produces the same values:
- SIM: the statement's measurement (see sim.py).
- SGX_DCAP: MRENCLAVE of the enclave report body.
- TDX_DCAP: sha256(MRTD ‖ RTMR0 ‖ RTMR1 ‖ RTMR2 ‖ RTMR3), 5 x 48 bytes. MRTD alone covers only
  the TD firmware; the RTMRs add the kernel, command line and initrd (and through a dm-verity
  root hash on the command line, the file system holding tocw), so together they are the
  code identity of a TD. Hashing keeps it at 32 bytes, the size shards and registries use.
- SEV_SNP: sha256(MEASUREMENT) of the attestation report (48 bytes); produced by the tsm
  backend, not verifiable here yet (no SEV-SNP verifier: UnsupportedEvidenceError).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Set
from dataclasses import dataclass
from typing import Any

import dcap_qvl
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tocw.primitives.errors import ScaleDecodeError
from tocw.primitives.types import MrEnclave
from tocw.tee.base import MRENCLAVE_SIZE, REPORT_DATA_SIZE, Evidence, TeeKind
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
from tocw.tee.sim import SIM_EVIDENCE_CODEC, sim_signing_payload

DEFAULT_ACCEPTED_STATUSES: frozenset[str] = frozenset(
    {"UpToDate", "SWHardeningNeeded", "ConfigurationAndSWHardeningNeeded", "ConfigurationNeeded"}
)
SIM_TCB_STATUS = "Simulated"  # tcb_status of verified sim evidence: there is no platform TCB

# Quote layouts (Intel DCAP quote library API, appendices "Quote format" v3/v4/v5).
QUOTE_HEADER_SIZE = 48
TEE_TYPE_SGX = 0x00000000
TEE_TYPE_TDX = 0x00000081
SGX_REPORT_BODY_SIZE = 384
TD10_REPORT_BODY_SIZE = 584
TD15_REPORT_BODY_SIZE = 648
# Quote v5 prefixes the body with (type u16, size u32); these types have the layouts above.
_V5_BODY_TYPES = {1: SGX_REPORT_BODY_SIZE, 2: TD10_REPORT_BODY_SIZE, 3: TD15_REPORT_BODY_SIZE}

# SEV-SNP ATTESTATION_REPORT (SEV-SNP firmware ABI specification, table "ATTESTATION_REPORT").
SNP_REPORT_SIZE = 0x4A0

# Debug bits: SGX ATTRIBUTES.FLAGS bit 1, TDX TDATTRIBUTES bit 0 (TUD.DEBUG), SNP POLICY bit 19.
SGX_FLAG_DEBUG = 1 << 1
TDX_ATTRIBUTE_DEBUG = 1 << 0
SNP_POLICY_DEBUG = 1 << 19


@dataclass(frozen=True, slots=True)
class SgxReportBody:
    """The fields of an SGX REPORTBODY (384 bytes) that attestation decisions use."""

    cpu_svn: bytes  # 16 @0
    misc_select: int  # u32 @16
    attributes: bytes  # 16 @48: FLAGS u64 LE then XFRM
    mr_enclave: bytes  # 32 @64
    mr_signer: bytes  # 32 @128
    isv_prod_id: int  # u16 @256
    isv_svn: int  # u16 @258
    report_data: bytes  # 64 @320

    @property
    def is_debug(self) -> bool:
        return is_debug_attributes(TeeKind.SGX_DCAP, self.attributes)


@dataclass(frozen=True, slots=True)
class TdReportBody:
    """The fields of a TDX TD report body (TDREPORT 1.0 layout; 1.5 only appends fields)."""

    tee_tcb_svn: bytes  # 16 @0
    mr_seam: bytes  # 48 @16
    mr_signer_seam: bytes  # 48 @64
    seam_attributes: bytes  # 8 @112
    td_attributes: bytes  # 8 @120
    xfam: bytes  # 8 @128
    mr_td: bytes  # 48 @136
    mr_config_id: bytes  # 48 @184
    mr_owner: bytes  # 48 @232
    mr_owner_config: bytes  # 48 @280
    rtmrs: tuple[bytes, bytes, bytes, bytes]  # 4 x 48 @328
    report_data: bytes  # 64 @520

    @property
    def is_debug(self) -> bool:
        return is_debug_attributes(TeeKind.TDX_DCAP, self.td_attributes)


@dataclass(frozen=True, slots=True)
class ParsedQuote:
    """Header facts and report body of a DCAP quote, parsed without verifying anything."""

    version: int
    tee_type: int
    body: SgxReportBody | TdReportBody

    @property
    def kind(self) -> TeeKind:
        return TeeKind.SGX_DCAP if isinstance(self.body, SgxReportBody) else TeeKind.TDX_DCAP

    @property
    def mrenclave(self) -> MrEnclave:
        if isinstance(self.body, SgxReportBody):
            return MrEnclave(self.body.mr_enclave)
        return tdx_mrenclave(self.body.mr_td, self.body.rtmrs)

    @property
    def report_data(self) -> bytes:
        return self.body.report_data

    @property
    def is_debug(self) -> bool:
        return self.body.is_debug


@dataclass(frozen=True, slots=True)
class SnpReport:
    """The fields of an SEV-SNP ATTESTATION_REPORT that attestation decisions use."""

    version: int  # u32 @0x00
    guest_svn: int  # u32 @0x04
    policy: int  # u64 @0x08
    vmpl: int  # u32 @0x30
    report_data: bytes  # 64 @0x50
    measurement: bytes  # 48 @0x90
    host_data: bytes  # 32 @0xC0

    @property
    def mrenclave(self) -> MrEnclave:
        return snp_mrenclave(self.measurement)

    @property
    def is_debug(self) -> bool:
        return is_debug_attributes(TeeKind.SEV_SNP, self.policy.to_bytes(8, "little"))


@dataclass(frozen=True, slots=True)
class VerifiedEvidence:
    """What verified evidence establishes about the TEE that produced it."""

    kind: TeeKind
    mrenclave: MrEnclave
    report_data: bytes  # 64
    tcb_status: str  # dcap-qvl status ("UpToDate", ...) or SIM_TCB_STATUS
    advisory_ids: tuple[str, ...]
    is_debug: bool


def _u16(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 2], "little")


def _u32(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 4], "little")


def parse_sgx_report_body(body: bytes) -> SgxReportBody:
    """Parse an SGX REPORTBODY (exactly 384 bytes), e.g. from a quote or Gramine's report."""
    if len(body) != SGX_REPORT_BODY_SIZE:
        raise EvidenceFormatError(
            f"SGX report body must be {SGX_REPORT_BODY_SIZE} bytes, got {len(body)}"
        )
    return SgxReportBody(
        cpu_svn=body[0:16],
        misc_select=_u32(body, 16),
        attributes=body[48:64],
        mr_enclave=body[64:96],
        mr_signer=body[128:160],
        isv_prod_id=_u16(body, 256),
        isv_svn=_u16(body, 258),
        report_data=body[320:384],
    )


def parse_td_report_body(body: bytes) -> TdReportBody:
    """Parse a TD report body of 584 (TDX 1.0) or 648 (TDX 1.5) bytes."""
    if len(body) not in (TD10_REPORT_BODY_SIZE, TD15_REPORT_BODY_SIZE):
        raise EvidenceFormatError(
            f"TD report body must be {TD10_REPORT_BODY_SIZE} or {TD15_REPORT_BODY_SIZE} bytes, "
            f"got {len(body)}"
        )
    return TdReportBody(
        tee_tcb_svn=body[0:16],
        mr_seam=body[16:64],
        mr_signer_seam=body[64:112],
        seam_attributes=body[112:120],
        td_attributes=body[120:128],
        xfam=body[128:136],
        mr_td=body[136:184],
        mr_config_id=body[184:232],
        mr_owner=body[232:280],
        mr_owner_config=body[280:328],
        rtmrs=(body[328:376], body[376:424], body[424:472], body[472:520]),
        report_data=body[520:584],
    )


def parse_quote_body(quote: bytes) -> ParsedQuote:
    """Header and report body of an SGX (v3, v4, v5) or TDX (v4, v5) DCAP quote.

    Reads only the fixed layout in front of the signature data; nothing is verified.
    """
    if len(quote) < QUOTE_HEADER_SIZE:
        raise EvidenceFormatError(f"quote too short for its header: {len(quote)} bytes")
    version = _u16(quote, 0)
    tee_type = _u32(quote, 4)
    if tee_type not in (TEE_TYPE_SGX, TEE_TYPE_TDX):
        raise EvidenceFormatError(f"unknown quote TEE type 0x{tee_type:08x}")
    at = QUOTE_HEADER_SIZE
    if version in (3, 4):
        if version == 3 and tee_type != TEE_TYPE_SGX:
            raise EvidenceFormatError("quote v3 exists only for SGX")
        size = SGX_REPORT_BODY_SIZE if tee_type == TEE_TYPE_SGX else TD10_REPORT_BODY_SIZE
    elif version == 5:
        if len(quote) < at + 6:
            raise EvidenceFormatError("quote v5 too short for its body descriptor")
        body_type, size = _u16(quote, at), _u32(quote, at + 2)
        at += 6
        if _V5_BODY_TYPES.get(body_type) != size:
            raise EvidenceFormatError(f"unsupported quote v5 body type {body_type} ({size} B)")
        if (body_type == 1) != (tee_type == TEE_TYPE_SGX):
            raise EvidenceFormatError(f"quote v5 body type {body_type} contradicts its TEE type")
    else:
        raise EvidenceFormatError(f"unsupported quote version {version}")
    body = quote[at : at + size]
    if len(body) != size:
        raise EvidenceFormatError(f"quote truncated: body needs {size} bytes, has {len(body)}")
    parsed: SgxReportBody | TdReportBody = (
        parse_sgx_report_body(body) if size == SGX_REPORT_BODY_SIZE else parse_td_report_body(body)
    )
    return ParsedQuote(version, tee_type, parsed)


def parse_snp_report(report: bytes) -> SnpReport:
    """Parse an SEV-SNP ATTESTATION_REPORT (1184 bytes; the sev_guest outblob)."""
    if len(report) < SNP_REPORT_SIZE:
        raise EvidenceFormatError(
            f"SEV-SNP report must be at least {SNP_REPORT_SIZE} bytes, got {len(report)}"
        )
    return SnpReport(
        version=_u32(report, 0x00),
        guest_svn=_u32(report, 0x04),
        policy=int.from_bytes(report[0x08:0x10], "little"),
        vmpl=_u32(report, 0x30),
        report_data=report[0x50:0x90],
        measurement=report[0x90:0xC0],
        host_data=report[0xC0:0xE0],
    )


def tdx_mrenclave(mr_td: bytes, rtmrs: tuple[bytes, bytes, bytes, bytes]) -> MrEnclave:
    """sha256(MRTD ‖ RTMR0 ‖ RTMR1 ‖ RTMR2 ‖ RTMR3): a TD's 32-byte code identity."""
    registers = (mr_td, *rtmrs)
    if len(registers) != 5 or any(len(r) != 48 for r in registers):
        raise EvidenceFormatError("MRTD and RTMR0..3 must be 48 bytes each")
    return MrEnclave(hashlib.sha256(b"".join(registers)).digest())


def snp_mrenclave(measurement: bytes) -> MrEnclave:
    """sha256(MEASUREMENT): an SEV-SNP guest's 32-byte launch identity."""
    if len(measurement) != 48:
        raise EvidenceFormatError("SEV-SNP MEASUREMENT must be 48 bytes")
    return MrEnclave(hashlib.sha256(measurement).digest())


def is_debug_attributes(kind: TeeKind, attributes: bytes) -> bool:
    """True if the attributes mark a debuggable enclave/TD/guest, whose memory the host reads.

    attributes: SGX ATTRIBUTES (16 bytes), TDX TDATTRIBUTES (8 bytes), SNP POLICY (8 bytes LE).
    """
    if kind is TeeKind.SGX_DCAP:
        if len(attributes) != 16:
            raise EvidenceFormatError("SGX ATTRIBUTES must be 16 bytes")
        return bool(int.from_bytes(attributes[:8], "little") & SGX_FLAG_DEBUG)
    if kind is TeeKind.TDX_DCAP:
        if len(attributes) != 8:
            raise EvidenceFormatError("TDX TDATTRIBUTES must be 8 bytes")
        return bool(int.from_bytes(attributes, "little") & TDX_ATTRIBUTE_DEBUG)
    if kind is TeeKind.SEV_SNP:
        if len(attributes) != 8:
            raise EvidenceFormatError("SEV-SNP POLICY must be 8 bytes")
        return bool(int.from_bytes(attributes, "little") & SNP_POLICY_DEBUG)
    raise EvidenceFormatError(f"{kind.name} evidence has no debug attributes")


def validate_debug_policy(kind: TeeKind, attributes: bytes, *, allow_debug: bool) -> bool:
    """Raise DebugEnclaveError for a debug TEE unless allowed; returns whether it is debug."""
    debug = is_debug_attributes(kind, attributes)
    if debug and not allow_debug:
        raise DebugEnclaveError(
            f"{kind.name} evidence comes from a DEBUG enclave/TD: its memory is readable by the "
            "host, so it protects nothing (pass allow_debug=True only for development)"
        )
    return debug


def validate_tcb_status(status: str, advisory_ids: tuple[str, ...], accepted: Set[str]) -> None:
    """Raise TcbStatusError unless the platform's TCB status is one the caller accepts."""
    if status not in accepted:
        raise TcbStatusError(
            f"TCB status {status!r} is not accepted (accepted: {sorted(accepted)}); "
            f"advisories: {list(advisory_ids)}"
        )


def load_collateral(collateral: bytes | str | None) -> Any:
    """dcap-qvl QuoteCollateralV3 from its JSON text (as stored next to the quote)."""
    if collateral is None:
        raise CollateralError("DCAP evidence needs collateral (QuoteCollateralV3 JSON), got None")
    if isinstance(collateral, bytes | bytearray):
        try:
            collateral = bytes(collateral).decode("utf-8")
        except UnicodeDecodeError as e:
            raise CollateralError(f"collateral is not UTF-8 JSON: {e}") from None
    try:
        return dcap_qvl.QuoteCollateralV3.from_json(collateral)
    except ValueError as e:
        raise CollateralError(f"malformed collateral: {e}") from None


def _qvl(what: str, call: Callable[[], Any], error: type[EvidenceError]) -> Any:
    """Run a dcap-qvl call, turning every failure into `error`.

    dcap-qvl reports rejections as ValueError; a Rust panic surfaces as pyo3's PanicException,
    which derives from BaseException, so it is caught by name (it has no importable class).
    Hostile bytes must never take the verifier down with an untyped error.
    """
    try:
        return call()
    except Exception as e:
        raise error(f"{what}: {e}") from None
    except BaseException as e:
        if type(e).__name__ != "PanicException":
            raise
        raise error(f"{what}: dcap-qvl panicked: {e}") from None


@dataclass(frozen=True, slots=True)
class _Policy:
    now: int
    collateral: bytes | str | None
    allow_debug: bool
    allow_sim: bool
    accepted_statuses: Set[str]


def _verify_sim(evidence: Evidence, policy: _Policy) -> VerifiedEvidence:
    if not policy.allow_sim:
        raise SimEvidenceRefusedError(
            "sim evidence proves nothing (anyone can sign it) and is refused; a verifier "
            "accepts it only when it runs in sim mode itself (allow_sim=True)"
        )
    try:
        sim = SIM_EVIDENCE_CODEC.decode(evidence.data)
    except ScaleDecodeError as e:
        raise EvidenceFormatError(f"malformed sim evidence: {e}") from None
    statement = sim.statement
    try:
        Ed25519PublicKey.from_public_bytes(statement.platform_key).verify(
            sim.signature, sim_signing_payload(statement)
        )
    except (InvalidSignature, ValueError):
        raise EvidenceSignatureError("sim statement signature does not verify") from None
    return VerifiedEvidence(
        kind=TeeKind.SIM,
        mrenclave=MrEnclave(statement.measurement),
        report_data=statement.report_data,
        tcb_status=SIM_TCB_STATUS,
        advisory_ids=(),
        is_debug=False,
    )


def _verify_dcap(evidence: Evidence, policy: _Policy) -> VerifiedEvidence:
    quote = evidence.data
    kind_name = evidence.kind.name
    collateral = load_collateral(policy.collateral)
    parsed = _qvl(
        f"malformed {kind_name} quote", lambda: dcap_qvl.parse_quote(quote), EvidenceFormatError
    )
    quote_kind = TeeKind.TDX_DCAP if parsed.is_tdx() else TeeKind.SGX_DCAP
    if quote_kind is not evidence.kind:
        raise EvidenceFormatError(f"evidence declared {kind_name} but holds a {quote_kind.name}")
    verified = _qvl(
        f"{kind_name} quote rejected by dcap-qvl",
        lambda: dcap_qvl.verify(quote, collateral, policy.now),
        QuoteVerificationError,
    )
    report = parsed.report
    if quote_kind is TeeKind.SGX_DCAP:
        attributes = bytes(report.attributes)
        mrenclave = MrEnclave(bytes(report.mr_enclave))
    else:
        attributes = bytes(report.td_attributes)
        rtmrs = (
            bytes(report.rt_mr0),
            bytes(report.rt_mr1),
            bytes(report.rt_mr2),
            bytes(report.rt_mr3),
        )
        mrenclave = tdx_mrenclave(bytes(report.mr_td), rtmrs)
    debug = validate_debug_policy(quote_kind, attributes, allow_debug=policy.allow_debug)
    status = str(verified.status)
    advisories = tuple(str(a) for a in verified.advisory_ids)
    validate_tcb_status(status, advisories, policy.accepted_statuses)
    return VerifiedEvidence(
        kind=quote_kind,
        mrenclave=mrenclave,
        report_data=bytes(report.report_data),
        tcb_status=status,
        advisory_ids=advisories,
        is_debug=debug,
    )


def _verify_snp(evidence: Evidence, policy: _Policy) -> VerifiedEvidence:
    raise UnsupportedEvidenceError(
        "SEV-SNP evidence cannot be verified: tocw has no SEV-SNP verifier yet (it needs the "
        "AMD VCEK/ASK/ARK chain); only sim, SGX DCAP and TDX DCAP evidence is verified"
    )


_VERIFIERS: dict[TeeKind, Callable[[Evidence, _Policy], VerifiedEvidence]] = {
    TeeKind.SIM: _verify_sim,
    TeeKind.SGX_DCAP: _verify_dcap,
    TeeKind.TDX_DCAP: _verify_dcap,
    TeeKind.SEV_SNP: _verify_snp,
}


def verify_evidence(
    evidence: Evidence,
    expected_mrenclave: MrEnclave | None,
    now: int,
    collateral: bytes | str | None,
    *,
    allow_debug: bool = False,
    accepted_statuses: Set[str] = DEFAULT_ACCEPTED_STATUSES,
    allow_sim: bool = False,
    expected_report_data: bytes | None = None,
) -> VerifiedEvidence:
    """Verify evidence and return what it establishes; raise an EvidenceError otherwise.

    now: unix seconds at which certificates, CRLs and collateral must be valid.
    collateral: dcap-qvl QuoteCollateralV3 JSON for SGX/TDX quotes (ignored for sim).
    expected_mrenclave: None skips the measurement check (the caller inspects the result).
    allow_sim: sim evidence is refused by default, because accepting it would let anyone
        impersonate an enclave; only a verifier that itself runs in sim mode passes True.
    expected_report_data: if given, the evidence must bind exactly these 64 bytes.
    """
    if isinstance(now, bool) or not isinstance(now, int) or now < 0:
        raise ValueError(f"now must be non-negative unix seconds, got {now!r}")
    if expected_mrenclave is not None and len(expected_mrenclave) != MRENCLAVE_SIZE:
        raise ValueError(f"expected_mrenclave must be {MRENCLAVE_SIZE} bytes")
    if expected_report_data is not None and len(expected_report_data) != REPORT_DATA_SIZE:
        raise ValueError(f"expected_report_data must be {REPORT_DATA_SIZE} bytes")
    verifier = _VERIFIERS.get(evidence.kind)
    if verifier is None:
        raise UnsupportedEvidenceError(f"unknown evidence kind {evidence.kind!r}")
    policy = _Policy(now, collateral, allow_debug, allow_sim, accepted_statuses)
    result = verifier(evidence, policy)
    if expected_mrenclave is not None and result.mrenclave != bytes(expected_mrenclave):
        raise MeasurementMismatchError(
            f"{result.kind.name} evidence measures {result.mrenclave.hex()}, "
            f"expected {bytes(expected_mrenclave).hex()}"
        )
    if expected_report_data is not None and result.report_data != bytes(expected_report_data):
        raise ReportDataMismatchError(
            f"evidence binds report_data {result.report_data.hex()}, "
            f"expected {bytes(expected_report_data).hex()}"
        )
    return result
