"""Policy: efficiency factors, floors and slacks — data, not code.

Built-in defaults below; a YAML file (camelCase keys, any subset) is merged over
them, then environment variables over that. Precedence for thresholds, highest
first: explicit override (CR / context) > environment (BITNET_*) > policy file
(``overrides``) > computed.

Environment names:
- the seed's ``BITNET_MIN_TOKENS_PER_SECOND``, ``BITNET_MAX_LATENCY_MS``,
  ``BITNET_MAX_MEMORY_MB``, ``BITNET_MIN_SPEEDUP_FACTOR`` (and
  ``BITNET_MAX_TIME_TO_FIRST_TOKEN_MS``) set thresholds;
- ``INFERENCE_THRESHOLDS_POLICY_<PATH>`` sets any policy field, PATH being the
  camelCase field path in upper snake case with ``__`` between levels, e.g.
  ``INFERENCE_THRESHOLDS_POLICY_DECODE_FLOOR__PRODUCTION=0.6``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from ..api import Environment, Overrides, Strictness, WireModel
from ..api.base import wire_alias
from ..api.thresholds_document import env_fields
from .inputs import describe_errors


class PolicyError(ValueError):
    """Invalid policy input; the message names the field and the fix."""


PerEnvironment = dict[Environment, float]


def _per_env(dev: float, test: float, stage: float, prod: float, edge: float) -> PerEnvironment:
    return {
        Environment.DEVELOPMENT: dev,
        Environment.TESTING: test,
        Environment.STAGING: stage,
        Environment.PRODUCTION: prod,
        Environment.EDGE: edge,
    }


class RuntimeTable(WireModel):
    """A factor per runtime; ``default`` applies to runtimes not listed."""

    default: float = Field(gt=0)
    per_runtime: dict[str, float] = Field(default_factory=dict)

    def get(self, runtime: str) -> float:
        return self.per_runtime.get(runtime, self.default)

    @model_validator(mode="after")
    def _positive(self) -> RuntimeTable:
        for key, value in self.per_runtime.items():
            if not value > 0:
                raise ValueError(f"perRuntime.{key} must be > 0, got {value}")
        return self


class DeviceBackendPolicy(WireModel):
    """How close a GPU/accelerator backend gets to its spec sheet, per runtime."""

    bandwidth_efficiency: RuntimeTable = Field(
        description="Fraction of spec memory bandwidth reached by decode weight streaming."
    )
    prefill_efficiency: RuntimeTable = Field(
        description="Fraction of spec FP16 throughput reached by prefill."
    )
    decode_compute_efficiency: float = Field(0.5, gt=0, le=1)
    layer_overhead_us: RuntimeTable = Field(
        description="Per-layer kernel launch/dispatch time per decode step, microseconds."
    )
    quantized_prefill_factor: RuntimeTable = Field(
        default_factory=lambda: RuntimeTable(default=1.0),
        description="Multiplier on prefill efficiency when weights are below 16 bits: "
        "weight-only quantized GEMMs dequantize inside the kernel.",
    )
    quantized_layer_factor: RuntimeTable = Field(
        description="Multiplier on layer overhead when weights are below 16 bits (dequant)."
    )
    request_overhead_ms: RuntimeTable = Field(
        description="Fixed per-request time before the first token (scheduling, tokenising)."
    )
    multi_device_efficiency: float = Field(
        0.85, gt=0, le=1, description="Tensor-parallel bandwidth scaling per extra device."
    )


def _check_positive(values: Mapping[Any, float], field: str) -> None:
    for key, value in values.items():
        if not value > 0:
            raise ValueError(f"{field}.{key} must be > 0, got {value}")


class MatmulRates(WireModel):
    """Ops per cycle per core that llama.cpp's CPU matmul kernels reach, by weight format."""

    f16: float = Field(gt=0, description="16-bit float weights (F16/BF16), FLOPs per cycle.")
    q8: float = Field(gt=0, description="8-bit quants (Q8_0), ops per cycle.")
    q4: float = Field(
        gt=0, description="4- to 6-bit quants (Q4_0, Q4_K, Q5_K, Q6_K, ...), ops per cycle."
    )

    def scaled(self, factor: float) -> MatmulRates:
        return MatmulRates(f16=self.f16 * factor, q8=self.q8 * factor, q4=self.q4 * factor)

    def for_bits(self, bits: float) -> tuple[str, float]:
        if bits >= 12:
            return "f16", self.f16
        if bits >= 7:
            return "q8", self.q8
        return "q4", self.q4


def _rates(table: dict[str, tuple[float, float, float]]) -> dict[str, MatmulRates]:
    return {k: MatmulRates(f16=f, q8=q8, q4=q4) for k, (f, q8, q4) in table.items()}


def _prefill_rates() -> dict[str, MatmulRates]:
    # What llama.cpp's prefill GEMMs reach, per core per cycle at the profile's clock.
    # Sources (docs/engine-physics.md): x86 AVX2: live llama-bench on a 2-vCPU Zen 3 EPYC
    # VM (pp256, 2 threads: F16 ~21-29, Q4_0 ~21-27 ops/cycle at 3 GHz; Q4_0/Q4_K are
    # repacked to 8x8 AVX2 kernels, Q8_0 is not: ggml-cpu/repack.cpp) and llamafile#394
    # (i9-9900, 8 cores, TinyLlama pp: F16 251, Q8_0 219 t/s). Both put Q8_0 prefill
    # 15-20 % below F16 (F16/Q8_0 time: 1.15 there; median 1.19 over four shapes with
    # llama-server on the idle VM), not the 30 % of llama-bench runs on a busy VM; AVX-512 VNNI:
    # ik_llama.cpp#533 (Ryzen 7950X, 16 cores, mainline Q4_0 pp512 170 t/s on LLaMA-3.1-8B);
    # Zen 4 double-pumps 512-bit FMAs, so F16 gains little over AVX2. AMX: llama.cpp#8998
    # uses AMX for Q4/Q8 only in builds with GGML_AMX_INT8 (it crashes on some VMs), so its
    # rate is held near VNNI's. Arm: int8 dot-product peaks x 0.4 (bitnet.cpp and llama.cpp
    # CPU runs in the calibration set); Apple cores scale these by applePipeFactor.
    return _rates(
        {
            "amx_int8": (24, 40, 40),
            "avx512_vnni": (24, 24, 30),
            "avx512f": (24, 18, 24),
            "avx_vnni": (20, 18, 22),
            "avx2": (20, 17, 20),
            "i8mm": (12.8, 51.2, 51.2),
            "asimddp": (12.8, 25.6, 25.6),
            "neon": (6.4, 12.8, 12.8),
            "default": (4.8, 9.6, 9.6),
        }
    )


def _decode_rates() -> dict[str, MatmulRates]:
    # Decode multiplies one token: dot products, not GEMMs. On x86 only Q4_0/Q4_K (AVX2)
    # and Q2_K (AVX-512) have repacked GEMV kernels (ggml-cpu/repack.cpp); Q8_0 runs
    # ggml_vec_dot_q8_0_q8_0 and F16 converts with F16C first. Live on the Zen 3 VM, one
    # thread: Q8_0 ~7, Q4_0 ~19 ops/cycle beside its weight stream. Arm: as prefill.
    return _rates(
        {
            "amx_int8": (20, 10, 30),
            "avx512_vnni": (20, 10, 30),
            "avx512f": (20, 8, 24),
            "avx_vnni": (16, 9, 20),
            "avx2": (16, 7, 18),
            "i8mm": (12.8, 51.2, 51.2),
            "asimddp": (12.8, 25.6, 25.6),
            "neon": (6.4, 12.8, 12.8),
            "default": (4.8, 4.8, 9.6),
        }
    )


class CpuPolicy(WireModel):
    bandwidth_efficiency: dict[str, float] = Field(
        default_factory=lambda: {"spec": 0.6, "measured": 0.85, "estimated": 0.6},
        description="Fraction of socket bandwidth llama.cpp-style decode reaches, by source "
        "(measured: of the agent's streaming-read probe).",
    )
    apple_cpu_fraction: float = Field(
        0.27,
        gt=0,
        le=1,
        description="Apple silicon: share of the SoC's spec bandwidth the CPU cluster reaches.",
    )
    per_core_bandwidth_gbps: dict[str, float] = Field(
        default_factory=lambda: {"x86": 18.0, "apple": 30.0, "arm": 12.0},
        description="Bandwidth one decode thread can pull, GB/s, when not measured.",
    )
    estimated_bandwidth_per_core_gbps: float = Field(
        6.0, gt=0, description="Socket bandwidth estimate per physical core when unknown."
    )
    estimated_bandwidth_bounds_gbps: tuple[float, float] = (40.0, 400.0)
    default_frequency_mhz: float = Field(3000, gt=0)
    ternary_ops_per_cycle: float = Field(
        13.0, gt=0, description="bitnet.cpp ternary kernel ops per cycle per core in decode."
    )
    prefill_ops_per_cycle: dict[str, MatmulRates] = Field(
        default_factory=_prefill_rates,
        description="Prefill (GEMM) ops per cycle per core llama.cpp reaches, by best ISA "
        "feature (x86: amx_int8, avx512_vnni, avx512f, avx_vnni, avx2; Arm: i8mm, asimddp, "
        "neon; default) and weight format.",
    )
    decode_ops_per_cycle: dict[str, MatmulRates] = Field(
        default_factory=_decode_rates,
        description="Decode (dot product) ops per cycle per core llama.cpp reaches, by best "
        "ISA feature and weight format.",
    )
    apple_pipe_factor: float = Field(
        2.0, gt=0, description="Apple P-cores have 4 SIMD pipes where Neoverse has 2."
    )
    overlap_loss: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Share of the shorter of a core's weight streaming and its arithmetic "
        "that does not overlap the longer one in decode (0: perfect overlap).",
    )
    layer_overhead_us: float = Field(
        200, ge=0, description="Per-layer thread synchronisation per decode step, microseconds."
    )
    request_overhead_ms: float = Field(2.0, ge=0)

    @model_validator(mode="after")
    def _positive(self) -> CpuPolicy:
        _check_positive(self.bandwidth_efficiency, "bandwidthEfficiency")
        _check_positive(self.per_core_bandwidth_gbps, "perCoreBandwidthGBps")
        for name, table in (
            ("prefillOpsPerCycle", self.prefill_ops_per_cycle),
            ("decodeOpsPerCycle", self.decode_ops_per_cycle),
        ):
            if "default" not in table:
                raise ValueError(f"{name} must keep a 'default' entry")
        return self


def _cuda() -> DeviceBackendPolicy:
    return DeviceBackendPolicy(
        bandwidth_efficiency=RuntimeTable(default=0.82),
        prefill_efficiency=RuntimeTable(
            default=0.5,
            per_runtime={"llama.cpp": 0.45, "vllm": 0.6, "tensorrt-llm": 0.65, "gpt-fast": 0.5},
        ),
        layer_overhead_us=RuntimeTable(
            default=40,
            per_runtime={"llama.cpp": 40, "vllm": 35, "tensorrt-llm": 25, "gpt-fast": 30},
        ),
        # Weight-only quantized prefill GEMMs: Marlin (vLLM) approaches FP16 throughput at
        # large batch (IST-DASLab/marlin README), TensorRT-LLM's W4A16/W8A16 kernels likewise;
        # gpt-fast dequantizes int4/int8 to bf16 before its matmuls. llama.cpp's MMQ runs
        # int8 tensor-core MMAs, calibrated as is on the RTX 3060/3090 and T4 rows.
        quantized_prefill_factor=RuntimeTable(
            default=0.7,
            per_runtime={"llama.cpp": 1.0, "vllm": 0.8, "tensorrt-llm": 0.85, "gpt-fast": 0.5},
        ),
        quantized_layer_factor=RuntimeTable(
            default=2.0,
            per_runtime={
                "llama.cpp": 1.0,
                "gpt-fast": 2.33,
                "tensorrt-llm": 1.5,
                "bitnet.cpp": 1.0,
            },
        ),
        request_overhead_ms=RuntimeTable(
            default=10, per_runtime={"llama.cpp": 2, "vllm": 15, "tensorrt-llm": 5, "gpt-fast": 5}
        ),
    )


def _metal() -> DeviceBackendPolicy:
    return DeviceBackendPolicy(
        bandwidth_efficiency=RuntimeTable(default=0.84),
        prefill_efficiency=RuntimeTable(default=0.62),
        layer_overhead_us=RuntimeTable(default=137),
        quantized_layer_factor=RuntimeTable(default=1.0),
        request_overhead_ms=RuntimeTable(default=2),
    )


def _other_accelerator() -> DeviceBackendPolicy:
    return DeviceBackendPolicy(
        bandwidth_efficiency=RuntimeTable(default=0.7),
        prefill_efficiency=RuntimeTable(default=0.45),
        layer_overhead_us=RuntimeTable(default=60),
        quantized_layer_factor=RuntimeTable(default=1.5),
        request_overhead_ms=RuntimeTable(default=10),
    )


class StrictnessFactors(WireModel):
    floor: float = Field(gt=0, description="Multiplier on the decode floor.")
    slack: float = Field(gt=0, description="Multiplier on TTFT slack and memory headroom.")


class Policy(WireModel):
    decode_floor: PerEnvironment = Field(
        default_factory=lambda: _per_env(0.35, 0.45, 0.5, 0.55, 0.45),
        description="minTokensPerSecond = expected x floor, by environment.",
    )
    ttft_slack: PerEnvironment = Field(
        default_factory=lambda: _per_env(4.0, 3.0, 2.5, 2.0, 3.0),
        description="maxTimeToFirstTokenMs = expected x slack, by environment.",
    )
    memory_headroom: PerEnvironment = Field(
        default_factory=lambda: _per_env(1.5, 1.4, 1.3, 1.25, 1.3),
        description="maxMemoryUsageMb = required x headroom, by environment.",
    )
    strictness: dict[Strictness, StrictnessFactors] = Field(
        default_factory=lambda: {
            Strictness.LENIENT: StrictnessFactors(floor=0.8, slack=1.25),
            Strictness.STANDARD: StrictnessFactors(floor=1.0, slack=1.0),
            Strictness.STRICT: StrictnessFactors(floor=1.15, slack=0.85),
        }
    )
    priority_floor_factor: dict[str, float] = Field(
        default_factory=lambda: {
            "latency": 1.05,
            "throughput": 1.05,
            "memory": 1.0,
            "balanced": 1.0,
        },
        description="Priority multiplier on the decode floor.",
    )
    priority_slack_factor: dict[str, float] = Field(
        default_factory=lambda: {"latency": 0.9, "throughput": 1.1, "memory": 1.0, "balanced": 1.0},
        description="Priority multiplier on TTFT slack.",
    )
    max_floor: float = Field(0.9, gt=0, le=1, description="Cap on floor after all factors.")
    min_slack: float = Field(1.1, ge=1, description="Least TTFT slack after all factors.")
    cuda: DeviceBackendPolicy = Field(default_factory=_cuda)
    metal: DeviceBackendPolicy = Field(default_factory=_metal)
    other_accelerator: DeviceBackendPolicy = Field(default_factory=_other_accelerator)
    cpu: CpuPolicy = Field(default_factory=CpuPolicy)
    gpu_runtime_overhead_mib: float = Field(600, ge=0, description="CUDA context and workspace.")
    cpu_runtime_overhead_mib: float = Field(256, ge=0, description="Process and buffers.")
    cpu_repack_bits: tuple[float, float] = Field(
        (4.0, 6.0),
        description="Weight bits [low, high) whose layers llama.cpp's CPU backend keeps a "
        "repacked copy of beside the mapped file (Q4_0, Q4_K, IQ4_NL).",
    )
    activation_fraction: float = Field(
        0.05, ge=0, description="Activation/workspace memory as a fraction of weights."
    )
    vllm_gpu_memory_utilization: float = Field(
        0.9, gt=0, le=1, description="vLLM reserves this share of GPU memory up front."
    )
    apple_gpu_memory_fraction: float = Field(
        0.75, gt=0, le=1, description="Share of unified memory Metal lets one process wire."
    )
    overrides: Overrides = Field(
        default_factory=Overrides, description="Organisation-wide fixed thresholds."
    )

    @model_validator(mode="after")
    def _ranges(self) -> Policy:
        for env, value in self.decode_floor.items():
            if not 0 < value <= 1:
                raise ValueError(f"decodeFloor.{env} must be in (0, 1], got {value}")
        for name, table in (
            ("ttftSlack", self.ttft_slack),
            ("memoryHeadroom", self.memory_headroom),
        ):
            for env, value in table.items():
                if value < 1:
                    raise ValueError(f"{name}.{env} must be >= 1, got {value}")
        return self


LEGACY_ENV = env_fields()  # BITNET_MIN_TOKENS_PER_SECOND -> min_tokens_per_second, ...
POLICY_ENV_PREFIX = "INFERENCE_THRESHOLDS_POLICY_"


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _env_path_to_keys(suffix: str) -> list[str]:
    # DECODE_FLOOR__PRODUCTION -> ["decodeFloor", "production"]
    return [wire_alias(part.lower()) for part in suffix.split("__")]


def _parse_number(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise PolicyError(
            f"{name}={raw!r}: not a number; set a plain number such as 12.5"
        ) from None
    if not math.isfinite(value) or value <= 0:
        raise PolicyError(f"{name}={raw!r}: must be a finite number > 0")
    return value


def env_overrides(env: Mapping[str, str]) -> tuple[Overrides, list[str]]:
    """Threshold values from the legacy BITNET_* variables, and which were set."""
    values: dict[str, float] = {}
    for name, field in LEGACY_ENV.items():
        raw = env.get(name)
        if raw is not None and raw.strip() != "":
            values[field] = _parse_number(name, raw.strip())
    return Overrides(**values), sorted(n for n in LEGACY_ENV if env.get(n, "").strip())


def load_policy(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Policy:
    """Defaults, then the YAML file at ``path``, then INFERENCE_THRESHOLDS_POLICY_* vars."""
    data: dict[str, Any] = Policy().model_dump(mode="json", by_alias=True)
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise PolicyError(f"policy file {path}: cannot read ({exc.strerror})") from exc
        except yaml.YAMLError as exc:
            raise PolicyError(f"policy file {path}: not valid YAML ({exc})") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise PolicyError(f"policy file {path}: must be a mapping of policy fields")
        data = _deep_merge(data, loaded)
    origin = str(path) if path is not None else "policy"
    for name, raw in sorted((env if env is not None else os.environ).items()):
        if not name.startswith(POLICY_ENV_PREFIX):
            continue
        keys = _env_path_to_keys(name[len(POLICY_ENV_PREFIX) :])
        node: Any = data
        for key in keys[:-1]:
            if not isinstance(node, dict) or key not in node:
                raise PolicyError(
                    f"{name}: no policy field {'.'.join(keys)}; see `inference-"
                    "thresholds policy --defaults` for the field names"
                )
            node = node[key]
        if not isinstance(node, dict) or keys[-1] not in node:
            raise PolicyError(
                f"{name}: no policy field {'.'.join(keys)}; see `inference-"
                "thresholds policy --defaults` for the field names"
            )
        node[keys[-1]] = _parse_number(name, raw)
        origin = f"{origin} + environment"
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(describe_errors(exc, origin)) from None


def policy_key_pattern() -> re.Pattern[str]:
    return re.compile(rf"^{POLICY_ENV_PREFIX}[A-Z0-9_]+$")
