"""Builders pin what the operator asks Kubernetes for."""

from __future__ import annotations

from typing import Any

import yaml
from replicadb_operator.builders import configmaps, names, pooler, secrets, services, statefulsets
from replicadb_operator.builders.desired import desired_objects
from replicadb_operator.spec import parse_spec

DB = parse_spec(
    "shop",
    "prod",
    {
        "replicas": 2,
        "postgres": {"parameters": {"work_mem": "8MB"}, "storage": {"size": "5Gi"}},
        "replication": {"synchronousMode": "quorum", "synchronousStandbys": 1},
        "pgbouncer": {"maxClientConnections": 500},
    },
    uid="uid-1",
)


def container(sts: dict[str, Any]) -> dict[str, Any]:
    return dict(sts["spec"]["template"]["spec"]["containers"][0])


def test_every_object_is_owned_by_the_database_so_deletion_cascades() -> None:
    for obj in desired_objects(DB):
        ref = obj["metadata"]["ownerReferences"][0]
        assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
            "ReplicatedDatabase",
            "shop",
            "uid-1",
            True,
        )
        assert obj["metadata"]["namespace"] == "prod"


def test_two_statefulsets_and_no_role_in_templates() -> None:
    primary, replica = statefulsets.primary_statefulset(DB), statefulsets.replica_statefulset(DB)
    assert (primary["metadata"]["name"], primary["spec"]["replicas"]) == ("shop-primary", 1)
    assert (replica["metadata"]["name"], replica["spec"]["replicas"]) == ("shop-replica", 2)
    for sts in (primary, replica):
        labels = sts["spec"]["template"]["metadata"]["labels"]
        assert names.LABEL_ROLE not in labels
        assert sts["spec"]["serviceName"] == "shop-instances"
        claim = sts["spec"]["volumeClaimTemplates"][0]
        assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"


def test_instance_pod_runs_the_entrypoint_as_non_root_with_probes() -> None:
    sts = statefulsets.replica_statefulset(DB)
    pod = sts["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == names.POSTGRES_UID
    c = container(sts)
    assert c["command"] == ["replicadb-instance"]
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["RDB_PEER_DOMAIN"]["value"] == "shop-instances.prod.svc"
    assert {"readinessProbe", "livenessProbe", "startupProbe"} <= set(c)
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts["data"] == "/var/lib/postgresql/data"
    projected = next(v for v in pod["volumes"] if v["name"] == "secrets")["projected"]
    paths = [s["secret"]["items"][0]["path"] for s in projected["sources"]]
    assert paths == ["superuser-password", "replication-password", "app-password"]


def test_placement_spreads_zones_and_nodes() -> None:
    pod = statefulsets.replica_statefulset(DB)["spec"]["template"]["spec"]
    spread = pod["topologySpreadConstraints"][0]
    assert spread["topologyKey"] == "topology.kubernetes.io/zone"
    anti = pod["affinity"]["podAntiAffinity"]
    term = anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    required = parse_spec("x", "n", {"placement": {"podAntiAffinity": "required"}})
    pod = statefulsets.primary_statefulset(required)["spec"]["template"]["spec"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" in pod["affinity"]["podAntiAffinity"]


def test_services_select_by_role_label() -> None:
    rw, ro = services.read_write_service(DB), services.read_only_service(DB)
    assert rw["spec"]["selector"][names.LABEL_ROLE] == "primary"
    assert ro["spec"]["selector"][names.LABEL_ROLE] == "replica"
    headless = services.headless_service(DB)
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True


def test_config_maps_carry_parameters_hba_and_pgbouncer_settings() -> None:
    conf = configmaps.instance_config(DB)["data"]
    assert "work_mem = '8MB'" in conf["postgresql.conf"]
    assert "wal_log_hints = 'on'" in conf["postgresql.conf"]
    assert "scram-sha-256" in conf["pg_hba.conf"]
    assert " trust" not in conf["pg_hba.conf"]
    ini = configmaps.pgbouncer_ini(DB, "ro")
    assert "* = host=shop-ro.prod.svc port=5432" in ini
    assert "pool_mode = transaction" in ini
    assert "max_client_conn = 500" in ini
    assert "server_round_robin = 1" in ini  # queries spread over the replicas' connections
    assert "server_round_robin = 0" in configmaps.pgbouncer_ini(DB, "rw")


def test_restart_hash_changes_only_for_restart_parameters() -> None:
    base = configmaps.restart_parameters_hash(DB)
    reload_only = parse_spec("shop", "prod", {"postgres": {"parameters": {"work_mem": "64MB"}}})
    restart = parse_spec("shop", "prod", {"postgres": {"parameters": {"shared_buffers": "1GB"}}})
    assert configmaps.restart_parameters_hash(reload_only) == base
    assert configmaps.restart_parameters_hash(restart) != base


def test_pooler_deployments_and_switch_off() -> None:
    rw = pooler.pooler_deployment(DB, "rw")
    assert container(rw)["command"] == ["pgbouncer", "/etc/pgbouncer/config/pgbouncer-rw.ini"]
    kinds = [(o["kind"], o["metadata"]["name"]) for o in desired_objects(DB)]
    assert ("Deployment", "shop-pooler-ro") in kinds
    off = parse_spec("shop", "prod", {"pgbouncer": {"enabled": False}})
    assert not [o for o in desired_objects(off) if "pooler" in o["metadata"]["name"]]


def test_pooler_pods_carry_an_exporter_unless_metrics_is_off() -> None:
    pod = pooler.pooler_deployment(DB, "ro")["spec"]["template"]["spec"]
    exporter = {c["name"]: c for c in pod["containers"]}["metrics"]
    assert exporter["image"] == DB.postgres.image  # the instance image carries the exporter
    assert exporter["ports"] == [{"name": "metrics", "containerPort": 9127}]
    assert exporter["command"][-1] == "/etc/pgbouncer/config/pgbouncer-exporter.yaml"
    password = exporter["env"][0]
    assert password["name"] == "PGPASSWORD"
    assert password["valueFrom"]["secretKeyRef"] == {"name": "shop-superuser", "key": "password"}
    config = yaml.safe_load(configmaps.pooler_config(DB)["data"]["pgbouncer-exporter.yaml"])
    assert config["exporter_port"] == 9127
    assert config["exporter_host"] == "0.0.0.0"
    dsn = config["pgbouncers"][0]["dsn"]
    assert "port=6432" in dsn
    assert "dbname=pgbouncer" in dsn
    assert "password" not in dsn
    service = services.pooler_service(DB, "ro")
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {
        "postgres": 6432,
        "metrics": 9127,
    }
    assert service["metadata"]["labels"]["replicadb.io/component"] == "pooler"
    assert service["metadata"]["labels"]["replicadb.io/pool"] == "ro"

    off = parse_spec("shop", "prod", {"pgbouncer": {"metrics": False}})
    pod = pooler.pooler_deployment(off, "ro")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["pgbouncer"]
    assert "pgbouncer-exporter.yaml" not in configmaps.pooler_config(off)["data"]
    assert [p["name"] for p in services.pooler_service(off, "ro")["spec"]["ports"]] == ["postgres"]


def test_credentials_are_generated_strong_and_secret_names_can_be_given() -> None:
    first, second = secrets.new_password(), secrets.new_password()
    assert first != second
    assert len(first) >= 32
    app = secrets.credentials_secret(DB, "app", "pw")["stringData"]
    assert (app["username"], app["dbname"], app["host"]) == ("app", "app", "shop-rw.prod.svc")
    named = parse_spec("shop", "prod", {"credentials": {"appSecret": "mine"}})
    assert names.credentials_secret(named, "app") == "mine"
    userlist = secrets.pooler_auth_secret(DB, {"app": 'p"w', "superuser": "s"})
    assert '"app" "p""w"' in userlist["stringData"]["userlist.txt"]
