#!/usr/bin/env bash
# Builds etcd and the `kube` multi-call binary (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, cri-reset) from Go modules into a cache outside the repo, keyed
# by version and by a hash of the Go sources and build flags (a changed main.go or go.mod
# gets a new directory; an old cache without the kubelet is never reused). Reuses a
# complete build. Prints the directory holding the binaries on its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
k8s_version=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' "$here/kube/go.mod")
etcd_version=$(awk '/go.etcd.io\/etcd\/server\/v3 v/ {print $NF; exit}' "$here/etcd/go.mod")
cache_root=${INFERENCE_THRESHOLDS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/inference-thresholds}
minor=${k8s_version#v1.}; minor=${minor%%.*}
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor \
 -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z \
 -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version"
inputs_hash=$(
  cd "$here"
  { cat kube/main.go kube/go.mod kube/go.sum etcd/main.go etcd/go.mod etcd/go.sum
    echo "$ldflags"; } | sha256sum | cut -c1-12
)
out="$cache_root/controlplane-k8s-${k8s_version}-etcd-${etcd_version}-${inputs_hash}"
# A stamp, written last, marks a complete build. The build goes to a private directory
# renamed into place at the end: an interrupted build is redone, and concurrent runs (two
# test sessions) never see or clobber each other's half-written binaries.
if [[ -f "$out/.complete" && -x "$out/kube" && -x "$out/etcd" ]]; then
  echo "$out"
  exit 0
fi
mkdir -p "$cache_root"
work=$(mktemp -d "$out.building.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$SECONDS
echo ">> building etcd $etcd_version" >&2
(cd "$here/etcd" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/etcd" .)
echo ">> building kube (apiserver, controller-manager, scheduler, kubelet) $k8s_version" \
  "(cold: many minutes)" >&2
(cd "$here/kube" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$work/kube" .)
touch "$work/.complete"
chmod 755 "$work"
if [[ ! -f "$out/.complete" ]]; then  # else a concurrent run finished first: keep theirs
  rm -rf "$out"  # an interrupted build of an older version of this script
  mv -T "$work" "$out" 2>/dev/null || [[ -f "$out/.complete" ]]
fi
echo ">> control plane built in $((SECONDS - start)) s" >&2
echo "$out"
