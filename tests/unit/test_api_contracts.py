"""The contracts in api/: node labels and annotations, label syntax, quantities, env keys."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubernetes.utils import parse_quantity as library_parse_quantity

from inference_thresholds.api.node_contract import (
    LABEL_PREFIX,
    LABEL_VALUE_PATTERN,
    OWNED_LABELS_ANNOTATION,
    PROFILE_ANNOTATION,
    cpu_cores,
    parse_quantity,
    valid_label_name,
    valid_label_value,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [("16", 16), ("15500m", Decimal("15.5")), ("64Gi", 64 * 2**30), ("1k", 1000), ("1e3", 1000)],
)
def test_quantities(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["lots", "", "1ki", "NaN", "Infinity", "-inf", "1e999"])
def test_bad_quantity_is_rejected(text: str) -> None:
    # Read from the cluster, so hostile: nothing a float cannot hold gets through.
    with pytest.raises(ValueError, match="quantity"):
        parse_quantity(text)


@given(
    st.decimals(min_value=0, max_value=10**9, places=3, allow_nan=False),
    st.sampled_from(["", "m", "k", "M", "G", "Ki", "Mi", "Gi", "Ti"]),
)
def test_quantities_are_the_kubernetes_librarys(number: Decimal, suffix: str) -> None:
    text = f"{number}{suffix}"
    assert parse_quantity(text) == library_parse_quantity(text)


def test_cpu_cores() -> None:
    assert cpu_cores("3920m") == 3.92 and cpu_cores("4") == 4.0
    assert cpu_cores(None) is None and cpu_cores("x") is None and cpu_cores("NaN") is None


def test_quantities_parse_without_importing_the_kubernetes_client() -> None:
    # The agent's memory budget: `import kubernetes` alone costs 35 MiB RSS.
    code = textwrap.dedent(
        """
        import sys
        from inference_thresholds.api.node_contract import parse_quantity
        assert parse_quantity("64Gi") == 64 * 2**30
        print(sorted(m for m in sys.modules if m.split(".")[0] == "kubernetes"))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_label_values() -> None:
    assert valid_label_value("") and valid_label_value("NVIDIA-A100-SXM4-80GB")
    assert valid_label_value("a" * 63) and not valid_label_value("a" * 64)
    for bad in ("-a", "a-", "a b", "a/b", "a\n"):
        assert not valid_label_value(bad), bad
    assert LABEL_VALUE_PATTERN.startswith("^") and LABEL_VALUE_PATTERN.endswith("$")
    assert valid_label_name("cpu.isa.avx2") and not valid_label_name("")


def test_agent_and_operator_share_the_keys() -> None:
    from inference_thresholds.controller import hardware_source
    from inference_thresholds_agent import labels, publisher

    assert PROFILE_ANNOTATION.startswith(LABEL_PREFIX)
    assert OWNED_LABELS_ANNOTATION.startswith(LABEL_PREFIX)
    for module in (hardware_source, labels, publisher):
        tree = ast.parse(Path(module.__file__ or "").read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        literals = [
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
        ]
        assert not [s for s in literals if "hw.inference.dev" in s], module.__name__


def test_env_variables_and_their_inverse() -> None:
    from inference_thresholds.api.thresholds_document import env_fields, env_variables

    assert env_variables()["min_tokens_per_second"] == "BITNET_MIN_TOKENS_PER_SECOND"
    assert env_variables("APP_")["max_latency_ms"] == "APP_MAX_LATENCY_MS"
    assert env_fields("APP_")["APP_MAX_LATENCY_MS"] == "max_latency_ms"
