"""The files in examples/: CRs valid against the generated CRD, workloads wired to them."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from client_fixtures import two_class_document, write_configmap_volume

from inference_thresholds.api.crd import API_VERSION, KIND, InferenceThresholdsSpec
from inference_thresholds.client import DEFAULT_PATH

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CRD_FILE = ROOT / "crds" / "inferencethresholds.thresholds.inference.dev.yaml"


def _documents() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for file in sorted(EXAMPLES.glob("*.yaml")):
        out.extend((file.name, doc) for doc in yaml.safe_load_all(file.read_text()) if doc)
    return out


DOCS = _documents()
CRS = [(name, doc) for name, doc in DOCS if doc["kind"] == KIND]
CR_IDS = [f"{name}:{doc['metadata']['name']}" for name, doc in CRS]


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """Reject unknown fields like `kubectl apply` (server-side strict field validation)."""
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if (
                node.get("type") == "object"
                and "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft4Validator:
    crd = yaml.safe_load(CRD_FILE.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    # OpenAPI v3.0 schemas use draft-4 keywords (boolean exclusiveMinimum).
    return jsonschema.Draft4Validator(_strict(version["schema"]["openAPIV3Schema"]))


def test_examples_cover_the_documented_scenarios() -> None:
    presets = {doc["spec"]["model"].get("preset") for _, doc in CRS}
    assert {"bitnet-b1.58-2b-4t", "llama-3.1-8b"} <= presets
    assert any("preset" not in doc["spec"]["model"] for _, doc in CRS)  # explicit model
    kinds = {doc["kind"] for _, doc in DOCS}
    assert {"Deployment", "Job"} <= kinds


@pytest.mark.parametrize(("name", "doc"), CRS, ids=CR_IDS)
def test_cr_is_valid_against_crd_schema(
    validator: jsonschema.Draft4Validator, name: str, doc: dict[str, Any]
) -> None:
    assert doc["apiVersion"] == API_VERSION
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)
    InferenceThresholdsSpec.model_validate(doc["spec"])  # the operator's own check


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "model", "weightBits"), 64),
        (("spec", "context", "environment"), "prod"),
        (("spec", "context", "workload", "promptTokens"), 0),
        (("spec", "model", "parametrsBillion"), 7),  # typo: unknown field
    ],
)
def test_schema_check_catches_mistakes(
    validator: jsonschema.Draft4Validator, path: tuple[str, ...], value: object
) -> None:
    """Guard against a vacuous schema: a broken copy of an example must fail."""
    doc = copy.deepcopy(CRS[0][1])
    node = doc
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    assert list(validator.iter_errors(doc))


def _config_map_names() -> set[str]:
    names = set()
    for _, doc in CRS:
        spec = InferenceThresholdsSpec.model_validate(doc["spec"])
        names.add(spec.config_map_name(doc["metadata"]["name"]))
    return names


def _pod_specs(kind: str) -> list[dict[str, Any]]:
    return [doc["spec"]["template"]["spec"] for _, doc in DOCS if doc["kind"] == kind]


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_workloads_mount_a_generated_configmap_with_node_name(kind: str) -> None:
    names = _config_map_names()
    for pod in _pod_specs(kind):
        volumes = {v["name"]: v for v in pod["volumes"]}
        container = next(c for c in pod["containers"] if c.get("volumeMounts"))
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert DEFAULT_PATH in mounts, f"{kind} must mount the ConfigMap at {DEFAULT_PATH}"
        volume = volumes[mounts[DEFAULT_PATH]["name"]]
        assert volume["configMap"]["name"] in names
        node_env = [e for e in container["env"] if e["name"] == "NODE_NAME"]
        assert node_env[0]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"


def test_deployment_uses_envfrom_of_the_same_configmap() -> None:
    (pod,) = _pod_specs("Deployment")
    server = pod["containers"][0]
    refs = {e["configMapRef"]["name"] for e in server["envFrom"]}
    mounted = {v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v}
    assert refs == mounted and refs <= _config_map_names()


def test_job_runs_the_check_command_and_fails_on_failure() -> None:
    (job,) = [doc for _, doc in DOCS if doc["kind"] == "Job"]
    assert job["spec"]["backoffLimit"] == 0
    script = job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert "inference-thresholds check" in script


class _LlamaServer(BaseHTTPRequestHandler):
    """Answers /completion with llama.cpp server's response shape (timings block)."""

    timings: dict[str, float] = {}

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert self.path == "/completion" and request["n_predict"] > 0
        body = json.dumps({"content": "...", "timings": self.timings}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def llama_server() -> Iterator[tuple[str, type[_LlamaServer]]]:
    handler = type("Handler", (_LlamaServer,), {"timings": {}})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("tps", "expected_exit"), [(40.0, 0), (3.0, 1)])
def test_job_script_end_to_end(
    tmp_path: Path,
    llama_server: tuple[str, type[_LlamaServer]],
    tps: float,
    expected_exit: int,
) -> None:
    """Run the Job's shell script as written, against a server and a mounted ConfigMap."""
    url, handler = llama_server
    handler.timings = {
        "prompt_n": 12,
        "prompt_ms": 310.5,
        "predicted_n": 128,
        "predicted_ms": 128_000 / tps,
        "predicted_per_second": tps,
    }
    mounted = write_configmap_volume(tmp_path / "mnt", two_class_document())
    (job,) = [doc for _, doc in DOCS if doc["kind"] == "Job"]
    script = job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    bin_dir = str(Path(sys.executable).parent)
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "SERVER_URL": url,
        "NODE_NAME": "n-big-1",
        "INFERENCE_THRESHOLDS_PATH": str(mounted),
    }
    result = subprocess.run(
        ["/bin/sh", "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == expected_exit, result.stdout + result.stderr
    assert "class cpu-big" in result.stdout
    assert "time to first token 310.5 ms" in result.stdout
