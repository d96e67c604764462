"""A small application using router_lib, run in a pod by e2e/test_observability.py.

It is configured the way an application is (REPLICADB_* variables, the app Secret mounted as
a file) and serves router_lib's metrics from prometheus_client's default registry on
:9100, where the replicadb-router ServiceMonitor finds them. The instance image carries
router_lib and prometheus-client, so the test mounts this file into a pod of that image.
"""

from __future__ import annotations

import logging
import time

import prometheus_client
import psycopg

import router_lib

PERIOD_S = 0.2  # 5 writes and 5 reads a second: enough WAL to make a paused replica lag


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    prometheus_client.start_http_server(9100)
    while True:  # the pod is deleted with the test's namespace
        try:
            router_lib.execute("CREATE TABLE IF NOT EXISTS obs_ticks (id bigserial PRIMARY KEY)")
            break
        except psycopg.Error as exc:
            logging.warning("waiting for the primary: %s", exc)
            time.sleep(1)
    while True:
        try:
            router_lib.execute("INSERT INTO obs_ticks DEFAULT VALUES")
            router_lib.query("SELECT max(id) FROM obs_ticks", consistency=router_lib.EVENTUAL)
        except psycopg.Error as exc:  # a failover: the router finds the new primary
            logging.warning("%s: %s", type(exc).__name__, exc)
            time.sleep(0.5)
        time.sleep(PERIOD_S)


if __name__ == "__main__":
    main()
