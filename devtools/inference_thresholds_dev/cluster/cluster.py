"""A local Kubernetes cluster: etcd, kube-apiserver, kube-controller-manager, and optionally
a real node (kube-scheduler, containerd + runc, kubelet).

Everything listens on 127.0.0.1 on free ports and lives in one state directory (certificates,
etcd data, logs, kubeconfig, the node's files, ``state.json``), wiped on every start.
Without a node (the default) there is no kubelet and no scheduler: tests register Node
objects and set ``spec.nodeName`` themselves. With ``node=True`` a kubelet registers the
Node ``localhost`` and runs pods from images imported into its containerd
(``inference_thresholds_dev.node``, ``inference_thresholds_dev.images``).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ..node.containerd import ContainerdError
from ..node.node import NOT_READY_TAINT, NodeError, NodeRecord, RealNode
from . import processes
from .binaries import Binaries, kube_module_dir
from .pki import APISERVER_KUBELET_CLIENT, Pki, generate_pki

Progress = Callable[[str], None]

STATE_FILE = "state.json"
# The only entries start() deletes, so a mistyped --state-dir cannot wipe unrelated files.
_OWNED_ENTRIES = (
    "pki",
    "etcd-data",
    "apiserver-certs",
    "logs",
    "kubeconfig",
    "controller-manager.kubeconfig",
    "scheduler.kubeconfig",
    "node",
    STATE_FILE,
)
_SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
_CONTEXT = "inference-thresholds-dev"
# Component order: started in this order, stopped in reverse (the node's after the
# control plane's; kube-scheduler and the node only with node=True).
_COMPONENTS = (
    "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "containerd",
    "kubelet",
)  # fmt: skip


class ClusterStartError(RuntimeError):
    """The control plane did not come up; the message carries the failing log's tail."""


class _PortTaken(Exception):
    """A component lost the race for a port chosen as free; start again with new ports."""


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1."""
    # All sockets are held open together so the kernel hands out distinct ports.
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(path: Path, server: str, ca: Path, cert: Path, key: Path, user: str) -> None:
    """A self-contained kubeconfig (certificates embedded), readable by kubectl and clients."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": _CONTEXT,
                "cluster": {"server": server, "certificate-authority-data": _b64(ca)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {"client-certificate-data": _b64(cert), "client-key-data": _b64(key)},
            }
        ],
        "contexts": [{"name": _CONTEXT, "context": {"cluster": _CONTEXT, "user": user}}],
        "current-context": _CONTEXT,
        "preferences": {},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)


class LocalCluster:
    """Start, find again and stop a local cluster rooted at ``state_dir``.

    ``tie_to_parent=True`` (tests) makes the components die with this process;
    ``False`` (``dev-cluster up``) lets them outlive it, found again via ``attach``.
    ``node=True`` adds kube-scheduler and a real node (root, containerd, runc; the pause
    image is built on first use).
    """

    def __init__(
        self,
        state_dir: Path,
        binaries: Binaries | None = None,
        *,
        tie_to_parent: bool = True,
        node: bool = False,
    ) -> None:
        self.state_dir = state_dir
        self.binaries = binaries
        self.tie_to_parent = tie_to_parent
        self.with_node = node
        self.node: RealNode | None = None
        self.processes: list[processes.ManagedProcess] = []
        self.server = ""
        # Seconds from start() to each milestone: "readyz" (API serving), "controllers"
        # (controller-manager running: the default ServiceAccount exists), with a node
        # "node-ready" (the Node Ready and schedulable) and "pause-image" (its build or
        # cache lookup, before start).
        self.timings: dict[str, float] = {}
        self._sandbox_image = ""
        self._pause_archive: Path | None = None
        self._ssl: ssl.SSLContext | None = None

    # -- paths -----------------------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def pki_dir(self) -> Path:
        return self.state_dir / "pki"

    def log_path(self, component: str) -> Path:
        return self.state_dir / "logs" / f"{component}.log"

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 120.0, progress: Progress | None = None) -> None:
        """Start all components on fresh state and wait until the API and controllers run."""
        if self.binaries is None or not self.binaries.complete():
            raise ClusterStartError("control-plane binaries missing; see cluster.binaries")
        previous = LocalCluster.attach(self.state_dir)
        if previous is not None and any(p.alive() for p in previous.processes):
            raise ClusterStartError(
                f"a dev cluster already runs from {self.state_dir} (server {previous.server}); "
                "stop it first (inference-thresholds-dev dev-cluster down)"
            )
        if previous is not None and previous.node is not None:
            previous.stop(remove_state=False)  # a crashed node's mounts and cgroups
        if self.with_node:
            try:
                RealNode.create(self.state_dir / "node").check_paths()
            except NodeError as exc:
                raise ClusterStartError(str(exc)) from None
            self._prepare_node_images(progress)
        deadline = time.monotonic() + timeout
        for attempt in range(3):
            try:
                self._start_once(deadline, progress)
                return
            except _PortTaken as exc:
                self.stop(remove_state=False)
                if attempt == 2:
                    raise ClusterStartError(f"ports kept colliding: {exc}") from None
                if progress:
                    progress(f"port collision ({exc}); retrying with new ports")
            except (ContainerdError, subprocess.SubprocessError) as exc:
                self.stop(remove_state=False)
                raise ClusterStartError(f"the node did not start: {exc}") from None
            except BaseException:
                self.stop(remove_state=False)
                raise

    def _prepare_node_images(self, progress: Progress | None) -> None:
        # Imported here: image builds need podman only when a node is asked for.
        from ..images.pause import pause_image

        if os.geteuid() != 0:
            raise ClusterStartError("a real node (containerd, kubelet) must run as root")
        began = time.monotonic()
        try:
            pause = pause_image(kube_module_dir(), progress=progress)
        except RuntimeError as exc:
            raise ClusterStartError(f"the pause image could not be built: {exc}") from None
        self._sandbox_image = pause.ref
        self._pause_archive = pause.archive
        self.timings["pause-image"] = time.monotonic() - began

    def _reset_state_dir(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for name in _OWNED_ENTRIES:
            path = self.state_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()

    def _start_once(self, deadline: float, progress: Progress | None) -> None:
        assert self.binaries is not None
        began = time.monotonic()
        self.processes = []
        self.timings = {k: v for k, v in self.timings.items() if k == "pause-image"}
        self._ssl = None
        self._reset_state_dir()
        pki = generate_pki(self.pki_dir)
        etcd_port, peer_port, api_port = free_ports(3)
        self.server = f"https://127.0.0.1:{api_port}"
        write_kubeconfig(
            self.kubeconfig, self.server, pki.ca_cert, pki.admin_cert, pki.admin_key, "admin"
        )
        cm_kubeconfig = self.state_dir / "controller-manager.kubeconfig"
        write_kubeconfig(
            cm_kubeconfig,
            self.server,
            pki.ca_cert,
            pki.controller_manager_cert,
            pki.controller_manager_key,
            "kube-controller-manager",
        )

        # The apiserver retries etcd by itself, so both start at once.
        self._spawn("etcd", self._etcd_argv(etcd_port, peer_port))
        self._spawn("kube-apiserver", self._apiserver_argv(pki, api_port, etcd_port))
        self._await("kube-apiserver /readyz", self._readyz_pending, deadline, progress)
        self.timings["readyz"] = time.monotonic() - began

        # The controller-manager gives up if the API is not healthy within 10 s: start it now.
        self._spawn("kube-controller-manager", self._controller_manager_argv(pki, cm_kubeconfig))
        if self.with_node:
            self._start_node(pki, deadline, progress)
        self._await("controller-manager", self._controllers_pending, deadline, progress)
        self.timings["controllers"] = time.monotonic() - began
        if self.node is not None:
            self._await("node", self._node_pending, deadline, progress)
            self._untaint_node()
            self.timings["node-ready"] = time.monotonic() - began
        self._save_state()

    def _start_node(self, pki: Pki, deadline: float, progress: Progress | None) -> None:
        """kube-scheduler, containerd (with the pause image imported), then the kubelet."""
        assert self.binaries is not None and self._pause_archive is not None
        # The apiserver's client identity for kubelets (logs, exec, port-forward), allowed
        # by the kubelets' webhook authorization through this binding.
        self._create(
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "inference-thresholds-dev:apiserver-kubelet-client"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "system:kubelet-api-admin",
                },
                "subjects": [
                    {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "User",
                        "name": APISERVER_KUBELET_CLIENT,
                    }
                ],
            },
        )
        scheduler_kubeconfig = self.state_dir / "scheduler.kubeconfig"
        write_kubeconfig(
            scheduler_kubeconfig, self.server, pki.ca_cert, pki.scheduler_cert,
            pki.scheduler_key, "kube-scheduler",
        )  # fmt: skip
        self._spawn(
            "kube-scheduler",
            [
                str(self.binaries.kube),
                "kube-scheduler",
                f"--kubeconfig={scheduler_kubeconfig}",
                "--leader-elect=false",
                "--secure-port=0",  # no health endpoint: scheduling is observed via the API
            ],
        )

        node = RealNode.create(self.state_dir / "node")
        self.node = node
        (kubelet_port,) = free_ports(1)
        node.prepare(
            sandbox_image=self._sandbox_image,
            kubelet_port=kubelet_port,
            ca_cert=pki.ca_cert,
            serving_cert=pki.kubelet_serving_cert,
            serving_key=pki.kubelet_serving_key,
        )
        self._save_state()  # the node's cgroup root exists now: `down` must find it
        write_kubeconfig(
            node.kubelet.kubeconfig, self.server, pki.ca_cert, pki.kubelet_client_cert,
            pki.kubelet_client_key, f"system:node:{node.name}",
        )  # fmt: skip
        self._spawn("containerd", node.containerd_argv())
        self._await(
            "containerd",
            lambda: None if node.containerd_serving() else "socket not serving yet",
            deadline,
            progress,
        )
        node.import_image(self._pause_archive)
        self._spawn("kubelet", node.kubelet_argv(self.binaries.kube))

    def _node_pending(self) -> str | None:
        assert self.node is not None
        status, body = self.get(f"/api/v1/nodes/{self.node.name}")
        if status == 404:
            return "waiting for the kubelet to register the Node"
        if status != 200:
            return f"HTTP {status} reading the Node"
        conditions = json.loads(body).get("status", {}).get("conditions", [])
        ready = next((c for c in conditions if c.get("type") == "Ready"), None)
        if ready is None or ready.get("status") != "True":
            reason = (ready or {}).get("message") or "no Ready condition yet"
            return f"Node not Ready: {reason}"[:200]
        return None

    def _untaint_node(self) -> None:
        """Remove the not-ready taint the kubelet registers with.

        The node-lifecycle controller would remove it, but it stays off: it would taint and
        evict the fake Nodes tests register (they have no kubelet).
        """
        assert self.node is not None
        path = f"/api/v1/nodes/{self.node.name}"
        _, body = self.get(path)
        taints = json.loads(body).get("spec", {}).get("taints") or []
        kept = [t for t in taints if t.get("key") != NOT_READY_TAINT]
        if len(kept) != len(taints):
            self._request("PATCH", path, {"spec": {"taints": kept or None}},
                          content_type="application/merge-patch+json")  # fmt: skip

    def _spawn(self, name: str, argv: list[str]) -> None:
        proc = processes.spawn(name, argv, self.log_path(name), tie_to_parent=self.tie_to_parent)
        self.processes.append(proc)
        self._save_state()  # recorded at once, so `down` finds even a half-started cluster

    def stop(self, *, remove_state: bool = True) -> list[str]:
        """Stop every component (reverse start order); optionally delete the state dir.

        With a node: its pods are removed through CRI while containerd still runs, then
        mounts, cgroups and host paths are cleaned. Returns what could not be cleaned
        (empty when nothing is left behind).
        """
        stopped: set[int] = set()
        kube = self.binaries.kube if self.binaries is not None else self._kube_binary()
        for proc in reversed(self.processes):
            if proc.name == "containerd" and self.node is not None and proc.alive() and kube:
                self.node.remove_pods(kube)
            processes.stop(proc)
            stopped.add(proc.pid)
        self.processes = []
        problems: list[str] = []
        if self.node is not None:
            # The node's heavy files (image layers, pod volumes) go even when the state
            # (logs) is kept for a post-mortem.
            problems = self.node.teardown(exclude_pids=stopped, remove_files=True)
            if not problems:
                self.node = None
        if remove_state and not problems:
            shutil.rmtree(self.state_dir, ignore_errors=True)
        elif self.state_dir.is_dir():
            self._save_state()
        return problems

    def _kube_binary(self) -> Path | None:
        """The kube binary a re-attached cluster was started with (from its argv0)."""
        for proc in self.processes:
            if proc.name == "kube-apiserver":
                return Path(proc.argv0)
        return None

    # -- argv ------------------------------------------------------------------------------
    def _etcd_argv(self, client_port: int, peer_port: int) -> list[str]:
        assert self.binaries is not None
        client = f"http://127.0.0.1:{client_port}"
        peer = f"http://127.0.0.1:{peer_port}"
        return [
            str(self.binaries.etcd),
            "--name=dev",
            f"--data-dir={self.state_dir / 'etcd-data'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=dev={peer}",
            # Throwaway data: durability is not worth the fsync latency.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]

    def _apiserver_argv(self, pki: Pki, port: int, etcd_port: int) -> list[str]:
        assert self.binaries is not None
        return [
            str(self.binaries.kube),
            "kube-apiserver",
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={self.state_dir / 'apiserver-certs'}",
            f"--tls-cert-file={pki.apiserver_cert}",
            f"--tls-private-key-file={pki.apiserver_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--service-account-issuer={_SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki.service_account_pub}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--authorization-mode=Node,RBAC",
            # Kubelets (a real node) are dialled as `localhost` with a client certificate,
            # and their serving certificate is verified against the cluster CA.
            f"--kubelet-client-certificate={pki.apiserver_kubelet_client_cert}",
            f"--kubelet-client-key={pki.apiserver_kubelet_client_key}",
            f"--kubelet-certificate-authority={pki.ca_cert}",
            "--kubelet-preferred-address-types=Hostname",
            # Endpoints may not hold loopback addresses: publish none for `kubernetes`.
            "--endpoint-reconciler-type=none",
            "--profiling=false",
        ]

    def _controller_manager_argv(self, pki: Pki, kubeconfig: Path) -> list[str]:
        assert self.binaries is not None
        return [
            str(self.binaries.kube),
            "kube-controller-manager",
            f"--kubeconfig={kubeconfig}",
            "--leader-elect=false",
            "--secure-port=0",  # no health endpoint needed; readiness is observed via the API
            f"--service-account-private-key-file={pki.service_account_key}",
            f"--root-ca-file={pki.ca_cert}",
            "--use-service-account-credentials=true",
            f"--cluster-signing-cert-file={pki.ca_cert}",
            f"--cluster-signing-key-file={pki.ca_key}",
            # Test Nodes have no kubelet: the node-lifecycle controller would taint them
            # unreachable after 40 s and evict their pods after 5 minutes. (A real node's
            # not-ready taint is removed by _untaint_node instead.)
            "--controllers=*,-node-lifecycle-controller",
        ]

    # -- readiness -------------------------------------------------------------------------
    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            ctx = ssl.create_default_context(cafile=str(self.pki_dir / "ca.crt"))
            ctx.load_cert_chain(str(self.pki_dir / "admin.crt"), str(self.pki_dir / "admin.key"))
            self._ssl = ctx
        return self._ssl

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, str]:
        """GET ``path`` as the admin user: (HTTP status, body); status 0 if unreachable."""
        try:
            with urllib.request.urlopen(
                self.server + path, context=self._ssl_context(), timeout=timeout
            ) as resp:
                return int(resp.status), resp.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return 0, str(reason)

    def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any],
        *,
        content_type: str = "application/json",
        timeout: float = 10.0,
    ) -> tuple[int, str]:
        """``method`` ``path`` with a JSON body as the admin user: (HTTP status, body)."""
        request = urllib.request.Request(
            self.server + path,
            data=json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": content_type},
        )
        try:
            with urllib.request.urlopen(
                request, context=self._ssl_context(), timeout=timeout
            ) as resp:
                return int(resp.status), resp.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def _create(self, collection: str, body: dict[str, Any]) -> None:
        status, text = self._request("POST", collection, body)
        if status not in (200, 201, 409):
            raise ClusterStartError(f"creating {body['metadata']['name']}: HTTP {status} {text}")

    def _readyz_pending(self) -> str | None:
        status, body = self.get("/readyz?verbose")
        if status == 200:
            return None
        if status == 0:
            return "not listening yet"
        # Lines look like "[-]poststarthook/rbac/bootstrap-roles failed: reason withheld".
        failing = [
            line[3:].split(" failed", 1)[0] for line in body.splitlines() if line.startswith("[-]")
        ]
        return "waiting on " + ", ".join(failing) if failing else f"HTTP {status}"

    def _controllers_pending(self) -> str | None:
        # The serviceaccount controller creates `default` in every namespace: proof that the
        # controller-manager runs its controllers (GC, tokens, namespaces, ...).
        status, _ = self.get("/api/v1/namespaces/default/serviceaccounts/default")
        return None if status == 200 else "waiting for ServiceAccount default/default"

    def _check_processes(self) -> None:
        for proc in self.processes:
            if proc.alive():
                continue
            tail = proc.log_tail()
            if "address already in use" in tail:
                raise _PortTaken(f"{proc.name}: address already in use")
            raise ClusterStartError(
                f"{proc.name} exited (status {proc.exit_code()}); log {proc.log_path}:\n{tail}"
            )

    def _await(
        self,
        what: str,
        pending: Callable[[], str | None],
        deadline: float,
        progress: Progress | None,
    ) -> None:
        began = time.monotonic()
        last = ""
        while True:
            self._check_processes()
            state = pending()
            if state is None:
                return
            if time.monotonic() > deadline:
                tails = "\n".join(
                    f"--- {p.name} ({p.log_path}):\n{p.log_tail(10)}" for p in self.processes
                )
                raise ClusterStartError(f"timed out waiting for {what}: {state}\n{tails}")
            if progress is not None and state != last:
                progress(f"{what}: {state} ({time.monotonic() - began:.1f}s)")
                last = state
            time.sleep(0.1)

    # -- state file ------------------------------------------------------------------------
    def _save_state(self) -> None:
        state: dict[str, Any] = {
            "server": self.server,
            "kubeconfig": str(self.kubeconfig),
            "timings": self.timings,
            "processes": [
                {"name": p.name, "pid": p.pid, "log": str(p.log_path), "argv0": p.argv0}
                for p in self.processes
            ],
        }
        if self.node is not None:
            state["node"] = self.node.record.wire()
        (self.state_dir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")

    @classmethod
    def attach(cls, state_dir: Path) -> LocalCluster | None:
        """The cluster recorded in ``state_dir`` (running or not), or None if none is."""
        try:
            state = json.loads((state_dir / STATE_FILE).read_text())
        except (OSError, ValueError):
            return None
        cluster = cls(state_dir, tie_to_parent=False)
        cluster.server = state.get("server", "")
        cluster.timings = dict(state.get("timings", {}))
        cluster.processes = [
            processes.ManagedProcess(
                name=p["name"], pid=int(p["pid"]), log_path=Path(p["log"]), argv0=p["argv0"]
            )
            for p in state.get("processes", [])
        ]
        if state.get("node"):
            cluster.node = RealNode(NodeRecord.from_wire(state["node"]))
            cluster.with_node = True
        return cluster

    def status(self) -> dict[str, Any]:
        """Liveness of each component and the API's readiness, for `dev-cluster status`."""
        running = {p.name: p.alive() for p in self.processes}
        ready = (
            bool(self.server)
            and running.get("kube-apiserver", False)
            and (self._readyz_pending() is None)
        )
        if ready and self.node is not None:
            ready = self._node_pending() is None
        return {
            "server": self.server,
            "kubeconfig": str(self.kubeconfig),
            "processes": running,
            "node": self.node.name if self.node is not None else None,
            "ready": ready,
            "timings": self.timings,
        }


def reap_stale(parent: Path, prefix: str) -> list[Path]:
    """Clean up clusters under ``parent/prefix*`` whose processes are all gone.

    A test session killed outright (SIGKILL) takes its components down with it
    (PR_SET_PDEATHSIG) but leaves its node's containers, mounts and cgroups; the next
    session calls this on its own state directories' parent. Returns what it removed.
    """
    reaped = []
    for directory in sorted(parent.glob(f"{prefix}*")):
        cluster = LocalCluster.attach(directory)
        if cluster is None or any(p.alive() for p in cluster.processes):
            continue
        if not cluster.stop(remove_state=True):
            reaped.append(directory)
    return reaped
