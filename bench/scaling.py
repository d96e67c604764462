"""Read scaling under a fixed CPU budget per instance: does each replica add capacity?

On one machine every local server shares the same cores, so adding a replica cannot add
capacity. Production gives each instance its own CPUs; here each instance (and each
read-only PgBouncer) gets ``--cpu-per-instance`` cores through the kernel's CPU controller
(:mod:`bench.cpu_budget`), the same budget a pod's ``resources.limits.cpu`` gives. The
suite's read-heavy mix (90 % reads) then runs with 0, 1, 2 and 3 replicas taking the reads
(0: the primary alone takes everything), from client processes outside any budget, each
with ``--connections`` connections per server (pools sized to the server, not to the
client's threads), reads placed by ``--balancing`` (least outstanding by default, the
primary weighed in with ``--primary-read-weight``):

  plain         psycopg_pool per instance, reads placed by router_lib's rule
  router        router_lib, EVENTUAL
  pooler        reads through a PgBouncer over the same replicas, writes on the primary
  plain_steady  plain, with reads only from the threads and ``--writes-per-s`` inserts beside
                them: a write load that stays the same with every replica count
  router_cache  router_lib with the in-process result cache (3 replicas only)

Replica counts and variants rotate between rounds so that drift falls on all alike. Then,
without budgets, the router's own cost: router / plain pools with the same placement at 8
threads (sync) and 8 tasks (asyncio), interleaved rounds in this process.

``make bench-scaling`` writes .bench/scaling.json and .bench/scaling.png.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from replicadb_operator.dataplane.datadir import postmaster_pid
from replicadb_operator.local.os_user import server_user
from replicadb_operator.local.pgbouncer import LocalPgBouncer
from replicadb_operator.local.topology import LocalTopology

from bench.cpu_budget import CpuBudget
from bench.report import BENCH_DIR, progress
from bench.router_cost import measure_router_cost
from bench.scaling_clients import ClientJob, ClientResult, run_job
from bench.suite import Endpoints, prepare_schema
from router_lib.balancing import Strategy

REPLICA_COUNTS = (0, 1, 2, 3)
SCALED: tuple[str, ...] = ("plain", "router", "pooler")
# Plain pools with reads only from the threads and inserts at a steady rate beside them
# (--writes-per-s, the same with every replica count): writes that do not grow with reads.
STEADY = "plain_steady"
T = TypeVar("T")
RO_PORT_BASE = 6460  # clear of 6443, the local cluster's API server
SEED = 20261203


@dataclass
class Deployment:
    topology: LocalTopology
    poolers: dict[int, LocalPgBouncer]  # read-only pooler by replica count
    clients_group: str  # the clients' cgroup.procs

    budget: CpuBudget
    cores: float

    def readers(self, count: int) -> tuple[str, ...]:
        return tuple(self.topology.dsn(name) for name in self.topology.replicas[:count])

    def run_replicas(self, count: int) -> None:
        """Exactly the first ``count`` replicas running and caught up: the primary "alone"
        has no WAL senders to feed, as it would without replicas."""
        topology = self.topology
        wanted = topology.replicas[:count]
        for name in topology.replicas:
            running = postmaster_pid(topology.instances[name].datadir) is not None
            if running and name not in wanted:
                topology.stop_instance(name)
            elif not running and name in wanted:
                topology.start_instance(name)
                self.limit(name)
        wait_caught_up(topology, wanted)

    def limit(self, name: str) -> None:
        pid = postmaster_pid(self.topology.instances[name].datadir)
        assert pid is not None, f"{name} is not running"
        self.budget.limit(name, self.cores)
        self.budget.add_tree(name, pid)


def wait_caught_up(topology: LocalTopology, names: list[str], timeout_s: float = 60.0) -> None:
    """Until each replica in ``names`` has replayed what the primary has written now."""
    with psycopg.connect(topology.dsn(topology.primary), autocommit=True) as conn:
        row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    deadline = time.monotonic() + timeout_s
    for name in names:
        while True:
            try:
                with psycopg.connect(topology.dsn(name), autocommit=True) as conn:
                    done = conn.execute(
                        "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (row[0],)
                    ).fetchone()
                if done == (True,):
                    break
            except psycopg.OperationalError:  # still starting
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} did not catch up within {timeout_s:.0f} s")
            time.sleep(0.1)


@contextmanager
def deployment(budget: CpuBudget, cores: float) -> Iterator[Deployment]:
    progress(f"starting a primary, 3 replicas and 4 read-only PgBouncers, {cores:g} CPU each")
    topology = LocalTopology(replicas=3, run_as=server_user())
    poolers: dict[int, LocalPgBouncer] = {}
    try:
        topology.start()
        for count in REPLICA_COUNTS:
            servers = tuple(topology.replicas[:count]) or (topology.primary,)
            pooler = LocalPgBouncer(
                topology, servers=servers, name=f"pgbouncer-ro-{count}", port=RO_PORT_BASE + count
            )
            pooler.start()
            poolers[count] = pooler
        deployed = Deployment(topology, poolers, str(budget.unlimited("clients")), budget, cores)
        for name in topology.instances:
            deployed.limit(name)
        for count, pooler in poolers.items():
            budget.limit(f"pooler-{count}", cores)
            pid = int((pooler.directory / "pgbouncer.pid").read_text())
            budget.add_tree(f"pooler-{count}", pid)
        yield deployed
    finally:
        progress("removing the local processes")
        for pooler in poolers.values():
            pooler.stop()
        topology.destroy()


@dataclass
class Tally:
    reads: int = 0
    writes: int = 0
    errors: int = 0
    seconds: float = 0.0
    client_cpu_s: float = 0.0

    def add(self, results: list[ClientResult], seconds: float) -> None:
        self.reads += sum(r.reads for r in results)
        self.writes += sum(r.writes for r in results)
        self.errors += sum(r.errors for r in results)
        self.client_cpu_s += sum(r.cpu_s for r in results)
        self.seconds += seconds

    @property
    def read_qps(self) -> float:
        return self.reads / self.seconds if self.seconds else 0.0

    @property
    def write_qps(self) -> float:
        return self.writes / self.seconds if self.seconds else 0.0

    @property
    def client_cores(self) -> float:
        return self.client_cpu_s / self.seconds if self.seconds else 0.0


def run_once(
    pool: ProcessPoolExecutor,
    ready: Any,
    deployed: Deployment,
    label: str,
    count: int,
    args: argparse.Namespace,
) -> list[ClientResult]:
    steady = label == STEADY
    jobs = [
        ClientJob(
            variant="plain" if steady else label,
            primary=deployed.topology.dsn(deployed.topology.primary),
            replicas=deployed.readers(count),
            pooler_ro=deployed.poolers[count].dsn(),
            threads=args.threads,
            seed=SEED + 100 * process,
            ready=ready,
            warmup_s=args.warmup_s,
            seconds=args.seconds,
            primary_read_weight=args.primary_read_weight,
            join_group=deployed.clients_group,
            writes_per_s=args.writes_per_s / args.processes if steady else 0.0,
            balancing=Strategy(args.balancing),
            connections=args.connections,
        )
        for process in range(args.processes)
    ]
    return list(pool.map(run_job, jobs))


def measure_scaling(deployed: Deployment, args: argparse.Namespace) -> dict[tuple[str, int], Tally]:
    """Rounds over the replica counts (rotating), each count running every variant
    (rotating); a run's line shows which servers spent the run waiting for their budget."""
    tallies = {(v, n): Tally() for n in REPLICA_COUNTS for v in (*SCALED, STEADY)}
    tallies["router_cache", 3] = Tally()
    spawn = multiprocessing.get_context("spawn")
    with (
        spawn.Manager() as manager,
        ProcessPoolExecutor(max_workers=args.processes, mp_context=spawn) as pool,
    ):
        ready = manager.Barrier(args.processes)
        for number in range(args.rounds):
            for count in _rotated(REPLICA_COUNTS, number):
                deployed.run_replicas(count)
                cached = ("router_cache",) if count == 3 else ()
                variants = _rotated((*SCALED, STEADY, *cached), number)
                for variant in variants:
                    throttled, started = _throttled(deployed.budget), time.monotonic()
                    results = run_once(pool, ready, deployed, variant, count, args)
                    tallies[variant, count].add(results, args.seconds)
                    busy = _busy(deployed.budget, throttled, time.monotonic() - started)
                    done = Tally()
                    done.add(results, args.seconds)
                    progress(
                        f"round {number + 1}/{args.rounds} {variant:>12} {count} replicas: "
                        f"{done.read_qps:6.0f} reads/s, {done.write_qps:4.0f} writes/s, "
                        f"clients {done.client_cores:.2f} CPU, "
                        f"{done.errors} errors; throttled {busy}"
                    )
    return tallies


def _rotated(items: tuple[T, ...], by: int) -> tuple[T, ...]:
    shift = by % len(items)
    return items[shift:] + items[:shift]


def _throttled(budget: CpuBudget) -> dict[str, float]:
    return {name: budget.throttled_s(name) for name in budget.groups if name != "clients"}


def _busy(budget: CpuBudget, before: dict[str, float], seconds: float) -> str:
    """The groups that waited for their budget during the run (set-up included), with the
    share of it (throttled time is counted per CPU: divided by the number of CPUs)."""
    after = _throttled(budget)
    per_cpu = seconds * (os.cpu_count() or 1)
    shares = {name: (after[name] - before.get(name, 0.0)) / per_cpu for name in after}
    return " ".join(f"{n} {v:.0%}" for n, v in shares.items() if v >= 0.05) or "none"


def scaling_report(
    tallies: dict[tuple[str, int], Tally], args: argparse.Namespace
) -> dict[str, object]:
    def by_count(variant: str) -> dict[str, float]:
        return {str(n): round(tallies[variant, n].read_qps, 1) for n in REPLICA_COUNTS}

    def ratio(qps: dict[str, float]) -> float:
        return round(qps["3"] / qps["0"], 3) if qps["0"] else 0.0

    plain, router, pooler = by_count("plain"), by_count("router"), by_count("pooler")
    steady = by_count(STEADY)
    client_cores = max(t.client_cores for t in tallies.values())
    return {
        "cpu_per_instance": args.cpu_per_instance,
        "primary_read_weight": args.primary_read_weight,
        "balancing": args.balancing,
        "read_qps": plain,
        "scaling_ratio_3": ratio(plain),
        "router_read_qps": router,
        "router_scaling_ratio_3": ratio(router),
        "pooler_read_qps": pooler,
        "pooler_scaling_ratio_3": ratio(pooler),
        "with_cache": round(tallies["router_cache", 3].read_qps, 1),
        "with_cache_ratio": round(tallies["router_cache", 3].read_qps / plain["0"], 3)
        if plain["0"]
        else 0.0,
        "writes_per_s": args.writes_per_s,
        "write_qps_by_run": {f"{v}/{n}": round(t.write_qps, 1) for (v, n), t in tallies.items()},
        "steady_writes_read_qps": steady,
        "steady_writes_scaling_ratio_3": ratio(steady),
        "client_cpu_cores": round(client_cores, 2),
        "client_cpu_cores_by_run": {
            f"{v}/{n}": round(t.client_cores, 2) for (v, n), t in tallies.items()
        },
        "errors": sum(t.errors for t in tallies.values()),
        "client_processes": args.processes,
        "connections_per_server_per_process": args.connections,
        "threads_per_process": args.threads,
        "seconds_per_run": args.seconds,
        "rounds": args.rounds,
        "mix": "90 % reads (2 point : 1 range of 20 rows; 80 % on a hot 10 %), 10 % inserts; "
        "steady_writes: reads only, and inserts at writes_per_s from 4 more threads per process",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-per-instance", type=float, default=0.1)
    parser.add_argument("--processes", type=int, default=6, help="client processes")
    parser.add_argument("--threads", type=int, default=8, help="client threads per process")
    parser.add_argument("--seconds", type=float, default=4.0, help="measured window per run")
    parser.add_argument("--warmup-s", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--primary-read-weight",
        type=float,
        default=1.0,
        help="the primary's weight for reads against 1.0 per replica (plain and router)",
    )
    parser.add_argument(
        "--writes-per-s",
        type=float,
        default=100.0,
        help="inserts per second, steady, the same with every replica count",
    )
    parser.add_argument(
        "--balancing",
        choices=[s.value for s in Strategy],
        default=Strategy.LEAST_OUTSTANDING.value,
        help="how plain pools and the router place reads (router_lib's balancing)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=4,
        help="connections per server in each client process (0: one per thread)",
    )
    parser.add_argument("--cost-seconds", type=float, default=3.0)
    parser.add_argument("--cost-rounds", type=int, default=4)
    args = parser.parse_args()
    with CpuBudget() as budget, deployment(budget, args.cpu_per_instance) as deployed:
        topology = deployed.topology
        endpoints = Endpoints(
            primary=topology.dsn(topology.primary),
            replicas=deployed.readers(3),
            pooler_rw="",
            pooler_ro=deployed.poolers[3].dsn(),
            where="local processes",
        )
        progress("schema and catalogue")
        prepare_schema(endpoints)
        tallies = measure_scaling(deployed, args)
        report = scaling_report(tallies, args)
        progress("lifting the budgets for the router's own cost (8 threads, 8 tasks)")
        deployed.run_replicas(3)
        for name in [n for n in budget.groups if n != "clients"]:
            budget.limit(name, float(os.cpu_count() or 1))
        Path(deployed.clients_group).write_text(str(os.getpid()))  # this process is the client
        cost = measure_router_cost(
            endpoints.primary, endpoints.replicas, args.cost_seconds, args.cost_rounds
        )
        report.update(cost)
        report["throttled_s"] = {
            name: round(budget.throttled_s(name), 1) for name in budget.groups if name != "clients"
        }
    report["machine"] = f"{platform.machine()}, {os.cpu_count()} cores"
    print(json.dumps(report, indent=2))
    BENCH_DIR.mkdir(exist_ok=True)
    path = BENCH_DIR / "scaling.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {path}")
    try:
        from bench.scaling_chart import draw
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[dev]'): no chart", file=sys.stderr)
    else:
        print(f"chart: {draw(report, BENCH_DIR / 'scaling.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
