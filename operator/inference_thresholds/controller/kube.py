"""A thin JSON client over the kubernetes package's ApiClient.

kopf is not an API client; the generated kubernetes models are heavy and lossy for
our purpose (we compare plain dicts). This speaks raw JSON through the ApiClient so
TLS, tokens and kubeconfig handling stay the kubernetes package's job.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import quote

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from .. import __version__

Json = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
# What a write asks back: the object's metadata only (as controller-runtime's metadata
# client does), full JSON from a server that cannot. A ConfigMap's answer is its ~50 KB
# document otherwise, encoded by the apiserver, sent and received for nothing.
METADATA_ANSWER = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"


def make_configuration(kubeconfig: str | None = None) -> k8s.Configuration:
    """Client settings: the given kubeconfig, else the in-cluster service account, else
    $KUBECONFIG / ~/.kube/config (read now, not at import time)."""
    configuration = k8s.Configuration()
    if kubeconfig is None:
        try:
            k8s_config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
            return configuration
        except k8s_config.ConfigException:
            kubeconfig = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or None
    k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=kubeconfig, client_configuration=configuration
    )
    return configuration


def make_api_client(
    kubeconfig: str | None = None, user_agent: str = f"inference-thresholds/{__version__}"
) -> k8s.ApiClient:
    """An API client that names us: the User-Agent is the field manager of what it writes
    (``managedFields``) and what apiserver audit logs show, not "OpenAPI-Generator"."""
    api = k8s.ApiClient(make_configuration(kubeconfig))
    api.user_agent = user_agent
    return api


class ConfigMapApi(Protocol):
    """The ConfigMap calls a reconcile makes (``Kube``; an in-memory fake in unit tests)."""

    def get_configmap(self, namespace: str, name: str) -> Json | None: ...
    def create_configmap(self, namespace: str, body: Mapping[str, Any]) -> object: ...
    def replace_configmap(self, namespace: str, name: str, body: Mapping[str, Any]) -> object: ...
    def delete_configmap(
        self, namespace: str, name: str, uid: str, resource_version: str
    ) -> None: ...


class StatusApi(Protocol):
    """Writing a custom resource's status subresource."""

    def patch_status(
        self, group: str, version: str, plural: str, namespace: str, name: str, status: Json
    ) -> object: ...


class Kube:
    def __init__(self, api_client: k8s.ApiClient, timeout: float = 30.0) -> None:
        self.api = api_client
        self.timeout = timeout
        # Called before every write (method, path); raises to refuse it. Leader election
        # sets it, so a replica whose lease may have passed on writes nothing.
        self.guard: Callable[[str, str], None] | None = None

    def read(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        query: Sequence[tuple[str, str]] = (),
        accept: str = "application/json",
    ) -> bytes:
        """Send one request; the answer's bytes. Non-2xx raises ApiException carrying
        status and body."""
        response = self._send(method, path, body, content_type, query, accept, self.timeout)
        response.read()
        if not 200 <= response.status < 300:
            raise ApiException(http_resp=response)
        return bytes(response.data or b"")

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        query: Sequence[tuple[str, str]] = (),
        accept: str = "application/json",
    ) -> Json:
        """Send one request; the answer parsed."""
        data = self.read(method, path, body, content_type=content_type, query=query, accept=accept)
        return json.loads(data) if data else {}

    def write(
        self, method: str, path: str, body: Any, *, content_type: str = "application/json"
    ) -> None:
        """A write whose answer nobody reads: checked for success, not parsed, and asked
        for as metadata only (``METADATA_ANSWER``)."""
        self.read(method, path, body, content_type=content_type, accept=METADATA_ANSWER)

    def stream(
        self,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        accept: str = "application/json",
        read_timeout: float = 330.0,
    ) -> Any:
        """GET a streaming response (a watch): the urllib3 response, iterable by line."""
        response = self._send(
            "GET", path, None, "application/json", query, accept, (10.0, read_timeout)
        )
        if not 200 <= response.status < 300:
            response.read()
            raise ApiException(http_resp=response)
        return response.response

    def _send(
        self,
        method: str,
        path: str,
        body: Any,
        content_type: str,
        query: Sequence[tuple[str, str]],
        accept: str,
        timeout: float | tuple[float, float],
    ) -> Any:
        if self.guard is not None and method != "GET":
            self.guard(method, path)
        _, url, headers, payload, _ = self.api.param_serialize(
            method=method,
            resource_path=path,
            query_params=list(query),
            header_params={"Content-Type": content_type, "Accept": accept},
            body=body,
            auth_settings=["BearerToken"],
        )
        return self.api.call_api(
            method, url, header_params=headers, body=payload, _request_timeout=timeout
        )

    # --- ConfigMaps -----------------------------------------------------------------------

    @staticmethod
    def _cm_path(namespace: str, name: str | None = None) -> str:
        base = f"/api/v1/namespaces/{quote(namespace)}/configmaps"
        return f"{base}/{quote(name)}" if name else base

    def get_configmap(self, namespace: str, name: str) -> Json | None:
        try:
            return self.request("GET", self._cm_path(namespace, name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def create_configmap(self, namespace: str, body: Mapping[str, Any]) -> None:
        self.write("POST", self._cm_path(namespace), dict(body))

    def replace_configmap(self, namespace: str, name: str, body: Mapping[str, Any]) -> None:
        """PUT with metadata.resourceVersion set: a concurrent writer gets us a 409."""
        self.write("PUT", self._cm_path(namespace, name), dict(body))

    def delete_configmap(self, namespace: str, name: str, uid: str, resource_version: str) -> None:
        """DELETE exactly the object that was read (preconditions): a replaced one is a 409."""
        options = {"preconditions": {"uid": uid, "resourceVersion": resource_version}}
        self.request("DELETE", self._cm_path(namespace, name), options)

    # --- Events -----------------------------------------------------------------------------

    def create_event(self, namespace: str, body: Mapping[str, Any]) -> Json:
        return self.request("POST", f"/api/v1/namespaces/{quote(namespace)}/events", dict(body))

    # --- our custom resource --------------------------------------------------------------

    def patch_status(
        self, group: str, version: str, plural: str, namespace: str, name: str, status: Json
    ) -> None:
        """Replace .status as a whole (JSON patch), so fields that went away go away."""
        path = (
            f"/apis/{group}/{version}/namespaces/{quote(namespace)}/{plural}/{quote(name)}/status"
        )
        ops = [{"op": "add", "path": "/status", "value": status}]
        self.write("PATCH", path, ops, content_type=JSON_PATCH)
