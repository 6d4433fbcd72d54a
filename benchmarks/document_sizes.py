"""How large the operator_scale CRs' thresholds documents are at a node count (in-process).

The same fleet and CRs as ``operator_scale.py`` (realistic Nodes, 2,000 CRs in 20
namespaces), planned against the node index without a cluster: the size of each CR's
document as the ConfigMap stores it, of its classes' node lists (every selected node)
and of its decision logs.

    .venv/bin/python benchmarks/document_sizes.py --nodes 10000
"""

from __future__ import annotations

import argparse
import json
import statistics

from operator_scale import plan_cr, ready_plans
from scale_objects import cr_plans, hardware_classes, node_name, realistic_merged

from inference_thresholds.api.thresholds_document import DOCUMENT_KEY
from inference_thresholds.controller.configmap import render_data
from inference_thresholds.controller.node_index import NodeIndex, node_inputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10000)
    parser.add_argument("--crs", type=int, default=2000)
    parser.add_argument("--namespaces", type=int, default=20)
    args = parser.parse_args()
    classes = hardware_classes()
    index = NodeIndex()
    for i in range(args.nodes):
        index.apply(node_name(i), node_inputs(realistic_merged(i, classes)))
    nodes = index.snapshot()
    plans, _, _ = ready_plans(cr_plans(args.crs, args.namespaces, classes), nodes, classes)
    docs, maps, decisions, selected = [], [], [], []
    for p in plans:
        plan = plan_cr(p, nodes)
        assert plan.document is not None, p.name
        docs.append(len(render_data(plan.document, "LLM_")[DOCUMENT_KEY]))
        lists = {name: entry.nodes for name, entry in plan.document.classes.items()}
        maps.append(len(json.dumps(lists, separators=(",", ":"))))
        decisions.append(sum(len("".join(e.decisions)) for e in plan.document.classes.values()))
        selected.append(plan.document.node_total)
    kb = 1024
    print(
        f"{args.nodes:,} nodes ({index.shapes} shapes), {len(plans):,} CRs: selected nodes per "
        f"CR mean {statistics.mean(selected):.0f}, max {max(selected):,}; document (as stored) "
        f"mean {statistics.mean(docs) / kb:.1f} KB, max {max(docs) / kb:.1f} KB; its classes' "
        f"node lists (compact JSON) mean {statistics.mean(maps) / kb:.1f} KB, "
        f"max {max(maps) / kb:.1f} KB; decision logs (text) mean "
        f"{statistics.mean(decisions) / kb:.1f} KB"
    )


if __name__ == "__main__":
    main()
