"""``compute``, ``explain``, ``backtest`` and ``policy``: the engine from the shell."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import yaml

from ..api import DeploymentContext, HardwareProfile, ModelSpec, ThresholdResult
from ..engine import PRESETS, Policy, compute, load_policy, render_text
from ..engine.backtest import backtest
from ..engine.inputs import load, read_yaml_file
from .main import CliError


def _add_inputs(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--hardware", metavar="FILE", help="hardware profile (YAML/JSON)")
    src.add_argument(
        "--local",
        action="store_true",
        help="detect this machine's hardware (the node agent's detection)",
    )
    p.add_argument(
        "--model",
        required=True,
        metavar="FILE|PRESET",
        help=f"model spec file or a preset: {', '.join(sorted(PRESETS))}",
    )
    p.add_argument("--context", metavar="FILE", help="deployment context (default: production)")
    p.add_argument("--policy", metavar="FILE", help="policy YAML merged over the defaults")


def _policy(args: argparse.Namespace) -> Policy:
    return load_policy(args.policy, os.environ)


def _inputs(args: argparse.Namespace) -> tuple[HardwareProfile, ModelSpec, DeploymentContext]:
    if args.local:
        try:
            from inference_thresholds_agent.profile import detect_profile
        except ImportError as exc:
            raise CliError(
                f"--local needs the node agent extra ({exc}); install inference-thresholds[agent]"
            ) from exc
        hardware = detect_profile()
    else:
        hardware = load(HardwareProfile, args.hardware)
    if os.path.exists(args.model):
        model = load(ModelSpec, args.model)
    else:
        model = ModelSpec(preset=args.model)
    context = load(DeploymentContext, args.context) if args.context else DeploymentContext()
    return hardware, model, context


def _run(args: argparse.Namespace) -> ThresholdResult:
    try:
        hardware, model, context = _inputs(args)
        return compute(hardware, model, context, _policy(args), os.environ)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _fmt(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:,.1f}{unit}"


def _table(result: ThresholdResult) -> str:
    e, t = result.expected, result.thresholds
    rows = [
        ("feasible", str(result.feasible), result.reason or ""),
        (
            "device",
            f"{result.device.count} x {result.device.product or result.device.kind}"
            if result.device
            else "-",
            "",
        ),
        ("tokens/s", _fmt(e.decode_tokens_per_second), f"min {_fmt(t.min_tokens_per_second)}"),
        ("TTFT ms", _fmt(e.time_to_first_token_ms), f"max {_fmt(t.max_time_to_first_token_ms)}"),
        ("latency ms", _fmt(e.latency_ms), f"max {_fmt(t.max_latency_ms)}"),
        ("memory MiB", _fmt(e.memory_required_mib), f"max {_fmt(t.max_memory_usage_mb)}"),
        ("speedup x", _fmt(e.speedup_factor), f"min {_fmt(t.min_speedup_factor)}"),
    ]
    lines = [f"{'':<12}{'expected':>14}  threshold"]
    lines += [f"{name:<12}{exp:>14}  {thr}" for name, exp, thr in rows]
    return "\n".join(lines)


def _emit(data: Any, fmt: str) -> None:
    if fmt == "yaml":
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False))
    else:
        print(json.dumps(data, indent=2))


def cmd_compute(args: argparse.Namespace) -> int:
    result = _run(args)
    if args.output == "table":
        print(_table(result))
    else:
        _emit(result.wire(), args.output)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    result = _run(args)
    print(render_text(result.decisions))
    print()
    print(_table(result))
    return 0


def _backtest_table(report: dict[str, Any]) -> str:
    lines = [
        f"{'case':<44}{'exp tok/s':>10}{'meas':>9}{'min':>9}{'exp ttft':>10}{'meas':>9}"
        f"{'max':>10}  verdict"
    ]
    for c in report["cases"]:
        exp, meas, thr = c["expected"], c["measured"], c["thresholds"]
        lines.append(
            f"{c['id'][:43]:<44}{_fmt(exp['decodeTokensPerSecond']):>10}"
            f"{_fmt(meas['decodeTokensPerSecond']):>9}{_fmt(thr.get('minTokensPerSecond')):>9}"
            f"{_fmt(exp['timeToFirstTokenMs']):>10}{_fmt(meas['timeToFirstTokenMs']):>9}"
            f"{_fmt(thr.get('maxTimeToFirstTokenMs')):>10}  {c['verdict']}"
        )
    s = report["summary"]
    lines.append("")
    lines.append(
        f"cases {s['cases']}  false alarms {s['falseAlarms']}  caught {s['caught']}  "
        f"missed {s['missed']}  infeasible {s['infeasible']}  median min/measured "
        f"{s['medianMinTpsOverMeasured'] or 0:.2f}  expected within [0.5,2] "
        f"{(s['expectedWithin0p5To2'] or 0) * 100:.0f}% of {s['comparisons']}"
    )
    return "\n".join(lines)


def cmd_backtest(args: argparse.Namespace) -> int:
    try:
        report = backtest(read_yaml_file(args.cases), policy=_policy(args))
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.output == "table":
        print(_backtest_table(report))
    else:
        _emit(report, args.output)
    return 0


def cmd_policy(args: argparse.Namespace) -> int:
    try:
        policy = Policy() if args.defaults else _policy(args)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    _emit(policy.model_dump(mode="json", by_alias=True), args.output)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, func, text in (
        ("compute", cmd_compute, "compute thresholds for one hardware/model/context"),
        ("explain", cmd_explain, "show the decision log: every number and its source"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        _add_inputs(p)
        if name == "compute":
            p.add_argument("--output", choices=("json", "yaml", "table"), default="json")
        p.set_defaults(func=func)
    p = sub.add_parser(
        "backtest",
        help="run the engine over measured cases",
        description="Counts false alarms and slack on your benchmark history. "
        "Exit 0 when it ran, whatever the verdicts.",
    )
    p.add_argument("cases", metavar="CASES.yaml")
    p.add_argument("--policy", metavar="FILE")
    p.add_argument("--output", choices=("json", "yaml", "table"), default="table")
    p.set_defaults(func=cmd_backtest)
    p = sub.add_parser("policy", help="print the effective policy (defaults + file + env)")
    p.add_argument("--policy", metavar="FILE")
    p.add_argument("--defaults", action="store_true", help="built-in defaults only")
    p.add_argument("--output", choices=("json", "yaml"), default="yaml")
    p.set_defaults(func=cmd_policy)
