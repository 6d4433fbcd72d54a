"""Warm start of the local control plane: seconds from launch to /readyz (target < 15 s).

Binaries must be built already (hack/controlplane/build.sh); each run starts a fresh cluster
in a temporary directory and stops it again.

    .venv/bin/python benchmarks/controlplane_start.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from inference_thresholds_dev.cluster.binaries import locate
from inference_thresholds_dev.cluster.cluster import LocalCluster

TARGET_SECONDS = 15.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    binaries = locate()
    readyz: list[float] = []
    controllers: list[float] = []
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="cp-bench-") as tmp:
            cluster = LocalCluster(Path(tmp), binaries)
            try:
                cluster.start()
            finally:
                cluster.stop()
        readyz.append(cluster.timings["readyz"])
        controllers.append(cluster.timings["controllers"])
        print(
            f"run {run}: /readyz {readyz[-1]:.2f} s, "
            f"controller-manager running {controllers[-1]:.2f} s"
        )
    worst = max(readyz)
    print(
        f"warm start to /readyz: median {statistics.median(readyz):.2f} s, max {worst:.2f} s "
        f"(target < {TARGET_SECONDS:g} s); controllers median "
        f"{statistics.median(controllers):.2f} s"
    )
    return 0 if worst < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
