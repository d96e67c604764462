"""A real Prometheus (Debian's package) for the e2e layer, run on this host, and its HTTP API.

The host reaches the local cluster's pod IPs, so Prometheus scrapes the pods directly, with
the scrape jobs e2e/prometheus_config.py translates from our ServiceMonitors. Debian builds
Prometheus without Kubernetes service discovery; the harness discovers the targets through
the API server with the test's kubeconfig and hands them over as file_sd target files
(e2e/prometheus_targets.py), refreshed while Prometheus runs.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from e2e import prometheus_config, prometheus_targets

ROOT = Path(__file__).parents[1]
MONITORING = ROOT / "manifests" / "monitoring"


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as resp:
            body = json.load(resp)
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus {path}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        return list(data["result"])

    def value(self, expr: str) -> float | None:
        """The single sample ``expr`` returns, or None when it returns nothing."""
        result = self.query(expr)
        if not result:
            return None
        if len(result) > 1:
            raise RuntimeError(f"{expr} returned {len(result)} series")
        return float(result[0]["value"][1])

    def alerts(self, state: str = "firing") -> list[dict[str, Any]]:
        return [a for a in self.api("alerts")["alerts"] if a["state"] == state]

    def targets(self) -> list[dict[str, Any]]:
        return list(self.api("targets", state="active")["activeTargets"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_monitors() -> list[dict[str, Any]]:
    return list(yaml.safe_load_all((MONITORING / "servicemonitor.yaml").read_text()))


def write_config(directory: Path, targets_dir: Path) -> Path:
    rules = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    rules_file = directory / "replicadb.rules.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": rules["spec"]["groups"]}))
    config = prometheus_config.prometheus_config(service_monitors(), [str(rules_file)], targets_dir)
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@contextlib.contextmanager
def running_prometheus(kubeconfig: str, timeout_s: float = 60) -> Iterator[Prometheus]:
    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError("prometheus is not installed (make deps installs Debian's)")
    with contextlib.ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rdb-prom-")))
        targets_dir = directory / "targets"
        targets_dir.mkdir()
        discoveries = [
            d for m in service_monitors() for d in prometheus_config.discoveries(m, targets_dir)
        ]
        stack.enter_context(prometheus_targets.refreshed_targets(kubeconfig, discoveries))
        config = write_config(directory, targets_dir)
        port = free_port()
        log = (directory / "prometheus.log").open("w")
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        server = Prometheus(f"http://127.0.0.1:{port}")
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"prometheus exited: {(directory / 'prometheus.log').read_text()}"
                    )
                with (
                    contextlib.suppress(OSError),
                    urllib.request.urlopen(f"{server.url}/-/ready", timeout=2),
                ):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError("prometheus not ready")
                time.sleep(0.5)
            yield server
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


def main() -> None:
    """``python -m e2e.prometheus_server DIR``: write the e2e configuration (and empty target
    files) to DIR, for ``promtool check config`` in ``make test-alerts``: the check that the
    translation only uses what Debian's Prometheus understands."""
    directory = Path(sys.argv[1]).resolve()  # Prometheus reads paths relative to the file
    targets_dir = directory / "targets"
    targets_dir.mkdir(parents=True, exist_ok=True)
    for monitor in service_monitors():
        for discovery in prometheus_config.discoveries(monitor, targets_dir):
            prometheus_targets.write_targets(discovery.file, [])
    print(write_config(directory, targets_dir))


if __name__ == "__main__":
    main()
