"""kopf registration, and nothing else: each handler hands explicit parameters to a module.

| handler            | does                                              | in                  |
| ------------------ | ------------------------------------------------- | ------------------- |
| startup / cleanup  | build / release the shared ``OperatorState``      | ``lifecycle.py``    |
| login              | kopf's credentials = ours                         | ``lifecycle.py``    |
| CR / CM            | wake the CRs a change affects                     | ``wakeups.py``      |
| ``reconciler``     | one loop per CR: plan, ConfigMap, status, Events  | ``reconcile_loop``  |
| ``adaptation``     | one loop per adapting CR: Prometheus -> state     | ``adaptation_loop`` |

Nodes are not watched through kopf: ``node_watch.py`` lists and watches them (cut down to
what the operator reads) and wakes the affected CRs. Event handlers are coroutines so they
run on the loop that owns the CRs' triggers.
"""

from __future__ import annotations

from typing import Any

import kopf

from ..api.crd import GROUP, PLURAL, VERSION
from . import adaptation_loop, lifecycle, reconcile_loop, wakeups
from .configmap import MANAGED_BY, MANAGED_BY_LABEL
from .events import kopf_poster
from .operator_state import OperatorState
from .settings import apply_kopf_settings, current

_STATE = "operator_state"  # the memo key
NODE_WATCH = "node_watch"  # memo key of a node watch started before kopf (optional)
ELECTOR = "leader_elector"  # memo key of the leader elector (optional): guards our writes


def _state(memo: Any) -> OperatorState | None:
    state: OperatorState | None = memo.get(_STATE)
    return state


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    apply_kopf_settings(settings)
    # Only our ConfigMaps are watched (server-side filter): drift detection stays cheap.
    settings.watching.label_selectors["v1", "configmaps"] = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
    memo[_STATE] = await lifecycle.start(current(), memo.get(NODE_WATCH), memo.get(ELECTOR))


@kopf.on.login()
def login(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo:
    return lifecycle.connection_info(current().kubeconfig, settings.networking.trust_env)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    if (state := _state(memo)) is not None:
        lifecycle.stop(state)


@kopf.on.probe(id="policy")
def probe_policy(memo: kopf.Memo, **_: Any) -> dict[str, Any]:
    state = _state(memo)
    return state.policy.describe() if state is not None else {}


@kopf.on.event(GROUP, VERSION, PLURAL)
async def resource_changed(
    namespace: str | None, name: str, meta: kopf.Meta, status: kopf.Status, memo: Any, **_: Any
) -> None:
    if (state := _state(memo)) is not None:
        wakeups.resource_changed(state, (namespace or "", name), meta, status)


@kopf.on.event("v1", "configmaps", labels={MANAGED_BY_LABEL: MANAGED_BY})
async def configmap_changed(
    type: str, body: kopf.Body, namespace: str | None, memo: Any, **_: Any
) -> None:
    if (state := _state(memo)) is not None:
        wakeups.configmap_changed(state, namespace or "", body, deleted=type == "DELETED")


@kopf.daemon(GROUP, VERSION, PLURAL, id="reconciler", cancellation_timeout=10.0)
async def reconciler(
    body: kopf.Body,
    namespace: str | None,
    name: str,
    stopped: kopf.DaemonStopped,
    memo: Any,
    logger: Any,
    **_: Any,
) -> None:
    state = memo[_STATE]
    post = kopf_poster(body, logger)
    await reconcile_loop.run(state, (namespace or "", name), body, stopped, post, logger)


# cancellation_backoff: on a stop the loop exits itself (stopped.wait) and its finally
# block can still delete the PrometheusRule before kopf resorts to cancelling the task.
@kopf.daemon(
    GROUP,
    VERSION,
    PLURAL,
    id="adaptation",
    when=adaptation_loop.wanted,
    cancellation_backoff=5.0,
    cancellation_timeout=10.0,
)
async def adaptation(
    body: kopf.Body,
    namespace: str | None,
    name: str,
    uid: str,
    stopped: kopf.DaemonStopped,
    memo: kopf.Memo,
    logger: Any,
    **_: Any,
) -> None:
    state = memo[_STATE]
    # The CRD is namespaced; kopf's types allow None.
    await adaptation_loop.run(
        state, body, namespace or "default", name, uid, stopped, kopf_poster(body, logger)
    )
