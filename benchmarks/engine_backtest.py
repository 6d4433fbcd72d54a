"""Backtest the engine on the calibration set, beside the seed's fixed thresholds.

Prints one table per thresholder (same cases, same verdict rules) and a summary:
false alarms on healthy runs, median minTokensPerSecond / measured (tightness: 0.5
catches a 2x regression), and how often the expectation lands within 2x of measured.

    .venv/bin/python benchmarks/engine_backtest.py [CASES.yaml]
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from inference_thresholds.api import (
    DeploymentContext,
    HardwareProfile,
    ModelSpec,
    ThresholdResult,
    Thresholds,
)
from inference_thresholds.api.result import Complexity, Expected
from inference_thresholds.engine.backtest import backtest

DEFAULT_CASES = Path(__file__).resolve().parents[2] / "shared" / "calibration" / "measurements.yaml"


def seed_fixed(hw: HardwareProfile, model: ModelSpec, ctx: DeploymentContext) -> ThresholdResult:
    """The seed's fixed defaults: 10 tok/s, 5000 ms, 8192 MB for every deployment."""
    return ThresholdResult(
        feasible=True,
        complexity=Complexity.MEDIUM,
        thresholds=Thresholds(
            min_tokens_per_second=10,
            max_latency_ms=5000,
            max_time_to_first_token_ms=5000,
            max_memory_usage_mb=8192,
        ),
    )


def seed_cores_ghz(
    hw: HardwareProfile, model: ModelSpec, ctx: DeploymentContext
) -> ThresholdResult:
    """The seed's hardware formula: tokens/s scaled by cores x GHz against an 8-core
    3 GHz reference that 'should' give 10 tok/s; GPUs and accelerators ignored."""
    cores = hw.cpu.usable_cores or hw.cpu.physical_cores or 8
    ghz = (hw.cpu.max_frequency_mhz or hw.cpu.base_frequency_mhz or 3000) / 1000
    expected = 10 * (cores * ghz) / (8 * 3.0)
    return ThresholdResult(
        feasible=True,
        complexity=Complexity.MEDIUM,
        expected=Expected(decode_tokens_per_second=expected / 0.7),
        thresholds=Thresholds(min_tokens_per_second=expected, max_time_to_first_token_ms=5000),
    )


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CASES
    cases = yaml.safe_load(path.read_text())
    runs = {
        "inference-thresholds (production/standard)": backtest(cases),
        "seed fixed defaults (10 tok/s, 5000 ms)": backtest(cases, seed_fixed),
        "seed cores x GHz formula": backtest(cases, seed_cores_ghz),
    }
    print(f"calibration set: {path} ({len(cases)} cases)\n")
    header = (
        f"{'thresholder':<44}{'false alarms':>13}{'caught':>8}{'median min/meas':>17}"
        f"{'exp in [0.5,2]':>16}"
    )
    print(header)
    print("-" * len(header))
    for name, report in runs.items():
        s = report["summary"]
        median = s["medianMinTpsOverMeasured"]
        within = s["expectedWithin0p5To2"]
        print(
            f"{name:<44}{s['falseAlarms']:>13}{s['caught']:>8}"
            f"{'-' if median is None else f'{median:.2f}':>17}"
            f"{'-' if within is None else f'{within * 100:.0f}%':>16}"
        )
    print("\nper case (engine): expected / measured tokens/s and TTFT")
    for c in runs["inference-thresholds (production/standard)"]["cases"]:
        e, m = c["expected"], c["measured"]
        tps = (
            f"{e['decodeTokensPerSecond'] / m['decodeTokensPerSecond']:.2f}"
            if m["decodeTokensPerSecond"] and e["decodeTokensPerSecond"]
            else "-"
        )
        ttft = (
            f"{e['timeToFirstTokenMs'] / m['timeToFirstTokenMs']:.2f}"
            if m["timeToFirstTokenMs"] and e["timeToFirstTokenMs"]
            else "-"
        )
        print(f"  {c['id']:<46} tok/s {tps:>5}  ttft {ttft:>5}  {c['verdict']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
