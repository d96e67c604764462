"""``replicadb-local``: a primary, streaming replicas and PgBouncer on this machine, with
their lag printed. The quickest way to see the data plane work without Kubernetes.

    replicadb-local up [--replicas N]   start, write a little, print lag while it replicates
    replicadb-local status              print roles, positions and lag
    replicadb-local down                stop everything and remove its data
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import psycopg

from replicadb_operator.dataplane.lsn import format_lsn
from replicadb_operator.dataplane.monitor import TopologyMonitor, TopologySnapshot
from replicadb_operator.local.os_user import server_user
from replicadb_operator.local.pgbouncer import LocalPgBouncer
from replicadb_operator.local.topology import LocalTopology

STATE = Path("/tmp/replicadb-local.json")


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def lag_table(snapshot: TopologySnapshot) -> str:
    rows = [("INSTANCE", "ROLE", "TIMELINE", "POSITION", "LAG BYTES", "LAG SECONDS", "STATE")]
    for name, probe in sorted(snapshot.probes.items()):
        lag = snapshot.lags.get(name)
        role = "primary" if probe.is_primary else "replica" if probe.is_replica else "down"
        state = "streaming" if probe.streaming else ("paused" if probe.replay_paused else "")
        rows.append(
            (
                name,
                role,
                str(probe.timeline or ""),
                format_lsn(probe.position) if probe.position is not None else "",
                "" if lag is None or lag.replay_bytes is None else str(lag.replay_bytes),
                "" if lag is None or lag.seconds is None else f"{lag.seconds:.3f}",
                state if probe.is_replica else "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


async def print_lag(topology: LocalTopology, samples: int, interval_s: float) -> None:
    monitor = TopologyMonitor(topology.dsns(), topology.primary)
    try:
        for i in range(samples):
            print(lag_table(await monitor.sample()), end="\n\n", flush=True)
            if i + 1 < samples:
                await asyncio.sleep(interval_s)
    finally:
        await monitor.close()


def write_some_rows(topology: LocalTopology) -> None:
    with psycopg.connect(topology.dsn(topology.primary), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS demo (id bigserial PRIMARY KEY, at timestamptz)")
        conn.execute("INSERT INTO demo (at) SELECT now() FROM generate_series(1, 50000)")


def up(replicas: int) -> int:
    if STATE.exists():
        say(f"already up (state in {STATE}); run `replicadb-local down` first")
        return 1
    started = time.monotonic()
    topology = LocalTopology(replicas=replicas, run_as=server_user())
    say(f"starting a primary and {replicas} streaming replicas under {topology.base}")
    try:
        topology.start(owner_pid=0)
        topology.save(STATE)
        LocalPgBouncer(topology).start()
    except Exception:
        topology.destroy()
        STATE.unlink(missing_ok=True)
        raise
    say(f"up in {time.monotonic() - started:.1f} s; writing 50,000 rows and watching lag")
    write_some_rows(topology)
    asyncio.run(print_lag(topology, samples=3, interval_s=1.0))
    for name, inst in topology.instances.items():
        print(f"  {name}: psql 'host={inst.host} user=postgres dbname=postgres'")
    print(f"  pgbouncer: psql 'host={topology.block.pooler} port=6432 user=postgres'")
    print(f"  password: in {STATE} (root only)")
    say("next: `replicadb-local status` to watch lag, `make local-down` to stop")
    return 0


def status() -> int:
    if not STATE.exists():
        say("nothing is running (no state file)")
        return 1
    asyncio.run(print_lag(LocalTopology.load(STATE), samples=1, interval_s=0))
    return 0


def down() -> int:
    if not STATE.exists():
        say("nothing to stop")
        return 0
    topology = LocalTopology.load(STATE)
    LocalPgBouncer(topology).stop()
    topology.destroy()
    STATE.unlink()
    say(f"stopped and removed {topology.base}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="replicadb-local", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser("up", help="start a local topology and print its lag")
    up_parser.add_argument("--replicas", type=int, default=2)
    commands.add_parser("status", help="print roles, positions and lag")
    commands.add_parser("down", help="stop everything and remove its data")
    args = parser.parse_args(argv)
    if args.command == "up":
        return up(args.replicas)
    if args.command == "status":
        return status()
    return down()


if __name__ == "__main__":
    sys.exit(main())
