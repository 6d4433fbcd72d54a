"""Accelerators found on the PCI bus (sysfs), identified by vendor/device tables.

The tables hold identity only (who made it, what it is called, memory per PCI
function); performance figures come from the engine's spec table through the product
name, so there is one table of speeds in the project. Multi-die packages that show up
as one PCI function per die (MI250X: two GCDs) carry the fraction of the package's
figures that one function gets.
"""

from __future__ import annotations

from dataclasses import dataclass

from inference_thresholds.api import DeviceInfo
from inference_thresholds.engine.specs import lookup_gpu

from .sources import HostFiles

PCI_DEVICES = "/sys/bus/pci/devices"
NVIDIA_VENDOR = 0x10DE
_GPU_VENDORS = frozenset({"amd"})  # reported under gpus; the rest under accelerators
_DISPLAY_CLASS = 0x03  # PCI base class "display controller" (VGA and 3D): GPUs, not NVSwitch


@dataclass(frozen=True)
class PciProduct:
    vendor: str
    product: str
    memory_gib: float | None
    # Name the engine's spec table knows this part by; None when it has no entry.
    spec_name: str | None
    fraction: float = 1.0  # share of the package's spec one PCI function gets


# (PCI vendor id, device id) -> product. Ids from the upstream kernel drivers
# (amdgpu, habanalabs, AWS neuron) and Google's tpu-info.
PCI_PRODUCTS: dict[tuple[int, int], PciProduct] = {
    (0x1002, 0x738C): PciProduct("amd", "AMD Instinct MI100", 32, None),
    (0x1002, 0x740C): PciProduct("amd", "AMD Instinct MI250X", 64, "Instinct MI250X", 0.5),
    (0x1002, 0x740F): PciProduct("amd", "AMD Instinct MI210", 64, "Instinct MI210"),
    (0x1002, 0x74A0): PciProduct("amd", "AMD Instinct MI300A", 128, None),
    (0x1002, 0x74A1): PciProduct("amd", "AMD Instinct MI300X", 192, "Instinct MI300X"),
    (0x1002, 0x74A5): PciProduct("amd", "AMD Instinct MI325X", 256, "Instinct MI325X"),
    (0x1002, 0x74B5): PciProduct("amd", "AMD Instinct MI300X", 192, "Instinct MI300X"),  # VF
    (0x1DA3, 0x1000): PciProduct("intel", "Intel Gaudi", 32, None),
    (0x1DA3, 0x1010): PciProduct("intel", "Intel Gaudi", 32, None),
    (0x1DA3, 0x1020): PciProduct("intel", "Intel Gaudi 2", 96, "Gaudi 2"),
    (0x1DA3, 0x1030): PciProduct("intel", "Intel Gaudi 2", 96, "Gaudi 2"),
    (0x1DA3, 0x1060): PciProduct("intel", "Intel Gaudi 3", 128, "Gaudi 3"),
    (0x1D0F, 0x7064): PciProduct("aws", "AWS Inferentia", 8, None),
    (0x1D0F, 0x7065): PciProduct("aws", "AWS Inferentia", 8, None),
    (0x1D0F, 0x7066): PciProduct("aws", "AWS Inferentia", 8, None),
    (0x1D0F, 0x7067): PciProduct("aws", "AWS Inferentia", 8, None),
    (0x1D0F, 0x7164): PciProduct("aws", "AWS Trainium", 32, "Trainium"),
    (0x1D0F, 0x7264): PciProduct("aws", "AWS Inferentia2", 32, "Inferentia2"),
    (0x1D0F, 0x7364): PciProduct("aws", "AWS Trainium2", 96, "Trainium2"),
    (0x1D0F, 0x7564): PciProduct("aws", "AWS Trainium3", 144, None),
    (0x1D0F, 0x7565): PciProduct("aws", "AWS Trainium3", 144, None),
    (0x1AE0, 0x005E): PciProduct("google", "Google TPU v4", 32, "TPU v4"),
    (0x1AE0, 0x0062): PciProduct("google", "Google TPU v5p", 95, "TPU v5p"),
    (0x1AE0, 0x0063): PciProduct("google", "Google TPU v5e", 16, "TPU v5e"),
    (0x1AE0, 0x006F): PciProduct("google", "Google TPU v6e", 32, "TPU v6e"),
    (0x1AE0, 0x0076): PciProduct("google", "Google TPU v7x", 192, None),
}


@dataclass
class PciScan:
    nvidia_gpus: int  # NVIDIA display-class functions; NVML describes them
    gpus: list[DeviceInfo]  # other vendors' GPUs (AMD Instinct)
    accelerators: list[DeviceInfo]


def _describe(product: PciProduct) -> DeviceInfo:
    spec = lookup_gpu(product.spec_name) if product.spec_name else None
    share = product.fraction

    def scaled(value: float | None) -> float | None:
        return round(value * share, 1) if value else None

    return DeviceInfo(
        vendor=product.vendor,
        product=product.product,
        count=1,
        memory_mib=int(product.memory_gib * 1024) if product.memory_gib else None,
        memory_bandwidth_gbps=scaled(spec.memory_bandwidth_gbps) if spec else None,
        fp16_tflops=scaled(spec.fp16_tflops) if spec else None,
        int8_tops=scaled(spec.int8_tops) if spec else None,
    )


def scan_pci(files: HostFiles) -> PciScan:
    counts: dict[tuple[int, int], int] = {}
    nvidia = 0
    for address in files.list_dir(PCI_DEVICES):
        base = f"{PCI_DEVICES}/{address}"
        vendor = files.read_int(f"{base}/vendor")
        device = files.read_int(f"{base}/device")
        if vendor is None or device is None:
            continue
        if vendor == NVIDIA_VENDOR:
            pci_class = files.read_int(f"{base}/class")
            if pci_class is not None and pci_class >> 16 == _DISPLAY_CLASS:
                nvidia += 1
            continue
        if (vendor, device) in PCI_PRODUCTS:
            counts[(vendor, device)] = counts.get((vendor, device), 0) + 1
    groups: dict[str, DeviceInfo] = {}
    for ids, count in sorted(counts.items()):
        info = _describe(PCI_PRODUCTS[ids])
        if info.product in groups:  # e.g. PF and VF ids of one product
            groups[info.product].count += count
        else:
            info.count = count
            groups[info.product] = info
    ordered = sorted(groups.values(), key=lambda d: (-d.count, d.product))
    return PciScan(
        nvidia_gpus=nvidia,
        gpus=[d for d in ordered if d.vendor in _GPU_VENDORS],
        accelerators=[d for d in ordered if d.vendor not in _GPU_VENDORS],
    )
