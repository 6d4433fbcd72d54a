"""Label-selector matching for nodes, with Kubernetes semantics."""

from __future__ import annotations

from collections.abc import Mapping

from ..api.crd import NodeSelector, SelectorOperator


def matches(selector: NodeSelector, labels: Mapping[str, str]) -> bool:
    """Whether a node with these labels is selected (an empty selector selects all)."""
    for key, value in selector.match_labels.items():
        if labels.get(key) != value:
            return False
    for expr in selector.match_expressions:
        present = expr.key in labels
        values = expr.values or []
        if expr.operator is SelectorOperator.IN:
            ok = present and labels[expr.key] in values
        elif expr.operator is SelectorOperator.NOT_IN:
            # As in Kubernetes: a node without the label satisfies NotIn.
            ok = not present or labels[expr.key] not in values
        elif expr.operator is SelectorOperator.EXISTS:
            ok = present
        else:
            ok = not present
        if not ok:
            return False
    return True
