"""Alert rules comparing observed performance with the operator's exported thresholds.

Multi-window, burn-rate style (as Sloth and Pyrra generate them): an alert fires only
when the observed level is on the wrong side of the threshold over BOTH a long window
(it is sustained) and a short one (it is still happening), so one slow minute pages
nobody and a recovered deployment stops alerting within the short window.

- page:   1h and 5m windows
- ticket: 6h and 30m windows

Observed levels are recording rules built from the same preset (or custom) query the
adaptation loop uses, one per window, labelled with the CR's ``namespace`` and ``name``
so they join the operator's gauges ``inference_thresholds_effective_min_tokens_per_second``
and ``inference_thresholds_effective_max_time_to_first_token_seconds``. Scrape the
operator with ``honor_labels: true`` (ServiceMonitor ``honorLabels: true``) so its
``namespace`` label is not renamed to ``exported_namespace``.

Run ``python -m inference_thresholds.adaptation.alerts CR.yaml [--prometheus-rule]`` for a
rules file (``promtool check rules``) or a prometheus-operator ``PrometheusRule``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..api.adaptation import AdaptationSpec, parse_duration
from ..api.crd import InferenceThresholdsSpec
from . import presets

METRIC_MIN_TPS = "inference_thresholds_effective_min_tokens_per_second"
METRIC_MAX_TTFT = "inference_thresholds_effective_max_time_to_first_token_seconds"
RECORD_DECODE = "inference_thresholds:observed_decode_tokens_per_second:window"
RECORD_TTFT = "inference_thresholds:observed_time_to_first_token_seconds:window"


@dataclass(frozen=True)
class Tier:
    severity: str
    long: str
    short: str


TIERS = (Tier("page", "1h", "5m"), Tier("ticket", "6h", "30m"))
WINDOWS = sorted({w for t in TIERS for w in (t.long, t.short)}, key=parse_duration)


def _sel(namespace: str, name: str) -> str:
    return f'{{namespace="{namespace}",name="{name}"}}'


def _breach(record: str, op: str, threshold: str, window: str, sel: str) -> str:
    return f"({record}{window}{sel} {op} on(namespace, name) {threshold}{sel})"


def rule_groups(namespace: str, name: str, spec: AdaptationSpec) -> list[dict[str, Any]]:
    templates = presets.queries(spec)
    labels = {"namespace": namespace, "name": name}
    sel = _sel(namespace, name)
    records: list[dict[str, Any]] = []
    alerts: list[dict[str, Any]] = []
    signals = [
        (
            templates.decode_tokens_per_second,
            RECORD_DECODE,
            "<",
            METRIC_MIN_TPS,
            "InferenceDecodeTooSlow",
            "decode tokens/s per sequence below minTokensPerSecond",
            '{{ $value | printf "%.3g" }} tok/s',
        ),
        (
            templates.time_to_first_token_seconds,
            RECORD_TTFT,
            ">",
            METRIC_MAX_TTFT,
            "InferenceTimeToFirstTokenTooHigh",
            f"p{spec.ttft_quantile * 100:g} time to first token above maxTimeToFirstTokenMs",
            "{{ $value | humanizeDuration }}",
        ),
    ]
    for template, record, op, threshold, alert, what, value in signals:
        if template is None:
            continue
        for window in WINDOWS:
            records.append(
                {
                    "record": f"{record}{window}",
                    "expr": presets.render(template, spec, parse_duration(window)),
                    "labels": dict(labels),
                }
            )
        for tier in TIERS:
            expr = (
                f"{_breach(record, op, threshold, tier.long, sel)}\n"
                f"and on(namespace, name)\n"
                f"{_breach(record, op, threshold, tier.short, sel)}"
            )
            alerts.append(
                {
                    "alert": alert,
                    "expr": expr,
                    "labels": {**labels, "severity": tier.severity},
                    "annotations": {
                        "summary": f"{namespace}/{name}: {what}",
                        "description": f"Observed {value} over {tier.long} and {tier.short} "
                        f"is worse than the threshold from InferenceThresholds {namespace}/"
                        f"{name} (kubectl describe ith -n {namespace} {name}).",
                    },
                }
            )
    # One group: rules in a group run in order, so each alert sees the recording rules
    # of the same evaluation (separate groups run concurrently and an alert could read
    # the previous evaluation's values).
    return [{"name": f"inference-thresholds.{namespace}.{name}", "rules": records + alerts}]


def rules_file(namespace: str, name: str, spec: AdaptationSpec) -> dict[str, Any]:
    return {"groups": rule_groups(namespace, name, spec)}


def prometheus_rule(
    namespace: str, name: str, spec: AdaptationSpec, owner_uid: str | None = None
) -> dict[str, Any]:
    """A monitoring.coreos.com/v1 PrometheusRule, owned by the CR when owner_uid is given."""
    meta: dict[str, Any] = {
        "name": f"{name}-thresholds",
        "namespace": namespace,
        "labels": {
            "app.kubernetes.io/managed-by": "inference-thresholds",
            "thresholds.inference.dev/owner": name,
        },
    }
    if owner_uid:
        meta["ownerReferences"] = [
            {
                "apiVersion": "thresholds.inference.dev/v1alpha1",
                "kind": "InferenceThresholds",
                "name": name,
                "uid": owner_uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": meta,
        "spec": rules_file(namespace, name, spec),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("cr", type=Path, help="InferenceThresholds YAML file")
    parser.add_argument("--prometheus-rule", action="store_true", help="emit a PrometheusRule")
    args = parser.parse_args(argv)
    doc = yaml.safe_load(args.cr.read_text())
    meta = doc.get("metadata") or {}
    try:
        spec = InferenceThresholdsSpec.model_validate(doc.get("spec") or {}).adaptation
    except ValueError as exc:
        print(f"error: {args.cr}: spec: {exc}", file=sys.stderr)
        return 2
    ns, name = meta.get("namespace", "default"), meta["name"]
    out = prometheus_rule(ns, name, spec) if args.prometheus_rule else rules_file(ns, name, spec)
    sys.stdout.write(yaml.safe_dump(out, sort_keys=False, width=100))
    return 0


if __name__ == "__main__":
    sys.exit(main())
