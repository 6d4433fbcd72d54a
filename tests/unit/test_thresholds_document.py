"""The thresholds document as the ConfigMap holds it: one text per document, each class
listing its nodes on one line, read back whole by old and new readers."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from inference_thresholds.api.thresholds_document import (
    ClassEntry,
    ThresholdsDocument,
    document_text,
    wire_text,
)

NAMES = st.from_regex(r"[a-z0-9][a-z0-9.-]{0,20}", fullmatch=True)
# class name -> its nodes, sorted
CLASS_NODES = st.dictionaries(
    NAMES, st.lists(NAMES, max_size=30, unique=True).map(sorted), max_size=5
)


def _doc(classes: dict[str, list[str]], summary: str = "8x H100") -> ThresholdsDocument:
    return ThresholdsDocument(
        owner="o",
        namespace="ns",
        generation=1,
        content_hash="h",
        classes={
            name: ClassEntry(
                hardware_summary=summary,
                node_count=len(nodes),
                feasible=True,
                decisions=["decode = 12 tok/s [spec]", "node lists: ['a', 'b']"],
                nodes=nodes,
            )
            for name, nodes in classes.items()
        },
    )


@given(CLASS_NODES, st.text(max_size=40))
def test_text_is_the_document_and_the_same_every_time(
    classes: dict[str, list[str]], summary: str
) -> None:
    """Whatever the summaries hold (quotes, NULs, the placeholders' shape), the text parses
    back to the document, and rendering twice gives the same bytes (the ConfigMap's hash)."""
    doc = _doc(classes, summary)
    text = document_text(doc)
    assert json.loads(text) == doc.wire()
    assert document_text(doc) == text
    assert ThresholdsDocument.model_validate_json(text) == doc


def test_each_class_lists_its_nodes_on_one_line() -> None:
    nodes = [f"node-{i:04d}" for i in range(1000)]
    text = document_text(_doc({"gpu-h100-x8-abc123": nodes, "cpu-epyc-64c-def456": ["x"]}))
    lines = text.splitlines()
    assert len(lines) < 60  # not a line per node
    listed = [line for line in lines if line.strip().startswith('"nodes": [')]
    assert len(listed) == 2 and '"node-0999"]' in listed[1]
    assert '"decisions": [\n' in text  # the rest stays indented for people


def test_class_of_reads_class_lists_and_the_older_node_map() -> None:
    doc = _doc({"big": ["n1", "n2"], "small": ["n3"]})
    assert doc.class_of("n2") == "big" and doc.class_of("n3") == "small"
    assert doc.class_of("n4") is None and doc.node_total == 3
    older = ThresholdsDocument.model_validate(
        {**_doc({"big": [], "small": []}).wire(), "nodes": {"n1": "big", "n3": "small"}}
    )
    assert older.class_of("n3") == "small" and older.node_total == 2
    assert older.node_classes() == {"n1": "big", "n3": "small"}


def test_a_newer_operators_extra_fields_do_not_stop_a_reader() -> None:
    """Pods upgrade their client after the operator: a field added later is skipped."""
    wire = _doc({"big": ["n1"]}).wire()
    wire["servedBy"] = "a later operator"
    wire["classes"]["big"]["nodeCost"] = 3  # type: ignore[index]
    doc = ThresholdsDocument.model_validate(wire)
    assert doc.class_of("n1") == "big"


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=30,
)


@given(st.dictionaries(st.text(max_size=8).filter(lambda k: k != "classes"), JSON_VALUES))
def test_text_is_what_json_indents_byte_for_byte(wire: dict[str, object]) -> None:
    """Without node lists the rendering is json.dumps(indent=2, sort_keys=True) exactly:
    a document rendered by an older operator hashes the same (no rewrite on upgrade)."""
    assert wire_text(wire) == json.dumps(wire, sort_keys=True, indent=2) + "\n"


@given(CLASS_NODES, st.text(max_size=40))
def test_text_with_classes_is_the_earlier_releases_format(
    classes: dict[str, list[str]], summary: str
) -> None:
    """json's indented text with each non-empty node list on one line, as releases before
    this renderer wrote it (placeholders replaced after json.dumps)."""
    wire = _doc(classes, summary).wire()
    lists = {}
    for i, entry in enumerate(wire["classes"].values()):  # type: ignore[union-attr]
        if entry["nodes"]:
            placeholder = f"@@nodes-{i}@@"
            lists[json.dumps(placeholder)] = json.dumps(entry["nodes"])
            entry["nodes"] = placeholder
    reference = json.dumps(wire, sort_keys=True, indent=2)
    for placeholder, names in lists.items():
        reference = reference.replace(placeholder, names, 1)
    assert document_text(_doc(classes, summary)) == reference + "\n"
