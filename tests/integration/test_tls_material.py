"""The operator's generated CA and server certificate, served by a real PostgreSQL and
verified by libpq with sslmode=verify-full under the Service's DNS name."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from replicadb_operator import tls_material
from replicadb_operator.builders.tls import server_dns_names
from replicadb_operator.local.topology import LocalTopology
from replicadb_operator.spec import parse_spec

from tests.conftest import TopologyFactory

pytestmark = pytest.mark.postgres

DB = parse_spec("shop", "prod", {"tls": {"enabled": True}})


def install_certificates(topology: LocalTopology, server: tls_material.KeyPair) -> None:
    inst = topology.instances[topology.primary]
    for name, text in (("server.crt", server.cert_pem), ("server.key", server.key_pem)):
        path = inst.datadir / name
        path.write_text(text)
        if topology.run_as is not None:
            topology.run_as.chown(path)
        path.chmod(0o600)


def test_generated_certificate_passes_verify_full(make_topology: TopologyFactory) -> None:
    ca = tls_material.new_ca("shop replicadb CA")
    server = tls_material.new_server_cert(ca, server_dns_names(DB))
    topology = make_topology(replicas=0)
    install_certificates(topology, server)
    topology.stop_instance(topology.primary)
    (topology.instances[topology.primary].datadir / "postgresql.auto.conf").open("a").write(
        "ssl = 'on'\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
    )
    topology.start_instance(topology.primary)

    ca_file = topology.base / "ca.crt"
    ca_file.write_text(ca.cert_pem)
    host = topology.instances[topology.primary].host
    params = make_conninfo(
        "",
        hostaddr=host,
        user="postgres",
        password=topology.password,
        dbname="postgres",
        sslrootcert=str(ca_file),
        sslmode="verify-full",
    )
    with psycopg.connect(make_conninfo(params, host="shop-rw.prod.svc")) as conn:
        assert conn.execute(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        ).fetchone() == (True,)
    with pytest.raises(psycopg.OperationalError, match="does not match"):
        psycopg.connect(make_conninfo(params, host="elsewhere.example"))
