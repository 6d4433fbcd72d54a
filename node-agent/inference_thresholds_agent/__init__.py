"""The inference-thresholds node agent: hardware detection and hw.inference.dev/ node labels.

Modules: ``sources`` (file reads under a root), ``cpu``, ``cgroups``, ``memory``,
``nvidia`` (NVML behind a protocol), ``pci`` (accelerator tables), ``profile`` (one
detection pass -> HardwareProfile), ``labels``, ``publisher`` (patch the own Node on
change), ``kube_rest`` (the slim Node client), ``agent`` (loop, health, metrics),
``admission`` (the ValidatingAdmissionPolicy loader), ``snapshot`` (fixture recorder).

``detect_profile(root="/", probe_bandwidth=False)`` is the entry the engine's
``compute --local`` uses.
"""

from .profile import detect_profile

__all__ = ["detect_profile"]
