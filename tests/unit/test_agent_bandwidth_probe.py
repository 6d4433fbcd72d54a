"""The bounded memory-bandwidth probe: live bounds, replay from snapshots, when it runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from inference_thresholds.api import BandwidthSource
from inference_thresholds_agent.cpu import read_cpu
from inference_thresholds_agent.memory import (
    LiveReadProbe,
    ProbeLimits,
    ProbeMode,
    ProbeResult,
    RecordedProbe,
    llc_bytes,
    probe_limits,
    read_memory,
)
from inference_thresholds_agent.profile import PROBE_RECORDING, Detector, default_probe
from inference_thresholds_agent.sources import HostFiles

HOSTS = Path(__file__).resolve().parents[1] / "fixtures" / "hosts"
MIB = 1 << 20


class CountingProbe:
    """A stand-in that records how it was asked; the figure is a fixed recording."""

    def __init__(self, result: ProbeResult | None) -> None:
        self.result = result
        self.calls: list[ProbeLimits] = []

    def measure(self, limits: ProbeLimits) -> ProbeResult | None:
        self.calls.append(limits)
        return self.result


RECORDED = ProbeResult(21.0, 2, 14.0, 256, "measured: recorded")


def test_live_probe_reads_real_memory_within_its_bounds() -> None:
    """A real run on this machine, small: figures are positive and the report is bounded."""
    result = LiveReadProbe(budget_s=0.3, buffer_mib=64).measure(ProbeLimits(2, 512 * MIB, 8 * MIB))
    assert result is not None
    assert result.buffer_mib == 64
    assert result.threads == 2
    assert 0 < result.per_core_gbps <= result.aggregate_gbps
    assert result.rule.startswith("measured: streaming read (memchr) of 64 MiB")


def test_live_probe_refuses_a_buffer_the_cache_would_hold() -> None:
    """Under a tight memory limit the buffer cannot dwarf the LLC: no figure, no guess."""
    probe = LiveReadProbe(budget_s=0.1, buffer_mib=256)
    assert probe.measure(ProbeLimits(1, 40 * MIB, 32 * MIB)) is None


def test_probe_limits_follow_the_cgroup_memory_headroom() -> None:
    files = HostFiles(HOSTS / "x86-epyc-vm-cgroup-v1")
    unlimited = probe_limits(files, 2, None, None)
    assert unlimited.max_buffer_bytes == 512 * MIB
    # 128 MiB limit, 60 MiB resident: half the 68 MiB headroom may be probed.
    tight = probe_limits(files, 2, 128 * MIB, 60 * MIB)
    assert tight.max_buffer_bytes == 34 * MIB
    assert probe_limits(files, 0, None, None).threads == 1


def test_llc_size_from_sysfs(tmp_path: Path) -> None:
    cache = tmp_path / "sys/devices/system/cpu/cpu0/cache"
    for index, size in (("index0", "32K"), ("index2", "1024K"), ("index3", "32M")):
        (cache / index).mkdir(parents=True)
        (cache / index / "size").write_text(size + "\n")
    assert llc_bytes(HostFiles(tmp_path)) == 32 * MIB
    assert llc_bytes(HostFiles(tmp_path / "nowhere")) == 32 * MIB  # unknown: a common L3


def test_auto_probes_only_where_no_spec_exists() -> None:
    epyc = HostFiles(HOSTS / "x86-epyc-vm-cgroup-v1")  # "AMD EPYC": no family, no DIMMs
    probe = CountingProbe(RECORDED)
    facts = read_memory(
        epyc, read_cpu(epyc), probe=probe, mode=ProbeMode.AUTO, limits=ProbeLimits(2, MIB, MIB)
    )
    assert facts.source is BandwidthSource.MEASURED
    assert (facts.bandwidth_gbps, facts.bandwidth_threads, facts.per_core_bandwidth_gbps) == (
        21.0,
        2,
        14.0,
    )
    spr = HostFiles(HOSTS / "xeon-spr-pod-cgroup-v2")  # 16 SMBIOS DIMMs: a spec figure
    unused = CountingProbe(RECORDED)
    facts = read_memory(
        spr, read_cpu(spr), probe=unused, mode=ProbeMode.AUTO, limits=ProbeLimits(2, MIB, MIB)
    )
    assert facts.source is BandwidthSource.SPEC and unused.calls == []
    always = CountingProbe(RECORDED)
    facts = read_memory(
        spr, read_cpu(spr), probe=always, mode=ProbeMode.ALWAYS, limits=ProbeLimits(2, MIB, MIB)
    )
    assert facts.source is BandwidthSource.MEASURED and len(always.calls) == 1


def test_no_probe_figure_falls_back_to_the_estimate_and_says_why() -> None:
    epyc = HostFiles(HOSTS / "x86-epyc-vm-cgroup-v1")
    facts = read_memory(
        epyc,
        read_cpu(epyc),
        probe=CountingProbe(None),
        mode=ProbeMode.AUTO,
        limits=ProbeLimits(2, 20 * MIB, 32 * MIB),
    )
    assert facts.source is BandwidthSource.ESTIMATED
    assert "no probe figure (buffer 20 MiB allowed" in (facts.rule or "")


def test_probe_threads_are_the_pods_usable_cores_and_run_once() -> None:
    probe = CountingProbe(RECORDED)
    # 2.5 cores of quota on 224 threads: two probe threads, not 224.
    detector = Detector(HOSTS / "xeon-spr-pod-cgroup-v2", probe_bandwidth=True, probe=probe)
    first, second = detector.run().profile, detector.run().profile
    assert [c.threads for c in probe.calls] == [2]
    assert first.memory == second.memory
    assert first.memory.bandwidth_source is BandwidthSource.MEASURED
    assert first.memory.bandwidth_threads == 2
    assert first.memory.per_core_bandwidth_gbps == 14.0


def test_snapshot_replays_its_recorded_probe(tmp_path: Path) -> None:
    root = tmp_path / "host"
    shutil.copytree(HOSTS / "x86-epyc-vm-cgroup-v1", root)
    assert isinstance(default_probe(root), RecordedProbe)
    # A snapshot without a recording has no figure: probing here would measure this host.
    assert default_probe(root).measure(ProbeLimits(1, MIB, MIB)) is None
    (root / PROBE_RECORDING).write_text(json.dumps(RECORDED.wire()))
    profile = Detector(root).run().profile
    assert profile.memory.bandwidth_source is BandwidthSource.MEASURED
    assert profile.memory.bandwidth_gbps == 21.0
    assert profile.memory.bandwidth_rule == "measured: recorded"


def test_a_damaged_recording_is_no_figure(tmp_path: Path) -> None:
    path = tmp_path / PROBE_RECORDING
    path.write_text('{"aggregateGBps": "fast"}')
    assert RecordedProbe.load(path).measure(ProbeLimits(1, MIB, MIB)) is None


def test_never_means_no_probe() -> None:
    probe = CountingProbe(RECORDED)
    root = HOSTS / "x86-epyc-vm-cgroup-v1"
    profile = Detector(root, probe_bandwidth=ProbeMode.NEVER, probe=probe).run()
    assert probe.calls == []
    assert profile.profile.memory.bandwidth_source is BandwidthSource.ESTIMATED
