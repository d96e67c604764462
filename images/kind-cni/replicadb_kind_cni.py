"""A minimal pod network for a kind cluster, in the way kind's own kindnetd works.

Each node gets its pod range (``spec.podCIDR``) from kube-controller-manager. On its node,
this daemon writes a CNI configuration that gives pods addresses from that range through the
standard ``ptp`` and ``host-local`` plugins (Debian's containernetworking-plugins in the node
image), and routes every other node's range via that node's address: the nodes share one
container network, so one hop reaches any of them. Nothing is masqueraded: pod traffic stays
inside the cluster. It reconciles every few seconds, so joining nodes get their routes.

Standard library only: it talks to the API server with the pod's service-account token.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
CNI_CONF = Path("/etc/cni/net.d/10-replicadb-kind.conflist")
PERIOD_S = 5.0


def api_base() -> str:
    # kind patches CONTROL_PLANE_ENDPOINT in (host:port), so that the pod network does not
    # wait for kube-proxy's Service rules; in-cluster Service variables otherwise.
    endpoint = os.environ.get("CONTROL_PLANE_ENDPOINT")
    if not endpoint:
        endpoint = (
            f"{os.environ['KUBERNETES_SERVICE_HOST']}:{os.environ['KUBERNETES_SERVICE_PORT']}"
        )
    return f"https://{endpoint}"


def list_nodes(base: str, context: ssl.SSLContext) -> list[dict]:
    token = (ACCOUNT / "token").read_text().strip()
    request = urllib.request.Request(
        f"{base}/api/v1/nodes", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        return list(json.load(response)["items"])


def internal_ip(node: dict) -> str | None:
    for address in node.get("status", {}).get("addresses", []):
        if address.get("type") == "InternalIP" and ":" not in address.get("address", ""):
            return str(address["address"])
    return None


def cni_config(pod_cidr: str) -> str:
    return json.dumps(
        {
            "cniVersion": "0.4.0",
            "name": "replicadb-kind",
            "plugins": [
                {
                    "type": "ptp",
                    "ipMasq": False,
                    "mtu": 1500,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": pod_cidr}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        },
        indent=2,
    )


def write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)  # atomic: the runtime never reads half a file
    return True


def reconcile(me: str, nodes: list[dict]) -> None:
    for node in nodes:
        name = node["metadata"]["name"]
        cidr = node.get("spec", {}).get("podCIDR")
        address = internal_ip(node)
        if not cidr or not address:
            continue
        if name == me:
            if write_if_changed(CNI_CONF, cni_config(cidr)):
                print(f"node {me}: pods get {cidr}; wrote {CNI_CONF}", flush=True)
            continue
        subprocess.run(["ip", "route", "replace", cidr, "via", address], check=True)


def main() -> int:
    me = os.environ["NODE_NAME"]
    base = api_base()
    context = ssl.create_default_context(cafile=str(ACCOUNT / "ca.crt"))
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")
    CNI_CONF.parent.mkdir(parents=True, exist_ok=True)
    print(f"node {me}: API server {base}", flush=True)
    while True:
        try:
            reconcile(me, list_nodes(base, context))
        except (OSError, ValueError, KeyError, subprocess.CalledProcessError) as exc:
            print(f"node {me}: {type(exc).__name__}: {exc}; retrying", file=sys.stderr, flush=True)
        time.sleep(PERIOD_S)


if __name__ == "__main__":
    sys.exit(main())
