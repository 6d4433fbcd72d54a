"""``inference-thresholds check``: validate observed metrics against the thresholds.

For readiness/liveness probes and CI jobs: exit 0 when every checked threshold holds,
1 when one fails (or the model is infeasible on this node), 2 on bad input (missing
or invalid thresholds, a bad flag value, nothing to check).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from ..client import (
    PATH_ENV,
    PREFIX_ENV,
    LoadedThresholds,
    Observed,
    ThresholdsError,
    ValidationReport,
    load_thresholds,
)
from .main import CliError

EXIT_PASS, EXIT_FAIL, EXIT_USAGE = 0, 1, 2

# flag -> Observed field
_OBSERVED_FLAGS = (
    ("--observed-tps", "tokens_per_second", "decode throughput, tokens/s"),
    ("--observed-ttft-ms", "time_to_first_token_ms", "time to first token, ms"),
    ("--observed-latency-ms", "latency_ms", "request latency, ms"),
    ("--observed-memory-mb", "memory_mb", "memory in use, MiB"),
    ("--observed-speedup", "speedup_factor", "speedup over the FP16 llama.cpp baseline"),
)


def _measurement(text: str) -> float:
    """argparse type: a finite number >= 0 (argparse turns the error into exit 2)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number >= 0")
    return value


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check",
        help="validate observed metrics against this pod's thresholds (exit 1 on failure)",
        description=(
            "Load the thresholds the operator generated (mounted ConfigMap + env, node-aware "
            "via NODE_NAME) and compare observed metrics. Exit 0 pass, 1 fail, 2 bad input."
        ),
    )
    for flag, dest, help_text in _OBSERVED_FLAGS:
        parser.add_argument(flag, dest=dest, type=_measurement, metavar="N", help=help_text)
    parser.add_argument(
        "--path",
        help=f"mounted ConfigMap directory or thresholds.json (default ${PATH_ENV} "
        "or /etc/inference-thresholds)",
    )
    parser.add_argument("--node", help="node name to pick the hardware class (default $NODE_NAME)")
    parser.add_argument(
        "--env-prefix", help=f"threshold variable prefix (default ${PREFIX_ENV} or BITNET_)"
    )
    parser.add_argument(
        "--no-env", action="store_true", help="ignore threshold variables; use the document only"
    )
    parser.add_argument("--output", "-o", choices=("text", "json"), default="text")
    parser.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    observed = Observed(**{dest: getattr(args, dest) for _, dest, _ in _OBSERVED_FLAGS})
    if all(getattr(observed, dest) is None for _, dest, _ in _OBSERVED_FLAGS):
        raise CliError(
            "no observed metric given; pass at least one of "
            + ", ".join(flag for flag, _, _ in _OBSERVED_FLAGS)
        )
    try:
        loaded = load_thresholds(
            path=args.path, node_name=args.node, env_prefix=args.env_prefix,
            apply_env=not args.no_env,
        )  # fmt: skip
    except ThresholdsError as exc:
        raise CliError(str(exc)) from None
    report = loaded.validate_observed(observed)
    if args.output == "json":
        print(json.dumps(_json_output(loaded, report), indent=2))
    else:
        sys.stdout.write(format_text(loaded, report))
    if report.checked == 0 and loaded.feasible:
        return EXIT_USAGE  # a probe that compares nothing is misconfigured, not failing
    return EXIT_PASS if report.passed else EXIT_FAIL


def _json_output(loaded: LoadedThresholds, report: ValidationReport) -> dict[str, object]:
    return {
        "passed": report.passed,
        "report": report.wire(),
        "thresholds": loaded.model_dump(mode="json", by_alias=True, exclude={"document"},
                                        exclude_none=True),
    }  # fmt: skip


def format_text(loaded: LoadedThresholds, report: ValidationReport) -> str:
    lines = [f"inference-thresholds check: {report.summary()}"]
    origin = loaded.document_path or f"{loaded.env_prefix}* variables"
    if loaded.document is not None:
        doc = loaded.document
        origin += f" ({doc.namespace}/{doc.owner}, generation {doc.generation})"
    lines.append(f"thresholds: {origin}")
    lines.append(f"selection:  {loaded.selection_reason}")
    width = max(len(r.threshold) for r in report.results)
    for r in report.results:
        lines.append(f"  {r.status.upper():<7} {r.threshold:<{width}}  {r.message}")
        if r.status != "skipped" and r.source:
            lines.append(f"  {'':<7} {'':<{width}}  from {r.source}")
    lines.extend(f"  note: {note}" for note in loaded.notes)
    lines.extend(f"  problem: {p}" for p in report.problems)
    return "\n".join(lines) + "\n"
