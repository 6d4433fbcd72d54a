"""Limits on outside input: JSON size/depth/numbers, clipped text, bounded numbers."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inference_thresholds.bounds import (
    InputRejected,
    bounded,
    clip,
    json_depth,
    load_json,
    printable,
)


def _load(text: str | bytes, depth: int = 8) -> object:
    return load_json(text, max_bytes=1 << 16, max_depth=depth, what="the input")


def test_depth_is_counted_outside_strings_without_recursion() -> None:
    assert json_depth('{"a": "[[[[[[", "b": [1, {"c": []}]}', 100) == 4
    assert json_depth('"\\"[[["', 100) == 0  # an escaped quote does not end the string
    # Far past the recursion limit: counted, not recursed (and the scan stops at the limit).
    assert json_depth("[" * 500_000, 64) == 65


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[" * 60_000, "nests deeper than 8"),
        ("x" * 70_000, "more than the 65536 allowed"),
        ("1e999", "does not fit a double"),
        ("[NaN]", "NaN is not a JSON number"),
        ('{"a": -Infinity}', "-Infinity is not a JSON number"),
        ("1" * 5000, "not valid JSON"),  # beyond Python's int digit limit
        ('{"a": ', "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_hostile_json_is_refused_with_the_limit_named(text: str | bytes, needle: str) -> None:
    with pytest.raises(InputRejected, match="the input") as err:
        _load(text)
    assert needle in str(err.value)


def test_valid_json_within_limits_loads() -> None:
    assert _load('{"a": [1, 2.5, "x", null, true]}') == {"a": [1, 2.5, "x", None, True]}


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=30,
    )
)
def test_depth_matches_the_structure(value: object) -> None:
    def depth(v: object) -> int:
        if isinstance(v, list):
            return 1 + max(map(depth, v), default=0)
        if isinstance(v, dict):
            return 1 + max(map(depth, v.values()), default=0)
        return 0

    assert json_depth(json.dumps(value), 1000) == depth(value)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=3000), st.integers(min_value=0, max_value=400))
def test_clip_never_exceeds_the_limit_and_says_what_was_cut(text: str, limit: int) -> None:
    out = clip(text, limit)
    assert len(out) <= limit or out == text
    if len(text) <= limit:
        assert out == text
    elif limit >= 40:
        kept, _, marker = out.partition("…[")
        assert text.startswith(kept)
        assert marker == f"{len(text) - len(kept)} more characters]"


def test_printable_strips_control_characters_and_bounds_length() -> None:
    assert printable("NVIDIA\x00 A100\n\tSXM\x1b", 64) == "NVIDIA A100 SXM"
    assert len(printable("A" * 100_000, 256)) == 256


def test_bounded_numbers() -> None:
    assert bounded(5.0, 1, 10) == 5.0
    for bad in (None, math.nan, math.inf, -1.0, 11.0, 1e308):
        assert bounded(bad, 1, 10) is None
