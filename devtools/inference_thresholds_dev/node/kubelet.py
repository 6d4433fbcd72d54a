"""The kubelet's configuration for a node on loopback, with its files under one directory.

Settings that matter on these machines (see REFERENCE.md, "A real node"):
- cgroup v1 hybrid host: ``failCgroupV1: false`` and the cgroupfs driver (no systemd);
  the node's cgroups live under a root of their own (``host.cgroup_root_name``).
- Loopback only: the kubelet serves on 127.0.0.1 (a random port) and is registered as
  ``localhost``, so the apiserver dials ``localhost:<port>`` (it refuses a loopback node
  IP, so the Node's InternalIP is the machine's; the apiserver is told to prefer the
  Hostname address). No read-only port, no healthz port.
- Authenticated API: client certificates from the cluster CA plus webhook authn/authz
  (bearer tokens and SubjectAccessReviews through the apiserver); no anonymous access.
- No iptables chains (``makeIPTablesUtilChains: false``): nothing is written into the
  host's firewall tables.
- Image GC off: images are imported, never pulled, so a collected image could not return.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

NODE_NAME = "localhost"
# How often the kubelet resyncs each pod, which is also when a changed ConfigMap reaches
# its volume (upstream default 1 min; pods here see a CR update within ~10-20 s).
SYNC_FREQUENCY = "10s"


@dataclass(frozen=True)
class KubeletLayout:
    base: Path

    @property
    def config(self) -> Path:
        return self.base / "config.yaml"

    @property
    def kubeconfig(self) -> Path:
        return self.base / "kubelet.kubeconfig"

    @property
    def root_dir(self) -> Path:
        return self.base / "root"

    @property
    def cert_dir(self) -> Path:
        return self.base / "pki"

    @property
    def pod_logs(self) -> Path:
        return self.base / "pod-logs"

    @property
    def volume_plugins(self) -> Path:
        return self.base / "volume-plugins"


def render_config(
    layout: KubeletLayout,
    *,
    port: int,
    ca_cert: Path,
    serving_cert: Path,
    serving_key: Path,
    runtime_endpoint: str,
    cgroup_root: str,
) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": "127.0.0.1",
        "port": port,
        "readOnlyPort": 0,
        "healthzPort": 0,
        "tlsCertFile": str(serving_cert),
        "tlsPrivateKeyFile": str(serving_key),
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True, "cacheTTL": "30s"},
            "x509": {"clientCAFile": str(ca_cert)},
        },
        "authorization": {
            "mode": "Webhook",
            "webhook": {"cacheAuthorizedTTL": "30s", "cacheUnauthorizedTTL": "5s"},
        },
        "containerRuntimeEndpoint": runtime_endpoint,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{cgroup_root}",
        "cgroupsPerQOS": True,
        "failCgroupV1": False,
        "failSwapOn": False,
        "makeIPTablesUtilChains": False,
        "podLogsDir": str(layout.pod_logs),
        "volumePluginDir": str(layout.volume_plugins),
        "syncFrequency": SYNC_FREQUENCY,
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        # A shared development machine: evict only when really short, never because
        # another user's files fill the disk to the usual 85-90 %.
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "serializeImagePulls": False,
        "shutdownGracePeriod": "0s",
        "clusterDomain": "cluster.local",
    }


def write_files(layout: KubeletLayout, config: dict[str, Any]) -> None:
    for directory in (layout.base, layout.root_dir, layout.cert_dir, layout.pod_logs):
        directory.mkdir(parents=True, exist_ok=True)
    layout.config.write_text(yaml.safe_dump(config, sort_keys=False))


def argv(kube: Path, layout: KubeletLayout) -> list[str]:
    return [
        str(kube),
        "kubelet",
        f"--config={layout.config}",
        f"--kubeconfig={layout.kubeconfig}",
        f"--hostname-override={NODE_NAME}",
        f"--root-dir={layout.root_dir}",
        f"--cert-dir={layout.cert_dir}",
        "--v=1",
    ]
