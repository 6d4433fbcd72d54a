"""Kubeconfig and in-cluster credentials for the agent's own Node client.

Requests against a real apiserver are in tests/cluster (test_agent_admission.py,
test_agent_process.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from inference_thresholds_agent import kube_rest
from inference_thresholds_agent.kube_rest import (
    RestNodeApi,
    UnsupportedKubeconfig,
    from_kubeconfig,
    in_cluster,
)


def kubeconfig(
    tmp_path: Path, user: dict[str, object], server: str = "http://127.0.0.1:8080"
) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "dev",
                "contexts": [{"name": "dev", "context": {"cluster": "c", "user": "u"}}],
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": user}],
            }
        )
    )
    return path


def test_token_user(tmp_path: Path) -> None:
    endpoint = from_kubeconfig(kubeconfig(tmp_path, {"token": "abc"}))
    assert endpoint.server == "http://127.0.0.1:8080"
    assert endpoint.bearer() == "abc"


def test_token_file_is_reread_on_every_request(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("first\n")
    endpoint = from_kubeconfig(kubeconfig(tmp_path, {"tokenFile": "token"}))
    assert endpoint.bearer() == "first"
    (tmp_path / "token").write_text("rotated\n")  # kubelet rotates projected tokens
    assert endpoint.bearer() == "rotated"


def test_plugins_are_refused_and_connect_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = kubeconfig(tmp_path, {"exec": {"command": "aws", "apiVersion": "x"}})
    with pytest.raises(UnsupportedKubeconfig):
        from_kubeconfig(path)
    chosen: list[str | None] = []

    class Official:
        @classmethod
        def from_config(cls, kubeconfig: str | None = None) -> str:
            chosen.append(kubeconfig)
            return "official"

    import inference_thresholds_agent.publisher as publisher

    monkeypatch.setattr(publisher, "KubernetesNodeApi", Official)
    assert kube_rest.connect(str(path)) == "official"
    assert chosen == [str(path)]


def test_explicit_token_replaces_the_users_credentials(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path, {"exec": {"command": "plugin"}})
    assert from_kubeconfig(path, token="bound").bearer() == "bound"


def test_missing_context_names_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no context named 'other'"):
        from_kubeconfig(kubeconfig(tmp_path, {"token": "x"}), "other")
    with pytest.raises(FileNotFoundError, match="kubeconfig"):
        from_kubeconfig(tmp_path / "absent")


def test_in_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kube_rest, "SERVICE_ACCOUNT_DIR", tmp_path)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(FileNotFoundError):
        in_cluster()
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    (tmp_path / "token").write_text("projected")
    with pytest.raises(OSError):  # no ca.crt next to the token: refuses to talk without one
        in_cluster()


def test_server_url_parts(tmp_path: Path) -> None:
    api = RestNodeApi(from_kubeconfig(kubeconfig(tmp_path, {"token": "t"}, "https://h:6443/p")))
    assert (api._host, api._port, api._prefix, api._https) == ("h", 6443, "/p", True)
