"""The `sim` TEE backend: no hardware, the same code paths (ARCHITECTURE.md "TEE backends").

Owns the simulated measurement (`measure_sources`), the 0600 key files of the data dir
(`load_or_create_key_file`) and the simulated evidence format (`SimStatement`, `SimEvidence`).

What sim evidence proves: NOTHING. The "platform key" that signs it is an ordinary ed25519 key
in a file of the data dir; anyone who can read that directory, or who simply generates a key of
their own, can sign any statement with any measurement. The statement and its verification
exist only so that sim mode runs exactly the attestation code path of the hardware backends
(produce evidence, ship it, verify it, compare the measurement), which is what Integritee's
software mode does too. `tocw.tee.verify` refuses sim evidence unless the caller allows it.

The measurement follows ARCHITECTURE.md "Measurement": sha256 over the sorted (relative path,
content) pairs of the trusted Python sources, framed as SCALE `Vec<(String, Vec<u8>)>` so that
no two different source trees share an encoding. Paths are relative to a root (by default the
directory that contains the `tocw` package) and use '/' separators, so every clone or install of
the same code measures the same (file bytes are taken as they are: a checkout that rewrites line
endings measures differently, as a rebuilt SGX enclave would).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tocw.primitives.scale import H256, H512, Bytes, compact_bytes, struct
from tocw.primitives.types import MrEnclave
from tocw.tee.base import SEALING_KEY_SIZE, Evidence, TeeKind, validate_report_data
from tocw.tee.errors import MeasurementError, SealingKeyError

logger = logging.getLogger(__name__)

SIM_WARNING = (
    "tocw is running in SIM mode: NOT SECURE, no hardware protects secrets or attests code"
)

# Directory holding the `tocw` package (src/ in a checkout, site-packages when installed):
# measured paths are made relative to it so the measurement does not depend on where it lives.
SOURCE_ROOT = Path(__file__).resolve().parents[2]

SEALING_KEY_FILE = "sim_sealing_key"
PLATFORM_KEY_FILE = "sim_platform_key"
PLATFORM_KEY_SIZE = 32  # raw ed25519 seed

# Domain separation: a signature by the platform key over anything else is not a statement.
SIM_SIGNING_DOMAIN = b"tocw/sim-evidence/v1"


@dataclass(frozen=True, slots=True)
class SimStatement:
    """What the simulated platform asserts: this measurement produced this report_data."""

    measurement: bytes  # 32
    report_data: bytes  # 64
    platform_key: bytes  # 32, ed25519 public key of the simulated platform


@dataclass(frozen=True, slots=True)
class SimEvidence:
    """Evidence.data of kind SIM: SCALE(statement) ‖ ed25519 signature (160 bytes in all)."""

    statement: SimStatement
    signature: bytes  # 64


SIM_STATEMENT_CODEC = struct(SimStatement, measurement=H256, report_data=H512, platform_key=H256)
SIM_EVIDENCE_CODEC = struct(SimEvidence, statement=SIM_STATEMENT_CODEC, signature=H512)


def sim_signing_payload(statement: SimStatement) -> bytes:
    """The bytes the simulated platform key signs: domain tag ‖ SCALE(statement)."""
    return SIM_SIGNING_DOMAIN + SIM_STATEMENT_CODEC.encode(statement)


def measure_sources(
    paths: Sequence[Path], root: Path = SOURCE_ROOT, *, exclude: Sequence[Path] = ()
) -> MrEnclave:
    """sha256(SCALE(Vec<(String, Vec<u8>)>)) over the *.py files under `paths`, sorted by path.

    Directories are walked recursively (not following directory symlinks), skipping
    `__pycache__` and any directory listed in `exclude`; files listed in `paths` are always
    measured, which is how an enabled STF module under an excluded modules/ dir gets in. Every
    path must lie under `root` once symlinks are resolved (as SOURCE_ROOT is); the pairs carry
    the path relative to it, '/'-separated.
    """
    base = Path(root).resolve()
    excluded = {Path(p).resolve() for p in exclude}
    files: dict[str, Path] = {}
    for given in paths:
        path = Path(given).resolve()
        if not path.exists():
            raise MeasurementError(f"measured path does not exist: {given}")
        if path.is_dir():
            for file in _walk_python_files(path, excluded):
                files[_relative(file, base)] = file
        elif path.suffix == ".py":
            files[_relative(path, base)] = path
        else:
            raise MeasurementError(f"measured file is not a Python source (*.py): {given}")
    if not files:
        raise MeasurementError(f"no *.py files to measure under {[str(p) for p in paths]}")
    h = hashlib.sha256(compact_bytes(len(files)))
    for rel in sorted(files):
        try:
            content = files[rel].read_bytes()
        except OSError as e:
            raise MeasurementError(f"cannot read measured file {files[rel]}: {e}") from e
        h.update(Bytes.encode(rel.encode("utf-8")))
        h.update(Bytes.encode(content))
    return MrEnclave(h.digest())


def _walk_python_files(top: Path, excluded: set[Path]) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        current = Path(dirpath)
        if current in excluded:
            dirnames[:] = []
            continue
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        found.extend(current / f for f in filenames if f.endswith(".py"))
    return found


def _relative(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        raise MeasurementError(f"measured path {path} is not under the root {base}") from None


def load_or_create_key_file(path: Path, size: int) -> bytes:
    """Read a secret key file of exactly `size` bytes, creating it (0600) if absent.

    Creation is atomic: the key is written to a temporary file opened with
    O_CREAT|O_EXCL and mode 0600, fsynced, then hard-linked to its name, so a concurrent reader
    never sees a half-written key and two concurrent creators agree on one key. An existing
    file that is not a regular file owned by us, is readable or writable by group/others, or
    has the wrong size raises SealingKeyError: replacing it would destroy sealed data.
    """
    try:
        return _read_key_file(path, size)
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(size)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
    try:
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
    except OSError as e:
        raise SealingKeyError(f"cannot create key file in {path.parent}: {e}") from e
    try:
        try:
            os.fchmod(fd, 0o600)  # the umask may have cleared bits; we want exactly 0600
            if os.write(fd, key) != size:
                raise SealingKeyError(f"short write creating {path}")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return _read_key_file(path, size)  # someone else won the race: use theirs
        except OSError as e:
            raise SealingKeyError(f"cannot create key file {path}: {e}") from e
        _fsync_dir(path.parent)
        return key
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _read_key_file(path: Path, size: int) -> bytes:
    """Read an existing key file, refusing anything that is not exactly what we create."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as e:  # ELOOP for a symlink, EACCES, ...
        raise SealingKeyError(f"cannot open key file {path}: {e}") from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SealingKeyError(f"key file {path} is not a regular file")
        if st.st_uid != os.geteuid():
            raise SealingKeyError(f"key file {path} is owned by uid {st.st_uid}, not by us")
        if st.st_mode & 0o077:
            raise SealingKeyError(
                f"key file {path} has mode {stat.S_IMODE(st.st_mode):04o}; it must be 0600 "
                "(not accessible to group or others)"
            )
        if st.st_size != size:
            raise SealingKeyError(f"key file {path} has {st.st_size} bytes, expected {size}")
        data = os.read(fd, size + 1)
    finally:
        os.close(fd)
    if len(data) != size:
        raise SealingKeyError(f"key file {path} has {len(data)} bytes, expected {size}")
    return data


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SimBackend:
    """Software-only backend: the default, and NOT secure (it says so on construction).

    The measurement is taken once, at construction, like SGX measures an enclave when it is
    loaded: editing a source file afterwards does not change a running backend's identity.
    """

    def __init__(
        self,
        data_dir: Path,
        measured_paths: Sequence[Path],
        *,
        root: Path = SOURCE_ROOT,
        exclude: Sequence[Path] = (),
    ) -> None:
        logger.warning(SIM_WARNING)
        self._data_dir = Path(data_dir)
        try:
            self._data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as e:
            raise SealingKeyError(f"cannot create data dir {self._data_dir}: {e}") from e
        self._measurement = measure_sources(measured_paths, root, exclude=exclude)
        seed = load_or_create_key_file(self._data_dir / PLATFORM_KEY_FILE, PLATFORM_KEY_SIZE)
        self._platform_key = Ed25519PrivateKey.from_private_bytes(seed)
        self._platform_public = self._platform_key.public_key().public_bytes(
            Encoding.Raw, PublicFormat.Raw
        )

    @property
    def name(self) -> str:
        return "sim"

    @property
    def is_secure(self) -> bool:
        return False

    @property
    def platform_public_key(self) -> bytes:
        """The simulated platform's ed25519 public key (32 bytes) that signs our evidence."""
        return self._platform_public

    def measurement(self) -> MrEnclave:
        return self._measurement

    def report(self, report_data: bytes) -> Evidence:
        statement = SimStatement(
            measurement=bytes(self._measurement),
            report_data=validate_report_data(report_data),
            platform_key=self._platform_public,
        )
        signature = self._platform_key.sign(sim_signing_payload(statement))
        data = SIM_EVIDENCE_CODEC.encode(SimEvidence(statement, signature))
        return Evidence(TeeKind.SIM, data)

    def sealing_key(self) -> bytes:
        return load_or_create_key_file(self._data_dir / SEALING_KEY_FILE, SEALING_KEY_SIZE)
