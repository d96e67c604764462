"""Smoke test of a cluster for replicadb: the instance image runs PostgreSQL in a pod, another
pod reaches it through a ClusterIP Service by its DNS name, and a StatefulSet's data lives on
a dynamically provisioned volume that outlives its pod.

PostgreSQL is started with a plain shell command here rather than the image's
``replicadb-instance`` entrypoint, which needs the operator's ReplicatedDatabase to decide
what to do; the operator's own e2e tests cover that path.
"""

from __future__ import annotations

import secrets

import pytest
from kubernetes import client

from e2e import kube

pytestmark = pytest.mark.e2e

PG_UID = 999  # the postgres user of the instance image
PGDATA = "/var/lib/postgresql/data/pgdata"

# initdb on first start, then exec postgres so that it receives the pod's signals.
START_POSTGRES = """
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  printf '%s\\n' "$POSTGRES_PASSWORD" >/tmp/pwfile
  initdb -D "$PGDATA" -U postgres --pwfile=/tmp/pwfile \\
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm /tmp/pwfile
  echo 'host all all 0.0.0.0/0 scram-sha-256' >>"$PGDATA/pg_hba.conf"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*'
"""


def password_secret(namespace: str, core: client.CoreV1Api) -> str:
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="postgres"),
            string_data={"password": secrets.token_urlsafe(18)},
        ),
    )
    return "postgres"


def password_env(secret: str, name: str) -> client.V1EnvVar:
    return client.V1EnvVar(
        name=name,
        value_from=client.V1EnvVarSource(
            secret_key_ref=client.V1SecretKeySelector(name=secret, key="password")
        ),
    )


def postgres_container(image: str, secret: str) -> client.V1Container:
    return client.V1Container(
        name="postgres",
        image=image,
        image_pull_policy="IfNotPresent",
        command=["/bin/sh", "-c", START_POSTGRES],
        env=[
            client.V1EnvVar(name="PGDATA", value=PGDATA),
            password_env(secret, "POSTGRES_PASSWORD"),
        ],
        ports=[client.V1ContainerPort(container_port=5432, name="postgres")],
        readiness_probe=client.V1Probe(
            _exec=client.V1ExecAction(command=["pg_isready", "-h", "127.0.0.1", "-U", "postgres"]),
            period_seconds=1,
        ),
        volume_mounts=[client.V1VolumeMount(name="data", mount_path="/var/lib/postgresql/data")],
    )


def pod_security() -> client.V1PodSecurityContext:
    return client.V1PodSecurityContext(
        run_as_user=PG_UID, run_as_group=PG_UID, run_as_non_root=True
    )


def test_postgres_reachable_through_service_dns(
    api_client: client.ApiClient, namespace: str, instance_image: str
) -> None:
    core = client.CoreV1Api(api_client)
    secret = password_secret(namespace, core)
    labels = {"app": "pg"}
    core.create_namespaced_pod(
        namespace,
        client.V1Pod(
            metadata=client.V1ObjectMeta(name="pg", labels=labels),
            spec=client.V1PodSpec(
                security_context=pod_security(),
                termination_grace_period_seconds=5,
                containers=[postgres_container(instance_image, secret)],
                volumes=[client.V1Volume(name="data", empty_dir=client.V1EmptyDirVolumeSource())],
            ),
        ),
    )
    service = core.create_namespaced_service(
        namespace,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="pg"),
            spec=client.V1ServiceSpec(
                type="ClusterIP",
                selector=labels,
                ports=[client.V1ServicePort(port=5432, target_port="postgres", name="postgres")],
            ),
        ),
    )
    kube.wait_pod_ready(core, namespace, "pg")

    # The image carries the real entrypoint even though this test starts postgres itself.
    assert kube.exec_in_pod(core, namespace, "pg", ["sh", "-c", "command -v replicadb-instance"])

    host = f"pg.{namespace}.svc.cluster.local"
    query = "select 'smoke:' || current_setting('server_version_num')"
    script = f"""
    getent hosts {host}
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
      psql "host={host} user=postgres dbname=postgres connect_timeout=3" -Atc "{query}" && exit 0
      sleep 1
    done
    exit 1
    """
    core.create_namespaced_pod(
        namespace,
        client.V1Pod(
            metadata=client.V1ObjectMeta(name="client"),
            spec=client.V1PodSpec(
                restart_policy="Never",
                security_context=pod_security(),
                containers=[
                    client.V1Container(
                        name="psql",
                        image=instance_image,
                        image_pull_policy="IfNotPresent",
                        command=["/bin/sh", "-c", script],
                        env=[password_env(secret, "PGPASSWORD")],
                    )
                ],
            ),
        ),
    )
    phase = kube.wait_pod_finished(core, namespace, "client")
    logs = core.read_namespaced_pod_log("client", namespace)
    assert phase == "Succeeded", f"{logs}\n{kube.describe_pod(core, namespace, 'client')}"
    assert service.spec is not None
    resolved = logs.split()[0]
    assert resolved == service.spec.cluster_ip, f"{host} resolved to {resolved}: {logs}"
    assert "smoke:15" in logs


def test_statefulset_volume_survives_pod_restart(
    api_client: client.ApiClient, namespace: str, instance_image: str
) -> None:
    core = client.CoreV1Api(api_client)
    apps = client.AppsV1Api(api_client)
    secret = password_secret(namespace, core)
    labels = {"app": "pgdata"}
    core.create_namespaced_service(
        namespace,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="pgdata"),
            spec=client.V1ServiceSpec(
                cluster_ip="None",
                selector=labels,
                ports=[client.V1ServicePort(port=5432, name="postgres")],
            ),
        ),
    )
    apps.create_namespaced_stateful_set(
        namespace,
        client.V1StatefulSet(
            metadata=client.V1ObjectMeta(name="pgdata"),
            spec=client.V1StatefulSetSpec(
                service_name="pgdata",
                replicas=1,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(
                        security_context=pod_security(),
                        termination_grace_period_seconds=10,
                        containers=[postgres_container(instance_image, secret)],
                    ),
                ),
                # No storage class named: the cluster's default class provisions the volume.
                volume_claim_templates=[
                    client.V1PersistentVolumeClaim(
                        metadata=client.V1ObjectMeta(name="data"),
                        spec=client.V1PersistentVolumeClaimSpec(
                            access_modes=["ReadWriteOnce"],
                            resources=client.V1VolumeResourceRequirements(
                                requests={"storage": "64Mi"}
                            ),
                        ),
                    )
                ],
            ),
        ),
    )
    pod = "pgdata-0"
    kube.wait_pod_ready(core, namespace, pod, timeout=180)
    phase, storage_class = kube.claim(core, namespace, "data-pgdata-0")
    assert phase == "Bound"
    assert storage_class, "the default StorageClass was not applied"

    psql = ["psql", "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-Atc"]
    kube.exec_in_pod(
        core,
        namespace,
        pod,
        [*psql, "create table smoke (note text); insert into smoke values ('before restart')"],
    )
    first_uid = kube.pod_uid(core, namespace, pod)

    core.delete_namespaced_pod(pod, namespace)
    kube.wait_for(
        lambda: (
            kube.pod_ready(core, namespace, pod) and kube.pod_uid(core, namespace, pod) != first_uid
        ),
        180,
        f"{pod} recreated and Ready",
    )

    rows = kube.exec_in_pod(core, namespace, pod, [*psql, "select note from smoke"])
    assert rows.strip() == "before restart"
    assert kube.claim(core, namespace, "data-pgdata-0")[0] == "Bound"
