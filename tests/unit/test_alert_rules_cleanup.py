"""The per-CR PrometheusRule clean-up when alertRules is off (controller/alert_rules.py)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from inference_thresholds.controller import alert_rules


class _Api:
    """Answers every request with one HTTP status (what the apiserver would say)."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.calls: list[tuple[str, str]] = []

    def request(self, method: str, path: str, body: Any = None) -> Any:
        self.calls.append((method, path))
        raise ApiException(status=self.status, reason="test")


@pytest.mark.parametrize("status", [403, 404])
def test_nothing_to_remove_when_absent_or_not_allowed_to_manage_rules(status: int) -> None:
    # 403 is the chart's default RBAC (operator.manageAlertRules false): adapting CRs
    # without alertRules must not warn "PrometheusRuleFailed" on every start.
    api = _Api(status)
    assert alert_rules.remove(api, "ns", "cr", "uid") is False  # type: ignore[arg-type]
    assert api.calls == [
        ("GET", "/apis/monitoring.coreos.com/v1/namespaces/ns/prometheusrules/cr-thresholds")
    ]


def test_other_errors_still_surface() -> None:
    with pytest.raises(ApiException):
        alert_rules.remove(_Api(500), "ns", "cr", "uid")  # type: ignore[arg-type]
