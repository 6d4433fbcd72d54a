#!/usr/bin/env bash
# Builds etcd and a kube-apiserver/kube-controller-manager multi-call binary from Go
# modules into a cache outside the repo, keyed by version. Reuses a complete build.
# Prints the directory holding the binaries on its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
k8s_version=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' "$here/kube/go.mod")
etcd_version=$(awk '/go.etcd.io\/etcd\/server\/v3 v/ {print $NF; exit}' "$here/etcd/go.mod")
cache_root=${INFERENCE_THRESHOLDS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/inference-thresholds}
out="$cache_root/controlplane-k8s-${k8s_version}-etcd-${etcd_version}"
# A stamp, written last, marks a complete build: an interrupted one is redone.
if [[ -f "$out/.complete" && -x "$out/kube" && -x "$out/etcd" ]]; then
  echo "$out"
  exit 0
fi
mkdir -p "$out"
minor=${k8s_version#v1.}; minor=${minor%%.*}
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor \
 -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z \
 -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version"
start=$SECONDS
echo ">> building etcd $etcd_version" >&2
(cd "$here/etcd" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/etcd" .)
echo ">> building kube-apiserver + kube-controller-manager $k8s_version (cold: many minutes)" >&2
(cd "$here/kube" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/kube" .)
touch "$out/.complete"
echo ">> control plane built in $((SECONDS - start)) s" >&2
echo "$out"
