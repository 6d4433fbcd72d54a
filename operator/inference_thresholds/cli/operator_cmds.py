"""``operator run`` (the kopf operator in-process) and ``operator crd`` (print the CRD).

kopf and the kubernetes client are imported inside the run function only, so the
rest of the CLI works in slim pods without them.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from .main import CliError


def register(subparsers: Any) -> None:
    op = subparsers.add_parser(
        "operator",
        help="run the InferenceThresholds operator, or print its CRD",
    )
    op_sub = op.add_subparsers(dest="operator_command", required=True, metavar="COMMAND")

    run = op_sub.add_parser(
        "run",
        help="reconcile InferenceThresholds into ConfigMaps (one replica: standalone)",
        description="Run the operator. Exactly one replica may run (kopf standalone mode; "
        "deploy with replicas: 1 and strategy: Recreate). Flags win over the "
        "INFERENCE_THRESHOLDS_OPERATOR_* environment variables.",
    )
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace",
        "-n",
        action="append",
        metavar="NS",
        help="watch only this namespace (repeatable; glob patterns allowed); "
        "env INFERENCE_THRESHOLDS_OPERATOR_NAMESPACES=a,b",
    )
    scope.add_argument(
        "--all-namespaces", "-A", action="store_true", help="watch all namespaces (default)"
    )
    run.add_argument(
        "--policy",
        metavar="FILE",
        help="engine policy YAML, reloaded when it changes; "
        "env INFERENCE_THRESHOLDS_OPERATOR_POLICY",
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        metavar="N",
        help="Prometheus /metrics port (0 picks one; default 8080); "
        "env INFERENCE_THRESHOLDS_OPERATOR_METRICS_PORT (or 'off')",
    )
    run.add_argument(
        "--liveness-port",
        type=int,
        metavar="N",
        help="/healthz port (default 8081); "
        "env INFERENCE_THRESHOLDS_OPERATOR_LIVENESS_PORT (or 'off')",
    )
    run.add_argument(
        "--bind",
        metavar="ADDR",
        help="address for the metrics and liveness servers (default 0.0.0.0)",
    )
    run.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="kubeconfig (default: $KUBECONFIG, "
        "~/.kube/config, then the in-cluster service account)",
    )
    run.add_argument(
        "--prometheus-url",
        metavar="URL",
        help="default Prometheus for spec.adaptation (a CR's prometheus.url wins); "
        "env INFERENCE_THRESHOLDS_OPERATOR_PROMETHEUS_URL",
    )
    run.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    run.set_defaults(func=_run)

    crd = op_sub.add_parser("crd", help="print the InferenceThresholds CRD (YAML)")
    crd.set_defaults(func=_crd)


def _crd(args: argparse.Namespace) -> int:
    from ..api.crdgen import render

    print(render(), end="")
    return 0


def _run(args: argparse.Namespace) -> int:
    try:
        import kopf

        from ..controller import settings
    except ModuleNotFoundError as exc:
        raise CliError(
            f"the operator needs {exc.name}: pip install 'inference-thresholds[operator]'"
        ) from exc
    try:
        config = settings.OperatorConfig.from_env()
        if args.prometheus_url:
            settings.check_prometheus_url(args.prometheus_url, "--prometheus-url")
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    namespaces = () if args.all_namespaces else tuple(args.namespace or ())
    config = config.with_overrides(
        namespaces=namespaces if (args.namespace or args.all_namespaces) else None,
        policy_path=args.policy,
        kubeconfig=args.kubeconfig,
        metrics_port=args.metrics_port,
        liveness_port=args.liveness_port,
        metrics_host=args.bind,
        liveness_host=args.bind,
        prometheus_url=args.prometheus_url,
    )
    if config.policy_path and not os.path.isfile(config.policy_path):
        raise CliError(f"--policy {config.policy_path}: no such file")
    if config.kubeconfig:
        if not os.path.isfile(config.kubeconfig):
            raise CliError(f"--kubeconfig {config.kubeconfig}: no such file")
        os.environ["KUBECONFIG"] = config.kubeconfig  # kopf's own login reads it
    try:
        from ..engine import load_policy

        load_policy(config.policy_path)  # fail fast, with the field named
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    settings.configure(config)

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from ..controller import handlers  # noqa: F401  (registers the handlers)

    kopf.run(
        standalone=True,
        clusterwide=not config.namespaces,
        namespaces=list(config.namespaces),
        liveness_endpoint=config.liveness_endpoint,
    )
    return 0
