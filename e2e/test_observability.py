"""Observability, checked by a real Prometheus: it scrapes the operator, the PgBouncer
exporters and a router_lib application with the scrape jobs our ServiceMonitors ask for and
evaluates our PrometheusRule. A replica's replay is paused until the lag alert fires, then
resumed until it resolves; then the primary is deleted. Every dashboard panel's query must
return data, and the failover counter and last failover duration must move. The figures go
to .bench/observability.json."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from e2e import kube
from e2e import operator_support as ops
from e2e.prometheus_server import Prometheus, running_prometheus

pytestmark = [
    pytest.mark.e2e,
    # Prometheus runs on the host and scrapes pod addresses, which a kind host cannot reach.
    pytest.mark.skipif(
        os.environ.get("REPLICADB_E2E_PROVIDER") in ("docker", "podman"),
        reason="the host's Prometheus cannot reach pod addresses on kind",
    ),
]

NAME = "metered"
SPEC = {
    "replicas": 2,
    "failover": {"failureThreshold": 2},
    "monitoring": {"probeIntervalSeconds": 1},
}
LAG_ALERT = "ReplicadbReplicaLagHigh"
DASHBOARD = ops.MANIFESTS / "monitoring" / "grafana-dashboard.json"
WORKLOAD = Path(__file__).with_name("router_workload.py")
BENCH = ops.ROOT / ".bench" / "observability.json"
JOBS = ("replicadb-operator", "replicadb-pooler", "replicadb-router")


@pytest.fixture(scope="module")
def operator(api_client: client.ApiClient) -> Iterator[None]:
    ops.deploy_operator(api_client)
    yield
    ops.remove_operator(api_client)


def dashboard_queries(database: str) -> list[str]:
    """Every panel target's expression, with the dashboard variable set to one database."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [
        target["expr"].replace("$database", database)
        for panel in panels
        for target in panel.get("targets", [])
    ]


def start_router_workload(
    core: client.CoreV1Api, rbac: client.RbacAuthorizationV1Api, namespace: str, image: str
) -> None:
    """An application pod: router_lib configured from REPLICADB_* variables, allowed to
    watch its ReplicatedDatabase (as manifests/samples/app-rbac.yaml), behind a Service the
    replicadb-router ServiceMonitor selects."""
    app = "router-app"
    core.create_namespaced_service_account(namespace, {"metadata": {"name": app}})
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": app},
            "rules": [
                {
                    "apiGroups": ["replicadb.io"],
                    "resources": ["replicateddatabases"],
                    "verbs": ["get", "list", "watch"],
                }
            ],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": app},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": app},
            "subjects": [{"kind": "ServiceAccount", "name": app, "namespace": namespace}],
        },
    )
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": app}, "data": {"workload.py": WORKLOAD.read_text()}}
    )
    env = {
        "REPLICADB_NAME": NAME,
        "REPLICADB_USER": "app",
        "REPLICADB_DBNAME": "app",
        "REPLICADB_PASSWORD_FILE": "/var/run/secrets/app/password",
    }
    labels = {"app": app}
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": app, "labels": labels},
            "spec": {
                "serviceAccountName": app,
                "securityContext": {"runAsNonRoot": True, "runAsUser": 999},
                "containers": [
                    {
                        "name": "app",
                        "image": image,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["python", "/workload/workload.py"],
                        "env": [{"name": k, "value": v} for k, v in env.items()],
                        "ports": [{"name": "metrics", "containerPort": 9100}],
                        "volumeMounts": [
                            {"name": "workload", "mountPath": "/workload"},
                            {"name": "app", "mountPath": "/var/run/secrets/app"},
                        ],
                    }
                ],
                "volumes": [
                    {"name": "workload", "configMap": {"name": app}},
                    {"name": "app", "secret": {"secretName": f"{NAME}-app"}},
                ],
            },
        },
    )
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": app, "labels": {"replicadb.io/metrics": "router"}},
            "spec": {
                "selector": labels,
                "ports": [{"name": "metrics", "port": 9100, "targetPort": 9100}],
            },
        },
    )
    kube.wait_pod_ready(core, namespace, app, timeout=120)


class AlertLog:
    """Every alert name seen firing, and those that stopped firing afterwards."""

    def __init__(self, prometheus: Prometheus, namespace: str) -> None:
        self.prometheus, self.namespace = prometheus, namespace
        self.fired: set[str] = set()
        self.firing: set[str] = set()
        self.resolved: set[str] = set()

    def poll(self) -> set[str]:
        now = {
            a["labels"]["alertname"]
            for a in self.prometheus.alerts()
            if a["labels"].get("namespace") in (self.namespace, None)
        }
        self.resolved |= self.firing - now
        self.fired |= now
        self.firing = now
        return now


def wait_targets_up(
    prometheus: Prometheus, namespace: str, timeout_s: float
) -> list[dict[str, Any]]:
    """Every ServiceMonitor has a target up: the operator, both poolers, the application."""

    def ours(t: dict[str, Any]) -> bool:
        return t["labels"].get("namespace") in (namespace, ops.SYSTEM)

    def check() -> bool:
        up = [t for t in prometheus.targets() if ours(t) and t["health"] == "up"]
        per_job = {j: sum(1 for t in up if t["scrapePool"].split("/")[2] == j) for j in JOBS}
        wanted = {"replicadb-operator": 1, "replicadb-pooler": 2, "replicadb-router": 1}
        return all(per_job[job] >= n for job, n in wanted.items())

    try:
        kube.wait_for(check, timeout_s, "every scrape job has a target up", interval=2)
    except TimeoutError as exc:
        seen = [
            f"{t['scrapePool']} {t['labels'].get('pod')} {t['health']} {t['lastError']}"
            for t in prometheus.targets()
        ]
        raise TimeoutError(f"{exc}; targets: {seen}") from None
    return [t for t in prometheus.targets() if ours(t)]


# Longer than pyproject's 300 s: a database to Healthy, the lag alert's 30 s + for: 2m, its
# resolution, a failover and the dashboard's scrapes, each under its own deadline below.
@pytest.mark.timeout(1200)
def test_prometheus_sees_lag_alert_failover_and_dashboard_data(
    api_client: client.ApiClient, operator: None, instance_image: str
) -> None:
    core = client.CoreV1Api(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)
    kubeconfig = os.environ["KUBECONFIG"]
    with ops.temporary_namespace(api_client) as ns, running_prometheus(kubeconfig) as prom:
        ops.create_database(api_client, ns, ops.database_body(NAME, SPEC))
        status = ops.wait_status(api_client, ns, NAME, "healthy", 300, phase="Healthy")
        start_router_workload(core, rbac, ns, instance_image)
        targets = wait_targets_up(prom, ns, 180)
        alerts = AlertLog(prom, ns)
        selector = f'namespace="{ns}",database="{NAME}"'

        # Pause replay on one replica: the application keeps writing, the replica falls behind.
        old_primary = status["primary"]
        lagging = next(i["name"] for i in status["instances"] if i["name"] != old_primary)
        password = ops.secret_value(api_client, ns, f"{NAME}-superuser", "password")
        with ops.connect(ops.pod_ip(api_client, ns, lagging), password) as conn:
            conn.execute("SELECT pg_wal_replay_pause()")
        lag_alert = (
            f'ALERTS{{alertname="{LAG_ALERT}",alertstate="firing",{selector},instance="{lagging}"}}'
        )

        def lag_alert_firing() -> bool:
            alerts.poll()
            return bool(prom.query(lag_alert))

        # Lag passes 30 s about 30 s after the pause, then the rule's for: 2m.
        kube.wait_for(lag_alert_firing, 330, f"{LAG_ALERT} firing for {lagging}", interval=5)
        with ops.connect(ops.pod_ip(api_client, ns, lagging), password) as conn:
            conn.execute("SELECT pg_wal_replay_resume()")
        kube.wait_for(
            lambda: LAG_ALERT not in alerts.poll(), 120, f"{LAG_ALERT} resolved", interval=5
        )

        # A failover: the counter and the last duration move, as Prometheus sees them.
        # max: after a peering hand-over both operator pods may export the series.
        failovers = f'max(replicadb_failovers_total{{{selector},kind="failover"}})'
        duration = f"max(replicadb_last_failover_duration_seconds{{{selector}}})"
        failovers_before = prom.value(failovers)
        duration_before = prom.value(duration)
        assert failovers_before == 0.0  # the series exists before the first failover
        core.delete_namespaced_pod(old_primary, ns, grace_period_seconds=0)
        kube.wait_for(
            lambda: ops.status(api_client, ns, NAME).get("primary") not in (None, old_primary),
            120,
            "a replica promoted",
        )
        kube.wait_for(
            lambda: (
                (prom.value(failovers) or 0) > failovers_before
                and prom.value(duration) not in (None, duration_before)
            ),
            60,
            "failover counter and last failover duration scraped",
            interval=2,
        )
        failovers_after, duration_after = prom.value(failovers), prom.value(duration)

        # Every dashboard panel returns data once the scrapes after the failover are in.
        queries = dashboard_queries(NAME)
        with_data: list[str] = []

        def panels_have_data() -> bool:
            nonlocal with_data
            alerts.poll()
            with_data = [q for q in queries if prom.query(q)]
            return len(with_data) == len(queries)

        try:
            kube.wait_for(panels_have_data, 120, "every dashboard query returns data", 5)
        finally:
            BENCH.parent.mkdir(exist_ok=True)
            report = {
                "targets_up": sum(1 for t in targets if t["health"] == "up"),
                "targets": sorted(
                    f"{t['scrapePool'].split('/')[2]} {t['labels'].get('pod')}" for t in targets
                ),
                "dashboard_queries": len(queries),
                "dashboard_queries_with_data": len(with_data),
                "dashboard_queries_without_data": sorted(set(queries) - set(with_data)),
                "alerts_fired": sorted(alerts.fired),
                "alerts_resolved": sorted(alerts.resolved),
                "failovers_total": [failovers_before, failovers_after],
                "last_failover_duration_seconds": [duration_before, duration_after],
            }
            BENCH.write_text(json.dumps(report, indent=2) + "\n")
            print(json.dumps(report, indent=2))
        assert LAG_ALERT in alerts.fired
        assert LAG_ALERT in alerts.resolved
