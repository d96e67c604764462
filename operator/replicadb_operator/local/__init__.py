"""PostgreSQL primary + streaming replicas + PgBouncer as local processes, each instance on its
own loopback address. The integration tests, the benchmarks and ``make local-up`` use it;
nothing in the operator does."""
