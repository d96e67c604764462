"""Runs in a pod (e2e/incluster.py ScriptPod) during a measured failover: the writer and the
writable-sampler of e2e/failover_run.py, inside the cluster where pod addresses are reachable.

A writer INSERTs one row every 20 ms through router_lib (endpoints from the ReplicatedDatabase
status, consistency STRONG); a sampler asks every instance pod every 100 ms whether it accepts
writes. The test talks to it through files:
  /tmp/progress.json  rewritten every 0.5 s: successes per server address, wall-clock times
  /tmp/stop-writer    (test creates) stop writing
  /tmp/stop           (test creates) stop sampling, count acknowledged ids missing on the
                      primary, write /tmp/result.json and exit
Standard library, psycopg, kubernetes and router_lib only (the instance image's venv).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import psycopg
from kubernetes import client, config

import router_lib

NAME = os.environ["RDB_NAME"]
NAMESPACE = os.environ["RDB_NAMESPACE"]
SUPERUSER_PASSWORD = os.environ["SUPERUSER_PASSWORD"]
APP_PASSWORD = os.environ["APP_PASSWORD"]
TMP = Path("/tmp")


class Writer(threading.Thread):
    def __init__(self, router: router_lib.Router) -> None:
        super().__init__(daemon=True)
        self.router = router
        self.acknowledged: list[int] = []
        self.successes: list[tuple[float, str]] = []  # (wall time, server address)
        self.errors: dict[str, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        ident = 0
        while not self.stop.is_set():
            ident += 1  # an id whose commit outcome is unknown is never reused
            try:
                rows = self.router.query(
                    "INSERT INTO ticks (id) VALUES (%s) RETURNING host(inet_server_addr())",
                    (ident,),
                )
                self.acknowledged.append(ident)
                self.successes.append((time.time(), str(rows[0][0])))
            except psycopg.Error as exc:
                name = type(exc).__name__
                self.errors[name] = self.errors.get(name, 0) + 1
                time.sleep(0.05)
            time.sleep(0.02)


class Sampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples = 0
        self.dual = 0
        self.stop = threading.Event()

    @staticmethod
    def writable(ip: str) -> bool:
        try:
            with psycopg.connect(
                host=ip, user="postgres", dbname="postgres", password=SUPERUSER_PASSWORD,
                connect_timeout=2, autocommit=True,
            ) as conn:  # fmt: skip
                return conn.execute("SELECT NOT pg_is_in_recovery()").fetchone() == (True,)
        except psycopg.Error:
            return False

    def run(self) -> None:
        core = client.CoreV1Api()
        ips: list[str] = []
        refreshed = 0.0
        while not self.stop.is_set():
            if time.monotonic() - refreshed > 1.0:
                pods = core.list_namespaced_pod(
                    NAMESPACE, label_selector="replicadb.io/component=instance"
                ).items
                ips = [p.status.pod_ip for p in pods if p.status.pod_ip]
                refreshed = time.monotonic()
            self.samples += 1
            self.dual += sum(self.writable(ip) for ip in ips) > 1
            time.sleep(0.1)


def write_json(name: str, value: object) -> None:
    tmp = TMP / f".{name}"
    tmp.write_text(json.dumps(value))
    tmp.replace(TMP / name)  # the test never reads half a file


def main() -> None:
    config.load_incluster_config()
    router = router_lib.Router(
        router_lib.RouterConfig(
            kube_name=NAME,
            kube_namespace=NAMESPACE,
            connection=router_lib.ConnectionSettings(
                user="app", password=APP_PASSWORD, dbname="app"
            ),
            consistency=router_lib.STRONG,
        )
    )
    router.execute("CREATE TABLE IF NOT EXISTS ticks (id bigint PRIMARY KEY)")
    router.execute("TRUNCATE ticks")
    writer, sampler = Writer(router), Sampler()
    writer.start()
    sampler.start()
    while not (TMP / "stop").exists():
        if (TMP / "stop-writer").exists() and not writer.stop.is_set():
            writer.stop.set()
            writer.join(10)
        by_server: dict[str, list[float]] = {}
        for when, server in list(writer.successes):
            by_server.setdefault(server, []).append(when)
        write_json(
            "progress.json",
            {"acknowledged": len(writer.acknowledged), "times_by_server": by_server},
        )
        time.sleep(0.5)
    writer.stop.set()
    writer.join(10)
    sampler.stop.set()
    sampler.join(5)
    present = {
        row[0] for row in router.query("SELECT id FROM ticks", consistency=router_lib.STRONG)
    }
    lost = sum(1 for ident in writer.acknowledged if ident not in present)
    router.close()
    write_json(
        "result.json",
        {
            "acknowledged": len(writer.acknowledged),
            "lost_acknowledged_writes": lost,
            "dual_primary_samples": sampler.dual,
            "samples": sampler.samples,
            "errors": writer.errors,
            "successes": writer.successes,
        },
    )
    while True:  # the test reads result.json, then deletes the pod
        time.sleep(60)


if __name__ == "__main__":
    main()
