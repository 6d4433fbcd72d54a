"""Per-CR state stays small: the CR body and the last written status are kept as compact
JSON (managedFields dropped) and read back unchanged."""

from __future__ import annotations

import json

from inference_thresholds.api.crd import InferenceThresholdsStatus
from inference_thresholds.controller.operator_state import CrState


def test_body_is_kept_without_managed_fields_and_reads_back() -> None:
    cr = CrState()
    body = {
        "apiVersion": "thresholds.inference.dev/v1alpha1",
        "metadata": {
            "name": "a",
            "namespace": "ns",
            "uid": "u1",
            "generation": 3,
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}] * 50,
        },
        "spec": {"model": {"preset": "llama-3.1-8b"}},
        "status": {"observedGeneration": 2},
    }
    cr.body = body
    assert "managedFields" not in cr.body["metadata"]
    assert cr.body["spec"] == body["spec"] and cr.body["metadata"]["generation"] == 3
    assert len(cr.body_json) < len(json.dumps(body)) / 5
    cr.body["spec"]["model"] = {}  # a reader's copy: the kept body is unchanged
    assert cr.body["spec"] == body["spec"]


def test_written_status_round_trips() -> None:
    cr = CrState()
    status = InferenceThresholdsStatus.model_validate(
        {"observedGeneration": 4, "nodesMatched": 7, "effectiveClass": "gpu-a"}
    )
    cr.remember_written("u1", status)
    assert cr.written_status("u1") == status
    assert cr.written_status("u2") is None  # a re-created CR of the same name
