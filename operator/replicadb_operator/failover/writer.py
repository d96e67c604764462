"""The one writer of ``phase``, ``primary``, ``targetPrimary``, ``failover`` and
``failoverBlocked``: it applies a named transition to the status it last observed and sends
the result with that ``resourceVersion``. When somebody else wrote in between (409 Conflict),
it reads again and applies the transition to what it finds; a transition that no longer
applies raises :class:`transitions.Refused`, and the caller decides again from the fresh
status instead of overwriting it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from replicadb_operator import crd
from replicadb_operator.failover import transitions
from replicadb_operator.kube import clients

log = logging.getLogger(__name__)
Transition = Callable[[Mapping[str, Any]], transitions.Patch]
CONFLICT_RETRIES = 5


class StatusWriter:
    def __init__(self, namespace: str, name: str) -> None:
        self.namespace, self.name = namespace, name
        self._object: dict[str, Any] | None = None
        self.writes = 0

    @property
    def status(self) -> dict[str, Any]:
        """The status as last read or written (read once if never)."""
        if self._object is None:
            self.refresh()
        assert self._object is not None
        return dict(self._object.get("status") or {})

    @property
    def resource_version(self) -> str:
        if self._object is None:
            self.refresh()
        assert self._object is not None
        return str(self._object["metadata"]["resourceVersion"])

    def refresh(self) -> dict[str, Any]:
        """Read the object again: decisions are taken on what the API server holds."""
        self._object = dict(
            clients.custom().get_namespaced_custom_object(
                crd.GROUP, crd.VERSION, self.namespace, crd.PLURAL, self.name
            )
        )
        return self.status

    def apply(self, transition: Transition, what: str = "") -> dict[str, Any]:
        """Apply ``transition`` and return the status after it. Raises ``Refused``."""
        for _ in range(CONFLICT_RETRIES):
            patch = transition(self.status)
            if not patch:
                return self.status
            body = {"metadata": {"resourceVersion": self.resource_version}, "status": patch}
            try:
                self._object = dict(
                    clients.custom().patch_namespaced_custom_object_status(
                        crd.GROUP, crd.VERSION, self.namespace, crd.PLURAL, self.name, body
                    )
                )
            except ApiException as exc:
                if exc.status != 409:
                    raise
                log.info("%s: status changed under %s; reading it again", self.name, what)
                self.refresh()
                continue
            self.writes += 1
            return self.status
        raise transitions.Refused(f"status kept changing under {what or 'a transition'}")
