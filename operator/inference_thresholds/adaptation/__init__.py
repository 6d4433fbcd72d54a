"""Runtime adaptation: learn thresholds from observed performance, bounded and explained.

Pure parts (no kopf, no kubernetes): PromQL presets, a Prometheus HTTP API client,
decayed aggregation with confidence, the tightening rule, per-interval state
transitions kept in ``status.adaptation``, and alert-rule generation. The operator's
adaptation loop (``controller/adaptation_loop.py``) and planning step
(``controller/plan_adaptation.py``) wire them to CRs.
"""

from ..api.adaptation import AdaptationSpec, AdaptationStatus
from .state import Move, Observation, advance, apply, basis_from, fetch, rebase

__all__ = [
    "AdaptationSpec",
    "AdaptationStatus",
    "Move",
    "Observation",
    "advance",
    "apply",
    "basis_from",
    "fetch",
    "rebase",
]
