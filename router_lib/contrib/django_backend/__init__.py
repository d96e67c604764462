"""A Django database backend on replicadb: writes and transactions on the primary, reads on
replicas fresh enough for the configured consistency level.

Settings (README, "Django")::

    DATABASES = {"default": {
        "ENGINE": "router_lib.contrib.django_backend",
        "NAME": "app", "USER": "app", "PASSWORD": "...",
        "REPLICADB": {"primary_dsn": "host=db-0", "replica_dsns": ["host=db-1"],
                      "consistency": "read_your_writes"},
    }}
    MIDDLEWARE = ["router_lib.contrib.django_backend.middleware.ReadYourWritesMiddleware", ...]

Per-query override: ``with consistency(EVENTUAL): list(qs)``. Django imports this package's
``base`` module; this module itself imports no Django, so ``consistency`` can be imported
anywhere.
"""

from router_lib.contrib.django_backend.scope import consistency, request_scope

__all__ = ["consistency", "request_scope"]
