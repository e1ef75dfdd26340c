"""The one list of STF modules, and how a worker's STF is built from a chosen set of them.

Owns `STF_MODULES` (an explicit dict literal: adding a module is one visible line here, never
an import-time side effect), `build_stf(names)`, and the source files that define an STF, so
that the measurement (ARCHITECTURE.md "Measurement") covers exactly the enabled modules:
enabling a module changes the MRENCLAVE and with it the default shard.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tocw.stf.errors import StfBuildError
from tocw.stf.executor import Stf
from tocw.stf.modules import auction, balances
from tocw.stf.types import StfModule

STF_MODULES: dict[str, StfModule] = {
    "balances": balances.MODULE,
    "auction": auction.MODULE,
}

DEFAULT_MODULES: tuple[str, ...] = ("balances",)

STF_PACKAGE_DIR = Path(__file__).resolve().parent
MODULES_DIR = STF_PACKAGE_DIR / "modules"


def resolve_modules(names: Sequence[str]) -> list[StfModule]:
    """Modules by name, in the canonical order of STF_MODULES (so ["auction", "balances"] and
    ["balances", "auction"] build the same STF); StfBuildError for unknown or repeated names."""
    if isinstance(names, str):
        raise StfBuildError("module names must be a sequence of names, not one string")
    unknown = [n for n in names if n not in STF_MODULES]
    if unknown:
        raise StfBuildError(f"unknown STF module(s) {unknown}; known: {sorted(STF_MODULES)}")
    if len(set(names)) != len(names):
        raise StfBuildError(f"STF module listed twice in {list(names)}")
    return [module for name, module in STF_MODULES.items() if name in names]


def build_stf(names: Sequence[str] = DEFAULT_MODULES) -> Stf:
    return Stf.from_modules(resolve_modules(names))


def module_source_files(names: Sequence[str]) -> list[Path]:
    """The source files of the named modules, sorted and absolute."""
    files = {path.resolve() for m in resolve_modules(names) for path in m.source_files}
    return sorted(files)


def stf_source_files(names: Sequence[str]) -> list[Path]:
    """Every file that defines an STF built from `names`: the tocw.stf package except the
    modules directory, plus the enabled modules' files. What the measurement should hash for
    the STF part of the trusted code."""
    core = {p.resolve() for p in STF_PACKAGE_DIR.rglob("*.py") if _is_core_file(p.resolve())}
    return sorted(core | set(module_source_files(names)))


def _is_core_file(path: Path) -> bool:
    """Part of every STF: anything outside modules/, plus modules/__init__.py."""
    return MODULES_DIR not in path.parents or path == MODULES_DIR / "__init__.py"
