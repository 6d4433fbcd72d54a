"""The operator at scale on a real kube-apiserver: up to 10,000 realistic Nodes, 2,000 CRs.

Starts its own local control plane (or uses --kubeconfig) and grows a fleet of realistic
GPU and CPU Nodes through the --nodes points (default 2,000, 5,000, 10,000): each is
created by the "kubelet" with its status (addresses, capacity, conditions, a page of
container images, nodeInfo, runtime handlers) and patched by "nfd-master" with Node
Feature Discovery, GPU Feature Discovery and node-agent labels and annotations: 12-20 KB
of JSON plus managedFields, 24 hardware classes. The InferenceThresholds (20 namespaces,
varied selectors, models and contexts) are created before each point (deleted and created
again after the first), so each point's operator (``inference-thresholds operator run
--all-namespaces``, a subprocess) starts on CRs without status or ConfigMaps, and is
measured:

- initial sync: operator start until every CR has its ConfigMap and Ready=True, beside a
  speed probe taken just before and just after it (the same 200 CRs planned in-process
  at every point: this VM's speed moved by 2.5x within one run, and a point is read
  against it) and the hypervisor's steal time during it;
- peak RSS and CPU seconds (from /proc), idle CPU;
- one node relabel: CRs re-reconciled (operator metrics), ConfigMaps rewritten, time;
- node noise: kubelet status heartbeats and GFD timestamp relabels on many nodes, which
  must wake no CR (reconciles and operator CPU while they land).

At the last point also:

- steady state: a CR spec change until its ConfigMap carries the new generation, seen by a
  watch on ConfigMaps (p50/p99), beside two floors measured in the same run: a ConfigMap
  written through the API and through ``kubectl apply``, each until the watch delivers
  it (target: p99 within 1.5x of kubectl apply's p99);
- a restart: time until every CR was reconciled again and the API writes it made
  (watch events on CRs/ConfigMaps and apiserver_request_total; target 0);
- failover: two replicas with Lease leader election; the leader is killed (SIGKILL), a
  spec change is made at once; takeover = kill until that change is in its ConfigMap
  (target < 15 s); writes beyond that change's (target 0).

    .venv/bin/python benchmarks/operator_scale.py                           # the full curve
    .venv/bin/python benchmarks/operator_scale.py --nodes 200 --crs 50     # a quick run

With --kubeconfig, no other InferenceThresholds operator may run in that cluster; the
Nodes, namespaces and CRs the run creates are removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, watch
from scale_objects import (
    BENCH_LABEL,
    MANAGER_KUBELET,
    MANAGER_NFD,
    POOL_LABEL,
    POOLS,
    CrPlan,
    cr_plans,
    cr_spec,
    hardware_classes,
    namespace_name,
    node_name,
    node_object,
    realistic_merged,
    realistic_node,
    realistic_status,
)

from inference_thresholds import engine
from inference_thresholds.api.thresholds_document import DOCUMENT_KEY
from inference_thresholds.controller.node_index import NodeIndex, NodeRecord, node_inputs
from inference_thresholds.controller.plan import Plan, make_plan
from inference_thresholds.controller.selector import matches
from inference_thresholds_dev.cluster.access import ClusterAccess
from inference_thresholds_dev.cluster.processes import terminate

REPO = Path(__file__).resolve().parents[1]
CRD_PATH = REPO / "crds" / "inferencethresholds.thresholds.inference.dev.yaml"
GROUP, VERSION, PLURAL = "thresholds.inference.dev", "v1alpha1", "inferencethresholds"
MANAGED = "app.kubernetes.io/managed-by=inference-thresholds"
FLOOR_LABEL = "inference-thresholds-bench-floor"
TARGET_VS_KUBECTL = 1.5  # spec change p99 <= 1.5 x kubectl apply's p99
TARGET_RSS_MIB = 250
TARGET_SYNC_S = 60.0
TARGET_TAKEOVER_S = 15.0
LEASE = "inference-thresholds-bench"
QUIET_S = 3.0  # no further writes for this long: a phase is over
CLK_TCK = os.sysconf("SC_CLK_TCK")
# The local control plane's processes (name -> pid): on this machine they share its cores
# with the operator, so their CPU during a phase is part of what the phase costs.
CONTROL_PLANE: dict[str, int] = {}


def cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def control_plane_cpu() -> dict[str, float]:
    return {name: cpu_seconds(pid) for name, pid in CONTROL_PLANE.items()}


def steal_seconds() -> float:
    """CPU seconds the hypervisor ran something else while this VM wanted its cores (the
    "steal" column of /proc/stat, summed over the CPUs; 0 where it is not reported)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
        return int(fields[8]) / CLK_TCK if fields[0] == "cpu" and len(fields) > 8 else 0.0
    except (OSError, ValueError):
        return 0.0


STOPPING = threading.Event()


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- watching ----------------------------------------------------------------------------


@dataclass
class CmSeen:
    generation: int
    content_hash: str
    at: float


@dataclass
class CrSeen:
    generation: int
    observed: int
    ready: bool
    resource_version: str


@dataclass
class Tracker:
    """What the watches delivered, with arrival times (perf_counter), behind one condition."""

    cond: threading.Condition = field(default_factory=threading.Condition)
    cms: dict[tuple[str, str], CmSeen] = field(default_factory=dict)
    crs: dict[tuple[str, str], CrSeen] = field(default_factory=dict)
    floor: dict[str, tuple[str, float]] = field(default_factory=dict)  # name -> (value, at)
    writes: Counter[str] = field(default_factory=Counter)  # "cm" / "cr" modification events
    last_write: float = 0.0

    def on_cm(self, kind: str, obj: dict[str, Any], at: float) -> None:
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"])
        text = (obj.get("data") or {}).get(DOCUMENT_KEY) or "{}"
        gen = int(json.loads(text).get("generation") or 0)
        content = (meta.get("annotations") or {}).get("thresholds.inference.dev/content-hash", "")
        with self.cond:
            if kind != "INITIAL":
                self.writes["cm"] += 1
                self.last_write = at
            if kind == "DELETED":
                self.cms.pop(key, None)
            else:
                self.cms[key] = CmSeen(gen, content, at)
            self.cond.notify_all()

    def on_cr(self, kind: str, obj: dict[str, Any], at: float) -> None:
        meta, status = obj["metadata"], obj.get("status") or {}
        key = (meta["namespace"], meta["name"])
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        seen = CrSeen(
            int(meta.get("generation") or 0),
            int(status.get("observedGeneration") or 0),
            ready,
            meta.get("resourceVersion", ""),
        )
        with self.cond:
            if kind != "INITIAL":
                self.writes["cr"] += 1
                self.last_write = at
            if kind == "DELETED":
                self.crs.pop(key, None)
            else:
                self.crs[key] = seen
            self.cond.notify_all()

    def prune_cms(self, listed: set[tuple[str, str]]) -> None:
        with self.cond:
            for key in [k for k in self.cms if k not in listed]:
                del self.cms[key]
            self.cond.notify_all()

    def on_floor(self, kind: str, obj: dict[str, Any], at: float) -> None:
        with self.cond:
            self.floor[obj["metadata"]["name"]] = ((obj.get("data") or {}).get("v", ""), at)
            self.cond.notify_all()

    def wait(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        with self.cond:
            if not self.cond.wait_for(check, timeout=timeout):
                raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")

    def quiet(self, seconds: float, timeout: float = 60.0) -> None:
        """Wait until the watches have delivered no writes for ``seconds``."""
        deadline = time.perf_counter() + timeout
        with self.cond:
            while time.perf_counter() < deadline:
                idle = time.perf_counter() - max(self.last_write, 0.0)
                if idle >= seconds:
                    return
                self.cond.wait(seconds - idle)


def start_watch(
    list_fn: Callable[..., Any],
    handler: Callable[[str, dict[str, Any], float], None],
    prune: Callable[[set[tuple[str, str]]], None] | None = None,
    **kwargs: Any,
) -> None:
    """List (handing existing objects over as INITIAL), then watch from that version;
    a watch that breaks is listed and watched again (said on stderr); ``prune`` gets the
    (namespace, name) of every listed object, to drop those deleted while unwatched."""

    def listing() -> str:
        raw = list_fn(_preload_content=False, **kwargs)
        body = json.loads(raw.data)
        listed = set()
        for item in body.get("items") or []:
            meta = item.get("metadata") or {}
            listed.add((meta.get("namespace", ""), meta.get("name", "")))
            handler("INITIAL", item, time.perf_counter())
        if prune is not None:
            prune(listed)
        return str(body["metadata"]["resourceVersion"])

    version = listing()

    def run() -> None:
        nonlocal version
        while True:
            try:
                stream = watch.Watch().stream(
                    list_fn, resource_version=version, deserialize=False, **kwargs
                )
                for event in stream:
                    obj = event["object"]
                    version = obj.get("metadata", {}).get("resourceVersion", version)
                    handler(event["type"], obj, time.perf_counter())
                version = listing()
            except Exception as exc:
                if STOPPING.is_set():
                    return  # the cluster is going away
                log(f"watch broke ({type(exc).__name__}: {exc}); listing again")
                time.sleep(0.5)
                try:
                    version = listing()
                except Exception:
                    continue

    threading.Thread(target=run, daemon=True).start()


# --- the operator subprocess ---------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Operator:
    def __init__(
        self, kubeconfig: Path, workdir: Path, env: dict[str, str], name: str = "operator"
    ) -> None:
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.env = env
        self.name = name
        self.metrics_port = free_port()
        self.liveness_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.runs = 0
        self.rss_series: list[tuple[int, float, int]] = []  # (run, seconds since start, MiB)

    def start(self) -> None:
        self.runs += 1
        argv = [
            str(Path(sys.executable).parent / "inference-thresholds"),
            "operator",
            "run",
            "--all-namespaces",
            f"--kubeconfig={self.kubeconfig}",
            f"--metrics-port={self.metrics_port}",
            f"--liveness-port={self.liveness_port}",
            "--bind=127.0.0.1",
        ]
        logfile = self.log.open("wb")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            argv, stdout=logfile, stderr=subprocess.STDOUT, env={**os.environ, **self.env}
        )
        threading.Thread(target=self._sample_rss, args=(self.proc, self.runs), daemon=True).start()

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}-{self.runs}.log"

    def health(self) -> dict[str, Any]:
        """/healthz as JSON ({} while not answering)."""
        try:
            url = f"http://127.0.0.1:{self.liveness_port}/healthz"
            with urllib.request.urlopen(url, timeout=2) as resp:
                found: dict[str, Any] = json.loads(resp.read() or b"{}")
                return found
        except (OSError, ValueError):
            return {}

    def kill(self) -> None:
        """SIGKILL: no cleanup, no lease release (a node dying under the pod)."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def _sample_rss(self, proc: subprocess.Popen[bytes], run: int) -> None:
        """VmRSS every 0.25 s, so the JSON output shows when the peak happens."""
        while proc.poll() is None:
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
            except OSError:
                return
            found = re.search(r"VmRSS:\s+(\d+) kB", status)
            if found:
                at = round(time.perf_counter() - self.started, 2)
                self.rss_series.append((run, at, int(found.group(1)) // 1024))
            time.sleep(0.25)

    def stop(self) -> float:
        assert self.proc is not None
        began = time.perf_counter()
        terminate(self.proc, grace=60)
        self.proc = None
        return time.perf_counter() - began

    def proc_figures(self) -> tuple[float, float]:
        """(peak RSS MiB, CPU seconds) of the running operator, from /proc."""
        assert self.proc is not None
        pid = self.proc.pid
        status = Path(f"/proc/{pid}/status").read_text()
        hwm = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
        return hwm / 1024, cpu

    def metric_sum(self, name: str) -> float:
        """Sum of all samples of one metric (0 when absent or not serving yet).

        Asks for that metric alone (``name[]``, as a federating Prometheus does): the
        phases poll it every 0.1 s, and the whole exposition (per-CR and per-class
        gauges of 2,000 CRs) would make the benchmark the operator's heaviest load."""
        try:
            url = f"http://127.0.0.1:{self.metrics_port}/metrics?name[]={name}"
            with urllib.request.urlopen(url, timeout=5) as resp:
                text = resp.read().decode()
        except OSError:
            return 0.0
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")
            raise RuntimeError(f"{self.name} exited:\n" + tail[-3000:])


# --- the cluster ---------------------------------------------------------------------------


@contextmanager
def cluster(kubeconfig: str | None, workdir: Path) -> Iterator[ClusterAccess]:
    if kubeconfig:
        yield ClusterAccess(Path(kubeconfig), local=False)
        return
    from inference_thresholds_dev.cluster.binaries import locate
    from inference_thresholds_dev.cluster.cluster import LocalCluster

    local = LocalCluster(workdir / "controlplane", locate())
    local.start(progress=log)
    CONTROL_PLANE.update({p.name: p.pid for p in local.processes})
    log(f"control plane at {local.server} (/readyz {local.timings['readyz']:.1f} s)")
    try:
        yield ClusterAccess(local.kubeconfig, local=True)
    finally:
        local.stop()


def apiserver_writes(api: client.ApiClient) -> Counter[str]:
    """apiserver_request_total for writes, by 'VERB resource[/subresource]'."""
    text = api.call_api(
        "GET", api.configuration.host + "/metrics", header_params={"Accept": "text/plain"}
    )
    text.read()
    counts: Counter[str] = Counter()
    for line in text.data.decode().splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        if labels.get("verb") not in ("POST", "PUT", "PATCH", "DELETE", "APPLY"):
            continue
        resource = labels.get("resource", "")
        if resource not in ("configmaps", "inferencethresholds", "events", "nodes"):
            continue
        sub = labels.get("subresource")
        key = f"{labels['verb']} {resource}{'/' + sub if sub else ''}"
        counts[key] += int(float(line.rsplit(" ", 1)[1]))
    return counts


def bulk(fn: Callable[[Any], Any], items: list[Any], workers: int = 8) -> None:
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(fn, items):
            pass


def install_crd(kube: ClusterAccess, ext: client.ApiextensionsV1Api) -> None:
    kube.kubectl("apply", "-f", str(CRD_PATH))
    name = f"{PLURAL}.{GROUP}"

    def established() -> bool:
        crd = ext.read_custom_resource_definition(name)
        return any(
            c.type == "Established" and c.status == "True" for c in crd.status.conditions or []
        )

    ClusterAccess.eventually(established, timeout=60, what="CRD Established")


def plan_cr(p: CrPlan, nodes: Mapping[str, NodeRecord], policy: Any = None) -> Plan:
    """The operator's plan for one CR, in-process (the engine with the default policy)."""
    return make_plan(
        name=p.name,
        namespace=p.namespace,
        generation=1,
        raw_spec=p.spec,
        nodes=nodes,
        compute=engine.compute,
        policy=policy,
        resolve=engine.resolve_model,
    )


def ready_plans(
    plans: list[CrPlan], nodes: Mapping[str, NodeRecord], classes: list[Any]
) -> tuple[list[CrPlan], float, float]:
    """Every CR made to fit (smallest model where the chosen one fits no class), with the
    in-process compute time for all (the engine's share of a full sync) and mean classes."""
    out, classes_seen = [], 0
    began = time.perf_counter()
    for p in plans:
        plan = p
        for model in (None, "llama-3.2-1b"):
            if model is not None:
                plan = CrPlan(p.namespace, p.name, cr_spec(int(p.name[3:]), classes, model))
            result = plan_cr(plan, nodes)
            if result.invalid is None and result.effective_class is not None:
                break
        else:
            raise SystemExit(f"{p.name}: no feasible class even for llama-3.2-1b; fix the fixture")
        classes_seen += len(result.classes)
        out.append(plan)
    return out, time.perf_counter() - began, classes_seen / max(len(plans), 1)


SPEED_PROBE_CRS = 200


def speed_probe(plans: list[CrPlan], nodes: Mapping[str, NodeRecord]) -> float:
    """Milliseconds per CR to plan ``SPEED_PROBE_CRS`` CRs in-process, as the operator does
    (one loaded policy), against the full reference fleet: the same work at every point,
    so it measures this VM's speed at that moment (it moved by 2x within one run), and a
    point's sync can be read against the machine it ran on."""
    sample, policy = plans[:SPEED_PROBE_CRS], engine.Policy()
    began = time.perf_counter()
    for p in sample:
        plan_cr(p, nodes, policy)
    return (time.perf_counter() - began) * 1000 / max(len(sample), 1)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- phases --------------------------------------------------------------------------------


def initial_sync(op: Operator, tr: Tracker, plans: list[CrPlan], timeout: float) -> float:
    want = {p.key: p.config_map for p in plans}

    def done() -> bool:
        op.alive()
        return all(
            (cr := tr.crs.get(k)) is not None and cr.ready and (k[0], cm) in tr.cms
            for k, cm in want.items()
        )

    op.start()
    tr.wait(done, timeout, "every CR Ready=True with its ConfigMap")
    return time.perf_counter() - op.started


def spec_changes(
    custom: client.CustomObjectsApi, tr: Tracker, plans: list[CrPlan], count: int
) -> list[float]:
    """Sequential spec changes; latency = PATCH sent until the watch shows the new ConfigMap."""
    latencies = []
    step = max(1, len(plans) // count)
    for i in range(count):
        p = plans[(i * step) % len(plans)]
        tokens = 1000 + i
        patch = {"spec": {"context": {"workload": {"outputTokens": tokens}}}}
        began = time.perf_counter()
        obj = custom.patch_namespaced_custom_object(
            GROUP, VERSION, p.namespace, PLURAL, p.name, patch
        )
        gen = int(obj["metadata"]["generation"])
        key = (p.namespace, p.config_map)
        tr.wait(
            lambda key=key, gen=gen: (cm := tr.cms.get(key)) is not None and cm.generation >= gen,
            30,
            f"ConfigMap {key} at generation {gen}",
        )
        latencies.append(tr.cms[key].at - began)
    return latencies


def api_floor(core: client.CoreV1Api, tr: Tracker, ns: str, count: int) -> list[float]:
    name = "floor-api"
    body = {"metadata": {"name": name, "labels": {FLOOR_LABEL: "1"}}, "data": {"v": "0"}}
    core.create_namespaced_config_map(ns, body)
    out = []
    for i in range(1, count + 1):
        began = time.perf_counter()
        core.patch_namespaced_config_map(name, ns, {"data": {"v": str(i)}})
        tr.wait(lambda i=i: tr.floor.get(name, ("", 0))[0] == str(i), 10, "floor ConfigMap")
        out.append(tr.floor[name][1] - began)
    return out


def kubectl_floor(kube: ClusterAccess, tr: Tracker, ns: str, count: int) -> list[float]:
    name = "floor-kubectl"
    out = []
    for i in range(1, count + 1):
        manifest = json.dumps(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": ns, "labels": {FLOOR_LABEL: "1"}},
                "data": {"v": str(i)},
            }
        )
        began = time.perf_counter()
        kube.kubectl("apply", "-f", "-", input=manifest)
        tr.wait(lambda i=i: tr.floor.get(name, ("", 0))[0] == str(i), 10, "floor ConfigMap")
        out.append(tr.floor[name][1] - began)
    return out


@dataclass
class Relabel:
    node: str
    expected: int
    reconciles: float
    cm_writes: int
    cr_writes: int
    seconds: float
    cpu_s: float
    mean_reconcile_ms: float


def relabel(
    core: client.CoreV1Api,
    op: Operator,
    tr: Tracker,
    plans: list[CrPlan],
    nodes: NodeIndex,
) -> Relabel:
    """Move one node to another pool; CRs whose selection changes must rewrite."""
    best: tuple[int, str, str, set[tuple[str, str]]] | None = None
    for name in list(nodes)[:50]:
        rec = nodes[name]
        for pool in POOLS:
            new = {**rec.labels, POOL_LABEL: pool}
            hit = {
                p.key
                for p in plans
                if matches(_selector_model(p), rec.labels) != matches(_selector_model(p), new)
            }
            if best is None or len(hit) > best[0]:
                best = (len(hit), name, pool, hit)
    assert best is not None
    _, name, pool, hit = best
    by_key = {p.key: p for p in plans}
    before = {k: tr.cms[(k[0], by_key[k].config_map)].content_hash for k in hit}
    rec0 = op.metric_sum("inference_thresholds_reconciles_total")
    dur0 = op.metric_sum("inference_thresholds_reconcile_duration_seconds_sum")
    cpu0 = op.proc_figures()[1]
    w0 = Counter(tr.writes)
    began = time.perf_counter()
    core.patch_node(name, {"metadata": {"labels": {POOL_LABEL: pool}}})

    def rewritten() -> bool:
        return all(tr.cms[(k[0], by_key[k].config_map)].content_hash != before[k] for k in hit)

    tr.wait(rewritten, 120, f"ConfigMaps of the {len(hit)} CRs selecting {name}")
    rec = nodes[name]
    nodes.apply(
        name,
        node_inputs({"metadata": {"name": name, "labels": {**rec.labels, POOL_LABEL: pool}}}),
    )
    last = max((tr.cms[(k[0], by_key[k].config_map)].at for k in hit), default=began)
    tr.quiet(QUIET_S)
    writes = tr.writes - w0
    reconciles = op.metric_sum("inference_thresholds_reconciles_total") - rec0
    duration = op.metric_sum("inference_thresholds_reconcile_duration_seconds_sum") - dur0
    return Relabel(
        name,
        len(hit),
        reconciles,
        writes["cm"],
        writes["cr"],
        last - began,
        op.proc_figures()[1] - cpu0,
        duration / max(reconciles, 1) * 1000,
    )


def _selector_model(p: CrPlan) -> Any:
    from inference_thresholds.api.crd import InferenceThresholdsSpec

    return InferenceThresholdsSpec.model_validate(p.spec).node_selector


@dataclass
class Restart:
    stop_s: float
    resync_s: float
    reconciles: float
    cm_writes: int
    cr_writes: int
    api_writes: Counter[str]


def restart(op: Operator, tr: Tracker, api: client.ApiClient, crs: int) -> Restart:
    stop_s = op.stop()
    tr.quiet(1.0)
    w0, a0 = Counter(tr.writes), apiserver_writes(api)
    op.start()
    deadline = time.perf_counter() + 300
    while op.metric_sum("inference_thresholds_reconciles_total") < crs:
        op.alive()
        if time.perf_counter() > deadline:
            raise TimeoutError("restart: not every CR reconciled within 300 s")
        time.sleep(0.1)  # polling the operator's own counter: it has no watchable state
    resync = time.perf_counter() - op.started
    tr.quiet(QUIET_S)
    reconciles = op.metric_sum("inference_thresholds_reconciles_total")
    writes = tr.writes - w0
    api_writes = apiserver_writes(api)
    api_writes.subtract(a0)
    return Restart(
        stop_s,
        resync,
        reconciles,
        writes["cm"],
        writes["cr"],
        +api_writes,
    )


# --- the run -------------------------------------------------------------------------------


def grow_nodes(
    core: client.CoreV1Api, have: int, want: int, classes: list[Any], bare: bool
) -> float:
    """Create nodes have..want-1 as a real cluster gets them; returns seconds."""

    def create(i: int) -> None:
        if bare:
            core.create_node(node_object(i, classes), _preload_content=False)
            return
        body, patch = realistic_node(i, classes)
        core.create_node(body, field_manager=MANAGER_KUBELET, _preload_content=False)
        core.patch_node(node_name(i), patch, field_manager=MANAGER_NFD, _preload_content=False)

    began = time.perf_counter()
    bulk(create, list(range(have, want)))
    return time.perf_counter() - began


def node_sizes(api: client.ApiClient) -> dict[str, float]:
    """Mean bytes of JSON per Node as stored, whole and metadata only (one page)."""
    out = {}
    for what, accept in (
        ("full", "application/json"),
        ("metadata", "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"),
    ):
        resp = api.call_api(
            "GET",
            f"{api.configuration.host}/api/v1/nodes?limit=200&labelSelector={BENCH_LABEL}%3D1",
            header_params={"Accept": accept},
        )
        resp.read()
        items = json.loads(resp.data)["items"]
        out[what] = statistics.mean(len(json.dumps(i, separators=(",", ":"))) for i in items)
    return out


def create_crs(custom: client.CustomObjectsApi, tr: Tracker, plans: list[CrPlan]) -> float:
    """Every CR created anew (no status, no ConfigMap); seconds until the watch has them."""
    began = time.perf_counter()
    bulk(
        lambda p: custom.create_namespaced_custom_object(
            GROUP, VERSION, p.namespace, PLURAL, p.body()
        ),
        plans,
    )
    return time.perf_counter() - began


def renew_crs(
    custom: client.CustomObjectsApi, tr: Tracker, plans: list[CrPlan], namespaces: list[str]
) -> None:
    """The CRs deleted (the garbage collector takes their ConfigMaps) and created again, so
    the next start is an initial sync: CRs without status or ConfigMap. (Deleting only the
    ConfigMaps made it a repair: a GET, a ConfigMapRepaired Event, a status already there.)"""
    for ns in namespaces:
        custom.delete_collection_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)
    tr.wait(lambda: not tr.crs and not tr.cms, 300, "every CR and its ConfigMap deleted")
    create_crs(custom, tr, plans)
    want = {p.key for p in plans}
    tr.wait(lambda: want <= tr.crs.keys(), 120, "every CR created again")


@dataclass
class Noise:
    heartbeats: int
    relabels: int
    seconds: float
    reconciles: float
    cpu_s: float


def node_noise(
    core: client.CoreV1Api, op: Operator, classes: list[Any], nodes: int, bare: bool
) -> Noise:
    """Status heartbeats (the kubelet) and GFD timestamp relabels on up to 500 nodes: the
    writes a fleet makes all the time, none of which may wake a CR."""
    picked = list(range(0, nodes, max(1, nodes // 500)))[:500]
    rec0 = op.metric_sum("inference_thresholds_reconciles_total")
    cpu0 = op.proc_figures()[1]
    began = time.perf_counter()

    def beat(i: int) -> None:
        status = {
            "status": {
                "conditions": realistic_status(i, classes[i % len(classes)], 60)["conditions"]
            }
        }
        core.patch_node_status(node_name(i), status, field_manager=MANAGER_KUBELET)
        stamp = {"metadata": {"labels": {"nvidia.com/gfd.timestamp": str(1767229200 + i)}}}
        core.patch_node(node_name(i), stamp, field_manager=MANAGER_NFD)

    bulk(beat, picked, workers=4)
    seconds = time.perf_counter() - began
    time.sleep(QUIET_S)  # the operator has no watchable state: give its watch time to drain
    return Noise(
        heartbeats=len(picked),
        relabels=0 if bare else len(picked),
        seconds=seconds,
        reconciles=op.metric_sum("inference_thresholds_reconciles_total") - rec0,
        cpu_s=op.proc_figures()[1] - cpu0,
    )


def role(op: Operator) -> str | None:
    """The replica's role from /healthz (raises if it exited)."""
    op.alive()
    found = op.health().get("role")
    return None if found is None else str(found)


@dataclass
class Failover:
    lease_s: float
    takeover_s: float
    redundant_cm: int
    redundant_cr: int
    api_writes: Counter[str]
    reconciles: float


def failover(
    kubeconfig: Path,
    workdir: Path,
    env: dict[str, str],
    tr: Tracker,
    custom: client.CustomObjectsApi,
    api: client.ApiClient,
    plans: list[CrPlan],
    namespace: str,
) -> Failover:
    """Two replicas; SIGKILL the leader; a spec change made at once must be served by the
    standby within the target, and nothing else may be rewritten."""
    lease_env = {
        **env,
        "INFERENCE_THRESHOLDS_OPERATOR_LEADER_ELECT": "true",
        "INFERENCE_THRESHOLDS_OPERATOR_LEASE_NAMESPACE": namespace,
        "INFERENCE_THRESHOLDS_OPERATOR_LEASE_NAME": LEASE,
    }
    first = Operator(kubeconfig, workdir, lease_env, "replica-a")
    second = Operator(kubeconfig, workdir, lease_env, "replica-b")
    try:
        first.start()
        ClusterAccess.eventually(
            lambda: role(first) == "leader", timeout=300, what="replica-a leading"
        )
        deadline = time.perf_counter() + 600
        while first.metric_sum("inference_thresholds_reconciles_total") < len(plans):
            first.alive()
            if time.perf_counter() > deadline:
                raise TimeoutError("replica-a: not every CR reconciled")
            time.sleep(0.2)  # polling the operator's own counter: it has no watchable state
        second.start()
        ClusterAccess.eventually(
            lambda: role(second) == "standby",
            timeout=300,
            what="replica-b standing by with its node index",
        )
        tr.quiet(QUIET_S)
        w0, a0 = Counter(tr.writes), apiserver_writes(api)
        p = plans[len(plans) // 2]
        killed = time.perf_counter()
        first.kill()
        obj = custom.patch_namespaced_custom_object(
            GROUP, VERSION, p.namespace, PLURAL, p.name,
            {"spec": {"context": {"workload": {"outputTokens": 4321}}}},
        )  # fmt: skip
        gen = int(obj["metadata"]["generation"])
        key = (p.namespace, p.config_map)
        lease_s = 0.0

        def served() -> bool:
            nonlocal lease_s
            if not lease_s and second.health().get("role") == "leader":
                lease_s = time.perf_counter() - killed
            return (cm := tr.cms.get(key)) is not None and cm.generation >= gen

        deadline = time.perf_counter() + 120
        while not served():
            second.alive()
            if time.perf_counter() > deadline:
                raise TimeoutError("failover: the spec change was not served within 120 s")
            time.sleep(0.05)  # polling the standby's /healthz and the watch's state
        takeover = tr.cms[key].at - killed
        deadline = time.perf_counter() + 600
        while second.metric_sum("inference_thresholds_reconciles_total") < len(plans):
            second.alive()
            if time.perf_counter() > deadline:
                raise TimeoutError("replica-b: not every CR reconciled")
            time.sleep(0.2)  # polling the operator's own counter
        tr.quiet(QUIET_S)
        writes = tr.writes - w0
        api_writes = apiserver_writes(api)
        api_writes.subtract(a0)
        return Failover(
            lease_s=lease_s,
            takeover_s=takeover,
            redundant_cm=writes["cm"] - 1,  # the change's own ConfigMap write
            redundant_cr=writes["cr"] - 2,  # the spec patch and its status write
            api_writes=+api_writes,
            reconciles=second.metric_sum("inference_thresholds_reconciles_total"),
        )
    finally:
        for op in (first, second):
            if op.proc is not None:
                op.stop()


def run_point(
    n: int,
    op: Operator,
    tr: Tracker,
    core: client.CoreV1Api,
    plans: list[CrPlan],
    reference: NodeIndex,
    classes: list[Any],
    bare: bool,
) -> dict[str, Any]:
    """One point of the curve: initial sync, idle, one relabel, node noise."""
    probe_ms = speed_probe(plans, reference.snapshot())
    log(f"{n} nodes: operator initial sync (speed probe {probe_ms:.2f} ms per CR)")
    plane0, own0, steal0 = control_plane_cpu(), time.process_time(), steal_seconds()
    writes0 = apiserver_writes(core.api_client)
    sync_s = initial_sync(op, tr, plans, timeout=900)
    rss_sync, cpu_sync = op.proc_figures()
    steal_sync = steal_seconds() - steal0
    plane_sync = {k: round(v - plane0.get(k, 0.0), 1) for k, v in control_plane_cpu().items()}
    plane_sync["benchmark"] = round(time.process_time() - own0, 1)  # its watches
    # Others' Node writes meanwhile (the operator writes none): a control plane still
    # catching up on the Nodes just created would load the same two cores.
    writes = apiserver_writes(core.api_client) - writes0
    node_writes_sync = sum(v for k, v in writes.items() if k.endswith(" nodes"))
    tr.quiet(QUIET_S)
    _, cpu_idle0 = op.proc_figures()
    idle_window = 10.0
    time.sleep(idle_window)  # measuring idle CPU over a fixed window
    cpu_idle = (op.proc_figures()[1] - cpu_idle0) / idle_window
    probe_after_ms = speed_probe(plans, reference.snapshot())
    log(
        f"{n} nodes: initial sync {sync_s:.1f} s (speed probe after it {probe_after_ms:.2f} "
        f"ms per CR, steal {steal_sync:.1f} s); node relabel"
    )
    rel = relabel(core, op, tr, plans, reference)
    log(f"{n} nodes: node noise")
    noise = node_noise(core, op, classes, n, bare)
    rss_peak, cpu_total = op.proc_figures()
    return {
        "nodes": n,
        "initial_sync_s": sync_s,
        "speed_probe_ms": probe_ms,
        "speed_probe_after_ms": probe_after_ms,
        "steal_sync_s": round(steal_sync, 1),
        "cpu_initial_sync_s": cpu_sync,
        "cpu_control_plane_sync_s": plane_sync,
        "node_writes_sync": node_writes_sync,
        "rss_after_sync_mib": rss_sync,
        "rss_peak_mib": rss_peak,
        "cpu_idle_millicores": cpu_idle * 1000,
        "cpu_run_s": cpu_total,
        "relabel": rel.__dict__,
        "noise": noise.__dict__,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--nodes", default="2000,5000,10000", help="node counts of the curve, ascending"
    )
    parser.add_argument("--crs", type=int, default=2000)
    parser.add_argument("--namespaces", type=int, default=20)
    parser.add_argument("--changes", type=int, default=100, help="spec changes to time")
    parser.add_argument("--floor-samples", type=int, default=30)
    parser.add_argument("--bare-nodes", action="store_true", help="Nodes without status (old)")
    parser.add_argument("--no-failover", action="store_true", help="skip the failover phase")
    parser.add_argument("--kubeconfig", help="use this cluster instead of starting one")
    parser.add_argument(
        "--operator-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra operator environment, e.g. INFERENCE_THRESHOLDS_OPERATOR_DEBOUNCE_SECONDS=0.2",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    env = dict(kv.split("=", 1) for kv in args.operator_env)
    points = sorted({int(n) for n in args.nodes.split(",")})

    t_total = time.perf_counter()
    classes = hardware_classes()
    reference = NodeIndex()  # what the operator should know, shared by shape like its own
    for i in range(points[-1]):
        body = node_object(i, classes) if args.bare_nodes else realistic_merged(i, classes)
        reference.apply(node_name(i), node_inputs(body))
    plans, compute_s, mean_classes = ready_plans(
        cr_plans(args.crs, args.namespaces, classes), reference.snapshot(), classes
    )
    log(f"{len(classes)} hardware classes; in-process make_plan for all CRs {compute_s:.2f} s")

    curve: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="operator-scale-") as tmp:
        workdir = Path(tmp)
        with cluster(args.kubeconfig, workdir) as kube, kube.api_client() as api:
            api.configuration.connection_pool_maxsize = 16
            core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
            install_crd(kube, client.ApiextensionsV1Api(api))
            namespaces = [namespace_name(k) for k in range(args.namespaces)]
            if core.list_node(label_selector=f"{BENCH_LABEL}=1", limit=1).items:
                raise SystemExit(
                    "this cluster holds a previous run's objects; remove them with: kubectl "
                    f"delete nodes -l {BENCH_LABEL}=1 && kubectl delete ns {' '.join(namespaces)}"
                )
            bulk(lambda ns: core.create_namespace({"metadata": {"name": ns}}), namespaces)
            tr = Tracker()
            watch_api = kube.api_client()
            wcore, wcustom = client.CoreV1Api(watch_api), client.CustomObjectsApi(watch_api)
            start_watch(
                wcore.list_config_map_for_all_namespaces,
                tr.on_cm,
                prune=tr.prune_cms,
                label_selector=MANAGED,
            )
            start_watch(
                wcore.list_config_map_for_all_namespaces, tr.on_floor, label_selector=FLOOR_LABEL
            )
            op = Operator(kube.kubeconfig, workdir, env)
            have, crs_s = 0, 0.0
            try:
                for n in points:
                    nodes_s = grow_nodes(core, have, n, classes, args.bare_nodes)
                    log(f"created nodes {have}..{n - 1} in {nodes_s:.1f} s")
                    have = n
                    if not crs_s:
                        crs_s = create_crs(custom, tr, plans)
                        log(f"created {len(plans)} CRs in {crs_s:.1f} s")
                        start_watch(
                            lambda **kw: wcustom.list_cluster_custom_object(
                                GROUP, VERSION, PLURAL, **kw
                            ),
                            tr.on_cr,
                        )
                    else:
                        renew_crs(custom, tr, plans, namespaces)
                        log(f"{len(plans)} CRs deleted and created again")
                    point = run_point(n, op, tr, core, plans, reference, classes, args.bare_nodes)
                    point["create_nodes_s"] = nodes_s
                    curve.append(point)
                    # Each finished point in the log: an interrupted run keeps its curve.
                    log(f"{n} nodes: point {json.dumps(point, default=str)}")
                    if n != points[-1]:
                        op.stop()
                sizes = node_sizes(api)
                log(f"floors and {args.changes} spec changes")
                api_lat = api_floor(core, tr, namespaces[0], args.floor_samples)
                kubectl_lat = kubectl_floor(kube, tr, namespaces[0], args.floor_samples)
                cpu0 = op.proc_figures()[1]
                change_lat = spec_changes(custom, tr, plans, args.changes)
                cpu_changes = op.proc_figures()[1] - cpu0
                tr.quiet(QUIET_S)
                rss_first = op.proc_figures()[0]
                log("operator restart")
                rs = restart(op, tr, api, len(plans))
                rss_restart = op.proc_figures()[0]
                op.stop()
                fo = None
                if not args.no_failover:
                    log("failover: two replicas, the leader killed")
                    fo = failover(
                        kube.kubeconfig, workdir, env, tr, custom, api, plans, namespaces[0]
                    )
            finally:
                if op.proc is not None:
                    op.stop()
                STOPPING.set()
            if args.kubeconfig:
                log("cleaning up (namespaces, nodes)")
                # Objects an older operator version finalized would hold their namespaces
                # now that it is stopped: take any finalizer off first.
                unfinalize = {"metadata": {"finalizers": None}}
                bulk(
                    lambda p: custom.patch_namespaced_custom_object(
                        GROUP, VERSION, p.namespace, PLURAL, p.name, unfinalize
                    ),
                    plans,
                )
                bulk(lambda ns: core.delete_namespace(ns), namespaces)
                core.delete_collection_node(label_selector=f"{BENCH_LABEL}=1")

    last = curve[-1]
    figures: dict[str, Any] = {
        "crs": len(plans),
        "namespaces": args.namespaces,
        "hardware_classes": len(classes),
        "mean_classes_per_cr": round(mean_classes, 2),
        "realistic_nodes": not args.bare_nodes,
        "node_json_bytes": sizes,
        "operator_env": env,
        "create_crs_s": crs_s,
        "inprocess_make_plan_all_s": compute_s,
        "curve": curve,
        "change_p50_s": statistics.median(change_lat),
        "change_p99_s": pct(change_lat, 0.99),
        "change_max_s": max(change_lat),
        "api_floor_p50_s": statistics.median(api_lat),
        "api_floor_p99_s": pct(api_lat, 0.99),
        "kubectl_floor_p50_s": statistics.median(kubectl_lat),
        "kubectl_floor_p99_s": pct(kubectl_lat, 0.99),
        "cpu_per_change_ms": cpu_changes / args.changes * 1000,
        "restart": {**rs.__dict__, "api_writes": dict(rs.api_writes)},
        "failover": None if fo is None else {**fo.__dict__, "api_writes": dict(fo.api_writes)},
        "rss_first_run_mib": max(rss_first, last["rss_peak_mib"]),
        "rss_restarted_mib": rss_restart,
        "rss_peak_mib": max(rss_first, rss_restart, *(c["rss_peak_mib"] for c in curve)),
        "total_s": time.perf_counter() - t_total,
        "rss_series": op.rss_series,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=str) + "\n")
    verdicts = print_table(figures)
    return 0 if all(verdicts.values()) else 1


def operator_writes(counts: Counter[str]) -> dict[str, int]:
    """The writes to resources the operator writes (Nodes: only other controllers do;
    Leases: the election's own renewals)."""
    return {k: v for k, v in counts.items() if not k.endswith((" nodes", " leases"))}


def _others(cpu: Mapping[str, float] | None) -> str:
    """The control plane's and the benchmark's CPU in a phase, e.g. 'kube-apiserver 70 s'."""
    if not cpu:
        return "-"
    return ", ".join(f"{name} {seconds:.0f} s" for name, seconds in cpu.items())


def _probe(before: float | None, after: float | None = None) -> str:
    """The speed probe before (and after) the sync, e.g. '6.05 / 5.91 ms/CR'."""
    if before is None:
        return "-"
    return f"{before:.2f}{'' if after is None else f' / {after:.2f}'} ms/CR"


def _steal(seconds: float | None) -> str:
    return "" if seconds is None else f"; steal {seconds:.1f} s"


def _node_writes(count: int | None) -> str:
    return "" if count is None else f"; others' Node writes {count:,}"


def print_table(f: dict[str, Any]) -> dict[str, bool]:
    """The curve and the last point's figures as Markdown; returns the target verdicts."""

    def ms(s: float) -> str:
        return f"{s * 1000:.0f} ms"

    def ok(good: bool) -> str:
        return "OK" if good else "MISSED"

    curve, last = f["curve"], f["curve"][-1]
    rs, fo = f["restart"], f["failover"]
    ours = operator_writes(Counter(rs["api_writes"]))
    api_writes = ", ".join(f"{k} {v}" for k, v in sorted(ours.items())) or "none"
    node_writes = sum(v for k, v in rs["api_writes"].items() if k.endswith(" nodes"))
    kubectl_bound = f["kubectl_floor_p99_s"] * TARGET_VS_KUBECTL
    verdicts = {
        "rss": f["rss_peak_mib"] < TARGET_RSS_MIB,
        "sync": last["initial_sync_s"] < TARGET_SYNC_S,
        "latency": f["change_p99_s"] <= kubectl_bound,
        "restart": rs["cm_writes"] + rs["cr_writes"] == 0 and not ours,
    }
    sizes = f["node_json_bytes"]
    kind = "realistic" if f["realistic_nodes"] else "bare (no status)"
    print(
        f"operator at scale: {kind} Nodes ({sizes['full'] / 1024:.1f} KB of JSON each, "
        f"{sizes['metadata'] / 1024:.1f} KB of it metadata with managedFields; "
        f"{f['hardware_classes']} hardware classes), {f['crs']} InferenceThresholds in "
        f"{f['namespaces']} namespaces (mean {f['mean_classes_per_cr']} classes per CR)"
    )
    if f["operator_env"]:
        print(f"operator env: {f['operator_env']}")
    print()
    print("How cost grows with the node count (CRs fixed):")
    print()
    print(
        "| nodes | create nodes | initial sync | speed probe before / after | CPU in sync | "
        "other CPU in sync | "
        "peak RSS | idle CPU | relabel: CRs / reconciles / time | "
        "node noise: writes / reconciles / CPU |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for c in curve:
        rel, noise = c["relabel"], c["noise"]
        writes = noise["heartbeats"] + noise["relabels"]
        print(
            f"| {c['nodes']:,} | {c['create_nodes_s']:.0f} s | {c['initial_sync_s']:.1f} s | "
            f"{_probe(c.get('speed_probe_ms'), c.get('speed_probe_after_ms'))} | "
            f"{c['cpu_initial_sync_s']:.1f} s | {_others(c.get('cpu_control_plane_sync_s'))}"
            f"{_node_writes(c.get('node_writes_sync'))}{_steal(c.get('steal_sync_s'))} | "
            f"{c['rss_peak_mib']:.0f} MiB | "
            f"{c['cpu_idle_millicores']:.0f} mCPU | {rel['expected']} / "
            f"{rel['reconciles']:.0f} / {ms(rel['seconds'])} | {writes} / "
            f"{noise['reconciles']:.0f} / {noise['cpu_s'] * 1000:.0f} ms |"
        )
    print()
    print(f"At {last['nodes']:,} nodes:")
    print()
    print("| figure | value | target / anchor |")
    print("|---|---|---|")
    rows = [
        ("setup: create CRs", f"{f['create_crs_s']:.1f} s", ""),
        (
            "initial sync (start until all Ready=True + ConfigMap)",
            f"{last['initial_sync_s']:.1f} s",
            f"< {TARGET_SYNC_S:.0f} s: {ok(verdicts['sync'])}; engine+plan alone, in-process: "
            f"{f['inprocess_make_plan_all_s']:.1f} s",
        ),
        (
            "CR spec change -> ConfigMap p50 / p99 / max",
            f"{ms(f['change_p50_s'])} / {ms(f['change_p99_s'])} / {ms(f['change_max_s'])}",
            f"p99 <= {TARGET_VS_KUBECTL}x kubectl apply p99 = {ms(kubectl_bound)}: "
            f"{ok(verdicts['latency'])}",
        ),
        (
            "floor: API PATCH -> watch event p50 / p99",
            f"{ms(f['api_floor_p50_s'])} / {ms(f['api_floor_p99_s'])}",
            "same run",
        ),
        (
            "floor: kubectl apply -> watch event p50 / p99",
            f"{ms(f['kubectl_floor_p50_s'])} / {ms(f['kubectl_floor_p99_s'])}",
            "same run",
        ),
        ("operator CPU per spec change", f"{f['cpu_per_change_ms']:.0f} ms", ""),
        (
            f"node relabel ({last['relabel']['node']}): reconciles / ConfigMap / status writes",
            f"{last['relabel']['reconciles']:.0f} / {last['relabel']['cm_writes']} / "
            f"{last['relabel']['cr_writes']}",
            f"ideal {last['relabel']['expected']} each; last ConfigMap after "
            f"{ms(last['relabel']['seconds'])}",
        ),
        (
            "restart: resync (start until every CR reconciled)",
            f"{rs['resync_s']:.1f} s",
            f"reconciles {rs['reconciles']:.0f}; stop took {rs['stop_s']:.1f} s",
        ),
        (
            "restart: API writes (watch: ConfigMaps / CRs; apiserver_request_total)",
            f"{rs['cm_writes']} / {rs['cr_writes']}; {api_writes}",
            f"target 0: {ok(verdicts['restart'])}; Node writes meanwhile {node_writes} "
            "(controller-manager's TTL annotation)",
        ),
    ]
    if fo is not None:
        fo_ours = operator_writes(Counter(fo["api_writes"]))
        redundant = fo["redundant_cm"] + fo["redundant_cr"]
        verdicts["failover"] = fo["takeover_s"] < TARGET_TAKEOVER_S and redundant == 0
        rows += [
            (
                "failover: leader SIGKILLed -> standby holds the Lease / serves a spec change",
                f"{fo['lease_s']:.1f} s / {fo['takeover_s']:.1f} s",
                f"< {TARGET_TAKEOVER_S:.0f} s: {ok(fo['takeover_s'] < TARGET_TAKEOVER_S)}",
            ),
            (
                "failover: redundant writes (ConfigMaps / CRs beyond the change's own)",
                f"{fo['redundant_cm']} / {fo['redundant_cr']}",
                f"target 0: {ok(redundant == 0)}; apiserver writes: "
                + (", ".join(f"{k} {v}" for k, v in sorted(fo_ours.items())) or "none"),
            ),
        ]
    rows += [
        (
            "operator peak RSS (whole run / restarted run)",
            f"{f['rss_peak_mib']:.0f} / {f['rss_restarted_mib']:.0f} MiB",
            f"< {TARGET_RSS_MIB} MiB: {ok(verdicts['rss'])}",
        ),
        ("benchmark wall time", f"{f['total_s']:.0f} s", ""),
    ]
    for row in rows:
        print(f"| {row[0]} | {row[1]} | {row[2]} |")
    return verdicts


if __name__ == "__main__":
    sys.exit(main())
