"""replicadb operator: turns ReplicatedDatabase objects into running PostgreSQL topologies.

The ``dataplane`` subpackage talks only to PostgreSQL (probing, lag, promotion, rejoin) and
has no Kubernetes in it; the Kubernetes side builds on it.
"""
