"""PromQL presets with each runtime's real metric names, across its versions.

Rendered queries match a preset's names as ``{__name__=~"vllm[:_]..."}``: the runtimes
name them ``vllm:...`` / ``llamacpp:...``, but prometheus-client (0.26 here, which vLLM
uses) answers the OpenMetrics 1.0 scrape of Prometheus 2.x with
``escaping=underscores``, so Prometheus stores ``vllm_...``. Only one form exists per
target, so sums and ratios are unaffected.

Templates use ``$matchers`` (the deployment's label matchers, comma-joined, plus a
class's node matcher when adapting per class), ``$window`` (the rate window) and
``$quantile``; ``render`` fills them. Two kinds of query per signal:

- the *distribution* (adaptation): ``sum by (le) (rate(<histogram>_bucket[$window]))``,
  one sample per bucket, folded into the decayed histogram (``histogram.py``); for
  runtimes without histograms, and custom queries, a *level* query giving one number;
- the *level* (alert rules, and the fallback): ONE sample, the deployment's per-sequence
  decode tokens/s or its TTFT quantile in seconds.

Versions: where a runtime renamed a histogram, the preset lists the names newest first
and joins them with ``or``, so a deployment exporting both (vLLM 0.11 exports the old
name too) is read once, from the new name, and an old one from the old name.

vLLM (``vllm:`` prefix, labels ``model_name``, ``engine``)
  Inter-token latency: ``vllm:inter_token_latency_seconds`` from 0.11; before, the same
  histogram was ``vllm:time_per_output_token_seconds`` (deprecated in 0.11, hidden in
  0.12, removed in 0.13; vllm-project/vllm#24110, #29330, #32661). With speculative
  decoding one step may emit several tokens, so 1 / ITL reads low there.
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

SGLang (``sglang:`` prefix, label ``model_name``; python/sglang/srt/metrics/collector.py)
  ``sglang:inter_token_latency_seconds`` (older releases:
  ``sglang:time_per_output_token_seconds``) and ``sglang:time_to_first_token_seconds``
  histograms: read as vLLM's.

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
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from ..api.adaptation import AdaptationSpec, LabelMatcher, MetricsSource, promql_duration


@dataclass(frozen=True)
class SignalPreset:
    """Where a runtime exports one signal: histograms (newest name first) or two counters."""

    histograms: tuple[str, ...] = ()
    ratio: tuple[str, str] | None = None  # (numerator, denominator) counters: a rate ratio


@dataclass(frozen=True)
class Preset:
    source: MetricsSource
    decode: SignalPreset | None
    ttft: SignalPreset | None
    limits: str


_NO_TTFT = "llama.cpp server exports no latency histograms: TTFT is neither adapted nor alerted on"
_LLAMA = SignalPreset(
    ratio=("llamacpp:tokens_predicted_total", "llamacpp:tokens_predicted_seconds_total")
)
PRESETS: dict[MetricsSource, Preset] = {
    MetricsSource.VLLM: Preset(
        MetricsSource.VLLM,
        SignalPreset(
            histograms=("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds")
        ),
        SignalPreset(histograms=("vllm:time_to_first_token_seconds",)),
        "",
    ),
    MetricsSource.SGLANG: Preset(
        MetricsSource.SGLANG,
        SignalPreset(
            histograms=(
                "sglang:inter_token_latency_seconds",
                "sglang:time_per_output_token_seconds",
            )
        ),
        SignalPreset(histograms=("sglang:time_to_first_token_seconds",)),
        "",
    ),
    MetricsSource.LLAMA_CPP_SERVER: Preset(MetricsSource.LLAMA_CPP_SERVER, _LLAMA, None, _NO_TTFT),
    MetricsSource.BITNET_CPP: Preset(MetricsSource.BITNET_CPP, _LLAMA, None, _NO_TTFT),
    MetricsSource.CUSTOM: Preset(MetricsSource.CUSTOM, None, None, ""),
}

# Documented alternatives (custom queries), kept here so tests exercise them.
VLLM_THROUGHPUT_PER_RUNNING = (
    "sum(rate(vllm:generation_tokens_total{$matchers}[$window])) / "
    "sum(avg_over_time(vllm:num_requests_running{$matchers}[$window]))"
)
VLLM_TPOT = (
    "1 / (sum(rate(vllm:request_time_per_output_token_seconds_sum{$matchers}[$window])) / "
    "sum(rate(vllm:request_time_per_output_token_seconds_count{$matchers}[$window])))"
)


def _rate(name: str) -> str:
    return f"rate({name}{{$matchers}}[$window])"


def _buckets(names: Sequence[str]) -> str:
    return " or ".join(f"sum by (le) ({_rate(n + '_bucket')})" for n in names)


def _decode_level(p: SignalPreset) -> str:
    if p.ratio is not None:
        return f"sum({_rate(p.ratio[0])}) / sum({_rate(p.ratio[1])})"
    return " or ".join(
        f"(sum({_rate(n + '_count')}) / sum({_rate(n + '_sum')}))" for n in p.histograms
    )


def _ttft_level(p: SignalPreset) -> str:
    return f"histogram_quantile($quantile, {_buckets(p.histograms)})"


class Kind(StrEnum):
    DISTRIBUTION = "distribution"  # sum by (le) of a histogram's bucket rates
    LEVEL = "level"  # one number (tok/s for decode, seconds for TTFT)


@dataclass(frozen=True)
class SignalQuery:
    """How one signal is observed for one spec: the template and what it reads."""

    kind: Kind
    template: str
    metrics: tuple[str, ...]  # names whose existence tells MetricNotFound from NoData


def signal_query(spec: AdaptationSpec, signal: str) -> SignalQuery | None:
    """The query adaptation evaluates for ``signal`` ("decode" or "ttft"); None: not observed."""
    custom = (
        spec.queries.decode_tokens_per_second
        if signal == "decode"
        else spec.queries.time_to_first_token_seconds
    )
    if custom:
        return SignalQuery(Kind.LEVEL, custom, ())
    preset: SignalPreset | None = getattr(PRESETS[spec.source], signal)
    if preset is None:
        return None
    if preset.histograms:
        names = tuple(n + "_count" for n in preset.histograms)
        return SignalQuery(Kind.DISTRIBUTION, either_escaping(_buckets(preset.histograms)), names)
    assert preset.ratio is not None
    return SignalQuery(Kind.LEVEL, either_escaping(_decode_level(preset)), preset.ratio)


def matchers(spec: AdaptationSpec, extra: Sequence[LabelMatcher] = ()) -> str:
    return ",".join(m.promql() for m in [*spec.label_matchers, *extra])


_RUNTIME_NAME = re.compile(r"\b(vllm|sglang|llamacpp):([A-Za-z_][A-Za-z0-9_]*)\{")


def either_escaping(template: str) -> str:
    """``vllm:x{`` -> ``{__name__=~"vllm[:_]x",`` (colon or underscore-escaped name)."""
    return _RUNTIME_NAME.sub(r'{__name__=~"\1[:_]\2",', template)


def series_selector(name: str, spec: AdaptationSpec) -> str:
    """A series selector for ``name`` in either escaping, with the deployment's matchers."""
    return (
        either_escaping(f"{name}{{$matchers}}")
        .replace("$matchers", matchers(spec))
        .replace(",}", "}")
    )


def render(
    template: str,
    spec: AdaptationSpec,
    window_seconds: float | None = None,
    extra: Sequence[LabelMatcher] = (),
) -> str:
    window = promql_duration(window_seconds if window_seconds is not None else spec.window_seconds)
    return (
        template.replace("$matchers", matchers(spec, extra))
        .replace("$window", window)
        .replace("$quantile", f"{spec.ttft_quantile:g}")
    )


@dataclass(frozen=True)
class Queries:
    """Level templates in force for one spec (custom queries win over the preset): alerts."""

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
            custom.decode_tokens_per_second, _decode_level(preset.decode) if preset.decode else None
        ),
        time_to_first_token_seconds=pick(
            custom.time_to_first_token_seconds, _ttft_level(preset.ttft) if preset.ttft else None
        ),
        limits=preset.limits if not custom.time_to_first_token_seconds else "",
    )
