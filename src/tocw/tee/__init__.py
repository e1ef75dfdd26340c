"""tocw.tee: TEE backends (sim, gramine-sgx, tsm) and evidence verification.

Owns the registry of backends by command-line name (`BACKENDS`) and `make_backend`, which turns
a name plus loosely typed options (from flags, environment or TOML) into a backend, rejecting
unknown names and options with TeeConfigError rather than ignoring them.

Options per backend:
- sim: measured_paths (required: files/dirs of trusted sources), root, exclude
  (see tocw.tee.sim.measure_sources); keys live in data_dir.
- gramine-sgx: root (default /dev/attestation).
- tsm: root (default /sys/kernel/config/tsm), sealing_key (32 bytes, provisioned),
  privlevel (0..3, SEV-SNP VMPL).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path

from tocw.tee.base import EVIDENCE_CODEC, Evidence, TeeBackend, TeeKind
from tocw.tee.errors import TeeConfigError, TeeError
from tocw.tee.gramine import GramineSgxBackend
from tocw.tee.sim import SOURCE_ROOT, SimBackend
from tocw.tee.tsm import TsmBackend
from tocw.tee.verify import DEFAULT_ACCEPTED_STATUSES, VerifiedEvidence, verify_evidence

BackendFactory = Callable[[Path, Mapping[str, object]], TeeBackend]


def _check_options(
    backend: str,
    options: Mapping[str, object],
    allowed: AbstractSet[str],
    required: AbstractSet[str] = frozenset(),
) -> None:
    unknown = set(options) - allowed
    if unknown:
        raise TeeConfigError(
            f"unknown option(s) for TEE backend {backend!r}: {sorted(unknown)} "
            f"(accepted: {sorted(allowed)})"
        )
    missing = required - set(options)
    if missing:
        raise TeeConfigError(f"TEE backend {backend!r} needs option(s) {sorted(missing)}")


def _path(value: object, option: str) -> Path:
    if isinstance(value, str | os.PathLike):
        return Path(value)
    raise TeeConfigError(f"option {option!r} must be a path, got {type(value).__name__}")


def _paths(value: object, option: str) -> list[Path]:
    if isinstance(value, str | os.PathLike) or not isinstance(value, list | tuple):
        raise TeeConfigError(f"option {option!r} must be a list of paths")
    return [_path(v, option) for v in value]


def _make_sim(data_dir: Path, options: Mapping[str, object]) -> TeeBackend:
    _check_options("sim", options, {"measured_paths", "root", "exclude"}, {"measured_paths"})
    return SimBackend(
        data_dir,
        _paths(options["measured_paths"], "measured_paths"),
        root=_path(options.get("root", SOURCE_ROOT), "root"),
        exclude=_paths(options.get("exclude", []), "exclude"),
    )


def _make_gramine(data_dir: Path, options: Mapping[str, object]) -> TeeBackend:
    _check_options("gramine-sgx", options, {"root"})
    if "root" in options:
        return GramineSgxBackend(_path(options["root"], "root"))
    return GramineSgxBackend()


def _make_tsm(data_dir: Path, options: Mapping[str, object]) -> TeeBackend:
    _check_options("tsm", options, {"root", "sealing_key", "privlevel"})
    sealing_key = options.get("sealing_key")
    if sealing_key is not None and not isinstance(sealing_key, bytes):
        raise TeeConfigError("option 'sealing_key' must be bytes")
    privlevel = options.get("privlevel")
    if privlevel is not None and (isinstance(privlevel, bool) or not isinstance(privlevel, int)):
        raise TeeConfigError("option 'privlevel' must be an integer")
    if "root" in options:
        root = _path(options["root"], "root")
        return TsmBackend(root, sealing_key=sealing_key, privlevel=privlevel)
    return TsmBackend(sealing_key=sealing_key, privlevel=privlevel)


BACKENDS: dict[str, BackendFactory] = {
    "sim": _make_sim,
    "gramine-sgx": _make_gramine,
    "tsm": _make_tsm,
}


def make_backend(name: str, data_dir: Path, **options: object) -> TeeBackend:
    """The backend registered as `name`, configured with `options` (see module docstring)."""
    factory = BACKENDS.get(name)
    if factory is None:
        raise TeeConfigError(f"unknown TEE backend {name!r} (available: {sorted(BACKENDS)})")
    return factory(Path(data_dir), options)


__all__ = [
    "BACKENDS",
    "DEFAULT_ACCEPTED_STATUSES",
    "EVIDENCE_CODEC",
    "BackendFactory",
    "Evidence",
    "TeeBackend",
    "TeeConfigError",
    "TeeError",
    "TeeKind",
    "VerifiedEvidence",
    "make_backend",
    "verify_evidence",
]
