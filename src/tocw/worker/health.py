"""What the worker's health endpoints say: `HealthStatus` and its two renderings. No I/O.

Owns the meaning of "initialized" (registered on the parentchain AND synced to the finalized
head; Integritee's offchain-worker mode only asks for the registration, but a worker that is
still replaying a shard's history answers getters with stale state, so a load balancer must not
send clients to it yet) and the JSON of /health. The HTTP server that serves them is
tocw.worker.servers.HealthServer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, Protocol

INITIALIZED_BODY: Final = "I am initialized."  # Integritee's /is_initialized answer


@dataclass(frozen=True, slots=True)
class HealthStatus:
    """A snapshot of the worker's state, as the service knows it.

    last_imported_block: number of the last parentchain block committed by the enclave.
    finalized_head: number of the last finalized head the follower saw (None before the first).
    """

    registered: bool
    synced: bool
    last_imported_block: int | None
    finalized_head: int | None
    tee_kind: str
    is_secure: bool
    last_imported_hash: bytes | None = None
    shard: bytes | None = None

    @property
    def initialized(self) -> bool:
        return self.registered and self.synced

    @property
    def lag(self) -> int | None:
        """Finalized head minus last imported block, when both are known."""
        if self.last_imported_block is None or self.finalized_head is None:
            return None
        return max(0, self.finalized_head - self.last_imported_block)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "initialized": self.initialized,
            "registered": self.registered,
            "synced": self.synced,
            "lastImportedBlock": self.last_imported_block,
            "finalizedHead": self.finalized_head,
            "lag": self.lag,
            "tee": self.tee_kind,
            "isSecure": self.is_secure,
        }
        if self.last_imported_hash is not None:
            out["lastImportedHash"] = "0x" + bytes(self.last_imported_hash).hex()
        if self.shard is not None:
            out["shard"] = "0x" + bytes(self.shard).hex()
        if not self.is_secure:
            out["warning"] = f"NOT SECURE: the {self.tee_kind} TEE backend protects nothing"
        return out


class HealthStatusProvider(Protocol):
    """Returns the current snapshot. The health server calls it from its own thread, so it must
    be thread-safe (returning an immutable snapshot the service replaces is)."""

    def __call__(self) -> HealthStatus: ...


def is_initialized_response(status: HealthStatus) -> tuple[int, str]:
    """(HTTP status, body) of /is_initialized: 200 once initialized, 503 with the reason before."""
    if status.initialized:
        return 200, INITIALIZED_BODY
    if not status.registered:
        return 503, "not initialized: not registered on the parentchain yet"
    behind = "" if status.lag is None else f" ({status.lag} blocks behind)"
    return 503, f"not initialized: syncing with the parentchain{behind}"


def health_response(status: HealthStatus) -> tuple[int, str]:
    """(HTTP status, body) of /health: always 200 with the JSON (the process is alive and
    answering); readiness is /is_initialized's job."""
    return 200, json.dumps(status.to_json(), sort_keys=True)
