"""Imports point down the layer list of ARCHITECTURE.md "Layers"; this reads every import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "tocw"

# package -> the tocw packages it may import (besides itself). cli is the top and may use all.
ALLOWED: dict[str, set[str]] = {
    "primitives": set(),
    "rpc": {"primitives"},
    "parentchain": {"primitives", "rpc"},
    "chain": {"primitives", "rpc"},
    "tee": {"primitives"},
    "stf": {"primitives"},
    "enclave": {"stf", "tee", "primitives", "rpc"},
    "worker": {"enclave", "tee", "stf", "parentchain", "rpc", "primitives"},
    "client": {"primitives", "rpc", "parentchain", "tee"},
}


def tocw_imports(path: Path) -> set[tuple[str, int]]:
    """(top-level tocw package, line) for every import of tocw.<pkg> in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[tuple[str, int]] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "tocw":
                names = [f"tocw.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "tocw" and len(parts) > 1:
                found.add((parts[1], node.lineno))
    return found


def test_layers_every_package_is_classified() -> None:
    """A new package must be given its place in the layer list before it can land."""
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages <= set(ALLOWED) | {"cli"}, packages - set(ALLOWED) - {"cli"}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_layers_imports_point_down(package: str) -> None:
    """No module of `package` imports a tocw package above it."""
    violations = []
    for path in sorted((SRC / package).rglob("*.py")):
        for imported, line in sorted(tocw_imports(path)):
            known = imported in ALLOWED or imported == "cli"
            if known and imported != package and imported not in ALLOWED[package]:
                violations.append(f"{path.relative_to(SRC)}:{line} imports tocw.{imported}")
    assert not violations, "\n".join(violations)


def test_layers_checker_sees_violations(tmp_path: Path) -> None:
    """The checker itself finds both import forms (so the test above can fail)."""
    f = tmp_path / "m.py"
    f.write_text("import tocw.worker.service\nfrom tocw import enclave\nfrom tocw.stf import x\n")
    assert {p for p, _ in tocw_imports(f)} == {"worker", "enclave", "stf"}
