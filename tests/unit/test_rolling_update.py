"""Rolling updates: what triggers a roll, which pod goes next, when the primary switches
over, what status and the read-only Service say. All pure."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
from replicadb_operator.builders import names, services, statefulsets
from replicadb_operator.dataplane.lag import ReplicaLag
from replicadb_operator.failover import transitions as t
from replicadb_operator.spec import (
    DatabaseSpec,
    PrimaryUpdateMethod,
    PrimaryUpdateStrategy,
    UpdatesSpec,
    parse_spec,
)
from replicadb_operator.updates import lag_bound, progress
from replicadb_operator.updates.roll import UNHEALTHY_GRACE_S, Member, State, Verb, next_action

BASE: dict[str, Any] = {"replicas": 2, "postgres": {"parameters": {"work_mem": "8MB"}}}
NEW, OLD = "new", "old"
DEFAULT = UpdatesSpec()


def db(**changes: Any) -> DatabaseSpec:
    spec = {**BASE, **changes}
    return parse_spec("shop", "prod", spec)


# -- what triggers a roll -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "rolls"),
    [
        ({"postgres": {"image": "localhost/replicadb/instance:dev-next"}}, True),
        ({"postgres": {"parameters": {"work_mem": "8MB", "shared_buffers": "256MB"}}}, True),
        (
            {"postgres": {"parameters": {"work_mem": "8MB"}, "resources": {"limits": {"cpu": 1}}}},
            True,
        ),
        ({"postgres": {"parameters": {"work_mem": "64MB"}}}, False),  # reloaded, no restart
        ({"replicas": 3}, False),
        ({"readOnly": {"maxLagBytes": 1024}}, False),
    ],
)
def test_a_new_revision_is_any_change_of_the_pod_template(
    change: dict[str, Any], rolls: bool
) -> None:
    assert (statefulsets.revision(db(**change)) != statefulsets.revision(db())) is rolls


def test_statefulsets_leave_pod_updates_to_the_operator_and_pods_carry_the_revision() -> None:
    spec = db()
    for sts in (statefulsets.primary_statefulset(spec), statefulsets.replica_statefulset(spec)):
        assert sts["spec"]["updateStrategy"] == {"type": "OnDelete"}
        annotations = sts["spec"]["template"]["metadata"]["annotations"]
        assert annotations[names.ANNOTATION_REVISION] == statefulsets.revision(spec)


# -- which pod next ---------------------------------------------------------------------------
def member(name: str, revision: str = OLD, primary: bool = False, **kw: Any) -> Member:
    return Member(name=name, revision=revision, is_primary=primary, healthy=kw.pop("healthy", True),
                  **kw)  # fmt: skip


def cluster(*replica_revisions: str, primary_revision: str = OLD, **primary: Any) -> list[Member]:
    return [member("p", primary_revision, primary=True, **primary)] + [
        member(f"r{i}", rev) for i, rev in enumerate(replica_revisions)
    ]


def test_nothing_to_do_when_every_pod_runs_the_revision() -> None:
    action = next_action(NEW, cluster(NEW, NEW, primary_revision=NEW), 3, DEFAULT)
    assert (action.verb, action.state) == (Verb.NOTHING, State.UP_TO_DATE)


def test_replicas_first_one_at_a_time_in_name_order() -> None:
    action = next_action(NEW, cluster(OLD, OLD), 3, DEFAULT)
    assert (action.verb, action.pod) == (Verb.RESTART_REPLICA, "r0")
    action = next_action(NEW, cluster(NEW, OLD), 3, DEFAULT)
    assert (action.verb, action.pod) == (Verb.RESTART_REPLICA, "r1")


def test_the_next_replica_waits_until_the_last_is_back_streaming_and_caught_up() -> None:
    members = [*cluster(OLD), member("r1", NEW, healthy=False)]
    action = next_action(NEW, members, 3, DEFAULT)
    assert (action.verb, action.state) == (Verb.NOTHING, State.ROLLING_REPLICAS)
    assert "r1" in action.why
    deleting = [*cluster(OLD), member("r1", OLD, deleting=True)]
    assert next_action(NEW, deleting, 3, DEFAULT).verb is Verb.NOTHING
    missing = cluster(OLD)  # r1's pod deleted and not yet made again
    assert next_action(NEW, missing, 3, DEFAULT).verb is Verb.NOTHING


def test_an_outdated_replica_unhealthy_for_long_is_replaced_at_once() -> None:
    sick = member("r1", OLD, healthy=False, unhealthy_s=UNHEALTHY_GRACE_S + 1)
    action = next_action(NEW, [*cluster(OLD), sick], 3, DEFAULT)
    assert (action.verb, action.pod) == (Verb.RESTART_REPLICA, "r1")
    recent = member("r1", OLD, healthy=False, unhealthy_s=1.0)
    assert next_action(NEW, [*cluster(OLD), recent], 3, DEFAULT).verb is Verb.NOTHING


def test_nothing_moves_while_the_primary_is_not_ready() -> None:
    action = next_action(NEW, cluster(OLD, OLD, healthy=False), 3, DEFAULT)
    assert (action.verb, action.state) == (Verb.NOTHING, State.WAITING)


def test_then_a_switchover_to_the_updated_replica_that_lags_least() -> None:
    members = [member("p", OLD, primary=True), member("r0", NEW, lag_bytes=500),
               member("r1", NEW, lag_bytes=20)]  # fmt: skip
    action = next_action(NEW, members, 3, DEFAULT)
    assert (action.verb, action.state, action.pod) == (Verb.SWITCH_OVER, State.SWITCHING_OVER, "r1")


def test_after_the_switchover_the_former_primary_is_an_outdated_replica() -> None:
    members = [member("p", OLD), member("r0", NEW, primary=True), member("r1", NEW)]
    action = next_action(NEW, members, 3, DEFAULT)
    assert (action.verb, action.pod) == (Verb.RESTART_REPLICA, "p")


def test_restart_method_restarts_the_primary_in_place() -> None:
    updates = UpdatesSpec(primary_update_method=PrimaryUpdateMethod.RESTART)
    action = next_action(NEW, cluster(NEW, NEW), 3, updates)
    assert (action.verb, action.state, action.pod) == (
        Verb.RESTART_PRIMARY,
        State.RESTARTING_PRIMARY,
        "p",
    )


def test_without_replicas_the_primary_restarts_even_with_switchover() -> None:
    action = next_action(NEW, cluster(), 1, DEFAULT)
    assert (action.verb, action.pod) == (Verb.RESTART_PRIMARY, "p")


@pytest.mark.parametrize("method", list(PrimaryUpdateMethod))
def test_supervised_waits_for_the_user_once_the_replicas_are_done(
    method: PrimaryUpdateMethod,
) -> None:
    updates = UpdatesSpec(method, PrimaryUpdateStrategy.SUPERVISED)
    assert next_action(NEW, cluster(OLD, NEW), 3, updates).verb is Verb.RESTART_REPLICA
    action = next_action(NEW, cluster(NEW, NEW), 3, updates)
    assert (action.verb, action.state) == (Verb.NOTHING, State.WAITING_FOR_SWITCHOVER)
    assert "kubectl replicadb switchover" in action.why


# -- status -----------------------------------------------------------------------------------
def test_progress_names_the_pods_on_the_new_revision() -> None:
    members = cluster(NEW, OLD)
    after = progress.rolling_update_status(NEW, members, next_action(NEW, members, 3, DEFAULT))
    assert after["updatedInstances"] == ["r0"]
    assert after["outdatedInstances"] == ["p", "r1"]
    assert after["state"] == State.ROLLING_REPLICAS
    assert progress.roll_started({}, after)
    done = {"outdatedInstances": [], "state": State.UP_TO_DATE}
    assert progress.roll_finished(after, done)
    assert not progress.roll_finished(done, done)


def test_progress_and_primary_restart_go_through_their_transitions() -> None:
    status: dict[str, Any] = {"primary": "p", "targetPrimary": "p"}
    patch = t.roll_observed(status, {"revision": NEW, "state": "RollingReplicas"})
    status = t.merged(status, patch)
    assert t.roll_observed(status, {"revision": NEW, "state": "RollingReplicas"}) == {}
    begun = partial(t.primary_restart_begun, pod="p", uid="u1", now="2025-01-01T00:00:00Z")
    status = t.merged(status, begun(status))
    assert status["rollingUpdate"]["primaryRestart"]["uid"] == "u1"
    assert begun(status) == {}  # repeated by a new operator: nothing to write
    # progress written meanwhile keeps the recorded restart
    status = t.merged(status, t.roll_observed(status, {"state": "RestartingPrimary"}))
    assert status["rollingUpdate"]["primaryRestart"]["pod"] == "p"
    status = t.merged(status, t.primary_restart_over(status))
    assert "primaryRestart" not in status["rollingUpdate"]
    with pytest.raises(t.Refused):
        t.primary_restart_begun(status, pod="r0", uid="u2", now="x")
    assert "rollingUpdate" not in t.observe(status, {"rollingUpdate": {"state": "x"}})


# -- the read-only lag bound ------------------------------------------------------------------
def lag(replay_bytes: int | None, seconds: float | None = 0.0) -> ReplicaLag:
    return ReplicaLag(name="r0", replay_bytes=replay_bytes, receive_bytes=None, seconds=seconds)


def test_without_a_bound_every_replica_serves_reads() -> None:
    assert lag_bound.lag_label(db(), None) == names.LAG_WITHIN_BOUND
    assert lag_bound.lag_label(db(), lag(10**12, 3600)) == names.LAG_WITHIN_BOUND


def test_a_replica_over_either_bound_leaves_the_read_only_service() -> None:
    spec = db(readOnly={"maxLagBytes": 1000, "maxLagSeconds": 2})
    assert lag_bound.lag_label(spec, lag(1000, 2.0)) == names.LAG_WITHIN_BOUND
    assert lag_bound.lag_label(spec, lag(1001, 0.0)) == names.LAG_OVER_BOUND
    assert lag_bound.lag_label(spec, lag(10, 2.5)) == names.LAG_OVER_BOUND
    assert lag_bound.lag_label(spec, None) == names.LAG_OVER_BOUND  # not measured yet
    selector = services.read_only_service(spec)["spec"]["selector"]
    assert selector[names.LABEL_LAG] == names.LAG_WITHIN_BOUND
    assert selector[names.LABEL_ROLE] == names.ROLE_REPLICA


def test_caught_up_in_a_roll_means_within_the_failover_and_read_bounds() -> None:
    spec = db(failover={"maxLagBytes": 5000})
    assert lag_bound.caught_up(spec, lag(5000))
    assert not lag_bound.caught_up(spec, lag(5001))
    assert not lag_bound.caught_up(spec, None)
    bounded = db(failover={"maxLagBytes": 5000}, readOnly={"maxLagBytes": 100})
    assert not lag_bound.caught_up(bounded, lag(101))


def test_spec_reads_updates_and_read_only_with_defaults() -> None:
    spec = db()
    assert spec.updates == UpdatesSpec(PrimaryUpdateMethod.SWITCHOVER,
                                       PrimaryUpdateStrategy.UNSUPERVISED)  # fmt: skip
    assert (spec.read_only.max_lag_bytes, spec.read_only.max_lag_seconds) == (None, None)
    custom = db(updates={"primaryUpdateMethod": "restart", "primaryUpdateStrategy": "supervised"},
                readOnly={"maxLagSeconds": 1.5})  # fmt: skip
    assert custom.updates.primary_update_method is PrimaryUpdateMethod.RESTART
    assert custom.read_only.max_lag_seconds == 1.5
