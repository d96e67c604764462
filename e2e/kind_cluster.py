"""The kind cluster of ``make e2e-kind``: bring-up, the e2e run, tear-down.

    python -m e2e.kind_cluster up       cluster up (and images loaded); prints the kubeconfig
    python -m e2e.kind_cluster e2e ARGS up, ``pytest e2e -m e2e ARGS``, down (also on failure);
                                        writes .bench/e2e_kind.json
    python -m e2e.kind_cluster run CMD  up, CMD with the cluster's environment (a benchmark), down
    python -m e2e.kind_cluster down     delete the cluster and what the provider left behind

The provider is Docker when a Docker daemon answers, podman otherwise (KIND_EXPERIMENTAL_PROVIDER
chooses explicitly). With Docker the stock ``kindest/node`` image is used and the replicadb
images are built with ``docker build``: nothing else here is needed. With podman (this machine,
no registry) e2e/cluster/kind-image.sh builds the node image and the replicadb images first,
and podman runs as root with its own configuration (e2e/kind/podman-*.conf), its own network
and an image store in the cache; tear-down removes the containers, the network, its bridge,
the CNI iptables chains podman made for it, and any mount a killed run left.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).parents[1]
KIND_DIR = ROOT / "e2e" / "kind"
CACHE = Path(os.environ.get("REPLICADB_CACHE", "/var/cache/replicadb"))
STATE = Path(os.environ.get("REPLICADB_KIND_STATE", "/var/lib/replicadb-kind"))
RUNROOT = Path("/run/replicadb-kind")
CLUSTER = os.environ.get("KIND_CLUSTER", "replicadb")
KIND_VERSION = os.environ.get("KIND_VERSION", "v0.30.0")
# kind v0.30.0's published image for Kubernetes 1.32 (its release notes list it with digest).
STOCK_NODE_IMAGE = "kindest/node:v1.32.8"
PODMAN_NETWORK = "replicadb-kind"
# The nodes' own network: away from the local cluster's 10.244.0.0/16 and 10.96.0.0/16 and
# from the kind pod and Service ranges in e2e/kind/cluster.yaml.
PODMAN_SUBNET = "10.250.0.0/24"
ZONES = int(os.environ.get("REPLICADB_KIND_ZONES", "3"))
INSTANCE_IMAGE = os.environ.get("REPLICADB_INSTANCE_IMAGE", "localhost/replicadb/instance:dev")
OPERATOR_IMAGE = os.environ.get("REPLICADB_OPERATOR_IMAGE", "localhost/replicadb/operator:dev")
# The instance image under a second tag: a rolling update's "new image" (a tag, not a copy).
INSTANCE_NEXT_IMAGE = os.environ.get(
    "REPLICADB_INSTANCE_NEXT_IMAGE", "localhost/replicadb/instance:dev-next"
)
KUBECONFIG = STATE / "kubeconfig"
REPORT = ROOT / ".bench" / "e2e_kind.json"


def step(text: str) -> None:
    print(f"==> [{time.strftime('%H:%M:%S')}] {text}", flush=True)


@dataclass(frozen=True)
class Provider:
    """The container engine kind drives, with the environment it needs."""

    name: str  # "docker" or "podman"
    env: dict[str, str]

    def run(self, *args: str, check: bool = True, quiet: bool = False) -> str:
        result = subprocess.run(
            [self.name, *args], env=self.env, capture_output=True, text=True, check=False
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{self.name} {' '.join(args)}: {result.stderr.strip()}")
        if not quiet and result.returncode != 0:
            step(f"{self.name} {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout


def render(template: Path, **values: str) -> str:
    text = template.read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    return text


def detect_provider() -> Provider:
    env = dict(os.environ)
    chosen = env.get("KIND_EXPERIMENTAL_PROVIDER")
    if chosen is None:
        docker_up = shutil.which("docker") and (
            subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0
        )
        chosen = "docker" if docker_up else "podman"
    if chosen != "podman":
        return Provider("docker", env)
    STATE.mkdir(parents=True, exist_ok=True)
    networks = STATE / "podman-networks"
    networks.mkdir(exist_ok=True)
    containers_conf = STATE / "containers.conf"
    containers_conf.write_text(
        render(KIND_DIR / "podman-containers.conf", NETWORK_DIR=str(networks))
    )
    env.update(
        KIND_EXPERIMENTAL_PROVIDER="podman",
        KIND_EXPERIMENTAL_PODMAN_NETWORK=PODMAN_NETWORK,
        CONTAINERS_CONF=str(containers_conf),
        CONTAINERS_STORAGE_CONF=str(CACHE / "kind" / "storage.conf"),
    )
    return Provider("podman", env)


def kind_binary() -> str:
    """KIND, or kind on PATH, or the one built here (kind-image.sh; or below, with Go)."""
    found = os.environ.get("KIND") or shutil.which("kind")
    if found:
        return found
    built = CACHE / f"kind-{KIND_VERSION}" / "bin" / "kind"
    if not built.exists() and os.access(CACHE.parent, os.W_OK):
        step(f"kind {KIND_VERSION}: not on PATH, building it with Go into {built.parent}")
        built.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["go", "install", f"sigs.k8s.io/kind@{KIND_VERSION}"],
            env=dict(os.environ, GOBIN=str(built.parent), CGO_ENABLED="0", GOFLAGS="-mod=mod"),
            check=True,
        )
    return str(built)


def kind(provider: Provider, *args: str) -> None:
    subprocess.run([kind_binary(), *args], env=provider.env, check=True)


def cluster_exists(provider: Provider) -> bool:
    binary = kind_binary()
    if not Path(binary).exists() and not shutil.which(binary):
        return False
    out = subprocess.run(
        [binary, "get", "clusters"], env=provider.env, capture_output=True, text=True, check=False
    ).stdout
    return CLUSTER in out.split()


def kind_config() -> Path:
    workers = "".join(
        render(KIND_DIR / "worker.yaml", ZONE=f"zone-{chr(ord('a') + i)}") for i in range(ZONES)
    )
    text = render(
        KIND_DIR / "cluster.yaml",
        WORKERS=workers.rstrip("\n"),
        NODE_MONITOR_PERIOD=os.environ.get("REPLICADB_KIND_NODE_MONITOR_PERIOD", "5s"),
        NODE_MONITOR_GRACE_PERIOD=os.environ.get("REPLICADB_KIND_NODE_MONITOR_GRACE_PERIOD", "40s"),
    )
    STATE.mkdir(parents=True, exist_ok=True)
    path = STATE / "cluster.yaml"
    path.write_text(text)
    return path


def prepare_images(provider: Provider) -> tuple[str, list[Path]]:
    """(node image, image archives to load). Docker: stock node image, images built with
    docker build. Podman: everything built here, from caches when their inputs are unchanged."""
    if provider.name == "docker":
        for dockerfile, ref in (
            ("operator/instance.Dockerfile", INSTANCE_IMAGE),
            ("operator/Dockerfile", OPERATOR_IMAGE),
        ):
            step(f"docker build {ref}")
            subprocess.run(
                ["docker", "build", "-f", dockerfile, "-t", ref, "."], cwd=ROOT, check=True
            )
        subprocess.run(["docker", "tag", INSTANCE_IMAGE, INSTANCE_NEXT_IMAGE], check=True)
        STATE.mkdir(parents=True, exist_ok=True)
        archive = STATE / "images.tar"
        subprocess.run(
            ["docker", "save", "-o", str(archive), INSTANCE_IMAGE, INSTANCE_NEXT_IMAGE,
             OPERATOR_IMAGE],
            check=True,
        )  # fmt: skip
        return os.environ.get("KIND_NODE_IMAGE", STOCK_NODE_IMAGE), [archive]
    step("images and the kind node image (e2e/cluster/kind-image.sh; cached by inputs)")
    subprocess.run([str(ROOT / "e2e" / "cluster" / "kind-image.sh")], check=True)
    node_image = (CACHE / "kind" / "node-image").read_text().strip()
    built = dict(
        line.split("=", 1) for line in (CACHE / "images" / "built.list").read_text().splitlines()
    )
    return node_image, [Path(built[INSTANCE_IMAGE]), Path(built[OPERATOR_IMAGE])]


def ensure_modules_dir() -> None:
    """kind's podman provider mounts the host's /lib/modules into every node, and podman
    refuses a missing source; this machine's kernel has none. An empty folder made here is
    recorded and removed again by tear-down."""
    modules = Path("/lib/modules")
    if not modules.exists():
        modules.mkdir()
        (STATE / "made-lib-modules").touch()


def ensure_podman_network(provider: Provider) -> None:
    names = provider.run("network", "ls", "--format", "{{.Name}}").split()
    if PODMAN_NETWORK not in names:
        provider.run("network", "create", "--subnet", PODMAN_SUBNET, PODMAN_NETWORK)


def up() -> Provider:
    started = time.monotonic()
    provider = detect_provider()
    step(f"kind cluster {CLUSTER!r} with {provider.name}, 1 control plane + {ZONES} workers")
    node_image, archives = prepare_images(provider)
    if cluster_exists(provider):
        step(f"kind cluster {CLUSTER!r} exists: deleting it first")
        down(provider)
    if provider.name == "podman":
        remember_host_network()
        ensure_podman_network(provider)
        ensure_modules_dir()
    config = kind_config()
    create_started = time.monotonic()
    try:
        kind(
            provider,
            "create", "cluster", "--name", CLUSTER, "--image", node_image,
            "--config", str(config), "--kubeconfig", str(KUBECONFIG), "--wait", "300s",
        )  # fmt: skip
        step(f"cluster created in {time.monotonic() - create_started:.0f} s")
        if provider.name == "podman":
            use_node_address(provider)
        for archive in archives:
            step(f"kind load image-archive {archive.name}")
            kind(provider, "load", "image-archive", "--name", CLUSTER, str(archive))
        if provider.name == "podman":
            tag_next_instance_image(provider)
        wait_ready()
    except BaseException:
        if os.environ.get("REPLICADB_KIND_KEEP") != "1":  # 1: keep a failed cluster to look at
            down(provider)
        raise
    step(f"kind cluster up in {time.monotonic() - started:.0f} s; KUBECONFIG={KUBECONFIG}")
    return provider


def tag_next_instance_image(provider: Provider) -> None:
    """The instance image under its second tag in every node's containerd: metadata only,
    no layer is copied. (Docker's archive carries both tags already.)"""
    nodes = subprocess.run(
        [kind_binary(), "get", "nodes", "--name", CLUSTER],
        env=provider.env, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    step(f"tagging {INSTANCE_IMAGE} as {INSTANCE_NEXT_IMAGE} on {len(nodes)} nodes")
    for node in nodes:
        provider.run(
            "exec", node, "ctr", "--namespace", "k8s.io", "images", "tag", "--force",
            INSTANCE_IMAGE, INSTANCE_NEXT_IMAGE,
        )  # fmt: skip


def use_node_address(provider: Provider) -> None:
    """Points the kubeconfig at the control-plane node's address on the podman network
    (in the API server's certificate) instead of kind's port published on 127.0.0.1. The
    published port rests on iptables chains of podman's (CNI-HOSTPORT-*) that any other
    tool cleaning CNI-* chains removes, as the local cluster's tear-down does; the bridge
    route from this machine to its own container network does not."""
    address = provider.run(
        "inspect",
        "--format",
        f'{{{{(index .NetworkSettings.Networks "{PODMAN_NETWORK}").IPAddress}}}}',
        f"{CLUSTER}-control-plane",
    ).strip()
    text = KUBECONFIG.read_text()
    server = next(line for line in text.splitlines() if line.strip().startswith("server:"))
    KUBECONFIG.write_text(text.replace(server, f"    server: https://{address}:6443"))


def wait_ready(timeout_s: float = 300) -> None:
    """Every node Ready, the default StorageClass there, CoreDNS serving: what tests assume."""
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(KUBECONFIG))
    core, storage, apps = client.CoreV1Api(api), client.StorageV1Api(api), client.AppsV1Api(api)

    def missing() -> list[str]:
        out = []
        for node in core.list_node(_request_timeout=10).items:
            ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)
            if not ready:
                out.append(f"node {node.metadata.name} Ready")
        classes = storage.list_storage_class(_request_timeout=10).items
        if not any(
            (c.metadata.annotations or {}).get("storageclass.kubernetes.io/is-default-class")
            == "true"
            for c in classes
        ):
            out.append("a default StorageClass")
        dns = apps.read_namespaced_deployment("coredns", "kube-system", _request_timeout=10).status
        if not dns.ready_replicas:
            out.append("CoreDNS ready")
        return out

    deadline = time.monotonic() + timeout_s
    shown = None
    while waiting := missing():
        if time.monotonic() > deadline:
            raise TimeoutError(f"kind cluster not ready after {timeout_s:.0f} s: {waiting}")
        if waiting != shown:
            step(f"waiting for {', '.join(waiting)}")
            shown = waiting
        time.sleep(2)


def down(provider: Provider | None = None) -> None:
    provider = provider or detect_provider()
    started = time.monotonic()
    if cluster_exists(provider):
        step(f"kind delete cluster {CLUSTER!r}")
        kind(provider, "delete", "cluster", "--name", CLUSTER, "--kubeconfig", str(KUBECONFIG))
    if provider.name == "podman":
        clean_podman(provider)
    shutil.rmtree(STATE, ignore_errors=True)
    step(f"kind cluster down in {time.monotonic() - started:.0f} s")


def clean_podman(provider: Provider) -> None:
    """What podman leaves on the machine after its containers are gone."""
    for name in provider.run(
        "ps", "-aq", "--filter", f"label=io.x-k8s.kind.cluster={CLUSTER}"
    ).split():
        provider.run("rm", "-f", "-v", name, quiet=True, check=False)
    if (
        PODMAN_NETWORK
        in provider.run("network", "ls", "--format", "{{.Name}}", check=False).split()
    ):
        provider.run("network", "rm", "-f", PODMAN_NETWORK, check=False)
    provider.run("volume", "prune", "-f", check=False, quiet=True)
    # Mounts of the image store left by a killed run, then podman's run-time state.
    mounts = [
        line.split()[1]
        for line in Path("/proc/self/mounts").read_text().splitlines()
        if str(CACHE / "kind" / "storage") in line.split()[1] or str(RUNROOT) in line.split()[1]
    ]
    for target in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", target], check=False)
    shutil.rmtree(RUNROOT, ignore_errors=True)
    remove_podman_network_leftovers()
    if (STATE / "made-lib-modules").exists():
        with contextlib.suppress(OSError):
            Path("/lib/modules").rmdir()


IPTABLES_TABLES = ("nat", "filter")


def iptables(table: str, *args: str, check: bool = False) -> str:
    return subprocess.run(
        ["iptables", "-w", "-t", table, *args], capture_output=True, text=True, check=check
    ).stdout


def cni_chains() -> dict[str, set[str]]:
    """The CNI-* chains on the machine, per table (podman's CNI plugins make them: one per
    container for masquerading, and the shared firewall and portmap chains)."""
    return {
        table: {
            line.split()[1]
            for line in iptables(table, "-S").splitlines()
            if line.startswith("-N CNI-")
        }
        for table in IPTABLES_TABLES
    }


def podman_bridges() -> set[str]:
    return {
        link.name for link in Path("/sys/class/net").iterdir() if link.name.startswith("cni-podman")
    }


def remember_host_network() -> None:
    """Before bring-up: which CNI-* chains and cni-podman* bridges were there already (the
    local cluster's, another podman user's), so that tear-down removes only what this
    cluster's podman added."""
    STATE.mkdir(parents=True, exist_ok=True)
    before = {
        "chains": {t: sorted(c) for t, c in cni_chains().items()},
        "bridges": sorted(podman_bridges()),
    }
    (STATE / "host-network-before.json").write_text(json.dumps(before))


def remove_podman_network_leftovers() -> None:
    """Bridges and iptables rules podman's CNI network left, judged against what was there
    before bring-up: new cni-podman* bridges, new CNI-* chains and the rules that jump to
    them, and rules naming a new or vanished bridge (dnsname's, letting nodes ask its dnsmasq
    for names)."""
    before_file = STATE / "host-network-before.json"
    if not before_file.exists():
        return  # nothing recorded: nothing is known to be ours
    before = json.loads(before_file.read_text())
    present = podman_bridges()
    bridges = present - set(before["bridges"])
    for table, chains in cni_chains().items():
        ours = chains - set(before["chains"].get(table, []))
        for rule in iptables(table, "-S").splitlines():
            words = shlex.split(rule)
            if words[:1] != ["-A"] or words[1] in ours:
                continue
            jumps_to_ours = "-j" in words and words[words.index("-j") + 1] in ours
            # A rule naming a bridge that is ours, or already gone with its network, is dead.
            dead = any(w.startswith("cni-podman") and w not in present for w in words)
            if jumps_to_ours or bridges.intersection(words) or dead:
                iptables(table, "-D", *words[1:])
        for chain in ours:
            iptables(table, "-F", chain)
        for chain in ours:
            iptables(table, "-X", chain)
    for bridge in sorted(bridges):
        subprocess.run(["ip", "link", "delete", bridge], check=False)


def count_nodes() -> int:
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(KUBECONFIG))
    return len(client.CoreV1Api(api).list_node(_request_timeout=10).items)


def junit_counts(path: Path) -> dict[str, int]:
    suite = ET.parse(path).getroot()
    if suite.tag == "testsuites":
        suite = suite[0]
    total, failures = int(suite.get("tests", 0)), int(suite.get("failures", 0))
    errors, skipped = int(suite.get("errors", 0)), int(suite.get("skipped", 0))
    return {
        "passed": total - failures - errors - skipped,
        "failed": failures + errors,
        "skipped": skipped,
    }


def _env(provider: Provider) -> dict[str, str]:
    """What a test or benchmark needs to use the cluster and fault its nodes."""
    return dict(
        provider.env,
        KUBECONFIG=str(KUBECONFIG),
        REPLICADB_E2E_PROVIDER=provider.name,
        REPLICADB_E2E_KIND_CLUSTER=CLUSTER,
    )


def run(command: list[str]) -> int:
    """Up, ``command`` against the cluster (a benchmark), down (also on failure)."""
    provider = up()
    try:
        return subprocess.run(command, cwd=ROOT, env=_env(provider), check=False).returncode
    finally:
        down(provider)


def e2e(pytest_args: list[str]) -> int:
    started = time.monotonic()
    provider = up()
    nodes = count_nodes()
    junit = STATE / "junit.xml"
    rc = 1
    try:
        env = _env(provider)
        tests_started = time.monotonic()
        rc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "e2e",
                "-m",
                "e2e",
                f"--junitxml={junit}",
                *pytest_args,
            ],
            cwd=ROOT,
            env=env,
            check=False,
        ).returncode
        step(f"e2e tests took {time.monotonic() - tests_started:.0f} s")
        counts = junit_counts(junit) if junit.exists() else {"passed": 0, "failed": 1, "skipped": 0}
    finally:
        down(provider)
    REPORT.parent.mkdir(exist_ok=True)
    report = {
        "provider": provider.name,
        "nodes": nodes,
        **counts,
        "seconds": round(time.monotonic() - started),
    }
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    step(f"{REPORT.relative_to(ROOT)}: {report}")
    return rc


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "e2e"
    if command == "up":
        up()
        print(KUBECONFIG)
        return 0
    if command == "down":
        down()
        return 0
    if command == "e2e":
        return e2e(argv[1:])
    if command == "run" and argv[1:]:
        return run(argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
