"""Runs in a pod (e2e/incluster.py ScriptPod): router_lib configured only from REPLICADB_*
variables, as an application would be (REPLICADB_NAME, REPLICADB_ZONE, ...), serves reads at
EVENTUAL consistency; which server answered each is written to /tmp/result.json."""

from __future__ import annotations

import json
import time
from pathlib import Path

import router_lib

READS = 40


def main() -> None:
    router = router_lib.Router(router_lib.RouterConfig.from_env())
    servers: dict[str, int] = {}
    for _ in range(READS):
        rows = router.query("SELECT host(inet_server_addr())")
        servers[str(rows[0][0])] = servers.get(str(rows[0][0]), 0) + 1
        time.sleep(0.05)
    router.close()
    Path("/tmp/.result.json").write_text(json.dumps({"servers": servers}))
    Path("/tmp/.result.json").replace("/tmp/result.json")
    while True:  # the test reads the result, then deletes the pod
        time.sleep(60)


if __name__ == "__main__":
    main()
