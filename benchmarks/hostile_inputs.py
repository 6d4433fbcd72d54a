"""What a hostile Prometheus costs the operator: other CRs' delays and the operator's memory.

    .venv/bin/python benchmarks/hostile_inputs.py [--kubeconfig FILE] [--slow 8] [--deadline 5]

Runs the real operator (``inference-thresholds operator run``) against the local control
plane (started here unless ``--kubeconfig``) and ``inference_thresholds_dev
.hostile_prometheus`` on 127.0.0.1, and prints, side by side with a healthy-Prometheus
baseline measured in the same run:

- how long another CR waits (a new CR to Ready, a spec change, a deleted ConfigMap back)
  while ``--slow`` CRs query an endpoint sending one byte a second (issue 15 case 2);
  target: no longer than the slow endpoint's own deadline;
- the operator's resident memory (now and peak) while two CRs get 400 MB answers (case 3);
  target: under the chart's 384 MiB limit;
- how long each malformed answer takes to be reported on its CR, and how long the
  operator kept each connection open.

The operator process inherits this process's environment: run it with
``PYTHONPATH=<an older tree>/operator:...`` to measure older code (the before figures in
benchmarks/FINDINGS.md). A measurement that does not finish within ``--cap`` seconds is
reported as ``>cap``. Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "cluster"))

from operator_harness import Cluster, OperatorProcess, install_crd  # noqa: E402
from operator_scale import cluster as control_plane  # noqa: E402

from inference_thresholds_dev.hostile_prometheus import (  # noqa: E402
    HostilePrometheus,
    adaptation,
)

POOL = "test.inference.dev/pool"
CHART_MEMORY_LIMIT_MIB = 384


def log(message: str) -> None:
    print(f"[hostile] {message}", file=sys.stderr, flush=True)


def until(check: Callable[[], Any], cap: float) -> float | None:
    """Seconds until ``check`` holds, or None past ``cap``."""
    started = time.monotonic()
    while time.monotonic() - started < cap:
        if check():
            return time.monotonic() - started
        time.sleep(0.05)
    return None


class Bench:
    def __init__(self, cluster: Cluster, ns: str, pool: str, cap: float) -> None:
        self.cluster, self.ns, self.pool, self.cap = cluster, ns, pool, cap
        self.serial = 0

    def spec(self, **extra: Any) -> dict[str, Any]:
        return {
            "nodeSelector": {"matchLabels": {POOL: self.pool}},
            "model": {"preset": "llama-3.1-8b"},
            **extra,
        }

    def adaptive(self, url: str, timeout: str) -> dict[str, Any]:
        return self.spec(adaptation=adaptation(url, timeout))

    def ready(self, name: str, generation: int) -> Callable[[], bool]:
        def check() -> bool:
            st = (self.cluster.get_cr(self.ns, name) or {}).get("status") or {}
            return st.get("observedGeneration") == generation and any(
                c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions") or []
            )

        return check

    def condition(self, name: str, type_: str, reason: str) -> Callable[[], bool]:
        def check() -> bool:
            st = (self.cluster.get_cr(self.ns, name) or {}).get("status") or {}
            return any(
                c["type"] == type_ and c.get("reason") == reason for c in st.get("conditions") or []
            )

        return check

    def other_cr_delays(self) -> dict[str, float | None]:
        """One round of: a new CR to Ready, a spec change, a deleted ConfigMap restored."""
        self.serial += 1
        name = f"other-{self.serial}"
        cluster, ns = self.cluster, self.ns
        started = time.monotonic()
        cluster.create_cr(ns, name, self.spec())
        created = until(self.ready(name, 1), self.cap)
        if created is None:
            return {"new CR Ready": None, "spec change": None, "ConfigMap restored": None}
        cluster.patch_spec(ns, name, {"context": {"environment": "staging"}})
        changed = until(self.ready(name, 2), self.cap)
        cluster.core.delete_namespaced_config_map(f"{name}-thresholds", ns)
        restored = until(lambda: cluster.configmap(ns, f"{name}-thresholds"), self.cap)
        log(f"{name}: {time.monotonic() - started:.1f} s")
        return {"new CR Ready": created, "spec change": changed, "ConfigMap restored": restored}


def seconds(values: list[float | None], cap: float) -> str:
    if any(v is None for v in values):
        return f">{cap:g} s"
    known = [v for v in values if v is not None]
    return f"{statistics.median(known):.2f} s (max {max(known):.2f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", help="an existing cluster (default: start one)")
    parser.add_argument("--slow", type=int, default=8, help="CRs on the 1 byte/s endpoint")
    parser.add_argument("--deadline", type=float, default=5.0, help="their query timeout, s")
    parser.add_argument("--rounds", type=int, default=3, help="delay measurements per phase")
    parser.add_argument("--cap", type=float, default=120.0, help="give up a wait after, s")
    parser.add_argument(
        "--phases",
        default="slow,huge,cases",
        help="comma-separated subset (an older operator wedged by one phase fails the next)",
    )
    args = parser.parse_args()
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as tmp, control_plane(args.kubeconfig, Path(tmp)) as kube:
        install_crd(kube)
        cluster = Cluster(kube)
        pool = f"hostile-bench-{int(time.time())}"
        cluster.create_node(f"{pool}-node", {POOL: pool})
        op = OperatorProcess(kube, Path(tmp))
        try:
            with kube.temporary_namespace("bench") as ns, HostilePrometheus() as prom:
                op.start()
                bench = Bench(cluster, ns, pool, args.cap)
                rows = run(bench, op, prom, args, failures)
        finally:
            op.stop()
            cluster.delete_node(f"{pool}-node")
            cluster.close()
    print("| measurement | healthy Prometheus | hostile Prometheus | target |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    for failure in failures:
        print(f"\n**missed:** {failure}")
    return 1 if failures else 0


def run(
    bench: Bench,
    op: OperatorProcess,
    prom: HostilePrometheus,
    args: argparse.Namespace,
    failures: list[str],
) -> list[list[str]]:
    cluster, ns, cap = bench.cluster, bench.ns, args.cap
    phases = set(args.phases.split(","))
    rows: list[list[str]] = []
    # Baseline: the same number of adapting CRs, on a healthy endpoint.
    for i in range(args.slow):
        cluster.create_cr(ns, f"healthy-{i}", bench.adaptive(prom.url("value/40"), "5s"))
    until(lambda: len(prom.requests("value")) >= 3 * args.slow, cap)
    base = [bench.other_cr_delays() for _ in range(args.rounds)]
    base_rss, base_peak = op.memory_mib()
    for i in range(args.slow):
        cluster.delete_cr(ns, f"healthy-{i}")

    if "slow" in phases:
        rows += slow_phase(bench, prom, args, base, failures)
    if "huge" in phases:
        rows += huge_phase(bench, op, prom, args, (base_rss, base_peak), failures)
    if "cases" in phases:
        rows += cases_phase(bench, prom, args, failures)
    if op.healthz() != 200:
        failures.append(f"/healthz answered {op.healthz()}")
    return rows


def slow_phase(
    bench: Bench,
    prom: HostilePrometheus,
    args: argparse.Namespace,
    base: list[dict[str, float | None]],
    failures: list[str],
) -> list[list[str]]:
    cluster, ns, cap = bench.cluster, bench.ns, args.cap
    rows: list[list[str]] = []
    log(f"{args.slow} CRs on a 1 byte/s endpoint, deadline {args.deadline:g} s")
    for i in range(args.slow):
        spec = bench.adaptive(prom.url("dribble"), f"{args.deadline:g}s")
        cluster.create_cr(ns, f"slow-{i}", spec)
    until(lambda: len(prom.requests("dribble")) >= args.slow, cap + 2 * args.deadline)
    slow = [bench.other_cr_delays() for _ in range(args.rounds)]
    for what in ("new CR Ready", "spec change", "ConfigMap restored"):
        before = [r[what] for r in base]
        during = [r[what] for r in slow]
        rows.append(
            [f"{what}, {args.slow} CRs on a 1 byte/s endpoint", seconds(before, cap),
             seconds(during, cap), f"<= {args.deadline:g} s"]
        )  # fmt: skip
        if any(v is None or v > args.deadline for v in during):
            failures.append(f"{what} took {seconds(during, cap)} (deadline {args.deadline:g} s)")
    held = [s.seconds for s in prom.requests("dribble")]
    rows.append(
        ["one dribbling request held open", "-", f"{min(held, default=0):.1f}-"
         f"{max(held, default=0):.1f} s ({len(held)} requests)", f"~{args.deadline:g} s"]
    )  # fmt: skip
    for i in range(args.slow):
        cluster.delete_cr(ns, f"slow-{i}")
    return rows


def huge_phase(
    bench: Bench,
    op: OperatorProcess,
    prom: HostilePrometheus,
    args: argparse.Namespace,
    baseline: tuple[float, float],
    failures: list[str],
) -> list[list[str]]:
    cluster, ns, cap = bench.cluster, bench.ns, args.cap
    base_rss, base_peak = baseline
    rows: list[list[str]] = []
    log("400 MB answers")
    for mode in ("huge", "huge-declared"):
        cluster.create_cr(ns, mode, bench.adaptive(prom.url(mode), "10s"))
    until(lambda: min(len(prom.requests(m)) for m in ("huge", "huge-declared")) >= 10, cap)
    try:
        rss, peak = op.memory_mib()
    except (OSError, RuntimeError):
        rss = peak = float("inf")  # gone: killed for memory
    offered = max((s.bytes_sent for s in prom.requests("huge")), default=0)
    rows.append(
        ["operator RSS / peak RSS, MiB", f"{base_rss:.0f} / {base_peak:.0f}",
         f"{rss:.0f} / {peak:.0f} (answers of 400 MB; {offered / 1e6:.1f} MB sent before the "
         "operator hung up)", f"< {CHART_MEMORY_LIMIT_MIB}"]
    )  # fmt: skip
    if peak >= CHART_MEMORY_LIMIT_MIB:
        failures.append(f"peak RSS {peak:.0f} MiB under 400 MB answers")
    for mode in ("huge", "huge-declared"):
        cluster.delete_cr(ns, mode)
    return rows


def cases_phase(
    bench: Bench, prom: HostilePrometheus, args: argparse.Namespace, failures: list[str]
) -> list[list[str]]:
    cluster, ns, cap = bench.cluster, bench.ns, args.cap
    rows: list[list[str]] = []
    cases = {
        "deep": "UnexpectedResponse",
        "types": "UnexpectedResponse",
        "html": "UnexpectedResponse",
        "series": "UnexpectedResponse",
        "redirect": "PrometheusUnreachable",
        "silent": "PrometheusTimeout",
        "dribble-headers": "PrometheusTimeout",
        "value/1e308": "ImplausibleSample",
        "value/-5": "ImplausibleSample",
    }
    created: dict[str, float] = {}
    for i, mode in enumerate(cases):
        cluster.create_cr(ns, f"case-{i}", bench.adaptive(prom.url(mode), "2s"))
        created[mode] = time.monotonic()
    started = time.monotonic()
    reported: dict[str, float] = {}
    checks = {
        mode: bench.condition(f"case-{i}", "Adapted", reason)
        for i, (mode, reason) in enumerate(cases.items())
    }
    until(lambda: all(m in reported or (checks[m]() and reported.setdefault(
        m, time.monotonic() - created[m])) for m in cases), cap)  # fmt: skip
    for mode, reason in cases.items():
        held = [s.seconds for s in prom.requests(mode.split("/")[0])]
        took = reported.get(mode)
        rows.append(
            [f"`{mode}` answer reported as {reason}", "-",
             f"{took:.1f} s after creation; connection held <= {max(held, default=0):.1f} s"
             if took is not None else f"not reported within {cap:g} s", "reported"]
        )  # fmt: skip
        if took is None:
            failures.append(f"{mode}: not reported as {reason}")
    log(f"cases reported in {time.monotonic() - started:.1f} s")
    return rows


if __name__ == "__main__":
    sys.exit(main())
