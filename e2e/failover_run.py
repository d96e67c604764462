"""One measured failover on a real cluster, shared by the e2e test and `make bench-failover`.

A writer commits rows through router_lib (endpoints from the ReplicatedDatabase status) at a
steady rate; a sampler asks every instance every 100 ms whether it accepts writes; a fault is
injected into the primary. Measured: time from the fault to the first successful write,
acknowledged writes missing on the new primary, samples in which two instances accepted
writes, and time until the former primary streams again as a replica.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from kubernetes import client

import router_lib
from e2e import faults, kube
from e2e import operator_support as ops


@dataclass
class FailoverRun:
    kind: str
    old_primary: str
    new_primary: str
    rto_s: float
    lost_acknowledged_writes: int
    dual_primary_samples: int
    rejoin_s: float
    acknowledged: int
    statuses_seen: list[str] = field(default_factory=list)


class Writer(threading.Thread):
    """INSERTs one row every ``period_s`` through router_lib; remembers acknowledged ids and
    the time of every success. An id whose commit outcome is unknown is never reused."""

    def __init__(self, router: router_lib.Router, period_s: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.router = router
        self.period_s = period_s
        self.acknowledged: list[int] = []
        self.successes: list[tuple[float, str]] = []  # (when, server address)
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        ident = 0
        while not self.stop.is_set():
            ident += 1
            try:
                rows = self.router.query(
                    "INSERT INTO ticks (id) VALUES (%s) RETURNING host(inet_server_addr())",
                    (ident,),
                )
                self.acknowledged.append(ident)
                self.successes.append((time.monotonic(), str(rows[0][0])))
            except psycopg.Error as exc:
                self.errors.append(type(exc).__name__)
                time.sleep(0.05)
            time.sleep(self.period_s)

    def first_success_after(self, moment: float, server: str) -> float | None:
        """The first write acknowledged by ``server`` after ``moment``: a lingering old
        primary's acknowledgements do not end the outage."""
        return next((t for t, addr in self.successes if t > moment and addr == server), None)


class WritableSampler(threading.Thread):
    """Every 100 ms, asks every instance pod whether it accepts writes."""

    def __init__(self, api: client.ApiClient, namespace: str, password: str) -> None:
        super().__init__(daemon=True)
        self.api, self.namespace, self.password = api, namespace, password
        self.samples = 0
        self.dual = 0
        self.stop = threading.Event()

    def _writable(self, ip: str) -> bool:
        try:
            with ops.connect(ip, self.password, connect_timeout=2) as conn:
                return conn.execute("SELECT NOT pg_is_in_recovery()").fetchone() == (True,)
        except psycopg.Error:
            return False

    def run(self) -> None:
        core = client.CoreV1Api(self.api)
        ips: list[str] = []
        refreshed = 0.0
        while not self.stop.is_set():
            if time.monotonic() - refreshed > 1.0:
                pods = core.list_namespaced_pod(
                    self.namespace, label_selector="replicadb.io/component=instance"
                ).items
                ips = [p.status.pod_ip for p in pods if p.status.pod_ip]
                refreshed = time.monotonic()
            writable = sum(self._writable(ip) for ip in ips)
            self.samples += 1
            self.dual += writable > 1
            time.sleep(0.1)


def wait_settled(
    api: client.ApiClient, namespace: str, name: str, hold_s: float = 3.0, timeout_s: float = 300
) -> dict[str, Any]:
    """Healthy, with every replica streaming, for ``hold_s`` in a row: a fault injected while
    the last failover's former primary is still rejoining measures something else."""
    settled_since: float | None = None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        st = ops.status(api, namespace, name)
        replicas = [i for i in st.get("instances") or [] if i["name"] != st.get("primary")]
        ok = st.get("phase") == "Healthy" and all(i.get("state") == "streaming" for i in replicas)
        if not ok:
            settled_since = None
        elif settled_since is None:
            settled_since = time.monotonic()
        elif time.monotonic() - settled_since >= hold_s:
            return st
        time.sleep(0.5)
    raise TimeoutError(f"{name} did not settle within {timeout_s} s")


def make_router(namespace: str, name: str, app_password: str) -> router_lib.Router:
    return router_lib.Router(
        router_lib.RouterConfig(
            kube_name=name,
            kube_namespace=namespace,
            connection=router_lib.ConnectionSettings(
                user="app", password=app_password, dbname="app"
            ),
            consistency=router_lib.STRONG,
        )
    )


def measure_failover(
    api: client.ApiClient, namespace: str, name: str, kind: str, timeout_s: float = 120
) -> FailoverRun:
    core = client.CoreV1Api(api)
    status = wait_settled(api, namespace, name)
    old = str(status["primary"])
    app_password = ops.secret_value(api, namespace, f"{name}-app", "password")
    password = ops.secret_value(api, namespace, f"{name}-superuser", "password")
    router = make_router(namespace, name, app_password)
    router.execute("CREATE TABLE IF NOT EXISTS ticks (id bigint PRIMARY KEY)")
    router.execute("TRUNCATE ticks")
    writer = Writer(router)
    sampler = WritableSampler(api, namespace, password)
    writer.start()
    sampler.start()
    seen: list[str] = []
    try:
        time.sleep(2.0)
        faulted_at = time.monotonic()
        faults.inject(core, namespace, old, kind)
        deadline = faulted_at + timeout_s
        first: float | None = None
        new: str | None = None
        while time.monotonic() < deadline and (first is None or new is None):
            st = ops.status(api, namespace, name)
            seen.append(f"{st.get('phase')}:{st.get('primary')}:{st.get('readyReplicas')}")
            if st.get("primary") and st["primary"] != old:
                new = str(st["primary"])
                address = next(
                    (i.get("address") for i in st.get("instances") or [] if i["name"] == new), None
                )
                if address:
                    first = writer.first_success_after(faulted_at, str(address))
            time.sleep(0.2)
        if first is None or new is None:
            raise TimeoutError(
                f"{kind}: no failover within {timeout_s} s; statuses {seen[-5:]}\n"
                + ops.operator_log_tail(api)
            )
        rto = first - faulted_at
        time.sleep(1.0)  # a few writes on the new primary
    finally:
        writer.stop.set()
        writer.join(10)
    rejoin_started = faulted_at
    rejoined_at = _wait_rejoined(api, namespace, name, old, timeout_s)
    sampler.stop.set()
    sampler.join(5)
    new_ip = ops.pod_ip(api, namespace, new)
    with ops.connect(new_ip, password, dbname="app") as conn:
        present = {r[0] for r in conn.execute("SELECT id FROM ticks").fetchall()}
    lost = sum(1 for ident in writer.acknowledged if ident not in present)
    router.close()
    return FailoverRun(
        kind=kind,
        old_primary=old,
        new_primary=new,
        rto_s=rto,
        lost_acknowledged_writes=lost,
        dual_primary_samples=sampler.dual,
        rejoin_s=rejoined_at - rejoin_started,
        acknowledged=len(writer.acknowledged),
        statuses_seen=seen,
    )


def _wait_rejoined(
    api: client.ApiClient, namespace: str, name: str, old: str, timeout_s: float
) -> float:
    def rejoined() -> bool:
        instances: list[dict[str, Any]] = ops.status(api, namespace, name).get("instances") or []
        entry = next((i for i in instances if i["name"] == old), None)
        return bool(entry and entry.get("role") == "replica" and entry.get("state") == "streaming")

    kube.wait_for(rejoined, timeout_s, f"{old} streaming again as a replica", interval=0.5)
    return time.monotonic()
