"""Replicas repointed at failover connect to the new primary's pod address, not to what
cluster DNS may still cache for its name."""

from __future__ import annotations

from psycopg.conninfo import conninfo_to_dict
from replicadb_operator.failover.steps import addresses_of, follower_conninfo
from replicadb_operator.spec import parse_spec

DB = parse_spec("shop", "prod", {"replicas": 2})


def test_known_primary_address_is_used_without_a_dns_lookup() -> None:
    build = follower_conninfo(DB, {"shop-replica-0": "10.88.0.17"})
    params = conninfo_to_dict(build("shop-replica-0", "shop-replica-1"))
    assert params["hostaddr"] == "10.88.0.17"
    assert str(params["host"]).startswith("shop-replica-0.shop-instances.prod.svc")
    assert params["application_name"] == "shop-replica-1"


def test_unknown_address_falls_back_to_the_dns_name() -> None:
    params = conninfo_to_dict(follower_conninfo(DB)("shop-primary-0", "shop-replica-1"))
    assert "hostaddr" not in params
    assert str(params["host"]).startswith("shop-primary-0.shop-instances.prod.svc")


def test_addresses_come_from_the_monitor_dsns() -> None:
    dsns = {
        "shop-primary-0": "host=10.88.0.5 port=5432 user=postgres",
        "shop-replica-0": "host=10.88.0.17 port=5432 user=postgres",
    }
    assert addresses_of(dsns) == {"shop-primary-0": "10.88.0.5", "shop-replica-0": "10.88.0.17"}
