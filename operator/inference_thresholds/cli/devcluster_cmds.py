"""``inference-thresholds dev-cluster up|down|status|kubeconfig``: the local control plane.

``up`` prints the kubeconfig path alone on stdout (progress and timings go to stderr), so
``export KUBECONFIG=$(inference-thresholds dev-cluster up)`` works.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from .main import CliError

STATE_DIR_ENV = "INFERENCE_THRESHOLDS_DEV_CLUSTER_DIR"


def default_state_dir() -> Path:
    explicit = os.environ.get(STATE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("INFERENCE_THRESHOLDS_CACHE")
    if cache:
        return Path(cache).expanduser() / "dev-cluster"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "inference-thresholds" / "dev-cluster"


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def _up(args: argparse.Namespace) -> int:
    # Imported here: the rest of the CLI must work without the devcluster extra.
    from ..devcluster.binaries import BinariesError, locate
    from ..devcluster.cluster import ClusterStartError, LocalCluster

    state_dir: Path = args.state_dir
    running = LocalCluster.attach(state_dir)
    if running is not None and running.status()["ready"]:
        print(f"dev cluster already running at {running.server}", file=sys.stderr)
        print(running.kubeconfig)
        return 0
    try:
        print("locating control-plane binaries (builds them on first use) ...", file=sys.stderr)
        binaries = locate()
        cluster = LocalCluster(state_dir, binaries, tie_to_parent=False)
        print(f"starting control plane in {state_dir} ...", file=sys.stderr, flush=True)
        cluster.start(timeout=args.timeout, progress=_progress)
    except (BinariesError, ClusterStartError) as exc:
        raise CliError(str(exc)) from None
    print(
        f"dev cluster ready at {cluster.server}: /readyz after "
        f"{cluster.timings['readyz']:.1f} s, controllers after "
        f"{cluster.timings['controllers']:.1f} s\n"
        f"stop it with: inference-thresholds dev-cluster down",
        file=sys.stderr,
    )
    print(cluster.kubeconfig)
    return 0


def _down(args: argparse.Namespace) -> int:
    from ..devcluster.cluster import LocalCluster

    cluster = LocalCluster.attach(args.state_dir)
    if cluster is None:
        print(f"no dev cluster recorded in {args.state_dir}", file=sys.stderr)
        return 0
    cluster.stop(remove_state=True)
    print(f"dev cluster stopped; removed {args.state_dir}", file=sys.stderr)
    return 0


def _status(args: argparse.Namespace) -> int:
    from ..devcluster.cluster import LocalCluster

    cluster = LocalCluster.attach(args.state_dir)
    status: dict[str, Any] = (
        {"ready": False, "stateDir": str(args.state_dir), "processes": {}}
        if cluster is None
        else {"stateDir": str(args.state_dir), **cluster.status()}
    )
    print(json.dumps(status, indent=2))
    return 0 if status["ready"] else 1


def _kubeconfig(args: argparse.Namespace) -> int:
    path = args.state_dir / "kubeconfig"
    if not path.is_file():
        raise CliError(
            f"no dev cluster in {args.state_dir}; "
            "start one with `inference-thresholds dev-cluster up`"
        )
    print(path)
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dev-cluster",
        help="run a local Kubernetes control plane (etcd, kube-apiserver, controller-manager)",
        description="A local control plane on 127.0.0.1, built from Go modules; no Docker.",
    )
    parser.set_defaults(func=lambda _args: parser.print_help() or 2)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")

    def add(name: str, func: Any, help_text: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = actions.add_parser(name, help=help_text)
        sub.add_argument(
            "--state-dir",
            type=Path,
            default=default_state_dir(),
            help=f"where certificates, etcd data, logs and the kubeconfig live "
            f"(default: ${STATE_DIR_ENV} or ~/.cache/inference-thresholds/dev-cluster)",
        )
        sub.set_defaults(func=func)
        return sub

    up = add("up", _up, "start the control plane (reused if already running); print kubeconfig")
    up.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for readiness (default: 120)"
    )
    add("down", _down, "stop the control plane and delete its state")
    add("status", _status, "show component liveness and API readiness (exit 1 if not ready)")
    add("kubeconfig", _kubeconfig, "print the kubeconfig path")
