"""The objects operator_scale.py creates: agent-labelled Nodes and varied InferenceThresholds.

Nodes carry exactly what the node agent publishes (labels from ``profile_labels``, the
profile and owned-labels annotations from ``desired_metadata``) plus a pool and a zone
label the CRs select on. Hardware comes from a fixed list of classes (GPU servers of
several generations, CPU servers, a VM), so every run builds the same cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from inference_thresholds.api import CpuInfo, DeviceInfo, HardwareProfile, MemoryInfo
from inference_thresholds.api.crd import InferenceThresholdsSpec
from inference_thresholds.api.node_contract import LABEL_PREFIX
from inference_thresholds_agent.labels import profile_labels
from inference_thresholds_agent.publisher import desired_metadata

BENCH_LABEL = "inference-thresholds-bench"
POOL_LABEL = "inference.example.com/pool"
ZONE_LABEL = "topology.kubernetes.io/zone"
POOLS = [f"pool-{i}" for i in range(10)]
ZONES = ["zone-a", "zone-b", "zone-c", "zone-d"]

_X86_ISA = ["avx", "avx2", "fma", "f16c"]
_AVX512 = [*_X86_ISA, "avx512f", "avx512bw", "avx512_vnni"]


def _cpu(
    vendor: str, model: str, cores: int, *, arch: str = "x86_64", sockets: int = 1, isa: list[str]
) -> CpuInfo:
    return CpuInfo(
        vendor=vendor,
        model=model,
        architecture=arch,
        physical_cores=cores,
        logical_cores=cores * (1 if arch == "aarch64" else 2),
        usable_cores=float(cores),
        sockets=sockets,
        numa_nodes=sockets,
        max_frequency_mhz=3500.0,
        isa=isa,
    )


def _mem(gib: int, bandwidth: float) -> MemoryInfo:
    return MemoryInfo(total_mib=gib * 1024, bandwidth_gbps=bandwidth, bandwidth_source="spec")


_EPYC_HOST = _cpu("amd", "AMD EPYC 7763 64-Core Processor", 128, sockets=2, isa=_X86_ISA)
_SPR_HOST = _cpu("intel", "Intel(R) Xeon(R) Platinum 8480+", 112, sockets=2, isa=_AVX512)

# (product, vendor, memory MiB, bandwidth GB/s, fp16 TFLOPS, compute capability, SMs)
_GPUS: dict[str, tuple[str, int, float, float, str | None, int | None]] = {
    "NVIDIA H200": ("nvidia", 143771, 4800, 989, "9.0", 132),
    "NVIDIA H100 80GB HBM3": ("nvidia", 81559, 3350, 989, "9.0", 132),
    "NVIDIA A100-SXM4-80GB": ("nvidia", 81920, 2039, 312, "8.0", 108),
    "NVIDIA A100-SXM4-40GB": ("nvidia", 40960, 1555, 312, "8.0", 108),
    "NVIDIA L40S": ("nvidia", 46068, 864, 362, "8.9", 142),
    "NVIDIA L4": ("nvidia", 23034, 300, 121, "8.9", 58),
    "NVIDIA A10G": ("nvidia", 23028, 600, 125, "8.6", 80),
    "Tesla T4": ("nvidia", 15360, 320, 65, "7.5", 40),
    "Tesla V100-SXM2-32GB": ("nvidia", 32768, 900, 125, "7.0", 80),
    "NVIDIA GeForce RTX 4090": ("nvidia", 24564, 1008, 165, "8.9", 128),
    "AMD Instinct MI300X": ("amd", 196608, 5300, 1307, None, None),
}


def _gpu_server(product: str, count: int, host: CpuInfo, ram_gib: int) -> HardwareProfile:
    vendor, mem, bw, fp16, cc, sms = _GPUS[product]
    gpu = DeviceInfo(
        vendor=vendor,
        product=product,
        count=count,
        memory_mib=mem,
        memory_bandwidth_gbps=bw,
        fp16_tflops=fp16,
        compute_capability=cc,
        sm_count=sms,
        mig_enabled=False if vendor == "nvidia" else None,
    )
    return HardwareProfile(cpu=host, memory=_mem(ram_gib, 300), gpus=[gpu], source="agent")


def hardware_classes() -> list[HardwareProfile]:
    """24 distinct hardware classes, as the agent would report them."""
    gpu = [
        _gpu_server("NVIDIA H200", 8, _SPR_HOST, 2048),
        _gpu_server("NVIDIA H100 80GB HBM3", 8, _SPR_HOST, 2048),
        _gpu_server("NVIDIA H100 80GB HBM3", 4, _EPYC_HOST, 1024),
        _gpu_server("NVIDIA A100-SXM4-80GB", 8, _EPYC_HOST, 1024),
        _gpu_server("NVIDIA A100-SXM4-80GB", 2, _EPYC_HOST, 512),
        _gpu_server("NVIDIA A100-SXM4-40GB", 8, _EPYC_HOST, 1024),
        _gpu_server("NVIDIA L40S", 4, _EPYC_HOST, 512),
        _gpu_server("NVIDIA L4", 1, _cpu("amd", "AMD EPYC 7R13", 16, isa=_X86_ISA), 64),
        _gpu_server("NVIDIA L4", 4, _cpu("amd", "AMD EPYC 7R13", 48, isa=_X86_ISA), 192),
        _gpu_server("NVIDIA A10G", 1, _cpu("amd", "AMD EPYC 7R32", 8, isa=_X86_ISA), 32),
        _gpu_server("NVIDIA A10G", 4, _cpu("amd", "AMD EPYC 7R32", 48, isa=_X86_ISA), 192),
        _gpu_server("Tesla T4", 1, _cpu("intel", "Intel Xeon Platinum 8259CL", 8, isa=_AVX512), 32),
        _gpu_server("Tesla V100-SXM2-32GB", 8, _SPR_HOST, 768),
        _gpu_server(
            "NVIDIA GeForce RTX 4090", 1, _cpu("amd", "AMD Ryzen 9 7950X", 16, isa=_AVX512), 128
        ),
        _gpu_server("AMD Instinct MI300X", 8, _SPR_HOST, 2048),
    ]
    cpu = [
        HardwareProfile(cpu=_SPR_HOST, memory=_mem(512, 307), source="agent"),
        HardwareProfile(
            cpu=_cpu(
                "intel", "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", 64, sockets=2, isa=_AVX512
            ),
            memory=_mem(256, 204),
            source="agent",
        ),
        HardwareProfile(
            cpu=_cpu("amd", "AMD EPYC 9654 96-Core Processor", 96, isa=_AVX512),
            memory=_mem(768, 460),
            source="agent",
        ),
        HardwareProfile(cpu=_EPYC_HOST, memory=_mem(512, 409), source="agent"),
        HardwareProfile(
            cpu=_cpu("arm", "Neoverse-V1", 64, arch="aarch64", isa=["neon", "sve", "asimddp"]),
            memory=_mem(256, 307),
            source="agent",
        ),
        HardwareProfile(
            cpu=_cpu("arm", "Neoverse-V2", 96, arch="aarch64", isa=["neon", "sve2", "asimddp"]),
            memory=_mem(384, 537),
            source="agent",
        ),
        HardwareProfile(
            cpu=_cpu("arm", "Neoverse-N1", 80, arch="aarch64", isa=["neon", "asimddp"]),
            memory=_mem(256, 205),
            source="agent",
        ),
        HardwareProfile(
            cpu=_cpu(
                "intel", "Intel(R) Xeon(R) CPU E5-2690 v4 @ 2.60GHz", 28, sockets=2, isa=_X86_ISA
            ),
            memory=_mem(128, 77),
            source="agent",
        ),
        HardwareProfile(
            cpu=_cpu("amd", "AMD EPYC 7B13", 8, isa=_X86_ISA), memory=_mem(32, 40), source="agent"
        ),
    ]
    return gpu + cpu


def node_name(i: int) -> str:
    return f"bench-node-{i:04d}"


def node_labels(i: int, profile: HardwareProfile) -> dict[str, str]:
    return {
        **profile_labels(profile),
        "kubernetes.io/hostname": node_name(i),
        BENCH_LABEL: "1",
        POOL_LABEL: POOLS[(i * 7) % len(POOLS)],
        ZONE_LABEL: ZONES[i % len(ZONES)],
    }


def node_object(i: int, classes: list[HardwareProfile]) -> dict[str, Any]:
    """Node i as the agent leaves it: its labels plus the profile annotations."""
    profile = classes[i % len(classes)]
    _, annotations = desired_metadata(profile)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node_name(i),
            "labels": node_labels(i, profile),
            "annotations": annotations,
        },
    }


def namespace_name(k: int) -> str:
    return f"bench-{k:02d}"


_MODELS = [
    "llama-3.1-8b",
    "mistral-7b",
    "qwen2.5-7b",
    "llama-3.2-1b",
    "llama-3.2-3b",
    "gemma-2-2b",
    "gemma-2-9b",
    "phi-3-mini",
    "llama-2-13b",
    "bitnet-b1.58-2b-4t",
]
_ENVIRONMENTS = ["production", "staging", "development", "testing", "edge"]
_PRIORITIES = ["latency", "throughput", "balanced", "memory"]
_STRICTNESS = ["strict", "standard", "lenient"]


def _selector(j: int, classes: list[HardwareProfile]) -> tuple[dict[str, Any], str]:
    """Varied node selectors (and the device they imply), cycling over six shapes."""
    gpu_products = sorted({p.gpus[0].product for p in classes if p.gpus})
    shape = j % 6
    pool, zone = POOLS[j % len(POOLS)], ZONES[(j // 6) % len(ZONES)]
    if shape == 0:
        pools = [POOLS[j % 10], POOLS[(j + 3) % 10]]
        sel = {
            "matchLabels": {LABEL_PREFIX + "gpu.vendor": "nvidia"},
            "matchExpressions": [{"key": POOL_LABEL, "operator": "In", "values": pools}],
        }
        return sel, "gpu"
    if shape == 1:
        return {"matchLabels": {POOL_LABEL: pool}}, "auto"
    if shape == 2:
        return {
            "matchExpressions": [
                {"key": LABEL_PREFIX + "gpu.count", "operator": "DoesNotExist"},
                {"key": ZONE_LABEL, "operator": "In", "values": [zone]},
            ]
        }, "cpu"
    if shape == 3:
        product = gpu_products[j % len(gpu_products)]
        labels = profile_labels(next(p for p in classes if p.gpus and p.gpus[0].product == product))
        return {
            "matchLabels": {LABEL_PREFIX + "gpu.product": labels[LABEL_PREFIX + "gpu.product"]}
        }, "gpu"
    if shape == 4:
        return {
            "matchExpressions": [
                {"key": LABEL_PREFIX + "cpu.arch", "operator": "In", "values": ["x86_64"]},
                {"key": POOL_LABEL, "operator": "NotIn", "values": [pool]},
                {"key": ZONE_LABEL, "operator": "In", "values": [zone]},
            ]
        }, "auto"
    # Pool and zone both follow the node index, so only same-parity pairs exist.
    zone = ZONES[(j % len(POOLS) + 2 * ((j // 6) % 2)) % len(ZONES)]
    return {"matchLabels": {ZONE_LABEL: zone, POOL_LABEL: pool}}, "auto"


def cr_spec(j: int, classes: list[HardwareProfile], model: str | None = None) -> dict[str, Any]:
    selector, device = _selector(j, classes)
    return {
        "nodeSelector": selector,
        "model": {"preset": model or _MODELS[j % len(_MODELS)]},
        "context": {
            "environment": _ENVIRONMENTS[j % len(_ENVIRONMENTS)],
            "priority": _PRIORITIES[(j // 2) % len(_PRIORITIES)],
            "strictness": _STRICTNESS[(j // 3) % len(_STRICTNESS)],
            "device": device,
            "workload": {
                "promptTokens": [128, 256, 512, 1024, 2048][(j // 5) % 5],
                "outputTokens": [64, 128, 256][j % 3],
                "concurrency": [1, 2, 4, 8][(j // 7) % 4],
            },
        },
    }


@dataclass(frozen=True)
class CrPlan:
    namespace: str
    name: str
    spec: dict[str, Any]

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def config_map(self) -> str:
        return InferenceThresholdsSpec.model_validate(self.spec).config_map_name(self.name)

    def body(self) -> dict[str, Any]:
        return {
            "apiVersion": "thresholds.inference.dev/v1alpha1",
            "kind": "InferenceThresholds",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": self.spec,
        }


def cr_plans(count: int, namespaces: int, classes: list[HardwareProfile]) -> list[CrPlan]:
    return [
        CrPlan(namespace_name(j % namespaces), f"it-{j:04d}", cr_spec(j, classes))
        for j in range(count)
    ]
