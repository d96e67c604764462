"""router_lib: consistency-aware read/write routing for replicadb databases."""
