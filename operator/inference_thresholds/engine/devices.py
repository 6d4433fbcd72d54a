"""Hardware-side view: which device serves the model and what it can deliver."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..api import BandwidthSource, DeploymentContext, DeviceInfo, DeviceKind, HardwareProfile
from .explain import DecisionLog, fmt
from .partition import choose_group, choose_partition, log_share, slice_share
from .policy import CpuPolicy, DeviceBackendPolicy, MatmulRates, Policy
from .specs import lookup_cpu_memory, lookup_gpu


class HardwareInputError(ValueError):
    """The profile lacks what the chosen device needs; the message says what to add."""


@dataclass(frozen=True)
class DeviceTarget:
    kind: str  # cpu | gpu | accelerator
    product: str | None
    count: int  # devices available on the node
    bandwidth_gbps: float | None  # per device (cpu: per node, theoretical)
    fp16_tflops: float | None  # per device
    memory_mib: float | None  # per device (cpu/unified: what the process may use)
    backend: str  # cuda | metal | other-accelerator | cpu


def choose_device(hw: HardwareProfile, ctx: DeploymentContext, log: DecisionLog) -> str:
    wanted = ctx.device
    if ctx.constraints.gpu_resource and not hw.gpus and wanted is not DeviceKind.CPU:
        raise HardwareInputError(
            f"context.constraints.gpuResource {ctx.constraints.gpu_resource}: the hardware "
            "profile lists no gpus; select GPU nodes or remove gpuResource"
        )
    if wanted is DeviceKind.AUTO:
        if hw.gpus:
            choice, why = "gpu", "node has GPUs"
        elif hw.accelerators:
            choice, why = "accelerator", "node has accelerators and no GPU"
        else:
            choice, why = "cpu", "no GPU or accelerator in the profile"
        log.add("device.kind", choice, None, "computed", f"device auto: {why}")
        return choice
    if wanted is DeviceKind.GPU and not hw.gpus:
        raise HardwareInputError(
            "context.device is gpu but the hardware profile lists no gpus; "
            "set device: cpu or auto, or select GPU nodes"
        )
    if wanted is DeviceKind.ACCELERATOR and not hw.accelerators:
        raise HardwareInputError(
            "context.device is accelerator but the hardware profile lists no accelerators; "
            "set device: auto, or select accelerator nodes"
        )
    log.add("device.kind", str(wanted), None, "input")
    return str(wanted)


def _device_group(devices: list[DeviceInfo]) -> DeviceInfo:
    # Heterogeneous groups on one node are rare; serve from the largest group.
    return max(devices, key=lambda d: (d.count, d.memory_bandwidth_gbps or 0))


def accelerator_target(
    hw: HardwareProfile,
    kind: str,
    log: DecisionLog,
    policy: Policy,
    gpu_resource: str | None = None,
) -> DeviceTarget:
    """The device the model runs on, scaled to the slice a pod gets when the GPU is
    partitioned or shared (``gpu_resource``: the resource the pod requests)."""
    devices = hw.gpus if kind == "gpu" else hw.accelerators
    dev = choose_group(devices, gpu_resource) or _device_group(devices)
    target = _whole_device_target(hw, kind, dev, log, policy)
    part = choose_partition(dev, gpu_resource, log)
    if part is None:
        return target
    share = slice_share(dev, part, lookup_gpu(dev.product), target.memory_mib)
    log_share(share, dev.product, target.bandwidth_gbps, target.fp16_tflops, log)
    return replace(
        target,
        product=f"{dev.product} ({share.name})",
        count=1,
        bandwidth_gbps=target.bandwidth_gbps * share.bandwidth if target.bandwidth_gbps else None,
        fp16_tflops=target.fp16_tflops * share.compute if target.fp16_tflops else None,
        memory_mib=share.memory_mib if share.memory_mib is not None else target.memory_mib,
    )


def _whole_device_target(
    hw: HardwareProfile, kind: str, dev: DeviceInfo, log: DecisionLog, policy: Policy
) -> DeviceTarget:
    spec = lookup_gpu(dev.product)
    log.add(
        "device.product",
        dev.product,
        None,
        "input",
        f"{dev.count} x {dev.product}"
        + (f" (table entry {spec.key})" if spec else " (no table entry)"),
    )

    def pick(field: str, given: float | None, table: float | None, unit: str) -> float | None:
        if given is not None:
            log.add(f"device.{field}", float(given), unit, "input")
            return float(given)
        if table is not None:
            log.add(
                f"device.{field}",
                float(table),
                unit,
                "table",
                f"{spec.key if spec else ''} spec sheet",
            )
            return float(table)
        log.add(f"device.{field}", None, unit, "estimate", "unknown: not in the profile or table")
        return None

    bw = pick(
        "memoryBandwidthGBps",
        dev.memory_bandwidth_gbps,
        spec.memory_bandwidth_gbps if spec else None,
        "GB/s",
    )
    tflops = pick("fp16Tflops", dev.fp16_tflops, spec.fp16_tflops if spec else None, "TFLOPS")
    if tflops is None and bw is not None:
        tflops = bw * 0.1  # ~100 FLOP/byte ridge point, the low end of current GPUs
        log.add(
            "device.fp16Tflops",
            tflops,
            "TFLOPS",
            "estimate",
            f"{fmt(bw)} GB/s x 100 FLOP/byte (typical ridge point)",
        )
    vendor = (spec.vendor if spec else dev.vendor).lower()
    memory: float | None
    if dev.memory_mib is not None:
        memory = float(dev.memory_mib)
    elif spec is not None and spec.memory_gib is not None:
        memory = spec.memory_gib * 1024
    else:
        memory = None
    backend = "cuda" if vendor == "nvidia" else "metal" if vendor == "apple" else "other"
    if backend == "metal":
        # Unified memory: the GPU may wire only part of system memory.
        total = hw.memory.total_mib
        memory = total * policy.apple_gpu_memory_fraction if total else None
        if memory is not None:
            log.add(
                "device.memoryMiB",
                memory,
                "MiB",
                "policy",
                f"unified memory {total} MiB x {policy.apple_gpu_memory_fraction} "
                "(Metal working-set limit)",
            )
    elif memory is not None:
        log.add(
            "device.memoryMiB",
            memory,
            "MiB",
            "input" if dev.memory_mib is not None else "table",
            "per device",
        )
    return DeviceTarget(
        kind,
        dev.product,
        dev.count,
        bw,
        tflops,
        memory,
        "cuda" if backend == "cuda" else "metal" if backend == "metal" else "other-accelerator",
    )


def backend_policy(policy: Policy, backend: str) -> DeviceBackendPolicy:
    return {"cuda": policy.cuda, "metal": policy.metal}.get(backend, policy.other_accelerator)


@dataclass(frozen=True)
class CpuTarget:
    arch: str  # x86 | arm | apple
    cores: float
    frequency_ghz: float
    core_bandwidth_gbps: float  # what one core's decode stream reaches
    socket_bandwidth_gbps: float  # what all the pod's cores together reach (decode)
    prefill: MatmulRates  # ops/cycle/core llama.cpp's GEMMs reach
    decode: MatmulRates  # ops/cycle/core its decode dot products reach
    matmul_feature: str  # the ISA feature that picked them
    memory_mib: float | None

    @property
    def usable_bandwidth_gbps(self) -> float:
        return min(self.socket_bandwidth_gbps, self.cores * self.core_bandwidth_gbps)


def cpu_arch(hw: HardwareProfile) -> str:
    """x86, arm or apple: the CPU family the kernel rates are chosen for."""
    cpu = hw.cpu
    text = f"{cpu.vendor or ''} {cpu.model or ''}".lower()
    if "apple" in text:
        return "apple"
    isa = {f.lower() for f in cpu.isa}
    arch = (cpu.architecture or "").lower()
    if (
        arch in ("aarch64", "arm64")
        or isa & {"neon", "asimd", "asimddp", "sve"}
        or (cpu.vendor or "").lower() == "arm"
    ):
        return "arm"
    return "x86"


def _best_matmul(
    table: dict[str, MatmulRates], features: set[str], bits: float
) -> tuple[str, MatmulRates]:
    """The table entry of the present feature with the fastest kernel for these weights."""
    hits = [(rates.for_bits(bits)[1], key) for key, rates in table.items() if key in features]
    if not hits:
        return "default", table["default"]
    _, key = max(hits)
    return key, table[key]


def cpu_target(
    hw: HardwareProfile,
    ctx: DeploymentContext,
    log: DecisionLog,
    cpol: CpuPolicy,
    weight_bits: float = 16.0,
) -> CpuTarget:
    cpu = hw.cpu
    arch = cpu_arch(hw)
    log.add("cpu.arch", arch, None, "computed", cpu.model or "model unknown")
    # Cores: the pod's limit, the cgroup-usable cores and the physical cores, least wins.
    candidates: list[tuple[float, str, str]] = []
    if cpu.usable_cores is not None:
        candidates.append((cpu.usable_cores, "usableCores (cgroup quota/cpuset)", "label"))
    if cpu.physical_cores is not None:
        candidates.append((float(cpu.physical_cores), "physicalCores", "label"))
    elif cpu.logical_cores is not None:
        candidates.append((float(cpu.logical_cores), "logicalCores", "label"))
    if ctx.constraints.cpu_cores is not None:
        candidates.append((ctx.constraints.cpu_cores, "constraints.cpuCores", "input"))
    if candidates:
        cores, what, src = min(candidates)
        log.add(
            "cpu.cores",
            cores,
            "cores",
            "input" if src == "input" else "label",
            f"least of {', '.join(f'{n}={fmt(v)}' for v, n, _ in candidates)}: {what}",
        )
    else:
        cores = 4.0
        log.add("cpu.cores", cores, "cores", "estimate", "no core counts in the profile")
    if cpu.base_frequency_mhz:
        # Every core running SIMD kernels holds about the base clock (power limits); the
        # maximum is a one-core boost a busy multi-core matmul does not sustain.
        mhz = float(cpu.base_frequency_mhz)
        log.add(
            "cpu.frequency",
            mhz / 1000,
            "GHz",
            "label",
            "baseFrequencyMHz: the all-core clock under sustained SIMD load"
            + (
                f" (boost {fmt(cpu.max_frequency_mhz / 1000)} GHz)" if cpu.max_frequency_mhz else ""
            ),
        )
    elif cpu.max_frequency_mhz:
        mhz = float(cpu.max_frequency_mhz)
        log.add("cpu.frequency", mhz / 1000, "GHz", "label", "maxFrequencyMHz (no base clock)")
    else:
        mhz = cpol.default_frequency_mhz
        log.add("cpu.frequency", mhz / 1000, "GHz", "estimate", "no frequency in the profile")

    core_bw, socket_bw = _bandwidths(hw, arch, cores, cpol, log)
    isa = {f.lower() for f in cpu.isa}
    if arch == "apple":
        isa |= {"neon", "asimddp"}
    key, prefill = _best_matmul(cpol.prefill_ops_per_cycle, isa, weight_bits)
    decode = cpol.decode_ops_per_cycle.get(key, cpol.decode_ops_per_cycle["default"])
    if arch == "apple":
        prefill, decode = (
            prefill.scaled(cpol.apple_pipe_factor),
            decode.scaled(cpol.apple_pipe_factor),
        )
        key += f" x Apple {fmt(cpol.apple_pipe_factor)}-pipe factor"
    fmt_class, rate = prefill.for_bits(weight_bits)
    log.add(
        "cpu.matmulOpsPerCycle",
        rate,
        "ops/cycle/core",
        "policy",
        f"llama.cpp {fmt_class} prefill kernels on {key} (best ISA feature for "
        f"{fmt(weight_bits)}-bit weights); decode dot products "
        f"{fmt(decode.for_bits(weight_bits)[1])}",
    )
    memory: float | None = None
    for value in (hw.memory.total_mib, ctx.constraints.memory_mib):
        if value is not None:
            memory = float(value) if memory is None else min(memory, float(value))
    return CpuTarget(arch, cores, mhz / 1000, core_bw, socket_bw, prefill, decode, key, memory)


def _bandwidths(
    hw: HardwareProfile, arch: str, cores: float, cpol: CpuPolicy, log: DecisionLog
) -> tuple[float, float]:
    """(one core's, the pod's cores') decode bandwidth, GB/s, with their derivation."""
    mem, cpu = hw.memory, hw.cpu
    source = mem.bandwidth_source or BandwidthSource.SPEC
    table = lookup_cpu_memory(cpu.model) if cpu.model else None
    sockets = cpu.sockets or 1
    eff = cpol.bandwidth_efficiency.get("measured", 0.85)
    if (
        mem.bandwidth_gbps is not None
        and source == BandwidthSource.MEASURED
        and mem.per_core_bandwidth_gbps is not None
        and mem.bandwidth_threads is not None
    ):
        # The agent's probe: what 1 and N threads really read here. More cores than it
        # used may reach more, up to the socket (known from the family table, if any).
        measured, threads = mem.bandwidth_gbps, mem.bandwidth_threads
        reach, why = measured, f"{threads} probe threads read {fmt(measured)} GB/s"
        if cores > threads and table is not None:
            spec = table.spec_bandwidth(sockets) * cpol.bandwidth_efficiency.get("spec", 0.6)
            if spec > measured:
                reach, why = spec, f"more cores than probed: {table.rule} x spec share"
        core_bw, socket_bw = mem.per_core_bandwidth_gbps * eff, reach * eff
        log.add(
            "memory.bandwidth",
            measured,
            "GB/s",
            "measured",
            f"{mem.bandwidth_rule or 'probe'}; per core {fmt(mem.per_core_bandwidth_gbps)} GB/s",
        )
        log.add(
            "cpu.usableBandwidth",
            min(socket_bw, cores * core_bw),
            "GB/s",
            "computed",
            f"min({fmt(cores)} cores x {fmt(mem.per_core_bandwidth_gbps)} GB/s, {why}) x "
            f"{eff} (decode stream vs read probe)",
        )
        return core_bw, socket_bw
    # Socket bandwidth: profile, else CPU family table, else per-core estimate.
    if mem.bandwidth_gbps is not None:
        socket_bw = mem.bandwidth_gbps
        log.add(
            "memory.bandwidth",
            socket_bw,
            "GB/s",
            "measured" if source == "measured" else "label",
            f"bandwidthSource={source}"
            + (f" ({mem.bandwidth_rule})" if mem.bandwidth_rule else ""),
        )
    elif table is not None:
        socket_bw = table.spec_bandwidth(sockets)
        source = BandwidthSource.SPEC
        log.add(
            "memory.bandwidth",
            socket_bw,
            "GB/s",
            "table",
            table.rule + (f" x {sockets} sockets" if sockets > 1 else ""),
        )
    else:
        phys = cpu.physical_cores or cpu.logical_cores or cores
        lo, hi = cpol.estimated_bandwidth_bounds_gbps
        socket_bw = min(hi, max(lo, phys * cpol.estimated_bandwidth_per_core_gbps))
        source = BandwidthSource.ESTIMATED
        log.add(
            "memory.bandwidth",
            socket_bw,
            "GB/s",
            "estimate",
            f"{fmt(phys)} cores x {cpol.estimated_bandwidth_per_core_gbps} GB/s, bounded "
            f"to [{fmt(lo)}, {fmt(hi)}]; publish memory.bandwidthGBps for better numbers",
        )
    if arch == "apple" and source != BandwidthSource.MEASURED:
        eff, why = cpol.apple_cpu_fraction, "Apple CPU cluster share of SoC bandwidth"
    else:
        eff = cpol.bandwidth_efficiency.get(str(source), 0.6)
        why = f"achievable share of {source} bandwidth"
    per_core = cpol.per_core_bandwidth_gbps.get(arch, 12.0)
    socket_usable, core_usable = socket_bw * eff, cores * per_core
    log.add(
        "cpu.usableBandwidth",
        min(socket_usable, core_usable),
        "GB/s",
        "computed",
        f"min({fmt(socket_bw)} x {eff} ({why}) = {fmt(socket_usable)}, {fmt(cores)} cores x "
        f"{fmt(per_core)} GB/s per core = {fmt(core_usable)})"
        + (": core-limited" if core_usable < socket_usable else ": socket-limited"),
    )
    return per_core, socket_usable
