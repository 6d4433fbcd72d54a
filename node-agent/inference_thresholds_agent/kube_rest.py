"""A minimal Node API client over the standard library (GET and merge-PATCH one Node).

Why not the official client: importing ``kubernetes.client.api.core_v1_api`` alone
takes the process past 64 MiB RSS, NFD's memory request and this agent's budget. The
agent makes two kinds of request, so it speaks HTTP itself for in-cluster service
accounts (re-reading the projected token on every request, so rotation just works)
and for kubeconfigs with certificates or tokens. Kubeconfigs that need exec or
auth-provider plugins raise ``UnsupportedKubeconfig``; the CLI then falls back to the
official client.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
USER_AGENT = "inference-thresholds-node-agent"
LIST_PAGE = 500  # items per list request: a page of Nodes is ~2 MB of JSON


class UnsupportedKubeconfig(ValueError):
    """The kubeconfig needs a credential plugin this client does not run."""


class NodeApiError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


@dataclass
class Endpoint:
    server: str
    ssl_context: ssl.SSLContext | None
    token: str | None = None
    token_file: Path | None = None

    def bearer(self) -> str | None:
        if self.token_file is not None:
            return self.token_file.read_text(encoding="utf-8").strip()
        return self.token


def _context(ca_file: str | None, ca_data: bytes | None, insecure: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif ca_data is not None:
        context.load_verify_locations(cadata=ca_data.decode())
    elif ca_file is not None:
        context.load_verify_locations(cafile=ca_file)
    return context


def _load_client_cert(
    context: ssl.SSLContext,
    cert: tuple[str | None, bytes | None],
    key: tuple[str | None, bytes | None],
) -> None:
    """ssl wants files: embedded data goes through a private temporary directory."""
    if cert == (None, None):
        return
    with tempfile.TemporaryDirectory(prefix="it-agent-") as scratch:
        paths = []
        for (path, data), name in ((cert, "tls.crt"), (key, "tls.key")):
            if data is not None:
                target = Path(scratch) / name
                target.write_bytes(data)
                target.chmod(0o600)
                path = str(target)
            paths.append(path)
        context.load_cert_chain(paths[0] or "", paths[1])


def in_cluster() -> Endpoint:
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host or not (SERVICE_ACCOUNT_DIR / "token").is_file():
        raise FileNotFoundError("not running in a pod with a service-account token")
    if ":" in host:
        host = f"[{host}]"  # IPv6 service address
    return Endpoint(
        server=f"https://{host}:{port}",
        ssl_context=_context(str(SERVICE_ACCOUNT_DIR / "ca.crt"), None, False),
        token_file=SERVICE_ACCOUNT_DIR / "token",
    )


def _b64(value: str | None) -> bytes | None:
    return base64.b64decode(value) if value else None


def _relative(base: Path, value: str | None) -> str | None:
    return str((base / value).resolve()) if value else None


def from_kubeconfig(
    path: str | os.PathLike[str], context_name: str | None = None, *, token: str | None = None
) -> Endpoint:
    """The endpoint a kubeconfig context names; ``token`` replaces its user's credentials."""
    file = Path(path).expanduser()
    try:
        config = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise FileNotFoundError(f"kubeconfig {file}: {exc.strerror}") from exc
    name = context_name or config.get("current-context")

    def named(section: str, wanted: str | None) -> dict[str, Any]:
        for entry in config.get(section) or []:
            if entry.get("name") == wanted:
                found: dict[str, Any] = entry.get(section[:-1]) or {}
                return found
        raise ValueError(f"kubeconfig {file}: no {section[:-1]} named {wanted!r}")

    context = named("contexts", name)
    cluster = named("clusters", context.get("cluster"))
    user = named("users", context.get("user")) if context.get("user") else {}
    if token is not None:
        user = {"token": token}
    if "exec" in user or "auth-provider" in user:
        raise UnsupportedKubeconfig(f"kubeconfig {file}: user needs a credential plugin")
    base = file.parent
    server = str(cluster.get("server", "")).rstrip("/")
    ssl_context = None
    if server.startswith("https://"):
        ssl_context = _context(
            _relative(base, cluster.get("certificate-authority")),
            _b64(cluster.get("certificate-authority-data")),
            bool(cluster.get("insecure-skip-tls-verify")),
        )
        _load_client_cert(
            ssl_context,
            (
                _relative(base, user.get("client-certificate")),
                _b64(user.get("client-certificate-data")),
            ),
            (_relative(base, user.get("client-key")), _b64(user.get("client-key-data"))),
        )
    token_file = _relative(base, user.get("tokenFile"))
    return Endpoint(
        server=server,
        ssl_context=ssl_context,
        token=user.get("token"),
        token_file=Path(token_file) if token_file else None,
    )


class RestNodeApi:
    """NodeApi (see publisher.py) over http.client; one short connection per request."""

    def __init__(self, endpoint: Endpoint, timeout_s: float = 30.0) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        parsed = urllib.parse.urlsplit(endpoint.server)
        self._https = parsed.scheme == "https"
        self._host = parsed.hostname or "localhost"
        self._port = parsed.port or (443 if self._https else 80)
        self._prefix = parsed.path.rstrip("/")

    @classmethod
    def from_config(cls, kubeconfig: str | None = None) -> RestNodeApi:
        """--kubeconfig if given; else in-cluster; else $KUBECONFIG or ~/.kube/config."""
        if kubeconfig:
            return cls(from_kubeconfig(kubeconfig))
        try:
            return cls(in_cluster())
        except FileNotFoundError:
            fallback = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
            return cls(from_kubeconfig(fallback or Path.home() / ".kube" / "config"))

    def _request(self, method: str, path: str, body: bytes | None, content_type: str) -> Any:
        connection: http.client.HTTPConnection
        if self._https:
            connection = http.client.HTTPSConnection(
                self._host, self._port, timeout=self.timeout_s, context=self.endpoint.ssl_context
            )
        else:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout_s)
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if body is not None:
            headers["Content-Type"] = content_type
        token = self.endpoint.bearer()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            connection.request(method, self._prefix + path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        if response.status >= 400:
            try:
                message = str(json.loads(data).get("message", ""))
            except ValueError:
                message = data[:500].decode(errors="replace")
            raise NodeApiError(response.status, message or response.reason)
        return json.loads(data)

    def get_node(self, name: str) -> dict[str, Any]:
        node: dict[str, Any] = self._request(
            "GET", f"/api/v1/nodes/{urllib.parse.quote(name)}", None, ""
        )
        return node

    def patch_node(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        node: dict[str, Any] = self._request(
            "PATCH",
            f"/api/v1/nodes/{urllib.parse.quote(name)}",
            json.dumps(patch).encode(),
            "application/merge-patch+json",
        )
        return node

    def list_nodes(self) -> list[dict[str, Any]]:
        return self._list("/api/v1/nodes")

    def list_pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        return self._list(
            f"/api/v1/namespaces/{urllib.parse.quote(namespace)}/pods", label_selector
        )

    def _list(self, path: str, label_selector: str = "") -> list[dict[str, Any]]:
        """Every item of a list endpoint, fetched in pages of ``LIST_PAGE`` (``prune``)."""
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            query = {"limit": str(LIST_PAGE)}
            if label_selector:
                query["labelSelector"] = label_selector
            if token:
                query["continue"] = token
            page = self._request("GET", f"{path}?{urllib.parse.urlencode(query)}", None, "")
            items += page.get("items") or []
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return items


def connect(kubeconfig: str | None = None) -> Any:
    """The NodeApi the agent uses: this module's client, or the official one for plugins."""
    try:
        return RestNodeApi.from_config(kubeconfig)
    except UnsupportedKubeconfig:
        from .publisher import KubernetesNodeApi

        return KubernetesNodeApi.from_config(kubeconfig)
