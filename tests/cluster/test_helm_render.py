"""The chart as rendered by the real helm binary: lint, schema, templates (no apiserver).

(These sit with the cluster tests because they share the helm tooling; they start no
control plane.)
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_support import ALL_ON_VALUES, CHART, ROOT, Helm, find, make_helm

from inference_thresholds.cli.main import build_parser

pytestmark = pytest.mark.helm


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return make_helm(tmp_path_factory)


ACCELERATOR_TAINTS = {"nvidia.com/gpu", "amd.com/gpu", "aws.amazon.com/neuron", "habana.ai/gaudi"}


def _pods(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        "operator": find(objects, "Deployment", "-operator")["spec"]["template"]["spec"],
        "agent": find(objects, "DaemonSet", "-node-agent")["spec"]["template"]["spec"],
    }


@pytest.mark.parametrize("values", [None, ALL_ON_VALUES], ids=["defaults", "all-on"])
def test_lint_strict_is_clean(helm: Helm, values: dict[str, Any] | None) -> None:
    args = ["lint", "--strict", str(CHART)]
    if values:
        args += ["-f", str(helm.values_file(values))]
    result = helm.run(*args, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout


def test_defaults_render_the_expected_objects(helm: Helm) -> None:
    kinds = sorted(o["kind"] for o in helm.objects())
    assert kinds == sorted(
        [
            "ServiceAccount", "ServiceAccount",
            "ClusterRole", "ClusterRole", "ClusterRoleBinding", "ClusterRoleBinding",
            "Role", "RoleBinding",  # the leader-election Lease
            "Service", "Service", "Deployment", "DaemonSet",
            "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
        ]
    )  # fmt: skip


def test_all_on_renders_the_optional_objects(helm: Helm) -> None:
    objects = helm.objects(ALL_ON_VALUES)
    kinds = [o["kind"] for o in objects]
    assert kinds.count("ServiceMonitor") == 2
    assert kinds.count("PrometheusRule") == 1
    policy_cm = find(objects, "ConfigMap", "-operator-policy")
    assert yaml.safe_load(policy_cm["data"]["policy.yaml"]) == ALL_ON_VALUES["operator"]["policy"]
    for obj in objects:
        assert obj["metadata"]["labels"]["env"] == "test", obj["metadata"]["name"]


@pytest.mark.parametrize("values", [None, ALL_ON_VALUES], ids=["defaults", "all-on"])
def test_pods_meet_pod_security_restricted(helm: Helm, values: dict[str, Any] | None) -> None:
    for component, pod in _pods(helm.objects(values)).items():
        assert pod["securityContext"]["runAsNonRoot"] is True, component
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
        for volume in pod.get("volumes", []):
            assert "hostPath" not in volume, f"{component}: hostPath volume {volume['name']}"
        (container,) = pod["containers"]
        ctx = container["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False, component
        assert ctx["readOnlyRootFilesystem"] is True, component
        assert ctx["capabilities"] == {"drop": ["ALL"]}, component
        assert not ctx.get("privileged"), component
        assert container["resources"]["limits"]["memory"], component


def test_workload_args_are_accepted_by_the_real_cli(helm: Helm) -> None:
    """The chart passes flags the CLI actually has (argparse exits 2 on an unknown one)."""
    parser = build_parser()
    for values in (None, ALL_ON_VALUES, {"operator": {"watchNamespaces": ["a", "b"]}}):
        for component, pod in _pods(helm.objects(values)).items():
            (container,) = pod["containers"]
            args = [a.replace("$(NODE_NAME)", "node-a") for a in container["args"]]
            parsed = parser.parse_args(args)
            assert parsed.func is not None, component
    pods = _pods(helm.objects({"operator": {"watchNamespaces": ["a", "b"]}}))
    parsed = parser.parse_args(pods["operator"]["containers"][0]["args"])
    assert parsed.namespace == ["a", "b"] and not parsed.all_namespaces


def test_operator_is_one_replica_rolled_with_leader_election(helm: Helm) -> None:
    objects = helm.objects()
    deployment = find(objects, "Deployment", "-operator")
    assert deployment["spec"]["replicas"] == 1
    # The new pod stands by until the old one releases the Lease: rolling is safe.
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert "--all-namespaces" in container["args"]
    assert "--leader-elect" in container["args"]
    assert f"--lease-name={deployment['metadata']['name']}" in container["args"]
    assert not any(a.startswith("--policy") for a in container["args"])
    assert not [o for o in objects if o["kind"] == "PodDisruptionBudget"]  # one replica
    assert "affinity" not in deployment["spec"]["template"]["spec"]
    # With host ports no surge pod fits beside the old one: the old one goes first.
    host = find(helm.objects({"operator": {"hostNetwork": True}}), "Deployment", "-operator")
    assert host["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}


def test_leader_election_off_is_one_replica_recreated(helm: Helm) -> None:
    objects = helm.objects({"operator": {"leaderElection": {"enabled": False}}})
    deployment = find(objects, "Deployment", "-operator")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert "--leader-elect" not in container["args"]
    assert not [o for o in objects if o["kind"] in ("Role", "RoleBinding")]
    result = helm.run(
        "template",
        "r",
        str(CHART),
        "-f",
        str(helm.values_file({"operator": {"replicas": 2, "leaderElection": {"enabled": False}}})),
        check=False,
    )
    assert result.returncode != 0
    assert "leaderElection.enabled" in result.stderr


def test_two_replicas_spread_with_a_disruption_budget_and_a_lease_role(helm: Helm) -> None:
    objects = helm.objects({"operator": {"replicas": 2}})
    deployment = find(objects, "Deployment", "-operator")
    name = deployment["metadata"]["name"]
    assert deployment["spec"]["replicas"] == 2
    selector = deployment["spec"]["selector"]["matchLabels"]
    (pdb,) = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    assert pdb["spec"] == {"minAvailable": 1, "selector": {"matchLabels": selector}}
    anti = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    (term,) = anti["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"] == {
        "topologyKey": "kubernetes.io/hostname",
        "labelSelector": {"matchLabels": selector},
    }
    hard = find(
        helm.objects({"operator": {"replicas": 2, "podAntiAffinity": "hard"}}),
        "Deployment",
        "-operator",
    )
    required = hard["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert required["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"] == (
        "kubernetes.io/hostname"
    )
    # Lease RBAC: in the release namespace only; get/update on this one Lease by name.
    role = find(objects, "Role", "-leader-election")
    assert role["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    named, create = role["rules"]
    assert named == {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "resourceNames": [name],
        "verbs": ["get", "update"],
    }
    assert create["verbs"] == ["create"] and "resourceNames" not in create
    binding = find(objects, "RoleBinding", "-leader-election")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert not any(
        "leases" in rule.get("resources", [])
        for o in objects
        if o["kind"] == "ClusterRole"
        for rule in o["rules"]
    )


def test_policy_values_are_mounted_and_passed(helm: Helm) -> None:
    objects = helm.objects({"operator": {"policy": {"maxFloor": 0.8}}})
    pod = _pods(objects)["operator"]
    (container,) = pod["containers"]
    (policy_arg,) = [a for a in container["args"] if a.startswith("--policy=")]
    path = Path(policy_arg.split("=", 1)[1])
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "policy"]
    assert mount["mountPath"] == str(path.parent) and "subPath" not in mount  # edits propagate
    cm = find(objects, "ConfigMap", "-operator-policy")
    (volume,) = [v for v in pod["volumes"] if v["name"] == "policy"]
    assert volume["configMap"]["name"] == cm["metadata"]["name"]
    assert path.name in cm["data"]


def test_agent_runs_on_accelerator_nodes_with_its_node_name(helm: Helm) -> None:
    pod = _pods(helm.objects())["agent"]
    tolerated = {t["key"] for t in pod["tolerations"] if t["operator"] == "Exists"}
    assert tolerated >= ACCELERATOR_TAINTS
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert "--node-name=$(NODE_NAME)" in container["args"]
    assert env["NVIDIA_VISIBLE_DEVICES"]["value"] == "all"
    assert "runtimeClassName" not in pod
    assert not container["resources"].get("limits", {}).get("nvidia.com/gpu")

    on = _pods(helm.objects(ALL_ON_VALUES))["agent"]
    assert on["runtimeClassName"] == "nvidia"
    keys = [t["key"] for t in on["tolerations"]]
    assert set(keys) >= ACCELERATOR_TAINTS | {"google.com/tpu"}  # extra ones add, not replace


def test_admission_policy_keeps_the_agent_files_cel(helm: Helm) -> None:
    source = [
        d
        for d in yaml.safe_load_all(
            (ROOT / "node-agent" / "deploy" / "admission-policy.yaml").read_text()
        )
        if d
    ]
    objects = helm.objects(release="rel", namespace="ops")
    policy = find(objects, "ValidatingAdmissionPolicy")
    binding = find(objects, "ValidatingAdmissionPolicyBinding")
    for key in ("validations", "variables", "matchConstraints", "failurePolicy"):
        assert policy["spec"][key] == source[0]["spec"][key], key
    (condition,) = policy["spec"]["matchConditions"]
    sa = find(objects, "ServiceAccount", "-node-agent")["metadata"]["name"]
    assert condition["expression"] == (
        f"request.userInfo.username == 'system:serviceaccount:ops:{sa}'"
    )
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]


def test_watch_namespaces_turns_cluster_rules_into_roles(helm: Helm) -> None:
    objects = helm.objects({"operator": {"watchNamespaces": ["team-a", "team-b"]}})
    cluster_role = find(objects, "ClusterRole", "-operator")
    cluster_resources = {r for rule in cluster_role["rules"] for r in rule["resources"]}
    assert cluster_resources == {"nodes", "customresourcedefinitions", "namespaces"}
    # (the leader-election Role for the Lease in the release namespace is apart)
    roles = [o for o in objects if o["kind"] == "Role" and "leader" not in o["metadata"]["name"]]
    bindings = [
        o for o in objects if o["kind"] == "RoleBinding" and "leader" not in o["metadata"]["name"]
    ]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for role in roles:
        resources = {r for rule in role["rules"] for r in rule["resources"]}
        assert resources == {
            "inferencethresholds", "inferencethresholds/status",
            "inferencethresholds/finalizers", "configmaps", "events",
        }  # fmt: skip


def test_rbac_grants_no_secrets_and_no_wildcards(helm: Helm) -> None:
    for values in (None, {"operator": {"watchNamespaces": ["a"]}}):
        for obj in helm.objects(values):
            if obj["kind"] not in ("ClusterRole", "Role"):
                continue
            for rule in obj["rules"]:
                assert "*" not in rule["verbs"] and "*" not in rule["resources"], obj
                assert "secrets" not in rule["resources"], obj
                assert not {"deletecollection", "escalate", "bind", "impersonate"} & set(
                    rule["verbs"]
                ), obj
                # delete: only the ConfigMap a rename of spec.configMap.name left behind
                if "delete" in rule["verbs"]:
                    assert rule["resources"] == ["configmaps"], obj


def test_read_secrets_grants_get_by_name_only_where_crs_are_served(helm: Helm) -> None:
    for values, kind in (
        ({"operator": {"readSecrets": True}}, "ClusterRole"),
        ({"operator": {"readSecrets": True, "watchNamespaces": ["team-a"]}}, "Role"),
    ):
        objects = helm.objects(values)
        rules = [
            rule
            for obj in objects
            if obj["kind"] in ("ClusterRole", "Role")
            for rule in obj["rules"]
            if "secrets" in rule["resources"]
        ]
        assert [r["verbs"] for r in rules] == [["get"]]
        holder = [o for o in objects if o["kind"] in ("ClusterRole", "Role") and any(
            "secrets" in r["resources"] for r in o["rules"])]  # fmt: skip
        assert [h["kind"] for h in holder] == [kind]


def test_manage_alert_rules_grants_prometheusrules_only_when_enabled(helm: Helm) -> None:
    def prometheusrule_verbs(values: dict[str, object] | None) -> list[list[str]]:
        return [
            sorted(rule["verbs"])
            for obj in helm.objects(values)
            if obj["kind"] in ("ClusterRole", "Role")
            for rule in obj["rules"]
            if "prometheusrules" in rule["resources"]
        ]

    assert prometheusrule_verbs(None) == []
    enabled = prometheusrule_verbs({"operator": {"manageAlertRules": True}})
    assert enabled == [["create", "delete", "get", "update"]]


BAD_VALUES = [
    ({"operatr": {"enabled": False}}, "additional properties 'operatr' not allowed"),
    ({"agent": {"interval": 1}}, "/agent/interval"),
    ({"agent": {"interval": "60s"}}, "/agent/interval"),
    ({"operator": {"image": {"digest": "latest"}}}, "/operator/image/digest"),
    ({"operator": {"metrics": {"port": 70000}}}, "/operator/metrics/port"),
    ({"operator": {"watchNamespaces": ["Team_A"]}}, "/operator/watchNamespaces/0"),
    ({"operator": {"watchNamespaces": ["team-*"]}}, "/operator/watchNamespaces/0"),
    ({"operator": {"policy": {"decodeFlor": {"production": 0.5}}}}, "'decodeFlor' not allowed"),
    ({"operator": {"policy": {"decodeFloor": {"prod": 0.5}}}}, "'prod' not allowed"),
    ({"operator": {"policy": {"maxFloor": "high"}}}, "/operator/policy/maxFloor"),
    ({"agent": {"tolerations": [{"key": "x", "operator": "Maybe"}]}}, "/agent/tolerations/0"),
    ({"agent": {"logLevel": "TRACE"}}, "/agent/logLevel"),
    ({"agent": {"admissionPolicy": {"validationActions": []}}}, "validationActions"),
    ({"agent": {"runtimeClassName": "NVIDIA runtime"}}, "/agent/runtimeClassName"),
    ({"agent": {"resources": {"limits": {"memory": "lots"}}}}, "/agent/resources/limits/memory"),
    ({"serviceMonitor": {"interval": "5 minutes"}}, "/serviceMonitor/interval"),
    ({"prometheusRule": {"extraRules": [{"alert": "X"}]}}, "/prometheusRule/extraRules/0"),
    ({"imagePullSecrets": [{"name": "regcred"}]}, "/imagePullSecrets/0"),
    ({"commonLabels": {"tier": 1}}, "/commonLabels/tier"),
]


@pytest.mark.parametrize(("values", "expected"), BAD_VALUES, ids=[e for _, e in BAD_VALUES])
def test_schema_rejects_bad_values_naming_the_field(
    helm: Helm, values: dict[str, Any], expected: str
) -> None:
    result = helm.run(
        "template", "it", str(CHART), "-f", str(helm.values_file(values)), check=False
    )
    assert result.returncode != 0, f"accepted: {values}"
    assert "values don't meet the specifications of the schema" in result.stderr
    assert expected in result.stderr, result.stderr


def test_service_account_name_required_when_not_created(helm: Helm) -> None:
    values = {"agent": {"serviceAccount": {"create": False}}}
    result = helm.run(
        "template", "it", str(CHART), "-f", str(helm.values_file(values)), check=False
    )
    assert result.returncode != 0
    assert "agent.serviceAccount.name is required" in result.stderr


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) absent")
def test_prometheus_rules_pass_promtool(helm: Helm, tmp_path: Path) -> None:
    rule = find(helm.objects(ALL_ON_VALUES), "PrometheusRule")
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    result = subprocess.run(
        ["promtool", "check", "rules", str(rules_file)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    alerts = [r["alert"] for r in rule["spec"]["groups"][0]["rules"] if "alert" in r]
    assert len(alerts) == 5 and len(set(alerts)) == 5
    for r in rule["spec"]["groups"][0]["rules"]:
        if "alert" in r:
            assert r["labels"] == ALL_ON_VALUES["prometheusRule"]["alertLabels"]
            assert r["for"] == "10m"


def test_components_can_be_disabled(helm: Helm) -> None:
    only_operator = helm.objects({"agent": {"enabled": False}, "serviceMonitor": {"enabled": True}})
    assert not [o for o in only_operator if "node-agent" in o["metadata"]["name"]]
    values = copy.deepcopy(ALL_ON_VALUES)
    values["operator"]["enabled"] = False
    only_agent = helm.objects(values)
    assert not [o for o in only_agent if o["metadata"]["name"].endswith("-operator")]
    rule = find(only_agent, "PrometheusRule")
    assert all("Operator" not in r.get("alert", "") for r in rule["spec"]["groups"][0]["rules"])


# Values of the kind inference_thresholds_dev.local_chart writes for a bare kubelet.
HOST_NETWORK_VALUES: dict[str, Any] = {
    "apiServer": {"host": "127.0.0.1", "port": 6443},
    "operator": {
        "hostNetwork": True,
        "bindAddress": "127.0.0.1",
        "metrics": {"port": 18080},
        "liveness": {"port": 18081},
    },
    "agent": {"hostNetwork": True, "bindAddress": "127.0.0.1", "metrics": {"port": 18082}},
}


def test_host_network_values_reach_the_apiserver_and_probe_the_bind_address(
    helm: Helm,
) -> None:
    parser = build_parser()
    for component, pod in _pods(helm.objects(HOST_NETWORK_VALUES)).items():
        assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
        (container,) = pod["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["KUBERNETES_SERVICE_HOST"] == "127.0.0.1", component
        assert env["KUBERNETES_SERVICE_PORT"] == "6443", component
        probes = [container[p] for p in ("livenessProbe", "readinessProbe", "startupProbe")
                  if p in container]  # fmt: skip
        assert probes and all(p["httpGet"]["host"] == "127.0.0.1" for p in probes), component
        args = parser.parse_args([a.replace("$(NODE_NAME)", "n") for a in container["args"]])
        bind = args.bind if component == "operator" else args.metrics_address
        assert bind == "127.0.0.1", component
    # The defaults: the Service, the pod network, probes at the pod IP.
    for component, pod in _pods(helm.objects()).items():
        (container,) = pod["containers"]
        assert "hostNetwork" not in pod, component
        assert "KUBERNETES_SERVICE_HOST" not in {e["name"] for e in container["env"]}
        assert all("host" not in container[p]["httpGet"] for p in ("livenessProbe",))


def test_bind_address_must_be_an_ip(helm: Helm) -> None:
    values = helm.values_file({"agent": {"bindAddress": "localhost; rm -rf /"}})
    result = helm.run("template", "it", str(CHART), "-f", str(values), check=False)
    assert result.returncode != 0 and "bindAddress" in result.stderr


def test_pods_get_no_service_link_variables(helm: Helm) -> None:
    """A release named like the chart has a Service `inference-thresholds-operator-metrics`,
    whose link variable INFERENCE_THRESHOLDS_OPERATOR_METRICS_PORT=tcp://... would be read as
    the operator's metrics-port setting (a crash loop seen on the real node)."""
    objects = helm.objects(release="inference-thresholds")
    assert find(objects, "Service", "-operator-metrics")["metadata"]["name"] == (
        "inference-thresholds-operator-metrics"
    )
    for component, pod in _pods(objects).items():
        assert pod["enableServiceLinks"] is False, component
