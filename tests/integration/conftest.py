"""Integration fixtures beyond tests/conftest.py: a real redis-server, and helpers that
describe a local topology to router_lib (static DSNs, or a ReplicatedDatabase status).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
import redis
from psycopg.conninfo import conninfo_to_dict
from replicadb_operator.local.topology import LocalTopology

from router_lib.config import RouterConfig
from router_lib.conninfo import ConnectionSettings
from tests.integration.sql import caught_up, eventually, scalar


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A private redis-server on a free loopback port, without persistence."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (make system-deps)")
    directory = tempfile.mkdtemp(prefix="replicadb-redis-")
    port = _free_port()
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            directory,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.02)
        client.close()
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(directory, ignore_errors=True)


def settings_for(topology: LocalTopology) -> ConnectionSettings:
    """The application's own credentials (here: the test superuser)."""
    values = conninfo_to_dict(topology.dsn(topology.primary))
    return ConnectionSettings(
        user=str(values["user"]), password=str(values["password"]), dbname="postgres"
    )


def static_config(topology: LocalTopology, **overrides: Any) -> RouterConfig:
    """A router configuration naming the topology's current primary and replicas."""
    values: dict[str, Any] = {
        "primary_dsn": topology.dsn(topology.primary),
        "replica_dsns": tuple(topology.dsn(name) for name in topology.replicas),
        "lag_probe_interval_s": 0.1,
        "replica_pool_min": 1,
        "primary_pool_min": 1,
        "pool_timeout_s": 2.0,
        "eject_base_s": 0.2,
    }
    values.update(overrides)
    return RouterConfig(**values)


def status_for(
    topology: LocalTopology,
    primary: str | None = None,
    zones: dict[str, str] | None = None,
    ready: dict[str, bool] | None = None,
    without: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A ReplicatedDatabase status (the operator's contract) describing the topology."""
    primary = primary or topology.primary
    instances = []
    for name, instance in topology.instances.items():
        if name in without:
            continue
        entry: dict[str, Any] = {
            "name": name,
            "role": "primary" if name == primary else "replica",
            "address": instance.host,
            "port": 5432,
            "ready": (ready or {}).get(name, True),
            "lagBytes": 0,
            "lagSeconds": 0.0,
            "state": "streaming",
        }
        if zones and name in zones:
            entry["zone"] = zones[name]
        instances.append(entry)
    return {
        "primary": primary,
        "timeline": 1,
        "instances": instances,
        "endpoints": {"readWrite": {"host": topology.instances[primary].host, "port": 5432}},
    }


def server_of(topology: LocalTopology, address: str) -> str:
    """Which instance an ``inet_server_addr()`` answer names."""
    host = address.split("/")[0]
    for name, instance in topology.instances.items():
        if instance.host == host:
            return name
    raise AssertionError(f"{address} is no instance of the topology")


def replicated(topology: LocalTopology) -> None:
    """Wait until every replica has replayed what the primary has written so far (tests
    that create tables and then read them through the router at EVENTUAL need this)."""
    primary = topology.dsn(topology.primary)
    for name in topology.replicas:
        replica = topology.dsn(name)
        eventually(partial(caught_up, primary, replica), what=f"{name} caught up")


def replay_paused(topology: LocalTopology, name: str, paused: bool) -> None:
    function = "pg_wal_replay_pause" if paused else "pg_wal_replay_resume"
    scalar(topology.dsn(name), f"SELECT {function}()")
