"""The host side of sealed-blob storage (tocw.worker.sealed_store) as the enclave uses it."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from tocw.enclave.api import Enclave, EnclaveApi
from tocw.enclave.ocall import OCallApi
from tocw.worker.sealed_store import DirectorySealedStore, SealedStoreError


def test_sealed_store_round_trip_and_permissions(tmp_path: Path) -> None:
    """Blobs come back as stored, in 0600 files of a 0700 directory; absent names are None."""
    store = DirectorySealedStore(tmp_path / "sealed")
    assert store.load_sealed("signer-key") is None
    store.store_sealed("signer-key", b"blob-1")
    store.store_sealed("signer-key", b"blob-2")
    assert store.load_sealed("signer-key") == b"blob-2"
    assert store.names() == ["signer-key"]
    assert stat.S_IMODE(store.path_of("signer-key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "sealed").stat().st_mode) == 0o700
    assert [p.name for p in (tmp_path / "sealed").iterdir()] == ["signer-key.sealed"]


@pytest.mark.parametrize("name", ["../escape", "a/b", "", "UPPER", ".hidden", "x" * 65])
def test_sealed_store_rejects_unsafe_names(tmp_path: Path, name: str) -> None:
    """A blob name can never address a file outside the store's directory."""
    store = DirectorySealedStore(tmp_path)
    with pytest.raises(SealedStoreError):
        store.store_sealed(name, b"x")
    with pytest.raises(SealedStoreError):
        store.load_sealed(name)


def test_sealed_store_failed_write_keeps_old_blob(tmp_path: Path, monkeypatch: Any) -> None:
    """If the write fails midway, the previous blob stays and no temp file is left behind."""
    store = DirectorySealedStore(tmp_path)
    store.store_sealed("state-key", b"old")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("tocw.worker.sealed_store.os.replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        store.store_sealed("state-key", b"new")
    assert store.load_sealed("state-key") == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state-key.sealed"]


def test_protocols_are_implemented(ocall: Any, enclave: Enclave) -> None:
    """The test host implements OCallApi and Enclave implements EnclaveApi."""
    assert isinstance(ocall, OCallApi)
    api: EnclaveApi = enclave
    assert api.mrenclave() == enclave.mrenclave()
