"""One configured API client per process: in-cluster credentials when running in a pod,
else the kubeconfig (KUBECONFIG or ~/.kube/config)."""

from __future__ import annotations

import functools
from typing import Any

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException
from kubernetes.dynamic import DynamicClient


@functools.cache
def api_client() -> Any:
    try:
        config.load_incluster_config()
    except ConfigException:
        config.load_kube_config()
    return client.ApiClient()


def core() -> Any:
    return client.CoreV1Api(api_client())


def custom() -> Any:
    return client.CustomObjectsApi(api_client())


@functools.cache
def dynamic() -> Any:
    return DynamicClient(api_client())
