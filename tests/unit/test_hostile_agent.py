"""The node agent reads hostile host files and NVML answers without failing: names are cleaned
and bounded, numbers out of physical range are left out (and said), files past their size
limit count as unreadable. Hostile hosts are built from the recorded-format fixtures in
tests/fixtures/hosts (a DGX A100 root) with the odd values written over them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inference_thresholds.api import HardwareProfile
from inference_thresholds.api.hardware import NAME_MAX
from inference_thresholds_agent.cgroups import read_cgroup_cpu
from inference_thresholds_agent.cpu import read_cpu
from inference_thresholds_agent.labels import profile_labels
from inference_thresholds_agent.profile import Detector, Scope
from inference_thresholds_agent.sources import (
    CPU_ID_MAX,
    FILE_MAX_BYTES,
    HostFiles,
    parse_cpu_list,
)

HOSTS = Path(__file__).resolve().parents[1] / "fixtures" / "hosts"
HUGE_NAME = "\x1b[31mEVIL\x00\x07 " + "A" * 100_000


@pytest.fixture
def hostile_host(tmp_path: Path) -> Path:
    root = tmp_path / "host"
    shutil.copytree(HOSTS / "dgx-a100-80gb", root)
    cpuinfo = root / "proc" / "cpuinfo"
    text = cpuinfo.read_text()
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("model name"))
    lines[first] = f"model name\t: {HUGE_NAME}"  # one per CPU would pass the 16 MiB limit
    cpuinfo.write_bytes("\n".join(lines).encode() + b"\nbogus\xff\xfe: \xc3\x28\n")
    for freq in (root / "sys/devices/system/cpu").glob("cpu*/cpufreq/cpuinfo_max_freq"):
        freq.write_text("99999999999\n")  # 11 digits: a number, 100 THz: not a clock
    (root / "proc/meminfo").write_text("MemTotal:       99999999999999999999 kB\n")
    (root / "sys/fs/cgroup/cpu.max").write_text("9" * 400 + " 100000\n")
    nvml = json.loads((root / "nvml.json").read_text())
    nvml["devices"][0].update(
        name=HUGE_NAME,
        memoryTotalBytes=10**30,
        maxMemoryClockMHz=10**12,
        multiprocessorCount=10**12,
    )
    nvml["devices"][1].update(memoryTotalBytes=-5)
    (root / "nvml.json").write_text(json.dumps(nvml))
    return root


def test_a_hostile_host_is_detected_bounded_and_said(hostile_host: Path) -> None:
    detection = Detector(hostile_host, scope=Scope.PROCESS).run()
    profile = HardwareProfile.model_validate(detection.profile.wire())  # within bounds
    assert profile.cpu.model is not None and len(profile.cpu.model) == NAME_MAX
    assert profile.cpu.model.startswith("[31mEVIL A") and profile.cpu.model.isprintable()
    assert profile.cpu.max_frequency_mhz is None
    assert profile.memory.total_mib is None
    names = {g.product for g in profile.gpus}
    assert all(len(n) <= NAME_MAX and n.isprintable() for n in names)
    evil = next(g for g in profile.gpus if g.product.startswith("[31mEVIL"))
    assert evil.memory_mib is None and evil.sm_count is None
    notes = "\n".join(detection.notes)
    assert "left out cpu.maxFrequencyMHz" in notes and "left out memory.totalMiB" in notes
    assert "cpu.max unparsable" in notes
    # What the agent publishes from it is valid label syntax.
    assert all(len(v) <= 63 for v in profile_labels(profile).values())


def test_files_past_their_limit_are_unreadable(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"1" * (FILE_MAX_BYTES + 1))
    (tmp_path / "digits").write_text("9" * 30)
    (tmp_path / "ok").write_text("42\n")
    files = HostFiles(tmp_path)
    assert files.read_text("/big") is None and files.read_int("/big") is None
    assert files.read_int("/digits") is None
    assert files.read_int("/ok") == 42


@pytest.mark.parametrize("text", ["0-99999999999", "0-70000", "-1", "0-3,1e9", "9" * 5000])
def test_cpu_lists_naming_impossible_cpus_are_unparsable(text: str) -> None:
    assert parse_cpu_list(text) is None


def test_cgroup_numbers_longer_than_a_counter_are_not_numbers(tmp_path: Path) -> None:
    root = tmp_path / "host"
    shutil.copytree(HOSTS / "xeon-spr-pod-cgroup-v2", root)
    (root / "sys/fs/cgroup/memory.max").write_text("9" * 4000 + "\n")
    (root / "sys/fs/cgroup/cpu.max").write_text("250000 " + "1" * 30 + "\n")
    limits = read_cgroup_cpu(HostFiles(root))
    assert limits.memory_limit_bytes is None and limits.quota_cores is None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet="0123456789,- \nx", max_size=60))
def test_any_cpu_list_parses_to_real_cpu_numbers_or_none(text: str) -> None:
    cpus = parse_cpu_list(text)
    assert cpus is None or all(0 <= c <= CPU_ID_MAX for c in cpus)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.text(max_size=400), st.binary(max_size=64))
def test_any_cpuinfo_reads_without_raising(tmp_path_factory: Any, text: str, raw: bytes) -> None:
    root = tmp_path_factory.mktemp("cpuinfo")
    (root / "proc").mkdir()
    (root / "proc" / "cpuinfo").write_bytes(text.encode("utf-8", "surrogatepass") + raw)
    facts = read_cpu(HostFiles(root))
    assert facts.model is None or (len(facts.model) <= NAME_MAX and facts.model.isprintable())
