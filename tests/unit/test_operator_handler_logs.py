"""kopf's per-event "Handler ... succeeded." lines for our event handlers are dropped;
everything else kopf logs about objects (failures, other handlers) is kept."""

from __future__ import annotations

import logging

from kopf._core.intents.registries import get_callable_id

from inference_thresholds.controller import handlers


def _record(message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("kopf.objects", level, __file__, 1, message, None, None)


def test_event_handler_successes_are_dropped_and_nothing_else() -> None:
    quiet = handlers.QuietEventHandlers()
    for fn in (handlers.resource_changed, handlers.configmap_changed):
        # the name kopf gives the handler is the one the filter knows
        assert not quiet.filter(_record(f"Handler '{get_callable_id(fn)}' succeeded."))
    assert quiet.filter(_record("Handler 'resource_changed' failed with an exception.", 40))
    assert quiet.filter(_record("Handler 'startup' succeeded."))
    assert quiet.filter(_record("ConfigMapWritten: created ConfigMap demo-thresholds"))
