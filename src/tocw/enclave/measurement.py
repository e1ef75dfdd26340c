"""What the enclave's measurement covers: the trusted code of a worker built with some modules.

Owns the list of trusted sources (ARCHITECTURE.md "Measurement"): the primitives, tee, enclave
and rpc packages, the STF core and the enabled STF modules. In `sim` the MRENCLAVE is computed
over exactly these files, so changing any business logic changes the MRENCLAVE and with it the
default shard, as in SGX. The enclave decides this list, not the host: `init` recomputes the
sim measurement and refuses a backend that measured something else.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tocw.stf.registry import stf_source_files
from tocw.tee.sim import SimBackend

TOCW_DIR = Path(__file__).resolve().parents[1]
TRUSTED_PACKAGES = ("primitives", "tee", "enclave", "rpc")


def trusted_code_paths(modules: Sequence[str]) -> list[Path]:
    """The packages and files whose content defines an enclave built with `modules`."""
    return [TOCW_DIR / name for name in TRUSTED_PACKAGES] + stf_source_files(modules)


def sim_backend(data_dir: Path, modules: Sequence[str]) -> SimBackend:
    """A sim backend measuring exactly this enclave's trusted code (what a host should use)."""
    return SimBackend(data_dir, trusted_code_paths(modules))
