"""Profile -> hw.inference.dev/ labels: units in keys, valid values, no churn."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from inference_thresholds.api import CpuInfo, DeviceInfo, HardwareProfile
from inference_thresholds.api.crd import NodeSelector
from inference_thresholds.api.node_contract import LABEL_PREFIX, valid_label_value
from inference_thresholds.controller.selector import matches
from inference_thresholds_agent.labels import number, profile_labels, sanitise
from inference_thresholds_agent.profile import detect_profile

HOSTS = Path(__file__).resolve().parents[1] / "fixtures" / "hosts"
_KEY_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def test_dgx_labels() -> None:
    labels = profile_labels(detect_profile(HOSTS / "dgx-a100-80gb"))
    expected = {
        "gpu.count": "8",
        "gpu.vendor": "nvidia",
        "gpu.product": "NVIDIA-A100-SXM4-80GB",  # GFD's convention: spaces -> '-'
        "gpu.memory-mib": "81920",
        "gpu.memory-bandwidth-gbps": "2039",
        "gpu.fp16-tflops": "312",
        "gpu.int8-tops": "624",
        "gpu.compute-capability": "8.0",
        "gpu.sm-count": "108",
        "gpu.mig-enabled": "false",
        "cpu.vendor": "amd",
        "cpu.model": "AMD-EPYC-7742-64-Core-Processor",
        "cpu.sockets": "2",
        "cpu.numa-nodes": "8",
        "cpu.physical-cores": "128",
        "cpu.logical-cores": "256",
        "cpu.max-frequency-mhz": "2250",
        "cpu.isa.avx2": "true",
        "memory.total-mib": "2063792",
        "memory.bandwidth-gbps": "410",
        "memory.bandwidth-source": "spec",
    }
    for name, value in expected.items():
        assert labels[LABEL_PREFIX + name] == value, name
    assert not any(k.startswith(LABEL_PREFIX + "accelerator.") for k in labels)


def test_fractional_usable_cores_label() -> None:
    labels = profile_labels(detect_profile(HOSTS / "xeon-spr-pod-cgroup-v2"))
    assert labels[LABEL_PREFIX + "cpu.usable-cores"] == "2.5"
    assert labels[LABEL_PREFIX + "cpu.usable-millicores"] == "2500"
    assert labels[LABEL_PREFIX + "cpu.isa.amx_int8"] == "true"


def _select(op: str, key: str, value: str) -> NodeSelector:
    expression = {"key": LABEL_PREFIX + key, "operator": op, "values": [value]}
    return NodeSelector.model_validate({"matchExpressions": [expression]})


def test_integer_forms_let_node_affinity_compare() -> None:
    """Gt/Lt parse labels as integers: the decimal forms never match, the integer ones do."""
    pod = profile_labels(detect_profile(HOSTS / "xeon-spr-pod-cgroup-v2"))
    assert not matches(_select("Gt", "cpu.usable-cores", "2"), pod)  # "2.5" is no integer
    assert matches(_select("Gt", "cpu.usable-millicores", "2000"), pod)
    assert not matches(_select("Gt", "cpu.usable-millicores", "2500"), pod)
    h100 = profile_labels(detect_profile(HOSTS / "hgx-h100-mig"))
    names = {k.removeprefix(LABEL_PREFIX): v for k, v in h100.items()}
    assert (names["gpu.compute-capability-major"], names["gpu.compute-capability-minor"]) == (
        "9",
        "0",
    )
    assert names["gpu.fp16-tflops-int"] == "989" and names["gpu.mig-instances"] == "16"
    assert matches(_select("Gt", "gpu.compute-capability-major", "8"), h100)
    assert matches(_select("Lt", "gpu.memory-mib", "81560"), h100)


def test_integer_forms_round_down() -> None:
    gpu = DeviceInfo(
        vendor="apple", product="Apple M2 Max", fp16_tflops=13.6, compute_capability="12.10"
    )
    labels = profile_labels(HardwareProfile(cpu=CpuInfo(usable_cores=7.91), accelerators=[gpu]))
    names = {k.removeprefix(LABEL_PREFIX): v for k, v in labels.items()}
    assert names["cpu.usable-millicores"] == "7910"
    assert names["accelerator.fp16-tflops-int"] == "13"
    assert names["accelerator.fp16-tflops"] == "13.6"
    assert names["accelerator.compute-capability-major"] == "12"
    assert names["accelerator.compute-capability-minor"] == "10"


def test_sharing_is_labelled() -> None:
    names = {
        k.removeprefix(LABEL_PREFIX): v
        for k, v in profile_labels(detect_profile(HOSTS / "t4-mps")).items()
    }
    assert names["gpu.sharing"] == "mps" and "gpu.replicas" not in names


def test_every_fixture_gives_valid_labels() -> None:
    for fixture in sorted(p for p in HOSTS.iterdir() if p.is_dir()):
        for key, value in profile_labels(detect_profile(fixture)).items():
            assert key.startswith(LABEL_PREFIX)
            name = key[len(LABEL_PREFIX) :]
            assert len(name) <= 63 and _KEY_NAME.match(name), key
            assert valid_label_value(value), (key, value)
            # Units live in keys; no value looks like "80GiB" or "2.5GHz".
            if re.search(r"-(mib|gbps|mhz|tflops|tops|count|cores)$", name):
                assert re.fullmatch(r"\d+(\.\d+)?", value), (key, value)
            # Integer forms are what node affinity's Gt/Lt can read.
            if re.search(r"(-int|millicores|-major|-minor|instances|replicas)$", name):
                assert re.fullmatch(r"\d+", value), (key, value)


def test_labels_hold_nothing_that_changes_between_passes() -> None:
    for fixture in sorted(p for p in HOSTS.iterdir() if p.is_dir()):
        labels = profile_labels(detect_profile(fixture))
        assert not any(re.search(r"time|date|uptime|current|free", k) for k in labels), fixture


def test_sanitise_is_deterministic_and_valid() -> None:
    assert sanitise("Intel(R) Xeon(R) Platinum 8480+") == "Intel-R-Xeon-R-Platinum-8480"
    assert sanitise("  --AMD EPYC--  ") == "AMD-EPYC"
    long = "x" * 40 + " " + "y" * 40
    shortened = sanitise(long)
    assert len(shortened) == 63 and valid_label_value(shortened)
    assert shortened == sanitise(long)
    assert sanitise(long + "z") != shortened  # different long names stay distinct


@given(st.text(max_size=200))
def test_sanitised_values_are_always_legal(text: str) -> None:
    assert valid_label_value(sanitise(text))


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False))
def test_numbers_never_use_exponents(value: float) -> None:
    text = number(round(value, 2))
    assert re.fullmatch(r"\d+(\.\d{1,2})?", text), text


def test_mixed_gpus_describe_the_largest_group_and_count_all() -> None:
    profile = HardwareProfile(
        cpu=CpuInfo(),
        gpus=[
            DeviceInfo(vendor="nvidia", product="NVIDIA L4", count=4, memory_mib=23034),
            DeviceInfo(vendor="nvidia", product="NVIDIA T4", count=2, memory_mib=15360),
        ],
    )
    labels = profile_labels(profile)
    assert labels[LABEL_PREFIX + "gpu.count"] == "6"
    assert labels[LABEL_PREFIX + "gpu.product"] == "NVIDIA-L4"
    assert labels[LABEL_PREFIX + "gpu.product-kinds"] == "2"
