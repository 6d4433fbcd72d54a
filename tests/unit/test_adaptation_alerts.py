"""Generated alert rules: `promtool check rules`, then `promtool test rules` scenarios.

Marked ``prometheus``: needs Debian's prometheus package (promtool).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from inference_thresholds.adaptation.alerts import (
    METRIC_MAX_TTFT,
    METRIC_MIN_TPS,
    prometheus_rule,
    rules_file,
)
from inference_thresholds.api.adaptation import AdaptationSpec, CustomQueries

pytestmark = pytest.mark.prometheus

NS, NAME = "ml", "llama"
DECODE, TTFT = "InferenceDecodeTooSlow", "InferenceTimeToFirstTokenTooHigh"


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: apt-get install prometheus (see .ci/run)")
    return path


def _spec(source: str = "vllm") -> AdaptationSpec:
    return AdaptationSpec.model_validate(
        {"source": source, "labelMatchers": [{"label": "model_name", "value": "m"}]}
    )


def _annotations(rules: dict[str, Any], alert: str, severity: str, value: str) -> dict[str, str]:
    for group in rules["groups"]:
        for r in group["rules"]:
            if r.get("alert") == alert and r["labels"]["severity"] == severity:
                ann = dict(r["annotations"])
                start = ann["description"].index("{{")
                end = ann["description"].index("}}") + 2
                ann["description"] = ann["description"][:start] + value + ann["description"][end:]
                return ann
    raise AssertionError(f"no {alert}/{severity} rule")


def _alert(rules: dict[str, Any], alert: str, severity: str, value: str) -> dict[str, Any]:
    return {
        "exp_labels": {"namespace": NS, "name": NAME, "severity": severity},
        "exp_annotations": _annotations(rules, alert, severity, value),
    }


def _decode_series(
    count: str,
    threshold: float,
    seconds: str = "0+60x600",
    itl: str = "vllm:inter_token_latency_seconds",
) -> list[dict[str, str]]:
    """vLLM's inter-token latency histogram: ``count`` tokens and ``seconds`` per minute."""
    return [
        {"series": f'{itl}_count{{model_name="m",pod="a"}}', "values": count},
        {"series": f'{itl}_sum{{model_name="m",pod="a"}}', "values": seconds},
        {
            "series": f'{METRIC_MIN_TPS}{{namespace="{NS}",name="{NAME}",job="operator"}}',
            "values": f"{threshold}x600",
        },
    ]


def _pages_and_tickets(
    rules: dict[str, Any], alert: str, series: list[dict[str, str]], value: str
) -> dict[str, Any]:
    """A promtool test: after 7 hours of ``series``, ``alert`` pages and tickets."""
    expected = [_alert(rules, alert, "page", value), _alert(rules, alert, "ticket", value)]
    return {
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [{"eval_time": "7h", "alertname": alert, "exp_alerts": expected}],
    }


def _run(tmp_path: Path, rules: dict[str, Any], tests: list[dict[str, Any]]) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    check = subprocess.run(
        [_promtool(), "check", "rules", str(tmp_path / "rules.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    doc = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    result = subprocess.run(
        [_promtool(), "test", "rules", "tests.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_decode_alerts_page_and_ticket_only_when_sustained(tmp_path: Path) -> None:
    rules = rules_file(NS, NAME, _spec())
    tests = [
        # healthy: 60 tok/s per sequence against a 20 tok/s threshold: silence
        {
            "interval": "1m",
            "input_series": _decode_series("0+3600x600", 20),
            "alert_rule_test": [
                {"eval_time": "7h", "alertname": DECODE, "exp_alerts": []},
            ],
        },
        # sustained regression: 10 tok/s for 7 hours: page and ticket; names as stored
        # when prometheus-client escapes them for OpenMetrics 1.0 (vllm_ not vllm:)
        {
            "interval": "1m",
            "input_series": _decode_series("0+600x600", 20, itl="vllm_inter_token_latency_seconds"),
            "alert_rule_test": [
                {
                    "eval_time": "7h",
                    "alertname": DECODE,
                    "exp_alerts": [
                        _alert(rules, DECODE, "page", "10"),
                        _alert(rules, DECODE, "ticket", "10"),
                    ],
                },
            ],
        },
        # one slow blip of 5 minutes at 3h: the 5m window breaches, the 1h one does not
        {
            "interval": "1m",
            "input_series": _decode_series("0+3600x180 648000+600x5 651000+3600x300", 20),
            "alert_rule_test": [{"eval_time": "3h5m", "alertname": DECODE, "exp_alerts": []}],
        },
        # slow for 2 hours, then recovered: 10 minutes later the page has stopped
        {
            "interval": "1m",
            "input_series": _decode_series("0+600x120 72000+3600x300", 20),
            "alert_rule_test": [
                {
                    "eval_time": "1h59m",
                    "alertname": DECODE,
                    "exp_alerts": [
                        _alert(rules, DECODE, "page", "10"),
                        _alert(rules, DECODE, "ticket", "10"),
                    ],
                },
                {"eval_time": "2h10m", "alertname": DECODE, "exp_alerts": []},
            ],
        },
    ]
    _run(tmp_path, rules, tests)


def test_fresh_history_does_not_page_but_throughput_per_running_would(tmp_path: Path) -> None:
    """Why the vLLM preset uses the ITL histogram: a ratio of two rates is unbiased when
    the window is longer than the history; rate / avg_over_time is not (a false page)."""
    from inference_thresholds.adaptation.presets import VLLM_THROUGHPUT_PER_RUNNING

    series = _decode_series("0+600x600", 5)  # 10 tok/s against a 5 tok/s threshold
    series += [
        {"series": 'vllm:generation_tokens_total{model_name="m",pod="a"}', "values": "0+600x600"},
        {"series": 'vllm:num_requests_running{model_name="m",pod="a"}', "values": "1x600"},
    ]
    quiet = [{"eval_time": "4m", "alertname": DECODE, "exp_alerts": []}]
    _run(
        tmp_path,
        rules_file(NS, NAME, _spec()),
        [{"interval": "1m", "input_series": series, "alert_rule_test": quiet}],
    )
    custom = _spec().model_copy(
        update={"queries": CustomQueries(decode_tokens_per_second=VLLM_THROUGHPUT_PER_RUNNING)}
    )
    rules = rules_file(NS, NAME, custom)
    false_page = [
        {
            "eval_time": "4m",
            "alertname": DECODE,
            # 1h window reads 0.667 tok/s, 6h 0.111 (the 5m window happens to read 8 > 5)
            "exp_alerts": [_alert(rules, DECODE, "ticket", "0.111")],
        }
    ]
    _run(
        tmp_path, rules, [{"interval": "1m", "input_series": series, "alert_rule_test": false_page}]
    )


def test_ttft_alert_from_the_vllm_histogram(tmp_path: Path) -> None:
    rules = rules_file(NS, NAME, _spec())
    buckets = 'vllm:time_to_first_token_seconds_bucket{model_name="m",pod="a",le="%s"}'
    series = [
        {"series": buckets % "0.25", "values": "0+0x600"},
        {"series": buckets % "0.5", "values": "0+1x600"},
        {"series": buckets % "1", "values": "0+10x600"},
        {"series": buckets % "+Inf", "values": "0+10x600"},
        {
            "series": f'{METRIC_MAX_TTFT}{{namespace="{NS}",name="{NAME}",job="operator"}}',
            "values": "0.5x600",
        },
    ]
    # p90 = 0.5 + (9 - 1) / 9 * 0.5 = 0.944 s, above 0.5 s for 7 hours
    _run(tmp_path, rules, [_pages_and_tickets(rules, TTFT, series, "944.4ms")])


def test_llama_cpp_preset_has_no_ttft_alerts(tmp_path: Path) -> None:
    rules = rules_file(NS, NAME, _spec("llama-cpp-server"))
    names = {r.get("alert") for g in rules["groups"] for r in g["rules"]}
    assert names == {None, DECODE}
    series = [
        {"series": 'llamacpp:tokens_predicted_total{model_name="m"}', "values": "0+300x600"},
        {"series": 'llamacpp:tokens_predicted_seconds_total{model_name="m"}', "values": "0+60x600"},
        {
            "series": f'{METRIC_MIN_TPS}{{namespace="{NS}",name="{NAME}"}}',
            "values": "8x600",
        },
    ]
    tests = [
        {
            "interval": "1m",
            "input_series": series,
            "alert_rule_test": [
                {
                    "eval_time": "7h",
                    "alertname": DECODE,
                    "exp_alerts": [
                        _alert(rules, DECODE, "page", "5"),
                        _alert(rules, DECODE, "ticket", "5"),
                    ],
                }
            ],
        }
    ]
    _run(tmp_path, rules, tests)


def test_prometheus_rule_object_is_owned_and_labelled() -> None:
    obj = prometheus_rule(NS, NAME, _spec(), owner_uid="1234")
    assert obj["kind"] == "PrometheusRule"
    assert obj["metadata"]["ownerReferences"][0]["uid"] == "1234"
    assert obj["metadata"]["labels"]["thresholds.inference.dev/owner"] == NAME
    assert obj["spec"] == rules_file(NS, NAME, _spec())


@pytest.mark.parametrize(
    ("source", "itls"),
    [
        ("vllm", ["vllm:time_per_output_token_seconds"]),  # vLLM before 0.11
        # vLLM 0.11 exports both names with the same data: read once, not summed
        ("vllm", ["vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"]),
        ("sglang", ["sglang:inter_token_latency_seconds"]),
        ("sglang", ["sglang_time_per_output_token_seconds"]),  # older SGLang, escaped
    ],
)
def test_decode_alert_reads_every_runtime_version(
    tmp_path: Path, source: str, itls: list[str]
) -> None:
    rules = rules_file(NS, NAME, _spec(source))
    series = [s for itl in itls for s in _decode_series("0+600x600", 20, itl=itl)]
    unique = list({s["series"]: s for s in series}.values())  # the threshold series once
    _run(tmp_path, rules, [_pages_and_tickets(rules, DECODE, unique, "10")])
