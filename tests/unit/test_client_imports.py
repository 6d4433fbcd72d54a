"""The pod-side client and ``check`` must work in slim images without kopf/kubernetes."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_client_and_check_import_without_kopf_or_kubernetes() -> None:
    code = textwrap.dedent(
        """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {"kopf", "kubernetes", "psutil", "pynvml"}:
                    raise ImportError(f"blocked: {name}")
        sys.meta_path.insert(0, Block())
        import inference_thresholds.client
        import inference_thresholds.cli.client_cmds
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
