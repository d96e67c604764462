"""The PostgreSQL pod's entrypoint: prepare the data directory as the operator designates
(initdb, base backup, rewind and follow, or start as before), then become postgres."""
