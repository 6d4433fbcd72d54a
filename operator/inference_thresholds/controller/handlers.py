"""kopf registration, and nothing else: each handler hands explicit parameters to a module.

| handler            | does                                              | in                  |
| ------------------ | ------------------------------------------------- | ------------------- |
| startup / cleanup  | build / release the shared ``OperatorState``      | ``lifecycle.py``    |
| login              | kopf's credentials = ours                         | ``lifecycle.py``    |
| CM                 | wake the CRs a change affects                     | ``wakeups.py``      |
| CR                 | start/stop its loops (reconcile, adaptation)      | ``cr_tasks.py``     |

No daemons and no change handlers: kopf then needs no finalizer on the CRs (see
``cr_tasks.py``). Nodes are not watched through kopf: ``node_watch.py`` lists and watches
them (cut down to what the operator reads) and wakes the affected CRs. Event handlers
are coroutines so they run on the loop that owns the CRs' triggers.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from ..api.crd import GROUP, PLURAL, VERSION
from . import cr_tasks, lifecycle, wakeups
from .configmap import MANAGED_BY, MANAGED_BY_LABEL
from .operator_state import OperatorState
from .settings import apply_kopf_settings, current

_STATE = lifecycle.STATE  # the memo key
EVENT_HANDLERS = ("resource_changed", "configmap_changed")
NODE_WATCH = "node_watch"  # memo key of a node watch started before kopf (optional)
ELECTOR = "leader_elector"  # memo key of the leader elector (optional): guards our writes


def _state(memo: Any) -> OperatorState | None:
    state: OperatorState | None = memo.get(_STATE)
    return state


class QuietEventHandlers(logging.Filter):
    """Drops kopf's "Handler '<event handler>' succeeded." lines: our event handlers run on
    every watch event, our own writes' echoes included (three lines per reconcile at
    2,000 CRs, each formatted and written); their failures are still logged."""

    SUCCEEDED = frozenset(f"Handler '{name}' succeeded." for name in EVENT_HANDLERS)

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno != logging.INFO or record.getMessage() not in self.SUCCEEDED


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    apply_kopf_settings(settings)
    objects_log = logging.getLogger("kopf.objects")
    if not any(isinstance(f, QuietEventHandlers) for f in objects_log.filters):
        objects_log.addFilter(QuietEventHandlers())
    # Only our ConfigMaps are watched (server-side filter): drift detection stays cheap.
    settings.watching.label_selectors["v1", "configmaps"] = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
    memo[_STATE] = await lifecycle.start(current(), memo.get(NODE_WATCH), memo.get(ELECTOR))


@kopf.on.login()
def login(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo:
    return lifecycle.connection_info(current().kubeconfig, settings.networking.trust_env)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    if (state := _state(memo)) is not None:
        await cr_tasks.stop_all(state)
        lifecycle.stop(state)


@kopf.on.probe(id="policy")
def probe_policy(memo: kopf.Memo, **_: Any) -> dict[str, Any]:
    state = _state(memo)
    return state.policy.describe() if state is not None else {}


@kopf.on.probe(id="work")
def probe_work(memo: kopf.Memo, **_: Any) -> dict[str, Any]:
    state = _state(memo)
    return lifecycle.health(state) if state is not None else {}


@kopf.on.event(GROUP, VERSION, PLURAL)
async def resource_changed(
    type: str | None,
    namespace: str | None,
    name: str,
    body: kopf.Body,
    memo: Any,
    logger: Any,
    **_: Any,
) -> None:
    if (state := _state(memo)) is not None:
        cr_tasks.resource_event(state, (namespace or "", name), type, body, logger)


@kopf.on.event("v1", "configmaps", labels={MANAGED_BY_LABEL: MANAGED_BY})
async def configmap_changed(
    type: str, body: kopf.Body, namespace: str | None, memo: Any, **_: Any
) -> None:
    if (state := _state(memo)) is not None:
        wakeups.configmap_changed(state, namespace or "", body, deleted=type == "DELETED")
