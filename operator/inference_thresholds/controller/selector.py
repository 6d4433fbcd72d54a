"""Label-selector matching for nodes, with Kubernetes semantics (node affinity's for Gt/Lt)."""

from __future__ import annotations

from collections.abc import Mapping

from ..api.crd import MatchExpression, NodeSelector, SelectorOperator, selector_integer


def _integer_matches(expr: MatchExpression, value: str | None) -> bool:
    """Node affinity's Gt/Lt: the label and the one value are parsed as integers; a missing
    or non-integer label does not match (k8s.io/apimachinery labels.Requirement.Matches)."""
    if value is None or not expr.values:
        return False
    have, bound = selector_integer(value), selector_integer(expr.values[0])
    if have is None or bound is None:
        return False
    return have > bound if expr.operator is SelectorOperator.GT else have < bound


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
        elif expr.operator is SelectorOperator.DOES_NOT_EXIST:
            ok = not present
        else:
            ok = _integer_matches(expr, labels.get(expr.key))
        if not ok:
            return False
    return True
