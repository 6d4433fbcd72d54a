"""``operator run`` (the kopf operator in-process) and ``operator crd`` (print the CRD).

kopf and the kubernetes client are imported inside the run function only, so the
rest of the CLI works in slim pods without them.
"""

from __future__ import annotations

import argparse
import asyncio
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
        help="reconcile InferenceThresholds into ConfigMaps",
        description="Run the operator. Without --leader-elect exactly one replica may run "
        "(deploy with replicas: 1 and strategy: Recreate); with it, replicas elect one "
        "leader on a Lease and the others wait as warm standbys. Flags win over the "
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
        "--leader-elect",
        action="store_true",
        default=None,
        help="elect one active replica on a coordination.k8s.io Lease; the others stand by "
        "(env INFERENCE_THRESHOLDS_OPERATOR_LEADER_ELECT=true)",
    )
    run.add_argument(
        "--lease-name",
        metavar="NAME",
        help="the Lease's name (default inference-thresholds-operator); "
        "env INFERENCE_THRESHOLDS_OPERATOR_LEASE_NAME",
    )
    run.add_argument(
        "--lease-namespace",
        metavar="NS",
        help="the Lease's namespace (default $POD_NAMESPACE); "
        "env INFERENCE_THRESHOLDS_OPERATOR_LEASE_NAMESPACE",
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

    check = op_sub.add_parser(
        "check",
        help="check an installation: CRD, operator rollout, /metrics (what `helm test` runs)",
        description="Each requested check prints ok or FAIL with the fix; exit 0 when all pass, "
        "1 when one fails.",
    )
    check.add_argument(
        "--crd", action="store_true", help="the CRD is installed, Established and current"
    )
    check.add_argument(
        "--deployment", metavar="NS/NAME", help="the operator Deployment is rolled out"
    )
    check.add_argument(
        "--metrics-url",
        metavar="URL",
        help="the operator's /metrics answers with inference_thresholds_build_info",
    )
    check.add_argument(
        "--metrics-wait",
        metavar="SECONDS",
        type=float,
        default=60.0,
        help="how long a refused /metrics connection is tried again while the rolled-out "
        "pod lists Nodes or takes the Lease (default 60; 0: once)",
    )
    check.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig (default: in-cluster)")
    check.set_defaults(func=_check)


def _crd(args: argparse.Namespace) -> int:
    from ..api.crdgen import render

    print(render(), end="")
    return 0


def _run(args: argparse.Namespace) -> int:
    try:
        import kopf  # noqa: F401  (a clear error when the operator extra is missing)

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
        leader_elect=args.leader_elect,
        lease_name=args.lease_name,
        lease_namespace=args.lease_namespace,
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
    from ..controller.runner import election_config, serve

    try:
        election_config(config)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    options = {
        "standalone": True,
        "clusterwide": not config.namespaces,
        "namespaces": list(config.namespaces),
    }
    return asyncio.run(serve(config, kopf_options=options))


def _check(args: argparse.Namespace) -> int:
    if not (args.crd or args.deployment or args.metrics_url):
        raise CliError("nothing to check: give --crd, --deployment NS/NAME and/or --metrics-url")
    if args.deployment and "/" not in args.deployment:
        raise CliError(f"--deployment {args.deployment}: expected NAMESPACE/NAME")
    from .health_check import run_checks

    try:
        results = run_checks(
            kubeconfig=args.kubeconfig,
            crd=args.crd,
            deployment=args.deployment,
            metrics_url=args.metrics_url,
            metrics_wait=max(0.0, min(args.metrics_wait, 600.0)),
        )
    except Exception as exc:  # credentials and API errors come in many types
        print(f"FAIL: cannot reach the Kubernetes API: {exc}")
        return 1
    failed = False
    for name, problems in results:
        for problem in problems:
            print(f"FAIL: {name}: {problem}")
        if not problems:
            print(f"ok: {name}")
        failed = failed or bool(problems)
    return 1 if failed else 0
