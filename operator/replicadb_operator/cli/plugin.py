"""``kubectl-replicadb`` (kubectl finds it on PATH as ``kubectl replicadb``).

kubectl replicadb status NAME [-n NS] [--watch]
kubectl replicadb switchover NAME --to POD [-n NS]
kubectl replicadb promote NAME --to POD [--force] [-n NS]
kubectl replicadb pooler NAME [-n NS]
kubectl replicadb health NAME [-n NS]       exit code: 0 healthy, 1 degraded, 2 down
"""

from __future__ import annotations

import argparse
import sys
import time

from kubernetes import config
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream

from replicadb_operator.builders import names
from replicadb_operator.cli.pooler_counts import PoolCounts, counts_from_exposition, total
from replicadb_operator.cli.tables import health_code, render_status
from replicadb_operator.kube import clients
from replicadb_operator.kube import status as kube_status
from replicadb_operator.kube.status import read_object


def current_namespace() -> str:
    try:
        _, active = config.list_kube_config_contexts()
        return str(active["context"].get("namespace") or "default")
    except Exception:
        return "default"


def fetch_pool_counts(namespace: str, database: str) -> dict[str, PoolCounts | str]:
    """Per pool, the counts summed over its pods, read from each pod's exporter through the
    API server's pod proxy (so nothing but the API server needs to be reachable), or why
    they could not be read."""
    core = clients.core()
    out: dict[str, PoolCounts | str] = {}
    for pool in ("rw", "ro"):
        selector = ",".join(
            f"{k}={v}"
            for k, v in {
                names.LABEL_DATABASE: database,
                names.LABEL_COMPONENT: "pooler",
                names.LABEL_POOL: pool,
            }.items()
        )
        try:
            pods = core.list_namespaced_pod(namespace, label_selector=selector).items
            out[pool] = total(
                counts_from_exposition(
                    core.connect_get_namespaced_pod_proxy_with_path(
                        f"{pod.metadata.name}:{names.POOLER_METRICS_PORT}", namespace, "metrics"
                    )
                )
                for pod in pods
                if pod.status.pod_ip
            )
        except Exception as exc:  # metrics off, no pods/proxy permission: say so, go on
            out[pool] = f"counts unavailable ({type(exc).__name__})"
    return out


def _status_text(args: argparse.Namespace) -> str:
    obj = read_object(args.namespace, args.name)
    pooler = (obj.get("spec") or {}).get("pgbouncer") or {}
    on = pooler.get("enabled", True) and pooler.get("metrics", True)
    pools = fetch_pool_counts(args.namespace, args.name) if on else None
    return render_status(args.name, args.namespace, obj, pools)


def cmd_status(args: argparse.Namespace) -> int:
    if not args.watch:
        print(_status_text(args))
        return 0
    try:
        while True:
            text = _status_text(args)
            # Home the cursor and clear the screen: a live console that refreshes in place.
            sys.stdout.write("\x1b[H\x1b[2J" + time.strftime("%H:%M:%S  ") + text + "\n")
            sys.stdout.flush()
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0


def _request_switchover(args: argparse.Namespace, force: bool) -> int:
    obj = read_object(args.namespace, args.name)
    status = obj.get("status") or {}
    instance = next((i for i in status.get("instances") or [] if i["name"] == args.to), None)
    if instance is None:
        print(f"error: {args.to} is not an instance of {args.name}", file=sys.stderr)
        return 2
    limit = int(((obj.get("spec") or {}).get("failover") or {}).get("maxLagBytes", 16 << 20))
    lag = int(instance.get("lagBytes", 0))
    if lag > limit and not force:
        print(
            f"refused: {args.to} is {lag} bytes behind, more than spec.failover.maxLagBytes "
            f"({limit}); promoting it would lose that data. Use `promote --force` to accept.",
            file=sys.stderr,
        )
        return 1
    kube_status.annotate(
        args.namespace,
        args.name,
        {names.ANNOTATION_SWITCHOVER: args.to, names.ANNOTATION_FORCE: "true" if force else None},
    )
    print(f"requested: {status.get('primary')} -> {args.to}; follow with `status --watch`")
    return 0


def cmd_switchover(args: argparse.Namespace) -> int:
    return _request_switchover(args, force=False)


def cmd_promote(args: argparse.Namespace) -> int:
    return _request_switchover(args, force=args.force)


POOLER_QUERY = (
    'PGPASSWORD="$(sed -n \'s/^"postgres" "\\(.*\\)"$/\\1/p\' /etc/pgbouncer/auth/userlist.txt)" '
    "psql -h 127.0.0.1 -p 6432 -U postgres -X -c 'SHOW POOLS' -c 'SHOW STATS' pgbouncer"
)


def cmd_pooler(args: argparse.Namespace) -> int:
    core = clients.core()
    for pool in ("rw", "ro"):
        selector = ",".join(
            f"{k}={v}"
            for k, v in {
                names.LABEL_DATABASE: args.name,
                names.LABEL_COMPONENT: "pooler",
                names.LABEL_POOL: pool,
            }.items()
        )
        pods = core.list_namespaced_pod(args.namespace, label_selector=selector).items
        for pod in pods:
            print(f"== {pool} pool, pod {pod.metadata.name}")
            output = stream(
                core.connect_get_namespaced_pod_exec,
                pod.metadata.name,
                args.namespace,
                command=["sh", "-c", POOLER_QUERY],
                stdout=True,
                stderr=True,
                stdin=False,
                tty=False,
            )
            print(output)
        if not pods:
            print(f"== {pool} pool: no pods (pooler off?)")
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    try:
        obj = read_object(args.namespace, args.name)
    except ApiException as exc:
        print(f"{args.name}: {exc.reason}", file=sys.stderr)
        return 2
    code = health_code(obj)
    status = obj.get("status") or {}
    print(f"{args.name}: {status.get('phase', 'Unknown')} ({status.get('readyReplicas', '-')})")
    return code


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="kubectl replicadb", description=__doc__.split("\n")[0])
    top.add_argument("-n", "--namespace", default=None)
    sub = top.add_subparsers(dest="command", required=True)
    status = sub.add_parser("status", help="topology, roles, LSNs, lag, pooler, last failover")
    status.add_argument("name")
    status.add_argument("--watch", "-w", action="store_true", help="refresh in place")
    status.add_argument("--interval", type=float, default=1.0)
    status.set_defaults(run=cmd_status)
    switch = sub.add_parser("switchover", help="planned switchover, zero data loss")
    switch.add_argument("name")
    switch.add_argument("--to", required=True)
    switch.set_defaults(run=cmd_switchover)
    promote = sub.add_parser("promote", help="promote a replica; refused past the lag limit")
    promote.add_argument("name")
    promote.add_argument("--to", required=True)
    promote.add_argument("--force", action="store_true", help="accept losing the lagged data")
    promote.set_defaults(run=cmd_promote)
    pooler = sub.add_parser("pooler", help="PgBouncer SHOW POOLS / SHOW STATS for both pools")
    pooler.add_argument("name")
    pooler.set_defaults(run=cmd_pooler)
    health = sub.add_parser("health", help="exit 0 healthy, 1 degraded, 2 unavailable")
    health.add_argument("name")
    health.set_defaults(run=cmd_health)
    for command in (status, switch, promote, pooler, health):
        command.add_argument("-n", "--namespace", default=argparse.SUPPRESS)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.namespace is None:
        args.namespace = current_namespace()
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
