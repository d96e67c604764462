"""The fence agent beside a real primary: its heartbeat keeps replicas hearing an idle
primary, and it stops a primary cut off from the API server and every peer within its bound,
or named former primary by the status. The API server is stood in for by the function the
agent reads the status with (raising is what an unreachable one does)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from replicadb_operator.dataplane.heartbeat import CHECK_INTERVAL_S, ISOLATION_S
from replicadb_operator.dataplane.probe import ProbeResult, probe_instance
from replicadb_operator.instance.cluster_view import ClusterView
from replicadb_operator.instance.fence_agent import FenceAgent
from replicadb_operator.instance.settings import InstanceSettings
from replicadb_operator.local.topology import LocalTopology

pytestmark = pytest.mark.postgres


def api_unreachable() -> ClusterView:
    raise TimeoutError("the API server did not answer")


def agent_for(
    topology: LocalTopology,
    tmp_path: Path,
    read_status: Callable[[], ClusterView] = api_unreachable,
) -> FenceAgent:
    inst = topology.instances[topology.primary]
    secrets = tmp_path / "secrets"
    secrets.mkdir(exist_ok=True)
    (secrets / "superuser-password").write_text(topology.password)
    settings = InstanceSettings(
        name=inst.name, database="db", namespace="ns", pgdata=inst.datadir,
        config_dir=tmp_path, secrets_dir=secrets, run_dir=inst.directory, peer_domain="local",
    )  # fmt: skip
    return FenceAgent(settings, read_status)


@pytest.fixture
def cleanup() -> Iterator[list[FenceAgent]]:
    agents: list[FenceAgent] = []
    yield agents
    for agent in agents:
        agent._drop()
        agent.pool.shutdown(wait=False)


def rounds(agent: FenceAgent, seconds: float) -> Iterator[tuple[float, str | None]]:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        yield time.monotonic() - started, agent.check(time.monotonic())
        time.sleep(CHECK_INTERVAL_S)


def silent_s(topology: LocalTopology, replica: str) -> float:
    with psycopg.connect(topology.dsn(replica)) as conn:
        row = conn.execute(
            "SELECT extract(epoch FROM now() - last_msg_receipt_time)::float8 "
            "FROM pg_stat_wal_receiver"
        ).fetchone()
    assert row is not None
    return float(row[0])


def test_heartbeat_is_what_an_idle_primary_s_replicas_hear(
    topology: LocalTopology, tmp_path: Path, cleanup: list[FenceAgent]
) -> None:
    replica = topology.replicas[0]
    # Without the agent, an idle primary goes quiet (replicas report every second, so the
    # primary never asks them for a reply and sends nothing).
    deadline = time.monotonic() + 15
    while silent_s(topology, replica) < 3.0:
        assert time.monotonic() < deadline, "an idle primary kept talking to its replica"
        time.sleep(0.2)
    agent = agent_for(topology, tmp_path, lambda: ClusterView("pg-0", "pg-0", True))
    cleanup.append(agent)
    heard = [silent_s(topology, replica) for _ in rounds(agent, 4.0)]
    assert max(heard[-4:]) < 2.0, heard


def test_an_isolated_primary_stops_itself_within_the_bound(
    topology: LocalTopology, tmp_path: Path, cleanup: list[FenceAgent]
) -> None:
    agent = agent_for(topology, tmp_path)
    cleanup.append(agent)
    agent.peers = {"pg-1": "127.255.255.254"}  # nobody answers there
    stopped_at = None
    for elapsed, reason in rounds(agent, ISOLATION_S + 3.0):
        if reason is not None:
            assert "neither the API server nor any of 1" in reason
            stopped_at = elapsed
            break
    assert stopped_at is not None, "the isolated primary was not stopped"
    assert ISOLATION_S - 0.1 <= stopped_at <= ISOLATION_S + 1.5
    deadline = time.monotonic() + 5
    while await_probe(topology).reachable:
        assert time.monotonic() < deadline, "postgres still answers after the agent's stop"
        time.sleep(0.1)


def await_probe(topology: LocalTopology) -> ProbeResult:
    return asyncio.run(probe_instance("pg-0", topology.dsn("pg-0")))


def test_a_primary_that_reaches_one_peer_keeps_running(
    topology: LocalTopology, tmp_path: Path, cleanup: list[FenceAgent]
) -> None:
    agent = agent_for(topology, tmp_path)
    cleanup.append(agent)
    agent.peers = {"pg-1": "127.255.255.254", "pg-2": topology.instances["pg-2"].host}
    reasons = [reason for _, reason in rounds(agent, ISOLATION_S + 2.0)]
    assert reasons
    assert all(r is None for r in reasons)
    assert await_probe(topology).is_primary


def test_a_primary_the_status_replaced_stops_at_once(
    topology: LocalTopology, tmp_path: Path, cleanup: list[FenceAgent]
) -> None:
    agent = agent_for(topology, tmp_path, lambda: ClusterView("pg-1", "pg-1", True))
    cleanup.append(agent)
    assert agent.check(time.monotonic()) == "the status names pg-1 primary"
    assert not await_probe(topology).reachable or not await_probe(topology).is_primary
