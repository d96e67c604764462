"""Security contexts shared by instance and pooler pods: non-root as the image's postgres
user, no privilege escalation, no capabilities, the runtime's seccomp profile."""

from __future__ import annotations

from typing import Any

from replicadb_operator.builders.names import POSTGRES_UID


def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": POSTGRES_UID,
        "runAsGroup": POSTGRES_UID,
        # Mounted Secrets (TLS keys) become group-readable by postgres.
        "fsGroup": POSTGRES_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
