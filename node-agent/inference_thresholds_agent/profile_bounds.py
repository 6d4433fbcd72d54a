"""A detected profile within the profile model's bounds: what cannot be, dropped and named.

Detection reads files, NVML and PCI ids the agent does not control (a container runtime
or a faulty driver can put anything there). Readers clean names where they read them;
numbers are checked here once, against the same limits the operator applies
(``api/hardware.py``): a value out of bounds is left out (a device missing its identity
is left out whole) and a note says what and why, so one absurd reading never stops the
agent from publishing the rest.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from inference_thresholds.api import HardwareProfile
from inference_thresholds.api.errors import field_errors
from inference_thresholds.api.hardware import DEVICE_GROUPS_MAX, ISA_MAX

_DEVICE_LISTS = ("gpus", "accelerators")
_REQUIRED_IN_DEVICE = ("vendor", "product", "count")
_LIST_LIMITS = {"isa": ISA_MAX, "gpus": DEVICE_GROUPS_MAX, "accelerators": DEVICE_GROUPS_MAX}
_MAX_ROUNDS = 64


def fit_profile(raw: HardwareProfile) -> tuple[HardwareProfile, list[str]]:
    """``raw`` (built with ``model_construct``: unchecked) validated, minus what is out of
    bounds; the notes name each value left out."""
    data: dict[str, Any] = raw.model_dump(by_alias=True)  # errors then name wire keys
    notes: list[str] = []
    for _ in range(_MAX_ROUNDS):
        try:
            return HardwareProfile.model_validate(data), notes
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            where, why = next(field_errors(exc))
            notes.append(f"left out {where}: {why}")
            _drop(data, tuple(err["loc"]))
    # Unreachable with the model as it is (each round removes one value); still bounded.
    return HardwareProfile(source=raw.source), [*notes, "profile left empty: too many errors"]


def _drop(data: dict[str, Any], loc: tuple[Any, ...]) -> None:
    """Remove the value at ``loc``: an optional field becomes None, a list item goes, a
    device without its identity goes whole, an over-long list is cut."""
    if len(loc) >= 3 and loc[0] in _DEVICE_LISTS and isinstance(loc[1], int):
        devices = data[loc[0]]
        if loc[2] in _REQUIRED_IN_DEVICE or len(loc) > 3:
            del devices[loc[1]]
        else:
            devices[loc[1]][loc[2]] = None
        return
    parent: Any = data
    for key in loc[:-1]:
        parent = parent[key]
    leaf = loc[-1]
    if isinstance(parent, list):
        del parent[leaf]
    elif isinstance(parent.get(leaf), list):
        del parent[leaf][_LIST_LIMITS.get(leaf, 0) :]
    else:
        parent[leaf] = None
