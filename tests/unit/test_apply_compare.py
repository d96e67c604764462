"""The compare that keeps the steady state free of write calls."""

from __future__ import annotations

from replicadb_operator.kube.apply import _comparable, is_subset


def test_fields_added_by_the_api_server_do_not_count_as_a_difference() -> None:
    desired = {"spec": {"ports": [{"port": 5432}], "selector": {"a": "b"}}}
    live = {
        "spec": {
            "ports": [{"port": 5432, "protocol": "TCP", "targetPort": 5432}],
            "selector": {"a": "b"},
            "clusterIP": "10.0.0.1",
        },
        "metadata": {"resourceVersion": "7"},
    }
    assert is_subset(desired, live)


def test_a_changed_value_or_a_list_of_another_length_is_a_difference() -> None:
    assert not is_subset({"spec": {"replicas": 3}}, {"spec": {"replicas": 2}})
    assert not is_subset({"a": [1, 2]}, {"a": [1, 2, 3]})
    assert not is_subset({"a": True}, {"a": 1})
    assert is_subset({"a": 1}, {"a": 1.0})


def test_secret_string_data_is_compared_as_base64_data() -> None:
    desired = {"kind": "Secret", "stringData": {"k": "v"}}
    assert is_subset(_comparable(desired), {"kind": "Secret", "data": {"k": "dg=="}})
    assert not is_subset(_comparable(desired), {"kind": "Secret", "data": {"k": "dw=="}})
