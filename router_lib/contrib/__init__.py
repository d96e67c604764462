"""Integrations of router_lib with ORMs: ``router_lib.contrib.django_backend`` (a Django
database backend) and ``router_lib.contrib.sqlalchemy_routing``.

The names are deliberately not ``django`` or ``sqlalchemy``: a subpackage named like the
library it integrates would shadow that library for code inside this package that imports it
with a relative-looking absolute import, and confuses readers. Each integration needs its
extra (``replicadb-router[django]``, ``replicadb-router[sqlalchemy]``); the shared routing
service (:mod:`router_lib.contrib.routing_service`) needs neither.
"""
