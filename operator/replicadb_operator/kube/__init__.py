"""Kubernetes I/O at the edge: clients, idempotent apply, and the few reads and patches the
reconcile and the monitor need. Blocking calls (the official client is synchronous); async
callers run them with asyncio.to_thread."""
