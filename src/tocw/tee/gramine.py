"""The `gramine-sgx` TEE backend: SGX DCAP attestation and sealing through Gramine's pseudo-files.

Gramine (docs: "Attestation and Secret Provisioning", low-level /dev/attestation interface)
exposes, under /dev/attestation (a configurable root here, so tests use a fake tree):
- attestation_type: "none", "epid" or "dcap". Only "dcap" is usable: "none" means the manifest
  did not enable remote attestation, and EPID's verification service (IAS) is retired.
- user_report_data: write 64 bytes; the next quote binds them.
- quote: read the DCAP quote (v3 header, then the enclave's REPORTBODY).
- my_target_info: read this enclave's TARGETINFO (512 bytes; MRENCLAVE in the first 32, then
  ATTRIBUTES), which gives the measurement without producing a quote.
- keys/_sgx_mrenclave: read the 16-byte SGX sealing key bound to MRENCLAVE (EGETKEY).

The write-then-read pair (user_report_data, quote) is one request made of two file operations
with shared state in between, so it is serialized by a lock: the backend is safe to share
between threads, the underlying interface is not (as Gramine's own RA-TLS library notes).
Every quote is checked to carry the report_data we wrote and our own MRENCLAVE before it
leaves the backend, so a stale or interleaved quote is an error here, not a mystery at the
verifier.

Sealing key: Gramine's key is 128 bits; we expand it to the 32 bytes the enclave expects with
HKDF-SHA256 (no salt, info = SEALING_KEY_INFO). The derivation is deterministic, so the same
enclave on the same CPU always gets the same key, which is the point of MRENCLAVE sealing.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tocw.primitives.types import MrEnclave
from tocw.tee.base import (
    SEALING_KEY_SIZE,
    AttestationFs,
    Evidence,
    OsFs,
    TeeKind,
    validate_report_data,
)
from tocw.tee.errors import (
    EvidenceFormatError,
    ReportError,
    SealingKeyError,
    TeeUnavailableError,
)
from tocw.tee.verify import ParsedQuote, is_debug_attributes, parse_quote_body

logger = logging.getLogger(__name__)

DEFAULT_ROOT = Path("/dev/attestation")
SEALING_KEY_INFO = b"tocw/sealing-key/gramine-sgx/v1"
GRAMINE_KEY_SIZE = 16
TARGET_INFO_SIZE = 512


class GramineSgxBackend:
    """SGX enclave under Gramine with DCAP remote attestation."""

    def __init__(self, root: Path = DEFAULT_ROOT, *, fs: AttestationFs | None = None) -> None:
        self._root = Path(root)
        self._fs: AttestationFs = fs if fs is not None else OsFs()
        self._lock = threading.Lock()
        self._identity: tuple[MrEnclave, bool] | None = None  # (MRENCLAVE, debug)
        self._sealing_key: bytes | None = None
        if not self._fs.is_dir(self._root):
            raise TeeUnavailableError(
                f"{self._root} does not exist: not running inside a Gramine SGX enclave"
            )
        attestation_type = self._read_text("attestation_type")
        if attestation_type == "none":
            raise TeeUnavailableError(
                "Gramine reports attestation_type 'none': enable DCAP with "
                'sgx.remote_attestation = "dcap" in the manifest'
            )
        if attestation_type != "dcap":
            raise TeeUnavailableError(
                f"Gramine attestation_type {attestation_type!r} is not supported; tocw needs "
                "'dcap' (EPID attestation relies on Intel's retired IAS)"
            )
        if self.is_debug:
            logger.warning(
                "gramine-sgx: this enclave is a DEBUG enclave: the host can read its memory; "
                "it is NOT secure and verifiers refuse its evidence by default"
            )

    @property
    def name(self) -> str:
        return "gramine-sgx"

    @property
    def is_secure(self) -> bool:
        """A debug enclave protects nothing, so only a production enclave counts as secure."""
        return not self.is_debug

    @property
    def is_debug(self) -> bool:
        with self._lock:
            return self._load_identity()[1]

    def measurement(self) -> MrEnclave:
        with self._lock:
            return self._load_identity()[0]

    def report(self, report_data: bytes) -> Evidence:
        report_data = validate_report_data(report_data)
        with self._lock:
            mrenclave = self._load_identity()[0]
            quote, parsed = self._quote(report_data)
            if parsed.mrenclave != mrenclave:
                raise ReportError(
                    f"quote carries MRENCLAVE {parsed.mrenclave.hex()}, "
                    f"but this enclave is {mrenclave.hex()}"
                )
        return Evidence(TeeKind.SGX_DCAP, quote)

    def sealing_key(self) -> bytes:
        with self._lock:
            if self._sealing_key is None:
                raw = self._read("keys/_sgx_mrenclave")
                if len(raw) != GRAMINE_KEY_SIZE:
                    raise SealingKeyError(
                        f"Gramine keys/_sgx_mrenclave gave {len(raw)} bytes, "
                        f"expected {GRAMINE_KEY_SIZE}"
                    )
                hkdf = HKDF(SHA256(), SEALING_KEY_SIZE, salt=None, info=SEALING_KEY_INFO)
                self._sealing_key = hkdf.derive(raw)
            return self._sealing_key

    def _load_identity(self) -> tuple[MrEnclave, bool]:
        """(MRENCLAVE, debug) from my_target_info, or from a quote if it is absent. Lock held."""
        if self._identity is None:
            if self._fs.exists(self._root / "my_target_info"):
                info = self._read("my_target_info")
                if len(info) != TARGET_INFO_SIZE:
                    raise ReportError(
                        f"my_target_info has {len(info)} bytes, expected {TARGET_INFO_SIZE}"
                    )
                debug = is_debug_attributes(TeeKind.SGX_DCAP, info[32:48])
                self._identity = (MrEnclave(info[0:32]), debug)
            else:
                _, parsed = self._quote(bytes(64))
                self._identity = (parsed.mrenclave, parsed.is_debug)
        return self._identity

    def _quote(self, report_data: bytes) -> tuple[bytes, ParsedQuote]:
        """Write user_report_data, read the quote, check it binds report_data. Lock held."""
        path = self._root / "user_report_data"
        try:
            self._fs.write(path, report_data)
        except OSError as e:
            raise TeeUnavailableError(f"cannot write {path}: {e}") from e
        quote = self._read("quote")
        try:
            parsed = parse_quote_body(quote)
        except EvidenceFormatError as e:
            raise ReportError(f"Gramine returned a malformed quote: {e}") from e
        if parsed.kind is not TeeKind.SGX_DCAP:
            raise ReportError(f"Gramine returned a {parsed.kind.name} quote, not SGX")
        if parsed.report_data != report_data:
            raise ReportError("Gramine returned a quote for other report_data (stale quote)")
        return quote, parsed

    def _read(self, name: str) -> bytes:
        path = self._root / name
        try:
            return self._fs.read(path)
        except OSError as e:
            raise TeeUnavailableError(f"cannot read {path}: {e}") from e

    def _read_text(self, name: str) -> str:
        return self._read(name).rstrip(b"\x00\n ").decode("ascii", errors="replace")
