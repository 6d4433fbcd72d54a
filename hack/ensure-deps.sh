#!/usr/bin/env bash
# Installs the Debian packages `make test` / `make demo` need and a fresh machine lacks
# (CI and a newcomer's first run alike). Idempotent: prints nothing when all are present.
# Add a requirement as a `command:package` pair (or `py:MODULE:package` for a Python
# module of the system interpreter, `file:PATH:package` for a file the package installs).
set -euo pipefail

requirements=(
  make:make git:git python3:python3
  # Adaptation and alert-rule tests: a real Prometheus server and promtool.
  promtool:prometheus prometheus:prometheus
  # `python3 -m venv` needs ensurepip, which Debian ships separately.
  py:ensurepip:python3-venv
  # Live calibration and the closed-loop test compile llama.cpp (make llama).
  g++:g++
  # The real node (inference_thresholds_dev.node): containerd (CRI v1) with runc (crun
  # fails on cgroup v1 hybrid hosts) and the CNI loopback plugin.
  containerd:containerd ctr:containerd runc:runc
  file:/usr/lib/cni/loopback:containernetworking-plugins
  # Images without a registry (inference_thresholds_dev.images): a Debian base from
  # packages, podman to build the Dockerfile, gcc + static libc for the pause image.
  mmdebstrap:mmdebstrap podman:podman gcc:gcc file:/usr/lib/x86_64-linux-gnu/libc.a:libc6-dev
)

missing=()
for req in "${requirements[@]}"; do
  case "$req" in
    py:*)
      rest=${req#py:}
      python3 -c "import ${rest%%:*}" 2>/dev/null || missing+=("${rest#*:}") ;;
    file:*)
      rest=${req#file:}
      [[ -e "${rest%%:*}" ]] || missing+=("${rest#*:}") ;;
    *)
      command -v "${req%%:*}" >/dev/null || missing+=("${req#*:}") ;;
  esac
done
# One package may satisfy several requirements.
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | awk 'NF && !seen[$0]++')
((${#missing[@]})) || exit 0

echo ">> installing Debian packages: ${missing[*]}" >&2
if ! command -v apt-get >/dev/null; then
  echo "error: missing ${missing[*]} and no apt-get here: install them with your package manager" >&2
  exit 1
fi
sudo_cmd=()
[[ $(id -u) == 0 ]] || sudo_cmd=(sudo)
"${sudo_cmd[@]}" apt-get update -q >&2
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends \
  "${missing[@]}" >&2
