"""`make demo`: inference-thresholds end to end on this machine.

Starts the local control plane (etcd + kube-apiserver + controller-manager, built from
source on first use), registers a Node named after this host, runs the node agent once
for it (real hardware detection), applies the CRD and the examples, runs the operator,
and shows what a user looks at: `kubectl get ith`, `kubectl describe ith` (decision
Events), the generated ConfigMap and a client-side validation. Everything it started is
stopped on exit, including Ctrl-C; `--keep` leaves the cluster running to explore.

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

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CLI = str(BIN / "inference-thresholds")
CRD_FILE = ROOT / "crds" / "inferencethresholds.thresholds.inference.dev.yaml"
CRD_NAME = "inferencethresholds.thresholds.inference.dev"
EXAMPLES = ROOT / "examples"
NAMESPACE = "default"
POOL_LABEL = "inference.example.com/pool"
HW_PREFIX = "hw.inference.dev/"
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
    shown = ["kubectl" if a.endswith("/kubectl") or a == "kubectl" else a for a in argv]
    shown = ["inference-thresholds" if a == CLI else a for a in shown]
    print(f"{DIM}$ {' '.join(shown)}{RESET}", flush=True)


def eventually(check: Callable[[], T | None], *, timeout: float, what: str) -> T:
    """Poll until ``check`` returns something truthy; no fixed sleeps."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DemoError(f"{what} not reached within {timeout:.0f} s")
        time.sleep(0.5)


def node_name_for_host() -> str:
    """This host's name as a valid Node name (lowercase DNS subdomain)."""
    raw = socket.gethostname().lower()
    name = re.sub(r"[^a-z0-9.-]+", "-", raw).strip("-.")[:63].strip("-.")
    return name or "localhost"


def arch_label() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)


class Demo:
    def __init__(self, workdir: Path, *, keep: bool, timeout: float) -> None:
        self.workdir = workdir
        self.state_dir = workdir / "cluster"
        self.keep = keep
        self.timeout = timeout
        self.kubeconfig: Path | None = None
        self.operator: subprocess.Popen[bytes] | None = None
        self.operator_log = workdir / "operator.log"
        self.node = node_name_for_host()

    # -- helpers ---------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.kubeconfig)
        return env

    def kubectl(
        self, *args: str, input: str | None = None, echo: bool = False, check: bool = True
    ) -> str:
        argv = ["kubectl", *args]
        if echo:
            show(argv)
        result = subprocess.run(
            argv, input=input, capture_output=True, text=True, env=self.env, check=False
        )
        if check and result.returncode != 0:
            raise DemoError(f"kubectl {' '.join(args)} failed:\n{result.stderr.strip()}")
        if echo:
            print(result.stdout.rstrip(), flush=True)
        return result.stdout

    def apply(self, doc: dict[str, Any]) -> None:
        out = self.kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))
        info(out.strip())

    # -- steps -----------------------------------------------------------------------

    def start_control_plane(self) -> None:
        step("Starting the local control plane (etcd, kube-apiserver, controller-manager)")
        info("the first run builds them from source (several minutes); later runs reuse them")
        argv = [CLI, "dev-cluster", "up", "--state-dir", str(self.state_dir)]
        show(argv)
        # stderr streams the build and start progress straight to the terminal.
        result = subprocess.run(argv, stdout=subprocess.PIPE, text=True, env=self.env, check=False)
        if result.returncode != 0:
            raise DemoError(f"dev-cluster up failed (exit {result.returncode})")
        self.kubeconfig = Path(result.stdout.strip().splitlines()[-1])
        info(f"KUBECONFIG={self.kubeconfig}")

    def register_node(self) -> None:
        step(f"Registering a Node for this machine: {self.node}")
        info("(the local control plane has no kubelet, so the Node object is created directly)")
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
                        # The edge example selects this pool; a user labels nodes like it.
                        POOL_LABEL: "edge",
                    },
                },
            }
        )

    def run_node_agent(self) -> None:
        step("Running the node agent once for this machine (real hardware detection)")
        argv = [CLI, "node-agent", "run", "--node-name", self.node, "--once"]
        show(argv)
        argv += ["--kubeconfig", str(self.kubeconfig), "--metrics-port", "0"]
        result = subprocess.run(argv, env=self.env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise DemoError(
                f"node agent failed (exit {result.returncode}):\n"
                f"{(result.stderr or result.stdout).strip()[-3000:]}"
            )
        node = json.loads(self.kubectl("get", "node", self.node, "-o", "json"))
        labels = {
            k: v for k, v in node["metadata"].get("labels", {}).items() if k.startswith(HW_PREFIX)
        }
        info(f"labels the agent published on node/{self.node}:")
        for key, value in sorted(labels.items()):
            info(f"  {key}={value}")
        if not labels:
            raise DemoError(f"the node agent published no {HW_PREFIX} labels")

    def apply_crd_and_examples(self) -> list[str]:
        step("Installing the CRD and the examples")
        show(["kubectl", "apply", "-f", "crds/"])
        info(self.kubectl("apply", "-f", str(CRD_FILE)).strip())
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{CRD_NAME}")
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

    def start_operator(self) -> None:
        step("Starting the operator in the background")
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

    def show_results(self, matched: str) -> None:
        step("What a user looks at")
        self.kubectl("get", "ith", "-n", NAMESPACE, echo=True)
        print()
        self.kubectl("describe", "ith", matched, "-n", NAMESPACE, echo=True)
        cm_name = self.configmap_name(matched)
        print()
        self.kubectl("get", "configmap", cm_name, "-n", NAMESPACE, "-o", "yaml", echo=True)

    def configmap_name(self, name: str) -> str:
        ith = json.loads(self.kubectl("get", "ith", name, "-n", NAMESPACE, "-o", "json"))
        ref = ith.get("status", {}).get("configMapRef") or {}
        return str(ref.get("name") or ith["spec"].get("configMap", {}).get("name"))

    def client_check(self, matched: str) -> None:
        step("Client-side validation, as a pod on this node would run it")
        cm_name = self.configmap_name(matched)
        cm = json.loads(self.kubectl("get", "configmap", cm_name, "-n", NAMESPACE, "-o", "json"))
        mount = self.workdir / "etc-inference-thresholds"
        mount.mkdir()
        for key, value in cm.get("data", {}).items():
            (mount / key).write_text(value)
        info(f"ConfigMap {cm_name} written to {mount} (what the volume mount gives a pod)")
        document = json.loads(cm["data"]["thresholds.json"])
        entry = document["classes"][document["nodes"][self.node]]
        expected = entry.get("expected", {})
        limits = entry.get("thresholds", {})
        tps = expected.get("decodeTokensPerSecond") or 2 * limits["minTokensPerSecond"]
        ttft = expected.get("timeToFirstTokenMs") or limits["maxTimeToFirstTokenMs"] / 2
        info("simulated observations (no model server runs in the demo):")
        for label, factor in (("a healthy run at 90% of the expected speed", 0.9),
                              ("a degraded run at 30% of the expected speed", 0.3)):  # fmt: skip
            info(f"-- {label}")
            argv = [
                CLI, "check", "--path", str(mount), "--node", self.node,
                "--observed-tps", f"{tps * factor:.2f}",
                "--observed-ttft-ms", f"{ttft / factor:.0f}",
            ]  # fmt: skip
            show(argv)
            result = subprocess.run(argv, env=self.env, capture_output=True, text=True, check=False)
            print(result.stdout.rstrip() or result.stderr.rstrip())
            colour = GREEN if result.returncode == 0 else RED
            print(f"{colour}exit status {result.returncode}{RESET}", flush=True)

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
                f"  stop it: inference-thresholds dev-cluster down --state-dir {self.state_dir}"
            )
            return
        if (self.state_dir / "kubeconfig").exists() or self.state_dir.exists():
            info("stopping the control plane")
            subprocess.run(
                [CLI, "dev-cluster", "down", "--state-dir", str(self.state_dir)],
                env=self.env, capture_output=True, check=False,
            )  # fmt: skip

    def operator_log_tail(self, lines: int = 40) -> str:
        if not self.operator_log.exists():
            return ""
        text = self.operator_log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def run(self) -> None:
        self.start_control_plane()
        self.register_node()
        self.run_node_agent()
        names = self.apply_crd_and_examples()
        self.start_operator()
        self.wait_ready(names)
        self.show_results("bitnet-edge")
        self.client_check("bitnet-edge")
        step("Done")
        info("the demo's control plane, operator and files are removed on exit")


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
        "--timeout", type=float, default=120, help="seconds to wait for each CR (default 120)"
    )
    args = parser.parse_args(argv)
    if shutil.which("kubectl") is None:
        print("error: kubectl not found on PATH; install kubectl and rerun", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="inference-thresholds-demo-"))
    demo = Demo(workdir, keep=args.keep, timeout=args.timeout)
    code = 0
    with terminate_on_signals():
        try:
            demo.run()
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
