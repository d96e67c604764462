"""Parameters that need a restart reach the replicas first, the primary last."""

from __future__ import annotations

from typing import Any

from replicadb_operator.builders import names
from replicadb_operator.reconcile import primary_restart_hash, rolled_out


def sts(restart_hash: str, replicas: int, updated: int, ready: int, gen: int = 2) -> dict[str, Any]:
    return {
        "metadata": {"generation": gen},
        "spec": {
            "replicas": replicas,
            "template": {
                "metadata": {"annotations": {names.ANNOTATION_RESTART_HASH: restart_hash}}
            },
        },
        "status": {
            "observedGeneration": gen,
            "updatedReplicas": updated,
            "readyReplicas": ready,
        },
    }


def test_primary_waits_while_replicas_roll() -> None:
    primary = sts("old", 1, 1, 1)
    rolling = sts("new", 2, 1, 1)
    assert primary_restart_hash("new", primary, rolling) == "old"
    assert primary_restart_hash("new", primary, sts("old", 2, 2, 2)) == "old"


def test_primary_follows_once_every_replica_runs_the_new_hash_and_is_ready() -> None:
    assert primary_restart_hash("new", sts("old", 1, 1, 1), sts("new", 2, 2, 2)) == "new"
    assert not rolled_out(sts("new", 2, 2, 1), "new")
    assert not rolled_out(sts("new", 2, 2, 2, gen=3) | {"status": {"observedGeneration": 2}}, "new")


def test_new_databases_and_no_replicas_take_the_hash_at_once() -> None:
    assert primary_restart_hash("new", None, None) == "new"
    assert primary_restart_hash("new", sts("old", 1, 1, 1), None) == "new"
