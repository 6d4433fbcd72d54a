"""The operator's node watch on the real apiserver: a realistic Node (status, images,
conditions) is kept as labels + hardware; status-only writes change nothing; a watch the
server ends is resumed from its resourceVersion without a new list; metadata-only mode
reads PartialObjectMetadata."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from operator_harness import Cluster, unique

from inference_thresholds.controller.kube import Kube, make_api_client
from inference_thresholds.controller.node_index import NodeRecord
from inference_thresholds.controller.node_watch import NodeWatch
from inference_thresholds_dev.cluster.access import ClusterAccess

POOL = "test.inference.dev/pool"


async def _until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.05)


def _status_heartbeat(cluster: Cluster, name: str, n: int) -> None:
    cluster.core.patch_node_status(
        name,
        {
            "status": {
                "images": [
                    {"names": [f"registry.example/team/image-{i}:v{n}"], "sizeBytes": 10**8 + i}
                    for i in range(40)
                ],
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": f"heartbeat {n}",
                        "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                        "lastTransitionTime": "2026-01-01T00:00:00Z",
                    }
                ],
            }
        },
    )


def test_watch_keeps_labels_and_hardware_resumes_and_ignores_status_noise(
    kube: ClusterAccess, cluster: Cluster
) -> None:
    pool = unique("nw")
    name = f"{pool}-a"
    cluster.create_node(name, {POOL: pool}, resources={"nvidia.com/gpu": "4"})
    changes: list[tuple[NodeRecord | None, NodeRecord | None]] = []

    async def scenario() -> dict[str, Any]:
        full = NodeWatch(Kube(make_api_client(str(kube.kubeconfig))), watch_seconds=(2, 2))
        meta = NodeWatch(
            Kube(make_api_client(str(kube.kubeconfig))), metadata_only=True, watch_seconds=(2, 2)
        )
        await full.start()
        await meta.start()
        full.listener = lambda change: changes.append((change.old, change.new))
        try:
            rec = full.index[name]
            assert rec.labels[POOL] == pool
            assert rec.hardware.profile.gpus and rec.hardware.profile.gpus[0].count == 4
            assert not meta.index[name].hardware.profile.gpus  # resources unseen
            # status-only writes (kubelet heartbeats, image lists) change nothing we read
            for n in range(3):
                await asyncio.to_thread(_status_heartbeat, cluster, name, n)
            await asyncio.to_thread(cluster.label_node, name, {POOL: pool + "-b"})
            await _until(lambda: full.index[name].labels[POOL] == pool + "-b", "relabel seen")
            await _until(lambda: meta.index[name].labels[POOL] == pool + "-b", "relabel (meta)")
            # the server ends each watch after 2 s: it is resumed, not listed again
            await _until(lambda: full.counts.watches >= 3, "watch resumed twice", 20)
            await asyncio.to_thread(cluster.label_node, name, {POOL: pool + "-c"})
            await _until(lambda: full.index[name].labels[POOL] == pool + "-c", "relabel after")
            await asyncio.to_thread(cluster.delete_node, name)
            await _until(lambda: name not in full.index, "deletion seen")
            return {"full": full.counts, "meta": meta.counts}
        finally:
            full.stop()
            meta.stop()

    counts = asyncio.run(scenario())
    assert counts["full"].lists == 1 and counts["meta"].lists == 1
    assert counts["full"].errors == 0
    mine = [(o, n) for o, n in changes if (o or n) is not None and (o or n).name == name]  # type: ignore[union-attr]
    # exactly: relabel, relabel, delete; the heartbeats were dropped on arrival
    assert [(o.labels[POOL] if o else None, n.labels[POOL] if n else None) for o, n in mine] == [
        (pool, pool + "-b"),
        (pool + "-b", pool + "-c"),
        (pool + "-c", None),
    ]
