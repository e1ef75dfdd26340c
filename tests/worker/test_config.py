"""WorkerConfig: precedence of flags > env > TOML > defaults, parsing and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from tocw.stf.registry import DEFAULT_MODULES
from tocw.worker.config import (
    DEFAULT_NODE_URL,
    WorkerConfig,
    WorkerConfigError,
    env_name,
    load_config,
    parse_shard,
)

SHARD_HEX = "0x" + "ab" * 32


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "worker.toml"
    path.write_text(text)
    return path


def test_config_defaults_with_only_data_dir(tmp_path: Path) -> None:
    """Only the data dir is required; everything else has the documented default."""
    config = load_config({"data_dir": str(tmp_path)}, env={})
    assert config.data_dir == tmp_path
    assert config.node_url == DEFAULT_NODE_URL
    assert (config.tee, config.trusted_port, config.mu_ra_port) == ("sim", 2000, 3443)
    assert (config.health_port, config.metrics_port) == (4545, 8787)
    assert config.shard is None and not config.dev and not config.clean_reset
    assert config.modules == DEFAULT_MODULES
    assert config.block_time is None


def test_config_missing_data_dir_is_an_error() -> None:
    """Without a data dir from any source the error says where to give one."""
    with pytest.raises(WorkerConfigError, match=r"data_dir is required.*TOCW_DATA_DIR"):
        load_config({}, env={})


def test_config_precedence_flags_over_env_over_toml(tmp_path: Path) -> None:
    """A flag beats the environment, which beats the file, which beats the default."""
    toml = write_toml(
        tmp_path,
        'data_dir = "/from/toml"\ntrusted-port = 2001\nhealth_port = 4001\nmetrics_port = 5001\n',
    )
    env = {"TOCW_TRUSTED_PORT": "2002", "TOCW_HEALTH_PORT": "4002"}
    config = load_config({"trusted_port": 2003, "health_port": None}, env=env, config_file=toml)
    assert config.trusted_port == 2003  # flag
    assert config.health_port == 4002  # env (the None flag was not given)
    assert config.metrics_port == 5001  # toml
    assert config.data_dir == Path("/from/toml")
    assert config.mu_ra_port == 3443  # default


def test_config_file_named_by_env(tmp_path: Path) -> None:
    """TOCW_CONFIG names the TOML file when --config is not given."""
    toml = write_toml(tmp_path, f'data_dir = "{tmp_path}"\ndev = true\n')
    config = load_config({}, env={"TOCW_CONFIG": str(toml)})
    assert config.dev is True


def test_config_env_values_are_parsed(tmp_path: Path) -> None:
    """Environment strings become booleans, numbers, shards and module lists."""
    env = {
        env_name("data_dir"): str(tmp_path),
        env_name("dev"): "yes",
        env_name("clean_reset"): "0",
        env_name("shard"): SHARD_HEX,
        env_name("block_time"): "1.5",
        env_name("modules"): "balances, auction",
        env_name("log_level"): "debug",
        env_name("external_url"): "wss://worker.example:443",
    }
    config = load_config({}, env=env)
    assert config.dev is True and config.clean_reset is False
    assert config.shard == bytes.fromhex("ab" * 32)
    assert config.block_time == 1.5
    assert config.modules == ("balances", "auction")
    assert config.log_level == "DEBUG"
    assert config.external_url == "wss://worker.example:443"


def test_config_unknown_tocw_env_vars_are_ignored(tmp_path: Path) -> None:
    """Other tocw commands share the TOCW_ prefix; their variables do not break the worker."""
    config = load_config({"data_dir": str(tmp_path)}, env={"TOCW_SOMETHING_ELSE": "x"})
    assert config.data_dir == tmp_path


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TOCW_TRUSTED_PORT": "twenty"}, "trusted_port.*TOCW_TRUSTED_PORT"),
        ({"TOCW_DEV": "maybe"}, "dev.*boolean"),
        ({"TOCW_SHARD": "0x1234"}, "shard.*32 bytes"),
        ({"TOCW_BLOCK_TIME": "-1"}, "block_time"),
        ({"TOCW_NODE_URL": "http://127.0.0.1:9944"}, "node_url.*ws"),
        ({"TOCW_EXTERNAL_URL": "ws://plain:1"}, "external_url.*wss"),
        ({"TOCW_TEE": "sgx-v1"}, "tee: unknown backend"),
        ({"TOCW_MODULES": "balances,nope"}, "unknown STF module"),
        ({"TOCW_HEALTH_PORT": "70000"}, "health_port.*port number"),
        ({"TOCW_BATCH_SIZE": "0"}, "batch_size"),
        ({"TOCW_LOG_LEVEL": "LOUD"}, "log_level"),
    ],
)
def test_config_invalid_values_are_refused(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    """Each malformed value is a WorkerConfigError naming the setting (and its source)."""
    with pytest.raises(WorkerConfigError, match=message):
        load_config({"data_dir": str(tmp_path)}, env=env)


def test_config_ports_must_differ(tmp_path: Path) -> None:
    """Two servers on one port would fail at bind time; refuse it up front (0 may repeat)."""
    with pytest.raises(WorkerConfigError, match="ports must differ"):
        load_config({"data_dir": str(tmp_path), "health_port": 2000}, env={})
    config = load_config(
        {"data_dir": str(tmp_path), "trusted_port": 0, "health_port": 0, "metrics_port": 0},
        env={},
    )
    assert config.trusted_port == config.health_port == 0


def test_config_toml_unknown_key_is_an_error(tmp_path: Path) -> None:
    """A typo in the file is reported, not silently ignored."""
    toml = write_toml(tmp_path, f'data_dir = "{tmp_path}"\ntrusted_prot = 1\n')
    with pytest.raises(WorkerConfigError, match=r"unknown setting.*trusted_prot"):
        load_config({}, env={}, config_file=toml)


def test_config_toml_syntax_and_missing_file(tmp_path: Path) -> None:
    """A file that is not TOML, or not there, is a clear error."""
    bad = write_toml(tmp_path, "data_dir = \n")
    with pytest.raises(WorkerConfigError, match="not valid TOML"):
        load_config({}, env={}, config_file=bad)
    with pytest.raises(WorkerConfigError, match="config file"):
        load_config({}, env={}, config_file=tmp_path / "absent.toml")


def test_config_toml_types_are_checked(tmp_path: Path) -> None:
    """A TOML value of the wrong type names the setting and the file."""
    toml = write_toml(tmp_path, f'data_dir = "{tmp_path}"\ndev = "sometimes"\n')
    with pytest.raises(WorkerConfigError, match=r"dev.*config file"):
        load_config({}, env={}, config_file=toml)
    toml = write_toml(tmp_path, f'data_dir = "{tmp_path}"\ntrusted_port = true\n')
    with pytest.raises(WorkerConfigError, match="trusted_port"):
        load_config({}, env={}, config_file=toml)


def test_config_tee_options_only_from_toml(tmp_path: Path) -> None:
    """Backend options are a table, so they come from the file only."""
    toml = write_toml(
        tmp_path, f'data_dir = "{tmp_path}"\ntee = "gramine-sgx"\n[tee_options]\nroot = "/x"\n'
    )
    config = load_config({}, env={"TOCW_TEE_OPTIONS": "ignored"}, config_file=toml)
    assert config.tee == "gramine-sgx"
    assert dict(config.tee_options) == {"root": "/x"}


def test_config_worker_url_defaults_to_trusted_endpoint(tmp_path: Path) -> None:
    """The registered URL is external_url, else wss://host:bound-port (wildcards made local)."""
    config = WorkerConfig(data_dir=tmp_path, trusted_host="0.0.0.0")
    assert config.worker_url(2345) == "wss://127.0.0.1:2345"
    config = WorkerConfig(data_dir=tmp_path, trusted_host="::1")
    assert config.worker_url(2345) == "wss://[::1]:2345"
    config = WorkerConfig(data_dir=tmp_path, external_url="wss://w.example:443")
    assert config.worker_url(2345) == "wss://w.example:443"


def test_config_parse_shard_forms() -> None:
    """A shard is 64 hex digits with or without 0x; empty means the default shard."""
    assert parse_shard(SHARD_HEX) == bytes.fromhex("ab" * 32)
    assert parse_shard("AB" * 32) == bytes.fromhex("ab" * 32)
    assert parse_shard("") is None and parse_shard(None) is None
    with pytest.raises(ValueError):
        parse_shard("0x" + "zz" * 32)


def test_config_direct_construction_validates(tmp_path: Path) -> None:
    """WorkerConfig checks itself even when built without load_config."""
    with pytest.raises(WorkerConfigError, match="trusted_port"):
        WorkerConfig(data_dir=tmp_path, trusted_port=-1)
    with pytest.raises(WorkerConfigError, match="at least one STF module"):
        WorkerConfig(data_dir=tmp_path, modules=())
