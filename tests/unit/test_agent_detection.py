"""Detection parsers on recorded and hand-assembled host fixtures (tests/fixtures/hosts)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from inference_thresholds.api import BandwidthSource, GpuSharing, HardwareProfile
from inference_thresholds_agent.cgroups import read_cgroup_cpu
from inference_thresholds_agent.cpu import parse_cpuinfo, read_cpu
from inference_thresholds_agent.memory import (
    parse_dmi_memory_device,
    round_significant,
)
from inference_thresholds_agent.nvidia import (
    GpuState,
    NoNvml,
    NvmlDeviceReading,
    NvmlMigReading,
    RecordedNvml,
    detect_nvidia,
    mig_partitions,
    mig_profile,
)
from inference_thresholds_agent.pci import scan_pci
from inference_thresholds_agent.profile import Detector, Scope, detect_profile
from inference_thresholds_agent.sources import HostFiles, parse_cpu_list

HOSTS = Path(__file__).resolve().parents[1] / "fixtures" / "hosts"


def host(name: str) -> HostFiles:
    return HostFiles(HOSTS / name)


def profile(name: str) -> HardwareProfile:
    return detect_profile(HOSTS / name)


def test_cpu_list_syntax() -> None:
    assert parse_cpu_list("0-3,8,10-11\n") == {0, 1, 2, 3, 8, 10, 11}
    assert parse_cpu_list("") == set()
    assert parse_cpu_list("0-x") is None
    assert parse_cpu_list(None) is None


def test_recorded_build_vm() -> None:
    """The real snapshot of this project's VM: 2 vCPU EPYC, cgroup v1 hybrid, no GPU."""
    p = profile("x86-epyc-vm-cgroup-v1")
    assert p.cpu.vendor == "amd"
    assert p.cpu.architecture == "x86_64"
    assert (p.cpu.logical_cores, p.cpu.usable_cores, p.cpu.sockets) == (2, 2.0, 1)
    assert {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "fma"} <= set(p.cpu.isa)
    assert p.cpu.max_frequency_mhz is None  # no cpufreq in this VM; "cpu MHz" is not used
    assert p.memory.total_mib == 24105
    # "AMD EPYC" names no family: estimated, and the rule says how.
    assert p.memory.bandwidth_source is BandwidthSource.ESTIMATED
    assert p.memory.bandwidth_rule and "2 DDR4-3200 channels" in p.memory.bandwidth_rule
    assert p.gpus == [] and p.accelerators == []
    assert p.source == "agent"


def test_graviton3_arm_features_and_table_bandwidth() -> None:
    p = profile("arm-graviton3-cgroup-v2")
    assert (p.cpu.vendor, p.cpu.architecture) == ("arm", "aarch64")
    assert p.cpu.model == "ARM Neoverse-V1"
    assert {"neon", "asimd", "asimddp", "sve", "i8mm", "bf16"} <= set(p.cpu.isa)
    assert "sve2" not in p.cpu.isa  # Neoverse-V1 has SVE, not SVE2
    assert (p.cpu.physical_cores, p.cpu.logical_cores, p.cpu.usable_cores) == (64, 64, 64.0)
    assert p.memory.bandwidth_source is BandwidthSource.SPEC
    assert p.memory.bandwidth_gbps == 307
    assert "Graviton3" in (p.memory.bandwidth_rule or "")


def test_cgroup_v2_cpu_max_gives_fractional_usable_cores() -> None:
    p = profile("xeon-spr-pod-cgroup-v2")
    assert p.cpu.usable_cores == 2.5
    assert (p.cpu.physical_cores, p.cpu.logical_cores) == (112, 224)
    assert (p.cpu.sockets, p.cpu.numa_nodes) == (2, 2)
    assert (p.cpu.base_frequency_mhz, p.cpu.max_frequency_mhz) == (2000.0, 3800.0)
    assert {"amx_tile", "amx_int8", "amx_bf16", "avx512_fp16"} <= set(p.cpu.isa)
    limits = read_cgroup_cpu(host("xeon-spr-pod-cgroup-v2"))
    assert limits.version == 2
    assert limits.memory_limit_bytes == 16 * 1024**3


def test_cgroup_v1_quota_is_the_minimum_over_the_hierarchy() -> None:
    limits = read_cgroup_cpu(host("xeon-skx-pod-cgroup-v1"))
    assert limits.version == 1
    assert limits.quota_cores == 1.5  # pod level; the container level says -1
    assert limits.cpuset == {0, 1, 2, 3}
    assert limits.memory_limit_bytes == 8 * 1024**3
    p = profile("xeon-skx-pod-cgroup-v1")
    assert p.cpu.usable_cores == 1.5
    assert p.cpu.base_frequency_mhz == 2300.0  # from "@ 2.30GHz" in the model name


def test_cpuset_limits_when_it_is_tighter_than_the_quota(tmp_path: Path) -> None:
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/cgroup").write_text("0::/\n")
    (tmp_path / "proc/cpuinfo").write_text(
        "".join(
            f"processor\t: {i}\nvendor_id\t: GenuineIntel\nflags\t\t: lm avx2\n\n" for i in range(8)
        )
    )
    cg = tmp_path / "sys/fs/cgroup"
    cg.mkdir(parents=True)
    (cg / "cgroup.controllers").write_text("cpu cpuset\n")
    (cg / "cpu.max").write_text("max 100000\n")
    (cg / "cpuset.cpus.effective").write_text("2-4\n")
    assert Detector(tmp_path, nvml=NoNvml()).run().profile.cpu.usable_cores == 3.0
    (cg / "cpu.max").write_text("50000 100000\n")
    assert Detector(tmp_path, nvml=NoNvml()).run().profile.cpu.usable_cores == 0.5


def test_node_scope_ignores_the_agents_own_cgroup() -> None:
    detection = Detector(HOSTS / "xeon-spr-pod-cgroup-v2", scope=Scope.NODE).run()
    assert detection.profile.cpu.usable_cores == 224.0


def test_cpuinfo_blocks() -> None:
    blocks = parse_cpuinfo("processor : 0\nflags : a b\n\nprocessor : 1\nflags : a b\n")
    assert [b["processor"] for b in blocks] == ["0", "1"]


def test_smbios_memory_devices() -> None:
    p = profile("xeon-spr-pod-cgroup-v2")
    assert p.memory.bandwidth_source is BandwidthSource.SPEC
    assert p.memory.bandwidth_gbps == 614.4  # 16 x DDR5-4800 x 8 B
    assert "16 DIMMs DDR5 at 4800 MT/s" in (p.memory.bandwidth_rule or "")
    empty = bytes([17, 0x28]) + bytes(0x26)
    assert parse_dmi_memory_device(empty) is None


def test_smbios_more_dimms_than_channels_is_capped_by_the_cpu_table(tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "host"
    shutil.copytree(HOSTS / "xeon-spr-pod-cgroup-v2", root)
    entries = root / "sys/firmware/dmi/entries"
    for i in range(16, 32):  # a second DIMM per channel
        raw = (entries / "17-0/raw").read_bytes()
        (entries / f"17-{i + 100}").mkdir()
        (entries / f"17-{i + 100}/raw").write_bytes(raw)
    p = detect_profile(root)  # the copy carries nvml.json: no live driver is asked
    assert p.memory.bandwidth_gbps == 614.0  # 2 sockets x 8 channels x DDR5-4800, not 32 DIMMs
    assert "capped by" in (p.memory.bandwidth_rule or "")


def test_smbios_small_dimm_sizes() -> None:
    # 16 GiB DIMM in the 16-bit size field (MB granularity), DDR4 at 3200 configured.
    raw = bytearray(0x28)
    raw[0], raw[1], raw[0x12] = 17, 0x28, 0x1A
    struct.pack_into("<H", raw, 0x0C, 16384)
    struct.pack_into("<H", raw, 0x15, 3200)
    struct.pack_into("<H", raw, 0x20, 2933)
    dimm = parse_dmi_memory_device(bytes(raw))
    assert dimm is not None
    assert (dimm.memory_type, dimm.mega_transfers, dimm.size_mib) == ("DDR4", 2933, 16384)


def test_dgx_a100_nvml_recording() -> None:
    detection = Detector(HOSTS / "dgx-a100-80gb").run()
    assert detection.gpu_state is GpuState.OK
    (gpu,) = detection.profile.gpus
    assert (gpu.vendor, gpu.product, gpu.count) == ("nvidia", "NVIDIA A100-SXM4-80GB", 8)
    assert gpu.memory_mib == 81920
    assert gpu.compute_capability == "8.0"
    assert gpu.memory_bandwidth_gbps == 2039.0  # 1593 MHz x 5120 bit x 2 / 8
    assert (gpu.fp16_tflops, gpu.int8_tops) == (312, 624)  # from the engine's table
    assert gpu.sm_count == 108  # 6912 cores / 64 per SM (cc 8.0)
    assert gpu.mig_enabled is False
    assert detection.profile.cpu.numa_nodes == 8
    assert detection.profile.memory.bandwidth_gbps == 410  # 2 x EPYC Rome from the table


def test_h100_mig_and_nvswitch_free_count() -> None:
    detection = Detector(HOSTS / "hgx-h100-mig").run()
    (gpu,) = detection.profile.gpus
    assert (gpu.product, gpu.count, gpu.sm_count) == ("NVIDIA H100 80GB HBM3", 8, 132)
    assert gpu.mig_enabled is True
    # Each GPU holds a 4g.40gb and a 3g.40gb instance: identical GPUs add their counts.
    assert [
        (p.mig_profile, p.count, p.memory_mib, p.multiprocessors, p.compute_slices)
        for p in gpu.partitions or []
    ] == [("3g.40gb", 8, 40192, 48, 3), ("4g.40gb", 8, 40192, 64, 4)]
    assert all(p.resource is None for p in gpu.partitions or [])  # the device plugin names it
    assert gpu.memory_mib == 81559
    assert gpu.memory_bandwidth_gbps == pytest.approx(3352.3)
    assert gpu.compute_capability == "9.0"
    assert scan_pci(host("dgx-a100-80gb")).nvidia_gpus == 8  # NVSwitches are not GPUs


def test_nvml_disagreeing_with_the_table_uses_the_table(tmp_path: Path) -> None:
    from inference_thresholds_agent.nvidia import NvmlDeviceReading, describe

    notes: list[str] = []
    # A clock reported as the effective data rate (2x the usual convention): the x2
    # rule would double the bandwidth, the table catches it.
    reading = NvmlDeviceReading(
        name="NVIDIA GeForce RTX 4090",
        memory_total_bytes=25757220864,
        max_memory_clock_mhz=21002,
        memory_bus_width_bits=384,
        cuda_compute_capability=(8, 9),
    )
    device = describe(reading, notes)
    assert device.memory_bandwidth_gbps == 1008
    assert "using the table" in notes[0]
    agreeing = describe(NvmlDeviceReading("NVIDIA GeForce RTX 4090", None, 10501, 384, (8, 9)), [])
    assert agreeing.memory_bandwidth_gbps == 1008.1  # NVML's own figure, within 15%


def test_mi300x_from_pci_ids() -> None:
    p = profile("mi300x-node")
    (gpu,) = p.gpus
    assert (gpu.vendor, gpu.product, gpu.count) == ("amd", "AMD Instinct MI300X", 8)
    assert gpu.memory_mib == 192 * 1024
    assert (gpu.memory_bandwidth_gbps, gpu.fp16_tflops) == (5300, 1307)
    assert p.accelerators == []


@pytest.mark.parametrize(
    ("vendor", "device", "product", "bandwidth"),
    [
        (0x1DA3, 0x1020, "Intel Gaudi 2", 2450),
        (0x1D0F, 0x7264, "AWS Inferentia2", 820),
        (0x1D0F, 0x7164, "AWS Trainium", 820),
        (0x1D0F, 0x7564, "AWS Trainium3", None),  # known part, no spec entry: no figures
        (0x1AE0, 0x0063, "Google TPU v5e", 819),
        (0x1AE0, 0x006F, "Google TPU v6e", 1640),
    ],
)
def test_accelerator_tables(
    tmp_path: Path, vendor: int, device: int, product: str, bandwidth: float | None
) -> None:
    for i in range(4):
        base = tmp_path / f"sys/bus/pci/devices/0000:{i:02x}:00.0"
        base.mkdir(parents=True)
        (base / "vendor").write_text(f"0x{vendor:04x}\n")
        (base / "device").write_text(f"0x{device:04x}\n")
        (base / "class").write_text("0x120000\n")
    (accelerator,) = scan_pci(HostFiles(tmp_path)).accelerators
    assert (accelerator.product, accelerator.count) == (product, 4)
    assert accelerator.memory_bandwidth_gbps == bandwidth


def test_mi250x_pci_function_is_half_a_package(tmp_path: Path) -> None:
    base = tmp_path / "sys/bus/pci/devices/0000:01:00.0"
    base.mkdir(parents=True)
    (base / "vendor").write_text("0x1002\n")
    (base / "device").write_text("0x740c\n")
    (gpu,) = scan_pci(HostFiles(tmp_path)).gpus
    assert gpu.memory_mib == 64 * 1024
    assert gpu.memory_bandwidth_gbps == pytest.approx(3277 / 2, abs=0.1)


def test_empty_root_gives_an_empty_but_valid_profile(tmp_path: Path) -> None:
    detection = Detector(tmp_path, nvml=NoNvml()).run()
    assert detection.gpu_state is GpuState.ABSENT
    assert detection.profile.cpu.logical_cores is None
    assert detection.profile.memory.total_mib is None
    HardwareProfile.model_validate(detection.profile.wire())


def test_every_fixture_round_trips_through_the_api_model() -> None:
    names = sorted(p.name for p in HOSTS.iterdir() if p.is_dir())
    assert len(names) >= 7
    for name in names:
        p = profile(name)
        assert HardwareProfile.model_validate(p.wire()) == p, name


def test_detection_is_deterministic() -> None:
    root = HOSTS / "dgx-a100-80gb"
    assert detect_profile(root).wire() == detect_profile(root).wire()


def test_significant_rounding() -> None:
    assert round_significant(43.27) == 43.0
    assert round_significant(187.4) == 190.0
    assert round_significant(0.0) == 0.0


def test_cpuset_of_smt_siblings_counts_the_cores_it_covers(tmp_path: Path) -> None:
    """Two logical CPUs that are hyperthreads of one core give one core's throughput."""
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_text(
        "".join(
            f"processor\t: {i}\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R)\n"
            "flags\t\t: fpu lm avx avx2 fma\n\n"
            for i in range(4)
        )
    )
    (tmp_path / "proc/self").mkdir()
    (tmp_path / "proc/self/cgroup").write_text("0::/\n")
    cpu_dir = tmp_path / "sys/devices/system/cpu"
    cpu_dir.mkdir(parents=True)
    (cpu_dir / "online").write_text("0-3\n")
    for cpu, core in enumerate((0, 0, 1, 1)):  # cpu0/cpu1 and cpu2/cpu3 are siblings
        topology = cpu_dir / f"cpu{cpu}" / "topology"
        topology.mkdir(parents=True)
        (topology / "core_id").write_text(f"{core}\n")
        (topology / "physical_package_id").write_text("0\n")
    cgroup = tmp_path / "sys/fs/cgroup"
    cgroup.mkdir(parents=True)
    (cgroup / "cgroup.controllers").write_text("cpu cpuset\n")
    (cgroup / "cpuset.cpus.effective").write_text("0-1\n")
    (tmp_path / "nvml.json").write_text('{"libraryMissing": true}')
    detection = Detector(tmp_path).run()
    assert detection.profile.cpu.physical_cores == 2
    assert detection.profile.cpu.usable_cores == 1.0
    assert any("SMT siblings on 1 core(s)" in note for note in detection.notes)


def test_amd_pstate_nominal_frequency_is_the_base_clock(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_text(
        "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD Ryzen 9 7950X 16-Core "
        "Processor\nflags\t\t: fpu lm avx avx2\n\n"
    )
    freq = tmp_path / "sys/devices/system/cpu/cpu0/cpufreq"
    freq.mkdir(parents=True)
    (freq / "cpuinfo_max_freq").write_text("5700000\n")
    (freq / "amd_pstate_nominal_freq").write_text("4500000\n")
    (tmp_path / "sys/devices/system/cpu/online").write_text("0\n")
    cpu = read_cpu(HostFiles(tmp_path))
    assert (cpu.base_frequency_mhz, cpu.max_frequency_mhz) == (4500.0, 5700.0)


def test_mig_and_whole_gpus_on_one_node_are_separate_groups() -> None:
    mig, whole = profile("a100-80gb-mig-mixed").gpus
    assert (mig.mig_enabled, whole.mig_enabled) == (True, False)
    assert whole.partitions is None and whole.count == 1
    assert [(p.mig_profile, p.count, p.memory_mib) for p in mig.partitions or []] == [
        ("1g.10gb", 1, 9856),
        ("2g.20gb", 1, 19968),
        ("3g.40gb", 1, 40192),
    ]


def test_single_profile_gpus_group_with_all_their_instances() -> None:
    for fixture, product, profile_name, instances in (
        ("a100-40gb-mig-single", "NVIDIA A100-SXM4-40GB", "1g.5gb", 14),
        ("h200-nvl-mig", "NVIDIA H200 NVL", "1g.18gb", 14),
    ):
        (gpu,) = profile(fixture).gpus
        assert (gpu.product, gpu.count) == (product, 2)
        (part,) = gpu.partitions or []
        assert (part.mig_profile, part.count, part.compute_slices) == (profile_name, instances, 1)


@pytest.mark.parametrize(
    ("device_mib", "instance_mib", "g", "c", "expected"),
    [
        (81920, 9856, 1, 1, "1g.10gb"),  # A100-80GB
        (81920, 19968, 1, 1, "1g.20gb"),
        (81920, 40192, 3, 3, "3g.40gb"),
        (81920, 80384, 7, 7, "7g.80gb"),
        (40960, 4864, 1, 1, "1g.5gb"),  # A100-40GB
        (40960, 19968, 4, 4, "4g.20gb"),
        (143771, 17920, 1, 1, "1g.18gb"),  # H200 141GB
        (143771, 71680, 3, 3, "3g.71gb"),
        (81920, 19968, 2, 1, "1c.2g.20gb"),  # a compute instance of a 2g instance
    ],
)
def test_profile_name_from_attributes_follows_go_nvlib(
    device_mib: int, instance_mib: int, g: int, c: int, expected: str
) -> None:
    """Without 'MIG <profile>' in the NVML name, the name is built as NVIDIA's go-nvlib
    builds it (memory share rounded up to eighths x device GiB rounded up)."""
    mig = NvmlMigReading(
        name="NVIDIA GPU",
        memory_mib=instance_mib,
        gpu_instance_slices=g,
        compute_instance_slices=c,
    )
    assert mig_profile(mig, device_mib * 2**20) == expected


def test_mig_enabled_without_instances_is_said() -> None:
    notes: list[str] = []
    reading = NvmlDeviceReading(name="NVIDIA A100-SXM4-80GB", mig_devices=[])
    assert mig_partitions(reading, notes) == []
    assert "no MIG device created" in notes[0]
    assert mig_partitions(NvmlDeviceReading(name="x"), notes) is None  # MIG off


def test_mps_control_daemon_marks_gpus_shared() -> None:
    detection = Detector(HOSTS / "t4-mps", env={}).run()
    (gpu,) = detection.profile.gpus
    (part,) = gpu.partitions or []
    assert (part.sharing, part.replicas, part.mig_profile) == (GpuSharing.MPS, None, None)
    assert any("MPS control daemon started for nvidia.com/gpu" in n for n in detection.notes)


def test_mps_client_environment_gives_the_share() -> None:
    env = {"CUDA_MPS_PIPE_DIRECTORY": "/mps/pipe", "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": "25"}
    (gpu,) = Detector(HOSTS / "dgx-a100-80gb", env=env).run().profile.gpus
    (part,) = gpu.partitions or []
    assert (part.sharing, part.replicas, part.count) == (GpuSharing.MPS, 4, 8)


def test_node_scope_ignores_the_agents_own_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_MPS_PIPE_DIRECTORY", "/mps/pipe")
    (gpu,) = Detector(HOSTS / "dgx-a100-80gb", scope=Scope.NODE).run().profile.gpus
    assert gpu.partitions is None


def test_exclusive_process_mode_alone_is_only_a_note() -> None:
    data = RecordedNvml.load(HOSTS / "t4-mps" / "nvml.json").data
    detection = detect_nvidia(RecordedNvml(data), pci_nvidia_gpus=1, mps=None)
    assert detection.devices[0].partitions is None
    assert any("EXCLUSIVE_PROCESS" in n for n in detection.notes)
