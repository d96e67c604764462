"""Run as a script by test_router_installs_alone: router_lib in a process where the operator
and every optional dependency cannot be imported, as in an application image that installed
``replicadb-router`` without extras. Prints one line per check; exits non-zero on failure.
"""

from __future__ import annotations

import dataclasses
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

# What `pip install replicadb-router` (no extras) does not bring.
ABSENT = ("kopf", "replicadb_operator", "kubernetes", "redis", "prometheus_client")


class ImportBlocker(importlib.abc.MetaPathFinder):
    """Answers "not installed" for the absent distributions, whatever the venv holds."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".")[0] in ABSENT:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


def must_fail_naming(extra: str, action: Callable[[], object]) -> None:
    try:
        action()
    except ImportError as exc:
        message = str(exc)
    else:
        raise AssertionError(f"expected a missing-extra error naming {extra!r}")
    if f"pip install 'replicadb-router[{extra}]'" not in message:
        raise AssertionError(f"the error does not name the {extra!r} extra: {message}")
    print(f"{extra}: {message}")


def main() -> None:
    sys.meta_path.insert(0, ImportBlocker())
    import router_lib
    from router_lib import metrics

    # Nothing connects: pools open empty and there is no probe, so the DSNs are never dialled.
    offline = router_lib.RouterConfig(
        primary_dsn="host=127.0.0.1 port=1",
        primary_pool_min=0,
        replica_pool_min=0,
        lag_probe_interval_s=0.0,
    )
    config = dataclasses.replace(offline, replica_dsns=("host=127.0.0.1 port=2",))
    with router_lib.Router(config) as router:
        assert isinstance(router.core.metrics.fallbacks, metrics.UnexportedMetric)
        assert router.view.primary is not None
        assert len(router.view.replicas) == 1
    print("router: built from static DSNs, metrics not exported")

    watched = dataclasses.replace(
        offline, primary_dsn=None, kube_name="shop", kube_namespace="prod"
    )
    must_fail_naming("kube", lambda: router_lib.Router(watched))
    cache = router_lib.CacheConfig(mode="redis", redis_url="redis://127.0.0.1:1")
    cached = dataclasses.replace(offline, cache=cache)
    must_fail_naming("redis", lambda: router_lib.Router(cached))
    must_fail_naming("metrics", metrics.default_registry)

    loaded = sorted(name for name in sys.modules if name.split(".")[0] in ABSENT)
    assert not loaded, loaded
    print("absent: none of", ", ".join(ABSENT), "was loaded")


if __name__ == "__main__":
    main()
