"""CPU identity, topology, frequency and inference-relevant ISA features.

Sources, in order of trust: sysfs topology and cpufreq, then /proc/cpuinfo. Current
clock ("cpu MHz") is never used: it changes from second to second and would churn labels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from inference_thresholds.api.hardware import NAME_MAX
from inference_thresholds.bounds import printable

from .sources import CPUINFO_MAX_BYTES, HostFiles, parse_cpu_list

# x86 flags that matter to llama.cpp / bitnet.cpp / oneDNN kernels (kernel spelling).
X86_ISA = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "avx_vnni_int8",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "amx_fp16",
)
# Arm HWCAP names from /proc/cpuinfo "Features"; 'asimd' is what the kernel calls NEON.
ARM_ISA = ("asimd", "asimdhp", "asimddp", "fphp", "sve", "sve2", "i8mm", "bf16", "svei8mm", "sme")

# CPU implementer codes (MIDR) -> vendor, and well-known part numbers -> core name.
ARM_IMPLEMENTERS = {
    0x41: "arm",
    0x42: "broadcom",
    0x43: "cavium",
    0x48: "hisilicon",
    0x4E: "nvidia",
    0x50: "apm",
    0x51: "qualcomm",
    0x61: "apple",
    0xC0: "ampere",
}
ARM_PARTS = {
    (0x41, 0xD0C): "Neoverse-N1",
    (0x41, 0xD40): "Neoverse-V1",
    (0x41, 0xD49): "Neoverse-N2",
    (0x41, 0xD4F): "Neoverse-V2",
    (0x41, 0xD8E): "Neoverse-N3",
    (0x41, 0xD84): "Neoverse-V3",
    (0x41, 0xD08): "Cortex-A72",
    (0x41, 0xD0B): "Cortex-A76",
    (0x41, 0xD41): "Cortex-A78",
    (0xC0, 0xAC3): "AmpereOne",
}
_X86_VENDORS = {"GenuineIntel": "intel", "AuthenticAMD": "amd", "HygonGenuine": "hygon"}


@dataclass
class CpuFacts:
    vendor: str | None = None
    model: str | None = None
    architecture: str | None = None
    logical_cores: int | None = None
    physical_cores: int | None = None
    sockets: int | None = None
    numa_nodes: int | None = None
    base_frequency_mhz: float | None = None
    max_frequency_mhz: float | None = None
    isa: list[str] = field(default_factory=list)
    online_cpus: set[int] | None = None
    # logical CPU -> (package, core): SMT siblings share a core. None when unknown.
    core_of: dict[int, tuple[int, int]] | None = None

    def physical_cores_in(self, cpus: set[int]) -> int | None:
        """Distinct physical cores the given logical CPUs cover (SMT siblings count once)."""
        if not self.core_of or not cpus <= self.core_of.keys():
            return None
        return len({self.core_of[cpu] for cpu in cpus})


def parse_cpuinfo(text: str) -> list[dict[str, str]]:
    """/proc/cpuinfo -> one dict per block (processor entries, plus Arm's trailing block)."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, sep, value = line.partition(":")
        if sep:
            current[key.strip()] = value.strip()
    if current:
        blocks.append(current)
    return blocks


def _first(blocks: list[dict[str, str]], key: str) -> str | None:
    return next((b[key] for b in blocks if b.get(key)), None)


def _name(blocks: list[dict[str, str]], key: str) -> str | None:
    """A name (vendor, model) as one printable line of at most NAME_MAX characters."""
    value = _first(blocks, key)
    return printable(value, NAME_MAX) if value is not None else None


def _int(value: str | None) -> int | None:
    if value is None or len(value) > 20:
        return None
    try:
        return int(value, 0)
    except ValueError:
        return None


def _khz_to_mhz(value: int | None) -> float | None:
    return round(value / 1000, 1) if value and value > 0 else None


def read_cpu(files: HostFiles) -> CpuFacts:
    facts = CpuFacts()
    blocks = parse_cpuinfo(files.read_text("/proc/cpuinfo", CPUINFO_MAX_BYTES) or "")
    processors = [b for b in blocks if "processor" in b]

    vendor_id = _name(blocks, "vendor_id")
    implementer = _int(_first(blocks, "CPU implementer"))
    flags = set((_first(blocks, "flags") or "").split())
    features = set((_first(blocks, "Features") or "").split())

    if vendor_id is not None or flags:
        facts.architecture = "x86_64" if "lm" in flags else "x86"
        facts.vendor = _X86_VENDORS.get(vendor_id or "", (vendor_id or "").lower() or None)
        facts.model = _name(blocks, "model name")
        facts.isa = sorted(f for f in X86_ISA if f in flags)
    elif implementer is not None or features:
        facts.architecture = "aarch64"
        facts.vendor = ARM_IMPLEMENTERS.get(implementer or -1, "arm")
        part = _int(_first(blocks, "CPU part"))
        core = ARM_PARTS.get((implementer or -1, part or -1))
        # Arm kernels print no model name; name the core so spec tables can match it.
        facts.model = _name(blocks, "model name") or (
            f"{facts.vendor.upper() if facts.vendor == 'arm' else facts.vendor.title()} {core}"
            if core
            else None
        )
        isa = {f for f in ARM_ISA if f in features}
        if "asimd" in isa:
            isa.add("neon")  # the name kernels and users search for
        facts.isa = sorted(isa)

    online = parse_cpu_list(files.read_first_line("/sys/devices/system/cpu/online"))
    facts.online_cpus = (
        online or {int(b["processor"]) for b in processors if b["processor"].isdigit()} or None
    )
    facts.logical_cores = len(facts.online_cpus) if facts.online_cpus else None

    _topology(files, facts, processors)
    _frequency(files, facts)

    nodes = parse_cpu_list(files.read_first_line("/sys/devices/system/node/online"))
    if not nodes:
        nodes = {
            int(n[4:])
            for n in files.list_dir("/sys/devices/system/node")
            if n.startswith("node") and n[4:].isdigit()
        }
    facts.numa_nodes = len(nodes) if nodes else (1 if facts.logical_cores else None)
    return facts


def _topology(files: HostFiles, facts: CpuFacts, processors: list[dict[str, str]]) -> None:
    cores: set[tuple[int, int]] = set()
    packages: set[int] = set()
    core_of: dict[int, tuple[int, int]] = {}
    for cpu in sorted(facts.online_cpus or ()):
        base = f"/sys/devices/system/cpu/cpu{cpu}/topology"
        package = files.read_int(f"{base}/physical_package_id")
        core = files.read_int(f"{base}/core_id")
        if package is None or core is None:
            cores.clear()
            packages.clear()
            core_of.clear()
            break
        packages.add(package)
        cores.add((package, core))
        core_of[cpu] = (package, core)
    facts.core_of = core_of or None
    if not cores:
        # /proc/cpuinfo on x86 carries the same ids; Arm cpuinfo does not.
        for block in processors:
            package_id, core_id = _int(block.get("physical id")), _int(block.get("core id"))
            if package_id is None or core_id is None:
                cores.clear()
                packages.clear()
                break
            packages.add(package_id)
            cores.add((package_id, core_id))
    if cores:
        facts.physical_cores = len(cores)
        facts.sockets = len(packages)
    elif facts.logical_cores:
        facts.physical_cores = facts.logical_cores  # no SMT information: assume none
        facts.sockets = 1


def _frequency(files: HostFiles, facts: CpuFacts) -> None:
    maxima: list[int] = []
    bases: list[int] = []
    for cpu in sorted(facts.online_cpus or ())[:1] or [0]:
        base = f"/sys/devices/system/cpu/cpu{cpu}/cpufreq"
        if (value := files.read_int(f"{base}/cpuinfo_max_freq")) is not None:
            maxima.append(value)
        # intel_pstate names the base clock base_frequency; amd-pstate calls it nominal.
        for name in ("base_frequency", "amd_pstate_nominal_freq"):
            if (value := files.read_int(f"{base}/{name}")) is not None:
                bases.append(value)
                break
    if not maxima:
        for policy in files.list_dir("/sys/devices/system/cpu/cpufreq"):
            value = files.read_int(f"/sys/devices/system/cpu/cpufreq/{policy}/cpuinfo_max_freq")
            if value is not None:
                maxima.append(value)
    facts.max_frequency_mhz = _khz_to_mhz(max(maxima)) if maxima else None
    facts.base_frequency_mhz = _khz_to_mhz(max(bases)) if bases else None
    if facts.base_frequency_mhz is None and facts.model:
        # Intel model names state the base clock: "... CPU @ 2.10GHz".
        match = re.search(r"@\s*([0-9]{1,2}(?:\.[0-9]{1,3})?)\s*GHz", facts.model)
        if match:
            facts.base_frequency_mhz = round(float(match.group(1)) * 1000, 1)
