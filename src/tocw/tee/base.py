"""The one interface every TEE backend implements (ARCHITECTURE.md "TEE backends").

The enclave asks its backend for three things: who it is (measurement), a hardware-signed
statement binding 64 bytes of its choice (report -> Evidence), and a key to seal data at rest.
Backends take their root path as a parameter so tests can drive them with fake file trees.

This module also owns the small file-system seam the hardware backends talk through
(`AttestationFs`, real implementation `OsFs`): Gramine's /dev/attestation and the kernel's
configfs-tsm are pseudo-files whose contents are computed on access, which a plain temp dir
cannot imitate. Tests substitute a subclass of `OsFs` that works on a real temp dir and emulates
only what the kernel / Gramine would compute (as httpx ships a transport interface with a test
double next to it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Protocol, runtime_checkable

from tocw.primitives.errors import ScaleDecodeError
from tocw.primitives.scale import U8, Bytes, Mapped, struct
from tocw.primitives.types import MrEnclave
from tocw.tee.errors import InvalidReportDataError

REPORT_DATA_SIZE = 64
MRENCLAVE_SIZE = 32
SEALING_KEY_SIZE = 32

# A pseudo-file larger than this is not an attestation artefact (configfs-tsm caps outblob at
# 32 KiB, SGX quotes are a few KiB); refusing protects against reading a wrong, huge file.
MAX_PSEUDO_FILE_SIZE = 1 << 20


class TeeKind(IntEnum):
    """Kind of evidence; the SCALE index used in the Attestation struct."""

    SIM = 0
    SGX_DCAP = 1
    TDX_DCAP = 2
    SEV_SNP = 3


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a backend produced for one report_data: its kind and the raw bytes to verify."""

    kind: TeeKind
    data: bytes


def _tee_kind(index: int) -> TeeKind:
    try:
        return TeeKind(index)
    except ValueError:
        raise ScaleDecodeError(f"unknown TeeKind index {index}") from None


TEE_KIND_CODEC = Mapped(U8, _tee_kind, int, cls=TeeKind)
# SCALE(Evidence) = kind as u8 index ‖ data as Vec<u8>: the form evidence travels in.
EVIDENCE_CODEC = struct(Evidence, kind=TEE_KIND_CODEC, data=Bytes)


def validate_report_data(report_data: bytes) -> bytes:
    """Raise unless report_data is exactly 64 bytes (every TEE binds exactly that many)."""
    if not isinstance(report_data, bytes | bytearray) or len(report_data) != REPORT_DATA_SIZE:
        size = len(report_data) if isinstance(report_data, bytes | bytearray) else "?"
        raise InvalidReportDataError(f"report_data must be {REPORT_DATA_SIZE} bytes, got {size}")
    return bytes(report_data)


@runtime_checkable
class TeeBackend(Protocol):
    @property
    def name(self) -> str:
        """Short backend name as given on the command line: sim, gramine-sgx, tsm."""
        ...

    @property
    def is_secure(self) -> bool:
        """False for sim: a worker says so loudly in logs and system_health."""
        ...

    def measurement(self) -> MrEnclave: ...

    def report(self, report_data: bytes) -> Evidence:
        """Evidence binding exactly 64 bytes of report_data."""
        ...

    def sealing_key(self) -> bytes:
        """32-byte key for sealing secrets at rest; raises if the backend has none."""
        ...


class AttestationFs(Protocol):
    """The file operations a hardware backend performs on its pseudo-file tree."""

    def read(self, path: Path) -> bytes: ...

    def write(self, path: Path, data: bytes) -> None: ...

    def mkdir(self, path: Path) -> None: ...

    def rmdir(self, path: Path) -> None: ...

    def exists(self, path: Path) -> bool: ...

    def is_dir(self, path: Path) -> bool: ...


class OsFs:
    """The real thing: plain system calls, shaped for pseudo-files.

    Writes never create a file (a missing pseudo-file means the interface is absent, and
    creating it would hide that) and go out in one write() call, because configfs and Gramine
    treat each write as one request. Reads loop until EOF with a size cap.
    """

    def read(self, path: Path) -> bytes:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            chunks: list[bytes] = []
            total = 0
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return b"".join(chunks)
                total += len(chunk)
                if total > MAX_PSEUDO_FILE_SIZE:
                    raise OSError(f"{path}: larger than {MAX_PSEUDO_FILE_SIZE} bytes")
                chunks.append(chunk)
        finally:
            os.close(fd)

    def write(self, path: Path, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(f"{path}: short write ({written} of {len(data)} bytes)")
        finally:
            os.close(fd)

    def mkdir(self, path: Path) -> None:
        os.mkdir(path)

    def rmdir(self, path: Path) -> None:
        os.rmdir(path)

    def exists(self, path: Path) -> bool:
        return path.exists()

    def is_dir(self, path: Path) -> bool:
        return path.is_dir()
