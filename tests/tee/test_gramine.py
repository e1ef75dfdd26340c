"""The gramine-sgx backend driven through a fake /dev/attestation tree in a temp dir.

The tree holds real files with Gramine's names and sizes; `FakeGramineFs` (an OsFs) adds only
what Gramine computes on access: reading `quote` returns the real SGX sample quote
(shared/testdata/dcap, from Phala-Network/dcap-qvl, MIT) with REPORTDATA replaced by the
current contents of user_report_data, as a fresh quote would carry it. Its signature then no
longer verifies (the backend does not verify its own quotes); writing the sample's own
report_data yields the pristine quote, which does verify end to end.
"""

from __future__ import annotations

import errno
import json
import logging
import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tocw.primitives.types import MrEnclave
from tocw.tee import TeeBackend, TeeKind, make_backend, verify_evidence
from tocw.tee.base import OsFs
from tocw.tee.errors import (
    InvalidReportDataError,
    ReportError,
    SealingKeyError,
    TeeUnavailableError,
)
from tocw.tee.gramine import SEALING_KEY_INFO, GramineSgxBackend
from tocw.tee.verify import parse_quote_body

# shared/ lies beside the repository checkout (as in CI): ../shared/testdata/dcap
_CANDIDATES = [Path(__file__).resolve().parents[3] / "shared" / "testdata" / "dcap"]
BODY = 48  # SGX quote v3 header size: the report body follows
SAMPLE_MRENCLAVE = bytes.fromhex("33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb")
SEAL_KEY_16 = bytes(range(16))


def dcap_dir() -> Path:
    for candidate in _CANDIDATES:
        if (candidate / "EXPECTED.json").is_file():
            return candidate
    raise FileNotFoundError(f"DCAP sample quotes not found in any of {_CANDIDATES}")


class FakeGramineFs(OsFs):
    """Real files under `root`; `quote` is computed from user_report_data like Gramine does."""

    def __init__(self, root: Path, template: bytes, *, follow_report_data: bool = True) -> None:
        self.root = root
        self.template = template
        self.follow_report_data = follow_report_data
        self.quotes_served = 0

    def write(self, path: Path, data: bytes) -> None:
        if path == self.root / "user_report_data" and len(data) != 64:
            raise OSError(errno.EINVAL, "user_report_data takes exactly 64 bytes")
        super().write(path, data)

    def read(self, path: Path) -> bytes:
        if path != self.root / "quote":
            return super().read(path)
        report_data = super().read(self.root / "user_report_data")
        time.sleep(0.0005)  # widen the write->read window so unserialized callers would interleave
        self.quotes_served += 1
        if not self.follow_report_data:
            return self.template
        quote = bytearray(self.template)
        quote[BODY + 320 : BODY + 384] = report_data
        return bytes(quote)


def build_tree(root: Path, *, attestation_type: bytes = b"dcap", attributes: bytes) -> None:
    """The pseudo-files of Gramine's /dev/attestation with their real sizes."""
    (root / "keys").mkdir(parents=True)
    (root / "attestation_type").write_bytes(attestation_type)
    (root / "user_report_data").write_bytes(bytes(64))
    (root / "target_info").write_bytes(bytes(512))
    (root / "my_target_info").write_bytes(SAMPLE_MRENCLAVE + attributes + bytes(512 - 48))
    (root / "report").write_bytes(bytes(432))
    (root / "quote").write_bytes(b"")
    (root / "keys" / "_sgx_mrenclave").write_bytes(SEAL_KEY_16)
    (root / "keys" / "_sgx_mrsigner").write_bytes(bytes(16))


@pytest.fixture(scope="module")
def sample_quote() -> bytes:
    return (dcap_dir() / "sgx_quote").read_bytes()


@pytest.fixture
def tree(tmp_path: Path, sample_quote: bytes) -> tuple[Path, FakeGramineFs]:
    root = tmp_path / "dev" / "attestation"
    build_tree(root, attributes=sample_quote[BODY + 48 : BODY + 64])
    return root, FakeGramineFs(root, sample_quote)


def test_gramine_backend_measurement_from_target_info(tree: tuple[Path, FakeGramineFs]) -> None:
    """MRENCLAVE comes from my_target_info without producing a quote."""
    root, fs = tree
    backend = GramineSgxBackend(root, fs=fs)
    assert backend.measurement() == SAMPLE_MRENCLAVE
    assert fs.quotes_served == 0
    assert backend.is_secure is True and backend.name == "gramine-sgx"
    assert isinstance(backend, TeeBackend)


def test_gramine_backend_measurement_from_quote_without_target_info(
    tree: tuple[Path, FakeGramineFs],
) -> None:
    """Without my_target_info, the MRENCLAVE is read from a quote's report body."""
    root, fs = tree
    (root / "my_target_info").unlink()
    backend = GramineSgxBackend(root, fs=fs)
    assert backend.measurement() == SAMPLE_MRENCLAVE
    assert fs.quotes_served == 1


def test_gramine_backend_report_binds_report_data(tree: tuple[Path, FakeGramineFs]) -> None:
    """The quote carries exactly the report_data written to user_report_data."""
    root, fs = tree
    backend = GramineSgxBackend(root, fs=fs)
    report_data = bytes(range(64))
    evidence = backend.report(report_data)
    assert evidence.kind is TeeKind.SGX_DCAP
    parsed = parse_quote_body(evidence.data)
    assert parsed.report_data == report_data
    assert parsed.mrenclave == backend.measurement()
    assert (root / "user_report_data").read_bytes() == report_data


def test_gramine_backend_evidence_verifies_end_to_end(tree: tuple[Path, FakeGramineFs]) -> None:
    """With the sample's own report_data the backend's evidence passes dcap-qvl verification."""
    root, fs = tree
    expected = json.loads((dcap_dir() / "EXPECTED.json").read_text())["sgx_quote"]
    collateral = (dcap_dir() / expected["collateral"]).read_text()
    backend = GramineSgxBackend(root, fs=fs)
    report_data = bytes.fromhex(expected["report_data"])
    result = verify_evidence(
        backend.report(report_data),
        backend.measurement(),
        expected["verify_at_unix"],
        collateral,
        expected_report_data=report_data,
    )
    assert result.tcb_status == expected["expected_status"]


@pytest.mark.parametrize(("content", "message"), [(b"none", "'none'"), (b"epid\n", "epid")])
def test_gramine_backend_refuses_unusable_attestation_type(
    tmp_path: Path, sample_quote: bytes, content: bytes, message: str
) -> None:
    """attestation_type none (no RA in the manifest) or epid is refused with a clear error."""
    root = tmp_path / "att"
    build_tree(root, attestation_type=content, attributes=bytes(16))
    with pytest.raises(TeeUnavailableError, match=message):
        GramineSgxBackend(root, fs=FakeGramineFs(root, sample_quote))


def test_gramine_backend_missing_root_raises(tmp_path: Path) -> None:
    """Outside Gramine there is no /dev/attestation: a clear error, also via the registry."""
    with pytest.raises(TeeUnavailableError, match="not running inside a Gramine"):
        GramineSgxBackend(tmp_path / "nope")
    with pytest.raises(TeeUnavailableError):
        make_backend("gramine-sgx", tmp_path, root=str(tmp_path / "nope"))


def test_gramine_backend_from_registry(tree: tuple[Path, FakeGramineFs]) -> None:
    """make_backend('gramine-sgx', root=...) reads the same tree through the real OsFs."""
    root, _ = tree
    backend = make_backend("gramine-sgx", root.parent, root=root)
    assert backend.name == "gramine-sgx"
    assert backend.measurement() == SAMPLE_MRENCLAVE


def test_gramine_backend_stale_quote_detected(tmp_path: Path, sample_quote: bytes) -> None:
    """A quote that does not carry our report_data is refused, not passed on."""
    root = tmp_path / "att"
    build_tree(root, attributes=bytes(16))
    backend = GramineSgxBackend(
        root, fs=FakeGramineFs(root, sample_quote, follow_report_data=False)
    )
    with pytest.raises(ReportError, match="stale"):
        backend.report(bytes(range(64)))


def test_gramine_backend_foreign_mrenclave_detected(
    tree: tuple[Path, FakeGramineFs],
) -> None:
    """A quote of another enclave than my_target_info names is refused."""
    root, fs = tree
    info = bytearray((root / "my_target_info").read_bytes())
    info[0] ^= 0xFF
    (root / "my_target_info").write_bytes(bytes(info))
    backend = GramineSgxBackend(root, fs=fs)
    with pytest.raises(ReportError, match="MRENCLAVE"):
        backend.report(bytes(64))


def test_gramine_backend_malformed_quote_detected(tmp_path: Path) -> None:
    """Garbage from the quote file is a ReportError."""
    root = tmp_path / "att"
    build_tree(root, attributes=bytes(16))
    backend = GramineSgxBackend(root, fs=FakeGramineFs(root, b"\x03\x00" + bytes(100)))
    with pytest.raises(ReportError, match="malformed"):
        backend.report(bytes(64))


@pytest.mark.parametrize("size", [0, 63, 65])
def test_gramine_backend_report_data_wrong_size_raises(
    tree: tuple[Path, FakeGramineFs], size: int
) -> None:
    """report_data must be 64 bytes; nothing is written otherwise."""
    root, fs = tree
    backend = GramineSgxBackend(root, fs=fs)
    with pytest.raises(InvalidReportDataError):
        backend.report(bytes(size))
    assert (root / "user_report_data").read_bytes() == bytes(64)


def test_gramine_backend_sealing_key_is_hkdf_of_gramine_key(
    tree: tuple[Path, FakeGramineFs],
) -> None:
    """The 32-byte sealing key is HKDF-SHA256(info=SEALING_KEY_INFO) of the 16-byte SGX key."""
    root, fs = tree
    expected = HKDF(SHA256(), 32, salt=None, info=b"tocw/sealing-key/gramine-sgx/v1").derive(
        SEAL_KEY_16
    )
    assert SEALING_KEY_INFO == b"tocw/sealing-key/gramine-sgx/v1"
    assert GramineSgxBackend(root, fs=fs).sealing_key() == expected
    assert GramineSgxBackend(root, fs=fs).sealing_key() == expected


def test_gramine_backend_sealing_key_wrong_size_raises(
    tree: tuple[Path, FakeGramineFs],
) -> None:
    """A key pseudo-file of the wrong size is a SealingKeyError."""
    root, fs = tree
    (root / "keys" / "_sgx_mrenclave").write_bytes(bytes(32))
    with pytest.raises(SealingKeyError):
        GramineSgxBackend(root, fs=fs).sealing_key()


def test_gramine_backend_debug_enclave_is_not_secure(
    tmp_path: Path, sample_quote: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """ATTRIBUTES.DEBUG in my_target_info makes the backend warn and report is_secure False."""
    root = tmp_path / "att"
    build_tree(root, attributes=(0x07).to_bytes(8, "little") + bytes(8))
    with caplog.at_level(logging.WARNING, logger="tocw.tee.gramine"):
        backend = GramineSgxBackend(root, fs=FakeGramineFs(root, sample_quote))
    assert backend.is_secure is False
    assert "DEBUG" in caplog.text


def test_gramine_backend_concurrent_reports_are_serialized(
    tree: tuple[Path, FakeGramineFs],
) -> None:
    """Threads sharing one backend each get a quote for their own report_data."""
    root, fs = tree
    backend = GramineSgxBackend(root, fs=fs)
    failures: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            for round_ in range(5):
                report_data = bytes([index, round_]) * 32
                quote = backend.report(report_data).data
                assert parse_quote_body(quote).report_data == report_data
        except BaseException as e:
            failures.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    assert failures == []
    assert fs.quotes_served == 30


def test_fake_gramine_fs_shares_report_data_between_callers(
    tree: tuple[Path, FakeGramineFs],
) -> None:
    """The fake, like Gramine, keeps one user_report_data: interleaved callers would collide.

    This is why the backend must serialize write-then-read (test above).
    """
    root, fs = tree
    fs.write(root / "user_report_data", b"A" * 64)
    fs.write(root / "user_report_data", b"B" * 64)
    assert parse_quote_body(fs.read(root / "quote")).report_data == b"B" * 64


def test_os_fs_write_never_creates_files(tmp_path: Path) -> None:
    """Writing a missing pseudo-file fails instead of creating a regular file."""
    with pytest.raises(FileNotFoundError):
        OsFs().write(tmp_path / "user_report_data", bytes(64))
    assert not (tmp_path / "user_report_data").exists()


def test_gramine_backend_measurement_type(tree: tuple[Path, FakeGramineFs]) -> None:
    """The measurement is a 32-byte MrEnclave usable as the default shard."""
    root, fs = tree
    measurement: MrEnclave = GramineSgxBackend(root, fs=fs).measurement()
    assert isinstance(measurement, bytes) and len(measurement) == 32
