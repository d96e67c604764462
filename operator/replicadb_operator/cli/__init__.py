"""``kubectl replicadb``: the plugin users type (status, watch, switchover, promote, pooler,
health)."""
