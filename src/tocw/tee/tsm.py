"""The `tsm` TEE backend: TDX and SEV-SNP confidential VMs through Linux configfs-tsm.

Interface (kernel Documentation/ABI/testing/configfs-tsm-report, Linux >= 6.7), under
/sys/kernel/config/tsm (a configurable root here, so tests use a fake tree):
- mkdir report/<name> creates a report instance populated by the kernel with attributes;
- inblob (write-only): up to 64 bytes of report data;
- outblob (read-only): the report for the current inblob and options, in the format named by
  provider: "tdx_guest" -> a TDX DCAP quote, "sev_guest" -> an SEV-SNP ATTESTATION_REPORT;
- privlevel (write-only, SEV-SNP): the VMPL to report at, >= privlevel_floor;
- generation (read-only): incremented on every write to inblob or an option. Reading it before
  and after and counting our own writes detects another writer on the same instance;
- rmdir report/<name> releases the instance.
Each request uses its own freshly named instance (pid + random suffix), so processes do not
collide; the generation check still guards against anything else touching it.

Measurement (32 bytes; the same definition as tocw.tee.verify): TDX -> sha256(MRTD ‖ RTMR0..3),
SEV-SNP -> sha256(MEASUREMENT). The first request (or measurement()) fixes it; a later report
with another measurement (an RTMR extended behind our back) is an error.

Sealing: configfs-tsm gives a guest no sealing key (unlike SGX's EGETKEY). This backend seals
only with a key provisioned by its creator (e.g. released by a key broker after attestation)
and otherwise refuses with SealingUnavailableError instead of inventing one.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from pathlib import Path

from tocw.primitives.types import MrEnclave
from tocw.tee.base import (
    REPORT_DATA_SIZE,
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
    SealingUnavailableError,
    TeeConfigError,
    TeeUnavailableError,
    TsmConflictError,
)
from tocw.tee.verify import parse_quote_body, parse_snp_report

logger = logging.getLogger(__name__)

DEFAULT_ROOT = Path("/sys/kernel/config/tsm")
PROVIDERS: dict[str, TeeKind] = {"tdx_guest": TeeKind.TDX_DCAP, "sev_guest": TeeKind.SEV_SNP}
PRIVLEVEL_MAX = 3

_Identity = tuple[TeeKind, MrEnclave, bool]  # (kind, measurement, debug)


class TsmBackend:
    """Confidential VM (TDX or SEV-SNP) attested through configfs-tsm."""

    def __init__(
        self,
        root: Path = DEFAULT_ROOT,
        *,
        sealing_key: bytes | None = None,
        privlevel: int | None = None,
        fs: AttestationFs | None = None,
    ) -> None:
        self._reports = Path(root) / "report"
        self._fs: AttestationFs = fs if fs is not None else OsFs()
        self._lock = threading.Lock()
        self._identity: _Identity | None = None
        if sealing_key is not None and (
            not isinstance(sealing_key, bytes) or len(sealing_key) != SEALING_KEY_SIZE
        ):
            raise TeeConfigError(f"a provisioned sealing key must be {SEALING_KEY_SIZE} bytes")
        if privlevel is not None and (
            isinstance(privlevel, bool)
            or not isinstance(privlevel, int)
            or not 0 <= privlevel <= PRIVLEVEL_MAX
        ):
            raise TeeConfigError(f"privlevel must be 0..{PRIVLEVEL_MAX}, got {privlevel!r}")
        self._sealing_key = sealing_key
        self._privlevel = privlevel
        if not self._fs.is_dir(self._reports):
            raise TeeUnavailableError(
                f"{self._reports} does not exist: not a TDX/SEV-SNP guest, kernel older than "
                "6.7, or configfs not mounted at the given root"
            )

    @property
    def name(self) -> str:
        return "tsm"

    @property
    def is_secure(self) -> bool:
        """False for a debug TD / SEV-SNP guest with debugging allowed (makes a report once)."""
        with self._lock:
            return not self._load_identity()[2]

    @property
    def kind(self) -> TeeKind:
        """TDX_DCAP or SEV_SNP, as the kernel's provider says (makes a report if not known)."""
        with self._lock:
            return self._load_identity()[0]

    def measurement(self) -> MrEnclave:
        with self._lock:
            return self._load_identity()[1]

    def report(self, report_data: bytes) -> Evidence:
        report_data = validate_report_data(report_data)
        with self._lock:
            evidence, identity = self._request(report_data)
            if self._identity is None:
                self._identity = identity
            elif self._identity != identity:
                raise ReportError(
                    f"the {identity[0].name} measurement or debug mode changed from "
                    f"{self._identity[1].hex()} to {identity[1].hex()} "
                    "(was a measurement register extended?)"
                )
            return evidence

    def sealing_key(self) -> bytes:
        if self._sealing_key is None:
            raise SealingUnavailableError(
                "configfs-tsm provides no sealing key; the tsm backend seals only with a key "
                "provisioned at construction (sealing_key=32 bytes, e.g. from a key broker)"
            )
        return self._sealing_key

    def _load_identity(self) -> _Identity:
        """(kind, measurement, debug), from a report over zero report_data if not known yet."""
        if self._identity is None:
            _, self._identity = self._request(bytes(REPORT_DATA_SIZE))
            if self._identity[2]:
                logger.warning(
                    "tsm: this %s guest runs in DEBUG mode: the host can read its memory; it is "
                    "NOT secure and verifiers refuse its evidence by default",
                    self._identity[0].name,
                )
        return self._identity

    def _request(self, report_data: bytes) -> tuple[Evidence, _Identity]:
        """One report instance: mkdir, provider, generation, write, outblob, check. Lock held."""
        entry = self._reports / f"tocw-{os.getpid()}-{secrets.token_hex(8)}"
        try:
            self._fs.mkdir(entry)
        except OSError as e:
            raise TeeUnavailableError(f"cannot create report instance {entry}: {e}") from e
        try:
            provider = self._read(entry / "provider").strip().decode("ascii", errors="replace")
            kind = PROVIDERS.get(provider)
            if kind is None:
                raise TeeUnavailableError(
                    f"configfs-tsm provider {provider!r} is not supported "
                    f"(supported: {sorted(PROVIDERS)})"
                )
            before = self._generation(entry)
            writes = 0
            if self._privlevel is not None:
                self._write(entry / "privlevel", f"{self._privlevel}\n".encode())
                writes += 1
            self._write(entry / "inblob", report_data)
            writes += 1
            outblob = self._read(entry / "outblob")
            after = self._generation(entry)
            if after != before + writes:
                raise TsmConflictError(
                    f"{entry}: generation went {before} -> {after} for our {writes} write(s): "
                    "another writer changed the request; the report cannot be trusted"
                )
        finally:
            try:
                self._fs.rmdir(entry)
            except OSError as e:
                logger.warning("tsm: could not remove report instance %s: %s", entry, e)
        mrenclave, debug = self._check_outblob(kind, outblob, report_data)
        return Evidence(kind, outblob), (kind, mrenclave, debug)

    def _check_outblob(
        self, kind: TeeKind, outblob: bytes, report_data: bytes
    ) -> tuple[MrEnclave, bool]:
        """(measurement, debug) of the outblob, after checking it binds our report_data."""
        try:
            if kind is TeeKind.TDX_DCAP:
                quote = parse_quote_body(outblob)
                if quote.kind is not TeeKind.TDX_DCAP:
                    raise ReportError(f"tdx_guest returned a {quote.kind.name} quote")
                bound, mrenclave, debug = quote.report_data, quote.mrenclave, quote.is_debug
            else:
                snp = parse_snp_report(outblob)
                bound, mrenclave, debug = snp.report_data, snp.mrenclave, snp.is_debug
        except EvidenceFormatError as e:
            raise ReportError(f"configfs-tsm returned a malformed {kind.name} report: {e}") from e
        if bound != report_data:
            raise ReportError("configfs-tsm returned a report for other report_data (stale)")
        return mrenclave, debug

    def _generation(self, entry: Path) -> int:
        raw = self._read(entry / "generation").strip()
        try:
            return int(raw.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise ReportError(f"{entry}/generation is not a number: {raw!r}") from None

    def _read(self, path: Path) -> bytes:
        try:
            return self._fs.read(path)
        except OSError as e:
            raise TeeUnavailableError(f"cannot read {path}: {e}") from e

    def _write(self, path: Path, data: bytes) -> None:
        try:
            self._fs.write(path, data)
        except OSError as e:
            raise TeeUnavailableError(f"cannot write {path}: {e}") from e
