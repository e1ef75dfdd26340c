"""Errors of the TEE layer: backends (sim, gramine-sgx, tsm) and evidence verification.

Two halves: errors a backend raises on the machine that produces evidence (the TEE interface is
missing, a key file is wrong, the hardware answered something other than what was asked), and
errors a verifier raises about somebody else's evidence (EvidenceError). Callers that hand the
result to a peer only ever need to catch EvidenceError.

TeeError
├── TeeConfigError             unknown backend name or invalid backend options
├── InvalidReportDataError     report_data is not exactly 64 bytes (caller bug)
├── TeeUnavailableError        the TEE interface is missing or refuses (no /dev/attestation,
│                              attestation_type "none", no configfs-tsm, unsupported provider)
├── SealingKeyError            a key file of the data dir exists but is unusable (size, mode,
│                              owner, file type): never silently replaced
├── SealingUnavailableError    the backend has no sealing key (tsm without a provisioned key)
├── MeasurementError           the measurement cannot be computed (missing source, path outside
│                              the measurement root, nothing to measure)
├── ReportError                the TEE produced a report that does not answer the request
│   │                          (stale report_data, foreign measurement, malformed blob)
│   └── TsmConflictError       configfs-tsm generation moved by someone else during our request
└── EvidenceError              evidence failed verification (tocw.tee.verify)
    ├── EvidenceFormatError        not a well-formed quote / statement of the declared kind
    ├── UnsupportedEvidenceError   this kind of evidence cannot be verified here (SEV-SNP)
    │   └── SimEvidenceRefusedError    sim evidence offered to a verifier that did not allow it
    ├── CollateralError            DCAP collateral missing or malformed
    ├── QuoteVerificationError     dcap-qvl rejected the quote (signature, certificate chain,
    │                              CRL, expired or not-yet-valid collateral)
    ├── EvidenceSignatureError     a sim statement's signature does not verify
    ├── DebugEnclaveError          the enclave / TD runs in debug mode and debug was not allowed
    ├── TcbStatusError             the platform TCB status is not an accepted one
    ├── MeasurementMismatchError   the measurement is not the expected MRENCLAVE
    └── ReportDataMismatchError    report_data is not the expected 64 bytes
"""

from __future__ import annotations


class TeeError(Exception):
    """Root of every error raised by tocw.tee."""


class TeeConfigError(TeeError, ValueError):
    pass


class InvalidReportDataError(TeeError, ValueError):
    pass


class TeeUnavailableError(TeeError):
    pass


class SealingKeyError(TeeError):
    pass


class SealingUnavailableError(TeeError):
    pass


class MeasurementError(TeeError):
    pass


class ReportError(TeeError):
    pass


class TsmConflictError(ReportError):
    pass


class EvidenceError(TeeError):
    pass


class EvidenceFormatError(EvidenceError, ValueError):
    pass


class UnsupportedEvidenceError(EvidenceError):
    pass


class SimEvidenceRefusedError(UnsupportedEvidenceError):
    pass


class CollateralError(EvidenceError, ValueError):
    pass


class QuoteVerificationError(EvidenceError):
    pass


class EvidenceSignatureError(EvidenceError):
    pass


class DebugEnclaveError(EvidenceError):
    pass


class TcbStatusError(EvidenceError):
    pass


class MeasurementMismatchError(EvidenceError):
    pass


class ReportDataMismatchError(EvidenceError):
    pass
