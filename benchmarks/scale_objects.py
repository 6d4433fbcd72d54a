"""The objects operator_scale.py creates: agent-labelled Nodes and varied InferenceThresholds.

Nodes carry exactly what the node agent publishes (labels from ``profile_labels``, the
profile and owned-labels annotations from ``desired_metadata``) plus a pool and a zone
label the CRs select on. Hardware comes from a fixed list of classes (GPU servers of
several generations, CPU servers, a VM), so every run builds the same cluster.
"""

from __future__ import annotations

import json
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


# --- realistic Nodes -----------------------------------------------------------------------
# What a GPU node in a managed cluster carries besides the agent's part: the kubelet's
# labels, annotations, spec and status (addresses, capacity, conditions, a page of
# container images with digests, nodeInfo, runtime handlers), and the labels and
# annotations of Node Feature Discovery and GPU Feature Discovery (GFD labels go through
# nfd-master). Sized like real nodes: 14-24 KB of JSON with managedFields.

MANAGER_KUBELET = "kubelet"
MANAGER_NFD = "nfd-master"

_NFD_CPUID = [
    "ADX",
    "AESNI",
    "AMXBF16",
    "AMXINT8",
    "AMXTILE",
    "AVX",
    "AVX2",
    "AVX512BF16",
    "AVX512BITALG",
    "AVX512BW",
    "AVX512CD",
    "AVX512DQ",
    "AVX512F",
    "AVX512FP16",
    "AVX512IFMA",
    "AVX512VBMI",
    "AVX512VBMI2",
    "AVX512VL",
    "AVX512VNNI",
    "AVX512VPOPCNTDQ",
    "AVXVNNI",
    "CETIBT",
    "CETSS",
    "CLDEMOTE",
    "CMPXCHG8",
    "FLUSH_L1D",
    "FMA3",
    "FSRM",
    "FXSR",
    "FXSROPT",
    "GFNI",
    "HYPERVISOR",
    "IA32_ARCH_CAP",
    "IBPB",
    "LAHF",
    "MOVBE",
    "MOVDIR64B",
    "MOVDIRI",
    "OSXSAVE",
    "PCONFIG",
    "SERIALIZE",
    "SHA",
    "SPEC_CTRL_SSBD",
    "STIBP",
    "SYSCALL",
    "SYSEE",
    "TSXLDTRK",
    "VAES",
    "VMX",
    "VPCLMULQDQ",
    "WAITPKG",
    "WBNOINVD",
    "X87",
    "XGETBV1",
    "XSAVE",
    "XSAVEC",
    "XSAVEOPT",
    "XSAVES",
]
_NFD_ARM = [
    "AES",
    "ASIMD",
    "ASIMDDP",
    "ASIMDHP",
    "ASIMDRDM",
    "ATOMICS",
    "CPUID",
    "CRC32",
    "DCPOP",
    "FCMA",
    "FP",
    "FPHP",
    "ILRCPC",
    "JSCVT",
    "LRCPC",
    "PMULL",
    "SHA1",
    "SHA2",
    "SHA3",
    "SHA512",
    "SVE",
    "SVE2",
    "I8MM",
]

_IMAGES = [
    "nvcr.io/nvidia/k8s-device-plugin:v0.17.1",
    "nvcr.io/nvidia/gpu-feature-discovery:v0.17.1",
    "nvcr.io/nvidia/cloud-native/dcgm:3.3.9-1-ubuntu22.04",
    "nvcr.io/nvidia/k8s/dcgm-exporter:3.3.9-3.6.1-ubuntu22.04",
    "nvcr.io/nvidia/cuda:12.6.3-base-ubi9",
    "nvcr.io/nvidia/tritonserver:25.01-trtllm-python-py3",
    "nvcr.io/nvidia/pytorch:25.01-py3",
    "docker.io/vllm/vllm-openai:v0.7.3",
    "ghcr.io/huggingface/text-generation-inference:3.1.0",
    "registry.k8s.io/nfd/node-feature-discovery:v0.17.3",
    "registry.k8s.io/kube-proxy:v1.35.0",
    "registry.k8s.io/pause:3.10",
    "registry.k8s.io/coredns/coredns:v1.12.0",
    "registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.13.0",
    "registry.k8s.io/sig-storage/livenessprobe:v2.15.0",
    "quay.io/prometheus/node-exporter:v1.9.0",
    "quay.io/cilium/cilium:v1.17.1",
    "quay.io/cilium/operator-generic:v1.17.1",
    "docker.io/fluent/fluent-bit:3.2.6",
    "ghcr.io/inference-thresholds/node-agent:0.1.0",
    "public.ecr.aws/ebs-csi-driver/aws-ebs-csi-driver:v1.39.0",
    "public.ecr.aws/eks/aws-efa-k8s-device-plugin:v0.5.6",
    "docker.io/library/busybox:1.37",
    "ghcr.io/kserve/kserve-controller:v0.14.1",
    "ghcr.io/kserve/huggingfaceserver:v0.14.1",
    "docker.io/rayproject/ray:2.42.1-py311-gpu",
    "nvcr.io/nvidia/nim/meta/llama-3.1-8b-instruct:1.3.3",
    "nvcr.io/nvidia/nim/meta/llama-3.1-70b-instruct:1.3.3",
    "docker.io/ollama/ollama:0.5.12",
    "ghcr.io/ggml-org/llama.cpp:server-cuda-b4800",
    "docker.io/grafana/promtail:3.4.2",
    "docker.io/istio/proxyv2:1.25.0",
]


def _digest(text: str) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _nfd_labels(profile: HardwareProfile) -> dict[str, str]:
    prefix = "feature.node.kubernetes.io/"
    arm = profile.cpu.architecture == "aarch64"
    flags = _NFD_ARM if arm else _NFD_CPUID
    isa = set(profile.cpu.isa or [])
    # The engine reads AVX512F etc.; keep the NFD view consistent with the agent's ISA list.
    wanted = {f for f in flags if f.lower() in isa or not f.startswith(("AVX512", "AMX", "SVE"))}
    labels = {f"{prefix}cpu-cpuid.{f}": "true" for f in sorted(wanted)}
    labels.update(
        {
            f"{prefix}cpu-cstate.enabled": "true",
            f"{prefix}cpu-hardware_multithreading": "false" if arm else "true",
            f"{prefix}cpu-model.family": "6" if profile.cpu.vendor == "intel" else "25",
            f"{prefix}cpu-model.id": "143" if profile.cpu.vendor == "intel" else "17",
            f"{prefix}cpu-model.vendor_id": {"intel": "Intel", "amd": "AMD"}.get(
                profile.cpu.vendor or "", "ARM"
            ),
            f"{prefix}cpu-pstate.status": "active",
            f"{prefix}cpu-pstate.turbo": "true",
            f"{prefix}kernel-config.NO_HZ": "true",
            f"{prefix}kernel-config.NO_HZ_IDLE": "true",
            f"{prefix}kernel-version.full": "6.8.0-1021-aws",
            f"{prefix}kernel-version.major": "6",
            f"{prefix}kernel-version.minor": "8",
            f"{prefix}kernel-version.revision": "0",
            f"{prefix}memory-numa": "true" if (profile.cpu.numa_nodes or 1) > 1 else "false",
            f"{prefix}storage-nonrotationaldisk": "true",
            f"{prefix}system-os_release.ID": "ubuntu",
            f"{prefix}system-os_release.VERSION_ID": "22.04",
            f"{prefix}system-os_release.VERSION_ID.major": "22",
            f"{prefix}system-os_release.VERSION_ID.minor": "04",
            f"{prefix}pci-1d0f.present": "true",
        }
    )
    if profile.gpus:
        labels[
            f"{prefix}pci-10de.present"
            if profile.gpus[0].vendor == "nvidia"
            else f"{prefix}pci-1002.present"
        ] = "true"
    return labels


def _gfd_labels(i: int, profile: HardwareProfile) -> dict[str, str]:
    """GPU Feature Discovery and the GPU operator's labels for an NVIDIA node."""
    if not profile.gpus or profile.gpus[0].vendor != "nvidia":
        return {}
    gpu = profile.gpus[0]
    major, minor = (gpu.compute_capability or "0.0").split(".")
    product = (gpu.product or "").replace(" ", "-")
    family = {"9": "hopper", "8": "ampere", "7": "volta"}.get(major, "ada-lovelace")
    labels = {
        "nvidia.com/cuda.driver-version.full": "570.124.06",
        "nvidia.com/cuda.driver-version.major": "570",
        "nvidia.com/cuda.driver-version.minor": "124",
        "nvidia.com/cuda.driver-version.revision": "06",
        "nvidia.com/cuda.driver.major": "570",
        "nvidia.com/cuda.driver.minor": "124",
        "nvidia.com/cuda.driver.rev": "06",
        "nvidia.com/cuda.runtime-version.full": "12.8",
        "nvidia.com/cuda.runtime-version.major": "12",
        "nvidia.com/cuda.runtime-version.minor": "8",
        "nvidia.com/cuda.runtime.major": "12",
        "nvidia.com/cuda.runtime.minor": "8",
        "nvidia.com/gfd.timestamp": str(1767225600 + i),  # per node: GFD stamps each run
        "nvidia.com/gpu.compute.major": major,
        "nvidia.com/gpu.compute.minor": minor,
        "nvidia.com/gpu.count": str(gpu.count),
        "nvidia.com/gpu.family": family,
        "nvidia.com/gpu.machine": "p5.48xlarge" if gpu.count == 8 else "g6.12xlarge",
        "nvidia.com/gpu.memory": str(gpu.memory_mib),
        "nvidia.com/gpu.mode": "compute",
        "nvidia.com/gpu.product": product,
        "nvidia.com/gpu.replicas": "1",
        "nvidia.com/gpu.sharing-strategy": "none",
        "nvidia.com/mig.capable": "true"
        if major in ("8", "9") and gpu.memory_mib and gpu.memory_mib > 40000
        else "false",
        "nvidia.com/mig.strategy": "single",
        "nvidia.com/mps.capable": "false",
        "nvidia.com/vgpu.present": "false",
        "nvidia.com/gpu.present": "true",
    }
    for component in (
        "container-toolkit", "dcgm", "dcgm-exporter", "device-plugin", "driver",
        "gpu-feature-discovery", "mig-manager", "node-status-exporter", "operator-validator",
    ):  # fmt: skip
        labels[f"nvidia.com/gpu.deploy.{component}"] = "true"
    return labels


def _resources(profile: HardwareProfile) -> tuple[dict[str, str], dict[str, str]]:
    cores = int(profile.cpu.logical_cores or 8)
    mem_ki = int((profile.memory.total_mib or 32768) * 1024)
    capacity = {
        "cpu": str(cores),
        "ephemeral-storage": "1942046556Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "memory": f"{mem_ki}Ki",
        "pods": "250",
    }
    allocatable = {
        **capacity,
        "cpu": f"{cores * 1000 - 190}m",
        "ephemeral-storage": "1789517765895",
        "memory": f"{mem_ki - 4 * 1024 * 1024}Ki",
    }
    if profile.gpus:
        gpu = profile.gpus[0]
        resource = "nvidia.com/gpu" if gpu.vendor == "nvidia" else "amd.com/gpu"
        capacity[resource] = allocatable[resource] = str(gpu.count)
        capacity["vpc.amazonaws.com/efa"] = allocatable["vpc.amazonaws.com/efa"] = "32"
    return capacity, allocatable


def _conditions(at: str) -> list[dict[str, str]]:
    rows = [
        ("KernelDeadlock", "False", "KernelHasNoDeadlock", "kernel has no deadlock"),
        ("ReadonlyFilesystem", "False", "FilesystemIsNotReadOnly", "Filesystem is not read-only"),
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    ]  # fmt: skip
    return [
        {
            "type": t,
            "status": s,
            "reason": r,
            "message": m,
            "lastHeartbeatTime": at,
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }
        for t, s, r, m in rows
    ]


def realistic_status(i: int, profile: HardwareProfile, beat: int = 0) -> dict[str, Any]:
    """The kubelet's status for node i (``beat`` varies the heartbeat time)."""
    capacity, allocatable = _resources(profile)
    ip = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
    images = [
        {
            "names": [f"{img.split(':')[0]}@{_digest(img)}", img],
            "sizeBytes": 50_000_000 + 7_919 * (k + 1) * 1_000 + (k % 7) * 1_000_003,
        }
        for k, img in enumerate(_IMAGES[: 16 if not profile.gpus else len(_IMAGES)])
    ]
    at = f"2026-01-01T{(beat // 3600) % 24:02d}:{(beat // 60) % 60:02d}:{beat % 60:02d}Z"
    return {
        "addresses": [
            {"type": "InternalIP", "address": ip},
            {"type": "InternalDNS", "address": f"ip-{ip.replace('.', '-')}.ec2.internal"},
            {"type": "Hostname", "address": f"ip-{ip.replace('.', '-')}.ec2.internal"},
        ],
        "allocatable": allocatable,
        "capacity": capacity,
        "conditions": _conditions(at),
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "images": images,
        "nodeInfo": {
            "architecture": "arm64" if profile.cpu.architecture == "aarch64" else "amd64",
            "bootID": _digest(f"boot-{i}")[7:43],
            "containerRuntimeVersion": "containerd://2.0.2",
            "kernelVersion": "6.8.0-1021-aws",
            "kubeProxyVersion": "",
            "kubeletVersion": "v1.35.0",
            "machineID": _digest(f"machine-{i}")[7:39],
            "operatingSystem": "linux",
            "osImage": "Ubuntu 22.04.5 LTS",
            "systemUUID": _digest(f"uuid-{i}")[7:43],
        },
        "runtimeHandlers": [
            {"name": n, "features": {"recursiveReadOnlyMounts": True, "userNamespaces": True}}
            for n in ("nvidia", "runc", "")
        ],
    }


def realistic_node(i: int, classes: list[HardwareProfile]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Node i as a GPU cluster has it: (the kubelet's create body, nfd-master's patch with
    NFD/GFD labels and the agent's labels and profile annotation)."""
    bare = node_object(i, classes)
    profile = classes[i % len(classes)]
    name = node_name(i)
    ip = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
    instance_id = f"i-{_digest(name)[7:24]}"
    arch = "arm64" if profile.cpu.architecture == "aarch64" else "amd64"
    instance = "p5.48xlarge" if profile.gpus and profile.gpus[0].count == 8 else "m7i.16xlarge"
    kubelet_labels = {
        "beta.kubernetes.io/arch": arch,
        "beta.kubernetes.io/instance-type": instance,
        "beta.kubernetes.io/os": "linux",
        "failure-domain.beta.kubernetes.io/region": "us-east-1",
        "failure-domain.beta.kubernetes.io/zone": bare["metadata"]["labels"][ZONE_LABEL],
        "kubernetes.io/arch": arch,
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": instance,
        "topology.kubernetes.io/region": "us-east-1",
        "karpenter.sh/capacity-type": "on-demand",
        "karpenter.sh/nodepool": "gpu" if profile.gpus else "cpu",
        "topology.k8s.aws/zone-id": "use1-az" + bare["metadata"]["labels"][ZONE_LABEL][-1],
    }
    agent_labels = dict(bare["metadata"]["labels"])
    create = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                **kubelet_labels,
                "kubernetes.io/hostname": name,
                BENCH_LABEL: "1",
                POOL_LABEL: agent_labels[POOL_LABEL],
                ZONE_LABEL: agent_labels[ZONE_LABEL],
            },
            "annotations": {
                # What the controller-manager's TTL controller keeps on every Node. Created
                # without it, 10,000 Nodes queued 10,000 PATCHes at its 20 requests/s: they
                # went on for minutes after the Nodes existed, through the operator's sync.
                TTL_ANNOTATION: str(ttl_seconds(i + 1)),
                "alpha.kubernetes.io/provided-node-ip": ip,
                "csi.volume.kubernetes.io/nodeid": json.dumps({"ebs.csi.aws.com": instance_id}),
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {
            "providerID": f"aws:///us-east-1a/{instance_id}",
            "podCIDR": f"100.{64 + (i >> 8) % 64}.{i % 256}.0/24",
            "podCIDRs": [f"100.{64 + (i >> 8) % 64}.{i % 256}.0/24"],
            **(
                {"taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]}
                if profile.gpus
                else {}
            ),
        },
        "status": realistic_status(i, profile),
    }
    nfd = {**_nfd_labels(profile), **_gfd_labels(i, profile)}
    patch = {
        "metadata": {
            "labels": {
                **nfd,
                **{k: v for k, v in agent_labels.items() if k.startswith(LABEL_PREFIX)},
            },
            "annotations": {
                "nfd.node.kubernetes.io/feature-labels": ",".join(
                    k.split("/", 1)[1] for k in sorted(nfd) if k.startswith("feature.node")
                ),
                "nfd.node.kubernetes.io/extended-resources": "",
                "nfd.node.kubernetes.io/worker.version": "v0.17.3",
                **bare["metadata"]["annotations"],
            },
        }
    }
    return create, patch


TTL_ANNOTATION = "node.alpha.kubernetes.io/ttl"
# kube-controller-manager's TTL controller (pkg/controller/ttl): the seconds kubelets may
# cache objects, by cluster size, stepping up as Nodes are added (upper bounds; its
# hysteresis only matters when a cluster shrinks).
_TTL_STEPS = ((100, 0), (500, 15), (1000, 30), (2000, 60), (10000, 300))


def ttl_seconds(nodes: int) -> int:
    """The TTL the controller wants on every Node of a cluster that grew to ``nodes``."""
    return next((ttl for top, ttl in _TTL_STEPS if nodes <= top), 600)


def realistic_merged(i: int, classes: list[HardwareProfile]) -> dict[str, Any]:
    """Node i as stored once created and patched (for in-process reference records)."""
    create, patch = realistic_node(i, classes)
    meta = create["metadata"]
    meta["labels"] = {**meta["labels"], **patch["metadata"]["labels"]}
    meta["annotations"] = {**meta["annotations"], **patch["metadata"]["annotations"]}
    return create
