"""``inference-thresholds-dev``: development-only commands (not in the product CLI or images).

    inference-thresholds-dev dev-cluster up [--node]   # prints the kubeconfig path
    inference-thresholds-dev dev-cluster status|kubeconfig|down
    inference-thresholds-dev dev-cluster import ARCHIVE...   # OCI archives into the node
    inference-thresholds-dev images build               # the operator and node-agent images

``up`` prints the kubeconfig path alone on stdout (progress and timings go to stderr), so
``export KUBECONFIG=$(inference-thresholds-dev dev-cluster up)`` works. ``up --node`` adds
kube-scheduler and a real node (root; containerd, runc, podman, mmdebstrap), imports the
project's images and writes ``helm-values.yaml`` next to the kubeconfig for
``helm install ... -f``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inference_thresholds.cli.main import CliError, run

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
    from .cluster.binaries import BinariesError, locate
    from .cluster.cluster import ClusterStartError, LocalCluster
    from .images.podman import ImageBuildError

    state_dir: Path = args.state_dir
    running = LocalCluster.attach(state_dir)
    if running is not None and running.status()["ready"]:
        if args.node and running.node is None:
            raise CliError(
                f"a dev cluster without a node runs from {state_dir}; stop it first "
                "(inference-thresholds-dev dev-cluster down)"
            )
        print(f"dev cluster already running at {running.server}", file=sys.stderr)
        print(running.kubeconfig)
        return 0
    try:
        print("locating control-plane binaries (builds them on first use) ...", file=sys.stderr)
        binaries = locate()
        images = None
        if args.node and args.images:
            from .images.build import project_images
            from .local_chart import REPOSITORY_ROOT

            print("building the operator and node-agent images (cached) ...", file=sys.stderr)
            images = project_images(REPOSITORY_ROOT, progress=_progress)
        cluster = LocalCluster(state_dir, binaries, tie_to_parent=False, node=args.node)
        what = "control plane and node" if args.node else "control plane"
        print(f"starting the {what} in {state_dir} ...", file=sys.stderr, flush=True)
        cluster.start(timeout=args.timeout, progress=_progress)
    except (BinariesError, ClusterStartError, ImageBuildError) as exc:
        raise CliError(str(exc)) from None
    timings = ", ".join(f"{k} {v:.1f} s" for k, v in cluster.timings.items())
    print(f"dev cluster ready at {cluster.server} ({timings})", file=sys.stderr)
    if images is not None:
        from .local_chart import VALUES_FILE, chart_values, deploy_project_images, write_values

        deploy_project_images(cluster, progress=_progress)
        values = write_values(state_dir / VALUES_FILE, chart_values(cluster.server, images))
        print(
            f"images imported into node/{cluster.node.name if cluster.node else '?'}; "
            f"install the chart with:\n  helm install inference-thresholds "
            f"helm/inference-thresholds -n inference-thresholds --create-namespace "
            f"-f {values}",
            file=sys.stderr,
        )
    print("stop it with: inference-thresholds-dev dev-cluster down", file=sys.stderr)
    print(cluster.kubeconfig)
    return 0


def _down(args: argparse.Namespace) -> int:
    from .cluster.cluster import LocalCluster

    cluster = LocalCluster.attach(args.state_dir)
    if cluster is None:
        print(f"no dev cluster recorded in {args.state_dir}", file=sys.stderr)
        return 0
    problems = cluster.stop(remove_state=True)
    if problems:
        raise CliError("stopped, but could not clean up:\n  " + "\n  ".join(problems))
    print(f"dev cluster stopped; removed {args.state_dir}", file=sys.stderr)
    return 0


def _status(args: argparse.Namespace) -> int:
    from .cluster.cluster import LocalCluster

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
            "start one with `inference-thresholds-dev dev-cluster up`"
        )
    print(path)
    return 0


def _import(args: argparse.Namespace) -> int:
    from .cluster.cluster import LocalCluster

    cluster = LocalCluster.attach(args.state_dir)
    if cluster is None or cluster.node is None:
        raise CliError(f"no dev cluster with a node in {args.state_dir} (dev-cluster up --node)")
    for archive in args.archives:
        if not archive.is_file():
            raise CliError(f"{archive}: no such file")
        cluster.node.import_image(archive)
        print(f"imported {archive}", file=sys.stderr)
    return 0


def _images_build(args: argparse.Namespace) -> int:
    from .images.build import project_images
    from .images.podman import ImageBuildError
    from .local_chart import REPOSITORY_ROOT

    try:
        images = project_images(REPOSITORY_ROOT, progress=_progress)
    except ImageBuildError as exc:
        raise CliError(str(exc)) from None
    report = {
        name: {"image": image.ref, "archive": str(image.archive), "cached": image.cached}
        for name, image in images.items()
    }
    print(json.dumps(report, indent=2))
    return 0


def _register_dev_cluster(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dev-cluster",
        help="a local cluster on 127.0.0.1: control plane, optionally a real node",
        description="etcd, kube-apiserver, kube-controller-manager built from Go modules; "
        "with --node also kube-scheduler, containerd + runc and a kubelet. No Docker.",
    )
    parser.set_defaults(func=lambda _args: parser.print_help() or 2)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")

    def add(name: str, func: Any, help_text: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = actions.add_parser(name, help=help_text)
        sub.add_argument(
            "--state-dir",
            type=Path,
            default=default_state_dir(),
            help=f"where certificates, etcd data, logs, the node and the kubeconfig live "
            f"(default: ${STATE_DIR_ENV} or ~/.cache/inference-thresholds/dev-cluster)",
        )
        sub.set_defaults(func=func)
        return sub

    up = add("up", _up, "start the cluster (reused if already running); print kubeconfig")
    up.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for readiness (default: 120)"
    )
    up.add_argument(
        "--node",
        action="store_true",
        help="also run kube-scheduler and a real node (kubelet, containerd, runc; root)",
    )
    up.add_argument(
        "--no-images",
        dest="images",
        action="store_false",
        help="with --node: do not build/import the operator and node-agent images",
    )
    add("down", _down, "stop the cluster and delete its state (and the node's host paths)")
    add("status", _status, "show component liveness and readiness (exit 1 if not ready)")
    add("kubeconfig", _kubeconfig, "print the kubeconfig path")
    imp = add("import", _import, "import OCI image archives into the node's containerd")
    imp.add_argument("archives", nargs="+", type=Path, metavar="ARCHIVE")


def _register_images(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "images",
        help="container images built here (podman, a Debian base; no registry)",
    )
    parser.set_defaults(func=lambda _args: parser.print_help() or 2)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    build = actions.add_parser(
        "build", help="build (or reuse) the operator and node-agent images; print their archives"
    )
    build.set_defaults(func=_images_build)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inference-thresholds-dev",
        description="Development-only tooling for inference-thresholds (not in the product).",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _register_dev_cluster(subparsers)
    _register_images(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
