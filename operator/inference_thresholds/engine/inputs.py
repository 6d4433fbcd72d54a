"""Reading engine inputs from YAML/JSON files, with errors that name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from ..api.errors import field_errors

M = TypeVar("M", bound=BaseModel)


class InputError(ValueError):
    """A bad input document; the message names file, field and fix."""


def read_yaml_file(path: str | Path) -> Any:
    """A YAML or JSON file's content; unreadable or malformed files as ``InputError``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from exc
    try:
        return yaml.safe_load(text)  # YAML is a superset of JSON
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML/JSON ({exc})") from exc


def describe_errors(exc: ValidationError, origin: str) -> str:
    """One line per error: '<file>: <field>: <what is wrong> (<hint>)'."""
    return "\n".join(f"{origin}: {loc or '(document)'}: {msg}" for loc, msg in field_errors(exc))


def parse(model: type[M], data: Any, origin: str) -> M:
    if data is None:
        data = {}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InputError(describe_errors(exc, origin)) from None


def load(model: type[M], path: str | Path) -> M:
    return parse(model, read_yaml_file(path), str(path))
