"""The node agent <-> operator contract: what the agent writes on a Node, what the operator reads.

The agent (``inference_thresholds_agent.labels``/``publisher``) writes and the operator
(``controller.hardware_source``) reads these keys; both import them from here, as NFD's
worker and master share one ``api`` package. Also here: the Kubernetes syntax of label
keys and values (one copy, used by the CRD's selectors, alert-rule labels and ConfigMap
labels too) and resource quantities (``status.allocatable``), parsed by the kubernetes
library's own parser.

Imports only the standard library: the agent, the engine and the pod-side client load it
without the kubernetes client.
"""

from __future__ import annotations

import importlib.util
import math
import re
from collections.abc import Callable
from decimal import Decimal
from functools import cache
from pathlib import Path

LABEL_PREFIX = "hw.inference.dev/"
"""Every label the agent publishes starts with this (the admission policy allows no other)."""

PROFILE_ANNOTATION = LABEL_PREFIX + "profile"
"""The full HardwareProfile as canonical JSON; the operator prefers it over any label."""

OWNED_LABELS_ANNOTATION = LABEL_PREFIX + "owned-labels"
"""Comma-separated label keys the agent published last (it removes only these)."""

AGENT_ANNOTATIONS = (PROFILE_ANNOTATION, OWNED_LABELS_ANNOTATION)
"""Every annotation the agent writes: ``node-agent prune`` removes exactly these (and the
labels listed in the owned-labels annotation)."""

# --- Kubernetes label syntax --------------------------------------------------------------

LABEL_VALUE_MAX = 63
LABEL_NAME_PATTERN = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
"""The name part of a label key (after an optional ``prefix/``): 1-63 characters."""

LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    rf"{LABEL_NAME_PATTERN}$"
)
"""A qualified label key: optional DNS-subdomain prefix and ``/``, then a name."""

RESOURCE_NAME_PATTERN = (
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/"
    rf"{LABEL_NAME_PATTERN}$"
)
"""An extended resource name (``nvidia.com/mig-1g.10gb``): a domain prefix is required."""

LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"
"""A label value: empty, or 1-63 characters of ``[A-Za-z0-9._-]`` with alphanumeric ends."""

_LABEL_NAME = re.compile(rf"^{LABEL_NAME_PATTERN}$")
_LABEL_VALUE = re.compile(LABEL_VALUE_PATTERN)


def valid_label_name(name: str) -> bool:
    return bool(_LABEL_NAME.fullmatch(name))


def valid_label_value(value: str) -> bool:
    return bool(_LABEL_VALUE.fullmatch(value))


# --- resource quantities --------------------------------------------------------------------


@cache
def _library_parser() -> Callable[[str], Decimal]:
    """``kubernetes.utils.quantity.parse_quantity``, without importing the kubernetes package.

    ``import kubernetes`` loads the whole generated client (35 MiB RSS), past the agent's
    memory budget; ``quantity.py`` itself needs only ``decimal``, so it is loaded on its own.
    """
    spec = importlib.util.find_spec("kubernetes")  # locates the package, runs nothing
    locations = list(spec.submodule_search_locations or []) if spec else []
    source = Path(locations[0], "utils", "quantity.py") if locations else None
    if source is None or not source.is_file():
        raise ModuleNotFoundError(
            "parsing Kubernetes quantities needs the kubernetes package: "
            "pip install 'inference-thresholds[operator]' (or [agent])",
            name="kubernetes",
        )
    module_spec = importlib.util.spec_from_file_location(
        "inference_thresholds.api._kubernetes_quantity", source
    )
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    parse: Callable[[str], Decimal] = module.parse_quantity
    return parse


def parse_quantity(text: str) -> Decimal:
    """A Kubernetes resource quantity ('16', '15500m', '65843168Ki', '64Gi') as a number.

    Node status is read from the cluster, so it is hostile until bounded: anything the
    library rejects, and what it passes through that no float holds (NaN, infinities,
    1e999), raise ``ValueError``.
    """
    try:
        value = _library_parser()(text.strip())
    except (ValueError, ArithmeticError):
        raise ValueError(f"not a Kubernetes quantity: {text!r}") from None
    if not math.isfinite(float(value)):
        raise ValueError(f"not a Kubernetes quantity: {text!r}")
    return value


def cpu_cores(quantity: str | None) -> float | None:
    """A CPU quantity ('3920m', '4') as cores; None when absent or not a quantity."""
    if not quantity:
        return None
    try:
        return float(parse_quantity(quantity))
    except ValueError:
        return None
