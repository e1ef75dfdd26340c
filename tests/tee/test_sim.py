"""The sim backend: measurement of sources, 0600 key files, signed statements, registry."""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tocw.primitives.scale import compact_bytes
from tocw.tee import BACKENDS, TeeBackend, TeeKind, make_backend
from tocw.tee.errors import (
    InvalidReportDataError,
    MeasurementError,
    SealingKeyError,
    TeeConfigError,
)
from tocw.tee.sim import (
    PLATFORM_KEY_FILE,
    SEALING_KEY_FILE,
    SIM_EVIDENCE_CODEC,
    SIM_WARNING,
    SOURCE_ROOT,
    SimBackend,
    load_or_create_key_file,
    measure_sources,
    sim_signing_payload,
)


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


TREE = {
    "pkg/__init__.py": b"",
    "pkg/a.py": b"A = 1\n",
    "pkg/sub/b.py": b"B = 2\n",
}


def test_measure_sources_matches_documented_formula(tmp_path: Path) -> None:
    """sha256(SCALE(Vec<(String, Vec<u8>)>)) over sorted relative posix paths."""
    write_tree(tmp_path, TREE)
    expected = hashlib.sha256(compact_bytes(3))
    for rel in sorted(TREE):
        expected.update(compact_bytes(len(rel)) + rel.encode())
        expected.update(compact_bytes(len(TREE[rel])) + TREE[rel])
    assert measure_sources([tmp_path / "pkg"], tmp_path) == expected.digest()


def test_measure_sources_independent_of_location_and_creation_order(tmp_path: Path) -> None:
    """Two clones of the same tree, created in different orders, measure the same."""
    one, two = tmp_path / "one", tmp_path / "two"
    write_tree(one, TREE)
    write_tree(two, dict(reversed(list(TREE.items()))))
    assert measure_sources([one / "pkg"], one) == measure_sources([two / "pkg"], two)


def test_measure_sources_changes_when_a_module_changes(tmp_path: Path) -> None:
    """Editing one byte of a source, or renaming it, changes the measurement."""
    write_tree(tmp_path, TREE)
    before = measure_sources([tmp_path / "pkg"], tmp_path)
    (tmp_path / "pkg/a.py").write_bytes(b"A = 2\n")
    edited = measure_sources([tmp_path / "pkg"], tmp_path)
    (tmp_path / "pkg/a.py").rename(tmp_path / "pkg/c.py")
    renamed = measure_sources([tmp_path / "pkg"], tmp_path)
    assert len({before, edited, renamed}) == 3


def test_measure_sources_framing_is_unambiguous(tmp_path: Path) -> None:
    """Moving bytes between a path and a content, or between two files, changes the result."""
    one, two = tmp_path / "one", tmp_path / "two"
    write_tree(one, {"p/a.py": b"x", "p/b.py": b"y"})
    write_tree(two, {"p/a.py": b"xy"})
    assert measure_sources([one / "p"], one) != measure_sources([two / "p"], two)


def test_measure_sources_ignores_pycache_and_non_python(tmp_path: Path) -> None:
    """Byte-code caches and data files are not code identity."""
    write_tree(tmp_path, TREE)
    before = measure_sources([tmp_path / "pkg"], tmp_path)
    write_tree(
        tmp_path,
        {
            "pkg/__pycache__/a.cpython-311.pyc": b"junk",
            "pkg/__pycache__/x.py": b"",
            "pkg/n.txt": b"",
        },
    )
    assert measure_sources([tmp_path / "pkg"], tmp_path) == before


def test_measure_sources_exclude_dir_but_listed_file_counts(tmp_path: Path) -> None:
    """An excluded modules/ dir is skipped, but an explicitly enabled module in it is measured."""
    write_tree(tmp_path, {**TREE, "pkg/modules/m1.py": b"1", "pkg/modules/m2.py": b"2"})
    core = measure_sources([tmp_path / "pkg"], tmp_path, exclude=[tmp_path / "pkg/modules"])
    write_tree(tmp_path / "clone", TREE)
    assert core == measure_sources([tmp_path / "clone/pkg"], tmp_path / "clone")
    with_m1 = measure_sources(
        [tmp_path / "pkg", tmp_path / "pkg/modules/m1.py"],
        tmp_path,
        exclude=[tmp_path / "pkg/modules"],
    )
    assert with_m1 not in (core, measure_sources([tmp_path / "pkg"], tmp_path))


def test_measure_sources_overlapping_paths_count_once(tmp_path: Path) -> None:
    """Listing a file and its directory does not measure the file twice."""
    write_tree(tmp_path, TREE)
    both = measure_sources([tmp_path / "pkg", tmp_path / "pkg/a.py"], tmp_path)
    assert both == measure_sources([tmp_path / "pkg"], tmp_path)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("pkg/missing.py", "does not exist"),
        ("pkg/n.txt", "not a Python source"),
        ("empty", "no *.py files"),
    ],
)
def test_measure_sources_bad_input_raises(tmp_path: Path, given: str, message: str) -> None:
    """Missing paths, non-Python files and empty selections are configuration errors."""
    write_tree(tmp_path, {**TREE, "pkg/n.txt": b""})
    (tmp_path / "empty").mkdir()
    with pytest.raises(MeasurementError, match=message.replace("*", r"\*")):
        measure_sources([tmp_path / given], tmp_path)


def test_measure_sources_path_outside_root_raises(tmp_path: Path) -> None:
    """A path outside the root has no stable relative name, so it is refused."""
    write_tree(tmp_path, TREE)
    with pytest.raises(MeasurementError, match="not under the root"):
        measure_sources([tmp_path / "pkg"], tmp_path / "pkg/sub")


def test_measure_sources_real_packages_stable() -> None:
    """The trusted packages of this checkout measure the same twice, relative to SOURCE_ROOT."""
    paths = [SOURCE_ROOT / "tocw/primitives", SOURCE_ROOT / "tocw/tee"]
    first = measure_sources(paths)
    assert first == measure_sources(list(reversed(paths)))
    assert first != measure_sources(paths[:1])


def test_load_or_create_key_file_creates_0600_even_with_strict_umask(tmp_path: Path) -> None:
    """The key file is exactly 0600 whatever the umask, and is read back unchanged."""
    old = os.umask(0o277)
    try:
        key = load_or_create_key_file(tmp_path / "k", 32)
    finally:
        os.umask(old)
    st = (tmp_path / "k").stat()
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert len(key) == 32
    assert load_or_create_key_file(tmp_path / "k", 32) == key
    assert [p.name for p in tmp_path.iterdir()] == ["k"]  # no temporary file left behind


def test_load_or_create_key_file_wrong_size_raises(tmp_path: Path) -> None:
    """A key file of the wrong size is an error and is left untouched."""
    path = tmp_path / "k"
    path.write_bytes(b"short")
    path.chmod(0o600)
    with pytest.raises(SealingKeyError, match="5 bytes"):
        load_or_create_key_file(path, 32)
    assert path.read_bytes() == b"short"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o666])
def test_load_or_create_key_file_loose_permissions_raise(tmp_path: Path, mode: int) -> None:
    """A key file readable or writable by group/others is refused, not repaired."""
    path = tmp_path / "k"
    path.write_bytes(bytes(32))
    path.chmod(mode)
    with pytest.raises(SealingKeyError, match="must be 0600"):
        load_or_create_key_file(path, 32)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_load_or_create_key_file_symlink_and_directory_raise(tmp_path: Path) -> None:
    """A symlink or a directory at the key's name is refused."""
    target = tmp_path / "target"
    target.write_bytes(bytes(32))
    target.chmod(0o600)
    (tmp_path / "link").symlink_to(target)
    (tmp_path / "dir").mkdir()
    with pytest.raises(SealingKeyError):
        load_or_create_key_file(tmp_path / "link", 32)
    with pytest.raises(SealingKeyError):
        load_or_create_key_file(tmp_path / "dir", 32)


def test_load_or_create_key_file_concurrent_creators_agree(tmp_path: Path) -> None:
    """Racing creators all end up with the one key that won."""
    results: list[bytes] = []
    barrier = threading.Barrier(8)

    def create() -> None:
        barrier.wait(timeout=10)
        results.append(load_or_create_key_file(tmp_path / "k", 32))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(results) == 8
    assert len(set(results)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["k"]


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    write_tree(root, TREE)
    return root


def make_sim(data_dir: Path, sources: Path) -> SimBackend:
    return SimBackend(data_dir, [sources / "pkg"], root=sources)


def test_sim_backend_warns_loudly_and_is_not_secure(
    tmp_path: Path, sources: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Construction logs the NOT SECURE warning; is_secure is False."""
    with caplog.at_level(logging.WARNING, logger="tocw.tee.sim"):
        backend = make_sim(tmp_path / "data", sources)
    assert SIM_WARNING in caplog.text
    assert "NOT SECURE" in SIM_WARNING
    assert backend.is_secure is False
    assert backend.name == "sim"
    assert isinstance(backend, TeeBackend)


def test_sim_backend_key_files_are_0600_and_persistent(tmp_path: Path, sources: Path) -> None:
    """Sealing and platform keys live in 0600 files and survive a restart; other dirs differ."""
    data = tmp_path / "data"
    first = make_sim(data, sources)
    key = first.sealing_key()
    second = make_sim(data, sources)
    assert second.sealing_key() == key and len(key) == 32
    assert second.platform_public_key == first.platform_public_key
    for name in (SEALING_KEY_FILE, PLATFORM_KEY_FILE):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600
    other = make_sim(tmp_path / "other", sources)
    assert other.sealing_key() != key
    assert other.platform_public_key != first.platform_public_key


def test_sim_backend_measurement_fixed_at_construction(tmp_path: Path, sources: Path) -> None:
    """A running backend keeps its identity; a restarted one measures the edited code."""
    backend = make_sim(tmp_path / "data", sources)
    before = backend.measurement()
    assert before == measure_sources([sources / "pkg"], sources)
    (sources / "pkg/a.py").write_bytes(b"A = 3\n")
    assert backend.measurement() == before
    assert make_sim(tmp_path / "data", sources).measurement() != before


def test_sim_backend_report_is_signed_statement(tmp_path: Path, sources: Path) -> None:
    """Evidence decodes to (measurement, report_data, platform key) signed by that key."""
    backend = make_sim(tmp_path / "data", sources)
    report_data = bytes(range(64))
    evidence = backend.report(report_data)
    assert evidence.kind is TeeKind.SIM
    decoded = SIM_EVIDENCE_CODEC.decode(evidence.data)
    assert decoded.statement.measurement == backend.measurement()
    assert decoded.statement.report_data == report_data
    assert decoded.statement.platform_key == backend.platform_public_key
    Ed25519PublicKey.from_public_bytes(backend.platform_public_key).verify(
        decoded.signature, sim_signing_payload(decoded.statement)
    )


@pytest.mark.parametrize("size", [0, 32, 63, 65])
def test_sim_backend_report_wrong_size_raises(tmp_path: Path, sources: Path, size: int) -> None:
    """report_data must be exactly 64 bytes."""
    backend = make_sim(tmp_path / "data", sources)
    with pytest.raises(InvalidReportDataError):
        backend.report(bytes(size))


def test_sim_backend_rejects_corrupt_key_file(tmp_path: Path, sources: Path) -> None:
    """A damaged sealing key file stops the backend instead of being regenerated."""
    backend = make_sim(tmp_path / "data", sources)
    (tmp_path / "data" / SEALING_KEY_FILE).write_bytes(b"x")
    (tmp_path / "data" / SEALING_KEY_FILE).chmod(0o600)
    with pytest.raises(SealingKeyError):
        backend.sealing_key()


def test_make_backend_sim_from_registry(tmp_path: Path, sources: Path) -> None:
    """The registry builds a sim backend from loosely typed options (strings are paths)."""
    assert set(BACKENDS) == {"sim", "gramine-sgx", "tsm"}
    backend = make_backend(
        "sim", tmp_path / "data", measured_paths=[str(sources / "pkg")], root=str(sources)
    )
    assert backend.name == "sim"
    assert backend.measurement() == measure_sources([sources / "pkg"], sources)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("sgx", {}, "unknown TEE backend"),
        ("sim", {}, "needs option"),
        ("sim", {"measured_paths": ["x"], "colour": "red"}, "unknown option"),
        ("sim", {"measured_paths": "not-a-list"}, "list of paths"),
        ("sim", {"measured_paths": [1]}, "must be a path"),
        ("tsm", {"sealing_key": "hex"}, "must be bytes"),
        ("tsm", {"privlevel": "1"}, "must be an integer"),
        ("gramine-sgx", {"sealing_key": b""}, "unknown option"),
    ],
)
def test_make_backend_bad_config_raises(
    tmp_path: Path, name: str, options: dict[str, object], message: str
) -> None:
    """Unknown names, unknown or missing options and mistyped values are TeeConfigError."""
    with pytest.raises(TeeConfigError, match=message):
        make_backend(name, tmp_path, **options)
