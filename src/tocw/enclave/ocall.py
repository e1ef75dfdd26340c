"""The OCALL-like interface: everything the enclave asks of the untrusted host.

As Integritee's `ocall-api`, the enclave does no I/O of its own except through this one narrow
Protocol (the state database is the single, documented exception: see state_store.py). Every
value that crosses it outwards is either public (an extrinsic the enclave signed for the
parentchain) or sealed (an opaque blob only this enclave can open), so a hostile host learns
nothing it could not read on chain. Inwards, whatever the host returns is untrusted: sealed
blobs are authenticated on unsealing, and a missing blob is only believed to be "never
created" when nothing else says otherwise (see keys.py).

The host implementation lives in the worker (tocw.worker.sealed_store for the blob half).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class OCallApi(Protocol):
    def store_sealed(self, name: str, blob: bytes) -> None:
        """Store an opaque sealed blob under `name`, durably and atomically (all or nothing)."""
        ...

    def load_sealed(self, name: str) -> bytes | None:
        """The blob last stored under `name`, or None if there is none."""
        ...

    def submit_extrinsics(self, extrinsics: Sequence[bytes]) -> None:
        """Send enclave-signed extrinsics (SCALE, length-prefixed) to the parentchain, in order.

        The host may retry or batch them; it must not reorder them (they carry consecutive
        nonces of the enclave's account). It should queue rather than raise: the enclave calls
        this after the block is committed, logs a failure and carries on, and the host finds
        the same extrinsics in the ImportedBlock it gets back.
        """
        ...
