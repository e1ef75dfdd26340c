"""The tsm backend driven through a fake configfs-tsm tree in a temp dir.

`FakeTsmFs` (an OsFs over real files) emulates what the kernel does on the calls the backend
makes (Documentation/ABI/testing/configfs-tsm-report): mkdir under report/ populates the
instance with provider, generation, inblob, outblob, auxblob (and privlevel, privlevel_floor
for sev_guest); each write to inblob or an option increments generation; reading outblob
returns a report for the current inblob; rmdir removes the populated instance. For tdx_guest
the report is the real TDX sample quote (shared/testdata/dcap, from Phala-Network/dcap-qvl, MIT)
with REPORTDATA replaced by inblob, as a fresh quote would carry it; with the sample's own
report_data it is the pristine, verifiable quote.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tocw.tee import TeeBackend, TeeKind, make_backend, verify_evidence
from tocw.tee.base import OsFs
from tocw.tee.errors import (
    InvalidReportDataError,
    ReportError,
    SealingUnavailableError,
    TeeConfigError,
    TeeUnavailableError,
    TsmConflictError,
)
from tocw.tee.tsm import TsmBackend
from tocw.tee.verify import parse_quote_body, parse_snp_report

# shared/ lies beside the repository checkout (as in CI): ../shared/testdata/dcap
_CANDIDATES = [Path(__file__).resolve().parents[3] / "shared" / "testdata" / "dcap"]
TDX_REPORT_DATA_AT = 48 + 520  # quote v4: 48-byte header, REPORTDATA at body offset 520
SNP_MEASUREMENT = bytes(range(100, 148))


def dcap_dir() -> Path:
    for candidate in _CANDIDATES:
        if (candidate / "EXPECTED.json").is_file():
            return candidate
    raise FileNotFoundError(f"DCAP sample quotes not found in any of {_CANDIDATES}")


def snp_template() -> bytes:
    """A synthetic SEV-SNP ATTESTATION_REPORT (no real sample is available)."""
    report = bytearray(0x4A0)
    report[0:4] = (2).to_bytes(4, "little")
    report[0x08:0x10] = (0x30000).to_bytes(8, "little")
    report[0x90:0xC0] = SNP_MEASUREMENT
    return bytes(report)


class FakeTsmFs(OsFs):
    """configfs-tsm as the kernel presents it, over real files under `root`."""

    def __init__(
        self,
        root: Path,
        *,
        provider: str = "tdx_guest",
        template: bytes,
        follow_inblob: bool = True,
        on_outblob: Callable[[Path], None] | None = None,
    ) -> None:
        self.reports = root / "report"
        self.provider = provider
        self.template = template
        self.follow_inblob = follow_inblob
        self.on_outblob = on_outblob
        self.created: list[str] = []
        self.writes: list[tuple[str, bytes]] = []

    def _instance(self, path: Path) -> bool:
        return path.parent.parent == self.reports

    def mkdir(self, path: Path) -> None:
        super().mkdir(path)
        if path.parent != self.reports:
            return
        self.created.append(path.name)
        (path / "provider").write_bytes(self.provider.encode() + b"\n")
        (path / "generation").write_bytes(b"0\n")
        for name in ("inblob", "outblob", "auxblob"):
            (path / name).write_bytes(b"")
        if self.provider == "sev_guest":
            (path / "privlevel").write_bytes(b"")
            (path / "privlevel_floor").write_bytes(b"0\n")

    def write(self, path: Path, data: bytes) -> None:
        if self._instance(path) and path.name == "inblob" and len(data) > 64:
            raise OSError(errno.EINVAL, "inblob takes at most 64 bytes")
        if self._instance(path) and path.name in ("provider", "generation", "outblob"):
            raise OSError(errno.EACCES, f"{path.name} is read-only")
        super().write(path, data)
        if self._instance(path):
            self.writes.append((path.name, data))
            self.bump(path.parent)

    def bump(self, instance: Path) -> None:
        generation = int((instance / "generation").read_bytes())
        (instance / "generation").write_bytes(f"{generation + 1}\n".encode())

    def read(self, path: Path) -> bytes:
        if not (self._instance(path) and path.name == "outblob"):
            return super().read(path)
        inblob = (path.parent / "inblob").read_bytes().ljust(64, b"\0")
        if self.on_outblob is not None:
            self.on_outblob(path.parent)
        report = bytearray(self.template)
        if self.follow_inblob:
            at = TDX_REPORT_DATA_AT if self.provider == "tdx_guest" else 0x50
            report[at : at + 64] = inblob
        return bytes(report)

    def rmdir(self, path: Path) -> None:
        if path.parent == self.reports:
            shutil.rmtree(path)  # configfs removes the attributes with the instance
        else:
            super().rmdir(path)


@pytest.fixture(scope="module")
def tdx_quote() -> bytes:
    return (dcap_dir() / "tdx_quote").read_bytes()


def make_tree(tmp_path: Path) -> Path:
    root = tmp_path / "sys" / "kernel" / "config" / "tsm"
    (root / "report").mkdir(parents=True)
    return root


def test_tsm_backend_tdx_report_binds_inblob(tmp_path: Path, tdx_quote: bytes) -> None:
    """A TDX guest's evidence is the outblob quote carrying our report_data."""
    root = make_tree(tmp_path)
    fs = FakeTsmFs(root, template=tdx_quote)
    backend = TsmBackend(root, fs=fs)
    report_data = bytes(range(64))
    evidence = backend.report(report_data)
    assert evidence.kind is TeeKind.TDX_DCAP
    assert parse_quote_body(evidence.data).report_data == report_data
    assert fs.writes == [("inblob", report_data)]
    assert backend.kind is TeeKind.TDX_DCAP
    assert backend.is_secure is True and backend.name == "tsm"
    assert isinstance(backend, TeeBackend)


def test_tsm_backend_measurement_matches_verifier(tmp_path: Path, tdx_quote: bytes) -> None:
    """measurement() is sha256(MRTD ‖ RTMR0..3), the value verify_evidence reports."""
    root = make_tree(tmp_path)
    backend = TsmBackend(root, fs=FakeTsmFs(root, template=tdx_quote))
    body = tdx_quote[48 : 48 + 584]
    assert backend.measurement() == hashlib.sha256(body[136:184] + body[328:520]).digest()
    assert backend.measurement() == parse_quote_body(tdx_quote).mrenclave


def test_tsm_backend_evidence_verifies_end_to_end(tmp_path: Path, tdx_quote: bytes) -> None:
    """With the sample's own report_data, the backend's evidence passes dcap-qvl."""
    expected = json.loads((dcap_dir() / "EXPECTED.json").read_text())["tdx_quote"]
    collateral = (dcap_dir() / expected["collateral"]).read_text()
    root = make_tree(tmp_path)
    backend = TsmBackend(root, fs=FakeTsmFs(root, template=tdx_quote))
    report_data = bytes.fromhex(expected["report_data"])
    result = verify_evidence(
        backend.report(report_data),
        backend.measurement(),
        expected["verify_at_unix"],
        collateral,
        expected_report_data=report_data,
    )
    assert result.tcb_status == "UpToDate"


def test_tsm_backend_removes_report_instances(tmp_path: Path, tdx_quote: bytes) -> None:
    """Each request uses a fresh, uniquely named instance and removes it afterwards."""
    root = make_tree(tmp_path)
    fs = FakeTsmFs(root, template=tdx_quote)
    backend = TsmBackend(root, fs=fs)
    for i in range(3):
        backend.report(bytes([i]) * 64)
    assert len(set(fs.created)) == 3
    assert list((root / "report").iterdir()) == []


def test_tsm_backend_generation_conflict_detected(tmp_path: Path, tdx_quote: bytes) -> None:
    """A write by someone else between ours and outblob is a TsmConflictError; no leftovers."""
    root = make_tree(tmp_path)
    fs = FakeTsmFs(root, template=tdx_quote)
    fs.on_outblob = fs.bump  # another writer touches the instance
    backend = TsmBackend(root, fs=fs)
    with pytest.raises(TsmConflictError, match="generation"):
        backend.report(bytes(64))
    assert list((root / "report").iterdir()) == []


def test_tsm_backend_sev_guest(tmp_path: Path) -> None:
    """An SEV-SNP guest yields SEV_SNP evidence; measurement = sha256(MEASUREMENT)."""
    root = make_tree(tmp_path)
    backend = TsmBackend(root, fs=FakeTsmFs(root, provider="sev_guest", template=snp_template()))
    evidence = backend.report(bytes(range(64)))
    assert evidence.kind is TeeKind.SEV_SNP
    assert parse_snp_report(evidence.data).report_data == bytes(range(64))
    assert backend.measurement() == hashlib.sha256(SNP_MEASUREMENT).digest()


def test_tsm_backend_privlevel_written_and_counted(tmp_path: Path) -> None:
    """privlevel is written before inblob; both writes count towards generation."""
    root = make_tree(tmp_path)
    fs = FakeTsmFs(root, provider="sev_guest", template=snp_template())
    backend = TsmBackend(root, privlevel=2, fs=fs)
    backend.report(bytes(64))
    assert [name for name, _ in fs.writes] == ["privlevel", "inblob"]
    assert fs.writes[0][1] == b"2\n"


def test_tsm_backend_unsupported_provider_raises(tmp_path: Path, tdx_quote: bytes) -> None:
    """A provider other than tdx_guest/sev_guest is refused by name."""
    root = make_tree(tmp_path)
    backend = TsmBackend(root, fs=FakeTsmFs(root, provider="arm_cca_guest", template=tdx_quote))
    with pytest.raises(TeeUnavailableError, match="arm_cca_guest"):
        backend.report(bytes(64))
    assert list((root / "report").iterdir()) == []


def test_tsm_backend_missing_configfs_raises(tmp_path: Path) -> None:
    """No report/ directory: not a confidential guest; also through the registry."""
    with pytest.raises(TeeUnavailableError, match="not a TDX/SEV-SNP guest"):
        TsmBackend(tmp_path)
    with pytest.raises(TeeUnavailableError):
        make_backend("tsm", tmp_path, root=tmp_path)


def test_tsm_backend_from_registry_with_real_fs(tmp_path: Path) -> None:
    """make_backend('tsm') with the real OsFs: mkdir in a plain dir has no attributes -> error."""
    root = make_tree(tmp_path)
    backend = make_backend("tsm", tmp_path, root=root, sealing_key=bytes(32))
    assert backend.sealing_key() == bytes(32)
    with pytest.raises(TeeUnavailableError, match="provider"):
        backend.report(bytes(64))
    assert list((root / "report").iterdir()) == []


def test_tsm_backend_sealing_needs_provisioned_key(tmp_path: Path, tdx_quote: bytes) -> None:
    """No hardware sealing key: refuse unless one was provisioned; wrong sizes are config errors."""
    root = make_tree(tmp_path)
    fs = FakeTsmFs(root, template=tdx_quote)
    with pytest.raises(SealingUnavailableError, match="provision"):
        TsmBackend(root, fs=fs).sealing_key()
    key = bytes(range(32))
    assert TsmBackend(root, sealing_key=key, fs=fs).sealing_key() == key
    with pytest.raises(TeeConfigError):
        TsmBackend(root, sealing_key=bytes(16), fs=fs)
    with pytest.raises(TeeConfigError):
        TsmBackend(root, privlevel=4, fs=fs)


def test_tsm_backend_stale_outblob_detected(tmp_path: Path, tdx_quote: bytes) -> None:
    """An outblob that does not carry our inblob is refused."""
    root = make_tree(tmp_path)
    backend = TsmBackend(root, fs=FakeTsmFs(root, template=tdx_quote, follow_inblob=False))
    with pytest.raises(ReportError, match="stale"):
        backend.report(bytes(range(64)))


def test_tsm_backend_malformed_outblob_detected(tmp_path: Path) -> None:
    """A truncated quote from tdx_guest is a ReportError."""
    root = make_tree(tmp_path)
    backend = TsmBackend(root, fs=FakeTsmFs(root, template=bytes(100), follow_inblob=False))
    with pytest.raises(ReportError, match="malformed"):
        backend.report(bytes(64))


def test_tsm_backend_measurement_change_detected(tmp_path: Path, tdx_quote: bytes) -> None:
    """If an RTMR is extended after start, later reports are refused."""
    root = make_tree(tmp_path)
    fs = FakeTsmFs(root, template=tdx_quote)
    backend = TsmBackend(root, fs=fs)
    backend.measurement()
    changed = bytearray(tdx_quote)
    changed[48 + 472] ^= 0xFF  # RTMR3
    fs.template = bytes(changed)
    with pytest.raises(ReportError, match="measurement or debug mode changed"):
        backend.report(bytes(64))


@pytest.mark.parametrize("size", [0, 65])
def test_tsm_backend_report_data_wrong_size_raises(
    tmp_path: Path, tdx_quote: bytes, size: int
) -> None:
    """report_data must be exactly 64 bytes; no instance is created otherwise."""
    root = make_tree(tmp_path)
    fs = FakeTsmFs(root, template=tdx_quote)
    with pytest.raises(InvalidReportDataError):
        TsmBackend(root, fs=fs).report(bytes(size))
    assert fs.created == []


def test_fake_tsm_fs_behaves_like_configfs(tmp_path: Path, tdx_quote: bytes) -> None:
    """The fake populates instances, counts writes in generation and enforces inblob size."""
    root = make_tree(tmp_path)
    fs = FakeTsmFs(root, template=tdx_quote)
    instance = root / "report" / "x"
    fs.mkdir(instance)
    assert fs.read(instance / "provider") == b"tdx_guest\n"
    assert fs.read(instance / "generation") == b"0\n"
    fs.write(instance / "inblob", b"a" * 64)
    fs.write(instance / "inblob", b"b" * 64)
    assert fs.read(instance / "generation") == b"2\n"
    assert parse_quote_body(fs.read(instance / "outblob")).report_data == b"b" * 64
    with pytest.raises(OSError):
        fs.write(instance / "inblob", bytes(65))
    with pytest.raises(OSError):
        fs.write(instance / "generation", b"0")
    fs.rmdir(instance)
    assert not instance.exists()


def test_tsm_backend_debug_guest_is_not_secure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An SEV-SNP guest whose policy allows debugging is reported as not secure, loudly."""
    root = make_tree(tmp_path)
    template = bytearray(snp_template())
    template[0x08:0x10] = (0x30000 | 1 << 19).to_bytes(8, "little")
    backend = TsmBackend(root, fs=FakeTsmFs(root, provider="sev_guest", template=bytes(template)))
    with caplog.at_level(logging.WARNING, logger="tocw.tee.tsm"):
        assert backend.is_secure is False
    assert "DEBUG" in caplog.text


def test_tsm_backend_production_tdx_is_secure(tmp_path: Path, tdx_quote: bytes) -> None:
    """The real TDX sample is a production TD (TDATTRIBUTES.DEBUG clear)."""
    root = make_tree(tmp_path)
    assert TsmBackend(root, fs=FakeTsmFs(root, template=tdx_quote)).is_secure is True
