"""Vendor spec tables: GPUs, accelerators and CPU memory systems.

Figures are vendor data sheets (dense, no sparsity). GeForce/RTX figures are the
FP16-accumulate tensor rates, the path llama.cpp's CUDA kernels take. The node agent
uses these to cross-check NVML, the engine to fill gaps in partial profiles.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class DeviceSpec:
    key: str
    vendor: str
    memory_bandwidth_gbps: float
    fp16_tflops: float
    int8_tops: float | None
    memory_gib: float | None


# Matched by regex on a normalised product name, most specific first.
_GPU_TABLE: tuple[tuple[str, DeviceSpec], ...] = tuple(
    (pattern, DeviceSpec(key, "nvidia", bw, fp16, int8, mem))
    for pattern, key, bw, fp16, int8, mem in (
        (r"gb200|b200", "B200", 8000, 2250, 4500, 180),
        (r"b100", "B100", 8000, 1750, 3500, 180),
        (r"gh200", "GH200", 4000, 989, 1979, 96),
        (r"h200", "H200", 4800, 989, 1979, 141),
        (r"h100.*nvl", "H100 NVL", 3900, 835, 1671, 94),
        (r"h100.*pcie", "H100 PCIe", 2000, 756, 1513, 80),
        (r"h100|h800", "H100 SXM", 3350, 989, 1979, 80),
        (r"h20\b", "H20", 4000, 148, 296, 96),
        (r"a100.*pcie.*80|a100 80gb pcie", "A100 80GB PCIe", 1935, 312, 624, 80),
        (r"a100.*(80|sxm4-80)", "A100 80GB", 2039, 312, 624, 80),
        (r"a100|a800", "A100 40GB", 1555, 312, 624, 40),
        (r"a10g", "A10G", 600, 70, 140, 24),
        (r"a30", "A30", 933, 165, 330, 24),
        (r"a40", "A40", 696, 150, 300, 48),
        (r"a10\b", "A10", 600, 125, 250, 24),
        (r"l40s", "L40S", 864, 362, 733, 48),
        (r"l40", "L40", 864, 181, 362, 48),
        (r"l4\b", "L4", 300, 121, 242, 24),
        (r"t4\b", "T4", 320, 65, 130, 16),
        (r"v100.*32", "V100 32GB", 900, 125, None, 32),
        (r"v100", "V100", 900, 125, None, 16),
        (r"rtx pro 6000|rtx 6000 blackwell", "RTX PRO 6000", 1792, 500, 1000, 96),
        (r"rtx 6000 ada", "RTX 6000 Ada", 960, 364, 728, 48),
        (r"rtx a6000", "RTX A6000", 768, 155, 310, 48),
        (r"5090", "GeForce RTX 5090", 1792, 419, 838, 32),
        (r"5080", "GeForce RTX 5080", 960, 225, 450, 16),
        (r"4090", "GeForce RTX 4090", 1008, 330, 661, 24),
        (r"4080", "GeForce RTX 4080", 717, 195, 390, 16),
        (r"4070 ti", "GeForce RTX 4070 Ti", 504, 160, 320, 12),
        (r"4070", "GeForce RTX 4070", 504, 117, 233, 12),
        (r"4060 ti", "GeForce RTX 4060 Ti", 288, 88, 177, 8),
        (r"4060", "GeForce RTX 4060", 272, 60, 121, 8),
        (r"3090 ti", "GeForce RTX 3090 Ti", 1008, 160, 320, 24),
        (r"3090", "GeForce RTX 3090", 936, 142, 284, 24),
        (r"3080 ti", "GeForce RTX 3080 Ti", 912, 136, 273, 12),
        (r"3080", "GeForce RTX 3080", 760, 119, 238, 10),
        (r"3070", "GeForce RTX 3070", 448, 81, 163, 8),
        (r"3060 ti", "GeForce RTX 3060 Ti", 448, 65, 130, 8),
        (r"3060", "GeForce RTX 3060", 360, 51, 102, 12),
        (r"2080 ti", "GeForce RTX 2080 Ti", 616, 108, 215, 11),
        (r"2080", "GeForce RTX 2080", 448, 81, 161, 8),
        (r"2070", "GeForce RTX 2070", 448, 60, 120, 8),
        (r"2060", "GeForce RTX 2060", 336, 52, 103, 6),
        (r"3050", "GeForce RTX 3050", 224, 36, 73, 8),
        (r"titan rtx", "TITAN RTX", 672, 130, 261, 24),
        (r"titan v\b", "TITAN V", 653, 110, None, 12),
        (r"rtx a5000|\ba5000\b", "RTX A5000", 768, 111, 222, 24),
        (r"rtx a4000|\ba4000\b", "RTX A4000", 448, 77, 153, 16),
        (r"\bl20\b", "L20", 864, 119, 239, 48),
        (r"\ba16\b", "A16", 200, 18, 36, 16),
        (r"\ba2\b", "A2", 200, 18, 36, 16),
        # No tensor cores: llama.cpp uses dp4a int8 (P40) or FP16 ALUs; the figure is
        # what those paths deliver, not a tensor rate.
        (r"p100", "Tesla P100", 732, 19, None, 16),
        (r"p40\b", "Tesla P40", 346, 24, 47, 24),
        (r"1080 ti", "GeForce GTX 1080 Ti", 484, 22, 45, 11),
        (r"jetson.*orin|agx orin", "Jetson AGX Orin", 205, 42, 138, 64),
    )
) + tuple(
    (pattern, DeviceSpec(key, vendor, bw, fp16, int8, mem))
    for pattern, key, vendor, bw, fp16, int8, mem in (
        (r"mi355", "Instinct MI355X", "amd", 8000, 2500, 5000, 288),
        (r"mi300a", "Instinct MI300A", "amd", 5300, 981, 1961, 128),
        (r"mi100", "Instinct MI100", "amd", 1229, 185, 185, 32),
        (r"7900 xtx", "Radeon RX 7900 XTX", "amd", 960, 123, 123, 24),
        (r"7900 xt\b", "Radeon RX 7900 XT", "amd", 800, 103, 103, 20),
        (r"arc a770", "Arc A770", "intel", 560, 138, 275, 16),
        (r"mi325", "Instinct MI325X", "amd", 6000, 1307, 2615, 256),
        (r"mi300x", "Instinct MI300X", "amd", 5300, 1307, 2615, 192),
        (r"mi250", "Instinct MI250X", "amd", 3277, 383, 383, 128),
        (r"mi210", "Instinct MI210", "amd", 1638, 181, 181, 64),
        (r"gaudi ?3", "Gaudi 3", "intel", 3700, 1835, 1835, 128),
        (r"gaudi ?2", "Gaudi 2", "intel", 2450, 432, 865, 96),
        (r"inferentia ?2|inf2", "Inferentia2", "aws", 820, 190, 380, 32),
        (r"trainium ?2|trn2", "Trainium2", "aws", 2900, 667, 1299, 96),
        (r"trainium|trn1", "Trainium", "aws", 820, 190, 380, 32),
        (r"tpu ?v5e|v5litepod", "TPU v5e", "google", 819, 197, 394, 16),
        (r"tpu ?v5p", "TPU v5p", "google", 2765, 459, 918, 95),
        (r"tpu ?v6e|trillium", "TPU v6e", "google", 1640, 918, 1836, 32),
        (r"tpu ?v4", "TPU v4", "google", 1200, 275, 275, 32),
    )
)

# Apple GPUs: FP16 rate equals FP32 on M1-M4. Top binned GPU core counts; a
# "(N-core)" in the product name rescales by cores.
_APPLE_TABLE: tuple[tuple[str, str, float, float, int], ...] = (
    # pattern, key, bandwidth GB/s, TFLOPS, GPU cores
    (r"m4 max", "Apple M4 Max", 546, 17.0, 40),
    (r"m4 pro", "Apple M4 Pro", 273, 9.2, 20),
    (r"m4", "Apple M4", 120, 4.3, 10),
    (r"m3 ultra", "Apple M3 Ultra", 819, 28.2, 80),
    (r"m3 max", "Apple M3 Max", 400, 16.4, 40),
    (r"m3 pro", "Apple M3 Pro", 150, 7.4, 18),
    (r"m3", "Apple M3", 100, 4.1, 10),
    (r"m2 ultra", "Apple M2 Ultra", 800, 27.2, 76),
    (r"m2 max", "Apple M2 Max", 400, 13.6, 38),
    (r"m2 pro", "Apple M2 Pro", 200, 6.8, 19),
    (r"m2", "Apple M2", 100, 3.6, 10),
    (r"m1 ultra", "Apple M1 Ultra", 800, 20.8, 64),
    (r"m1 max", "Apple M1 Max", 400, 10.4, 32),
    (r"m1 pro", "Apple M1 Pro", 200, 5.2, 16),
    (r"m1", "Apple M1", 68, 2.6, 8),
)


def _normalise(product: str) -> str:
    return re.sub(r"[\s_]+", " ", product.lower().replace("-", " ")).strip()


def lookup_gpu(product: str) -> DeviceSpec | None:
    """Spec of a GPU or accelerator by product name (NVML, GFD or PCI name)."""
    name = _normalise(product)
    # Patterns are written with spaces where products use '-', '_' or ' '.
    for pattern, spec in _GPU_TABLE:
        if re.search(pattern.replace("-", " "), name):
            return spec
    return lookup_apple(product)


def lookup_apple(product: str) -> DeviceSpec | None:
    """Apple silicon GPU spec; '(30-core)' style suffixes rescale compute."""
    name = _normalise(product)
    for pattern, key, bw, tflops, cores in _APPLE_TABLE:
        if re.search(rf"\b{pattern}\b", name):
            match = re.search(r"(\d+) ?(?:core|c)\b", name)
            if match and 4 <= int(match.group(1)) <= 128:
                tflops = tflops * int(match.group(1)) / cores
            return DeviceSpec(key, "apple", bw, tflops, None, None)
    return None


@dataclass(frozen=True)
class CpuMemorySpec:
    key: str
    bandwidth_gbps: float
    rule: str

    def spec_bandwidth(self, sockets: int) -> float:
        return self.bandwidth_gbps * sockets


# CPU families -> theoretical socket bandwidth (channels x MT/s x 8 B) per socket.
_CPU_MEMORY_TABLE: tuple[tuple[str, str, float, str], ...] = (
    (r"epyc 9\d\d5", "AMD EPYC Turin", 614, "12 x DDR5-6400"),
    (r"epyc 9\d\d4", "AMD EPYC Genoa", 461, "12 x DDR5-4800"),
    (r"epyc 8\d\d4", "AMD EPYC Siena", 230, "6 x DDR5-4800"),
    (r"epyc 7\d\d3", "AMD EPYC Milan", 205, "8 x DDR4-3200"),
    (r"epyc 7\d\d2", "AMD EPYC Rome", 205, "8 x DDR4-3200"),
    (r"xeon.*6\d{3}[pe]\b|xeon 6", "Intel Xeon 6", 563, "8 x DDR5-6400 (MRDIMM up to 8800)"),
    (
        r"xeon.*(8[45]\d{2}|6[45]\d{2}|5[45]\d{2})[a-z+]*\b",
        "Intel Xeon Sapphire/Emerald Rapids",
        307,
        "8 x DDR5-4800",
    ),
    (r"xeon.*(83\d{2}|63\d{2}|53\d{2}|43\d{2})", "Intel Xeon Ice Lake-SP", 205, "8 x DDR4-3200"),
    (r"xeon.*(82\d{2}|62\d{2}|52\d{2}|42\d{2})", "Intel Xeon Cascade Lake", 141, "6 x DDR4-2933"),
    (r"graviton ?4|neoverse v2", "AWS Graviton4", 537, "12 x DDR5-5600"),
    (r"graviton ?3|neoverse v1", "AWS Graviton3", 307, "8 x DDR5-4800"),
    (r"graviton ?2|neoverse n1", "AWS Graviton2", 205, "8 x DDR4-3200"),
    (r"cobalt 100|neoverse n2", "Azure Cobalt 100", 461, "12 x DDR5-4800"),
    (r"ampere.*altra|altra", "Ampere Altra", 205, "8 x DDR4-3200"),
    (r"grace", "NVIDIA Grace", 500, "LPDDR5X"),
    (r"ryzen ai max", "AMD Ryzen AI Max", 256, "256-bit LPDDR5X-8000"),
    (r"threadripper pro 7\d{3}wx", "AMD Threadripper PRO 7000", 333, "8 x DDR5-5200"),
    (r"threadripper 7\d{3}x", "AMD Threadripper 7000", 166, "4 x DDR5-5200"),
    (r"ryzen (5|7|9) [79]\d{3}x", "AMD Ryzen 7000/9000 desktop", 83, "2 x DDR5-5200"),
    (r"epyc 4\d{3}", "AMD EPYC 4004", 83, "2 x DDR5-5200"),
    (r"core.*i[3579] 1[234]\d{3}", "Intel Core 12th-14th gen", 77, "2 x DDR5-4800"),
    (r"core.*ultra [579] 2\d{2}[kfh]", "Intel Core Ultra 200S", 103, "2 x DDR5-6400"),
    (r"cortex a76|bcm2712|raspberry pi 5", "Raspberry Pi 5", 17, "32-bit LPDDR4X-4267"),
    (r"apple m4 max", "Apple M4 Max", 546, "LPDDR5X unified"),
    (r"apple m4 pro", "Apple M4 Pro", 273, "LPDDR5X unified"),
    (r"apple m4", "Apple M4", 120, "LPDDR5X unified"),
    (r"apple m3 ultra", "Apple M3 Ultra", 819, "LPDDR5 unified"),
    (r"apple m3 max", "Apple M3 Max", 400, "LPDDR5 unified"),
    (r"apple m3 pro", "Apple M3 Pro", 150, "LPDDR5 unified"),
    (r"apple m3", "Apple M3", 100, "LPDDR5 unified"),
    (r"apple m2 ultra", "Apple M2 Ultra", 800, "LPDDR5 unified"),
    (r"apple m2 max", "Apple M2 Max", 400, "LPDDR5 unified"),
    (r"apple m2 pro", "Apple M2 Pro", 200, "LPDDR5 unified"),
    (r"apple m2", "Apple M2", 100, "LPDDR5 unified"),
    (r"apple m1 ultra", "Apple M1 Ultra", 800, "LPDDR5 unified"),
    (r"apple m1 max", "Apple M1 Max", 400, "LPDDR5 unified"),
    (r"apple m1 pro", "Apple M1 Pro", 200, "LPDDR5 unified"),
    (r"apple m1", "Apple M1", 68, "LPDDR4X unified"),
)


def lookup_cpu_memory(cpu_model: str) -> CpuMemorySpec | None:
    """Socket memory bandwidth for a known CPU family (theoretical, per socket)."""
    name = _normalise(cpu_model)
    for pattern, key, bw, rule in _CPU_MEMORY_TABLE:
        if re.search(pattern, name):
            return CpuMemorySpec(key, bw, f"{key}: {rule} = {bw:g} GB/s per socket")
    return None


def ddr_bandwidth_gbps(mega_transfers: float, channels: int) -> float:
    """Per-channel DRAM bandwidth is MT/s x 8 bytes."""
    return mega_transfers * 8 * channels / 1000
