"""Failover benchmark on a real cluster: at least 5 failovers of each kind (pod delete,
postgres process kill, network cut) under a writer through router_lib, synchronous mode.
Where the nodes are the provider's containers (kind: REPLICADB_E2E_PROVIDER), the primary's
node too: lost, partitioned, frozen for less than the detection window, and drained
(e2e/node_fault_run.py); instances are then kept on separate nodes.

Run with ``make bench-failover`` (brings the local cluster up and down around it, or uses
KUBECONFIG when set). Prints a table and writes .bench/failover.json: one object per fault
kind with rto_s_p50, rto_s_max, lost_acknowledged_writes, dual_primary_samples, rejoin_s_p50
(from the fault), rejoin_after_failover_s_p50 (from the new primary's first write), runs,
failovers (a freeze or a drain must cause none), and for node_partition
isolated_refused_s_max (the cut-off primary refusing its own node's client).
"""

from __future__ import annotations

import os
import sys

from kubernetes import config

from bench.report import maximum, median, progress, write_rows
from e2e import faults, nodes
from e2e import operator_support as ops
from e2e.failover_run import FailoverRun, measure_failover
from e2e.node_fault_run import NODE_KINDS, measure_node_fault

RUNS = int(os.environ.get("BENCH_FAILOVER_RUNS", "5"))
NAME = "bench"
SPEC = {
    "replicas": 2,
    "replication": {"synchronousMode": "quorum", "synchronousStandbys": 1},
    "failover": {"failureThreshold": 2},
    "monitoring": {"probeIntervalSeconds": 1},
    "pgbouncer": {"enabled": False},
}


def summarize(runs: list[FailoverRun]) -> dict[str, float | int]:
    return {
        "rto_s_p50": round(median([r.rto_s for r in runs]), 3),
        "rto_s_max": round(maximum([r.rto_s for r in runs]), 3),
        "lost_acknowledged_writes": sum(r.lost_acknowledged_writes for r in runs),
        "dual_primary_samples": sum(r.dual_primary_samples for r in runs),
        "rejoin_s_p50": round(median([r.rejoin_s for r in runs]), 3),
        "rejoin_after_failover_s_p50": round(median([r.rejoin_after_failover_s for r in runs]), 3),
        "runs": len(runs),
        "failovers": sum(r.failovers for r in runs),
        **_refused(runs),
        **_operator_lost(runs),
    }


def _operator_lost(runs: list[FailoverRun]) -> dict[str, float | int]:
    """Node faults: how many runs took the acting operator down too, and their RTO apart
    (the other operator takes over first)."""
    lost = [r.rto_s for r in runs if r.operator_on_node]
    if not lost:
        return {}
    kept = [r.rto_s for r in runs if not r.operator_on_node]
    return {
        "runs_with_operator_on_node": len(lost),
        "rto_s_p50_operator_on_node": round(median(lost), 3),
        **({"rto_s_p50_operator_elsewhere": round(median(kept), 3)} if kept else {}),
    }


def _refused(runs: list[FailoverRun]) -> dict[str, float]:
    seen = [r.refused_after_s for r in runs if r.refused_after_s is not None]
    return {"isolated_refused_s_max": round(maximum(seen), 3)} if seen else {}


def main() -> int:
    api = config.new_client_from_config(config_file=os.environ.get("KUBECONFIG"))
    provider = nodes.provider()
    kinds = list(faults.FAULT_KINDS) + (list(NODE_KINDS) if provider else [])
    if wanted := os.environ.get("BENCH_FAILOVER_KINDS"):  # e.g. node_loss,node_drain
        kinds = [k for k in kinds if k in wanted.split(",")]
    spec = {**SPEC, "placement": {"podAntiAffinity": "required"}} if provider else SPEC
    progress("deploying the operator")
    ops.deploy_operator(api)
    results: dict[str, dict[str, float | int]] = {}
    try:
        with ops.temporary_namespace(api, "rdb-bench") as namespace:
            ops.create_database(api, namespace, ops.database_body(NAME, spec))
            ops.wait_status(api, namespace, NAME, "healthy", 300, phase="Healthy")
            for kind in kinds:
                runs: list[FailoverRun] = []
                failed = 0
                for i in range(RUNS):
                    progress(f"{kind} {i + 1}/{RUNS}")
                    try:
                        if kind in NODE_KINDS:
                            assert provider is not None
                            run = measure_node_fault(api, namespace, NAME, kind, provider)
                        else:
                            run = measure_failover(api, namespace, NAME, kind)
                    except TimeoutError as exc:
                        failed += 1
                        progress(f"  no failover measured: {str(exc).splitlines()[0]}")
                        continue
                    progress(
                        f"  {run.old_primary} -> {run.new_primary}: first write after "
                        f"{run.rto_s:.2f} s, lost {run.lost_acknowledged_writes}, dual "
                        f"{run.dual_primary_samples}, rejoined after {run.rejoin_s:.1f} s "
                        f"({run.rejoin_after_failover_s:.1f} s after the failover)"
                    )
                    runs.append(run)
                results[kind] = {**summarize(runs), "runs_without_failover": failed}
    finally:
        ops.remove_operator(api)
    title = f"failover ({RUNS} runs per kind; probe 1 s, threshold 2, synchronous ANY 1)"
    keys = [
        "rto_s_p50",
        "rto_s_max",
        "lost_acknowledged_writes",
        "dual_primary_samples",
        "rejoin_s_p50",
        "rejoin_after_failover_s_p50",
        "runs",
        "failovers",
        "runs_without_failover",
        "runs_with_operator_on_node",
    ]
    write_rows("failover", title, "kind", results, keys)
    return 0


if __name__ == "__main__":
    sys.exit(main())
