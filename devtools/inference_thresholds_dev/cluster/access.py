"""Reaching a cluster from tests and tools: a kubeconfig plus a few helpers.

Works the same for the local control plane and for any cluster a kubeconfig points at
(kind, k3d, ...). The kubernetes client is imported lazily so this module loads without it.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ClusterAccess:
    """A kubeconfig (``.kubeconfig``) with client, kubectl and token helpers.

    ``local`` is True for the control plane this project launched (its version is known and
    it has no kubelets or scheduler), False for ``--existing-cluster``.
    """

    def __init__(self, kubeconfig: Path, *, local: bool) -> None:
        self.kubeconfig = kubeconfig
        self.local = local
        self.kubectl_binary = os.environ.get("KUBECTL", "kubectl")

    def api_client(self, token: str | None = None) -> Any:
        """A new ``kubernetes.client.ApiClient``; close it when done (``with`` works).

        With ``token``, it authenticates with that bearer token instead of the kubeconfig's
        credentials (e.g. a service account's TokenRequest token), to test RBAC.
        """
        from kubernetes import client, config

        configuration = client.Configuration()
        load_kube_config: Any = config.load_kube_config  # untyped in the client's stubs
        load_kube_config(
            config_file=str(self.kubeconfig),
            client_configuration=configuration,
            persist_config=False,
        )
        if token is not None:
            configuration.cert_file = None
            configuration.key_file = None
            configuration.refresh_api_key_hook = None
            configuration.api_key = {"authorization": token}
            configuration.api_key_prefix = {"authorization": "Bearer"}
        return client.ApiClient(configuration)

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``kubectl --kubeconfig=<this> *args``; text output captured.

        With ``check`` (default) a non-zero exit raises ``RuntimeError`` carrying stderr.
        """
        argv = [self.kubectl_binary, f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(argv, input=input, capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} exited {result.returncode}:\n{result.stderr.strip()}"
            )
        return result

    def service_account_token(
        self,
        namespace: str,
        service_account: str,
        *,
        pod: str | None = None,
        audiences: list[str] | None = None,
        expiration_seconds: int = 3600,
    ) -> str:
        """A TokenRequest token for ``service_account``, bound to ``pod`` if given.

        A token bound to a pod scheduled on a node carries the node's name in the
        authenticated user's extra ``authentication.kubernetes.io/node-name``.
        """
        from kubernetes import client

        with self.api_client() as api:
            core = client.CoreV1Api(api)
            bound = None
            if pod is not None:
                metadata = core.read_namespaced_pod(pod, namespace).metadata
                uid = metadata.uid if metadata is not None else None
                bound = client.V1BoundObjectReference(
                    api_version="v1", kind="Pod", name=pod, uid=uid
                )
            request = client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(
                    audiences=audiences or [],
                    expiration_seconds=expiration_seconds,
                    bound_object_ref=bound,
                )
            )
            response = core.create_namespaced_service_account_token(
                service_account, namespace, request
            )
            if response.status is None or not response.status.token:
                raise RuntimeError(f"TokenRequest for {namespace}/{service_account} gave no token")
            return str(response.status.token)

    @staticmethod
    def eventually(
        check: Callable[[], T | None],
        *,
        timeout: float = 30.0,
        interval: float = 0.2,
        what: str = "condition",
    ) -> T:
        """Poll ``check`` until it returns a truthy value (returned); fail after ``timeout``.

        Clusters are eventually consistent (RBAC caches, controllers): tests await a state
        with this instead of sleeping. Exceptions from ``check`` propagate.
        """
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{what} not reached within {timeout:g} s")
            time.sleep(interval)

    def wait_crd_established(self, name: str, timeout: float = 60.0) -> None:
        """Await a CRD's Established condition and its resource in discovery.

        ``kubectl wait`` errors while the CRD has no status yet; polling does not.
        """
        from kubernetes import client

        ext = client.ApiextensionsV1Api(self.api_client())

        def established() -> bool:
            status = ext.read_custom_resource_definition(name).status
            conditions = (status.conditions if status else None) or []
            return any(c.type == "Established" and c.status == "True" for c in conditions)

        self.eventually(established, timeout=timeout, what=f"CRD {name} Established")

    @contextmanager
    def temporary_namespace(self, prefix: str = "test") -> Iterator[str]:
        """Create a uniquely named namespace; delete it (without waiting) afterwards."""
        from kubernetes import client

        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        with self.api_client() as api:
            core = client.CoreV1Api(api)
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
            try:
                yield name
            finally:
                try:
                    core.delete_namespace(name)
                except client.ApiException as exc:
                    if exc.status != 404:
                        raise
