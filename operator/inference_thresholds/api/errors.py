"""pydantic validation errors as messages that name the field, one helper for every reader."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError


def field_errors(exc: ValidationError) -> Iterator[tuple[str, str]]:
    """(dotted field path, message) per error; '' for the document itself.

    Validator wrappers (``function-after[...]``) are not fields and are left out of the
    path; pydantic's "Value error, " prefix says nothing a reader needs.
    """
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        yield loc, str(err["msg"]).removeprefix("Value error, ") + _hint(err)


def _hint(err: Any) -> str:
    # The two mistakes people make in hand-written documents, with the way out.
    if err["type"] == "extra_forbidden":
        return " (unknown field: check spelling and unit suffix, e.g. bandwidthGBps, totalMiB)"
    if err["type"] == "enum":
        return f" (got {err.get('input')!r})"
    return ""


def validation_message(exc: ValidationError, root: str) -> str:
    """One clause per error, each naming the field: 'spec.model.parametersBillion: ...'."""
    return "; ".join(
        f"{root}.{loc}: {msg}" if loc else f"{root}: {msg}" for loc, msg in field_errors(exc)
    )
