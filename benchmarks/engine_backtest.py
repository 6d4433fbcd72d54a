"""Backtest the engine on measured cases, beside the seed's fixed thresholds.

Two data sets by default: the shared calibration set and this repository's additions
(benchmarks/calibration/public.yaml: public x86 CPU measurements with their sources and
live runs on this project's VM). Per set: one row per thresholder (same cases, same
verdict rules) with false alarms on healthy runs, median minTokensPerSecond / measured
(tightness: 0.5 catches a 2x regression) and how often the expectation lands within 2x
of measured; then time to first token per device kind (TTFT false alarms, median
measured / maxTimeToFirstTokenMs: 0.25 or more means a 4x slower first token trips it).

    .venv/bin/python benchmarks/engine_backtest.py [CASES.yaml ...]
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

HERE = Path(__file__).resolve().parent
DEFAULT_CASES = [
    HERE.parents[1] / "shared" / "calibration" / "measurements.yaml",
    HERE / "calibration" / "public.yaml",
]
KINDS = ("x86 CPU", "Arm CPU", "Apple", "datacenter GPU", "consumer GPU")


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


def report(path: Path) -> None:
    cases = yaml.safe_load(path.read_text())
    runs = {
        "inference-thresholds (production/standard)": backtest(cases),
        "seed fixed defaults (10 tok/s, 5000 ms)": backtest(cases, seed_fixed),
        "seed cores x GHz formula": backtest(cases, seed_cores_ghz),
    }
    print(f"data set: {path} ({len(cases)} cases)\n")
    header = (
        f"{'thresholder':<44}{'false alarms':>13}{'caught':>8}{'median min/meas':>17}"
        f"{'exp in [0.5,2]':>16}"
    )
    print(header)
    print("-" * len(header))
    for name, run in runs.items():
        s = run["summary"]
        median = s["medianMinTpsOverMeasured"]
        within = s["expectedWithin0p5To2"]
        print(
            f"{name:<44}{s['falseAlarms']:>13}{s['caught']:>8}"
            f"{'-' if median is None else f'{median:.2f}':>17}"
            f"{'-' if within is None else f'{within * 100:.0f}%':>16}"
        )
    engine = runs["inference-thresholds (production/standard)"]
    print(
        f"\nengine TTFT by device kind ({engine['summary']['ttftFalseAlarms']} TTFT false alarms)"
    )
    by_kind = engine["summary"]["ttftByKind"]
    for kind in KINDS:
        k = by_kind.get(kind)
        if k:
            print(
                f"  {kind:<16} {k['cases']:>3} healthy TTFT cases, {k['falseAlarms']} false "
                f"alarms, median measured/maxTTFT {k['medianMeasuredOverMaxTtft']:.2f}"
            )
        else:
            print(f"  {kind:<16}   - no TTFT measurement in this set")
    print("\nper case (engine): expected / measured tokens/s and TTFT")
    for c in engine["cases"]:
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


def main() -> int:
    paths = [Path(a) for a in sys.argv[1:]] or DEFAULT_CASES
    for i, path in enumerate(paths):
        if i:
            print("\n" + "=" * 98 + "\n")
        report(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
