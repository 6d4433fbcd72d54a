"""The roofline engine: expectations from physics, thresholds from policy."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from ..api import (
    Complexity,
    DeploymentContext,
    DeviceChoice,
    Expected,
    HardwareProfile,
    ModelSpec,
    Overrides,
    Runtime,
    ThresholdResult,
    Thresholds,
)
from .catalog import resolve_model
from .cpu_performance import Performance, cpu_performance
from .device_performance import device_performance
from .devices import CpuTarget, DeviceTarget, accelerator_target, choose_device, cpu_target
from .explain import DecisionLog, fmt, round_sig
from .model_physics import MIB, ModelFigures, context_tokens, model_figures
from .policy import Policy, env_overrides


def _rounded(t: Thresholds) -> Thresholds:
    return Thresholds(
        min_tokens_per_second=_maybe(t.min_tokens_per_second, "down"),
        max_time_to_first_token_ms=_maybe(t.max_time_to_first_token_ms, "up"),
        max_latency_ms=_maybe(t.max_latency_ms, "up"),
        # Whole MiB: a cap at the device's memory must stay at or below it.
        max_memory_usage_mb=None
        if t.max_memory_usage_mb is None
        else float(math.floor(t.max_memory_usage_mb)),
        min_speedup_factor=_maybe(t.min_speedup_factor, "down"),
    )


def _maybe(value: float | None, direction: Literal["down", "up"]) -> float | None:
    return None if value is None else round_sig(value, 3, direction)


def complexity_of(params_billion: float) -> Complexity:
    if params_billion < 1:
        return Complexity.SMALL
    if params_billion < 7:
        return Complexity.MEDIUM
    if params_billion <= 30:
        return Complexity.LARGE
    return Complexity.EXTRA_LARGE


def _memory_required_mib(
    fig: ModelFigures, ctx: DeploymentContext, policy: Policy, kind: str
) -> tuple[float, str]:
    _, peak_ctx = context_tokens(ctx.workload)
    kv = fig.kv_bytes_per_token * peak_ctx * ctx.workload.concurrency
    act = fig.weight_bytes_stored * policy.activation_fraction
    runtime = policy.cpu_runtime_overhead_mib if kind == "cpu" else policy.gpu_runtime_overhead_mib
    # llama.cpp's CPU backend repacks 4-bit layer weights (Q4_0/Q4_K/IQ4_NL) into
    # interleaved copies (ggml-cpu/repack.cpp) while the mapped file stays resident.
    repack = (
        fig.body_bytes
        if kind == "cpu"
        and fig.runtime == Runtime.LLAMA_CPP
        and policy.cpu_repack_bits[0] <= fig.weight_bits < policy.cpu_repack_bits[1]
        else 0.0
    )
    total = (fig.weight_bytes_stored + repack + kv + act) / MIB + runtime
    detail = (
        f"weights {fmt(fig.weight_bytes_stored / MIB)}"
        + (f" + repacked copy {fmt(repack / MIB)}" if repack else "")
        + f" + KV {fmt(kv / MIB)} ({fmt(peak_ctx)} tokens x {ctx.workload.concurrency} seq) "
        f"+ activations {fmt(act / MIB)} + runtime {fmt(runtime)} MiB"
    )
    return total, detail


def _devices_used(
    need_mib: float, target: DeviceTarget, ctx: DeploymentContext, log: DecisionLog
) -> int:
    if ctx.constraints.gpus is not None:
        used = min(ctx.constraints.gpus, target.count)
        log.add("device.count", used, "devices", "input", "constraints.gpus")
        return used
    if target.memory_mib is None or target.count == 1:
        log.add("device.count", target.count, "devices", "label", "all devices of the group")
        return target.count
    used = 1
    while used < target.count and need_mib > used * target.memory_mib * 0.9:
        used *= 2
    used = min(used, target.count)
    log.add(
        "device.count",
        used,
        "devices",
        "computed",
        f"fewest (power of two) of {target.count} whose memory holds {fmt(need_mib)} MiB "
        "(tensor parallel)",
    )
    return used


@dataclass(frozen=True)
class _Serving:
    """Which device serves the model, what it holds, and how fast it runs it."""

    target: DeviceTarget | CpuTarget
    used: int
    available_mib: float | None
    choice: DeviceChoice
    perf: Performance


def _serve(
    hardware: HardwareProfile,
    kind: str,
    fig: ModelFigures,
    hidden: int | None,
    need: float,
    ctx: DeploymentContext,
    policy: Policy,
    log: DecisionLog,
) -> _Serving:
    if kind == "cpu":
        cpu = cpu_target(hardware, ctx, log, policy.cpu, fig.weight_bits)
        perf = cpu_performance(fig, cpu, ctx, policy.cpu, hidden, log)
        choice = DeviceChoice(kind="cpu", product=hardware.cpu.model, count=1)
        return _Serving(cpu, 1, cpu.memory_mib, choice, perf)
    device = accelerator_target(hardware, kind, log, policy, ctx.constraints.gpu_resource)
    used = _devices_used(need, device, ctx, log)
    available = device.memory_mib * used if device.memory_mib is not None else None
    perf = device_performance(fig, device, used, ctx, policy, hidden, log)
    choice = DeviceChoice(
        kind="gpu" if kind == "gpu" else "accelerator", product=device.product, count=used
    )
    return _Serving(device, used, available, choice, perf)


def _expected_memory(
    need: float, serving: _Serving, fig: ModelFigures, policy: Policy, log: DecisionLog
) -> tuple[float, float | None]:
    """(memory the deployment is expected to take, the most it may take to fit)."""
    available = serving.available_mib
    if available is None:
        log.add(
            "memory.available",
            None,
            "MiB",
            "estimate",
            "unknown: fit not checked; publish memory sizes to check it",
        )
        return need, None
    expected, fit_limit = need, available
    if serving.choice.kind == "gpu" and fig.runtime == Runtime.VLLM:
        share = policy.vllm_gpu_memory_utilization
        expected, fit_limit = max(need, available * share), available * share
        log.add(
            "memory.expected",
            expected,
            "MiB",
            "policy",
            f"vLLM pre-allocates gpu_memory_utilization {share} x {fmt(available)} MiB; KV "
            "cache fills the rest",
        )
    log.add(
        "memory.available",
        fit_limit,
        "MiB",
        "computed",
        "device memory x devices"
        if serving.choice.kind != "cpu"
        else "least of node memory and constraints.memoryMiB",
    )
    return expected, fit_limit


def _fp16_baseline(fig: ModelFigures) -> ModelFigures:
    """The same model at FP16 in llama.cpp: the reference a quantized speedup is measured on."""
    if fig.head_params == 0:
        per_token = fig.weight_bytes_per_token * 16 / fig.weight_bits
    else:
        body = fig.weight_bytes_per_token - fig.head_params * fig.embedding_bits / 8
        per_token = body * 16 / fig.weight_bits + fig.head_params * 2
    return replace(
        fig,
        weight_bits=16.0,
        embedding_bits=16.0,
        runtime=str(Runtime.LLAMA_CPP),
        quantized=False,
        weight_bytes_per_token=per_token,
    )


def _speedup(
    fig: ModelFigures,
    serving: _Serving,
    hidden: int | None,
    ctx: DeploymentContext,
    policy: Policy,
    log: DecisionLog,
) -> float | None:
    """Decode speedup over an FP16 llama.cpp baseline on the same device (quantized only)."""
    decode = serving.perf.decode_tps
    if not fig.quantized or not decode:
        return None
    base_fig = _fp16_baseline(fig)
    if isinstance(serving.target, CpuTarget):
        base = cpu_performance(base_fig, serving.target, ctx, policy.cpu, hidden, None)
    else:
        base = device_performance(base_fig, serving.target, serving.used, ctx, policy, hidden, None)
    if not base.decode_tps:
        return None
    speedup = decode / base.decode_tps
    log.add(
        "speedup.expected",
        speedup,
        "x",
        "computed",
        f"{fmt(decode)} tok/s vs {fmt(base.decode_tps)} tok/s for the same model at FP16 in "
        "llama.cpp on this device",
    )
    return speedup


def compute(
    hardware: HardwareProfile,
    model: ModelSpec,
    context: DeploymentContext,
    policy: Policy | None = None,
    env: Mapping[str, str] | None = None,
) -> ThresholdResult:
    """Expected performance and thresholds, with the full decision log.

    ``env`` supplies the BITNET_* threshold variables (pass ``os.environ`` where the
    process environment should apply); None means no environment overrides.
    Raises ValueError subclasses naming the field for inputs it cannot use.
    """
    policy = policy or Policy()
    log = DecisionLog()
    spec, preset_decisions = resolve_model(model)
    log.extend(preset_decisions)
    fig = model_figures(spec, log)
    assert spec.parameters_billion is not None
    complexity = complexity_of(spec.parameters_billion)
    kind = choose_device(hardware, context, log)
    need, need_detail = _memory_required_mib(fig, context, policy, kind)
    log.add("memory.required", need, "MiB", "computed", need_detail)
    serving = _serve(hardware, kind, fig, spec.hidden_size, need, context, policy, log)
    expected_memory, fit_limit = _expected_memory(need, serving, fig, policy, log)
    if fit_limit is not None and need > fit_limit:
        choice = serving.choice
        reason = (
            f"model needs {fmt(need)} MiB but {fmt(fit_limit)} MiB are available on "
            f"{choice.count} x {choice.product or choice.kind}; use a smaller or more "
            "quantized model, fewer sequences, or larger nodes"
        )
        log.add("feasibility", "infeasible", None, "computed", reason)
        return ThresholdResult(
            feasible=False,
            reason=reason,
            complexity=complexity,
            device=choice,
            expected=Expected(memory_required_mib=need),
            decisions=log.decisions,
        )
    perf = serving.perf
    speedup = _speedup(fig, serving, spec.hidden_size, context, policy, log)
    latency = None
    if perf.decode_tps and perf.ttft_ms is not None:
        latency = perf.ttft_ms + context.workload.output_tokens * 1000 / perf.decode_tps
    expected = Expected(
        decode_tokens_per_second=perf.decode_tps,
        time_to_first_token_ms=perf.ttft_ms,
        latency_ms=latency,
        memory_required_mib=expected_memory,
        speedup_factor=speedup,
    )
    expected = Expected.model_validate(
        {k: None if v is None else round_sig(v, 4) for k, v in expected.model_dump().items()}
    )
    thresholds = _thresholds(expected, context, policy, serving.available_mib, log)
    thresholds = _apply_overrides(_rounded(thresholds), context, policy, env, log)
    return ThresholdResult(
        feasible=True,
        complexity=complexity,
        device=serving.choice,
        expected=expected,
        thresholds=thresholds,
        decisions=log.decisions,
    )


def _thresholds(
    expected: Expected,
    ctx: DeploymentContext,
    policy: Policy,
    available: float | None,
    log: DecisionLog,
) -> Thresholds:
    env, strict = ctx.environment, policy.strictness[ctx.strictness]
    prio = str(ctx.priority)
    floor = min(
        policy.max_floor,
        policy.decode_floor[env] * strict.floor * policy.priority_floor_factor.get(prio, 1.0),
    )
    slack = max(
        policy.min_slack,
        policy.ttft_slack[env] * strict.slack * policy.priority_slack_factor.get(prio, 1.0),
    )
    log.add(
        "policy.floor",
        floor,
        None,
        "policy",
        f"{env} {policy.decode_floor[env]} x {ctx.strictness} {strict.floor} x {prio} "
        f"{policy.priority_floor_factor.get(prio, 1.0)}",
    )
    log.add(
        "policy.slack",
        slack,
        None,
        "policy",
        f"{env} {policy.ttft_slack[env]} x {ctx.strictness} {strict.slack} x {prio} "
        f"{policy.priority_slack_factor.get(prio, 1.0)}",
    )
    t = Thresholds()
    if expected.decode_tokens_per_second:
        t.min_tokens_per_second = expected.decode_tokens_per_second * floor
        log.add(
            "threshold.minTokensPerSecond",
            t.min_tokens_per_second,
            "tok/s",
            "computed",
            f"expected {fmt(expected.decode_tokens_per_second)} x floor {fmt(floor)}",
        )
    else:
        log.add(
            "threshold.minTokensPerSecond",
            None,
            "tok/s",
            "computed",
            "not derived: no decode expectation",
        )
    if expected.time_to_first_token_ms is not None:
        t.max_time_to_first_token_ms = expected.time_to_first_token_ms * slack
        log.add(
            "threshold.maxTimeToFirstTokenMs",
            t.max_time_to_first_token_ms,
            "ms",
            "computed",
            f"expected {fmt(expected.time_to_first_token_ms)} x slack {fmt(slack)}",
        )
    else:
        log.add(
            "threshold.maxTimeToFirstTokenMs",
            None,
            "ms",
            "computed",
            "not derived: device compute throughput unknown",
        )
    if t.min_tokens_per_second and t.max_time_to_first_token_ms is not None:
        t.max_latency_ms = (
            t.max_time_to_first_token_ms
            + ctx.workload.output_tokens * 1000 / t.min_tokens_per_second
        )
        log.add(
            "threshold.maxLatencyMs",
            t.max_latency_ms,
            "ms",
            "computed",
            f"max TTFT + {ctx.workload.output_tokens} output tokens / min tok/s",
        )
    if expected.memory_required_mib is not None:
        headroom = policy.memory_headroom[env] * strict.slack
        mem = expected.memory_required_mib * headroom
        detail = f"required {fmt(expected.memory_required_mib)} x headroom {fmt(headroom)}"
        if available is not None and mem > available:
            mem = max(available, expected.memory_required_mib)
            detail += f", capped at available {fmt(available)}"
        t.max_memory_usage_mb = mem
        log.add("threshold.maxMemoryUsageMb", mem, "MiB", "computed", detail)
    if expected.speedup_factor is not None:
        t.min_speedup_factor = max(1.0, expected.speedup_factor * floor)
        log.add(
            "threshold.minSpeedupFactor",
            t.min_speedup_factor,
            "x",
            "computed",
            f"max(1, expected {fmt(expected.speedup_factor)} x floor {fmt(floor)})",
        )
    else:
        log.add(
            "threshold.minSpeedupFactor",
            None,
            "x",
            "computed",
            "not applicable: model runs at 16-bit precision (no quantized speedup)",
        )
    return t


def _apply_overrides(
    t: Thresholds,
    ctx: DeploymentContext,
    policy: Policy,
    env: Mapping[str, str] | None,
    log: DecisionLog,
) -> Thresholds:
    env_values, _ = env_overrides(env or {})
    layers: list[tuple[Overrides, str, str]] = [
        (policy.overrides, "policy", "policy file overrides"),
        (env_values, "environment", "environment variable"),
        (ctx.overrides, "override", "explicit override"),
    ]
    data = t.model_dump()
    for overrides, source, what in layers:  # lowest precedence first; later ones win
        for field, value in overrides.model_dump(exclude_none=True).items():
            old = data.get(field)
            data[field] = value
            log.add(
                f"override.{field}",
                value,
                None,
                source,  # type: ignore[arg-type]
                f"{what} replaces "
                + (
                    f"computed {fmt(old)}"
                    if isinstance(old, float) and math.isfinite(old)
                    else "nothing"
                ),
            )
    return Thresholds.model_validate(data)
