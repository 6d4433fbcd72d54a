"""The roofline engine: expectations from physics, thresholds from policy."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

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
    Workload,
)
from .catalog import resolve_model
from .devices import (
    CpuTarget,
    DeviceTarget,
    accelerator_target,
    backend_policy,
    choose_device,
    cpu_target,
)
from .explain import DecisionLog, fmt
from .model_physics import GB, MIB, ModelFigures, context_tokens, model_figures, prefill_flops
from .policy import Policy, env_overrides

TERA = 1e12


@dataclass(frozen=True)
class Performance:
    decode_tps: float | None  # per sequence
    ttft_ms: float | None
    note: str = ""


def round_sig(value: float, digits: int = 3, direction: str = "nearest") -> float:
    """Round to significant digits; minimums round down and maximums up, so rounding
    never makes a threshold stricter than computed."""
    if value == 0 or not math.isfinite(value):
        return value
    scale = math.pow(10, digits - 1 - math.floor(math.log10(abs(value))))
    scaled = value * scale
    if direction == "down":
        whole = math.floor(scaled)
    elif direction == "up":
        whole = math.ceil(scaled)
    else:
        whole = round(scaled)
    return whole / scale


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


def _maybe(value: float | None, direction: str) -> float | None:
    return None if value is None else round_sig(value, 3, direction)


def complexity_of(params_billion: float) -> Complexity:
    if params_billion < 1:
        return Complexity.SMALL
    if params_billion < 7:
        return Complexity.MEDIUM
    if params_billion <= 30:
        return Complexity.LARGE
    return Complexity.EXTRA_LARGE


def _step_bytes(fig: ModelFigures, wl: Workload) -> tuple[float, float]:
    """Bytes one decode step streams (weights + KV cache at mean context), and that context."""
    mean_ctx, _ = context_tokens(wl)
    return fig.weight_bytes_per_token + fig.kv_bytes_per_token * mean_ctx * wl.concurrency, mean_ctx


def _log_decode(log: DecisionLog, t_mem: float, t_comp: float, t_over: float, ceiling: str) -> None:
    bound = "memory-bandwidth" if t_mem >= t_comp else ceiling
    log.add(
        "decode.tokensPerSecond",
        1 / (max(t_mem, t_comp) + t_over),
        "tok/s",
        "computed",
        f"1 / (max({fmt(t_mem * 1e3)}, {fmt(t_comp * 1e3)}) + {fmt(t_over * 1e3)} ms): "
        f"{bound} bound, per sequence",
    )


def _cpu_performance(
    fig: ModelFigures,
    target: CpuTarget,
    ctx: DeploymentContext,
    policy: Policy,
    hidden: int | None,
    log: DecisionLog | None,
) -> Performance:
    cpol = policy.cpu
    wl = ctx.workload
    step_bytes, mean_ctx = _step_bytes(fig, wl)
    t_mem = step_bytes / (target.usable_bandwidth_gbps * GB)
    cycles = target.cores * target.frequency_ghz * 1e9
    ops = 2 * fig.active_params * wl.concurrency
    if fig.runtime == Runtime.BITNET_CPP and fig.weight_bits <= 2.5:
        head_ops = 2 * fig.head_params * wl.concurrency
        t_comp = (ops - head_ops) / (cycles * cpol.ternary_ops_per_cycle) + head_ops / (
            cycles * target.fp_flops_per_cycle * cpol.decode_compute_efficiency
        )
        kernel = f"bitnet.cpp ternary kernel {fmt(cpol.ternary_ops_per_cycle)} ops/cycle/core"
    else:
        per_cycle = target.int8_ops_per_cycle if fig.quantized else target.fp_flops_per_cycle
        t_comp = ops / (cycles * per_cycle * cpol.decode_compute_efficiency)
        kernel = (
            f"{fmt(per_cycle)} {'int8 ops' if fig.quantized else 'FLOPs'}/cycle/core x "
            f"{cpol.decode_compute_efficiency}"
        )
    t_over = fig.layers * cpol.layer_overhead_us * 1e-6
    t_step = max(t_mem, t_comp) + t_over
    if log:
        log.add(
            "decode.memoryTime",
            t_mem * 1e3,
            "ms",
            "computed",
            f"{fmt(step_bytes / GB)} GB (weights + KV at {fmt(mean_ctx)} tokens) / "
            f"{fmt(target.usable_bandwidth_gbps)} GB/s",
        )
        log.add(
            "decode.computeTime",
            t_comp * 1e3,
            "ms",
            "computed",
            f"{fmt(ops / 1e9)} Gops / ({fmt(target.cores)} cores x "
            f"{fmt(target.frequency_ghz)} GHz x {kernel})",
        )
        log.add(
            "decode.overheadTime",
            t_over * 1e3,
            "ms",
            "policy",
            f"{fig.layers} layers x {fmt(cpol.layer_overhead_us)} us thread sync",
        )
        _log_decode(log, t_mem, t_comp, t_over, "kernel/compute")
    per_cycle = target.int8_ops_per_cycle if fig.quantized else target.fp_flops_per_cycle
    flops = prefill_flops(fig, wl.prompt_tokens, hidden)
    p_eff = cpol.prefill_efficiency.get(target.arch, 0.3)
    t_prefill = flops / (cycles * per_cycle * p_eff)
    ttft = t_prefill + t_over + cpol.request_overhead_ms / 1e3
    if log:
        log.add(
            "prefill.timeToFirstToken",
            ttft * 1e3,
            "ms",
            "computed",
            f"{fmt(flops / TERA)} TFLOP ({wl.prompt_tokens} prompt tokens) / "
            f"({fmt(target.cores)} cores x {fmt(target.frequency_ghz)} GHz x {fmt(per_cycle)}"
            f"/cycle x {p_eff}) + {fmt(cpol.request_overhead_ms)} ms",
        )
    return Performance(1 / t_step, ttft * 1e3)


def _device_performance(
    fig: ModelFigures,
    target: DeviceTarget,
    used: int,
    ctx: DeploymentContext,
    policy: Policy,
    hidden: int | None,
    log: DecisionLog | None,
) -> Performance:
    bpol = backend_policy(policy, target.backend)
    if target.bandwidth_gbps is None:
        if log:
            log.add(
                "decode.tokensPerSecond",
                None,
                "tok/s",
                "estimate",
                "cannot derive: device memory bandwidth unknown; set memoryBandwidthGBps "
                "in the profile or an override",
            )
        return Performance(None, None)
    wl = ctx.workload
    rt = fig.runtime
    eff = bpol.bandwidth_efficiency.get(rt)
    scale = used * (bpol.multi_device_efficiency if used > 1 else 1.0)
    bw = target.bandwidth_gbps * scale * GB
    step_bytes, _ = _step_bytes(fig, wl)
    t_mem = step_bytes / (eff * bw)
    peak = (target.fp16_tflops or 0) * TERA * scale
    ops = 2 * fig.active_params * wl.concurrency
    t_comp = ops / (bpol.decode_compute_efficiency * peak) if peak else 0.0
    qf = bpol.quantized_layer_factor.get(rt) if fig.quantized else 1.0
    t_over = fig.layers * bpol.layer_overhead_us.get(rt) * qf * 1e-6
    t_step = max(t_mem, t_comp) + t_over
    if log:
        log.add(
            "decode.bandwidthEfficiency",
            eff,
            None,
            "policy",
            f"{target.backend} backend, runtime {rt}",
        )
        log.add(
            "decode.memoryTime",
            t_mem * 1e3,
            "ms",
            "computed",
            f"{fmt(step_bytes / GB)} GB / ({eff} x {fmt(target.bandwidth_gbps)} GB/s"
            + (f" x {used} devices x {bpol.multi_device_efficiency}" if used > 1 else "")
            + ")",
        )
        log.add(
            "decode.computeTime",
            t_comp * 1e3,
            "ms",
            "computed",
            f"{fmt(ops / 1e9)} GFLOP / ({bpol.decode_compute_efficiency} x "
            f"{fmt(peak / TERA)} TFLOPS)",
        )
        log.add(
            "decode.overheadTime",
            t_over * 1e3,
            "ms",
            "policy",
            f"{fig.layers} layers x {fmt(bpol.layer_overhead_us.get(rt))} us kernel dispatch"
            + (f" x {qf} (dequantisation)" if qf != 1.0 else ""),
        )
        _log_decode(log, t_mem, t_comp, t_over, "compute")
    ttft: float | None = None
    if peak:
        flops = prefill_flops(fig, wl.prompt_tokens, hidden)
        p_eff = bpol.prefill_efficiency.get(rt)
        t_c = flops / (p_eff * peak)
        t_w = fig.weight_bytes_stored / (eff * bw)
        req = bpol.request_overhead_ms.get(rt) / 1e3
        ttft = max(t_c, t_w) + t_over + req
        if log:
            log.add(
                "prefill.timeToFirstToken",
                ttft * 1e3,
                "ms",
                "computed",
                f"max({fmt(flops / TERA)} TFLOP / ({p_eff} x {fmt(peak / TERA)} TFLOPS) = "
                f"{fmt(t_c * 1e3)} ms, weight read {fmt(t_w * 1e3)} ms) + "
                f"{fmt(t_over * 1e3)} ms dispatch + {fmt(req * 1e3)} ms request overhead",
            )
    return Performance(1 / t_step, ttft * 1e3 if ttft is not None else None)


def _memory_required_mib(
    fig: ModelFigures, ctx: DeploymentContext, policy: Policy, kind: str
) -> tuple[float, str]:
    _, peak_ctx = context_tokens(ctx.workload)
    kv = fig.kv_bytes_per_token * peak_ctx * ctx.workload.concurrency
    act = fig.weight_bytes_stored * policy.activation_fraction
    runtime = policy.cpu_runtime_overhead_mib if kind == "cpu" else policy.gpu_runtime_overhead_mib
    total = (fig.weight_bytes_stored + kv + act) / MIB + runtime
    detail = (
        f"weights {fmt(fig.weight_bytes_stored / MIB)} + KV {fmt(kv / MIB)} "
        f"({fmt(peak_ctx)} tokens x {ctx.workload.concurrency} seq) + activations "
        f"{fmt(act / MIB)} + runtime {fmt(runtime)} MiB"
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
    ctx = context
    kind = choose_device(hardware, ctx, log)
    need, need_detail = _memory_required_mib(fig, ctx, policy, kind)
    log.add("memory.required", need, "MiB", "computed", need_detail)

    target: DeviceTarget | CpuTarget
    available: float | None
    if kind == "cpu":
        target = cpu_target(hardware, ctx, log, policy.cpu)
        available = target.memory_mib
        used = 1
        perf = _cpu_performance(fig, target, ctx, policy, spec.hidden_size, log)
        choice = DeviceChoice(kind="cpu", product=hardware.cpu.model, count=1)
    else:
        target = accelerator_target(hardware, kind, log, policy, ctx.constraints.gpu_resource)
        used = _devices_used(need, target, ctx, log)
        available = target.memory_mib * used if target.memory_mib is not None else None
        perf = _device_performance(fig, target, used, ctx, policy, spec.hidden_size, log)
        choice = DeviceChoice(
            kind="gpu" if kind == "gpu" else "accelerator", product=target.product, count=used
        )

    expected_memory = need
    vllm_reserved = kind == "gpu" and fig.runtime == Runtime.VLLM and available is not None
    if vllm_reserved:
        assert available is not None
        expected_memory = max(need, available * policy.vllm_gpu_memory_utilization)
        log.add(
            "memory.expected",
            expected_memory,
            "MiB",
            "policy",
            f"vLLM pre-allocates gpu_memory_utilization {policy.vllm_gpu_memory_utilization}"
            f" x {fmt(available)} MiB; KV cache fills the rest",
        )

    if available is not None:
        fit_limit = available * (policy.vllm_gpu_memory_utilization if vllm_reserved else 1.0)
        log.add(
            "memory.available",
            fit_limit,
            "MiB",
            "computed",
            "device memory x devices"
            if kind != "cpu"
            else "least of node memory and constraints.memoryMiB",
        )
        if need > fit_limit:
            reason = (
                f"model needs {fmt(need)} MiB but {fmt(fit_limit)} MiB are available on "
                f"{choice.count} x {choice.product or kind}; use a smaller or more "
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
    else:
        log.add(
            "memory.available",
            None,
            "MiB",
            "estimate",
            "unknown: fit not checked; publish memory sizes to check it",
        )

    # Speedup over an FP16 llama.cpp baseline on the same device (quantized models only).
    speedup: float | None = None
    if fig.quantized and perf.decode_tps:
        base_fig = replace(
            fig,
            weight_bits=16.0,
            embedding_bits=16.0,
            runtime=str(Runtime.LLAMA_CPP),
            quantized=False,
            weight_bytes_per_token=fig.weight_bytes_per_token * 16 / fig.weight_bits
            if fig.head_params == 0
            else (fig.weight_bytes_per_token - fig.head_params * fig.embedding_bits / 8)
            * 16
            / fig.weight_bits
            + fig.head_params * 2,
        )
        if isinstance(target, CpuTarget):
            base = _cpu_performance(base_fig, target, ctx, policy, spec.hidden_size, None)
        else:
            base = _device_performance(base_fig, target, used, ctx, policy, spec.hidden_size, None)
        if base.decode_tps:
            speedup = perf.decode_tps / base.decode_tps
            log.add(
                "speedup.expected",
                speedup,
                "x",
                "computed",
                f"{fmt(perf.decode_tps)} tok/s vs {fmt(base.decode_tps)} tok/s for the same "
                "model at FP16 in llama.cpp on this device",
            )

    latency = None
    if perf.decode_tps and perf.ttft_ms is not None:
        latency = perf.ttft_ms + ctx.workload.output_tokens * 1000 / perf.decode_tps
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
    thresholds = _rounded(_thresholds(expected, ctx, policy, available, log))
    thresholds = _apply_overrides(thresholds, ctx, policy, env, log)
    return ThresholdResult(
        feasible=True,
        complexity=complexity,
        device=choice,
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
