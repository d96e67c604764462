"""Configuration from REPLICADB_* environment variables, and its validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from router_lib.balancing import Strategy
from router_lib.config import RouterConfig
from router_lib.consistency import BOUNDED, EVENTUAL, READ_YOUR_WRITES
from router_lib.endpoints import Via
from router_lib.errors import ConfigurationError
from router_lib.router_core import source_for
from router_lib.sources import StaticSource

EXAMPLE = Path(__file__).resolve().parents[2] / "router_lib.env.example"


def test_defaults_from_an_empty_environment() -> None:
    config = RouterConfig.from_env({})
    assert config.consistency == READ_YOUR_WRITES
    assert config.cache.mode == "off"
    assert config.balancing is Strategy.LEAST_OUTSTANDING
    with pytest.raises(ConfigurationError, match="no endpoints"):
        source_for(config)


def test_every_setting_from_the_environment(tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_text("from-secret\n")
    config = RouterConfig.from_env(
        {
            "REPLICADB_PRIMARY_DSN": "host=p",
            "REPLICADB_REPLICA_DSNS": "host=r1, host=r2",
            "REPLICADB_USER": "app",
            "REPLICADB_PASSWORD": "ignored-when-a-file-is-given",
            "REPLICADB_PASSWORD_FILE": str(password_file),
            "REPLICADB_DBNAME": "shop",
            "REPLICADB_SSLMODE": "verify-full",
            "REPLICADB_SSLROOTCERT": "/etc/ca.crt",
            "REPLICADB_CONNECT_TIMEOUT": "3",
            "REPLICADB_PRIMARY_POOL_MAX": "20",
            "REPLICADB_REPLICA_POOL_MIN": "2",
            "REPLICADB_POOL_TIMEOUT": "1.5",
            "REPLICADB_PREPARE_THRESHOLD": "none",
            "REPLICADB_STATEMENT_TIMEOUT_MS": "5000",
            "REPLICADB_CONSISTENCY": "bounded",
            "REPLICADB_MAX_LAG_SECONDS": "2.5",
            "REPLICADB_RYW_WAIT_MS": "250",
            "REPLICADB_BALANCING": "least_lag",
            "REPLICADB_ZONE": "eu-west-1a",
            "REPLICADB_WRITE_FUNCTIONS": "bump, app.touch",
            "REPLICADB_WRITE_VIA": "pooler",
            "REPLICADB_LAG_PROBE_INTERVAL": "0.25",
            "REPLICADB_CACHE": "memory+redis",
            "REPLICADB_REDIS_URL": "redis://localhost:6379/0",
            "REPLICADB_CACHE_TTL": "5",
            "REPLICADB_CACHE_BY_DEFAULT": "yes",
        }
    )
    assert config.replica_dsns == ("host=r1", "host=r2")
    assert config.connection.password == "from-secret"
    assert config.connection.sslmode == "verify-full"
    assert config.connection.sslrootcert == "/etc/ca.crt"
    assert config.connection.connect_timeout_s == 3
    assert (config.primary_pool_max, config.replica_pool_min) == (20, 2)
    assert config.pool_timeout_s == 1.5
    assert config.prepare_threshold is None
    assert config.statement_timeout_ms == 5000
    assert config.consistency == BOUNDED(max_lag_seconds=2.5)
    assert config.ryw_wait_s == 0.25
    assert config.balancing is Strategy.LEAST_LAG
    assert config.zone == "eu-west-1a"
    assert config.write_functions == {"bump", "app.touch"}
    assert config.write_via is Via.POOLER
    assert config.cache.memory
    assert config.cache.redis
    assert config.cache.by_default
    assert isinstance(source_for(config), StaticSource)


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"REPLICADB_CONSISTENCY": "sometimes"}, "REPLICADB_CONSISTENCY"),
        ({"REPLICADB_CONSISTENCY": "bounded"}, "needs max_lag"),
        ({"REPLICADB_POOL_TIMEOUT": "soon"}, "REPLICADB_POOL_TIMEOUT"),
        ({"REPLICADB_CACHE": "redis"}, "redis_url"),
        ({"REPLICADB_CACHE": "disk"}, "cache mode"),
        ({"REPLICADB_BALANCING": "random"}, "REPLICADB_BALANCING"),
        ({"REPLICADB_PRIMARY_POOL_MAX": "0"}, "primary_pool_max"),
        ({"REPLICADB_NAME": "shop", "REPLICADB_PRIMARY_DSN": "host=p"}, "not both"),
        ({"REPLICADB_CACHE_BY_DEFAULT": "maybe"}, "true or false"),
        ({"REPLICADB_PASSWORD_FILE": "/nonexistent/password"}, "PASSWORD_FILE"),
    ],
)
def test_invalid_settings_fail_with_the_variable_named(
    variables: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RouterConfig.from_env(variables)


def test_consistency_names() -> None:
    assert RouterConfig.from_env({"REPLICADB_CONSISTENCY": "ryw"}).consistency == READ_YOUR_WRITES
    assert RouterConfig.from_env({"REPLICADB_CONSISTENCY": "Eventual"}).consistency == EVENTUAL
    with pytest.raises(ConfigurationError):
        BOUNDED(max_lag_seconds=-1)


def test_the_example_env_file_is_a_valid_configuration(tmp_path: Path) -> None:
    variables = {}
    for line in EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            variables[name] = value
    assert all(name.startswith("REPLICADB_") for name in variables)
    assert not any("#" in value for value in variables.values())  # env files have no comments
    password = tmp_path / "password"
    password.write_text("pw\n")
    variables["REPLICADB_PASSWORD_FILE"] = str(password)
    config = RouterConfig.from_env(variables)
    assert config.primary_dsn is not None


def test_kubernetes_source_needs_a_namespace() -> None:
    config = RouterConfig.from_env({"REPLICADB_NAME": "shop"})
    if config.kube_namespace is None:  # not running in a pod
        with pytest.raises(ConfigurationError, match="namespace"):
            source_for(config)
