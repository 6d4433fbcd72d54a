"""PromQL presets with each runtime's real metric names.

Rendered queries match a preset's names as ``{__name__=~"vllm[:_]..."}``: the runtimes
name them ``vllm:...`` / ``llamacpp:...``, but prometheus-client (0.26 here, which vLLM
uses) answers the OpenMetrics 1.0 scrape of Prometheus 2.x with
``escaping=underscores``, so Prometheus stores ``vllm_...``. Only one form exists per
target, so sums and ratios are unaffected.

Templates use ``$matchers`` (the deployment's label matchers, comma-joined), ``$window``
(the rate window) and ``$quantile``; ``render`` fills them. Every query must reduce to
ONE sample: the deployment's per-sequence level, not per pod.

vLLM (``vllm:`` prefix, label ``model_name``)
  decode tokens/s per sequence = ``rate(vllm:inter_token_latency_seconds_count) /
  rate(vllm:inter_token_latency_seconds_sum)``: decode steps per second of step time,
  i.e. 1 / mean inter-token latency — what ONE request sees, which is what
  ``minTokensPerSecond`` is about. Both sides are rates over the same window, so a
  window longer than the available history (fresh deployment, restarted Prometheus)
  does not bias it, and an idle window gives 0/0 = NaN (no sample, no drag).
  Considered and rejected as the default: ``rate(vllm:generation_tokens_total) /
  avg_over_time(vllm:num_requests_running)`` (aggregate throughput divided by running
  sequences). It means the same thing in steady state, but ``rate`` divides by the whole
  window while ``avg_over_time`` averages only the samples present, so during the first
  window after a start it under-reads (0.67 tok/s for a 10 tok/s deployment 4 minutes
  into a 1 h window — a false page; see tests/unit/test_adaptation_alerts.py). Use it
  as a custom query if ITL is unavailable. ``vllm:request_time_per_output_token_seconds``
  (per request, TTFT excluded) is the per-request alternative.
  TTFT = ``histogram_quantile($quantile, vllm:time_to_first_token_seconds_bucket)``.

llama.cpp server (``--metrics``) and bitnet.cpp (whose server is llama.cpp's: same names)
  decode tokens/s per slot =
  ``rate(llamacpp:tokens_predicted_total) / rate(llamacpp:tokens_predicted_seconds_total)``
  (tokens per second of generation time, summed over slots).
  ``llamacpp:predicted_tokens_seconds`` is a gauge averaged since the previous /metrics
  call — two scrapers would each see a different average, so it is not used.
  No TTFT: the server exports no latency histograms and no request counter, so neither
  TTFT quantiles nor even a mean TTFT can be derived; only prompt throughput
  (``llamacpp:prompt_tokens_total / llamacpp:prompt_seconds_total``). With these presets
  maxTimeToFirstTokenMs is never adapted and TTFT alerts are not generated; tail-latency
  regressions stay invisible unless a proxy (e.g. an ingress histogram) supplies a
  custom TTFT query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..api.adaptation import AdaptationSpec, MetricsSource, promql_duration


@dataclass(frozen=True)
class Preset:
    source: MetricsSource
    decode_tokens_per_second: str | None
    time_to_first_token_seconds: str | None
    limits: str


_VLLM = Preset(
    MetricsSource.VLLM,
    decode_tokens_per_second="sum(rate(vllm:inter_token_latency_seconds_count{$matchers}[$window]))"
    " / sum(rate(vllm:inter_token_latency_seconds_sum{$matchers}[$window]))",
    time_to_first_token_seconds="histogram_quantile($quantile, sum by (le) "
    "(rate(vllm:time_to_first_token_seconds_bucket{$matchers}[$window])))",
    limits="",
)
# Documented alternatives (custom queries), kept here so tests exercise them.
VLLM_THROUGHPUT_PER_RUNNING = (
    "sum(rate(vllm:generation_tokens_total{$matchers}[$window])) / "
    "sum(avg_over_time(vllm:num_requests_running{$matchers}[$window]))"
)
VLLM_TPOT = (
    "1 / (sum(rate(vllm:request_time_per_output_token_seconds_sum{$matchers}[$window])) / "
    "sum(rate(vllm:request_time_per_output_token_seconds_count{$matchers}[$window])))"
)
_LLAMA_DECODE = (
    "sum(rate(llamacpp:tokens_predicted_total{$matchers}[$window])) / "
    "sum(rate(llamacpp:tokens_predicted_seconds_total{$matchers}[$window]))"
)
_NO_TTFT = "llama.cpp server exports no latency histograms: TTFT is neither adapted nor alerted on"
PRESETS: dict[MetricsSource, Preset] = {
    MetricsSource.VLLM: _VLLM,
    MetricsSource.LLAMA_CPP_SERVER: Preset(
        MetricsSource.LLAMA_CPP_SERVER, _LLAMA_DECODE, None, _NO_TTFT
    ),
    MetricsSource.BITNET_CPP: Preset(MetricsSource.BITNET_CPP, _LLAMA_DECODE, None, _NO_TTFT),
    MetricsSource.CUSTOM: Preset(MetricsSource.CUSTOM, None, None, ""),
}


def matchers(spec: AdaptationSpec) -> str:
    return ",".join(m.promql() for m in spec.label_matchers)


_RUNTIME_NAME = re.compile(r"\b(vllm|llamacpp):([A-Za-z_][A-Za-z0-9_]*)\{")


def either_escaping(template: str) -> str:
    """``vllm:x{`` -> ``{__name__=~"vllm[:_]x",`` (colon or underscore-escaped name)."""
    return _RUNTIME_NAME.sub(r'{__name__=~"\1[:_]\2",', template)


def render(template: str, spec: AdaptationSpec, window_seconds: float | None = None) -> str:
    window = promql_duration(window_seconds if window_seconds is not None else spec.window_seconds)
    return (
        template.replace("$matchers", matchers(spec))
        .replace("$window", window)
        .replace("$quantile", f"{spec.ttft_quantile:g}")
    )


@dataclass(frozen=True)
class Queries:
    """Templates in force for one spec (custom queries win over the preset)."""

    decode_tokens_per_second: str | None
    time_to_first_token_seconds: str | None
    limits: str


def queries(spec: AdaptationSpec) -> Queries:
    preset = PRESETS[spec.source]
    custom = spec.queries

    def pick(mine: str | None, theirs: str | None) -> str | None:
        return mine if mine else (either_escaping(theirs) if theirs else None)

    return Queries(
        decode_tokens_per_second=pick(
            custom.decode_tokens_per_second, preset.decode_tokens_per_second
        ),
        time_to_first_token_seconds=pick(
            custom.time_to_first_token_seconds, preset.time_to_first_token_seconds
        ),
        limits=preset.limits if not custom.time_to_first_token_seconds else "",
    )
