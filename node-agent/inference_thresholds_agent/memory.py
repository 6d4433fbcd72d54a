"""System memory: size, and bandwidth from DMI, a CPU spec table, a probe, or an estimate.

Bandwidth sources in order: SMBIOS memory devices read from sysfs (populated DIMMs x
configured MT/s x 8 B, capped by the CPU family's channel count), the engine's CPU
memory table, a bounded read probe (by default only where neither is known: unknown CPU
models, most cloud VMs), and finally an estimate whose rule is recorded. dmidecode is not
needed: the kernel exposes the raw SMBIOS entries.

The probe measures what the cores this process may use reach (one thread, and as many
threads as usable cores), because that, not the socket's spec, bounds decode in a pod.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import struct
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from inference_thresholds.api import BandwidthSource
from inference_thresholds.engine.explain import round_sig
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
    bandwidth_threads: int | None = None  # measured: threads reading at once
    per_core_bandwidth_gbps: float | None = None  # measured: one thread alone
    probe: ProbeResult | None = None


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
    return round_sig(value, digits) if value > 0 else value


@dataclass(frozen=True)
class ProbeResult:
    """What a bounded read probe measured: best rounds, rounded to 2 significant digits."""

    aggregate_gbps: float  # ``threads`` threads reading at once
    threads: int
    per_core_gbps: float  # one thread alone
    buffer_mib: int
    rule: str

    def wire(self) -> dict[str, Any]:
        return {
            "aggregateGBps": self.aggregate_gbps,
            "threads": self.threads,
            "perCoreGBps": self.per_core_gbps,
            "bufferMiB": self.buffer_mib,
            "rule": self.rule,
        }


class ProbeLimits(NamedTuple):
    threads: int  # cores the measured process may use (cgroup quota/cpuset aware)
    max_buffer_bytes: int  # memory the probe may take (cgroup headroom, 512 MiB cap)
    llc_bytes: int  # last-level cache the buffer must dwarf


class BandwidthProbe(Protocol):
    def measure(self, limits: ProbeLimits) -> ProbeResult | None: ...


_MAX_BUFFER = 512 << 20
_CHUNK_BYTES = 16 << 20  # per thread per round: ~1-2 ms, barrier wake-ups stay ~3 %


def _memchr() -> Any:
    """libc memchr through ctypes (foreign calls release the GIL, so threads overlap)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
    fn = libc.memchr
    fn.restype = ctypes.c_void_p
    fn.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t)
    return fn


def _best_rate(
    reader: Any, base: int, size: int, threads: int, budget_s: float, max_rounds: int = 400
) -> float:
    """Best bytes/s over short rounds in which ``threads`` threads read at the same time.

    Each thread owns a slice of the buffer and reads the next chunk of it every round, so
    over the rounds the whole buffer (several times the last-level cache) streams from
    memory. The best round counts, as STREAM reports: slower rounds are interference
    (other processes, cgroup throttling), not the memory system; short rounds (a few ms)
    make an undisturbed one likely on a busy machine. A single thread is also timed by its
    own CPU time (at most 2x its wall-clock figure), which preemption does not inflate.
    """
    slice_bytes = (size // threads) & ~4095
    chunk = max(4096, min(slice_bytes, _CHUNK_BYTES)) & ~4095
    chunks = max(1, slice_bytes // chunk)
    rounds = [0]
    stop = threading.Event()
    start, done = threading.Barrier(threads + 1), threading.Barrier(threads + 1)
    cpu_rates = [0.0] * threads

    def worker(index: int) -> None:
        while True:
            start.wait()
            if stop.is_set():
                return
            address = base + index * slice_bytes + (rounds[0] % chunks) * chunk
            began = time.thread_time()
            reader(address, 0, chunk)  # no zero byte in the buffer: scans the whole chunk
            spent = time.thread_time() - began
            if spent > 0:
                cpu_rates[index] = max(cpu_rates[index], chunk / spent)
            done.wait()

    pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for thread in pool:
        thread.start()
    best = 0.0
    deadline = time.perf_counter() + budget_s
    try:
        for index in range(max_rounds):
            rounds[0] = index
            began = time.perf_counter()
            start.wait()
            done.wait()
            took = time.perf_counter() - began
            if index > 0:  # the first round also wakes the threads up
                best = max(best, threads * chunk / took)
            if time.perf_counter() + took > deadline:
                break
    finally:
        stop.set()
        start.wait()
        for thread in pool:
            thread.join()
    if threads == 1:
        # One thread's own CPU time excludes the time other processes held its core.
        return max(best, min(cpu_rates[0], 2 * best))
    return best


class LiveReadProbe:
    """Read bandwidth of this machine, measured the way decode uses memory: streaming reads.

    glibc's ``memchr`` for a byte that is absent reads the buffer at vector width with no
    writes, like a weight stream. Bounded: ``budget_s`` of reading (one thread, then
    ``threads`` threads) plus touching the buffer once; one buffer of at most 512 MiB and at
    most the cgroup's headroom. It must dwarf the last-level cache, else no figure.
    """

    def __init__(self, budget_s: float = 1.0, buffer_mib: int = 256) -> None:
        self.budget_s = budget_s
        self.buffer_bytes = buffer_mib << 20

    def measure(self, limits: ProbeLimits) -> ProbeResult | None:
        size = min(self.buffer_bytes, limits.max_buffer_bytes, _MAX_BUFFER) >> 20 << 20
        if size < 2 * limits.llc_bytes or size < 8 << 20:
            return None
        try:
            reader = _memchr()
        except (OSError, AttributeError):
            return None
        buffer = ctypes.create_string_buffer(size)
        ctypes.memset(buffer, 1, size)  # real pages, not the shared zero page
        base = ctypes.addressof(buffer)
        threads = max(1, limits.threads)
        single_budget = self.budget_s * (0.4 if threads > 1 else 1.0)
        per_core = _best_rate(reader, base, size, 1, single_budget)
        aggregate = (
            _best_rate(reader, base, size, threads, self.budget_s - single_budget)
            if threads > 1
            else per_core
        )
        del buffer
        aggregate = max(aggregate, per_core)  # more threads never lose bandwidth at best
        rule = (
            f"measured: streaming read (memchr) of {size >> 20} MiB (> 2 x {limits.llc_bytes >> 20}"
            f" MiB last-level cache), best of rounds: 1 thread {per_core / 1e9:.1f} GB/s, "
            f"{threads} thread(s) {aggregate / 1e9:.1f} GB/s (the cores this process may use)"
        )
        return ProbeResult(
            round_significant(aggregate / 1e9),
            threads,
            round_significant(per_core / 1e9),
            size >> 20,
            rule,
        )


class RecordedProbe:
    """A probe result recorded with a snapshot (``detect --record``), replayed as is."""

    def __init__(self, result: ProbeResult | None) -> None:
        self.result = result

    @classmethod
    def load(cls, path: Path) -> RecordedProbe:
        try:
            data = json.loads(path.read_text())
            return cls(
                ProbeResult(
                    float(data["aggregateGBps"]),
                    int(data["threads"]),
                    float(data["perCoreGBps"]),
                    int(data["bufferMiB"]),
                    str(data["rule"]),
                )
            )
        except (OSError, ValueError, KeyError, TypeError):
            return cls(None)

    def measure(self, limits: ProbeLimits) -> ProbeResult | None:
        return self.result


def llc_bytes(files: HostFiles, cpu: int = 0) -> int:
    """Size of cpu's last-level cache from sysfs; 32 MiB (a common L3 slice) when unknown."""
    best = 0
    base = f"/sys/devices/system/cpu/cpu{cpu}/cache"
    for index in files.list_dir(base):
        text = files.read_first_line(f"{base}/{index}/size") or ""
        if text.endswith("K") and text[:-1].isdigit():
            best = max(best, int(text[:-1]) << 10)
        elif text.endswith("M") and text[:-1].isdigit():
            best = max(best, int(text[:-1]) << 20)
    return best or 32 << 20


def probe_limits(
    files: HostFiles, threads: int, memory_limit_bytes: int | None, rss_bytes: int | None
) -> ProbeLimits:
    """Threads and buffer the probe may use here: half the cgroup's memory headroom."""
    headroom = _MAX_BUFFER
    if memory_limit_bytes is not None:
        headroom = min(headroom, max(0, memory_limit_bytes - (rss_bytes or 0)) // 2)
    return ProbeLimits(max(1, threads), headroom, llc_bytes(files))


class ProbeMode(StrEnum):
    AUTO = "auto"  # probe when no DIMM or CPU-table figure exists (unknown CPU, most VMs)
    ALWAYS = "always"
    NEVER = "never"


def read_memory(
    files: HostFiles,
    cpu: CpuFacts,
    *,
    probe: BandwidthProbe | None = None,
    mode: ProbeMode = ProbeMode.NEVER,
    limits: ProbeLimits | None = None,
) -> MemoryFacts:
    facts = MemoryFacts(total_mib=read_total_mib(files))
    spec = spec_bandwidth(files, cpu) if mode is not ProbeMode.ALWAYS else None
    if spec is not None:
        facts.bandwidth_gbps, facts.rule = round(spec[0], 1), spec[1]
        facts.source = BandwidthSource.SPEC
        return facts
    notes = ""
    if mode is not ProbeMode.NEVER and probe is not None and limits is not None:
        measured = probe.measure(limits)
        if measured is not None:
            facts.bandwidth_gbps = measured.aggregate_gbps
            facts.bandwidth_threads = measured.threads
            facts.per_core_bandwidth_gbps = measured.per_core_gbps
            facts.source = BandwidthSource.MEASURED
            facts.rule = measured.rule
            facts.probe = measured
            return facts
        notes = (
            f"; no probe figure (buffer {limits.max_buffer_bytes >> 20} MiB allowed, "
            f"needs 2 x {limits.llc_bytes >> 20} MiB last-level cache)"
        )
    spec = spec if spec is not None else spec_bandwidth(files, cpu)
    if spec is not None:
        facts.bandwidth_gbps, facts.rule = round(spec[0], 1), spec[1] + notes
        facts.source = BandwidthSource.SPEC
    else:
        estimate, rule = estimate_bandwidth(cpu)
        facts.bandwidth_gbps, facts.rule = round(estimate, 1), rule + notes
        facts.source = BandwidthSource.ESTIMATED
    return facts
