"""Thresholds on partitioned and shared GPUs: the slice a pod gets beside the whole GPU.

For each MIG / time-sliced / MPS fixture (agent host fixtures through detection, GPU
Feature Discovery node fixtures through the operator's merge) and each GPU resource it
offers, the expected decode tokens/s and the production/standard minimum for the slice,
beside the same node read as whole GPUs (what the operator computed before it read
partitions). Decode at batch 1 is bandwidth bound, so the slice/whole ratio should sit
near the bandwidth share, a little above it where per-layer dispatch (which a slice does
not shrink) is a visible part of a step.

    .venv/bin/python benchmarks/shared_gpus.py [--model llama-3.1-8b] [--bits 4.5]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from inference_thresholds import engine
from inference_thresholds.api import DeploymentContext, HardwareProfile, ModelSpec
from inference_thresholds.controller.hardware_source import node_hardware
from inference_thresholds_agent.profile import detect_profile

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
HOSTS = ("a100-80gb-mig-mixed", "a100-40gb-mig-single", "hgx-h100-mig", "h200-nvl-mig", "t4-mps")
NODES = (
    "gfd-a100-80gb-mig-mixed",
    "gfd-a100-40gb-mig-single",
    "gfd-h100-mig-time-sliced",
    "gfd-t4-time-sliced",
    "gfd-a10g-mps",
)


def profiles() -> list[tuple[str, HardwareProfile]]:
    out = [(f"host {name}", detect_profile(FIXTURES / "hosts" / name)) for name in HOSTS]
    for name in NODES:
        node = yaml.safe_load((FIXTURES / "nodes" / f"{name}.yaml").read_text())
        out.append((f"node {name}", node_hardware(node).profile))
    return out


def whole(profile: HardwareProfile) -> HardwareProfile:
    gpus = [g.model_copy(update={"partitions": None}) for g in profile.gpus]
    return profile.model_copy(update={"gpus": gpus})


def resources(profile: HardwareProfile) -> list[str | None]:
    offered: list[str | None] = []
    for gpu in profile.gpus:
        for part in gpu.partitions or []:
            name = part.resource or (
                f"nvidia.com/mig-{part.mig_profile}" if part.mig_profile else None
            )
            if name not in offered:
                offered.append(name)
    return offered or [None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="llama-3.1-8b")
    parser.add_argument("--bits", type=float, default=4.5)
    args = parser.parse_args()
    model = ModelSpec(preset=args.model, weight_bits=args.bits)
    print(f"model {args.model} at {args.bits} bits/weight, production/standard, batch 1\n")
    header = (
        f"{'fixture':<34} {'resource':<26} {'slice':<30} {'bw share':>8} "
        f"{'whole tok/s':>11} {'slice tok/s':>11} {'ratio':>6} {'min tok/s':>9}"
    )
    print(header)
    print("-" * len(header))
    for label, profile in profiles():
        base = engine.compute(whole(profile), model, DeploymentContext())
        base_tps = base.expected.decode_tokens_per_second
        for resource in resources(profile):
            context = DeploymentContext.model_validate({"constraints": {"gpuResource": resource}})
            try:
                result = engine.compute(profile, model, context)
            except ValueError as exc:
                print(f"{label:<34} {resource or '-':<26} error: {exc}")
                continue
            steps = {d.step: d.value for d in result.decisions}
            tps = result.expected.decode_tokens_per_second
            share = steps.get("device.partition.bandwidthShare")
            ratio = f"{tps / base_tps:.3f}" if tps and base_tps else "-"
            minimum = result.thresholds.min_tokens_per_second
            name = steps.get("device.partition", "whole GPU")
            print(
                f"{label:<34} {resource or '-':<26} {name!s:<30} "
                f"{share if share is not None else 1:>8} {base_tps or 0:>11.1f} {tps or 0:>11.1f} "
                f"{ratio:>6} {minimum or 0:>9.2f}"
                + ("" if result.feasible else f"  infeasible: {result.reason}")
            )


if __name__ == "__main__":
    main()
