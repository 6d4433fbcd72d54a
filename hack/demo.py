"""`make demo`: inference-thresholds end to end on this machine, as a user meets it.

Starts a local cluster with a real node (etcd, kube-apiserver, controller-manager,
kube-scheduler, containerd + runc and a kubelet, all built or installed here, all on
127.0.0.1), builds the operator and node-agent images from the project's Dockerfile (no
registry: a Debian base and podman; cached), `helm install`s the chart, shows the pods
Running and the node labelled by the agent pod, applies the examples, shows `kubectl get
ith` and `kubectl describe ith`, and runs a workload pod that mounts its thresholds and
validates against them (`kubectl logs`), then closes the loop on a real llama-server pod
(inference_thresholds_dev.llama.node_loop): measured vs thresholds, the check as a Job, a
real Prometheus with the alert rules, a real regression caught and cleared. Everything it
started is stopped on exit, including Ctrl-C; `--keep` leaves the cluster running to
explore.

Where containers cannot run (not root, or containerd/runc/podman missing) it falls back to
the no-node path, and says so: the control plane only, a Node object created directly, the
agent and the operator as local processes.

Run with the project's virtualenv python (the Makefile does): `make demo`.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from inference_thresholds.api.node_contract import LABEL_PREFIX
from inference_thresholds_dev.llama.node_loop import (
    LoopError,
    LoopSettings,
    Measurement,
    NodeLoop,
    healthy_phase,
    regression_phase,
)
from inference_thresholds_dev.local_chart import client_deployment
from inference_thresholds_dev.waiting import eventually as wait_for

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CLI = str(BIN / "inference-thresholds")
DEV_CLI = str(BIN / "inference-thresholds-dev")
CHART = ROOT / "helm" / "inference-thresholds"
CRD_FILE = ROOT / "crds" / "inferencethresholds.thresholds.inference.dev.yaml"
CRD_NAME = "inferencethresholds.thresholds.inference.dev"
EXAMPLES = ROOT / "examples"
NAMESPACE = "default"
RELEASE_NAMESPACE = "inference-thresholds"
POOL_LABEL = "inference.example.com/pool"
# What a real node needs here (inference_thresholds_dev.node / .images).
NODE_COMMANDS = ("containerd", "ctr", "runc", "podman", "mmdebstrap", "gcc", "helm")
T = TypeVar("T")

BOLD, DIM, GREEN, RED, RESET = (
    ("\033[1m", "\033[2m", "\033[32m", "\033[31m", "\033[0m")
    if sys.stdout.isatty()
    else ("", "", "", "", "")
)


class DemoError(RuntimeError):
    """A step failed; the message says which and where its logs are."""


def step(title: str) -> None:
    print(f"\n{BOLD}==> {title}{RESET}", flush=True)


def info(message: str) -> None:
    print(f"    {message}", flush=True)


def show(argv: Sequence[str]) -> None:
    """Print a command the way a user would type it."""
    names = {CLI: "inference-thresholds", DEV_CLI: "inference-thresholds-dev"}
    shown = [Path(a).name if a.endswith(("/kubectl", "/helm")) else names.get(a, a) for a in argv]
    print(f"{DIM}$ {' '.join(shown)}{RESET}", flush=True)


def eventually(check: Callable[[], T | None], *, timeout: float, what: str) -> T:
    return wait_for(check, timeout=timeout, what=what, error=DemoError)


def node_name_for_host() -> str:
    """This host's name as a valid Node name (lowercase DNS subdomain)."""
    raw = socket.gethostname().lower()
    name = re.sub(r"[^a-z0-9.-]+", "-", raw).strip("-.")[:63].strip("-.")
    return name or "localhost"


def arch_label() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)


def why_no_node() -> str | None:
    """Why a real node cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "a kubelet and containerd must run as root"
    missing = [c for c in NODE_COMMANDS if shutil.which(c) is None]
    if missing:
        return f"{', '.join(missing)} not found (hack/ensure-deps.sh installs them)"
    return None


class Demo:
    def __init__(self, workdir: Path, *, keep: bool, timeout: float, node: bool) -> None:
        self.workdir = workdir
        self.state_dir = workdir / "cluster"
        self.keep = keep
        self.timeout = timeout
        self.with_node = node
        self.kubeconfig: Path | None = None
        self.operator: subprocess.Popen[bytes] | None = None
        self.operator_log = workdir / "operator.log"
        # The kubelet registers itself as `localhost` (the apiserver dials it there).
        self.node = "localhost" if node else node_name_for_host()

    # -- helpers ---------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.kubeconfig)
        return env

    def run(self, argv: list[str], *, echo: bool = False, input: str | None = None) -> str:
        if echo:
            show(argv)
        result = subprocess.run(
            argv, input=input, capture_output=True, text=True, env=self.env, check=False
        )
        if result.returncode != 0:
            raise DemoError(f"{' '.join(argv[:3])} ... failed:\n{result.stderr.strip()[-3000:]}")
        if echo:
            print(result.stdout.rstrip(), flush=True)
        return result.stdout

    def kubectl(self, *args: str, input: str | None = None, echo: bool = False) -> str:
        return self.run(["kubectl", *args], input=input, echo=echo)

    def apply(self, doc: dict[str, Any]) -> None:
        info(self.kubectl("apply", "-f", "-", input=yaml.safe_dump(doc)).strip())

    def dev_cluster_up(self, *flags: str) -> None:
        argv = [DEV_CLI, "dev-cluster", "up", *flags, "--state-dir", str(self.state_dir)]
        show(argv)
        # stderr streams the build and start progress straight to the terminal.
        result = subprocess.run(argv, stdout=subprocess.PIPE, text=True, env=self.env, check=False)
        if result.returncode != 0:
            raise DemoError(f"dev-cluster up failed (exit {result.returncode})")
        self.kubeconfig = Path(result.stdout.strip().splitlines()[-1])
        info(f"KUBECONFIG={self.kubeconfig}")

    # -- the real node ---------------------------------------------------------------

    def start_cluster_with_node(self) -> Path:
        step("Starting a local cluster with a real node (kubelet + containerd + runc)")
        info("first run: builds the control plane from Go modules and the operator and")
        info("node-agent images from ./Dockerfile (Debian base, podman); later runs reuse them")
        self.dev_cluster_up("--node")
        self.kubectl("get", "nodes", "-o", "wide", echo=True)
        return self.state_dir / "helm-values.yaml"

    def install_chart(self, values: Path) -> None:
        step("Installing the Helm chart (operator Deployment + node-agent DaemonSet)")
        info(f"{values.name}: the locally built images (pullPolicy Never), host network and")
        info("the apiserver on loopback (this node has no pod network); see the file's header")
        began = time.monotonic()
        self.run(
            ["helm", "install", "inference-thresholds", str(CHART), "--namespace",
             RELEASE_NAMESPACE, "--create-namespace", "-f", str(values), "--wait",
             # The chart's defaults: the agent measures memory bandwidth (a bounded probe)
             # for a CPU no table knows, as here; the closed loop's expectations rest on it.
             "--timeout", "300s"],
            echo=True,
        )  # fmt: skip
        info(f"release ready after {time.monotonic() - began:.1f} s")
        self.kubectl("get", "pods", "-n", RELEASE_NAMESPACE, "-o", "wide", echo=True)

    def helm_test(self) -> None:
        step("helm test: the chart checks its own installation (a hook Pod, operator image)")
        info("the CRD is the one this operator generates, the operator is rolled out and its")
        info("/metrics answers with this version")
        self.run(["helm", "test", "inference-thresholds", "--namespace", RELEASE_NAMESPACE,
                  "--logs", "--timeout", "180s"], echo=True)  # fmt: skip

    def show_agent_labels(self) -> None:
        step(
            f"The agent pod detected this machine from its container and labelled node/{self.node}"
        )

        def labelled() -> dict[str, str] | None:
            node = json.loads(self.kubectl("get", "node", self.node, "-o", "json"))
            labels = node["metadata"].get("labels", {})
            found = {k: v for k, v in labels.items() if k.startswith(LABEL_PREFIX)}
            return found or None

        labels = eventually(labelled, timeout=self.timeout, what=f"{LABEL_PREFIX} labels")
        show(["kubectl", "get", "node", self.node, "--show-labels"])
        for key, value in sorted(labels.items()):
            info(f"{key}={value}")
        # The edge example selects this pool: a user labels their nodes like this.
        self.kubectl("label", "node", self.node, f"{POOL_LABEL}=edge", "--overwrite", echo=True)

    def run_workload(self, cr: str) -> None:
        step("A workload pod consumes its thresholds (mounted ConfigMap, envFrom, NODE_NAME)")
        image = json.loads(self.kubectl(
            "get", "deployment", "-n", RELEASE_NAMESPACE, "-l",
            "app.kubernetes.io/component=operator", "-o", "json",
        ))["items"][0]["spec"]["template"]["spec"]["containers"][0]["image"]  # fmt: skip
        info("its container runs `inference-thresholds check` with its own memory use (a real")
        info("observation; this pod runs no model server, the closed loop below does) whenever")
        info("the mounted file changes")
        name = f"{cr}-client"
        self.apply(client_deployment(name, NAMESPACE, image, self.configmap_name(cr)))

        def logs() -> str | None:
            result = subprocess.run(
                ["kubectl", "logs", "-n", NAMESPACE, f"deployment/{name}"],
                capture_output=True, text=True, env=self.env, check=False,
            )  # fmt: skip
            return result.stdout if "exit status" in result.stdout else None

        eventually(logs, timeout=self.timeout, what=f"{name}'s first check in its logs")
        self.kubectl("logs", "-n", NAMESPACE, f"deployment/{name}", echo=True)

    # -- the closed loop on a real inference server ------------------------------------

    def closed_loop(self, values: Path) -> None:
        step("The closed loop: llama-server as a pod, real load, real Prometheus")
        info("llama.cpp's server (built by `make llama`) serves the SmolLM2-135M architecture")
        info("with RANDOM weights (Q4_0; speed depends on shapes, not values) in a pod limited")
        info("to 1 CPU with 1 thread; it mounts the ConfigMap of an InferenceThresholds that")
        info("describes it. Prometheus (Debian's) scrapes it with the chart's alert rules and")
        info("the CR's generated ones; the CR's adaptation reads the same Prometheus.")
        began = time.monotonic()
        loop = self.node_loop(values)
        try:
            loop.deploy()
            info(", ".join(f"{k} {v:.0f} s" for k, v in loop.timings.items()))
            self.kubectl("get", "pod", loop.pod, "-n", NAMESPACE, "-o", "wide", echo=True)
            healthy = healthy_phase(loop, adapt_timeout=self.timeout * 2)
            step("Healthy pod: measured vs thresholds, and the check in a Job on the node")
            self.measured_table("healthy (1 CPU)", healthy.measurement, healthy.computed)
            if healthy.check is None:
                info("the machine was too busy for a healthy baseline (the pod did not get its")
                info("CPU); the loop stops here")
                return
            self.show_check(healthy.check)
            decode = healthy.adaptation
            info(f"adaptation read {decode.get('samples')} samples of the real series from "
                 f"Prometheus in {healthy.adapt_seconds:.0f} s (latest "
                 f"{decode.get('lastValue', 0):.1f} tok/s): {decode.get('note')}")  # fmt: skip
            for event in healthy.adapted_events:
                info(f"ThresholdAdapted: {event['message']}")
            step("A real regression: the pod's CPU limit lowered in place to 0.2 CPU")
            phase = regression_phase(loop, timeout=self.timeout * 3)
            self.measured_table("throttled (0.2 CPU)", phase.measurement, phase.before)
            self.show_check(phase.check)
            info(f"Prometheus: ALERTS{{alertstate=\"firing\"}} {phase.firing} "
                 f"{phase.firing_after_s:.0f} s after the resize: {phase.alert}")  # fmt: skip
            self.kubectl("get", "events", "-n", NAMESPACE, "--field-selector",
                         f"involvedObject.name={loop.s.name}", "--sort-by=.lastTimestamp",
                         echo=True)  # fmt: skip
            held = all(
                (getattr(phase.held, f) or 0) <= (getattr(phase.before, f) or 0)
                for f in ("max_time_to_first_token_ms", "max_memory_usage_mb")
            ) and (phase.held.min_tokens_per_second or 0) >= (
                phase.before.min_tokens_per_second or 0
            )
            info(f"thresholds loosened by adaptation: {'no' if held else 'YES'} "
                 f"(minTokensPerSecond {phase.before.min_tokens_per_second} -> "
                 f"{phase.held.min_tokens_per_second})")  # fmt: skip
            step("Restored to 1 CPU")
            if phase.restore_contended is not None or phase.restored is None:
                info(f"not shown: {phase.restore_contended}")
            else:
                info(f"alert resolved {phase.resolved_after_s:.0f} s after the restore")
                self.measured_table("restored (1 CPU)", phase.restored, phase.held)
                if phase.restored_check is not None:
                    self.show_check(phase.restored_check)
                if phase.within_event is not None:
                    info(f"ObservedWithinThreshold: {phase.within_event['message']}")
            info(f"the closed loop took {time.monotonic() - began:.0f} s")
        except LoopError as exc:
            raise DemoError(f"closed loop: {exc}") from exc
        finally:
            loop.stop()

    def node_loop(self, values: Path) -> NodeLoop:
        from inference_thresholds_dev.images.build import build_image
        from inference_thresholds_dev.node.node import RealNode

        node = RealNode.create(self.state_dir / "node")

        def import_image(spec: Any) -> Any:
            image = build_image(spec, progress=info)
            if image.ref not in node.images():
                node.import_image(image.archive)
            return image

        chart_values = yaml.safe_load(values.read_text())
        image = chart_values["operator"]["image"]
        settings = LoopSettings(
            namespace=NAMESPACE,
            node=self.node,
            operator_image=f"{image['repository']}:{image['tag']}",
            operator_metrics_port=int(chart_values["operator"]["metrics"]["port"]),
            agent_metrics_port=int(chart_values["agent"]["metrics"]["port"]),
            helm=shutil.which("helm", path=self.env["PATH"]) or "helm",
            chart=CHART,
            chart_values=values,
        )
        return NodeLoop(
            settings,
            lambda *args, input=None: self.kubectl(*args, input=input),
            import_image,
            self.workdir / "loop",
            info,
        )

    def measured_table(self, label: str, m: Measurement, t: Any) -> None:
        rows = [
            ("decode tok/s", f"{m.report.decode_tps:.1f}", f">= {t.min_tokens_per_second}"),
            ("TTFT ms", f"{m.report.ttft_ms:.0f}", f"<= {t.max_time_to_first_token_ms}"),
            ("latency ms", f"{m.report.latency_ms:.0f}", f"<= {t.max_latency_ms}"),
            ("peak memory MiB", f"{m.memory_mib or 0:.0f}", f"<= {t.max_memory_usage_mb}"),
        ]
        print(f"{BOLD}{label}{RESET} ({len(m.report.results)} requests, medians)")
        print(f"  {'':18}{'measured':>12}  threshold")
        for name, value, limit in rows:
            print(f"  {name:18}{value:>12}  {limit}")

    def show_check(self, check: Any) -> None:
        print(check.logs.rstrip())
        colour = GREEN if check.passed else RED
        print(f"{colour}check exit status {check.exit_code}{RESET}", flush=True)

    # -- the no-node fallback --------------------------------------------------------

    def start_control_plane(self) -> None:
        step("Starting the local control plane (etcd, kube-apiserver, controller-manager)")
        info("the first run builds them from source (several minutes); later runs reuse them")
        self.dev_cluster_up()

    def register_node(self) -> None:
        step(f"Registering a Node for this machine: {self.node}")
        info("(no kubelet in this fallback, so the Node object is created directly)")
        self.apply(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": self.node,
                    "labels": {
                        "kubernetes.io/hostname": self.node,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": arch_label(),
                        POOL_LABEL: "edge",
                    },
                },
            }
        )

    def run_node_agent(self) -> None:
        step("Running the node agent once for this machine (real hardware detection)")
        argv = [CLI, "node-agent", "run", "--node-name", self.node, "--once"]
        show(argv)
        self.run([*argv, "--kubeconfig", str(self.kubeconfig), "--metrics-port", "0"])
        node = json.loads(self.kubectl("get", "node", self.node, "-o", "json"))
        labels = {
            k: v
            for k, v in node["metadata"].get("labels", {}).items()
            if k.startswith(LABEL_PREFIX)
        }
        info(f"labels the agent published on node/{self.node}:")
        for key, value in sorted(labels.items()):
            info(f"  {key}={value}")
        if not labels:
            raise DemoError(f"the node agent published no {LABEL_PREFIX} labels")

    def install_crd(self) -> None:
        step("Installing the CRD")
        show(["kubectl", "apply", "-f", "crds/"])
        info(self.kubectl("apply", "-f", str(CRD_FILE)).strip())
        # Polled: `kubectl wait` fails outright while the new CRD has no conditions yet.
        eventually(
            lambda: self.kubectl(
                "get", "crd", CRD_NAME, "-o",
                "jsonpath={.status.conditions[?(@.type==\"Established\")].status}",
            ) == "True",
            timeout=60,
            what=f"crd/{CRD_NAME} Established",
        )  # fmt: skip

    def start_operator(self) -> None:
        step("Starting the operator as a local process")
        argv = [CLI, "operator", "run", "--namespace", NAMESPACE]
        show([*argv, f"> {self.operator_log.name} 2>&1 &"])
        # Local only: servers on 127.0.0.1, a free metrics port, no liveness server.
        argv += ["--kubeconfig", str(self.kubeconfig), "--bind", "127.0.0.1",
                 "--metrics-port", "0"]  # fmt: skip
        env = {**self.env, "INFERENCE_THRESHOLDS_OPERATOR_LIVENESS_PORT": "off"}
        log = self.operator_log.open("wb")
        self.operator = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        info(f"pid {self.operator.pid}, log {self.operator_log}")

    def client_check(self, cr: str) -> None:
        step("Client-side validation, as a pod on this node would run it")
        cm_name = self.configmap_name(cr)
        cm = json.loads(self.kubectl("get", "configmap", cm_name, "-n", NAMESPACE, "-o", "json"))
        mount = self.workdir / "etc-inference-thresholds"
        mount.mkdir()
        for key, value in cm.get("data", {}).items():
            (mount / key).write_text(value)
        info(f"ConfigMap {cm_name} written to {mount} (what the volume mount gives a pod)")
        rss_mib = (
            int(Path("/proc/self/statm").read_text().split()[1])
            * os.sysconf("SC_PAGE_SIZE")
            // (1024 * 1024)
        )
        info(f"observed: this demo process's own memory ({rss_mib} MiB resident)")
        argv = [CLI, "check", "--path", str(mount), "--node", self.node,
                "--observed-memory-mb", str(rss_mib)]  # fmt: skip
        show(argv)
        result = subprocess.run(argv, env=self.env, capture_output=True, text=True, check=False)
        print(result.stdout.rstrip() or result.stderr.rstrip())
        colour = GREEN if result.returncode == 0 else RED
        print(f"{colour}exit status {result.returncode}{RESET}", flush=True)

    # -- shared ----------------------------------------------------------------------

    def apply_examples(self) -> list[str]:
        step("Applying the examples (InferenceThresholds)")
        names = []
        for file in sorted(EXAMPLES.glob("*.yaml")):
            for doc in yaml.safe_load_all(file.read_text()):
                if not doc or doc.get("kind") != "InferenceThresholds":
                    continue
                doc = self.adapt(doc, file.name)
                self.apply(doc)
                names.append(doc["metadata"]["name"])
        return names

    def adapt(self, doc: dict[str, Any], file: str) -> dict[str, Any]:
        """Make the heterogeneous-pool example select this machine by hostname."""
        doc = copy.deepcopy(doc)
        doc["metadata"]["namespace"] = NAMESPACE
        if doc["metadata"]["name"] == "mistral-pool":
            doc["spec"]["nodeSelector"] = {"matchLabels": {"kubernetes.io/hostname": self.node}}
            info(f"{file}: nodeSelector set to kubernetes.io/hostname={self.node} for the demo")
        return doc

    def ready(self, name: str) -> str | None:
        if self.operator is not None and self.operator.poll() is not None:
            raise DemoError(f"the operator exited with {self.operator.returncode}; see below")
        out = self.kubectl(
            "get", "ith", name, "-n", NAMESPACE, "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        )  # fmt: skip
        return out if out in ("True", "False") else None

    def conditions(self, name: str) -> list[dict[str, Any]]:
        ith = json.loads(self.kubectl("get", "ith", name, "-n", NAMESPACE, "-o", "json"))
        return list(ith.get("status", {}).get("conditions", []))

    def wait_ready(self, names: list[str]) -> None:
        step("Waiting for the operator to reconcile every InferenceThresholds")
        for name in names:
            status = eventually(
                lambda name=name: self.ready(name),  # type: ignore[misc]
                timeout=self.timeout,
                what=f"a Ready condition on ith/{name}",
            )
            info(f"ith/{name}: Ready={status}")
            if status != "True":
                shown: set[str] = set()
                # Specific conditions first; Ready usually repeats one of them.
                ordered = sorted(self.conditions(name), key=lambda c: c.get("type") == "Ready")
                for condition in ordered:
                    message = condition.get("message", "")
                    if condition.get("status") != "True" and message not in shown:
                        shown.add(message)
                        info(f"  {condition['type']}: {message}")

    def show_results(self, cr: str) -> None:
        step("What a user looks at")
        self.kubectl("get", "ith", "-n", NAMESPACE, echo=True)
        print()
        self.kubectl("describe", "ith", cr, "-n", NAMESPACE, echo=True)
        print()
        self.kubectl(
            "get", "configmap", self.configmap_name(cr), "-n", NAMESPACE, "-o", "yaml", echo=True
        )

    def configmap_name(self, name: str) -> str:
        ith = json.loads(self.kubectl("get", "ith", name, "-n", NAMESPACE, "-o", "json"))
        ref = ith.get("status", {}).get("configMapRef") or {}
        return str(ref.get("name") or ith["spec"].get("configMap", {}).get("name"))

    # -- teardown --------------------------------------------------------------------

    def stop(self) -> None:
        if self.operator is not None and self.operator.poll() is None:
            info(f"stopping the operator (pid {self.operator.pid})")
            self.operator.send_signal(signal.SIGTERM)
            try:
                self.operator.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.operator.kill()
                self.operator.wait()
        if self.keep and self.kubeconfig is not None:
            print(
                f"\ncluster left running (--keep):\n  export KUBECONFIG={self.kubeconfig}\n"
                f"  stop it: inference-thresholds-dev dev-cluster down "
                f"--state-dir {self.state_dir}"
            )
            return
        if self.state_dir.exists():
            info("stopping the cluster (inference-thresholds-dev dev-cluster down)")
            result = subprocess.run(
                [DEV_CLI, "dev-cluster", "down", "--state-dir", str(self.state_dir)],
                env=self.env, capture_output=True, text=True, check=False,
            )  # fmt: skip
            if result.returncode != 0:
                print(result.stderr.strip(), file=sys.stderr)

    def operator_log_tail(self, lines: int = 40) -> str:
        if not self.operator_log.exists():
            return ""
        text = self.operator_log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def run_all(self) -> None:
        if self.with_node:
            values = self.start_cluster_with_node()
            self.install_chart(values)
            self.helm_test()
            self.show_agent_labels()
            names = self.apply_examples()
            self.wait_ready(names)
            self.show_results("bitnet-edge")
            self.run_workload("bitnet-edge")
            self.closed_loop(values)
        else:
            self.start_control_plane()
            self.register_node()
            self.run_node_agent()
            self.install_crd()
            names = self.apply_examples()
            self.start_operator()
            self.wait_ready(names)
            self.show_results("bitnet-edge")
            self.client_check("bitnet-edge")
        step("Done")
        info("the demo's cluster, pods and files are removed on exit")


@contextlib.contextmanager
def terminate_on_signals() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into KeyboardInterrupt so cleanup runs for them too."""

    def handler(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="leave the cluster running")
    parser.add_argument(
        "--timeout", type=float, default=120, help="seconds to wait for each step (default 120)"
    )
    parser.add_argument(
        "--no-node", action="store_true", help="the fallback without a node, even where one runs"
    )
    args = parser.parse_args(argv)
    if shutil.which("kubectl") is None:
        print("error: kubectl not found on PATH; install kubectl and rerun", file=sys.stderr)
        return 2
    reason = "--no-node given" if args.no_node else why_no_node()
    if reason is not None:
        print(
            f"{BOLD}note: no real node in this demo ({reason}).{RESET}\n"
            "Showing the fallback instead: the control plane without a kubelet, a Node object "
            "created directly, the node agent and the operator as local processes (not the "
            "chart's pods).",
            flush=True,
        )
    # Short: the node's unix sockets live below it (sun_path holds 108 bytes).
    workdir = Path(tempfile.mkdtemp(prefix="it-demo-"))
    demo = Demo(workdir, keep=args.keep, timeout=args.timeout, node=reason is None)
    code = 0
    with terminate_on_signals():
        try:
            demo.run_all()
        except DemoError as exc:
            print(f"\n{RED}demo failed: {exc}{RESET}", file=sys.stderr)
            tail = demo.operator_log_tail()
            if tail:
                print(f"--- last lines of {demo.operator_log} ---\n{tail}", file=sys.stderr)
            code = 1
        except KeyboardInterrupt:
            print("\ninterrupted; cleaning up", file=sys.stderr)
            code = 130
        finally:
            step("Cleaning up")
            demo.stop()
            if not args.keep:
                shutil.rmtree(workdir, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
