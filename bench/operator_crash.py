"""The operator killed after every step of a failover and of a switchover, below the cluster
(real kube-apiserver + etcd, real PostgreSQL, no kubelet); optionally, on the local cluster,
the primary cut off and the acting operator killed together.

``make bench-operator-crash`` writes .bench/operator_crash.json:
- ``steps``: one object per plan step with plan, step, finished, dual_primary_samples,
  lost_acknowledged_writes, seconds (fault or request to the plan finished by a new
  operator);
- ``operator_and_primary_rto_s``: fault to first successful write, p50 over
  ``BENCH_CRASH_RTO_RUNS`` (default 3) runs on KUBECONFIG's cluster. Measured only with
  ``--cluster`` (it needs the local cluster, see ``make bench-operator-crash-cluster``);
  otherwise the key keeps the figure of an earlier run, or null.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from bench.report import BENCH_DIR, median, progress

OUT = BENCH_DIR / "operator_crash.json"


def crash_matrix() -> list[dict[str, Any]]:
    from replicadb_operator.local.os_user import server_user
    from replicadb_operator.local.topology import LocalTopology, reap_abandoned

    from tests.apiserver.cluster import KubeTopology, install_crd
    from tests.apiserver.control_plane import ControlPlane
    from tests.apiserver.crash_matrix import CASES, run_case

    reap_abandoned()
    plane = ControlPlane()
    plane.start()
    results = []
    try:
        install_crd(plane.api())
        for kind, step in CASES:
            topology = LocalTopology(replicas=2, run_as=server_user())
            cluster = None
            try:
                topology.start()
                cluster = KubeTopology(plane.api(), plane.kubeconfig, topology)
                cluster.create()
                result = run_case(cluster, kind, step)
            finally:
                if cluster is not None:
                    cluster.stop()
                topology.destroy()
            progress(
                f"{kind}:{step}: finished {result.finished}, dual {result.dual_primary_samples}"
                f", lost {result.lost_acknowledged_writes}, {result.seconds:.2f} s"
                + (f" ({'; '.join(result.problems)})" if result.problems else "")
            )
            results.append(result.as_json())
    finally:
        plane.stop()
    return results


def operator_and_primary_rto() -> float:
    from kubernetes import config

    from e2e import faults, kube
    from e2e import operator_support as ops
    from e2e.failover_run import measure_failover
    from e2e.test_operator_and_primary_lost import NAME, SPEC, sync_states_recorded

    api = config.new_client_from_config(config_file=os.environ.get("KUBECONFIG"))
    runs = int(os.environ.get("BENCH_CRASH_RTO_RUNS", "3"))
    ops.deploy_operator(api)
    rtos: list[float] = []
    try:
        with ops.temporary_namespace(api, "rdb-bench") as namespace:
            ops.create_database(api, namespace, ops.database_body(NAME, SPEC))
            for i in range(runs):
                ops.wait_status(api, namespace, NAME, "healthy", 300, phase="Healthy")
                kube.wait_for(lambda: sync_states_recorded(api, namespace), 60, "sync states")
                run = measure_failover(api, namespace, NAME, faults.OPERATOR_AND_PRIMARY)
                progress(
                    f"operator+primary {i + 1}/{runs}: first write after {run.rto_s:.2f} s, "
                    f"lost {run.lost_acknowledged_writes}, dual {run.dual_primary_samples}"
                )
                rtos.append(run.rto_s)
    finally:
        ops.remove_operator(api)
    return round(median(rtos), 3)


def main(argv: list[str]) -> int:
    previous: dict[str, Any] = json.loads(OUT.read_text()) if OUT.exists() else {}
    report: dict[str, Any] = {
        "steps": previous.get("steps", []),
        "operator_and_primary_rto_s": previous.get("operator_and_primary_rto_s"),
    }
    if "--cluster" in argv:
        report["operator_and_primary_rto_s"] = operator_and_primary_rto()
    else:
        report["steps"] = crash_matrix()
    BENCH_DIR.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    bad = [s for s in report["steps"] if not s["finished"] or s["dual_primary_samples"]
           or s["lost_acknowledged_writes"]]  # fmt: skip
    print(f"written to {OUT}; {len(report['steps']) - len(bad)}/{len(report['steps'])} steps clean")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
