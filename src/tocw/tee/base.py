"""The one interface every TEE backend implements (ARCHITECTURE.md "TEE backends").

The enclave asks its backend for three things: who it is (measurement), a hardware-signed
statement binding 64 bytes of its choice (report -> Evidence), and a key to seal data at rest.
Backends take their root path as a parameter so tests can drive them with fake file trees.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol, runtime_checkable

from tocw.primitives.types import MrEnclave


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
