"""Kopf registration. Handlers only delegate: the reconcile to ``reconcile``, the monitor
loop to ``monitoring.daemon``. Run with ``kopf run -m replicadb_operator.handlers``."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from functools import partial
from typing import Any

import kopf
import prometheus_client

from replicadb_operator import crd, peering
from replicadb_operator.failover import transitions
from replicadb_operator.failover.writer import StatusWriter
from replicadb_operator.monitoring import metrics
from replicadb_operator.monitoring.daemon import DatabaseDaemon
from replicadb_operator.reconcile import WaitingForInput, reconcile_database
from replicadb_operator.spec import SpecError, parse_spec

METRICS_PORT = int(os.environ.get("RDB_METRICS_PORT", "9090"))
RESOURCE = (crd.GROUP, crd.VERSION, crd.PLURAL)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Real state lives in .status; Kopf's own bookkeeping goes to annotations.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="replicadb.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="replicadb.io", key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING  # no event per successful handler run
    settings.peering.name = os.environ.get("RDB_PEERING", "replicadb")
    if "RDB_PEERING_MANDATORY" in os.environ:  # else as `kopf run --peering=...` says
        settings.peering.mandatory = os.environ["RDB_PEERING_MANDATORY"] == "true"
    settings.peering.priority = peering.peering_priority(os.environ)
    settings.peering.lifetime = peering.PEERING_LIFETIME_S
    settings.networking.request_timeout = 30
    settings.watching.server_timeout = 300
    if METRICS_PORT:
        prometheus_client.start_http_server(METRICS_PORT)


@kopf.on.probe(id="alive")
def alive(**_: Any) -> float:
    return time.time()


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE)
def reconcile(
    name: str,
    namespace: str | None,
    uid: str,
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    patch: kopf.Patch,
    **_: Any,
) -> None:
    reconcile_and_patch(name, namespace, uid, spec, status, meta, patch)


def reconcile_and_patch(
    name: str,
    namespace: str | None,
    uid: str,
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    patch: kopf.Patch,
) -> None:
    namespace = namespace or "default"  # the resource is namespaced; Kopf types it loosely
    started = time.monotonic()
    try:
        db = parse_spec(name, namespace, dict(spec), uid)
        result = reconcile_database(db, dict(status))
    except SpecError as exc:
        metrics.RECONCILE_ERRORS.labels(namespace, name).inc()
        StatusWriter(namespace, name).apply(
            partial(transitions.spec_invalid, message=str(exc)), "invalid spec"
        )
        raise kopf.PermanentError(str(exc)) from exc
    except WaitingForInput as exc:
        StatusWriter(namespace, name).apply(
            partial(transitions.waiting_for_input, message=str(exc)), "waiting"
        )
        raise kopf.TemporaryError(str(exc), delay=15) from exc
    except Exception:
        metrics.RECONCILE_ERRORS.labels(namespace, name).inc()
        raise
    finally:
        metrics.RECONCILE_SECONDS.labels(namespace, name).observe(time.monotonic() - started)
    for key, value in result.status.items():
        patch.status[key] = value
    if status.get("invalidSpec"):
        patch.status["invalidSpec"] = None
    if status.get("observedGeneration") != meta.get("generation"):
        patch.status["observedGeneration"] = meta.get("generation")


# Besides changes of the object: objects deleted by hand come back. (Rolls of the pods are
# the monitor's, each probe interval: see updates/.)
@kopf.timer(*RESOURCE, interval=30.0, initial_delay=30.0)
def reconcile_periodically(
    name: str,
    namespace: str | None,
    uid: str,
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    patch: kopf.Patch,
    **_: Any,
) -> None:
    reconcile_and_patch(name, namespace, uid, spec, status, meta, patch)


@kopf.daemon(*RESOURCE, cancellation_timeout=10.0)
async def monitor(
    name: str,
    namespace: str | None,
    uid: str,
    spec: kopf.Spec,
    annotations: kopf.Annotations,
    stopped: kopf.DaemonStopped,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    **_: Any,
) -> None:
    namespace = namespace or "default"  # the resource is namespaced; Kopf types it loosely
    daemon = DatabaseDaemon(namespace, name, uid)
    try:
        while not stopped:
            started = time.monotonic()
            interval = 1.0
            try:
                db = parse_spec(name, namespace, dict(spec), uid)
                interval = db.monitoring.probe_interval_s
                await daemon.step(db, dict(annotations))
            except SpecError:
                interval = 10.0  # the reconcile reports it
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let one bad round kill the monitor
                logger.exception("monitor round failed: %s", exc)
            await asyncio.sleep(max(0.05, interval - (time.monotonic() - started)))
    finally:
        await daemon.close()
