"""The PostgreSQL side of replicadb: probing, lag, failover choice, promotion and rejoin.

Nothing here imports Kubernetes; the operator and the local test cluster both drive it.
"""
