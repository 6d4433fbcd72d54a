"""``node-agent prune`` and the label filter: what is removed, what stays, no-op reruns.

The real apiserver runs prune with the chart hook's own RBAC in
tests/cluster/test_agent_prune.py.
"""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

import pytest
from agent_fakes import MemoryNodes, merge, node

from inference_thresholds.api.node_contract import (
    AGENT_ANNOTATIONS,
    LABEL_PREFIX,
    OWNED_LABELS_ANNOTATION,
)
from inference_thresholds.cli.main import main
from inference_thresholds_agent.labels import LabelFilter, profile_labels
from inference_thresholds_agent.profile import detect_profile
from inference_thresholds_agent.prune import prune_nodes, prune_patch, wait_for_agents
from inference_thresholds_agent.publisher import publish

HOSTS = Path(__file__).resolve().parents[1] / "fixtures" / "hosts"
DGX = detect_profile(HOSTS / "dgx-a100-80gb")


class Cluster:
    """Several nodes in memory: list/get/patch as the apiserver does, plus pods to wait on."""

    def __init__(self, nodes: list[dict[str, Any]], pods: list[int] | None = None) -> None:
        self.nodes = {n["metadata"]["name"]: n for n in nodes}
        self.pod_counts = iter(pods or [0])
        self.patches: list[tuple[str, dict[str, Any]]] = []

    def list_nodes(self) -> list[dict[str, Any]]:
        return copy.deepcopy(list(self.nodes.values()))

    def list_pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        return [{}] * next(self.pod_counts)

    def get_node(self, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.nodes[name])

    def patch_node(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        if name == "broken":
            raise RuntimeError("HTTP 403: forbidden")
        self.patches.append((name, patch))
        self.nodes[name] = merge(self.nodes[name], patch)
        return copy.deepcopy(self.nodes[name])


def _published(name: str, extra: dict[str, str] | None = None) -> dict[str, Any]:
    api = MemoryNodes(node({LABEL_PREFIX + "user.pinned": "yes", "team": "ml", **(extra or {})}))
    api.node["metadata"]["name"] = name
    api.node["metadata"]["annotations"] = {"other.io/note": "keep"}
    publish(api, api.node, DGX)
    return api.node


def test_prune_removes_exactly_the_owned_labels_and_agent_annotations() -> None:
    cluster = Cluster([_published("a"), _published("b"), node()])
    before = cluster.nodes["a"]["metadata"]["labels"]
    owned = cluster.nodes["a"]["metadata"]["annotations"][OWNED_LABELS_ANNOTATION].split(",")
    assert len(owned) > 10 and set(owned) <= set(before)

    report = prune_nodes(cluster, cluster.list_nodes())
    assert report.ok and sorted(report.pruned) == ["a", "b"] and report.clean == ["node-a"]
    assert report.pruned["a"] == len(owned) + len(AGENT_ANNOTATIONS)
    for name in ("a", "b"):
        meta = cluster.nodes[name]["metadata"]
        assert not set(owned) & set(meta["labels"])
        # hand-set labels under our prefix, other labels and annotations stay
        assert meta["labels"] == {
            "kubernetes.io/hostname": "node-a", LABEL_PREFIX + "user.pinned": "yes", "team": "ml",
        }  # fmt: skip
        assert meta["annotations"] == {"other.io/note": "keep"}

    # a second run writes nothing
    writes = len(cluster.patches)
    again = prune_nodes(cluster, cluster.list_nodes())
    assert again.ok and not again.pruned and len(cluster.patches) == writes


def test_prune_collects_failures_and_carries_on() -> None:
    cluster = Cluster([_published("broken"), _published("fine")])
    report = prune_nodes(cluster, cluster.list_nodes())
    assert not report.ok and "broken: HTTP 403" in report.summary()
    assert "fine" in report.pruned


def test_a_label_the_owned_list_does_not_name_is_never_removed() -> None:
    published = _published("a")
    published["metadata"]["labels"][LABEL_PREFIX + "cpu.vendor"] = "changed-by-hand"
    annotations = published["metadata"]["annotations"]
    annotations[OWNED_LABELS_ANNOTATION] = LABEL_PREFIX + "gpu.count"
    patch = prune_patch(published)["metadata"]
    assert patch["labels"] == {LABEL_PREFIX + "gpu.count": None}


def test_wait_for_agents_polls_until_gone_and_gives_up_at_the_deadline() -> None:
    ticks = itertools.count()
    clock = lambda: float(next(ticks))  # noqa: E731 - one second per call
    assert wait_for_agents(
        Cluster([], [3, 1, 0]), "ns", "app=agent", 60, clock=clock, sleep=lambda s: None
    )
    assert not wait_for_agents(
        Cluster([], [2] * 100), "ns", "app=agent", 5, clock=clock, sleep=lambda s: None
    )


def test_label_filter_follows_nfd_label_whitelist() -> None:
    everything = profile_labels(DGX)
    no_gpu = profile_labels(DGX, LabelFilter.parse(None, r"^gpu\."))
    assert any(k.startswith(LABEL_PREFIX + "gpu.") for k in everything)
    assert not any(k.startswith(LABEL_PREFIX + "gpu.") for k in no_gpu)
    assert set(no_gpu) == {k for k in everything if not k.startswith(LABEL_PREFIX + "gpu.")}
    only_cpu = profile_labels(DGX, LabelFilter.parse("^cpu[.]", r"isa"))
    assert only_cpu and all(k.startswith(LABEL_PREFIX + "cpu.") for k in only_cpu)
    assert not any(".isa." in k for k in only_cpu)  # exclude wins
    with pytest.raises(ValueError, match="labels-include '\\(': not a regular expression"):
        LabelFilter.parse("(", None)


def test_excluding_labels_later_removes_them_from_the_node() -> None:
    api = MemoryNodes(node())
    publish(api, api.node, DGX)
    assert publish(api, api.node, DGX, LabelFilter.parse(None, "^gpu")).written
    labels = api.node["metadata"]["labels"]
    owned = api.node["metadata"]["annotations"][OWNED_LABELS_ANNOTATION]
    assert not any(k.startswith(LABEL_PREFIX + "gpu.") for k in labels)
    assert "gpu." not in owned


def test_cli_prune_arguments(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["node-agent", "run", "--node-name", "n", "--labels-exclude", "("]) == 2
    assert "--labels-exclude '(': not a regular expression" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["node-agent", "prune"])  # --node-name or --all-nodes is required
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    assert main(["node-agent", "prune", "--all-nodes", "--wait-for-agents", "app=x"]) == 2
    assert "--wait-for-agents needs --agent-namespace" in capsys.readouterr().err
