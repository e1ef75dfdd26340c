"""Host-side storage of the enclave's sealed blobs: one file per blob under the data dir.

This is the untrusted half of the OCALL `store_sealed` / `load_sealed` pair: the blobs are
opaque (sealed by the enclave, see tocw.enclave.sealing), so all this module owes the enclave is
durability and atomicity. A blob is written to a temporary file, fsynced, renamed over the old
one and the directory fsynced, so a crash leaves either the old or the new blob, never a torn
one. Names are checked here too, so that a name can never escape the directory.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
SUFFIX = ".sealed"


class SealedStoreError(Exception):
    """A sealed blob name is invalid or the directory cannot be used."""


class DirectorySealedStore:
    """Sealed blobs as `<root>/<name>.sealed` files (mode 0600, directory 0700)."""

    __slots__ = ("root",)

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def path_of(self, name: str) -> Path:
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            raise SealedStoreError(f"invalid sealed blob name {name!r}")
        return self.root / (name + SUFFIX)

    def store_sealed(self, name: str, blob: bytes) -> None:
        target = self.path_of(name)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.root)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(bytes(blob))
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def load_sealed(self, name: str) -> bytes | None:
        try:
            return self.path_of(name).read_bytes()
        except FileNotFoundError:
            return None

    def names(self) -> list[str]:
        """The names of the stored blobs, sorted."""
        return sorted(p.name[: -len(SUFFIX)] for p in self.root.glob("*" + SUFFIX))
