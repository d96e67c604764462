# The PostgreSQL instance image: PostgreSQL 15, PgBouncer, a PgBouncer exporter and the
# replicadb package, whose `replicadb-instance` entrypoint decides at start whether to initdb,
# clone, restart or rejoin.
#
#   docker build -f operator/instance.Dockerfile -t localhost/replicadb/instance:dev .
#
# The base is a build argument: kind users take Debian's published image; the local cluster
# (e2e/cluster/images.sh) passes a base it made from Debian packages with debootstrap.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

# A fixed UID/GID for postgres (made before the package would pick one) so that pod security
# contexts and volume ownership can name it. No cluster is created at install time: the
# entrypoint owns PGDATA.
RUN groupadd --system --gid 999 postgres \
 && useradd --system --uid 999 --gid 999 --home-dir /var/lib/postgresql --shell /bin/bash postgres \
 && mkdir -p /etc/postgresql-common/createcluster.d \
 && echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/replicadb.conf \
 && apt-get update \
 && apt-get install -y --no-install-recommends \
      postgresql-15 postgresql-client-15 pgbouncer python3 python3-venv ca-certificates \
      python3-psycopg2 python3-prometheus-client python3-yaml python3-pythonjsonlogger \
 && rm -rf /var/lib/apt/lists/*

# The pooler pods' metrics sidecar: prometheus-pgbouncer-exporter (spreaker's, pgbouncer_*
# metric names) on port 9127. Debian's package of that name is another, older exporter whose
# SHOW STATS reader needs a column PgBouncer 1.8 removed, so it fails every scrape against
# Debian's PgBouncer 1.18. This one pins old releases of its dependencies that do not build
# here (psycopg2 2.8.5 from source): it runs on Debian's, installed above, seen through
# --system-site-packages.
ARG PGBOUNCER_EXPORTER_VERSION=2.1.2
RUN python3 -m venv --system-site-packages /opt/pgbouncer-exporter \
 && /opt/pgbouncer-exporter/bin/pip install --no-cache-dir --no-deps \
      "prometheus-pgbouncer-exporter==${PGBOUNCER_EXPORTER_VERSION}" \
 && /opt/pgbouncer-exporter/bin/python -c "import prometheus_pgbouncer_exporter.cli"

# Dependencies first, from the two pyproject.toml files alone, so that a source change reuses
# this layer: the operator's distribution (replicadb) and the client's (replicadb-router,
# router_lib/), which it depends on and which is installed from the source below, not PyPI.
COPY pyproject.toml /src/pyproject.toml
COPY router_lib/pyproject.toml /src/router_lib/pyproject.toml
RUN python3 -m venv /opt/replicadb \
 && python3 -c "import tomllib; print('\n'.join(d for f in ('/src/router_lib/pyproject.toml', '/src/pyproject.toml') for d in tomllib.load(open(f, 'rb'))['project']['dependencies'] if not d.startswith('replicadb-router')))" >/tmp/requirements.txt \
 && /opt/replicadb/bin/pip install --no-cache-dir -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

COPY README.md /src/README.md
COPY operator/replicadb_operator /src/operator/replicadb_operator
COPY router_lib /src/router_lib
RUN /opt/replicadb/bin/pip install --no-cache-dir --no-deps /src/router_lib /src && rm -rf /src

ENV PATH=/opt/replicadb/bin:/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data/pgdata
RUN install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data \
 && install -d -o postgres -g postgres -m 2775 /var/run/postgresql
USER 999:999
EXPOSE 5432 6432 9127
# What the kubelet sends to stop the container: postgres' fast shutdown (SIGTERM would be a
# smart one, which waits for every client to leave and so for the kill at the end of the
# grace period; a roll deletes pods), and the entrypoint's own exit before it execs postgres.
STOPSIGNAL SIGINT
ENTRYPOINT ["replicadb-instance"]
