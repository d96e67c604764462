"""The Kubernetes watcher, driven by a fake object and a fake watch stream."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from router_lib.conninfo import ConnectionSettings
from router_lib.endpoints import Topology
from router_lib.kube_source import KubeStatusSource

SETTINGS = ConnectionSettings(user="app", password="pw", dbname="shop")


def rdb(primary: str, version: str, replicas: tuple[str, ...] = ("db-1",)) -> dict[str, Any]:
    names = (primary, *replicas)
    return {
        "metadata": {"name": "shop", "resourceVersion": version},
        "status": {
            "primary": primary,
            "instances": [
                {
                    "name": n,
                    "role": "primary" if n == primary else "replica",
                    "address": f"10.0.0.{i}",
                    "port": 5432,
                    "ready": True,
                }
                for i, n in enumerate(names)
            ],
        },
    }


class FakeApi:
    """The object as the API server has it, and a watch stream the test feeds."""

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj
        self.gets = 0
        self.watch_calls: list[str | None] = []
        self.events: queue.Queue[Mapping[str, Any] | Exception | None] = queue.Queue()

    def get_object(self) -> Mapping[str, Any]:
        self.gets += 1
        return self.obj

    def watch_events(self, resource_version: str | None) -> Iterator[Mapping[str, Any]]:
        self.watch_calls.append(resource_version)
        while True:
            item = self.events.get()
            if item is None:  # the server ended the watch (timeout)
                return
            if isinstance(item, Exception):
                raise item
            yield item


class Recorder:
    def __init__(self) -> None:
        self.topologies: list[Topology] = []
        self.changed = threading.Event()

    def __call__(self, topology: Topology) -> None:
        self.topologies.append(topology)
        self.changed.set()

    def wait_primary(self, name: str, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            primary = self.topologies[-1].primary if self.topologies else None
            if primary is not None and primary.name == name:
                return
            self.changed.wait(0.05)
            self.changed.clear()
        raise AssertionError(f"primary never became {name}: {self.topologies}")


def start(api: FakeApi) -> tuple[KubeStatusSource, Recorder]:
    source = KubeStatusSource(api.get_object, api.watch_events, SETTINGS, retry_s=0.05)
    recorder = Recorder()
    source.start(recorder)
    return source, recorder


def test_the_object_is_read_before_start_returns_then_watched_from_its_version() -> None:
    api = FakeApi(rdb("db-0", "10"))
    source, recorder = start(api)
    try:
        assert recorder.topologies[0].primary is not None
        assert recorder.topologies[0].primary.name == "db-0"
        api.events.put({"type": "MODIFIED", "object": rdb("db-1", "11", ("db-0",))})
        recorder.wait_primary("db-1")
        assert api.watch_calls[0] == "10"
        assert source.resource_version == "11"
    finally:
        api.events.put(None)
        source.close()


def test_a_watch_error_or_failure_resyncs_from_a_fresh_read() -> None:
    api = FakeApi(rdb("db-0", "10"))
    source, recorder = start(api)
    try:
        api.obj = rdb("db-2", "20", ("db-0", "db-1"))
        api.events.put({"type": "ERROR", "object": {"code": 410, "reason": "Gone"}})
        recorder.wait_primary("db-2")
        api.obj = rdb("db-1", "30", ("db-0",))
        api.events.put(ConnectionResetError("apiserver went away"))
        recorder.wait_primary("db-1")
        assert api.gets >= 3
    finally:
        api.events.put(None)
        source.close()


def test_a_refresh_request_reads_the_object_at_once() -> None:
    api = FakeApi(rdb("db-0", "10"))
    source, recorder = start(api)
    try:
        api.obj = rdb("db-1", "12", ("db-0",))  # changed, but no watch event yet
        source.request_refresh()
        recorder.wait_primary("db-1")
    finally:
        api.events.put(None)
        source.close()


def test_status_without_a_primary_yet_publishes_nothing() -> None:
    api = FakeApi({"metadata": {"resourceVersion": "1"}, "status": {"phase": "Creating"}})
    source, recorder = start(api)
    try:
        assert recorder.topologies == []
        api.events.put({"type": "MODIFIED", "object": rdb("db-0", "2")})
        recorder.wait_primary("db-0")
        api.events.put({"type": "DELETED", "object": rdb("db-0", "3")})
        time.sleep(0.05)
        assert recorder.topologies[-1].primary is not None  # last endpoints are kept
    finally:
        api.events.put(None)
        source.close()


def test_an_unreadable_object_at_start_does_not_stop_the_router() -> None:
    class Failing(FakeApi):
        def get_object(self) -> Mapping[str, Any]:
            self.gets += 1
            if self.gets == 1:
                raise PermissionError("forbidden")
            return self.obj

    api = Failing(rdb("db-0", "5"))
    source, recorder = start(api)
    try:
        assert recorder.topologies == []
        api.events.put(None)  # the watch ends and is restarted; its next event has the object
        api.events.put({"type": "MODIFIED", "object": rdb("db-0", "6")})
        recorder.wait_primary("db-0")
    finally:
        api.events.put(None)
        source.close()
