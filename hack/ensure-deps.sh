#!/usr/bin/env bash
# Installs the Debian packages `make test` / `make demo` need and a fresh machine lacks
# (CI and a newcomer's first run alike). Idempotent: prints nothing when all are present.
# Add a requirement as a `command:package` pair (or `python-module:package` for
# Python modules of the system interpreter, written `py:MODULE:package`).
set -euo pipefail

requirements=(
  make:make git:git python3:python3
  # Adaptation and alert-rule tests: a real Prometheus server and promtool.
  promtool:prometheus prometheus:prometheus
  # `python3 -m venv` needs ensurepip, which Debian ships separately.
  py:ensurepip:python3-venv
  # Live calibration and the closed-loop test compile llama.cpp (make llama).
  g++:g++
)

missing=()
for req in "${requirements[@]}"; do
  case "$req" in
    py:*)
      rest=${req#py:}
      python3 -c "import ${rest%%:*}" 2>/dev/null || missing+=("${rest#*:}") ;;
    *)
      command -v "${req%%:*}" >/dev/null || missing+=("${req#*:}") ;;
  esac
done
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
