"""System memory: size, and bandwidth from DMI, a CPU spec table, a probe, or an estimate.

Bandwidth sources in order: SMBIOS memory devices read from sysfs (populated DIMMs x
configured MT/s x 8 B, capped by the CPU family's channel count), the engine's CPU
memory table, an optional bounded copy probe, and finally an estimate whose rule is
recorded. dmidecode is not needed: the kernel exposes the raw SMBIOS entries.
"""

from __future__ import annotations

import ctypes
import math
import struct
import threading
import time
from dataclasses import dataclass

from inference_thresholds.api import BandwidthSource
from inference_thresholds.engine.specs import ddr_bandwidth_gbps, lookup_cpu_memory

from .cpu import CpuFacts
from .sources import HostFiles

DMI_ENTRIES = "/sys/firmware/dmi/entries"
# SMBIOS type 17 "Memory Type" codes that have a per-channel width of 64 bits.
_DMI_MEMORY_TYPES = {
    0x12: "DDR",
    0x13: "DDR2",
    0x18: "DDR3",
    0x1A: "DDR4",
    0x1B: "LPDDR",
    0x1C: "LPDDR2",
    0x1D: "LPDDR3",
    0x1E: "LPDDR4",
    0x22: "DDR5",
    0x23: "LPDDR5",
}
# Unknown CPU: DDR4-3200 channels, ~one per 4 cores per socket, between 2 and 12.
_ESTIMATE_MT_S = 3200


@dataclass
class MemoryFacts:
    total_mib: int | None = None
    bandwidth_gbps: float | None = None
    source: BandwidthSource | None = None
    rule: str | None = None


@dataclass(frozen=True)
class Dimm:
    memory_type: str
    mega_transfers: int
    size_mib: int


def read_total_mib(files: HostFiles) -> int | None:
    for line in (files.read_text("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            fields = line.split()
            try:
                return int(fields[1]) // 1024
            except (IndexError, ValueError):
                return None
    return None


def parse_dmi_memory_device(raw: bytes) -> Dimm | None:
    """One SMBIOS type 17 structure -> a populated DIMM, or None (empty slot, unknown)."""
    if len(raw) < 0x17 or raw[0] != 17:
        return None
    length = raw[1]
    size = struct.unpack_from("<H", raw, 0x0C)[0]
    if size in (0, 0xFFFF):
        return None
    if size == 0x7FFF and length >= 0x20:
        size_mib = struct.unpack_from("<I", raw, 0x1C)[0] & 0x7FFFFFFF
    else:
        size_mib = (size & 0x7FFF) // 1024 if size & 0x8000 else size
    speed = struct.unpack_from("<H", raw, 0x15)[0]
    if length >= 0x22:
        configured = struct.unpack_from("<H", raw, 0x20)[0]
        if configured not in (0, 0xFFFF):
            speed = configured  # what the controller runs, not what the DIMM could
    memory_type = _DMI_MEMORY_TYPES.get(raw[0x12])
    if memory_type is None or speed in (0, 0xFFFF):
        return None
    return Dimm(memory_type, speed, size_mib)


def read_dimms(files: HostFiles) -> list[Dimm]:
    dimms = []
    for entry in files.list_dir(DMI_ENTRIES):
        if entry.startswith("17-"):
            raw = files.read_bytes(f"{DMI_ENTRIES}/{entry}/raw")
            if raw and (dimm := parse_dmi_memory_device(raw)):
                dimms.append(dimm)
    return dimms


def spec_bandwidth(files: HostFiles, cpu: CpuFacts) -> tuple[float, str] | None:
    """Theoretical bandwidth from the DIMMs and/or the CPU family table, with its rule."""
    sockets = cpu.sockets or 1
    table = lookup_cpu_memory(cpu.model) if cpu.model else None
    table_total = table.bandwidth_gbps * sockets if table else None
    dimms = read_dimms(files)
    if dimms:
        speed = min(d.mega_transfers for d in dimms)
        kinds = "/".join(sorted({d.memory_type for d in dimms}))
        total = ddr_bandwidth_gbps(speed, len(dimms))
        rule = f"SMBIOS: {len(dimms)} DIMMs {kinds} at {speed} MT/s x 8 B = {total:.1f} GB/s"
        if table_total is not None and total > table_total * 1.05:
            # More DIMMs than channels (2 per channel): the channels are the limit.
            rule += f", capped by {table.rule if table else ''} x {sockets} sockets"
            total = table_total
        return total, rule
    if table and table_total is not None:
        return table_total, f"{table.rule} x {sockets} socket(s)"
    return None


def estimate_bandwidth(cpu: CpuFacts) -> tuple[float, str]:
    sockets = cpu.sockets or 1
    cores = cpu.physical_cores or cpu.logical_cores or 2
    per_socket = max(1, cores // sockets)
    channels = max(2, min(12, per_socket // 4))
    total = ddr_bandwidth_gbps(_ESTIMATE_MT_S, channels * sockets)
    rule = (
        f"unknown CPU model {cpu.model!r}: assumed {channels} DDR4-{_ESTIMATE_MT_S} channels per "
        f"socket (one per 4 cores, 2..12) x {sockets} socket(s) x 8 B = {total:.1f} GB/s"
    )
    return total, rule


def round_significant(value: float, digits: int = 2) -> float:
    """Measured figures are rounded so run-to-run noise does not churn labels."""
    if value <= 0:
        return value
    scale = 10.0 ** (digits - 1 - math.floor(math.log10(value)))
    return float(round(value * scale) / scale)


def probe_bandwidth(
    threads: int, budget_s: float = 1.5, buffer_mib: int = 256
) -> tuple[float, str]:
    """Copy bandwidth with ``ctypes.memmove`` on big buffers, in parallel threads.

    memmove releases the GIL, so threads copy concurrently. Bytes read plus bytes
    written count (as STREAM's copy does). Bounded: stops after ``budget_s`` (≤ 2 s
    including allocation); needs about 2 x ``buffer_mib`` MiB of memory while it runs.
    """
    started_at = time.perf_counter()
    threads = max(1, threads)
    per_thread = max(8, buffer_mib // threads) * 1024 * 1024
    buffers = [
        (ctypes.create_string_buffer(per_thread), ctypes.create_string_buffer(per_thread))
        for _ in range(threads)
    ]
    for src, _ in buffers:
        ctypes.memset(src, 1, per_thread)  # touch pages so page faults are not timed
    copied = [0] * threads
    deadline = started_at + budget_s  # allocation counts against the budget
    start_barrier = threading.Barrier(threads + 1)

    def worker(index: int) -> None:
        src, dst = buffers[index]
        start_barrier.wait()
        while time.perf_counter() < deadline:
            ctypes.memmove(dst, src, per_thread)
            copied[index] += 2 * per_thread

    workers = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for thread in workers:
        thread.start()
    start_barrier.wait()
    started = time.perf_counter()
    for thread in workers:
        thread.join()
    elapsed = time.perf_counter() - started
    gbps = round_significant(sum(copied) / elapsed / 1e9)
    rule = (
        f"measured: memmove copy, {threads} thread(s) x {per_thread >> 20} MiB buffers, "
        f"{elapsed:.2f} s, read+write bytes, rounded to 2 significant digits"
    )
    return gbps, rule


def read_memory(
    files: HostFiles, cpu: CpuFacts, *, probe: bool = False, probe_threads: int | None = None
) -> MemoryFacts:
    facts = MemoryFacts(total_mib=read_total_mib(files))
    if probe:
        threads = probe_threads or max(1, min(16, cpu.logical_cores or 1))
        facts.bandwidth_gbps, facts.rule = probe_bandwidth(threads)
        facts.source = BandwidthSource.MEASURED
        return facts
    spec = spec_bandwidth(files, cpu)
    if spec is not None:
        facts.bandwidth_gbps, facts.rule = round(spec[0], 1), spec[1]
        facts.source = BandwidthSource.SPEC
    else:
        estimate, facts.rule = estimate_bandwidth(cpu)
        facts.bandwidth_gbps = round(estimate, 1)
        facts.source = BandwidthSource.ESTIMATED
    return facts
