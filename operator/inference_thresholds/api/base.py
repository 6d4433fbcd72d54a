"""The wire conventions every API model shares."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

# Units keep their conventional casing in keys: totalMiB, bandwidthGBps, maxFrequencyMHz.
_UNIT_CASE = {"Mib": "MiB", "Gbps": "GBps", "Mhz": "MHz"}
_UNIT_RE = re.compile(r"(Mib|Gbps|Mhz)(?=[A-Z]|$)")


def wire_alias(name: str) -> str:
    """snake_case field name -> camelCase wire key, with unit casing preserved."""
    return _UNIT_RE.sub(lambda m: _UNIT_CASE[m.group(1)], to_camel(name))


class WireModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields and NaN/inf rejected.

    Forbidding unknown fields turns unit typos (``bandwidthGBs``) into errors that
    name the field instead of silently dropping a value.
    """

    model_config = ConfigDict(
        alias_generator=wire_alias,
        populate_by_name=True,
        extra="forbid",
        allow_inf_nan=False,
        use_enum_values=False,
        validate_default=True,
    )

    def wire(self) -> dict[str, object]:
        """The camelCase JSON-compatible form, without unset optional fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
