"""``inference_thresholds_build_info``: which build is running, as Prometheus users expect.

A gauge fixed at 1 whose labels carry the versions (the ``*_build_info`` convention of
Prometheus, kube-state-metrics, NFD): ``version`` (this package), ``python`` and, for the
operator, ``kopf``. Versions come from package metadata, so nothing heavy is imported.
"""

from __future__ import annotations

import platform
from importlib import metadata

from prometheus_client import CollectorRegistry, Gauge

from . import __version__

METRIC = "inference_thresholds_build_info"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def build_labels(*packages: str) -> dict[str, str]:
    """{"version": ours, "python": X.Y.Z, <package>: its version, ...}."""
    labels = {"version": __version__, "python": platform.python_version()}
    labels.update({package: _version(package) for package in packages})
    return labels


def register_build_info(registry: CollectorRegistry, *packages: str) -> dict[str, str]:
    """Add the gauge to ``registry`` (e.g. ``"kopf"`` for the operator); returns its labels."""
    labels = build_labels(*packages)
    gauge = Gauge(
        METRIC,
        "Build information: version of inference-thresholds, Python and frameworks (always 1).",
        list(labels),
        registry=registry,
    )
    gauge.labels(**labels).set(1)
    return labels
