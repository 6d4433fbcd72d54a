"""The closed loop on the real node: an inference pod, real load, real Prometheus, real faults.

Given a cluster with a real node and the chart installed (operator and node-agent pods),
``NodeLoop`` adds:

1. the llama-server pod (``pod.py``): CPU-limited, ``--threads`` = its CPUs, mounting the
   ConfigMap the operator wrote for an InferenceThresholds that describes it;
2. a real Prometheus on loopback scraping the pod's ``/metrics`` and the operator's and
   agent's metrics (jobs named after the chart's metrics Services, as a ServiceMonitor
   names them), with the chart's alert rules (``helm template`` of its PrometheusRule)
   and the CR's generated alert rules (the PrometheusRule the operator would write, from
   ``inference_thresholds.adaptation.alerts``), while the CR's adaptation reads the same
   Prometheus (llama.cpp preset);
3. bounded load from this host (the load generator is development tooling, not in any
   image; the pod is on the host network, so the host reaches it exactly as a client on
   the node would, and this host can see the server's threads' run-queue wait);
4. the client check as a Job in the cluster (operator image, same ConfigMap mounted,
   ``NODE_NAME``) on what was measured: decode tok/s, TTFT, latency, the container's
   peak memory (its cgroup's high-water mark, read in the container);
5. a real regression: the pod's CPU limit lowered in place (CFS throttling: deterministic
   even on a busy machine), then restored.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from inference_thresholds.adaptation.alerts import rule_groups
from inference_thresholds.api.adaptation import AdaptationSpec
from inference_thresholds.api.result import Thresholds
from inference_thresholds.api.thresholds_document import (
    DOCUMENT_KEY,
    ClassEntry,
    ThresholdsDocument,
)

from ..cluster.cluster import free_ports
from ..images.build import BuiltImage, ImageSpec
from ..prometheus import Prometheus, ScrapeJob
from ..waiting import eventually as wait_for
from .build import cache_root as llama_cache
from .build import is_complete, plan_for_this_machine
from .gguf_models import ARCHITECTURES, Architecture, model_file, model_spec
from .load import MIN_CORES_SHARE, LoadReport, LoadSpec, drive, drive_healthy
from .pod import check_job, ensure_server_base, server_image_spec, server_pod, thresholds_cr
from .server import runqueue_wait_seconds, serving_pid

Kubectl = Callable[..., str]  # kubectl(*args, input=None) -> stdout; raises on failure
Say = Callable[[str], None]

ARCH: Architecture = ARCHITECTURES["smollm2-135m"]
FORMAT = "Q4_0"
DECODE_ALERT = "InferenceDecodeTooSlow"
RELEASE = "inference-thresholds"


class LoopError(RuntimeError):
    """A step of the loop did not happen in time; the message says which."""


class Contended(LoopError):
    """Other work on the machine held the pod's CPU while a healthy pod was needed: the
    message carries the measured share of its CPU the pod really had."""


def eventually(check: Callable[[], Any], *, timeout: float, what: str) -> Any:
    return wait_for(check, timeout=timeout, what=what, error=LoopError)


@dataclass(frozen=True)
class LoopSettings:
    namespace: str
    node: str
    operator_image: str
    operator_metrics_port: int
    agent_metrics_port: int
    helm: str  # the helm binary (renders the chart's rules and Services)
    chart: Path
    chart_values: Path  # the values the release was installed with
    release_namespace: str = "inference-thresholds"
    name: str = "llama-loop"
    cpu_millis: int = 1000  # the healthy pod: 1 CPU, 1 thread
    degraded_cpu_millis: int = 200  # the regression: the same pod throttled to 0.2 CPU
    memory_mib: int = 512
    load: LoadSpec = field(
        default_factory=lambda: LoadSpec(
            requests=4, prompt_tokens=128, n_predict=32, vocab_size=ARCH.vocab
        )
    )


@dataclass
class Measurement:
    report: LoadReport
    memory_mib: float | None
    contended: bool = False  # other work held the pod's CPU: not a healthy pod's numbers

    def observed(self) -> dict[str, float]:
        out = dict(self.report.observed())
        if self.memory_mib is not None:
            out["memory_mb"] = self.memory_mib
        return out


@dataclass
class CheckRun:
    passed: bool
    exit_code: int | None
    logs: str


def chart_objects(settings: LoopSettings, *templates: str, **values: str) -> list[dict[str, Any]]:
    """Objects ``helm template`` renders from the chart with the release's values."""
    argv = [
        settings.helm, "template", RELEASE, str(settings.chart),
        "--namespace", settings.release_namespace, "-f", str(settings.chart_values),
    ]  # fmt: skip
    for key, value in values.items():
        argv += ["--set", f"{key}={value}"]
    for template in templates:
        argv += ["--show-only", template]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


class NodeLoop:
    def __init__(
        self,
        settings: LoopSettings,
        kubectl: Kubectl,
        import_image: Callable[[ImageSpec], BuiltImage],
        workdir: Path,
        say: Say = lambda _m: None,
    ) -> None:
        self.s = settings
        self.kubectl = kubectl
        self.import_image = import_image
        self.workdir = workdir
        self.say = say
        self.server_port, self.prometheus_port = free_ports(2)
        self.prometheus: Prometheus | None = None
        self.pod = f"{settings.name}-server"
        self.configmap = f"{settings.name}-thresholds"
        self.timings: dict[str, float] = {}
        self._pid: int | None = None
        self._checks = 0

    # -- set-up ------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    def adaptation(self) -> dict[str, Any]:
        """spec.adaptation: the llama.cpp preset on this loop's Prometheus, short periods so
        a bounded run sees it move (a production CR keeps the 1m/5m defaults)."""
        return {
            "enabled": True,
            "source": "llama-cpp-server",
            "prometheus": {"url": f"http://127.0.0.1:{self.prometheus_port}", "timeout": "5s"},
            "labelMatchers": [
                {"label": "namespace", "value": self.s.namespace},
                {"label": "pod", "value": self.pod},
            ],
            "interval": "3s",
            "window": "20s",
            "history": "0s",
            "halfLife": "10m",
            "minSamples": 3,
            "maxStepPercent": 5,
            "alertRules": {"enabled": False},  # no prometheus-operator: rules loaded below
        }

    def deploy(self) -> None:
        began = time.monotonic()
        plan = plan_for_this_machine()
        tools = plan.directory(llama_cache())
        if not is_complete(tools):
            raise LoopError(f"llama.cpp is not built for this CPU ({tools}): run `make llama`")
        model = model_file(ARCH, FORMAT, tools)
        ensure_server_base(self.say)
        spec = server_image_spec(tools)
        self.say(f"image {spec.name}: llama-server + its libraries, FROM the Debian base")
        image = self.import_image(spec)
        self.timings["image"] = time.monotonic() - began
        cr = thresholds_cr(
            self.s.name, self.s.namespace, self.s.node, model_spec(ARCH, model),
            cpu_cores=self.s.cpu_millis / 1000, prompt_tokens=self.s.load.prompt_tokens,
            output_tokens=self.s.load.n_predict, adaptation=self.adaptation(),
        )  # fmt: skip
        self.cr = cr
        # Prometheus first: the CR's adaptation and the pod's scrape find it up.
        self._start_prometheus()
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump(cr))
        eventually(self._configmap, timeout=120, what=f"ConfigMap {self.configmap}")
        pod = server_pod(
            self.pod, self.s.namespace, image.ref, model=model, port=self.server_port,
            cpu_millis=self.s.cpu_millis, memory_mib=self.s.memory_mib,
            configmap=self.configmap,
        )  # fmt: skip
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump(pod))
        eventually(self._pod_ready, timeout=180, what=f"pod {self.pod} Ready")
        self.timings["pod-ready"] = time.monotonic() - began
        prom = self.prometheus
        assert prom is not None
        eventually(
            lambda: (up := prom.targets_up()) and len(up) == 3 and all(up.values()),
            timeout=60,
            what="Prometheus scraping the server, the operator and the agent",
        )
        self.timings["deployed"] = time.monotonic() - began

    def _configmap(self) -> dict[str, Any] | None:
        try:
            out = self.kubectl("get", "configmap", self.configmap, "-n", self.s.namespace,
                               "-o", "json")  # fmt: skip
        except subprocess.CalledProcessError:
            return None
        except RuntimeError:
            return None
        doc: dict[str, Any] = json.loads(out)
        return doc

    def _get(self, *args: str) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.kubectl("get", *args, "-o", "json"))
        return doc

    def _pod_ready(self) -> bool:
        pod = self._get("pod", self.pod, "-n", self.s.namespace)
        statuses = pod.get("status", {}).get("containerStatuses") or []
        return bool(statuses) and all(s.get("ready") for s in statuses)

    def _start_prometheus(self) -> None:
        services = chart_objects(
            self.s, "templates/operator-service.yaml", "templates/agent-service.yaml"
        )
        job = {s["metadata"]["labels"]["app.kubernetes.io/component"]: s["metadata"]["name"]
               for s in services}  # fmt: skip
        # The chart's rules, with a short `for:` through its value (users keep 15m).
        (rule,) = chart_objects(
            self.s, "templates/prometheusrule.yaml", **{
                "prometheusRule.enabled": "true", "prometheusRule.for": "10s"},
        )  # fmt: skip
        spec = AdaptationSpec.model_validate(self.cr["spec"]["adaptation"])
        groups = rule["spec"]["groups"] + rule_groups(self.s.namespace, self.s.name, spec)
        ns = {"namespace": self.s.release_namespace}
        jobs = [
            ScrapeJob("llama-server", [f"127.0.0.1:{self.server_port}"],
                      {"namespace": self.s.namespace, "pod": self.pod, "node": self.s.node}),
            ScrapeJob(job["operator"], [f"127.0.0.1:{self.s.operator_metrics_port}"], ns,
                      honor_labels=True),
            ScrapeJob(job["node-agent"], [f"127.0.0.1:{self.s.agent_metrics_port}"],
                      {**ns, "node": self.s.node}),
        ]  # fmt: skip
        self.prometheus = Prometheus(
            self.workdir / "prometheus", jobs, groups, port=self.prometheus_port
        )
        self.prometheus.start()

    def stop(self) -> None:
        if self.prometheus is not None:
            self.prometheus.stop()
        for kind, name in (("pod", self.pod), ("ith", self.s.name)):
            with contextlib.suppress(RuntimeError, subprocess.CalledProcessError):
                self.kubectl("delete", kind, name, "-n", self.s.namespace, "--wait=false",
                             "--ignore-not-found")  # fmt: skip

    # -- observations ------------------------------------------------------------------

    def _runqueue_wait(self) -> float | None:
        if self._pid is None:
            self._pid = serving_pid(self.server_port)
        return None if self._pid is None else runqueue_wait_seconds(self._pid)

    def peak_memory_mib(self) -> float | None:
        """The server container's memory high-water mark (its cgroup's, as the kubelet
        accounts it), read inside the container."""
        script = (
            "cat /sys/fs/cgroup/memory/memory.max_usage_in_bytes 2>/dev/null"
            " || cat /sys/fs/cgroup/memory.peak"
        )
        try:
            out = self.kubectl("exec", "-n", self.s.namespace, self.pod, "-c", "server", "--",
                               "/bin/sh", "-c", script)  # fmt: skip
            return int(out.strip()) / 1048576
        except (RuntimeError, subprocess.CalledProcessError, ValueError):
            return None

    def measure_healthy(self) -> Measurement:
        threads = max(1, self.s.cpu_millis // 1000)
        report, contended = drive_healthy(self.base_url, self.s.load, self._runqueue_wait, threads)
        return Measurement(report, self.peak_memory_mib(), contended)

    def measure_degraded(self, requests: int = 2) -> Measurement:
        spec = LoadSpec(
            requests=requests, prompt_tokens=self.s.load.prompt_tokens,
            n_predict=self.s.load.n_predict, warmup=0, vocab_size=self.s.load.vocab_size,
        )  # fmt: skip
        return Measurement(drive(self.base_url, spec), self.peak_memory_mib())

    def document_class(self) -> ClassEntry:
        """The pod's class in the ConfigMap now: its expectation and thresholds."""
        cm = self._configmap()
        if cm is None:
            raise LoopError(f"ConfigMap {self.configmap} is gone")
        doc = ThresholdsDocument.model_validate_json(cm["data"][DOCUMENT_KEY])
        name = doc.class_of(self.s.node)
        if name is None:
            raise LoopError(f"node {self.s.node} is in none of the document's classes")
        return doc.classes[name]

    def thresholds(self) -> Thresholds:
        return self.document_class().thresholds

    def check(self, measurement: Measurement) -> CheckRun:
        """``inference-thresholds check`` in a Job on the node; its verdict and logs."""
        self._checks += 1
        name = f"{self.s.name}-check-{self._checks}"
        job = check_job(name, self.s.namespace, self.s.operator_image,
                        configmap=self.configmap, observed=measurement.observed())  # fmt: skip
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump(job))

        def finished() -> dict[str, Any] | None:
            pods = self._get("pods", "-n", self.s.namespace, "-l", f"job={name}")["items"]
            done = [p for p in pods if p["status"].get("phase") in ("Succeeded", "Failed")]
            return done[0] if done else None

        pod = eventually(finished, timeout=120, what=f"check Job {name}")
        state = pod["status"]["containerStatuses"][0]["state"].get("terminated") or {}
        logs = self.kubectl("logs", "-n", self.s.namespace, pod["metadata"]["name"])
        code = state.get("exitCode")
        return CheckRun(code == 0, code, logs)

    # -- adaptation, alerts, events ----------------------------------------------------

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self._get("ith", self.s.name, "-n", self.s.namespace).get(
            "status", {}
        )
        return status

    def events(self, reason: str | None = None) -> list[dict[str, Any]]:
        selector = f"involvedObject.name={self.s.name},involvedObject.kind=InferenceThresholds"
        if reason:
            selector += f",reason={reason}"
        items: list[dict[str, Any]] = self._get(
            "events", "-n", self.s.namespace, "--field-selector", selector
        )["items"]
        return items

    def firing(self, alert: str = DECODE_ALERT) -> list[dict[str, str]]:
        assert self.prometheus is not None
        return [a for a in self.prometheus.alerts() if a.get("alertname") == alert]

    def all_firing(self) -> list[dict[str, str]]:
        assert self.prometheus is not None
        return self.prometheus.alerts()

    def resize(self, cpu_millis: int) -> None:
        """The pod's CPU request and limit set in place (the resize subresource)."""
        cpu = f"{cpu_millis}m"
        patch = {"spec": {"containers": [{"name": "server", "resources": {
            "requests": {"cpu": cpu}, "limits": {"cpu": cpu}}}]}}  # fmt: skip
        self.kubectl("patch", "pod", self.pod, "-n", self.s.namespace, "--subresource",
                     "resize", "--type=strategic", "-p", json.dumps(patch))  # fmt: skip

        def applied() -> bool:
            pod = self._get("pod", self.pod, "-n", self.s.namespace)
            (status,) = pod["status"]["containerStatuses"]
            limit = (status.get("resources") or {}).get("limits", {}).get("cpu")
            pending = [c for c in pod["status"].get("conditions") or []
                       if c["type"] in ("PodResizePending", "PodResizeInProgress")]  # fmt: skip
            return _millis(limit) == cpu_millis and not pending

        eventually(applied, timeout=60, what=f"the pod's CPU limit at {cpu}")

    def load_until(
        self, done: Callable[[], bool], *, timeout: float, what: str, healthy: bool = False
    ) -> float:
        """Requests one at a time until ``done()`` (checked between them); seconds taken.

        ``healthy``: the pod should have its CPU; on timeout, if other work held it (the
        server's run-queue wait), raise ``Contended`` with that evidence.
        """
        began = time.monotonic()
        shares: list[float] = []
        one = LoadSpec(
            requests=1, prompt_tokens=self.s.load.prompt_tokens,
            n_predict=self.s.load.n_predict, warmup=0, vocab_size=self.s.load.vocab_size,
        )  # fmt: skip
        while not done():
            if time.monotonic() - began > timeout:
                recent = shares[-8:]
                if healthy and recent and statistics.median(recent) < MIN_CORES_SHARE:
                    raise Contended(
                        f"{what}: not within {timeout:.0f} s, and the pod had only "
                        f"{[f'{x:.0%}' for x in recent]} of its CPU (other work held it)"
                    )
                raise LoopError(f"timed out after {timeout:.0f} s of load waiting for {what}")
            report = drive(self.base_url, one, self._runqueue_wait, self._threads())
            shares += [r.cores_share for r in report.results if r.cores_share is not None]
        return time.monotonic() - began

    def _threads(self) -> int:
        return max(1, self.s.cpu_millis // 1000)


def _millis(quantity: str | None) -> int | None:
    if quantity is None:
        return None
    if quantity.endswith("m"):
        return int(quantity[:-1])
    return int(float(quantity) * 1000)


# -- the two phases, for the test (asserts) and the demo (prints) -----------------------------


@dataclass
class HealthyPhase:
    computed: Thresholds  # in the ConfigMap before any observation
    measurement: Measurement
    check: CheckRun | None  # None: the machine was too busy for a healthy baseline
    adaptation: dict[str, Any] = field(default_factory=dict)  # status.adaptation's decode
    adapted_events: list[dict[str, Any]] = field(default_factory=list)  # ThresholdAdapted
    adapted: Thresholds | None = None
    adapt_seconds: float = 0.0


@dataclass
class RegressionPhase:
    before: Thresholds
    measurement: Measurement
    check: CheckRun
    alert: dict[str, str]
    firing_after_s: float  # from the resize to the alert firing
    firing: list[str]  # every alert firing then
    beyond_event: dict[str, Any]
    held: Thresholds
    restore_contended: str | None = None  # evidence, when no healthy restore was possible
    resolved_after_s: float = 0.0  # from the restore to the alert resolved
    restored: Measurement | None = None
    restored_check: CheckRun | None = None
    within_event: dict[str, Any] | None = None


def decode_state(loop: NodeLoop) -> dict[str, Any]:
    classes = (loop.status().get("adaptation") or {}).get("classes") or [{}]
    decode: dict[str, Any] = classes[0].get("decode") or {}
    return decode


def healthy_phase(loop: NodeLoop, adapt_timeout: float = 240) -> HealthyPhase:
    """Measure the healthy pod, check it in the cluster, let adaptation fold in the real
    series until it decides (tightened, or held: it tightens only toward performance
    better than the engine expected, scaled by the same slack)."""
    computed = loop.thresholds()
    measurement = loop.measure_healthy()
    if measurement.contended:
        return HealthyPhase(computed, measurement, None)
    result = HealthyPhase(computed, measurement, loop.check(measurement))
    minimum = int(loop.cr["spec"]["adaptation"]["minSamples"])

    def decided() -> bool:
        decode = decode_state(loop)
        return int(decode.get("samples") or 0) >= minimum and decode.get("target") is not None

    result.adapt_seconds = loop.load_until(
        decided, timeout=adapt_timeout, what="adaptation's decision", healthy=True
    )
    result.adaptation = decode_state(loop)
    result.adapted_events = loop.events("ThresholdAdapted")
    result.adapted = loop.thresholds()
    return result


def regression_phase(loop: NodeLoop, timeout: float = 300) -> RegressionPhase:
    """Throttle the pod in place; the check, the alert, the Events; restore; all clear."""
    before = loop.thresholds()
    began = time.monotonic()
    loop.resize(loop.s.degraded_cpu_millis)
    measurement = loop.measure_degraded()
    check = loop.check(measurement)
    loop.load_until(lambda: bool(loop.firing()), timeout=timeout, what=DECODE_ALERT)
    firing_after = time.monotonic() - began
    alert = loop.firing()[0]
    firing = sorted({a.get("alertname", "") for a in loop.all_firing()})
    loop.load_until(
        lambda: bool(loop.events("ObservedBeyondThreshold")),
        timeout=120,
        what="an ObservedBeyondThreshold Event",
    )
    beyond = loop.events("ObservedBeyondThreshold")[0]
    phase = RegressionPhase(
        before, measurement, check, alert, firing_after, firing, beyond, loop.thresholds()
    )
    began = time.monotonic()
    loop.resize(loop.s.cpu_millis)
    try:
        loop.load_until(
            lambda: not loop.firing(), timeout=timeout, what=f"{DECODE_ALERT} resolved",
            healthy=True,
        )  # fmt: skip
        phase.resolved_after_s = time.monotonic() - began
        phase.restored = loop.measure_healthy()
        if phase.restored.contended:
            raise Contended("the restored pod did not get its CPU for its measurement")
        phase.restored_check = loop.check(phase.restored)
        loop.load_until(
            lambda: bool(loop.events("ObservedWithinThreshold")), timeout=120,
            what="an ObservedWithinThreshold Event", healthy=True,
        )  # fmt: skip
    except Contended as exc:
        phase.restore_contended = str(exc)
        return phase
    phase.within_event = loop.events("ObservedWithinThreshold")[0]
    return phase
