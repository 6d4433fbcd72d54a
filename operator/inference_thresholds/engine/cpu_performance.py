"""CPU decode and prefill: streaming weights through each core and the socket, matmul rates.

Decode, per token: every core streams its share of the weights at what one core reaches
and multiplies them at the rate llama.cpp's kernels reach on its ISA; the two overlap only
in part (``overlapLoss``). All cores together cannot read faster than the socket lets
them, and each layer costs a thread synchronisation. Prefill is the prompt's matmul work
at the same kernel rates, plus per-layer and per-request costs.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..api import DeploymentContext, Runtime
from .devices import CpuTarget
from .explain import DecisionLog, fmt, log_decode_rate
from .model_physics import GB, ModelFigures, prefill_flops, step_bytes
from .policy import CpuPolicy

TERA = 1e12


@dataclass(frozen=True)
class Performance:
    decode_tps: float | None  # per sequence
    ttft_ms: float | None
    note: str = ""


@dataclass(frozen=True)
class _DecodeStep:
    stream_s: float  # one core's share of the bytes at one core's bandwidth
    compute_s: float  # one core's share of the ops at the kernel rate
    socket_s: float  # all bytes at the pod's aggregate bandwidth
    overhead_s: float  # per-layer synchronisation
    overlap_loss: float

    @property
    def core_s(self) -> float:
        longer, shorter = max(self.stream_s, self.compute_s), min(self.stream_s, self.compute_s)
        return longer + self.overlap_loss * shorter

    @property
    def total_s(self) -> float:
        return max(self.core_s, self.socket_s) + self.overhead_s

    @property
    def bound(self) -> str:
        if self.socket_s >= self.core_s:
            return "socket memory-bandwidth bound"
        if self.stream_s >= self.compute_s:
            return "per-core memory-stream bound"
        return "kernel-compute bound"


def _ops_rate(target: CpuTarget, fig: ModelFigures, cpol: CpuPolicy) -> tuple[float, str]:
    """ops/s per core of the model's matmuls, with a readable kernel description."""
    cycles = target.frequency_ghz * 1e9
    if fig.runtime == Runtime.BITNET_CPP and fig.weight_bits <= 2.5:
        return cycles * cpol.ternary_ops_per_cycle, (
            f"bitnet.cpp ternary kernel {fmt(cpol.ternary_ops_per_cycle)} ops/cycle"
        )
    kind, per_cycle = target.decode.for_bits(fig.weight_bits)
    return cycles * per_cycle, f"{kind} dot products {fmt(per_cycle)} ops/cycle"


def _decode_step(
    fig: ModelFigures, target: CpuTarget, ctx: DeploymentContext, cpol: CpuPolicy
) -> tuple[_DecodeStep, float, float, str]:
    wl = ctx.workload
    bytes_step, mean_ctx = step_bytes(fig, wl)
    cores = target.cores
    ops = 2 * fig.active_params * wl.concurrency
    rate, kernel = _ops_rate(target, fig, cpol)
    if fig.runtime == Runtime.BITNET_CPP and fig.weight_bits <= 2.5:
        # The F16 output head runs on the regular kernels, the body on ternary ones.
        head_ops = 2 * fig.head_params * wl.concurrency
        head_rate = target.frequency_ghz * 1e9 * target.decode.f16
        compute = (ops - head_ops) / (cores * rate) + head_ops / (cores * head_rate)
    else:
        compute = ops / (cores * rate)
    step = _DecodeStep(
        stream_s=bytes_step / (cores * target.core_bandwidth_gbps * GB),
        compute_s=compute,
        socket_s=bytes_step / (target.socket_bandwidth_gbps * GB),
        overhead_s=fig.layers * cpol.layer_overhead_us * 1e-6,
        overlap_loss=cpol.overlap_loss,
    )
    return step, bytes_step, mean_ctx, kernel


def cpu_performance(
    fig: ModelFigures,
    target: CpuTarget,
    ctx: DeploymentContext,
    cpol: CpuPolicy,
    hidden: int | None,
    log: DecisionLog | None,
) -> Performance:
    wl = ctx.workload
    step, bytes_step, mean_ctx, kernel = _decode_step(fig, target, ctx, cpol)
    if log:
        cores = target.cores
        log.add(
            "decode.memoryTime",
            max(step.stream_s, step.socket_s) * 1e3,
            "ms",
            "computed",
            f"{fmt(bytes_step / GB)} GB (weights + KV at {fmt(mean_ctx)} tokens): per core "
            f"{fmt(step.stream_s * 1e3)} ms at {fmt(target.core_bandwidth_gbps)} GB/s x "
            f"{fmt(cores)} cores, socket {fmt(step.socket_s * 1e3)} ms at "
            f"{fmt(target.socket_bandwidth_gbps)} GB/s",
        )
        log.add(
            "decode.computeTime",
            step.compute_s * 1e3,
            "ms",
            "computed",
            f"{fmt(2 * fig.active_params * wl.concurrency / 1e9)} Gops / ({fmt(cores)} cores "
            f"x {fmt(target.frequency_ghz)} GHz x {kernel}); overlaps the per-core stream "
            f"but for {cpol.overlap_loss} of the shorter",
        )
        log.add(
            "decode.overheadTime",
            step.overhead_s * 1e3,
            "ms",
            "policy",
            f"{fig.layers} layers x {fmt(cpol.layer_overhead_us)} us thread sync",
        )
        log_decode_rate(
            log,
            step.total_s,
            f"max({fmt(step.stream_s * 1e3)} | {fmt(step.compute_s * 1e3)} ms per core, "
            f"{fmt(step.socket_s * 1e3)} ms socket) + {fmt(step.overhead_s * 1e3)} ms",
            step.bound,
        )
    flops = prefill_flops(fig, wl.prompt_tokens, hidden)
    kind, per_cycle = target.prefill.for_bits(fig.weight_bits)
    t_prefill = flops / (target.cores * target.frequency_ghz * 1e9 * per_cycle)
    ttft = t_prefill + step.overhead_s + cpol.request_overhead_ms / 1e3
    if log:
        log.add(
            "prefill.timeToFirstToken",
            ttft * 1e3,
            "ms",
            "computed",
            f"{fmt(flops / TERA)} TFLOP ({wl.prompt_tokens} prompt tokens) / "
            f"({fmt(target.cores)} cores x {fmt(target.frequency_ghz)} GHz x {fmt(per_cycle)} "
            f"ops/cycle, llama.cpp {kind} kernels on {target.matmul_feature}) + "
            f"{fmt(step.overhead_s * 1e3)} ms layers + {fmt(cpol.request_overhead_ms)} ms",
        )
    return Performance(1 / step.total_s, ttft * 1e3)
