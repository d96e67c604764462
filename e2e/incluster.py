"""Clients that run inside the cluster, so that tests never dial a pod or Service address from
the machine running pytest (a kind user's host cannot reach them).

- :class:`ClientPod`: a long-lived pod with the instance image (psql, Python, router_lib);
  SQL runs there through ``exec`` (the Kubernetes API), against Service names or pod
  addresses, which are reachable from inside the cluster.
- :func:`run_script`: a pod that runs one of the scripts in ``e2e/in_cluster/`` with
  router_lib, under a service account that may read the ReplicatedDatabase and its pods; the
  test talks to it through files it reads and writes with ``exec``.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from e2e import kube

SCRIPTS = Path(__file__).parent / "in_cluster"
PG_UID = 999  # the postgres user of the instance image
VENV_PYTHON = "/opt/replicadb/bin/python"


def _pod_security() -> client.V1PodSecurityContext:
    return client.V1PodSecurityContext(
        run_as_user=PG_UID, run_as_group=PG_UID, run_as_non_root=True
    )


class ClientPod:
    """psql inside the cluster. ``query`` returns psql's unaligned output (``a|b`` rows)."""

    def __init__(
        self, api: client.ApiClient, namespace: str, image: str, node: str | None = None
    ) -> None:
        self.core = client.CoreV1Api(api)
        self.namespace = namespace
        self.name = f"e2e-client-{uuid.uuid4().hex[:6]}"
        self.core.create_namespaced_pod(
            namespace,
            client.V1Pod(
                metadata=client.V1ObjectMeta(name=self.name, labels={"app": "e2e-client"}),
                spec=client.V1PodSpec(
                    node_name=node,  # None: wherever the scheduler puts it
                    security_context=_pod_security(),
                    termination_grace_period_seconds=0,
                    containers=[
                        client.V1Container(
                            name="client",
                            image=image,
                            image_pull_policy="IfNotPresent",
                            command=["sleep", "infinity"],
                        )
                    ],
                ),
            ),
        )
        kube.wait_for(
            lambda: kube.pod_phase(self.core, namespace, self.name) == "Running",
            180,
            f"client pod {self.name} running",
        )

    def query(
        self,
        sql: str,
        host: str,
        password: str,
        *,
        user: str = "postgres",
        dbname: str = "postgres",
        port: int = 5432,
        timeout: int = 5,
    ) -> str:
        dsn = f"host={host} port={port} user={user} dbname={dbname} connect_timeout={timeout}"
        command = [
            "env",
            f"PGPASSWORD={password}",
            "psql",
            dsn,
            "-AtX",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ]
        return kube.exec_in_pod(self.core, self.namespace, self.name, command).strip()

    def try_query(self, sql: str, host: str, password: str, **params: Any) -> str | None:
        """The output, or None when the server cannot be reached or refuses the query."""
        try:
            return self.query(sql, host, password, **params)
        except RuntimeError:
            return None

    def eventually(
        self, sql: str, expected: str, timeout: float, host: str, password: str, **params: Any
    ) -> None:
        last: str | None = None

        def matches() -> bool:
            nonlocal last
            last = self.try_query(sql, host, password, **params)
            return last == expected

        try:
            kube.wait_for(matches, timeout, f"{sql!r} on {host} to give {expected!r}", 0.5)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; last answer {last!r}") from None

    def delete(self) -> None:
        with contextlib.suppress(ApiException):
            self.core.delete_namespaced_pod(self.name, self.namespace, grace_period_seconds=0)


@contextlib.contextmanager
def client_pod(api: client.ApiClient, namespace: str, image: str) -> Iterator[ClientPod]:
    pod = ClientPod(api, namespace, image)
    try:
        yield pod
    finally:
        pod.delete()


def _reader_account(api: client.ApiClient, namespace: str, name: str) -> None:
    """A service account that may read ReplicatedDatabases and pods in the namespace (what
    router_lib's endpoint watch and the scripts' samplers need)."""
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    with contextlib.suppress(ApiException):
        core.create_namespaced_service_account(
            namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
        )
        rbac.create_namespaced_role(
            namespace,
            client.V1Role(
                metadata=client.V1ObjectMeta(name=name),
                rules=[
                    client.V1PolicyRule(
                        api_groups=["replicadb.io"],
                        resources=["replicateddatabases"],
                        verbs=["get", "list", "watch"],
                    ),
                    client.V1PolicyRule(
                        api_groups=[""], resources=["pods"], verbs=["get", "list", "watch"]
                    ),
                ],
            ),
        )
        rbac.create_namespaced_role_binding(
            namespace,
            client.V1RoleBinding(
                metadata=client.V1ObjectMeta(name=name),
                role_ref=client.V1RoleRef(
                    api_group="rbac.authorization.k8s.io", kind="Role", name=name
                ),
                subjects=[
                    client.RbacV1Subject(kind="ServiceAccount", name=name, namespace=namespace)
                ],
            ),
        )


def _avoiding(node: str | None) -> client.V1Affinity | None:
    if node is None:
        return None
    term = client.V1NodeSelectorTerm(
        match_expressions=[
            client.V1NodeSelectorRequirement(
                key="kubernetes.io/hostname", operator="NotIn", values=[node]
            )
        ]
    )
    return client.V1Affinity(
        node_affinity=client.V1NodeAffinity(
            required_during_scheduling_ignored_during_execution=client.V1NodeSelector(
                node_selector_terms=[term]
            )
        )
    )


class ScriptPod:
    """A pod running ``e2e/in_cluster/<script>`` with the given environment."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        image: str,
        script: str,
        env: dict[str, str],
        secret_env: dict[str, tuple[str, str]] | None = None,
        node: str | None = None,
        avoid_node: str | None = None,
    ) -> None:
        """``node``: run there; ``avoid_node``: anywhere but there (a node about to fail)."""
        self.core = client.CoreV1Api(api)
        self.namespace = namespace
        stem = script.removesuffix(".py").replace("_", "-")
        self.name = f"e2e-{stem}-{uuid.uuid4().hex[:6]}"
        _reader_account(api, namespace, "e2e-reader")
        self.core.create_namespaced_config_map(
            namespace,
            client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name=self.name),
                data={script: (SCRIPTS / script).read_text()},
            ),
        )
        variables = [client.V1EnvVar(name=k, value=v) for k, v in env.items()]
        for var, (secret, key) in (secret_env or {}).items():
            variables.append(
                client.V1EnvVar(
                    name=var,
                    value_from=client.V1EnvVarSource(
                        secret_key_ref=client.V1SecretKeySelector(name=secret, key=key)
                    ),
                )
            )
        self.core.create_namespaced_pod(
            namespace,
            client.V1Pod(
                metadata=client.V1ObjectMeta(name=self.name, labels={"app": "e2e-script"}),
                spec=client.V1PodSpec(
                    node_name=node,
                    affinity=_avoiding(avoid_node),
                    restart_policy="Never",
                    service_account_name="e2e-reader",
                    security_context=_pod_security(),
                    termination_grace_period_seconds=0,
                    containers=[
                        client.V1Container(
                            name="script",
                            image=image,
                            image_pull_policy="IfNotPresent",
                            command=[VENV_PYTHON, "-u", f"/scripts/{script}"],
                            env=variables,
                            volume_mounts=[
                                client.V1VolumeMount(name="scripts", mount_path="/scripts")
                            ],
                        )
                    ],
                    volumes=[
                        client.V1Volume(
                            name="scripts",
                            config_map=client.V1ConfigMapVolumeSource(name=self.name),
                        )
                    ],
                ),
            ),
        )

    def read_json(self, path: str) -> dict[str, Any] | None:
        """A JSON file the script writes, or None while it does not exist yet."""
        if kube.pod_phase(self.core, self.namespace, self.name) != "Running":
            return None
        try:
            text = kube.exec_in_pod(
                self.core,
                self.namespace,
                self.name,
                ["sh", "-c", f"cat {shlex.quote(path)} 2>/dev/null || true"],
            )
        except (RuntimeError, ApiException, ValueError):
            return None  # ValueError: the client's reading of "container not found"
        text = text.strip()
        return json.loads(text) if text else None

    def touch(self, path: str) -> None:
        kube.exec_in_pod(self.core, self.namespace, self.name, ["touch", path])

    def wait_json(self, path: str, timeout: float, what: str) -> dict[str, Any]:
        found: dict[str, Any] | None = None

        def written() -> bool:
            nonlocal found
            if kube.pod_phase(self.core, self.namespace, self.name) == "Failed":
                raise RuntimeError(f"{self.name} failed:\n{self.logs()}")
            found = self.read_json(path)
            return found is not None

        kube.wait_for(written, timeout, what, interval=0.5)
        assert found is not None
        return found

    def wait_running(self, timeout: float = 180) -> None:
        kube.wait_for(
            lambda: kube.pod_phase(self.core, self.namespace, self.name) == "Running",
            timeout,
            f"{self.name} running",
        )

    def logs(self) -> str:
        try:
            return str(self.core.read_namespaced_pod_log(self.name, self.namespace))
        except ApiException as exc:
            return f"(no log: {exc.reason})"

    def delete(self) -> None:
        with contextlib.suppress(ApiException):
            self.core.delete_namespaced_pod(self.name, self.namespace, grace_period_seconds=0)
        with contextlib.suppress(ApiException):
            self.core.delete_namespaced_config_map(self.name, self.namespace)


def wall_clock() -> float:
    """The clock shared with scripts in pods (same machine, so the same wall clock)."""
    return time.time()
