"""HardwareProfile -> ``hw.inference.dev/`` node labels (keys: ``api.node_contract``).

Rules (each fixes a complaint about NFD/GFD labels):
- numbers carry their unit in the key (``memory.total-mib``), never in the value;
- nothing that changes between passes (timestamps, current clocks) is a label;
- values are sanitised deterministically: characters outside ``[A-Za-z0-9._-]`` become
  ``-``, runs collapse, ends are trimmed to alphanumerics; a value still over 63
  characters keeps 54 characters plus ``-`` and 8 hex digits of its SHA-256, so two long
  names never collide silently. The unabridged profile is in the annotation.
- per GPU/accelerator kind: ``gpu.count`` is all GPUs on the node; product, memory and
  speeds describe the largest group (the full list is in the annotation);
- every number a scheduler may compare has an integer form, because node affinity's
  ``Gt``/``Lt`` parse label values as integers (a label of ``7.91`` matches neither):
  ``cpu.usable-millicores``, ``*.fp16-tflops-int``/``*.int8-tops-int`` (rounded down, so
  ``Gt 311`` holds for 312 TFLOPS), ``*.compute-capability-major``/``-minor``; sizes are
  integer MiB already (``memory.total-mib``, ``gpu.memory-mib``).
- ``LabelFilter`` (NFD's ``labelWhiteList`` idea, plus a deny list): which names are
  published at all, e.g. ``exclude: ^gpu[.]`` where GPU Feature Discovery already labels
  GPUs. The profile annotation always carries everything (the operator reads that).
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass

from inference_thresholds.api import DeviceInfo, GpuSharing, HardwareProfile
from inference_thresholds.api.node_contract import (
    LABEL_PREFIX,
    LABEL_VALUE_MAX,
    valid_label_name,
)
from inference_thresholds.text import decimal_text


class LabelError(ValueError):
    """A label key that Kubernetes would reject."""


def validate_key(key: str) -> None:
    prefix, _, name = key.rpartition("/")
    if prefix + "/" != LABEL_PREFIX or not valid_label_name(name):
        raise LabelError(
            f"label key {key!r}: the name after {LABEL_PREFIX!r} must be 1-63 characters of "
            "[A-Za-z0-9._-], starting and ending alphanumeric"
        )


def sanitise(value: str) -> str:
    """Any text as a valid label value (see the module docstring); '' when nothing is left."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", value.strip())
    cleaned = re.sub(r"-{2,}", "-", cleaned)
    cleaned = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", cleaned)
    if len(cleaned) > LABEL_VALUE_MAX:
        digest = hashlib.sha256(cleaned.encode()).hexdigest()[:8]
        head = re.sub(r"[^A-Za-z0-9]+$", "", cleaned[:54])
        cleaned = f"{head}-{digest}"
    return cleaned


@dataclass(frozen=True)
class LabelFilter:
    """Include/exclude regular expressions over label names without the prefix.

    As NFD's ``labelWhiteList``: a name is published when ``include`` matches somewhere
    in it (``re.search``; anchor with ``^``/``$``) and ``exclude`` does not; exclude wins.
    """

    include: re.Pattern[str] | None = None
    exclude: re.Pattern[str] | None = None

    @classmethod
    def parse(cls, include: str | None, exclude: str | None) -> LabelFilter:
        """From option text; a bad expression raises ValueError naming the option."""
        return cls(_compile("include", include), _compile("exclude", exclude))

    def allows(self, key: str) -> bool:
        name = key.removeprefix(LABEL_PREFIX)
        if self.include is not None and not self.include.search(name):
            return False
        return self.exclude is None or not self.exclude.search(name)


def _compile(option: str, text: str | None) -> re.Pattern[str] | None:
    if not text:
        return None
    try:
        return re.compile(text)
    except re.error as exc:
        raise ValueError(f"labels-{option} {text!r}: not a regular expression ({exc})") from None


ALL_LABELS = LabelFilter()


def number(value: float) -> str:
    """Integers without '.0'; other numbers with at most 2 decimals, no exponent."""
    return decimal_text(value, 2)


def _device_labels(kind: str, devices: list[DeviceInfo], out: dict[str, str]) -> None:
    if not devices:
        return
    main = devices[0]  # grouped: largest count first
    out[f"{kind}.count"] = str(sum(d.count for d in devices))
    out[f"{kind}.vendor"] = main.vendor
    out[f"{kind}.product"] = main.product
    if len(devices) > 1:
        out[f"{kind}.product-kinds"] = str(len(devices))
    if main.memory_mib:
        out[f"{kind}.memory-mib"] = str(main.memory_mib)
    if main.memory_bandwidth_gbps:
        out[f"{kind}.memory-bandwidth-gbps"] = str(round(main.memory_bandwidth_gbps))
    if main.fp16_tflops:
        out[f"{kind}.fp16-tflops"] = number(round(main.fp16_tflops, 1))
        out[f"{kind}.fp16-tflops-int"] = str(math.floor(main.fp16_tflops))
    if main.int8_tops:
        out[f"{kind}.int8-tops"] = number(round(main.int8_tops, 1))
        out[f"{kind}.int8-tops-int"] = str(math.floor(main.int8_tops))
    if main.compute_capability:
        out[f"{kind}.compute-capability"] = main.compute_capability
        major, _, minor = main.compute_capability.partition(".")
        out[f"{kind}.compute-capability-major"] = major
        out[f"{kind}.compute-capability-minor"] = minor
    if main.sm_count:
        out[f"{kind}.sm-count"] = str(main.sm_count)
    if main.mig_enabled is not None:
        out[f"{kind}.mig-enabled"] = "true" if main.mig_enabled else "false"
    parts = main.partitions or []
    instances = sum(p.count for p in parts if p.mig_profile)
    if instances:
        out[f"{kind}.mig-instances"] = str(instances)
    shared = next((p for p in parts if p.sharing is not GpuSharing.NONE), None)
    if shared is not None:
        out[f"{kind}.sharing"] = shared.sharing.value
        if shared.replicas:
            out[f"{kind}.replicas"] = str(shared.replicas)


def profile_labels(profile: HardwareProfile, allowed: LabelFilter = ALL_LABELS) -> dict[str, str]:
    """The label set for a profile: sorted, sanitised, validated, filtered by ``allowed``."""
    raw: dict[str, str] = {}
    cpu, memory = profile.cpu, profile.memory
    if cpu.vendor:
        raw["cpu.vendor"] = cpu.vendor
    if cpu.model:
        raw["cpu.model"] = cpu.model
    if cpu.architecture:
        raw["cpu.arch"] = cpu.architecture
    numbers: tuple[tuple[str, float | None], ...] = (
        ("cpu.sockets", cpu.sockets),
        ("cpu.numa-nodes", cpu.numa_nodes),
        ("cpu.physical-cores", cpu.physical_cores),
        ("cpu.logical-cores", cpu.logical_cores),
        ("cpu.usable-cores", cpu.usable_cores),
        ("cpu.base-frequency-mhz", cpu.base_frequency_mhz),
        ("cpu.max-frequency-mhz", cpu.max_frequency_mhz),
        ("memory.total-mib", memory.total_mib),
    )
    for name, amount in numbers:
        if amount is not None:
            raw[name] = number(amount)
    if cpu.usable_cores is not None:
        raw["cpu.usable-millicores"] = str(math.floor(round(cpu.usable_cores * 1000, 3)))
    for feature in cpu.isa:
        raw[f"cpu.isa.{feature}"] = "true"
    if memory.bandwidth_gbps is not None:
        raw["memory.bandwidth-gbps"] = str(round(memory.bandwidth_gbps))
    if memory.bandwidth_source is not None:
        raw["memory.bandwidth-source"] = memory.bandwidth_source.value
    _device_labels("gpu", profile.gpus, raw)
    _device_labels("accelerator", profile.accelerators, raw)

    labels: dict[str, str] = {}
    for name, value in sorted(raw.items()):
        key = LABEL_PREFIX + sanitise(name).lower()
        validate_key(key)
        clean = sanitise(value)  # always a valid value (a property test holds it to that)
        if clean and allowed.allows(key):
            labels[key] = clean
    return labels
