"""tocw.stf.registry: the explicit module list, building by name, and the measured files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tocw.stf.errors import StfBuildError
from tocw.stf.registry import (
    DEFAULT_MODULES,
    MODULES_DIR,
    STF_MODULES,
    STF_PACKAGE_DIR,
    build_stf,
    module_source_files,
    stf_source_files,
)


def _measure(files: list[Path]) -> str:
    """sha256 over sorted (relative path, content) pairs, the shape of the sim measurement."""
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(str(f.relative_to(STF_PACKAGE_DIR)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def test_registry_names_match_modules() -> None:
    """Every registry key is the module's own name, so logs and config agree."""
    assert all(name == module.name for name, module in STF_MODULES.items())
    assert set(DEFAULT_MODULES) <= set(STF_MODULES)


def test_registry_build_default_is_balances() -> None:
    """The default STF is the Integritee-compatible balances module alone."""
    assert build_stf().module_names == ("balances",)


def test_registry_build_order_does_not_matter() -> None:
    """Modules are taken in registry order, so the same set gives the same STF."""
    one = build_stf(["auction", "balances"])
    two = build_stf(["balances", "auction"])
    assert one.module_names == two.module_names == ("balances", "auction")


@pytest.mark.parametrize(
    ("names", "match"),
    [
        (["balances", "nft"], "unknown STF module"),
        (["balances", "balances"], "twice"),
        ("balances", "not one string"),
        (["auction"], "requires"),
        ([], "at least one"),
    ],
)
def test_registry_build_errors_are_clear(names: list[str], match: str) -> None:
    """Unknown, repeated or incomplete module lists fail with a StfBuildError saying why."""
    with pytest.raises(StfBuildError, match=match):
        build_stf(names)


def test_registry_module_source_files_are_the_enabled_modules() -> None:
    """module_source_files lists exactly the enabled modules' files."""
    assert module_source_files(["balances"]) == [MODULES_DIR / "balances.py"]
    assert module_source_files(["auction", "balances"]) == [
        MODULES_DIR / "auction.py",
        MODULES_DIR / "balances.py",
    ]
    with pytest.raises(StfBuildError):
        module_source_files(["nope"])


def test_registry_stf_source_files_exclude_disabled_modules() -> None:
    """The STF's files are the core package plus enabled modules, never a disabled module."""
    files = stf_source_files(["balances"])
    assert STF_PACKAGE_DIR / "executor.py" in files
    assert MODULES_DIR / "__init__.py" in files
    assert MODULES_DIR / "balances.py" in files
    assert MODULES_DIR / "auction.py" not in files
    assert all(f.suffix == ".py" and f.is_file() for f in files)


def test_registry_enabling_a_module_changes_the_measurement() -> None:
    """Enabling the auction module changes the hash of the STF's trusted code (the MRENCLAVE)."""
    base = _measure(stf_source_files(["balances"]))
    with_auction = _measure(stf_source_files(["balances", "auction"]))
    assert base != with_auction
    assert base == _measure(stf_source_files(list(DEFAULT_MODULES)))
