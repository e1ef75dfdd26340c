"""The worker's configuration: one validated object, from flags, environment and a TOML file.

Owns `WorkerConfig` (every setting `tocw worker run` accepts, already checked: a WorkerConfig
that exists is usable) and `load_config`, which merges the sources in the order ARCHITECTURE.md
"Operations" gives, highest first:

    command-line flags  >  TOCW_* environment variables  >  the TOML file  >  defaults

as uvicorn's `Config` does, validation happens once, here, so that the service never meets a
port of -1 or a shard of 31 bytes halfway through startup. Flags are passed in as a mapping of
only the options the user actually gave (argparse defaults are None), so an unset flag never
overrides the environment. The TOML file is named by `--config FILE` or TOCW_CONFIG; its keys
are the field names (dashes or underscores), at top level; an unknown key is an error rather
than a silently ignored typo. Unknown TOCW_* variables are ignored: other tocw commands share
the prefix.

Ports may be 0 (the OS picks a free one; the worker prints the address it got), which is what
tests use.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from tocw.primitives.types import ShardId
from tocw.stf.registry import DEFAULT_MODULES, STF_MODULES
from tocw.tee import BACKENDS
from tocw.worker import WorkerError

ENV_PREFIX: Final = "TOCW_"
CONFIG_ENV: Final = "TOCW_CONFIG"
DEFAULT_NODE_URL: Final = "ws://127.0.0.1:9944"
MAX_BATCH_SIZE: Final = 4096
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off", ""})


class WorkerConfigError(WorkerError, ValueError):
    """A configuration value is missing, malformed or inconsistent; the message names the
    setting and where it came from."""


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """Everything `tocw worker run` needs, validated (construct through `load_config` or
    directly; `__post_init__` checks either way).

    shard: the shard this worker serves; None = the default shard, the enclave's MRENCLAVE.
    external_url: the trusted-RPC URL registered on chain for clients (None: derived from
        trusted_host and the bound port).
    block_time: seconds between parentchain blocks, for the head watchdog; None = read it from
        the chain (2 x Timestamp.MinimumPeriod, Substrate's Aura slot).
    batch_size: blocks fetched per catch-up request batch.
    tee_options: extra options for the TEE backend (tocw.tee.make_backend), e.g. `root`.
    """

    data_dir: Path
    node_url: str = DEFAULT_NODE_URL
    tee: str = "sim"
    trusted_host: str = "127.0.0.1"
    trusted_port: int = 2000
    mu_ra_port: int = 3443
    health_port: int = 4545
    metrics_port: int = 8787
    external_url: str | None = None
    shard: ShardId | None = None
    dev: bool = False
    clean_reset: bool = False
    modules: tuple[str, ...] = DEFAULT_MODULES
    block_time: float | None = None
    batch_size: int = 256
    log_level: str = "INFO"
    tee_options: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_ws_url("node_url", self.node_url)
        if self.external_url is not None:
            _check_ws_url("external_url", self.external_url, secure=True)
        if self.tee not in BACKENDS:
            raise WorkerConfigError(
                f"tee: unknown backend {self.tee!r} (one of {sorted(BACKENDS)})"
            )
        for name in ("trusted_port", "mu_ra_port", "health_port", "metrics_port"):
            port = getattr(self, name)
            if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
                raise WorkerConfigError(f"{name}: {port!r} is not a port number (0..65535)")
        used = [p for p in self.ports.values() if p != 0]
        if len(used) != len(set(used)):
            raise WorkerConfigError(f"the worker's ports must differ: {self.ports}")
        if self.shard is not None and (not isinstance(self.shard, bytes) or len(self.shard) != 32):
            raise WorkerConfigError("shard: must be 32 bytes")
        if not self.modules:
            raise WorkerConfigError("modules: at least one STF module is needed")
        unknown = [m for m in self.modules if m not in STF_MODULES]
        if unknown:
            raise WorkerConfigError(
                f"modules: unknown STF module(s) {unknown} (known: {sorted(STF_MODULES)})"
            )
        if self.block_time is not None and not 0 < self.block_time <= 3600:
            raise WorkerConfigError(f"block_time: {self.block_time} s is not in (0, 3600]")
        if not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise WorkerConfigError(f"batch_size: {self.batch_size} is not in 1..{MAX_BATCH_SIZE}")
        if self.log_level not in LOG_LEVELS:
            raise WorkerConfigError(f"log_level: {self.log_level!r} is not one of {LOG_LEVELS}")
        if not self.trusted_host:
            raise WorkerConfigError("trusted_host: must not be empty")

    @property
    def ports(self) -> dict[str, int]:
        return {
            "trusted_port": self.trusted_port,
            "mu_ra_port": self.mu_ra_port,
            "health_port": self.health_port,
            "metrics_port": self.metrics_port,
        }

    def worker_url(self, bound_trusted_port: int) -> str:
        """The URL registered on chain: external_url, else wss://trusted_host:port."""
        if self.external_url is not None:
            return self.external_url
        host = self.trusted_host
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"wss://{host}:{bound_trusted_port}"


def _check_ws_url(name: str, url: object, *, secure: bool = False) -> None:
    if not isinstance(url, str):
        raise WorkerConfigError(f"{name}: must be a URL string")
    parts = urlsplit(url)
    schemes = ("wss",) if secure else ("ws", "wss")
    if parts.scheme not in schemes or not parts.hostname:
        raise WorkerConfigError(
            f"{name}: {url!r} is not a {' or '.join(s + '://' for s in schemes)} URL"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError as e:
        raise WorkerConfigError(f"{name}: {url!r}: {e}") from None


# --- parsing of loosely typed values (env strings, TOML values) ---------------------------------


def _as_str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _as_int(value: object) -> int:
    if isinstance(value, bool):
        raise TypeError("expected an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return int(value.strip(), 10)
    raise TypeError(f"expected an integer, got {type(value).__name__}")


def _as_float(value: object) -> float:
    if isinstance(value, bool):
        raise TypeError("expected a number, got a boolean")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return float(value.strip())
    raise TypeError(f"expected a number, got {type(value).__name__}")


def _as_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise TypeError(f"expected a boolean (true/false/1/0), got {value!r}")


def _as_optional_float(value: object) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto")):
        return None
    return _as_float(value)


def _as_optional_url(value: object) -> str | None:
    if value is None or value == "":
        return None
    return _as_str(value)


def parse_shard(value: object) -> ShardId | None:
    """A shard from 0x-hex (64 digits); None/empty = the default shard."""
    if value is None or value == "":
        return None
    if isinstance(value, bytes):
        raw = value
    else:
        text = _as_str(value).strip().lower().removeprefix("0x")
        if len(text) != 64:
            raise ValueError(f"a shard is 32 bytes (64 hex digits), got {len(text)} digits")
        raw = bytes.fromhex(text)
    return ShardId(raw)


def _as_modules(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        items = [m.strip() for m in value.split(",")]
    elif isinstance(value, list | tuple):
        items = [_as_str(m).strip() for m in value]
    else:
        raise TypeError("expected a comma-separated string or a list of module names")
    return tuple(m for m in items if m)


def _as_path(value: object) -> Path:
    if isinstance(value, Path):
        return value
    text = _as_str(value)
    if not text:
        raise ValueError("must not be empty")
    return Path(text).expanduser()


def _as_level(value: object) -> str:
    return _as_str(value).strip().upper()


def _as_options(value: object) -> dict[str, object]:
    if not isinstance(value, Mapping):
        raise TypeError("expected a table of backend options")
    return {str(k): v for k, v in value.items()}


# field name -> parser of a loosely typed value (explicit, one line per setting)
PARSERS: Final[dict[str, Callable[[object], Any]]] = {
    "data_dir": _as_path,
    "node_url": _as_str,
    "tee": _as_str,
    "trusted_host": _as_str,
    "trusted_port": _as_int,
    "mu_ra_port": _as_int,
    "health_port": _as_int,
    "metrics_port": _as_int,
    "external_url": _as_optional_url,
    "shard": parse_shard,
    "dev": _as_bool,
    "clean_reset": _as_bool,
    "modules": _as_modules,
    "block_time": _as_optional_float,
    "batch_size": _as_int,
    "log_level": _as_level,
    "tee_options": _as_options,
}
# Settings that have no environment variable (a table cannot be spelled in one string).
_NOT_FROM_ENV: Final = frozenset({"tee_options"})
assert set(PARSERS) == {f.name for f in fields(WorkerConfig)}


def env_name(setting: str) -> str:
    """TOCW_NODE_URL for node_url, and so on."""
    return ENV_PREFIX + setting.upper()


def _parse(setting: str, value: object, source: str) -> Any:
    try:
        return PARSERS[setting](value)
    except (TypeError, ValueError) as e:
        raise WorkerConfigError(f"{setting} (from {source}): {e}") from None


def read_toml(path: Path) -> dict[str, Any]:
    """The settings of a TOML config file, with dashes in keys turned into underscores."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise WorkerConfigError(f"config file {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise WorkerConfigError(f"config file {path}: not valid TOML: {e}") from None
    settings = {key.replace("-", "_"): value for key, value in data.items()}
    unknown = sorted(set(settings) - set(PARSERS))
    if unknown:
        raise WorkerConfigError(
            f"config file {path}: unknown setting(s) {unknown} (known: {sorted(PARSERS)})"
        )
    return settings


def load_config(
    flags: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> WorkerConfig:
    """Merge flags > environment > TOML file > defaults into a validated WorkerConfig.

    flags: only the settings given on the command line (None values are ignored).
    env: the environment (os.environ if None). config_file: the TOML file; if None,
    TOCW_CONFIG names it, if set.
    """
    environ = os.environ if env is None else env
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    unknown = sorted(set(given) - set(PARSERS))
    if unknown:
        raise WorkerConfigError(f"unknown setting(s) {unknown}")
    if config_file is None and environ.get(CONFIG_ENV):
        config_file = Path(environ[CONFIG_ENV]).expanduser()
    merged: dict[str, Any] = {}
    if config_file is not None:
        for key, value in read_toml(config_file).items():
            merged[key] = _parse(key, value, f"config file {config_file}")
    for key in PARSERS:
        name = env_name(key)
        if key not in _NOT_FROM_ENV and name in environ:
            merged[key] = _parse(key, environ[name], f"environment variable {name}")
    for key, value in given.items():
        merged[key] = _parse(key, value, f"--{key.replace('_', '-')}")
    if "data_dir" not in merged:
        raise WorkerConfigError(
            "data_dir is required: --data-dir DIR, TOCW_DATA_DIR or data_dir in the config file"
        )
    try:
        return WorkerConfig(**merged)
    except TypeError as e:  # a value of the wrong type reached the dataclass
        raise WorkerConfigError(str(e)) from None
