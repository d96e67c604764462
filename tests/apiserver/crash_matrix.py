"""One case of the crash matrix: an operator armed to die right after one named step of a
failover or a switchover, then a new operator that must finish from status. Shared by the
test (tests/apiserver/test_crash_matrix.py) and ``make bench-operator-crash``."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from replicadb_operator import crd
from replicadb_operator.builders import names
from replicadb_operator.failover.record import PLANS, Kind, Step

from tests.apiserver.cluster import DB_NAME, KubeTopology, wait_for
from tests.apiserver.invariants import AckedWriter, WritableSampler

OLD, SWITCH_TO = "shop-primary-0", "shop-replica-0"
CASES = [(kind, step) for kind in Kind for step in PLANS[kind]]


@dataclass(frozen=True)
class CrashResult:
    plan: str
    step: str
    finished: bool
    dual_primary_samples: int
    lost_acknowledged_writes: int
    seconds: float  # fault (or request) to the plan completed by the second operator
    new_primary: str | None = None
    problems: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["problems"] = list(self.problems)
        return out


def trigger(cluster: KubeTopology, kind: Kind) -> None:
    if kind is Kind.FAILOVER:
        # The primary's pod is force-deleted and replaced; with no kubelet its postgres keeps
        # running and writable at the old address: only a real fence stops it.
        cluster.replace_pod(OLD)
    else:
        cluster.custom.patch_namespaced_custom_object(
            crd.GROUP, crd.VERSION, cluster.namespace, crd.PLURAL, DB_NAME,
            {"metadata": {"annotations": {names.ANNOTATION_SWITCHOVER: SWITCH_TO}}},
        )  # fmt: skip


def consistency_problems(cluster: KubeTopology, kind: Kind) -> list[str]:
    status = cluster.status()
    problems = []
    primary = status.get("primary")
    if primary in (None, OLD) or status.get("targetPrimary") != primary:
        problems.append(f"primary {primary!r}, targetPrimary {status.get('targetPrimary')!r}")
    if status.get("failover"):
        problems.append(f"a plan is still recorded: {status['failover']}")
    if (status.get("lastFailover") or {}).get("kind") != kind.value:
        problems.append(f"lastFailover {status.get('lastFailover')}")
    labelled = [p for p, role in cluster.role_labels().items() if role == names.ROLE_PRIMARY]
    if labelled != [primary]:
        problems.append(f"pods labelled primary: {labelled}")
    return problems


def run_case(cluster: KubeTopology, kind: Kind, step: Step, timeout_s: float = 60) -> CrashResult:
    first = cluster.start_operator(crash_after=f"{kind.value}:{step.value}")
    cluster.wait_healthy()
    sampler = WritableSampler(cluster.dsns())
    writer = AckedWriter(cluster.dsns(), cluster.primary_or_none)
    sampler.start()
    writer.start()
    finished, new_primary, lost = False, None, -1
    problems: list[str] = []
    started = time.monotonic()
    seconds = 0.0
    try:
        wait_for(lambda: len(writer.acked) >= 20, 20, "acknowledged writes before the fault")
        started = time.monotonic()
        trigger(cluster, kind)
        wait_for(lambda: not first.alive, timeout_s, f"the operator killed after {step}")
        cluster.start_operator()

        def completed() -> bool:
            status = cluster.status()
            return bool(status.get("primary") not in (None, OLD) and not status.get("failover"))

        wait_for(completed, timeout_s, f"the {kind} finished by a new operator")
        seconds = time.monotonic() - started
        finished = True
        acked_at_end = len(writer.acked)
        wait_for(lambda: len(writer.acked) >= acked_at_end + 10, 20, "writes on the new primary")
        problems = consistency_problems(cluster, kind)
        new_primary = cluster.primary_or_none()
    except AssertionError as exc:
        problems.append(str(exc))
    finally:
        writer.stop()
        sampler.stop()
    if new_primary is not None:
        lost = len(writer.lost(cluster.dsn(new_primary)))
    return CrashResult(
        plan=kind.value,
        step=step.value,
        finished=finished and not problems,
        dual_primary_samples=len(sampler.dual),
        lost_acknowledged_writes=lost,
        seconds=round(seconds, 2),
        new_primary=new_primary,
        problems=tuple(problems),
    )
