"""Node agent footprint: peak RSS of an agent process and the cost of one detection pass.

Targets (issue 4): peak RSS <= 64 MiB (NFD's worker requests 64Mi) and one detection
pass <= 250 ms without the bandwidth probe. NFD's worker requests 5m CPU; the figure to
compare is the agent's CPU time per pass spread over the 60 s interval.

    .venv/bin/python benchmarks/agent_footprint.py            # in-memory Node API
    .venv/bin/python benchmarks/agent_footprint.py --kubeconfig KUBECONFIG --node NAME

The agent runs in a child process (so its RSS is its own): it imports what the real
agent imports (its HTTP Node client, prometheus-client, the NVML bindings on first
use), serves /metrics on 127.0.0.1, and runs ``--passes`` full passes (detect, read
Node, patch on change) against the Node API.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TARGET_RSS_MIB = 64
TARGET_PASS_MS = 250
NFD_CPU_REQUEST_M = 5
INTERVAL_S = 60


class MemoryNodes:
    """Node API stand-in applying merge patches, for runs without a cluster."""

    def __init__(self, name: str) -> None:
        self.node: dict[str, Any] = {"metadata": {"name": name, "resourceVersion": "1"}}

    def get_node(self, name: str) -> dict[str, Any]:
        return json.loads(json.dumps(self.node))  # type: ignore[no-any-return]

    def patch_node(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        for section in ("labels", "annotations"):
            target = self.node["metadata"].setdefault(section, {})
            for key, value in patch["metadata"].get(section, {}).items():
                if value is None:
                    target.pop(key, None)
                else:
                    target[key] = value
        return self.get_node(name)


def child(args: argparse.Namespace) -> None:
    from inference_thresholds_agent.agent import Agent, AgentMetrics, serve_http
    from inference_thresholds_agent.kube_rest import connect
    from inference_thresholds_agent.memory import ProbeMode
    from inference_thresholds_agent.profile import Detector, Scope

    api: Any = connect(args.kubeconfig) if args.kubeconfig else MemoryNodes(args.node)
    # Steady-state passes: the one-time bandwidth probe is bounded on its own (at most half
    # the cgroup's memory headroom, see inference_thresholds_agent.memory) and not counted.
    detector = Detector(args.root, scope=Scope.NODE, probe_bandwidth=ProbeMode.NEVER)
    agent = Agent(args.node, api, detector, metrics=AgentMetrics())
    server = serve_http(agent, "127.0.0.1", 0)
    cpu_before = time.process_time()
    wall: list[float] = []
    for _ in range(args.passes):
        started = time.perf_counter()
        result = agent.tick()
        wall.append(time.perf_counter() - started)
        if not result.ok:
            raise SystemExit("agent pass failed; see the log above")
    cpu_per_pass = (time.process_time() - cpu_before) / args.passes
    server.shutdown()
    print(
        json.dumps(
            {
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "pass_ms": [w * 1000 for w in wall],
                "cpu_ms_per_pass": cpu_per_pass * 1000,
                "writes": agent.metrics.count("node_writes_total"),
            }
        )
    )


def detection_times(root: str, runs: int) -> list[float]:
    from inference_thresholds_agent.memory import ProbeMode
    from inference_thresholds_agent.profile import Detector

    detector = Detector(root, probe_bandwidth=ProbeMode.NEVER)
    detector.run()  # warm: first pass pays for imports and the NVML load attempt
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        detector.run()
        times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", help="publish to a real cluster's Node --node")
    parser.add_argument("--node", default="bench-node")
    parser.add_argument("--root", default="/", help="host root to detect (default: this machine)")
    parser.add_argument("--passes", type=int, default=20)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0

    argv = [sys.executable, __file__, "--child", "--node", args.node, "--root", args.root,
            "--passes", str(args.passes)]  # fmt: skip
    if args.kubeconfig:
        argv += ["--kubeconfig", args.kubeconfig]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=REPO)
    report = json.loads(out.stdout.strip().splitlines()[-1])

    print(f"node agent footprint ({'real apiserver' if args.kubeconfig else 'in-memory Node API'},"
          f" root {args.root}, {args.passes} passes)")  # fmt: skip
    rss = report["peak_rss_mib"]
    print(f"  peak RSS of the agent process   {rss:7.1f} MiB   target <= {TARGET_RSS_MIB} MiB"
          f"  (NFD worker request 64Mi)  {'OK' if rss <= TARGET_RSS_MIB else 'OVER'}")  # fmt: skip
    passes = report["pass_ms"]
    print(
        f"  full pass (detect+GET+PATCH)    first {passes[0]:6.1f} ms, then median "
        f"{statistics.median(passes[1:] or passes):.1f} ms; node writes {report['writes']:.0f}"
    )
    # The first pass publishes; every later one found nothing changed. Writes per idle hour
    # scale the later passes' writes to an hour of passes at the default interval.
    idle_writes = max(0.0, report["writes"] - 1) / max(1, args.passes - 1) * 3600 / INTERVAL_S
    print(
        f"  API writes per idle hour        {idle_writes:7.1f}      target 0  "
        f"{'OK' if idle_writes == 0 else 'OVER'}"
    )
    cpu_m = report["cpu_ms_per_pass"] / INTERVAL_S
    print(
        f"  CPU per pass                    {report['cpu_ms_per_pass']:7.1f} ms  = "
        f"{cpu_m:.2f} m at a {INTERVAL_S} s interval (NFD worker request {NFD_CPU_REQUEST_M}m)"
    )

    for root in [args.root, *sorted(str(p) for p in (REPO / "tests/fixtures/hosts").iterdir()
                                    if p.is_dir())]:  # fmt: skip
        times = detection_times(root, 30)
        worst = max(times)
        name = "this machine" if root == "/" else Path(root).name
        print(f"  detection pass, {name:28s} median {statistics.median(times):6.1f} ms, "
              f"max {worst:6.1f} ms  target <= {TARGET_PASS_MS} ms  "
              f"{'OK' if worst <= TARGET_PASS_MS else 'OVER'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
