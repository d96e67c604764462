"""The ReplicatedDatabase CustomResourceDefinition: the one source of truth for the schema.

``python -m replicadb_operator.crd`` prints it; crds/ holds that output and a test fails when
the two drift. Defaults come from spec.py's dataclasses so that they live in one place.
Validation is done here, at admission, wherever the schema can express it: types, ranges,
enums, patterns, and CEL rules for what spans fields.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

from replicadb_operator import spec as defaults
from replicadb_operator.dataplane.sync_standbys import Durability, SyncMode
from replicadb_operator.failover.record import Basis, Kind, Step
from replicadb_operator.updates.roll import State

GROUP = "replicadb.io"
VERSION = "v1alpha1"
KIND = "ReplicatedDatabase"
PLURAL = "replicateddatabases"
SINGULAR = "replicateddatabase"
SHORT_NAMES = ["rdb"]

QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

Schema = dict[str, Any]


def obj(description: str, properties: dict[str, Schema], **extra: Any) -> Schema:
    return {"type": "object", "description": description, "properties": properties, **extra}


def integer(description: str, default: int | None, minimum: int, maximum: int) -> Schema:
    out: Schema = {
        "type": "integer",
        "description": description,
        "minimum": minimum,
        "maximum": maximum,
    }
    if default is not None:
        out["default"] = default
    return out


def string(description: str, default: str | None = None, **extra: Any) -> Schema:
    out: Schema = {"type": "string", "description": description, **extra}
    if default is not None:
        out["default"] = default
    return out


def boolean(description: str, default: bool) -> Schema:
    return {"type": "boolean", "description": description, "default": default}


def enum(description: str, values: list[str], default: str) -> Schema:
    return {"type": "string", "description": description, "enum": values, "default": default}


def string_map(description: str) -> Schema:
    return {
        "type": "object",
        "description": description,
        "additionalProperties": {"type": "string"},
    }


def secret_name(description: str) -> Schema:
    return string(description, maxLength=253, pattern=NAME_PATTERN)


PG = defaults.PostgresSpec()
FO = defaults.FailoverSpec()
PB = defaults.PoolerSpec()
MON = defaults.MonitoringSpec()
CRED = defaults.Credentials()
PLACE = defaults.Placement()
UPD = defaults.UpdatesSpec()

RESOURCE_LIST: Schema = {
    "type": "object",
    "additionalProperties": {
        # Structural schemas allow nothing but types inside anyOf; the pattern sits beside it.
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "x-kubernetes-int-or-string": True,
        "pattern": QUANTITY_PATTERN,
    },
}

SPEC: Schema = obj(
    "The desired topology: one primary, `replicas` streaming replicas, a PgBouncer pooler.",
    {
        "replicas": integer("Number of read replicas (streaming standbys).", 2, 0, 15),
        "postgres": obj(
            "The PostgreSQL instances.",
            {
                "image": string(
                    "Instance image (PostgreSQL, PgBouncer and replicadb's entrypoint).",
                    PG.image,
                ),
                "version": enum("PostgreSQL major version of the image.", ["15"], PG.version),
                "parameters": string_map(
                    "postgresql.conf parameters; reloaded where PostgreSQL allows, otherwise a "
                    "rolling update (spec.updates): replicas first, then a switchover."
                ),
                "resources": obj(
                    "Compute resources of each instance container.",
                    {
                        "requests": {**RESOURCE_LIST, "description": "Requests."},
                        "limits": {**RESOURCE_LIST, "description": "Limits."},
                    },
                ),
                "storage": obj(
                    "Each instance's data volume.",
                    {
                        "size": string(
                            "Volume size, a Kubernetes quantity such as 1Gi.",
                            PG.storage.size,
                            pattern=QUANTITY_PATTERN,
                        ),
                        "storageClassName": string("Storage class; the default class if unset."),
                    },
                    default={},
                ),
            },
            default={},
        ),
        "replication": obj(
            "Synchronous replication and durability.",
            {
                "synchronousMode": enum(
                    "async: no synchronous standbys; priority: FIRST n; quorum: ANY n.",
                    [m.value for m in SyncMode],
                    SyncMode.OFF.value,
                ),
                "synchronousStandbys": integer(
                    "How many standbys confirm each commit (n); at most spec.replicas.", 1, 1, 15
                ),
                "dataDurability": enum(
                    "required: commits wait when too few standbys are healthy; preferred: the "
                    "standby list follows health, down to asynchronous.",
                    [d.value for d in Durability],
                    Durability.REQUIRED.value,
                ),
            },
            default={},
        ),
        "failover": obj(
            "Automatic failover when the primary fails.",
            {
                "enabled": boolean("Promote a replica automatically.", FO.enabled),
                "failureThreshold": integer(
                    "Consecutive failed probes, confirmed by Kubernetes, before failing over.",
                    FO.failure_threshold,
                    1,
                    30,
                ),
                "maxLagBytes": integer(
                    "A replica further behind than this is never promoted automatically.",
                    FO.max_lag_bytes,
                    0,
                    2**40,
                ),
            },
            default={},
        ),
        "pgbouncer": obj(
            "PgBouncer pools in front of the read-write and the read-only Services.",
            {
                "enabled": boolean("Run the poolers.", PB.enabled),
                "instances": integer("Pods per pool.", PB.instances, 1, 10),
                "poolMode": enum(
                    "PgBouncer pool_mode.", ["session", "transaction", "statement"], PB.pool_mode
                ),
                "maxClientConnections": integer(
                    "max_client_conn of each pooler pod.", PB.max_client_connections, 1, 100000
                ),
                "defaultPoolSize": integer(
                    "Server connections per user/database pair.", PB.default_pool_size, 1, 1000
                ),
                "image": string("Pooler image; the instance image when unset."),
                "metrics": boolean(
                    "Run a PgBouncer exporter (prometheus-pgbouncer-exporter) beside each "
                    "PgBouncer, serving pgbouncer_* metrics on port 9127 (Service port "
                    "'metrics').",
                    PB.metrics,
                ),
            },
            default={},
        ),
        "monitoring": obj(
            "How the operator watches the instances.",
            {
                "probeIntervalSeconds": {
                    "type": "number",
                    "description": "Seconds between probes of every instance.",
                    "minimum": 0.2,
                    "maximum": 60,
                    "default": MON.probe_interval_s,
                },
            },
            default={},
        ),
        "credentials": obj(
            "Secrets with a `password` key; generated (random, 24 bytes) when not named.",
            {
                "superuserSecret": secret_name("Secret holding the postgres superuser password."),
                "replicationSecret": secret_name("Secret holding the replication password."),
                "appSecret": secret_name("Secret holding the application role's password."),
                "appUser": string(
                    "Application role created at initdb.", CRED.app_user, pattern=NAME_PATTERN
                ),
                "appDatabase": string(
                    "Application database created at initdb.",
                    CRED.app_database,
                    pattern=r"^[a-z_][a-z0-9_]*$",
                ),
            },
            default={},
        ),
        "placement": obj(
            "Where instances run.",
            {
                "zoneSpread": boolean("Spread instances across zones.", PLACE.zone_spread),
                "zoneTopologyKey": string("Node label naming the zone.", PLACE.zone_topology_key),
                "maxSkew": integer("Topology spread maxSkew.", PLACE.max_skew, 1, 10),
                "whenUnsatisfiable": enum(
                    "Topology spread whenUnsatisfiable.",
                    ["ScheduleAnyway", "DoNotSchedule"],
                    PLACE.when_unsatisfiable,
                ),
                "podAntiAffinity": enum(
                    "Keep instances on different nodes.",
                    ["none", "preferred", "required"],
                    PLACE.anti_affinity,
                ),
                "nodeSelector": string_map("Node selector for instance pods."),
                "tolerations": {
                    "type": "array",
                    "description": "Tolerations for instance pods.",
                    "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                },
            },
            default={},
        ),
        "updates": obj(
            "How a change of the pod template (image, resources, restart-only parameters) "
            "reaches the running instances: replicas one at a time, then the primary.",
            {
                "primaryUpdateMethod": enum(
                    "switchover: to an updated replica, then the former primary is updated; "
                    "restart: the primary restarts in place (writes stop meanwhile).",
                    [m.value for m in defaults.PrimaryUpdateMethod],
                    UPD.primary_update_method.value,
                ),
                "primaryUpdateStrategy": enum(
                    "unsupervised: the operator updates the primary; supervised: it waits "
                    "(condition Updating, reason WaitingForSwitchover) for `kubectl replicadb "
                    "switchover` or `promote`.",
                    [s.value for s in defaults.PrimaryUpdateStrategy],
                    UPD.primary_update_strategy.value,
                ),
            },
            default={},
        ),
        "readOnly": obj(
            "The read-only Service (and pooler): a replica further behind than these bounds "
            "leaves it until it catches up (label replicadb.io/lag=over-bound). Unset: no bound.",
            {
                "maxLagBytes": integer(
                    "WAL bytes a replica may not have replayed.", None, 0, 2**40
                ),
                "maxLagSeconds": {
                    "type": "number",
                    "description": "Seconds a replica may be behind the primary.",
                    "minimum": 0,
                    "maximum": 86400,
                },
            },
        ),
        "tls": obj(
            "TLS for PostgreSQL and PgBouncer.",
            {
                "enabled": boolean("Serve TLS.", False),
                "secretName": secret_name(
                    "A kubernetes.io/tls Secret (tls.crt, tls.key, optionally ca.crt); a CA "
                    "generated by the operator when unset."
                ),
                "required": boolean("pg_hba accepts only TLS connections (hostssl).", False),
            },
            default={},
        ),
    },
    **{
        "x-kubernetes-validations": [
            {
                "rule": "!has(self.replication) || self.replication.synchronousMode == 'async' "
                "|| self.replication.synchronousStandbys <= self.replicas",
                "message": "spec.replication.synchronousStandbys must not exceed spec.replicas",
                "fieldPath": ".replication.synchronousStandbys",
            },
            {
                "rule": "!has(self.tls) || !self.tls.required || self.tls.enabled",
                "message": "spec.tls.required needs spec.tls.enabled",
                "fieldPath": ".tls.required",
            },
        ]
    },
)


def _values(description: str, values: list[str]) -> Schema:
    return {"type": "string", "description": description, "enum": values}


_PLAN_KIND = _values(
    "failover (primary failed) or switchover (asked for).", [k.value for k in Kind]
)
_BASIS = _values(
    "What the choice of target rested on: this operator's probes of the primary, or sync "
    "states and positions recorded in status by an earlier operator.",
    [b.value for b in Basis],
)
FAILOVER_STATUS: Schema = obj(
    "A failover or switchover under way; written only through the operator's transitions.",
    {
        "kind": _PLAN_KIND,
        "from": string("The primary being replaced."),
        "to": string("The instance being promoted (also in targetPrimary)."),
        "reason": string("Why."),
        "since": string("When the decision was recorded.", format="date-time"),
        "stepsDone": {
            "type": "array",
            "description": "The plan's steps finished so far, in order; a restarted operator "
            "runs the first one not listed.",
            "items": _values("A step.", [step.value for step in Step]),
        },
        "basis": _BASIS,
        "fromAddress": string("Where the old primary last answered (it is stopped there too)."),
        "fromLastLsn": string("The old primary's last known WAL position."),
        "finalLsn": string("Switchover: its position once read-only; the target replays it."),
        "lagBytes": {"type": "integer", "description": "WAL the target lacks, when known."},
    },
    required=["kind", "from", "to"],
)
ROLLING_STATUS: Schema = obj(
    "Where the pods stand against the StatefulSets' pod template; written only through the "
    "operator's transitions.",
    {
        "revision": string("The pod template's hash (pods carry it as replicadb.io/revision)."),
        "updatedInstances": {
            "type": "array",
            "description": "Instances on that revision.",
            "items": {"type": "string"},
        },
        "outdatedInstances": {
            "type": "array",
            "description": "Instances still to update.",
            "items": {"type": "string"},
        },
        "state": _values("What the roll does or waits for.", [s.value for s in State]),
        "message": string("Why, in words."),
        "primaryRestart": obj(
            "The primary restarting in place (primaryUpdateMethod: restart): no failover.",
            {
                "pod": string("The primary's pod."),
                "uid": string("The pod's uid before the restart."),
                "since": string("When it was deleted.", format="date-time"),
            },
        ),
    },
)
STATUS: Schema = {
    "type": "object",
    "description": "Observed state; the single record of who the primary is.",
    "x-kubernetes-preserve-unknown-fields": True,
    "properties": {
        "phase": string("Creating, Healthy, Degraded, PrimaryUnavailable, FailingOver, ..."),
        "primary": string("The instance that is the primary."),
        "targetPrimary": string("The instance meant to be primary (differs during a plan)."),
        "failoverBlocked": string("Why the failed primary cannot be replaced automatically."),
        "failover": FAILOVER_STATUS,
        "rollingUpdate": ROLLING_STATUS,
        "lastFailover": {
            "type": "object",
            "description": "The last completed failover or switchover.",
            "x-kubernetes-preserve-unknown-fields": True,
            "properties": {"kind": _PLAN_KIND, "basis": _BASIS},
        },
    },
}

PRINTER_COLUMNS = [
    {"name": "Primary", "type": "string", "jsonPath": ".status.primary"},
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": ".status.readyReplicas",
        "description": "Ready replicas / desired replicas",
    },
    {
        "name": "Max lag",
        "type": "string",
        "jsonPath": ".status.maxLag",
        "description": "Largest replica lag (bytes, seconds)",
    },
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": SHORT_NAMES,
                "categories": ["all"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A PostgreSQL primary with streaming read replicas.",
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": {**SPEC, "default": {}},
                                "status": STATUS,
                            },
                            "required": ["spec"],
                        }
                    },
                }
            ],
        },
    }


def crd_yaml() -> str:
    header = "# Generated by `python -m replicadb_operator.crd` (make crds). Do not edit.\n"
    return header + yaml.safe_dump(crd(), sort_keys=False, width=100)


if __name__ == "__main__":
    sys.stdout.write(crd_yaml())
