"""`make demo`: the sample ReplicatedDatabase on a real cluster, a small workload through
router_lib, and the lag it causes, live. The cluster is left running for you to explore.

KUBECONFIG decides the cluster (the Makefile brings the local one up when it is unset).
"""

from __future__ import annotations

import os
import sys
import threading
import time

import psycopg
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from replicadb_operator.cli.tables import render_status

import router_lib
from e2e import operator_support as ops

NAMESPACE = "replicadb-demo"
SAMPLE = ops.MANIFESTS / "samples" / "replicateddatabase.yaml"


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


class Workload(threading.Thread):
    """Orders written through router_lib; each session reads its own writes back (reads go
    to replicas that have replayed them)."""

    def __init__(self, router: router_lib.Router) -> None:
        super().__init__(daemon=True)
        self.router = router
        self.writes = self.reads = self.errors = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                session = self.router.session(router_lib.READ_YOUR_WRITES)
                session.execute(
                    "INSERT INTO orders (item, qty) SELECT 'tea', g FROM generate_series(1, 200) g"
                )
                self.writes += 1
                for _ in range(9):
                    session.query("SELECT count(*) FROM orders WHERE item = %s", ("tea",))
                    self.reads += 1
            except psycopg.Error:
                self.errors += 1
                time.sleep(0.2)


def main() -> int:
    kubeconfig = os.environ.get("KUBECONFIG")
    if not kubeconfig:
        fail("KUBECONFIG is not set (run `make demo`, which brings the local cluster up)")
    api = config.new_client_from_config(config_file=kubeconfig)
    say("deploying the operator (manifests/)")
    ops.deploy_operator(api)
    core = client.CoreV1Api(api)
    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    except ApiException as exc:
        if exc.status != 409:
            raise
    body = yaml.safe_load(SAMPLE.read_text())
    name = body["metadata"]["name"]
    say(f"applying {SAMPLE.relative_to(ops.ROOT)}: '{name}', 1 primary + 2 replicas + poolers")
    try:
        ops.create_database(api, NAMESPACE, body)
    except ApiException as exc:
        if exc.status != 409:
            raise
        say(f"'{name}' exists already; using it")
    started = time.monotonic()
    try:
        ops.wait_status(api, NAMESPACE, name, "all instances ready", 300, phase="Healthy")
    except TimeoutError as exc:
        fail(f"{exc}\n{ops.operator_log_tail(api, 20)}")
    say(f"healthy after {time.monotonic() - started:.0f} s")

    password = ops.secret_value(api, NAMESPACE, f"{name}-app", "password")
    router = router_lib.Router(
        router_lib.RouterConfig(
            kube_name=name,
            kube_namespace=NAMESPACE,
            connection=router_lib.ConnectionSettings(user="app", password=password, dbname="app"),
        )
    )
    router.execute(
        "CREATE TABLE IF NOT EXISTS orders (id bigserial PRIMARY KEY, item text, qty int)"
    )
    say("running a workload through router_lib (writes to the primary, reads on replicas)")
    workload = Workload(router)
    workload.start()
    try:
        for _ in range(6):
            time.sleep(2.5)
            obj = ops.get_database(api, NAMESPACE, name)
            print("\x1b[2J\x1b[H", end="")
            print(render_status(name, NAMESPACE, obj))
            print(
                f"\nworkload: {workload.writes} write transactions, {workload.reads} reads, "
                f"{workload.errors} errors"
            )
    finally:
        workload.stop.set()
        workload.join(5)
        router.close()
    print(
        f"""
Next:
  export KUBECONFIG={kubeconfig}
  kubectl get rdb -n {NAMESPACE}                          # Primary, Ready, Max lag, Phase
  kubectl replicadb status {name} -n {NAMESPACE} --watch   # live topology and lag
  kubectl replicadb switchover {name} -n {NAMESPACE} --to {name}-replica-0
  kubectl delete pod -n {NAMESPACE} {name}-primary-0 --grace-period=0 --force   # a failover
  make cluster-down                                       # when done (local cluster)
(kubectl is {ops.kubectl() or "not on PATH"}; kubectl-replicadb is in .venv/bin)"""
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
