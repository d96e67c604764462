"""The Django backend (router_lib.contrib.django_backend) in a small Django project
(tests/django_app) on a real primary and two streaming replicas: where statements run, what
each consistency level returns while replay is paused, Django's connection set-up on replica
connections, and a failover followed without a restart."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from psycopg.conninfo import conninfo_to_dict
from replicadb_operator.dataplane import instance_control
from replicadb_operator.local.topology import LocalTopology

from router_lib.consistency import EVENTUAL, STRONG
from router_lib.contrib import routing_service
from router_lib.contrib.routing_service import RoutingService
from router_lib.sources import StatusSource
from tests.conftest import TopologyFactory
from tests.integration.conftest import replay_paused, replicated, settings_for, status_for
from tests.integration.sql import eventually, execute

pytestmark = pytest.mark.postgres

ENGINE = "router_lib.contrib.django_backend"


def database_settings(topology: LocalTopology, **overrides: Any) -> dict[str, Any]:
    """A DATABASES entry for the topology: credentials in Django's keys, addresses in
    REPLICADB (the topology's static DSNs)."""
    values = conninfo_to_dict(topology.dsn(topology.primary))
    entry: dict[str, Any] = {
        "ENGINE": ENGINE,
        "NAME": "shop",
        "USER": values["user"],
        "PASSWORD": values["password"],
        "REPLICADB": {
            "primary_dsn": topology.dsn(topology.primary),
            "replica_dsns": [topology.dsn(name) for name in topology.replicas],
            "consistency": "read_your_writes",
            "lag_probe_interval_s": 0.1,
            "eject_base_s": 0.2,
        },
    }
    entry.update(overrides)
    return entry


@pytest.fixture(scope="module")
def django_project(shared_topology: LocalTopology) -> Iterator[LocalTopology]:
    topology = shared_topology
    execute(topology.dsn(topology.primary), "CREATE DATABASE shop")
    execute(topology.dsn(topology.primary), "CREATE ROLE shop_reader NOLOGIN")
    role = database_settings(topology, OPTIONS={"assume_role": "shop_reader"})
    databases = {"default": database_settings(topology), "as_reader": role}
    os.environ["REPLICADB_DJANGO_DATABASES"] = json.dumps(databases)
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.django_app.settings"
    import django

    django.setup()
    from django.db import connection

    from tests.django_app.models import Item

    with connection.schema_editor() as editor:
        editor.create_model(Item)
    with connection.cursor() as cursor:
        cursor.execute("GRANT SELECT ON django_app_item TO shop_reader")
    replicated(topology)
    try:
        yield topology
    finally:
        from django.db import connections

        connections.close_all()
        routing_service.close_services()


def host_of(topology: LocalTopology, name: str) -> str:
    return topology.instances[name].host


def server(alias: str = "default") -> str:
    from django.db import connections

    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT host(inet_server_addr())")
        row = cursor.fetchone()
    return str(row[0])


def post(name: str, level: str) -> dict[str, Any]:
    from django.test import Client

    response = Client().post(f"/items?level={level}", {"name": name})
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def get(level: str) -> dict[str, Any]:
    from django.test import Client

    response = Client().get(f"/items?level={level}")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def test_reads_on_replicas_writes_and_transactions_on_the_primary(
    django_project: LocalTopology,
) -> None:
    from django.db import transaction

    from router_lib.contrib.django_backend import consistency
    from tests.django_app.models import Item

    topology = django_project
    primary = host_of(topology, topology.primary)
    replicas = {host_of(topology, name) for name in topology.replicas}
    with consistency(EVENTUAL):
        assert server() in replicas
    with consistency(STRONG):
        assert server() == primary
    with transaction.atomic():
        assert server() == primary  # everything inside atomic() is the primary's
        item = Item.objects.create(name="in-atomic")
        locked = Item.objects.select_for_update().get(pk=item.pk)
        assert locked.name == "in-atomic"
    # Read-your-writes (the configured level): this thread's commit is visible at once.
    assert Item.objects.filter(pk=item.pk).exists()


def test_paused_replay_read_your_writes_eventual_bounded(django_project: LocalTopology) -> None:
    from django.db import connection

    topology = django_project
    primary = host_of(topology, topology.primary)
    service = connection.replicadb
    for name in topology.replicas:
        replay_paused(topology, name, True)
    try:
        # The request's own write, read back in the same request: the replicas do not have
        # it, so read-your-writes waits briefly and reads from the primary.
        body = post("ryw-item", "ryw")
        assert "ryw-item" in body["names"]
        # EVENTUAL reads a paused replica: the request's write is not there.
        body = post("eventual-item", "eventual")
        assert "eventual-item" not in body["names"]
        assert body["server"] != primary
        # Once the probe has seen the replicas behind, BOUNDED (no lag allowed) reads the
        # primary, which has both writes.
        table = service.core.table

        def behind() -> bool:
            latest = table.history.latest()
            return latest is not None and all(
                state.replay_lsn < latest[0] for state in table.view.replicas
            )

        eventually(behind, what="the probe saw the replicas behind")
        body = get("bounded")
        assert {"ryw-item", "eventual-item"} <= set(body["names"])
        assert body["server"] == primary
        # A new request that did not write: EVENTUAL still serves the stale replica.
        assert "eventual-item" not in get("eventual")["names"]
    finally:
        for name in topology.replicas:
            replay_paused(topology, name, False)
    replicated(topology)
    body = get("eventual")
    assert {"ryw-item", "eventual-item"} <= set(body["names"])


def test_django_connection_setup_on_replica_connections(django_project: LocalTopology) -> None:
    """init_connection_state runs on replica connections too: USE_TZ's UTC and the role
    from OPTIONS["assume_role"]."""
    from django.db import connections

    from router_lib.contrib.django_backend import consistency

    topology = django_project
    replicas = {host_of(topology, name) for name in topology.replicas}
    with consistency(EVENTUAL), connections["as_reader"].cursor() as cursor:
        cursor.execute("SELECT current_user, current_setting('TimeZone'), host(inet_server_addr())")
        user, zone, host = cursor.fetchone()
    assert (user, zone) == ("shop_reader", "UTC")
    assert host in replicas


def test_session_state_keeps_reads_on_the_primary_connection(
    django_project: LocalTopology,
) -> None:
    from django.db import connections

    from router_lib.contrib.django_backend import consistency

    topology = django_project
    wrapper = connections["default"]
    with consistency(EVENTUAL), wrapper.cursor() as cursor:
        cursor.execute("SET statement_timeout = 4321")
        cursor.execute("SELECT current_setting('statement_timeout'), host(inet_server_addr())")
        setting, host = cursor.fetchone()
    assert setting == "4321ms"
    assert host == host_of(topology, topology.primary)
    wrapper.close()  # a new server session: no state, reads go to replicas again
    with consistency(EVENTUAL):
        assert server() != host_of(topology, topology.primary)


def test_health_checks_replace_a_broken_replica_connection(
    django_project: LocalTopology,
) -> None:
    from django.db import close_old_connections, connections

    from router_lib.contrib.django_backend import consistency

    topology = django_project
    wrapper = connections["default"]
    wrapper.settings_dict["CONN_HEALTH_CHECKS"] = True
    wrapper.settings_dict["CONN_MAX_AGE"] = 60
    try:
        wrapper.close()
        with consistency(EVENTUAL):
            first = server()
        # The replica's backends are terminated (a restart, an idle timeout...).
        name = next(n for n in topology.replicas if host_of(topology, n) == first)
        execute(
            topology.dsn(name),
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = 'shop' AND pid <> pg_backend_pid()",
        )
        close_old_connections()  # what Django does at the start of a request
        with consistency(EVENTUAL):
            for _ in range(4):  # both replicas, twice
                assert server() != host_of(topology, topology.primary)
    finally:
        wrapper.settings_dict["CONN_HEALTH_CHECKS"] = False
        wrapper.settings_dict["CONN_MAX_AGE"] = 0
        wrapper.close()


def test_failover_followed_without_restart(
    django_project: LocalTopology, make_topology: TopologyFactory
) -> None:
    """Endpoints from a ReplicatedDatabase status: the operator promotes a replica and
    publishes it; the next write after the running transaction goes to the new primary."""
    from django.db import connections

    from router_lib.contrib.django_backend.base import config_for

    topology = make_topology()
    execute(topology.dsn(topology.primary), "CREATE DATABASE shop")
    old, new, other = topology.primary, *topology.replicas
    entry = database_settings(topology)
    entry["REPLICADB"] = {"kube_name": "shop", "lag_probe_interval_s": 0.1}
    source = StatusSource(settings_for(topology))
    source.publish(status_for(topology))
    # Django fills in the settings it defaults (CONN_MAX_AGE, TEST...) for each alias.
    entry = connections.configure_settings({"default": entry})["default"]
    routing_service.install_service(RoutingService(config_for(entry), source=source))
    connections.settings["failover"] = entry
    wrapper = connections["failover"]
    try:
        with wrapper.cursor() as cursor:
            cursor.execute("CREATE TABLE notes (body text)")
            cursor.execute("INSERT INTO notes VALUES ('before')")
        assert server("failover") in {host_of(topology, n) for n in (old, new, other)}
        topology.kill(old)
        asyncio.run(instance_control.promote(topology.dsn(new)))
        conninfo = topology.follower_conninfo(new, other)
        asyncio.run(instance_control.repoint_replica(topology.dsn(other), conninfo))
        topology.primary = new
        status = status_for(topology, primary=new)
        status["instances"] = [e for e in status["instances"] if e["name"] != old]
        source.publish(status)
        with wrapper.cursor() as cursor:
            cursor.execute("INSERT INTO notes VALUES ('after') RETURNING host(inet_server_addr())")
            assert cursor.fetchone()[0] == host_of(topology, new)
            cursor.execute("SELECT array_agg(body ORDER BY body) FROM notes")
            assert cursor.fetchone()[0] == ["after", "before"]
    finally:
        wrapper.close()
        del connections.settings["failover"]
