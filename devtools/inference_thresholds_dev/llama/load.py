"""A bounded load generator for any llama-server: a base URL in, measurements out.

Each request sends a prompt of exactly ``prompt_tokens`` random token ids (so no prompt
cache and no tokenizer can change the prefill), asks for ``n_predict`` tokens with
``ignore_eos`` and greedy sampling (``top_k`` 1 alone: the model's speed, not a sampler
chain's), and records the server's own ``timings`` (prefill ms, decode tok/s) and the
client-observed latency. The answer is not streamed: on a pod with as many threads as
cores, per-token HTTP/JSON work preempts the decode threads (measured here: streaming cut
2-thread decode by 2-10x). The client-observed time to first token is therefore the
latency minus the server's decode time (the first token is sampled from the prompt's
logits). Around the run it reads ``/metrics`` (``--metrics``) and reports the counters'
deltas, the same series Prometheus scrapes. Everything read back is bounded: response
sizes, request count, time per request.
"""

from __future__ import annotations

import json
import random
import statistics
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from prometheus_client.parser import text_string_to_metric_families

MAX_REQUESTS = 200
MAX_BODY_BYTES = 4 << 20
MAX_METRICS_BYTES = 1 << 20
_FIRST_USABLE_TOKEN = 3 + 256  # after <unk> <s> </s> and the byte tokens


class LoadError(RuntimeError):
    """The server answered something the generator cannot use; the message says what."""


@dataclass(frozen=True)
class LoadSpec:
    requests: int = 3
    prompt_tokens: int = 256
    n_predict: int = 128
    warmup: int = 1  # requests sent first and not counted (page cache, thread pools)
    request_timeout_s: float = 300
    vocab_size: int = 32000
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.requests <= MAX_REQUESTS:
            raise ValueError(f"requests must be 1..{MAX_REQUESTS}, got {self.requests}")
        if self.prompt_tokens < 1 or self.n_predict < 1:
            raise ValueError("prompt_tokens and n_predict must be >= 1")
        if self.vocab_size <= _FIRST_USABLE_TOKEN:
            raise ValueError(f"vocab_size must exceed {_FIRST_USABLE_TOKEN}")


@dataclass(frozen=True)
class RequestResult:
    ttft_ms: float  # client-observed latency minus the server's decode time
    latency_ms: float  # request sent -> last byte
    prompt_n: int
    prompt_ms: float  # server timings: prefill
    predicted_n: int
    decode_tps: float  # server timings: predicted_per_second
    # Share of the request's thread-time the server was not kept waiting for a CPU:
    # 1 - run-queue wait / (latency x threads). ~1 when the node gives it its cores;
    # below, other work held them. None: not observable from here.
    cores_share: float | None = None


@dataclass
class LoadReport:
    base_url: str
    spec: LoadSpec
    results: list[RequestResult] = field(default_factory=list)
    metrics_delta: dict[str, float] = field(default_factory=dict)

    def median(self, attribute: str) -> float:
        return float(statistics.median(getattr(r, attribute) for r in self.results))

    @property
    def decode_tps(self) -> float:
        return self.median("decode_tps")

    @property
    def ttft_ms(self) -> float:
        return self.median("ttft_ms")

    @property
    def latency_ms(self) -> float:
        return self.median("latency_ms")

    @property
    def metrics_decode_tps(self) -> float | None:
        tokens = self.metrics_delta.get("llamacpp:tokens_predicted_total")
        seconds = self.metrics_delta.get("llamacpp:tokens_predicted_seconds_total")
        return tokens / seconds if tokens and seconds else None

    @property
    def metrics_prompt_tps(self) -> float | None:
        tokens = self.metrics_delta.get("llamacpp:prompt_tokens_total")
        seconds = self.metrics_delta.get("llamacpp:prompt_seconds_total")
        return tokens / seconds if tokens and seconds else None

    def observed(self) -> dict[str, float]:
        """The measured figures, named as the client validation expects them."""
        return {
            "tokens_per_second": self.decode_tps,
            "time_to_first_token_ms": self.ttft_ms,
            "latency_ms": self.latency_ms,
        }


def read_metrics(base_url: str, timeout_s: float = 10) -> dict[str, float]:
    """llama-server's /metrics counters and gauges (unlabelled samples), bounded."""
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=timeout_s) as response:
        body = response.read(MAX_METRICS_BYTES + 1)
    if len(body) > MAX_METRICS_BYTES:
        raise LoadError(f"{base_url}/metrics: more than {MAX_METRICS_BYTES} bytes")
    values: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(body.decode("utf-8", "replace")):
            for sample in family.samples:
                if not sample.labels and isinstance(sample.value, int | float):
                    values[sample.name] = float(sample.value)
    except ValueError as exc:
        raise LoadError(f"{base_url}/metrics: not Prometheus text format ({exc})") from exc
    return values


def one_request(base_url: str, prompt: list[int], spec: LoadSpec) -> RequestResult:
    body = json.dumps(
        {
            "prompt": prompt,
            "n_predict": spec.n_predict,
            "ignore_eos": True,
            "cache_prompt": False,
            "samplers": ["top_k"],
            "top_k": 1,
        }
    ).encode()
    request = urllib.request.Request(
        f"{base_url}/completion", body, {"Content-Type": "application/json"}
    )
    sent = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=spec.request_timeout_s) as response:
            raw = response.read(MAX_BODY_BYTES + 1)
    except urllib.error.HTTPError as exc:
        detail = exc.read(2000).decode("utf-8", "replace")
        raise LoadError(f"{base_url}/completion: HTTP {exc.code}: {detail}") from exc
    latency_ms = (time.perf_counter() - sent) * 1e3
    if len(raw) > MAX_BODY_BYTES:
        raise LoadError(f"{base_url}/completion: answer exceeds {MAX_BODY_BYTES} bytes")
    try:
        answer = json.loads(raw)
        timings = answer["timings"]
        predicted_ms = float(timings["predicted_ms"])
        return RequestResult(
            ttft_ms=latency_ms - predicted_ms,
            latency_ms=latency_ms,
            prompt_n=int(timings["prompt_n"]),
            prompt_ms=float(timings["prompt_ms"]),
            predicted_n=int(timings["predicted_n"]),
            decode_tps=float(timings["predicted_per_second"]),
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise LoadError(f"{base_url}/completion: no usable timings in the answer ({exc})") from exc


def drive(
    base_url: str,
    spec: LoadSpec,
    wait_seconds: Callable[[], float | None] | None = None,
    threads: int = 1,
) -> LoadReport:
    """Send ``warmup`` + ``requests`` requests one after another; report what was measured.

    ``wait_seconds`` (the server threads' run-queue wait so far, where the caller can see
    its process) lets each result say what share of its ``threads`` cores it really had.
    """
    rng = random.Random(spec.seed)

    def prompt() -> list[int]:
        return [
            rng.randrange(_FIRST_USABLE_TOKEN, spec.vocab_size) for _ in range(spec.prompt_tokens)
        ]

    for _ in range(spec.warmup):
        one_request(base_url, prompt(), spec)
    before = read_metrics(base_url)
    report = LoadReport(base_url, spec)
    for _ in range(spec.requests):
        wait_before = wait_seconds() if wait_seconds else None
        result = one_request(base_url, prompt(), spec)
        wait_after = wait_seconds() if wait_seconds else None
        if wait_before is not None and wait_after is not None:
            waited = (wait_after - wait_before) / (result.latency_ms / 1e3 * max(1, threads))
            result = replace(result, cores_share=max(0.0, 1.0 - waited))
        if result.predicted_n != spec.n_predict:
            raise LoadError(
                f"server generated {result.predicted_n} tokens, not n_predict={spec.n_predict}: "
                "is its context (-c) smaller than prompt + n_predict?"
            )
        report.results.append(result)
    after = read_metrics(base_url)
    report.metrics_delta = {
        name: after[name] - before.get(name, 0.0) for name in after if name.endswith("_total")
    }
    return report


MIN_CORES_SHARE = 0.9  # a request kept waiting longer for its cores ran on a busy machine


def uncontended(
    results: list[RequestResult], min_share: float = MIN_CORES_SHARE
) -> list[RequestResult]:
    return [r for r in results if r.cores_share is None or r.cores_share >= min_share]


def drive_healthy(
    base_url: str,
    spec: LoadSpec,
    wait_seconds: Callable[[], float | None],
    threads: int,
    retries: int = 3,
) -> tuple[LoadReport, bool]:
    """Measure until ``spec.requests`` requests had their cores (at most ``retries`` more
    rounds); returns the report of those requests and whether the machine stayed contended.

    A request during which other work took the server's cores is not a healthy pod's: on a
    dedicated node it would not happen, so it is measured again rather than counted.
    """
    report = drive(base_url, spec, wait_seconds, threads)
    for _ in range(retries):
        if len(uncontended(report.results)) >= spec.requests:
            break
        again = drive(base_url, replace(spec, warmup=0), wait_seconds, threads)
        report.results += again.results
        for name, value in again.metrics_delta.items():
            report.metrics_delta[name] = report.metrics_delta.get(name, 0.0) + value
    healthy = uncontended(report.results)
    if len(healthy) < spec.requests:
        return report, True
    report.results = healthy[: spec.requests]
    return report, False
