"""``detect`` and ``node-agent run``: the node agent from the shell.

kubernetes and prometheus-client are imported inside the run function only, so
``detect`` works in a slim pod with just the base package and the agent module.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from typing import Any

import yaml

from .main import CliError


def register(subparsers: Any) -> None:
    detect = subparsers.add_parser(
        "detect",
        help="print this machine's hardware profile (what the node agent publishes)",
        description="Detect CPU, cgroup limits, memory, NVIDIA GPUs (NVML) and PCI "
        "accelerators; print the HardwareProfile. Run inside a pod, usableCores honours "
        "the pod's CPU quota and cpuset.",
    )
    detect.add_argument(
        "--root",
        default="/",
        metavar="DIR",
        help="read /proc and /sys under DIR (a host mount or a recorded snapshot); "
        "when DIR/nvml.json exists it replays that NVML recording instead of the driver",
    )
    _probe_argument(detect)
    detect.add_argument("--output", "-o", choices=("json", "yaml"), default="json")
    detect.add_argument("--notes", action="store_true", help="also print detection notes to stderr")
    detect.add_argument(
        "--record",
        metavar="DIR",
        help="also copy the files detection read (and NVML's answers) into DIR, "
        "a fixture that `detect --root DIR` replays",
    )
    detect.set_defaults(func=_detect)

    agent = subparsers.add_parser("node-agent", help="run the node agent (DaemonSet)")
    agent_sub = agent.add_subparsers(dest="agent_command", required=True, metavar="COMMAND")
    run = agent_sub.add_parser(
        "run",
        help="detect and publish hw.inference.dev/ labels onto this node",
        description="Publish the node's hardware profile as hw.inference.dev/ labels and "
        "annotations on its Node object, writing only when something changed.",
    )
    run.add_argument(
        "--node-name",
        default=os.environ.get("NODE_NAME"),
        help="the Node to label (default: $NODE_NAME, set from the downward API)",
    )
    run.add_argument("--interval", type=float, default=60.0, help="seconds between passes")
    run.add_argument("--once", action="store_true", help="one pass, then exit (0 = published)")
    run.add_argument("--kubeconfig", help="kubeconfig (default: in-cluster, then ~/.kube/config)")
    run.add_argument("--root", default="/", metavar="DIR", help="host root to read (e.g. /host)")
    _probe_argument(run)
    run.add_argument(
        "--metrics-port",
        type=int,
        default=8080,
        help="port for /healthz, /readyz and /metrics (0 disables)",
    )
    run.add_argument(
        "--metrics-address", default="0.0.0.0", help="address the metrics server binds to"
    )
    run.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    run.add_argument(
        "--labels-include",
        metavar="REGEX",
        default=os.environ.get("INFERENCE_THRESHOLDS_AGENT_LABELS_INCLUDE"),
        help="publish only labels whose name (after hw.inference.dev/) matches, as NFD's "
        "labelWhiteList (re.search; anchor with ^ and $); the profile annotation keeps all",
    )
    run.add_argument(
        "--labels-exclude",
        metavar="REGEX",
        default=os.environ.get("INFERENCE_THRESHOLDS_AGENT_LABELS_EXCLUDE"),
        help="never publish labels whose name matches (wins over --labels-include), "
        r"e.g. '^gpu\.' where GPU Feature Discovery labels GPUs already",
    )
    run.set_defaults(func=_run)

    prune = agent_sub.add_parser(
        "prune",
        help="remove the agent's labels and annotations from nodes (uninstall)",
        description="Remove the labels listed in each node's hw.inference.dev/owned-labels "
        "annotation and the agent's annotations; nothing else. Writes only to nodes that "
        "carry something of ours. Exit 0 when every node is clean.",
    )
    which = prune.add_mutually_exclusive_group(required=True)
    which.add_argument("--node-name", help="prune this node only")
    which.add_argument("--all-nodes", action="store_true", help="prune every node")
    prune.add_argument("--kubeconfig", help="kubeconfig (default: in-cluster, then ~/.kube/config)")
    prune.add_argument(
        "--wait-for-agents",
        metavar="SELECTOR",
        help="first wait until no pod matches this label selector in --agent-namespace "
        "(a terminating agent would publish again)",
    )
    prune.add_argument(
        "--agent-namespace",
        default=os.environ.get("POD_NAMESPACE"),
        help="namespace of the agent pods (default: $POD_NAMESPACE)",
    )
    prune.add_argument(
        "--wait-timeout", type=float, default=120.0, help="seconds to wait for the agents"
    )
    prune.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    prune.set_defaults(func=_prune)


def _probe_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--probe-bandwidth",
        nargs="?",
        const="always",
        default="auto",
        choices=("auto", "always", "never"),
        help="measure memory read bandwidth with a bounded probe (about 1 s, at most 512 MiB "
        "and half the cgroup's memory headroom): auto (default) only where no DIMM or CPU "
        "table figure exists; a bare --probe-bandwidth means always",
    )


def _detect(args: argparse.Namespace) -> int:
    from inference_thresholds_agent.profile import Detector

    if not os.path.isdir(args.root):
        raise CliError(f"--root {args.root}: not a directory; pass / or a snapshot directory")
    detector = Detector(args.root, probe_bandwidth=args.probe_bandwidth)
    detection = detector.run()
    if args.record:
        from inference_thresholds_agent.snapshot import record_host

        record_host(args.record, args.root, detector.nvml, detector.probe_result)
    document = detection.profile.wire()
    if args.output == "yaml":
        sys.stdout.write(yaml.safe_dump(document, sort_keys=False))
    else:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    if args.notes:
        for note in detection.notes:
            print(f"note: {note}", file=sys.stderr)
    return 0


def _run(args: argparse.Namespace) -> int:
    if not args.node_name:
        raise CliError("--node-name is required (or set NODE_NAME from the downward API)")
    if args.interval <= 0:
        raise CliError(f"--interval must be positive seconds, got {args.interval}")
    if not 0 <= args.metrics_port <= 65535:
        raise CliError(f"--metrics-port must be 0-65535, got {args.metrics_port}")
    try:
        from inference_thresholds_agent.agent import Agent, serve_http
        from inference_thresholds_agent.labels import LabelFilter
        from inference_thresholds_agent.profile import Detector, Scope
    except ImportError as exc:
        raise CliError(
            f"the node agent needs its extra ({exc}); install inference-thresholds[agent]"
        ) from exc
    try:
        allowed = LabelFilter.parse(args.labels_include, args.labels_exclude)
    except ValueError as exc:
        raise CliError(f"--{exc}") from exc
    _log(args.log_level)

    api = _connect(args.kubeconfig)
    detector = Detector(args.root, probe_bandwidth=args.probe_bandwidth, scope=Scope.NODE)
    agent = Agent(args.node_name, api, detector, interval_s=args.interval, labels=allowed)
    if args.once:
        result = agent.tick()
        state = "wrote" if result.wrote else "unchanged"
        print(f"node {args.node_name}: {'ok' if result.ok else 'failed'} ({state})")
        return 0 if result.ok else 1

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = (
        serve_http(agent, args.metrics_address, args.metrics_port) if args.metrics_port else None
    )
    try:
        agent.run(stop)
    finally:
        if server is not None:
            server.shutdown()
    return 0


def _log(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _connect(kubeconfig: str | None) -> Any:
    from inference_thresholds_agent.kube_rest import connect

    try:
        return connect(kubeconfig)
    except Exception as exc:  # kubeconfig errors come in many exception types
        raise CliError(f"cannot load Kubernetes credentials: {exc}") from exc


def _prune(args: argparse.Namespace) -> int:
    if args.wait_for_agents and not args.agent_namespace:
        raise CliError("--wait-for-agents needs --agent-namespace (or $POD_NAMESPACE)")
    if args.wait_timeout < 0:
        raise CliError(f"--wait-timeout must be >= 0 seconds, got {args.wait_timeout}")
    _log(args.log_level)
    from inference_thresholds_agent.prune import prune_nodes, wait_for_agents

    api = _connect(args.kubeconfig)
    try:
        if args.wait_for_agents and not wait_for_agents(
            api, args.agent_namespace, args.wait_for_agents, args.wait_timeout
        ):
            print(
                f"warning: agent pods ({args.wait_for_agents}) still running after "
                f"{args.wait_timeout:g} s; pruning anyway",
                file=sys.stderr,
            )
        nodes = [api.get_node(args.node_name)] if args.node_name else api.list_nodes()
    except Exception as exc:  # API errors come in several types (ours, the client's)
        print(f"error: reading nodes: {exc}", file=sys.stderr)
        return 1
    report = prune_nodes(api, nodes)
    print(report.summary())
    return 0 if report.ok else 1
