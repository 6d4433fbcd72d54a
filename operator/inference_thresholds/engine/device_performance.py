"""GPU and accelerator decode and prefill: spec bandwidth and FP16 peak, per-backend factors."""

from __future__ import annotations

from ..api import DeploymentContext
from .cpu_performance import TERA, Performance
from .devices import DeviceTarget, backend_policy
from .explain import DecisionLog, fmt, log_decode_rate
from .model_physics import GB, ModelFigures, prefill_flops, step_bytes
from .policy import Policy


def device_performance(
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
    bytes_step, _ = step_bytes(fig, wl)
    t_mem = bytes_step / (eff * bw)
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
            f"{fmt(bytes_step / GB)} GB / ({eff} x {fmt(target.bandwidth_gbps)} GB/s"
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
        log_decode_rate(
            log,
            t_step,
            f"max({fmt(t_mem * 1e3)}, {fmt(t_comp * 1e3)}) + {fmt(t_over * 1e3)} ms",
            "memory-bandwidth bound" if t_mem >= t_comp else "compute bound",
        )
    ttft: float | None = None
    if peak:
        flops = prefill_flops(fig, wl.prompt_tokens, hidden)
        p_eff = bpol.prefill_efficiency.get(rt)
        if fig.quantized:
            p_eff *= bpol.quantized_prefill_factor.get(rt)
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
                f"max({fmt(flops / TERA)} TFLOP / ({fmt(p_eff)} x {fmt(peak / TERA)} TFLOPS) = "
                f"{fmt(t_c * 1e3)} ms, weight read {fmt(t_w * 1e3)} ms) + "
                f"{fmt(t_over * 1e3)} ms dispatch + {fmt(req * 1e3)} ms request overhead",
            )
    return Performance(1 / t_step, ttft * 1e3 if ttft is not None else None)
