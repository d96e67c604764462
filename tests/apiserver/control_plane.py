"""A real kube-apiserver and etcd on loopback, for tests below the cluster (no kubelet, no
controllers): what controller-runtime's envtest does, with the binaries the local cluster
builds (``make cluster-build``) and Debian's etcd.

Everything lives in one temporary directory and is gone after :meth:`ControlPlane.stop`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from kubernetes import client, config
from replicadb_operator import tls_material

K8S_VERSION = os.environ.get("K8S_VERSION", "v1.32.13")
CACHE = Path(os.environ.get("REPLICADB_CACHE", "/var/cache/replicadb"))
APISERVER = CACHE / f"k8s-{K8S_VERSION}" / "bin" / "kube-apiserver"
ETCD = Path(shutil.which("etcd") or "/usr/bin/etcd")


class ControlPlaneUnavailable(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


class ControlPlane:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="replicadb-apiserver-"))
        self.port = free_port()
        self.token = secrets.token_urlsafe(24)
        self.kubeconfig = self.dir / "admin.kubeconfig"
        self._processes: list[subprocess.Popen[bytes]] = []

    def _start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.dir / f"{name}.log").open("wb")
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        self._processes.append(process)
        return process

    def _pki(self) -> tuple[Path, Path, Path, Path, Path]:
        ca = tls_material.new_ca("replicadb-test-ca")
        server = tls_material.new_server_cert(ca, ["localhost"])
        sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        sa_key = sa.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        sa_pub = (
            sa.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        return (
            _write(self.dir / "ca.crt", ca.cert_pem),
            _write(self.dir / "server.crt", server.cert_pem),
            _write(self.dir / "server.key", server.key_pem),
            _write(self.dir / "sa.key", sa_key),
            _write(self.dir / "sa.pub", sa_pub),
        )

    def start(self, timeout_s: float = 60.0) -> None:
        if not APISERVER.exists():
            raise ControlPlaneUnavailable(f"{APISERVER} is missing: run `make cluster-build`")
        ca, cert, key, sa_key, sa_pub = self._pki()
        etcd_port, peer_port = free_port(), free_port()
        self._start(
            "etcd",
            [
                str(ETCD),
                "--data-dir", str(self.dir / "etcd"),
                "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
                "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
                "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
                "--initial-cluster", f"default=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync",
            ],
        )  # fmt: skip
        tokens = _write(self.dir / "tokens.csv", f"{self.token},admin,admin,system:masters\n")
        self._start(
            "kube-apiserver",
            [
                str(APISERVER),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.port}",
                f"--tls-cert-file={cert}",
                f"--tls-private-key-file={key}",
                f"--token-auth-file={tokens}",
                "--authorization-mode=AlwaysAllow",
                f"--service-account-key-file={sa_pub}",
                f"--service-account-signing-key-file={sa_key}",
                "--service-account-issuer=https://kubernetes.default.svc",
                "--service-cluster-ip-range=10.96.0.0/16",
                # No controllers run: nobody would create the default ServiceAccount.
                "--disable-admission-plugins=ServiceAccount",
                "--endpoint-reconciler-type=none",
                "--enable-priority-and-fairness=false",
            ],
        )
        _write(
            self.kubeconfig,
            f"""apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: https://localhost:{self.port}
    certificate-authority: {ca}
users:
- name: admin
  user:
    token: {self.token}
contexts:
- name: test
  context: {{cluster: test, user: admin}}
current-context: test
""",
        )
        self._wait_ready(timeout_s)

    def api(self) -> client.ApiClient:
        api: client.ApiClient = config.new_client_from_config(config_file=str(self.kubeconfig))
        return api

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        api = self.api()
        while True:
            for process in self._processes:
                if process.poll() is not None:
                    raise ControlPlaneUnavailable(f"{process.args!r} exited: see {self.dir}")
            try:
                # The CRD API and namespaces are served once bootstrap is done.
                client.CoreV1Api(api).read_namespace("default", _request_timeout=2)
                client.ApiextensionsV1Api(api).list_custom_resource_definition(_request_timeout=2)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        for process in reversed(self._processes):
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
