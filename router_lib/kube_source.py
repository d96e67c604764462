"""Endpoints from a ``ReplicatedDatabase`` watched through the Kubernetes API.

In a pod, the service account's in-cluster configuration is used (the Role needs get, list
and watch on ``replicateddatabases.replicadb.io``); elsewhere a kubeconfig. The object is
read once before the router starts serving (so it has endpoints at once), then watched; a
watch that ends or fails is resumed from a fresh read. A refresh request (a stale role seen
by the router) reads the object again at once rather than waiting for the next event.

The Kubernetes calls are two functions (read the object, stream watch events) so tests can
drive the source with a fake stream.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from router_lib.config import RouterConfig
from router_lib.conninfo import ConnectionSettings
from router_lib.endpoints import Via
from router_lib.errors import ConfigurationError
from router_lib.extras import MissingExtra
from router_lib.sources import StatusSource, TopologyCallback

log = logging.getLogger(__name__)

GROUP = "replicadb.io"
VERSION = "v1alpha1"
PLURAL = "replicateddatabases"
WATCH_TIMEOUT_S = 60

Object = Mapping[str, Any]
GetObject = Callable[[], Object]
WatchEvents = Callable[[str | None], Iterable[Mapping[str, Any]]]


def kubernetes_calls(
    namespace: str, name: str, kubeconfig: str | None
) -> tuple[GetObject, WatchEvents]:
    try:
        from kubernetes import client, config, watch
    except ModuleNotFoundError as exc:
        raise MissingExtra("kube", "watching a ReplicatedDatabase (REPLICADB_NAME)") from exc

    # The kubernetes client is untyped.
    if kubeconfig is not None:
        config.load_kube_config(config_file=kubeconfig)
    else:
        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
    api = client.CustomObjectsApi()

    def get_object() -> Object:
        found = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        assert isinstance(found, Mapping)
        return found

    def watch_events(resource_version: str | None) -> Iterable[Mapping[str, Any]]:
        events: Iterable[Mapping[str, Any]] = watch.Watch().stream(
            api.list_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            field_selector=f"metadata.name={name}",
            resource_version=resource_version,
            timeout_seconds=WATCH_TIMEOUT_S,
        )
        return events

    return get_object, watch_events


class KubeStatusSource(StatusSource):
    def __init__(
        self,
        get_object: GetObject,
        watch_events: WatchEvents,
        settings: ConnectionSettings,
        via: Via = Via.INSTANCE,
        retry_s: float = 1.0,
    ) -> None:
        super().__init__(settings, via)
        self._get_object = get_object
        self._watch_events = watch_events
        self.retry_s = retry_s
        self.resource_version: str | None = None
        self._stop = threading.Event()
        self._refresh = threading.Event()
        self._threads = [
            threading.Thread(target=self._watch_loop, name="router_lib-kube-watch", daemon=True),
            threading.Thread(target=self._refresh_loop, name="router_lib-kube-read", daemon=True),
        ]

    @classmethod
    def from_config(cls, config: RouterConfig) -> KubeStatusSource:
        if config.kube_name is None or config.kube_namespace is None:
            raise ConfigurationError(
                "watching a ReplicatedDatabase needs its name and namespace "
                "(REPLICADB_NAME, REPLICADB_NAMESPACE outside a pod)"
            )
        get_object, watch_events = kubernetes_calls(
            config.kube_namespace, config.kube_name, config.kubeconfig
        )
        return cls(get_object, watch_events, config.connection, config.write_via)

    def start(self, on_topology: TopologyCallback) -> None:
        super().start(on_topology)
        try:
            self._read()
        except Exception as exc:  # the watcher keeps trying; the router starts empty
            log.warning("could not read the ReplicatedDatabase yet: %s", exc)
        for thread in self._threads:
            thread.start()

    def _read(self) -> None:
        self._handle(self._get_object())

    def _handle(self, obj: Object) -> None:
        metadata = obj.get("metadata") or {}
        version = metadata.get("resourceVersion")
        if isinstance(version, str):
            self.resource_version = version
        status = obj.get("status")
        if isinstance(status, Mapping) and status.get("primary"):
            self.publish(status)

    def _watch_loop(self) -> None:
        while not self._stop.is_set():
            try:
                for event in self._watch_events(self.resource_version):
                    if self._stop.is_set():
                        return
                    kind = event.get("type")
                    obj = event.get("object")
                    if kind == "ERROR" or not isinstance(obj, Mapping):
                        # Typically 410 Gone: our resourceVersion is too old. Read afresh.
                        self._resync()
                        break
                    if kind in ("ADDED", "MODIFIED"):
                        self._handle(obj)
                    elif kind == "DELETED":
                        log.warning("the ReplicatedDatabase was deleted; keeping last endpoints")
            except Exception as exc:
                log.warning("watching the ReplicatedDatabase failed: %s", exc)
                self._stop.wait(self.retry_s)
                self._resync()

    def _resync(self) -> None:
        try:
            self._read()
        except Exception as exc:
            log.warning("reading the ReplicatedDatabase failed: %s", exc)
            self.resource_version = None

    def _refresh_loop(self) -> None:
        while not self._stop.is_set():
            self._refresh.wait()
            self._refresh.clear()
            if self._stop.is_set():
                return
            self._resync()
            self._stop.wait(0.1)  # at most ten reads a second, however many requests

    def request_refresh(self) -> None:
        super().request_refresh()
        self._refresh.set()

    def close(self) -> None:
        super().close()
        self._stop.set()
        self._refresh.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=0.5)  # a watch stream may be blocked in a read
