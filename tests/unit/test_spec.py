from __future__ import annotations

import pytest
from replicadb_operator.dataplane.sync_standbys import SyncMode
from replicadb_operator.spec import SpecError, parse_spec


def test_defaults() -> None:
    db = parse_spec("db", "ns", {})
    assert db.replicas == 2
    assert db.replication.mode is SyncMode.OFF
    assert db.pooler.pool_mode == "transaction"
    assert db.failover.enabled


def test_what_the_schema_cannot_catch_is_a_spec_error_naming_the_field() -> None:
    with pytest.raises(SpecError, match=r"spec\.replication\.synchronousStandbys"):
        parse_spec(
            "db",
            "ns",
            {
                "replicas": 1,
                "replication": {"synchronousMode": "priority", "synchronousStandbys": 2},
            },
        )
    with pytest.raises(SpecError, match=r"spec\.postgres must be an object"):
        parse_spec("db", "ns", {"postgres": "fast"})
    with pytest.raises(SpecError, match="spec could not be read"):
        parse_spec("db", "ns", {"replicas": "many"})
