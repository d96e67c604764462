"""Rolling update benchmark on a real cluster: two rolls of a database with 2 replicas
(synchronous ANY 1) while a writer commits every 20 ms through router_lib.

``image_change``: the instance image to its second tag; ``restart_parameter``: a parameter
that needs a restart (max_connections). Run with ``make bench-rolling-update`` (brings the
local cluster up and down around it, or uses KUBECONFIG when set). Writes
.bench/rolling_update.json: per roll, write_unavailable_s_max (longest gap between successful
writes), lost_acknowledged_writes, primary_restarts_without_switchover, dual_primary_samples,
seconds (patch to every instance updated and settled), replaced (pods, in order).
Goals: write_unavailable_s_max <= 2 s, 0 lost, 0 primary restarts without a switchover.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from kubernetes import config

from bench.report import progress, write_rows
from e2e import operator_support as ops
from e2e.rolling_run import INSTANCE_NEXT_IMAGE, measure_roll

NAME = "bench"
SPEC = {
    "replicas": 2,
    "replication": {"synchronousMode": "quorum", "synchronousStandbys": 1},
    "failover": {"failureThreshold": 2},
    "monitoring": {"probeIntervalSeconds": 1},
    "pgbouncer": {"enabled": False},
}
ROLLS: dict[str, dict[str, Any]] = {
    "image_change": {"postgres": {"image": INSTANCE_NEXT_IMAGE}},
    "restart_parameter": {"postgres": {"parameters": {"max_connections": "120"}}},
}
KEYS = [
    "write_unavailable_s_max",
    "lost_acknowledged_writes",
    "primary_restarts_without_switchover",
    "dual_primary_samples",
    "seconds",
]


def main() -> int:
    api = config.new_client_from_config(config_file=os.environ.get("KUBECONFIG"))
    progress("deploying the operator")
    ops.deploy_operator(api)
    results: dict[str, dict[str, Any]] = {}
    try:
        with ops.temporary_namespace(api, "rdb-bench") as namespace:
            progress("creating a database: 2 replicas, synchronous ANY 1")
            ops.create_database(api, namespace, ops.database_body(NAME, SPEC))
            ops.wait_status(api, namespace, NAME, "healthy", 300, phase="Healthy")
            for what, patch in ROLLS.items():
                run = measure_roll(api, namespace, NAME, patch, what, say=progress)
                results[what] = {
                    **{key: getattr(run, key) for key in KEYS},
                    "acknowledged": run.acknowledged,
                    "primary": f"{run.old_primary} -> {run.new_primary}",
                    "replaced": run.replaced,
                }
                progress(f"{what}: " + ", ".join(f"{k} {results[what][k]}" for k in KEYS))
    finally:
        ops.remove_operator(api)
    title = "rolling update (2 replicas, synchronous ANY 1; writer every 20 ms via router_lib)"
    write_rows("rolling_update", title, "roll", results, KEYS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
